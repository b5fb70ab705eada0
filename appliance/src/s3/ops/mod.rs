//! S3 operations: dispatch on method, bucket, key and sub-resource, and the helpers they share
//! (request context, body readers, blocking engine calls, dates).

mod admin;
mod bucket;
mod multipart;
mod object;

use std::io::Read;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;

use super::auth::{self, Auth, Payload, RequestView};
use super::body::{
    AwsChunkedReader, ChannelReader, ChecksumAlgorithm, ChecksumReader, Expected, Sha256Reader,
    Trailers,
};
use super::error::{S3Error, S3Result};
use super::AppState;
use crate::s3_error;

/// Largest single PutObject / UploadPart body (S3: 5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 << 30;
/// Largest total size of `x-amz-meta-*` names and values (S3: 2 KB).
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// One request, parsed and authenticated.
pub struct Ctx {
    /// Shared state.
    pub state: Arc<AppState>,
    /// Method.
    pub method: Method,
    /// Headers.
    pub headers: HeaderMap,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Bucket, if the request names one.
    pub bucket: Option<String>,
    /// Key, if the request names one.
    pub key: Option<String>,
    /// The caller.
    pub auth: Auth,
    body: Option<Body>,
}

impl Ctx {
    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a query parameter is present (with or without value).
    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The bucket (present by dispatch).
    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }

    /// The key (present by dispatch).
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// Reads a small body (XML requests) whole, with a size limit.
    pub async fn small_body(&mut self, max_bytes: usize) -> S3Result<Vec<u8>> {
        let reader = self.body_reader(max_bytes as u64)?;
        blocking_io(move || {
            let mut out = Vec::new();
            reader.0.take(max_bytes as u64 + 1).read_to_end(&mut out)?;
            Ok(out)
        })
        .await
        .and_then(|v| {
            if v.len() > max_bytes {
                Err(s3_error!(
                    MalformedXML,
                    BAD_REQUEST,
                    "request body is larger than {max_bytes} bytes"
                ))
            } else {
                Ok(v)
            }
        })
    }

    /// The body as a verified blocking reader (see `s3::body`), plus the cell that receives the
    /// verified flexible checksum. Fails early when the declared size exceeds `max_bytes`.
    pub fn body_reader(
        &mut self,
        max_bytes: u64,
    ) -> S3Result<(Box<dyn Read + Send>, hoard::ChecksumCell)> {
        let declared = match &self.auth.payload {
            Payload::Streaming(_) => self
                .header("x-amz-decoded-content-length")
                .and_then(|v| v.parse::<u64>().ok()),
            _ => self
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok()),
        };
        if let Some(size) = declared {
            if size > max_bytes {
                return Err(s3_error!(
                    EntityTooLarge,
                    BAD_REQUEST,
                    "your proposed upload of {size} bytes exceeds the maximum of {max_bytes} bytes"
                ));
            }
        }
        let raw_limit = match &self.auth.payload {
            // aws-chunked framing adds ~90 bytes per chunk of at least 8 KiB.
            Payload::Streaming(_) => max_bytes + max_bytes / 64 + 64 * 1024,
            _ => max_bytes,
        };
        let body = self.body.take().unwrap_or_else(Body::empty);
        let channel = pump_body(body, self.state.config.body_idle_timeout, raw_limit);
        let trailers = Trailers::default();
        let mut reader: Box<dyn Read + Send> = match &self.auth.payload {
            Payload::Unsigned => Box::new(channel),
            Payload::Sha256(hex) => Box::new(Sha256Reader::new(channel, hex.clone())),
            Payload::Streaming(s) => Box::new(AwsChunkedReader::new(
                channel,
                s.clone(),
                declared,
                trailers.clone(),
            )),
        };
        let verified: hoard::ChecksumCell = Arc::new(Mutex::new(None));
        if let Some((algorithm, expected)) = self.expected_checksum(&trailers)? {
            reader = Box::new(ChecksumReader::new(
                reader,
                algorithm,
                expected,
                verified.clone(),
            ));
        }
        Ok((reader, verified))
    }

    fn expected_checksum(
        &self,
        trailers: &Trailers,
    ) -> S3Result<Option<(ChecksumAlgorithm, Expected)>> {
        let mut found = None;
        for algorithm in ChecksumAlgorithm::ALL {
            if let Some(v) = self.header(&algorithm.header()) {
                if found.is_some() {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "expecting a single x-amz-checksum- header"
                    ));
                }
                found = Some((algorithm, Expected::Header(v.trim().to_string())));
            }
        }
        if found.is_none() {
            if let Some(trailer) = self.header("x-amz-trailer") {
                let name = trailer.trim().to_ascii_lowercase();
                let algorithm = ChecksumAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.header() == name)
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidRequest,
                            BAD_REQUEST,
                            "unsupported x-amz-trailer {trailer:?}"
                        )
                    })?;
                if !matches!(&self.auth.payload, Payload::Streaming(s) if s.trailer) {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "x-amz-trailer needs a STREAMING-...-TRAILER payload"
                    ));
                }
                found = Some((algorithm, Expected::Trailer(trailers.clone())));
            }
        }
        Ok(found)
    }

    /// PutObject and UploadPart need a declared length.
    ///
    /// Errors: MissingContentLength (411).
    pub fn require_length(&self) -> S3Result<()> {
        if self.header("content-length").is_none()
            && self.header("x-amz-decoded-content-length").is_none()
        {
            return Err(s3_error!(
                MissingContentLength,
                LENGTH_REQUIRED,
                "you must provide the Content-Length HTTP header"
            ));
        }
        Ok(())
    }

    /// `Content-MD5` decoded.
    ///
    /// Errors: InvalidDigest if it is not base64 of 16 bytes.
    pub fn content_md5(&self) -> S3Result<Option<[u8; 16]>> {
        let Some(v) = self.header("content-md5") else {
            return Ok(None);
        };
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InvalidDigest,
                    BAD_REQUEST,
                    "the Content-MD5 you specified is not valid"
                )
            })
    }

    /// `x-amz-meta-*` headers as (name, value), checked against the 2 KB limit.
    pub fn user_metadata(&self) -> S3Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut total = 0;
        for (name, value) in self.headers.iter() {
            if let Some(n) = name.as_str().strip_prefix("x-amz-meta-") {
                let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
                total += n.len() + v.len();
                out.push((n.to_string(), v));
            }
        }
        if total > MAX_USER_METADATA_BYTES {
            return Err(s3_error!(
                MetadataTooLarge,
                BAD_REQUEST,
                "user metadata is {total} bytes; the limit is {MAX_USER_METADATA_BYTES}"
            ));
        }
        Ok(out)
    }
}

/// Pumps the HTTP body into a bounded channel read by a blocking [`ChannelReader`].
fn pump_body(body: Body, idle: std::time::Duration, max_bytes: u64) -> ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        loop {
            let item = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Err(s3_error!(
                    RequestTimeout,
                    BAD_REQUEST,
                    "your socket connection to the server was not read from or written to within the timeout period ({idle:?})"
                )
                .into_io()),
                Ok(None) => break,
                Ok(Some(Err(e))) => Err(s3_error!(IncompleteBody, BAD_REQUEST, "reading the request body failed: {e}").into_io()),
                Ok(Some(Ok(bytes))) => {
                    total += bytes.len() as u64;
                    if total > max_bytes {
                        Err(s3_error!(EntityTooLarge, BAD_REQUEST, "the request body exceeds {max_bytes} bytes").into_io())
                    } else {
                        Ok(bytes)
                    }
                }
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    ChannelReader::new(rx)
}

/// Runs an engine call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> hoard::Result<T> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(S3Error::from),
        Err(e) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "worker failed: {e}"
        )),
    }
}

async fn blocking_io<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> S3Result<T> {
    blocking(move || f().map_err(hoard::Error::Body)).await
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// ISO 8601 with milliseconds, as S3 XML uses (`2026-11-22T02:41:01.000Z`).
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// HTTP date (RFC 9110) for Last-Modified.
pub fn http_date(unix_ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

fn decode_component(s: &str, what: &str) -> S3Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            s3_error!(
                InvalidURI,
                BAD_REQUEST,
                "the {what} is not valid UTF-8 once decoded"
            )
        })
}

fn parse_query(raw: &str) -> S3Result<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k, "query")?, decode_component(v, "query")?))
        })
        .collect()
}

/// Splits a request into (vhost bucket, bucket, key) from Host and path.
fn parse_target(
    host: &str,
    raw_path: &str,
    domains: &[String],
) -> S3Result<(Option<String>, Option<String>, Option<String>)> {
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let vhost = domains
        .iter()
        .find_map(|d| {
            host.strip_suffix(d.as_str())
                .and_then(|h| h.strip_suffix('.'))
        })
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (bucket, key) = match &vhost {
        Some(b) => (Some(b.clone()), path),
        None => {
            let (b, k) = path.split_once('/').unwrap_or((path, ""));
            ((!b.is_empty()).then(|| b.to_string()), k)
        }
    };
    let bucket = bucket
        .map(|b| decode_component(&b, "bucket name"))
        .transpose()?;
    let key = (!key.is_empty())
        .then(|| decode_component(key, "object key"))
        .transpose()?;
    Ok((vhost, bucket, key))
}

/// Parses, authenticates and runs one request.
pub async fn dispatch(state: Arc<AppState>, req: Request) -> S3Result<Response> {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if raw_path.starts_with(admin::PREFIX) {
        let view = RequestView {
            method: &parts.method,
            raw_path: &raw_path,
            query: &query,
            headers: &parts.headers,
            vhost_bucket: None,
        };
        let auth = auth::authenticate(&view, &state.credentials, now_secs())?;
        return admin::dispatch(&state, &parts.method, &raw_path, &auth).await;
    }
    let (vhost, bucket, key) = parse_target(&host, &raw_path, &state.config.domains)?;
    let view = RequestView {
        method: &parts.method,
        raw_path: &raw_path,
        query: &query,
        headers: &parts.headers,
        vhost_bucket: vhost.as_deref(),
    };
    let auth = auth::authenticate(&view, &state.credentials, now_secs())?;
    let ctx = Ctx {
        state,
        method: parts.method,
        headers: parts.headers,
        query,
        bucket,
        key,
        auth,
        body: Some(body),
    };

    let creating_bucket = ctx.method == Method::PUT && ctx.key.is_none();
    if let (Some(b), false) = (&ctx.bucket, creating_bucket) {
        let store = ctx.state.store.clone();
        let name = b.clone();
        let info = blocking(move || store.head_bucket(&name)).await?;
        if info.owner != ctx.auth.access_key {
            return Err(s3_error!(
                AccessDenied,
                FORBIDDEN,
                "bucket {} belongs to another user",
                info.name
            ));
        }
    }

    let m = ctx.method.clone();
    match (ctx.bucket.is_some(), ctx.key.is_some()) {
        (false, _) if m == Method::GET => bucket::list_buckets(ctx).await,
        (false, _) => Err(s3_error!(
            MethodNotAllowed,
            METHOD_NOT_ALLOWED,
            "{m} is not allowed on the service"
        )),
        (true, false) => bucket::dispatch(ctx).await,
        (true, true) => {
            if ctx.has("uploads") || ctx.has("uploadId") {
                multipart::dispatch(ctx).await
            } else {
                object::dispatch(ctx).await
            }
        }
    }
}

/// The sub-resources we do not implement; asking for one gets NotImplemented, not a wrong answer.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "encryption",
    "inventory",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "legal-hold",
    "select",
    "tagging",
    "torrent",
    "versioning",
    "versions",
    "website",
    "accelerate",
    "analytics",
    "intelligent-tiering",
    "attributes",
];

fn refuse_unsupported(ctx: &Ctx) -> S3Result<()> {
    if let Some(sub) = UNSUPPORTED_SUBRESOURCES.iter().find(|s| ctx.has(s)) {
        return Err(s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "the ?{sub} sub-resource is not implemented"
        ));
    }
    Ok(())
}

/// A response header built from stored or requested values (user metadata, `response-*`
/// overrides) that HTTP cannot carry.
pub(crate) fn bad_header(e: axum::http::Error) -> S3Error {
    s3_error!(
        InvalidArgument,
        BAD_REQUEST,
        "a response header would be invalid: {e}"
    )
}

/// Adds `x-amz-checksum-<algorithm>` headers for stored (algorithm, base64) checksums.
pub(crate) fn with_checksums(
    mut resp: axum::http::response::Builder,
    checksums: &[(String, String)],
) -> axum::http::response::Builder {
    for (algorithm, value) in checksums {
        resp = resp.header(
            format!("x-amz-checksum-{}", algorithm.to_ascii_lowercase()),
            value,
        );
    }
    resp
}

/// The answer to a stored body (PutObject, UploadPart): its ETag and verified checksum.
pub(crate) fn stored_response(etag: &str, checksums: &[(String, String)]) -> S3Result<Response> {
    let resp = Response::builder()
        .status(axum::http::StatusCode::OK)
        .header("etag", format!("\"{etag}\""));
    with_checksums(resp, checksums)
        .body(Body::empty())
        .map_err(bad_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_both_styles() {
        let d = vec!["localhost".to_string()];
        assert_eq!(
            parse_target("127.0.0.1:9000", "/b/a%20b/c", &d).unwrap(),
            (None, Some("b".into()), Some("a b/c".into()))
        );
        assert_eq!(
            parse_target("127.0.0.1", "/b/", &d).unwrap(),
            (None, Some("b".into()), None)
        );
        assert_eq!(parse_target("x", "/", &d).unwrap(), (None, None, None));
        assert_eq!(
            parse_target("bk.localhost:9000", "/k", &d).unwrap(),
            (Some("bk".into()), Some("bk".into()), Some("k".into()))
        );
        assert!(parse_target("x", "/b/%FF", &d).is_err());
    }

    #[test]
    fn dates_format() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_369_353_600_123), "2013-05-24T00:00:00.123Z");
    }
}
