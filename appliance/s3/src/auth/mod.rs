//! Authentication: who sent a request, and how its body is signed; then what they may do.
//!
//! Who: [`principals`] (accounts, users, access keys, temporary credentials; secrets sealed by
//! [`seal`]). What: [`access`] decides every request from the bucket's [`policy`] and the
//! [`acl`]s. A request with no signature is an anonymous caller.
//!
//! Schemes (Amazon S3 API Reference, "Authenticating Requests"): SigV4 in the Authorization
//! header ([`sigv4`]), SigV4 presigned query URLs, SigV2 header and SigV2 presigned query URLs
//! ([`sigv2`]: boto3's `generate_presigned_url` default). Streaming (`aws-chunked`) body
//! signatures are checked while the body is read (`s3::body`), with the seed signature and signing
//! key returned here.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`: authentication reads a
//! request's head as a [`RequestView`] and knows no operation; below it only `protocol`,
//! `response`, `xml` and `error`.

pub mod access;
pub mod acl;
pub mod policy;
pub mod principals;
pub mod seal;
pub mod sigv2;
pub mod sigv4;

use axum::http::{HeaderMap, Method};

pub use principals::Credentials;

use crate::error::{S3Error, S3Result};
use crate::protocol::dates::{parse_amz_date, parse_http_date};
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

/// Where a request carried its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedIn {
    /// The `Authorization` header (SigV4 or SigV2).
    Header,
    /// The query string (a presigned URL, SigV4 or SigV2).
    Query,
}

/// The authenticated caller and how to verify the body.
#[derive(Clone, Debug)]
pub struct Auth {
    /// No signature: an anonymous caller (access key, account and user are empty).
    pub anonymous: bool,
    /// Access key ID.
    pub access_key: String,
    /// The account the key belongs to (owner of what it creates).
    pub account_id: String,
    /// The user the key belongs to.
    pub user: String,
    /// The key may call admin requests (those on its own account only, unless it is also a
    /// store admin).
    pub admin: bool,
    /// An admin user of the root account: may make every admin request, on every account.
    pub store_admin: bool,
    /// Where the signature was.
    pub signed_in: SignedIn,
    /// Body protection.
    pub payload: Payload,
    /// How it was signed: `AWS` (SigV2) or `AWS4-HMAC-SHA256` (SigV4), as the policy key
    /// `s3:signatureversion` names it; empty for an anonymous caller.
    pub signature_version: &'static str,
    /// When it was signed (Unix seconds), if the signature says (`s3:signatureAge`).
    pub signed_at_secs: Option<u64>,
    /// Signed by a browser POST form's policy (`s3:authType` `POST`).
    pub signed_in_form: bool,
}

/// `s3:signatureversion` of SigV2.
pub const SIGV2: &str = "AWS";
/// `s3:signatureversion` of SigV4.
pub const SIGV4: &str = "AWS4-HMAC-SHA256";

impl Auth {
    /// A caller with no signature (allowed what policies and ACLs grant to everyone).
    pub fn anonymous() -> Auth {
        Auth {
            anonymous: true,
            access_key: String::new(),
            account_id: String::new(),
            user: String::new(),
            admin: false,
            store_admin: false,
            signed_in: SignedIn::Header,
            payload: Payload::Unsigned,
            signature_version: "",
            signed_at_secs: None,
            signed_in_form: false,
        }
    }

    /// The same caller, recorded as signed with `version` at `at_secs`.
    pub(crate) fn signed(mut self, version: &'static str, at_secs: Option<u64>) -> Auth {
        self.signature_version = version;
        self.signed_at_secs = at_secs;
        self
    }

    /// `s3:authType`: `REST-HEADER`, `REST-QUERY-STRING` or `POST`; none when anonymous.
    pub fn auth_type(&self) -> Option<&'static str> {
        match (self.anonymous, self.signed_in_form, self.signed_in) {
            (true, _, _) => None,
            (false, true, _) => Some("POST"),
            (false, false, SignedIn::Header) => Some("REST-HEADER"),
            (false, false, SignedIn::Query) => Some("REST-QUERY-STRING"),
        }
    }

    /// The caller `access_key` of `creds`, signed in `signed_in`, its body protected by `payload`.
    ///
    /// Errors: InvalidAccessKeyId.
    pub(crate) fn of(
        creds: &Credentials,
        access_key: &str,
        signed_in: SignedIn,
        payload: Payload,
    ) -> S3Result<Auth> {
        let p = creds.principal(access_key)?;
        Ok(Auth {
            anonymous: false,
            access_key: access_key.to_string(),
            store_admin: p.admin && p.account_id == creds.root_account(),
            account_id: p.account_id,
            user: p.user,
            admin: p.admin,
            signed_in,
            payload,
            signature_version: "",
            signed_at_secs: None,
            signed_in_form: false,
        })
    }
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

/// Authenticates a request with whichever scheme it uses. `region` is the server's: a SigV4
/// credential scope must name it and the service `s3`.
///
/// A request with no signature at all is an anonymous caller (what it may do is decided by
/// [`access`]).
///
/// Errors: AccessDenied (expired, no date, unsigned `x-amz-*` headers),
/// InvalidAccessKeyId, SignatureDoesNotMatch, RequestTimeTooSkewed,
/// AuthorizationHeaderMalformed (also a wrong region or service in the scope),
/// AuthorizationQueryParametersError, InvalidArgument (both header and query auth);
/// InvalidToken and ExpiredToken for a temporary credential's session token (see
/// [`Credentials::check_session`]).
pub fn authenticate(
    req: &RequestView<'_>,
    creds: &Credentials,
    region: &str,
    now_secs: u64,
) -> S3Result<Auth> {
    let authorization = req.header("authorization");
    let query_auth = req.query("X-Amz-Algorithm").is_some()
        || req.query("X-Amz-Signature").is_some()
        || req.query("AWSAccessKeyId").is_some()
        || req.query("Signature").is_some();
    if !authorization.is_empty() && query_auth {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"
        ));
    }
    let auth = if authorization.starts_with("AWS4-HMAC-SHA256") {
        sigv4::verify_header(req, creds, region, now_secs)
    } else if let Some(rest) = authorization.strip_prefix("AWS ") {
        sigv2::verify_header(req, rest, creds, now_secs)
    } else if req.query("X-Amz-Algorithm").is_some() {
        sigv4::verify_presigned(req, creds, region, now_secs)
    } else if req.query("AWSAccessKeyId").is_some() && req.query("Signature").is_some() {
        sigv2::verify_presigned(req, creds, now_secs)
    } else if query_auth {
        Err(s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "query authentication needs X-Amz-Algorithm (SigV4) or AWSAccessKeyId, Expires and Signature (SigV2)"
        ))
    } else if !authorization.is_empty() {
        Err(s3_error!(
            AuthorizationHeaderMalformed,
            BAD_REQUEST,
            "unsupported Authorization scheme"
        ))
    } else {
        // No signature at all: an anonymous caller, allowed what policies and ACLs grant to
        // everyone (see `access`).
        return Ok(Auth::anonymous());
    }?;
    // A temporary credential's session token: signed as a header, or in a presigned URL.
    // (SigV2 presigned URLs carry it as `x-amz-security-token`, signed among the x-amz-*.)
    let token = match req.header("x-amz-security-token") {
        "" => req
            .query("X-Amz-Security-Token")
            .or_else(|| req.query("x-amz-security-token"))
            .unwrap_or(""),
        t => t,
    };
    creds.check_session(&auth.access_key, token, now_secs)?;
    Ok(auth)
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

/// Request time from `x-amz-date` or `Date`, in Unix seconds: ISO 8601 basic
/// (`20261125T215635Z`) or any HTTP date form S3 accepts (see [`parse_http_date`]).
///
/// An `x-amz-date` that is present decides alone: an empty or malformed one is no request time
/// (S3 then answers AccessDenied), even beside a valid `Date`.
pub fn request_time(req: &RequestView<'_>) -> Option<u64> {
    if req.headers.contains_key("x-amz-date") {
        let amz = req.header("x-amz-date");
        return parse_amz_date(amz).or_else(|| parse_http_date(amz));
    }
    parse_http_date(req.header("date"))
}
