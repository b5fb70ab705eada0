//! A request as the operations see it: its target (bucket and key, path-style or
//! virtual-host-style), decoded query, headers, the authenticated caller, and the limits on what
//! it may carry (user metadata, declared length, Content-MD5).
//!
//! Must not import `ops`, `body` or `server`: the operations and the body readers build on
//! [`Ctx`], not the reverse.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use base64::Engine;

use crate::auth::Auth;
use crate::error::S3Result;
use crate::protocol::uri::decode_component;
use crate::s3_error;
use crate::state::AppState;

/// Largest single PutObject / UploadPart body (S3: 5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 << 30;
/// Headers stored with an object and returned on GET/HEAD (see [`Ctx::stored_headers`]).
pub const STORED_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];
/// Largest total size of `x-amz-meta-*` names and values (S3: 2 KB).
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// What the server records of a request once it is answered (metrics, usage, QoS), filled
/// by dispatch as it learns it.
#[derive(Clone, Debug, Default)]
pub struct RequestNote {
    /// The operation (`GetObject`, ...; empty if the request was refused before it was known).
    pub operation: &'static str,
    /// The account it counts against (the caller's; the bucket owner's for an anonymous one).
    pub account: String,
    /// The bucket it names.
    pub bucket: Option<String>,
    /// Its declared body length.
    pub bytes_in: u64,
    /// Whether the caller signed nothing.
    pub anonymous: bool,
    /// Its server time so far, by stage.
    pub stages: crate::metrics::StageClock,
}

impl RequestNote {
    /// The (account, bucket) whose QoS limits the request draws on: the caller's account and
    /// the bucket; for an anonymous caller, anonymous callers' own share
    /// ([`crate::qos::ANONYMOUS`]) alone, so outsiders never spend a tenant's budget.
    pub fn qos_scope(&self) -> (&str, Option<&str>) {
        match self.anonymous {
            true => (crate::qos::ANONYMOUS, None),
            false => (&self.account, self.bucket.as_deref()),
        }
    }
}

/// The client's address, put in every request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Whether the request came over TLS (`aws:SecureTransport`), and which version
/// (`s3:TlsVersion`: `1.2`, `1.3`), put in every request's extensions by the server. `None`:
/// plain HTTP.
#[derive(Clone, Copy, Debug)]
pub struct SecureTransport(pub Option<&'static str>);

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
    /// The operation, from the one route table (`protocol::route`).
    pub endpoint: crate::protocol::Endpoint,
    /// The caller.
    pub auth: Auth,
    /// The client's address.
    pub peer: Option<std::net::IpAddr>,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The TLS version (`1.2`, `1.3`) when `secure`.
    pub tls_version: Option<&'static str>,
    /// The tags of the object acted on, loaded for a bucket policy that reads them
    /// (`s3:ExistingObjectTag/<key>`).
    pub existing_tags: Option<Vec<(String, String)>>,
    /// The tags the request sets (`x-amz-tagging`, or a PutObjectTagging body once read), for
    /// `s3:RequestObjectTag/<key>`.
    pub request_tags: Option<Vec<(String, String)>>,
    /// The bucket's owner, ACL, policy and public access block (requests on a bucket that
    /// exists).
    pub access: Option<std::sync::Arc<crate::auth::access::BucketAccess>>,
    /// What authorization decided; object reads settle it with the object's record.
    pub verdict: Option<crate::auth::access::Verdict>,
    /// The bucket's versioning state (requests on a bucket that exists).
    pub versioning: hoard::store::Versioning,
    pub(crate) body: Option<Body>,
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

    /// The bucket's access settings (present by dispatch for requests on a bucket).
    pub fn access(&self) -> &crate::auth::access::BucketAccess {
        self.access
            .as_ref()
            .expect("dispatch loads the bucket's access for every bucket request")
    }

    /// The key (present by dispatch).
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// Whom the request's admission shares count against: the caller's account, or
    /// [`crate::qos::ANONYMOUS`].
    pub fn share_account(&self) -> String {
        crate::qos::scope_of(&self.auth, None).0.to_string()
    }

    /// The `versionId` query parameter, parsed.
    ///
    /// Errors: InvalidArgument for a malformed version ID.
    pub fn version_id(&self) -> S3Result<Option<hoard::store::VersionId>> {
        self.q("versionId")
            .map(hoard::store::VersionId::parse)
            .transpose()
            .map_err(Into::into)
    }

    /// The record of the version an object request names (`versionId`; the latest without),
    /// once the object's ACL lets the caller read it (object reads are settled with the
    /// record). A future holding no `&Ctx`, which is not `Sync`.
    ///
    /// Errors: InvalidArgument for a malformed version ID; NoSuchKey, NoSuchVersion, a delete
    /// marker's 404 or 405; AccessDenied.
    pub fn readable_version(
        &self,
    ) -> impl std::future::Future<Output = S3Result<hoard::store::ObjectInfo>> + Send + 'static
    {
        let store = self.state.store.clone();
        let (bucket, key) = (self.bucket().to_string(), self.key().to_string());
        let version = self.version_id();
        let verdict = self.verdict.clone();
        async move {
            let version = version?;
            let info = crate::engine::memory_first(move || {
                store.head_object_version(&bucket, &key, version)
            })
            .await?;
            if let Some(v) = &verdict {
                v.check_object(&info.headers)?;
            }
            Ok(info)
        }
    }

    /// Adds `x-amz-version-id` of `version` to `headers`, where the bucket's versioning says
    /// an answer carries it ([`Ctx::version_header`]).
    pub fn add_version_header(
        &self,
        version: hoard::store::VersionId,
        headers: &mut axum::http::HeaderMap,
    ) {
        if let Some((name, value)) = self.version_header(version) {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }

    /// The `x-amz-version-id` an answer about `version` carries: every version of a
    /// versioned bucket (`null` included) and none in a bucket never versioned; a write to a
    /// bucket whose versioning is suspended (which replaces the `null` version) carries none,
    /// as S3 answers it.
    pub fn version_header(
        &self,
        version: hoard::store::VersionId,
    ) -> Option<(&'static str, String)> {
        use crate::protocol::Endpoint as E;
        let write = matches!(
            self.endpoint,
            E::PutObject | E::CopyObject | E::CompleteMultipartUpload | E::PostObject
        );
        match (version, self.versioning) {
            (hoard::store::VersionId::Null, hoard::store::Versioning::Unversioned) => None,
            (hoard::store::VersionId::Null, hoard::store::Versioning::Suspended) if write => None,
            (v, _) => Some(("x-amz-version-id", v.to_string())),
        }
    }
}

impl Ctx {
    /// PutObject and UploadPart need a declared length, or HTTP/1.1 chunked framing (RFC 9112
    /// section 7.1), whose end the server sees; either way the body is cut at the maximum
    /// object size as it arrives.
    ///
    /// Errors: MissingContentLength (411).
    pub fn require_length(&self) -> S3Result<()> {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if self.header("content-length").is_none()
            && self.header("x-amz-decoded-content-length").is_none()
            && !chunked
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

    /// The standard headers S3 stores with an object and returns on GET/HEAD (Cache-Control,
    /// Content-Disposition, Content-Encoding, Content-Language, Expires), as (lower-case
    /// name, value). The `aws-chunked` token of Content-Encoding is framing, not the object's
    /// encoding, and is dropped.
    pub fn stored_headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in STORED_HEADERS {
            let Some(value) = self.header(name) else {
                continue;
            };
            let value = if *name == "content-encoding" {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                value.to_string()
            };
            if !value.is_empty() {
                out.push((name.to_string(), value));
            }
        }
        out
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

/// Parses a `Range` header (RFC 9110 section 14.2; S3 takes one range of bytes): `Some`
/// range, or `None` for a header S3 ignores (another unit, several ranges, a first byte after
/// the last).
///
/// Errors: InvalidRange (416) for a `bytes=` range that does not parse.
pub fn parse_range(v: &str) -> S3Result<Option<hoard::store::ByteRange>> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let invalid = || {
        s3_error!(
            InvalidRange,
            RANGE_NOT_SATISFIABLE,
            "the Range header {v:?} is not valid"
        )
    };
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| invalid());
    Ok(Some(match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => hoard::store::ByteRange::Last(num(b)?),
        (false, true) => hoard::store::ByteRange::From(num(a)?),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Ok(None);
            }
            hoard::store::ByteRange::FromTo(a, b)
        }
        (true, true) => return Err(invalid()),
    }))
}

/// Splits a request into (vhost bucket, bucket, key) from Host and path.
///
/// Errors: InvalidURI for a bucket name or key that is not UTF-8 once decoded.
pub fn parse_target(
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
}
