//! Authentication: who sent a request, and how its body is signed.
//!
//! Schemes (Amazon S3 API Reference, "Authenticating Requests"): SigV4 in the Authorization
//! header ([`sigv4`]), SigV4 presigned query URLs, SigV2 header and SigV2 presigned query URLs
//! ([`sigv2`]: boto3's `generate_presigned_url` default). Streaming (`aws-chunked`) body
//! signatures are checked while the body is read (`s3::body`), with the seed signature and signing
//! key returned here.

pub mod principals;
pub mod sigv2;
pub mod sigv4;

use axum::http::{HeaderMap, Method};

pub use principals::Credentials;

use crate::error::{S3Error, S3Result};
use crate::s3_error;

/// Largest allowed clock difference between client and server (S3: 15 minutes).
pub const MAX_CLOCK_SKEW_SECS: u64 = 15 * 60;

/// How the request body is protected.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Not signed (`UNSIGNED-PAYLOAD`, SigV2, presigned URLs).
    Unsigned,
    /// Signed by its SHA-256 (lower-case hex), verified when the body ends.
    Sha256(String),
    /// `aws-chunked` body (`STREAMING-...`).
    Streaming(StreamingAuth),
}

/// What verifying an `aws-chunked` body needs.
#[derive(Clone, Debug)]
pub struct StreamingAuth {
    /// Chunks carry signatures (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`).
    pub signed: bool,
    /// A trailer with checksums follows the last chunk (`...-TRAILER`).
    pub trailer: bool,
    /// SigV4 signing key (for chunk signatures).
    pub signing_key: [u8; 32],
    /// The request signature: the seed of the chunk signature chain.
    pub seed_signature: String,
    /// `x-amz-date` of the request.
    pub amz_date: String,
    /// Credential scope `date/region/s3/aws4_request`.
    pub scope: String,
}

/// The authenticated caller and how to verify the body.
#[derive(Clone, Debug)]
pub struct Auth {
    /// Access key ID.
    pub access_key: String,
    /// Body protection.
    pub payload: Payload,
}

/// What the authenticators read from a request.
pub struct RequestView<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Path exactly as sent (percent-encoded).
    pub raw_path: &'a str,
    /// Query pairs, percent-decoded, in order.
    pub query: &'a [(String, String)],
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Bucket named by the Host header (virtual-host style), if any.
    pub vhost_bucket: Option<&'a str>,
}

impl RequestView<'_> {
    /// A header as a string ("" if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A query parameter, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Authenticates a request with whichever scheme it uses.
///
/// Errors: AccessDenied (anonymous or expired), InvalidAccessKeyId, SignatureDoesNotMatch,
/// RequestTimeTooSkewed, AuthorizationHeaderMalformed, AuthorizationQueryParametersError.
pub fn authenticate(req: &RequestView<'_>, creds: &Credentials, now_secs: u64) -> S3Result<Auth> {
    let authorization = req.header("authorization");
    if authorization.starts_with("AWS4-HMAC-SHA256") {
        sigv4::verify_header(req, creds, now_secs)
    } else if let Some(rest) = authorization.strip_prefix("AWS ") {
        sigv2::verify_header(req, rest, creds, now_secs)
    } else if req.query("X-Amz-Algorithm").is_some() {
        sigv4::verify_presigned(req, creds, now_secs)
    } else if req.query("AWSAccessKeyId").is_some() && req.query("Signature").is_some() {
        sigv2::verify_presigned(req, creds, now_secs)
    } else if !authorization.is_empty() {
        Err(s3_error!(
            AuthorizationHeaderMalformed,
            BAD_REQUEST,
            "unsupported Authorization scheme"
        ))
    } else {
        Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "anonymous requests are not allowed; sign the request"
        ))
    }
}

/// Compares two signatures in constant time.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn signature_mismatch() -> S3Error {
    s3_error!(
        SignatureDoesNotMatch,
        FORBIDDEN,
        "the request signature we calculated does not match the signature you provided; check your key and signing method"
    )
}

pub(crate) fn check_skew(request_secs: u64, now_secs: u64) -> S3Result<()> {
    if request_secs.abs_diff(now_secs) > MAX_CLOCK_SKEW_SECS {
        return Err(s3_error!(
            RequestTimeTooSkewed,
            FORBIDDEN,
            "the difference between the request time and the server's time is too large (over {MAX_CLOCK_SKEW_SECS} s)"
        ));
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 basic timestamp `YYYYMMDDTHHMMSSZ` (x-amz-date) into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    u64::try_from(days * 86_400 + (h * 3600 + mi * 60 + se) as i64).ok()
}

/// Request time from `x-amz-date` or `Date` (RFC 1123), in Unix seconds.
pub fn request_time(req: &RequestView<'_>) -> Option<u64> {
    let amz = req.header("x-amz-date");
    if !amz.is_empty() {
        return parse_amz_date(amz).or_else(|| parse_http_date(amz));
    }
    parse_http_date(req.header("date"))
}

fn parse_http_date(s: &str) -> Option<u64> {
    httpdate::parse_http_date(s)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_amz_date("2013052T000000Z"), None);
        assert_eq!(parse_amz_date("20131324T000000Z"), None);
    }
}
