//! Percent-encoding as S3 uses it: SigV4's URI encoding (RFC 3986 unreserved characters
//! kept) and the decoding of a query string into (name, value) pairs.
//!
//! Must not import anything of this crate but `error`.

use crate::error::S3Result;
use crate::s3_error;

/// SigV4 URI encoding: every byte but `A-Za-z0-9-._~` as `%XX` (upper-case), `/` kept if asked.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode_component(s: &str, what: &str) -> S3Result<String> {
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

/// Splits a query string into percent-decoded (name, value) pairs, in order.
///
/// Errors: InvalidURI for a component that is not UTF-8 once decoded.
pub fn parse_query(raw: &str) -> S3Result<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k, "query")?, decode_component(v, "query")?))
        })
        .collect()
}
