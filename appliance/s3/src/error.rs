//! S3 errors: one type, one place that maps engine errors to S3 codes (Amazon S3 API Reference,
//! "Error responses" / "List of error codes").
//!
//! Must not import anything of this crate: every file reports through it.

use axum::http::StatusCode;

/// An S3 error response: code, HTTP status and message.
#[derive(Debug, Clone)]
pub struct S3Error {
    /// S3 error code (`NoSuchKey`, ...).
    pub code: &'static str,
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message naming the thing at fault.
    pub message: String,
    /// Extra response headers (`Retry-After` of a SlowDown, CORS headers): (name, value).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

/// Builds an [`S3Error`]: `s3_error!(NoSuchKey, NOT_FOUND, "key {} ...", k)`.
#[macro_export]
macro_rules! s3_error {
    ($code:ident, $status:ident, $($msg:tt)+) => {
        $crate::error::S3Error {
            code: stringify!($code),
            status: ::axum::http::StatusCode::$status,
            message: format!($($msg)+),
            headers: Vec::new(),
        }
    };
}

/// Result alias for the S3 layer.
pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    /// This error with `headers` added to its response.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> Self {
        self.headers.extend_from_slice(headers);
        self
    }

    /// Wraps this error into an `io::Error`, so body readers can fail an engine put with it.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

impl From<hoard::Error> for S3Error {
    fn from(e: hoard::Error) -> Self {
        use hoard::Error as E;
        let msg = e.to_string();
        match e {
            E::NoSuchBucket(_) => s3_error!(NoSuchBucket, NOT_FOUND, "{msg}"),
            E::NoSuchKey { .. } => s3_error!(NoSuchKey, NOT_FOUND, "{msg}"),
            E::NoSuchVersion { .. } => s3_error!(NoSuchVersion, NOT_FOUND, "{msg}"),
            // S3: a GET of a key whose latest version is a delete marker is 404, of a delete
            // marker by its version ID 405; both say which marker.
            E::DeleteMarker {
                ref version_id,
                requested,
                ..
            } => {
                let marker = vec![
                    ("x-amz-delete-marker".to_string(), "true".to_string()),
                    ("x-amz-version-id".to_string(), version_id.clone()),
                ];
                match requested {
                    true => s3_error!(MethodNotAllowed, METHOD_NOT_ALLOWED, "{msg}"),
                    false => s3_error!(NoSuchKey, NOT_FOUND, "{msg}"),
                }
                .with_headers(&marker)
            }
            E::NoSuchUpload { .. } => s3_error!(NoSuchUpload, NOT_FOUND, "{msg}"),
            E::BucketAlreadyExists {
                owned_by_caller: true,
                ..
            } => s3_error!(BucketAlreadyOwnedByYou, CONFLICT, "{msg}"),
            E::BucketAlreadyExists { .. } => s3_error!(BucketAlreadyExists, CONFLICT, "{msg}"),
            E::BucketNotEmpty(_) => s3_error!(BucketNotEmpty, CONFLICT, "{msg}"),
            E::InvalidBucketName { .. } => s3_error!(InvalidBucketName, BAD_REQUEST, "{msg}"),
            E::InvalidKey { len, .. } if len > 0 => {
                s3_error!(KeyTooLongError, BAD_REQUEST, "{msg}")
            }
            E::InvalidKey { .. } => s3_error!(InvalidArgument, BAD_REQUEST, "{msg}"),
            E::InvalidPart { .. } => s3_error!(InvalidPart, BAD_REQUEST, "{msg}"),
            E::InvalidPartOrder => s3_error!(InvalidPartOrder, BAD_REQUEST, "{msg}"),
            E::EntityTooSmall { .. } => s3_error!(EntityTooSmall, BAD_REQUEST, "{msg}"),
            E::EntityTooLarge { .. } => s3_error!(EntityTooLarge, BAD_REQUEST, "{msg}"),
            E::InvalidRange { .. } => s3_error!(InvalidRange, RANGE_NOT_SATISFIABLE, "{msg}"),
            E::InvalidArgument(_) => s3_error!(InvalidArgument, BAD_REQUEST, "{msg}"),
            // Reached only at the commit, after an early check held: another writer raced in
            // (S3 answers such a race 409; a condition false from the start is answered 412
            // by the S3 layer before the body is stored).
            E::PreconditionFailed { .. } => {
                s3_error!(ConditionalRequestConflict, CONFLICT, "{msg}")
            }
            E::BadDigest => s3_error!(BadDigest, BAD_REQUEST, "{msg}"),
            // 507 (RFC 4918) with a code of its own: S3 defines none for a full store, and
            // SDKs retry 500 and 503 but not 507, so a client sees "full" at once instead of
            // retrying into it. (MinIO answers the same status with XMinioStorageFull.)
            E::InsufficientStorage { .. } => {
                s3_error!(InsufficientStorage, INSUFFICIENT_STORAGE, "{msg}")
            }
            E::NoSpace { .. } | E::Closed => {
                s3_error!(ServiceUnavailable, SERVICE_UNAVAILABLE, "{msg}")
            }
            E::Body(io) => match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<S3Error>())
            {
                Some(s3) => s3.clone(),
                None => s3_error!(
                    IncompleteBody,
                    BAD_REQUEST,
                    "the request body ended early or could not be read: {io}"
                ),
            },
            _ => {
                tracing::error!(error = %msg, "internal error");
                s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{msg}")
            }
        }
    }
}
