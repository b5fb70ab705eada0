//! AWS Signature Version 4 (Amazon S3 API Reference, "Authenticating Requests (AWS Signature
//! Version 4)"): the Authorization header form and the presigned query-string form.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`, nor the authorization files
//! (`access`, `acl`, `policy`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{
    check_skew, signature_mismatch, signatures_equal, Auth, Credentials, Payload, RequestView,
    SignedIn, StreamingAuth,
};
use crate::error::S3Result;
use crate::protocol::dates::parse_amz_date;
use crate::protocol::uri::uri_encode;
use crate::s3_error;

/// `x-amz-content-sha256` of a body sent without a signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Longest validity of a presigned URL (S3: 7 days).
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The SigV4 signing key for `date` (YYYYMMDD), `region` and `service`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// The canonical URI of a raw (percent-encoded) path: decoded, then encoded by SigV4's rules.
pub fn canonical_uri(raw_path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let encoded = uri_encode(&decoded, true);
    if encoded.is_empty() {
        "/".into()
    } else {
        encoded
    }
}

fn canonical_query(query: &[(String, String)], skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(req: &RequestView<'_>, signed: &[&str]) -> S3Result<String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(s3_error!(
                AccessDenied,
                FORBIDDEN,
                "signed header {name} is missing from the request"
            ));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// S3 refuses `x-amz-*` headers that the signature does not cover: otherwise whoever holds a
/// presigned URL (or replays a request) could add metadata, ACLs or checksums of their own.
///
/// Errors: AccessDenied naming the headers.
fn refuse_unsigned_amz_headers(req: &RequestView<'_>, signed: &[&str]) -> S3Result<()> {
    let mut unsigned: Vec<&str> = req
        .headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("x-amz-") && !signed.contains(n))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    unsigned.dedup();
    Err(s3_error!(
        AccessDenied,
        FORBIDDEN,
        "there were headers present in the request which were not signed: {}",
        unsigned.join(", ")
    ))
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Parsed `Credential=AKID/date/region/service/aws4_request`.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl<'a> Credential<'a> {
    fn parse(s: &'a str) -> S3Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 5 || parts[4] != "aws4_request" || parts[1].len() != 8 {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                BAD_REQUEST,
                "malformed credential scope {s:?}"
            ));
        }
        Ok(Credential {
            access_key: parts[0],
            date: parts[1],
            region: parts[2],
            service: parts[3],
        })
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

struct Verified {
    access_key: String,
    key: [u8; 32],
    signature: String,
    amz_date: String,
    scope: String,
}

#[allow(clippy::too_many_arguments)]
fn verify(
    req: &RequestView<'_>,
    creds: &Credentials,
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: &str,
    payload_hash: &str,
    presigned: bool,
    region: &str,
) -> S3Result<Verified> {
    let cred = Credential::parse(credential)?;
    let malformed = |message: String| {
        if presigned {
            s3_error!(AuthorizationQueryParametersError, BAD_REQUEST, "{message}")
        } else {
            s3_error!(AuthorizationHeaderMalformed, BAD_REQUEST, "{message}")
        }
    };
    if cred.region != region {
        return Err(malformed(format!(
            "the authorization is malformed; the region '{}' is wrong; expecting '{region}'",
            cred.region
        )));
    }
    if cred.service != "s3" {
        return Err(malformed(format!(
            "the authorization is malformed; the service '{}' is wrong; expecting 's3'",
            cred.service
        )));
    }
    let secret = creds.secret(cred.access_key)?;
    if !amz_date.starts_with(cred.date) {
        return Err(s3_error!(
            AuthorizationHeaderMalformed,
            BAD_REQUEST,
            "credential date {} does not match x-amz-date {amz_date}",
            cred.date
        ));
    }
    let mut signed: Vec<&str> = signed_headers
        .split(';')
        .filter(|h| !h.is_empty())
        .collect();
    signed.sort_unstable();
    if !signed.contains(&"host") {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "the host header must be signed"
        ));
    }
    refuse_unsigned_amz_headers(req, &signed)?;
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.as_str(),
        canonical_uri(req.raw_path),
        canonical_query(req.query, presigned),
        canonical_headers(req, &signed)?,
        signed.join(";"),
        payload_hash
    );
    let scope = cred.scope();
    let key = signing_key(&secret, cred.date, cred.region, cred.service);
    let expected = hex::encode(hmac_sha256(
        &key,
        string_to_sign(amz_date, &scope, &canonical).as_bytes(),
    ));
    if !signatures_equal(&expected, signature) {
        tracing::debug!(canonical_request = %canonical, "SigV4 signature mismatch");
        return Err(signature_mismatch());
    }
    Ok(Verified {
        access_key: cred.access_key.to_string(),
        key,
        signature: signature.to_string(),
        amz_date: amz_date.to_string(),
        scope,
    })
}

/// Signs a request with an empty body in the `Authorization` header, for Hoard's own clients
/// (`hoard admin`): the headers to send (`host`, `x-amz-date`, `x-amz-content-sha256`,
/// `authorization`). `raw_path` is percent-encoded as it will be sent; `query` is decoded.
pub fn sign_empty_request(
    method: &str,
    host: &str,
    raw_path: &str,
    query: &[(String, String)],
    region: &str,
    access_key: &str,
    secret_key: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let empty_sha256 = sha256_hex(b"");
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{}\n{}\nhost:{host}\nx-amz-content-sha256:{empty_sha256}\nx-amz-date:{amz_date}\n\n{signed}\n{empty_sha256}",
        canonical_uri(raw_path),
        canonical_query(query, false),
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let key = signing_key(secret_key, date, region, "s3");
    let signature = hex::encode(hmac_sha256(
        &key,
        string_to_sign(amz_date, &scope, &canonical_request).as_bytes(),
    ));
    vec![
        ("host".into(), host.into()),
        ("x-amz-date".into(), amz_date.into()),
        ("x-amz-content-sha256".into(), empty_sha256),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={signed},Signature={signature}"
            ),
        ),
    ]
}

/// Verifies `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
/// for the server's `region`.
pub fn verify_header(
    req: &RequestView<'_>,
    creds: &Credentials,
    region: &str,
    now_secs: u64,
) -> S3Result<Auth> {
    let header = req.header("authorization");
    let fields = header.trim_start_matches("AWS4-HMAC-SHA256").trim();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in fields.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(s3_error!(
            AuthorizationHeaderMalformed,
            BAD_REQUEST,
            "the Authorization header needs Credential, SignedHeaders and Signature"
        ));
    };
    // The request time: `x-amz-date`, or else the `Date` header (SigV4 allows either, and
    // botocore signs with `Date` when the caller set one); the string to sign carries it in
    // ISO 8601 basic form either way.
    let date_header;
    let amz_date = match req.header("x-amz-date") {
        "" if !req.header("date").is_empty() => {
            date_header = crate::protocol::dates::parse_http_date(req.header("date"))
                .map(crate::protocol::dates::amz_date)
                .unwrap_or_default();
            date_header.as_str()
        }
        d => d,
    };
    let request_secs = parse_amz_date(amz_date).ok_or_else(|| {
        s3_error!(
            AccessDenied,
            FORBIDDEN,
            "AWS authentication requires a valid Date or x-amz-date header (x-amz-date: {:?}, Date: {:?})",
            req.header("x-amz-date"),
            req.header("date")
        )
    })?;
    check_skew(request_secs, now_secs)?;
    let payload_hash = req.header("x-amz-content-sha256");
    if payload_hash.is_empty() {
        return Err(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "missing required header x-amz-content-sha256"
        ));
    }
    let v = verify(
        req,
        creds,
        credential,
        signed_headers,
        signature,
        amz_date,
        payload_hash,
        false,
        region,
    )?;
    let streaming = |signed: bool, trailer: bool| {
        Payload::Streaming(StreamingAuth {
            signed,
            trailer,
            signing_key: v.key,
            seed_signature: v.signature.clone(),
            amz_date: v.amz_date.clone(),
            scope: v.scope.clone(),
        })
    };
    let payload = match payload_hash {
        UNSIGNED_PAYLOAD => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => streaming(true, false),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => streaming(true, true),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => streaming(false, true),
        h if is_sha256_hex(h) => Payload::Sha256(h.to_ascii_lowercase()),
        other => {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "unsupported x-amz-content-sha256 value {other:?}"
            ));
        }
    };
    Ok(Auth::of(creds, &v.access_key, SignedIn::Header, payload)?
        .signed(super::SIGV4, Some(request_secs)))
}

/// Verifies a presigned URL (`X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...`) for the
/// server's `region`.
pub fn verify_presigned(
    req: &RequestView<'_>,
    creds: &Credentials,
    region: &str,
    now_secs: u64,
) -> S3Result<Auth> {
    let param = |name: &str| {
        req.query(name).ok_or_else(|| {
            s3_error!(
                AuthorizationQueryParametersError,
                BAD_REQUEST,
                "presigned URL lacks {name}"
            )
        })
    };
    if param("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "X-Amz-Algorithm must be AWS4-HMAC-SHA256"
        ));
    }
    let amz_date = param("X-Amz-Date")?;
    let request_secs = parse_amz_date(amz_date).ok_or_else(|| {
        s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "X-Amz-Date is malformed: {amz_date:?}"
        )
    })?;
    let expires: u64 = param("X-Amz-Expires")?.parse().map_err(|_| {
        s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "X-Amz-Expires must be a number of seconds"
        )
    })?;
    if expires > MAX_PRESIGNED_EXPIRES_SECS {
        return Err(s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "X-Amz-Expires must be at most {MAX_PRESIGNED_EXPIRES_SECS} seconds"
        ));
    }
    if request_secs > now_secs + super::MAX_CLOCK_SKEW_SECS {
        return Err(s3_error!(
            RequestTimeTooSkewed,
            FORBIDDEN,
            "the presigned URL's X-Amz-Date is in the future"
        ));
    }
    // A lifetime of 0 s has ended when the request arrives (S3: 403, expired).
    if expires == 0 || now_secs > request_secs + expires {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "request has expired (X-Amz-Expires {expires} s from {amz_date})"
        ));
    }
    // A presigned URL signs no body, unless it fixes the body's SHA-256: in its query
    // (`X-Amz-Content-Sha256`) or as a signed `x-amz-content-sha256` header, whose value
    // botocore then puts on the canonical request's payload line (the S3 reference puts
    // UNSIGNED-PAYLOAD there; both are accepted). Either way the body must have that hash.
    let signed_headers = param("X-Amz-SignedHeaders")?;
    let signed_header_hash = signed_headers
        .split(';')
        .any(|h| h.eq_ignore_ascii_case("x-amz-content-sha256"))
        .then(|| req.header("x-amz-content-sha256"))
        .filter(|h| is_sha256_hex(h));
    let payload_lines: Vec<&str> = match req.query("X-Amz-Content-Sha256") {
        Some(h) => vec![h],
        None => signed_header_hash
            .into_iter()
            .chain([UNSIGNED_PAYLOAD])
            .collect(),
    };
    let mut verified = Err(signature_mismatch());
    for line in &payload_lines {
        verified = verify(
            req,
            creds,
            param("X-Amz-Credential")?,
            signed_headers,
            param("X-Amz-Signature")?,
            amz_date,
            line,
            true,
            region,
        );
        if verified.is_ok() {
            break;
        }
    }
    let v = verified?;
    let payload = match payload_lines
        .iter()
        .copied()
        .chain(signed_header_hash)
        .find(|h| is_sha256_hex(h))
    {
        Some(h) => Payload::Sha256(h.to_ascii_lowercase()),
        None => Payload::Unsigned,
    };
    Ok(Auth::of(creds, &v.access_key, SignedIn::Query, payload)?
        .signed(super::SIGV4, Some(request_secs)))
}

/// Whether `h` is a SHA-256 in hex (64 hex digits).
fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Signature of one `aws-chunked` chunk (Amazon S3 API Reference, "Signature Calculations for
/// the Authorization Header: Transferring Payload in Multiple Chunks").
pub fn chunk_signature(auth: &StreamingAuth, previous: &str, chunk_sha256_hex: &str) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{}\n{chunk_sha256_hex}",
        auth.amz_date,
        auth.scope,
        sha256_hex(b"")
    );
    hex::encode(hmac_sha256(&auth.signing_key, to_sign.as_bytes()))
}

/// Signature of the trailer of an `aws-chunked` body; `trailer` is its canonical form
/// (`name:value\n` per trailing header).
pub fn trailer_signature(auth: &StreamingAuth, previous: &str, trailer: &str) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{previous}\n{}",
        auth.amz_date,
        auth.scope,
        sha256_hex(trailer.as_bytes())
    );
    hex::encode(hmac_sha256(&auth.signing_key, to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method};

    /// The example "GET Object" from the SigV4 header documentation.
    #[test]
    fn aws_documentation_example_verifies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        headers.insert("range", HeaderValue::from_static("bytes=0-9"));
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        );
        let creds = Credentials::single(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "000000000001",
        );
        let req = RequestView {
            method: &Method::GET,
            raw_path: "/test.txt",
            query: &[],
            headers: &headers,
            vhost_bucket: Some("examplebucket"),
        };
        let now = parse_amz_date("20130524T000100Z").unwrap();
        let auth = verify_header(&req, &creds, "us-east-1", now).unwrap();
        assert_eq!(auth.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(auth.account_id, "000000000001");
        let wrong = Credentials::single("AKIAIOSFODNN7EXAMPLE", "not-the-secret", "000000000001");
        assert_eq!(
            verify_header(&req, &wrong, "us-east-1", now)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            verify_header(&req, &creds, "us-east-1", now + 3600)
                .unwrap_err()
                .code,
            "RequestTimeTooSkewed"
        );
        // The scope names us-east-1: a server in another region refuses it, naming its own.
        let err = verify_header(&req, &creds, "eu-west-1", now).unwrap_err();
        assert_eq!(err.code, "AuthorizationHeaderMalformed");
        assert!(err.message.contains("expecting 'eu-west-1'"), "{err}");
        // An x-amz-* header outside SignedHeaders is refused, even with a valid signature.
        let mut added = headers.clone();
        added.insert("x-amz-meta-evil", HeaderValue::from_static("1"));
        let req2 = RequestView {
            headers: &added,
            ..req
        };
        let err = verify_header(&req2, &creds, "us-east-1", now).unwrap_err();
        assert_eq!(err.code, "AccessDenied");
        assert!(err.message.contains("x-amz-meta-evil"), "{err}");
    }

    /// What `sign_empty_request` signs, the verifier accepts (and nothing else).
    #[test]
    fn signed_requests_verify() {
        let creds = Credentials::single("AKID", "secret", "000000000001");
        let query = vec![("name".to_string(), "a b+c@d".to_string())];
        let signed = sign_empty_request(
            "POST",
            "127.0.0.1:9000",
            "/_hoard/accounts",
            &query,
            "us-east-1",
            "AKID",
            "secret",
            "20261126T070000Z",
        );
        let mut headers = HeaderMap::new();
        for (k, v) in &signed {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = RequestView {
            method: &Method::POST,
            raw_path: "/_hoard/accounts",
            query: &query,
            headers: &headers,
            vhost_bucket: None,
        };
        let now = parse_amz_date("20261126T070000Z").unwrap();
        assert_eq!(
            verify_header(&req, &creds, "us-east-1", now)
                .unwrap()
                .access_key,
            "AKID"
        );
        let other_query = vec![("name".to_string(), "other".to_string())];
        let req = RequestView {
            query: &other_query,
            ..req
        };
        assert_eq!(
            verify_header(&req, &creds, "us-east-1", now)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
    }

    /// The seed and first chunk signature of the documentation's streaming PUT example.
    #[test]
    fn aws_documentation_chunk_signature() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        let auth = StreamingAuth {
            signed: true,
            trailer: false,
            signing_key: key,
            seed_signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
                .into(),
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
        };
        let chunk = vec![b'a'; 65536];
        let sig = chunk_signature(&auth, &auth.seed_signature, &sha256_hex(&chunk));
        assert_eq!(
            sig,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
    }
}
