//! AWS Signature Version 2 (Amazon S3 Developer Guide, "Signing and Authenticating REST
//! Requests"): `Authorization: AWS AKID:signature` and presigned query URLs
//! (`AWSAccessKeyId`, `Expires`, `Signature`), still produced by boto3's
//! `generate_presigned_url` for us-east-1 and by legacy boto and `s3cmd --signature-v2`.
//!
//! Must not import `ops`, `request`, `state`, `body` or `server`, nor the authorization files
//! (`access`, `acl`, `policy`).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::sigv4::MAX_PRESIGNED_EXPIRES_SECS;
use super::{
    check_skew, request_time, signature_mismatch, signatures_equal, Auth, Credentials, Payload,
    RequestView, SignedIn,
};
use crate::error::S3Result;
use crate::s3_error;

/// Query parameters S3 itself leaves out of the SigV2 string to sign: they page and filter a
/// listing, never select another operation, and SigV2 clients send them unsigned.
const UNSIGNED_LISTING_PARAMETERS: &[&str] = &[
    "bucket-region",
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "list-type",
    "marker",
    "max-buckets",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "prefix",
    "start-after",
    "upload-id-marker",
    "version-id-marker",
    "x-id",
];

/// The parameters of a SigV2 presigned URL itself.
const QUERY_AUTH_PARAMETERS: &[&str] = &[
    "AWSAccessKeyId",
    "Expires",
    "Signature",
    "x-amz-security-token",
];

/// SigV2 signs only S3's list of sub-resources ([`SUBRESOURCES`]): a signature seen once could
/// be replayed within the skew window with any other parameter added. So a SigV2 request may
/// carry no query parameter outside that list but the listing ones S3 leaves unsigned, and no
/// admin request (they take parameters SigV2 cannot sign: SigV4 only).
///
/// Errors: AccessDenied naming the parameter.
fn refuse_unsigned_parameters(req: &RequestView<'_>, presigned: bool) -> S3Result<()> {
    if req.vhost_bucket.is_none() && req.raw_path.starts_with("/_hoard/") {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "admin requests must be signed with SigV4 in the Authorization header; SigV2 does not sign their parameters"
        ));
    }
    let unsigned = req.query.iter().map(|(k, _)| k.as_str()).find(|k| {
        !SUBRESOURCES.contains(k)
            && !UNSIGNED_LISTING_PARAMETERS.contains(k)
            && !(presigned && (QUERY_AUTH_PARAMETERS.contains(k) || is_amz(k)))
    });
    match unsigned {
        Some(k) => Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "SigV2 does not sign the query parameter {k:?}; sign this request with SigV4"
        )),
        None => Ok(()),
    }
}

fn is_amz(name: &str) -> bool {
    // Bytes, not a str slice: a name may have a multi-byte character at byte 6 (found by
    // fuzz/fuzz_targets/request_head.rs).
    name.len() > 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-")
}

/// Sub-resources that are part of the string to sign, in sorted order.
const SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The date line of the string to sign. A header signature signs `Date`, or an empty line when
/// `x-amz-date` is present (it is then signed among the `x-amz-*` headers). A presigned URL
/// always signs `Expires`: were its line empty too, a header signature seen once could be
/// replayed as a presigned URL with any `Expires`.
enum DateLine<'a> {
    Header,
    Expires(&'a str),
}

/// The strings a client may have signed: S3 names a bucket as `/bucket/` (botocore signs that
/// while sending `/bucket`); older clients sign the path as sent. Both are accepted.
fn strings_to_sign(req: &RequestView<'_>, date: DateLine<'_>) -> Vec<String> {
    let date_line = match date {
        DateLine::Expires(expires) => expires,
        DateLine::Header if req.headers.contains_key("x-amz-date") => "",
        DateLine::Header => req.header("date"),
    };
    let presigned = matches!(date, DateLine::Expires(_));
    let as_sent = string_to_sign(req, date_line, req.raw_path, presigned);
    let path = req.raw_path.strip_prefix('/').unwrap_or(req.raw_path);
    if req.vhost_bucket.is_none() && !path.is_empty() && !path.contains('/') {
        vec![
            string_to_sign(req, date_line, &format!("{}/", req.raw_path), presigned),
            as_sent,
        ]
    } else {
        vec![as_sent]
    }
}

fn verify_any(secret: &str, candidates: &[String], signature: &str) -> bool {
    candidates
        .iter()
        .any(|c| signatures_equal(&sign(secret, c), signature))
}

/// The string to sign; a presigned URL's `x-amz-*` query parameters count as headers (botocore
/// signs a temporary credential's token as a header, then sends it in the query).
fn string_to_sign(
    req: &RequestView<'_>,
    date_line: &str,
    raw_path: &str,
    presigned: bool,
) -> String {
    let mut amz: Vec<(String, String)> = Vec::new();
    let headers = req.headers.iter().map(|(n, v)| {
        (
            n.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()),
        )
    });
    let query = req
        .query
        .iter()
        .filter(|(k, _)| presigned && is_amz(k))
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                std::borrow::Cow::Borrowed(v.as_str()),
            )
        });
    for (name, value) in headers.chain(query) {
        let name = name.as_str();
        if name.starts_with("x-amz-") {
            let value = value.trim().to_string();
            match amz.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(&value);
                }
                None => amz.push((name.to_string(), value)),
            }
        }
    }
    amz.sort();
    let mut resource = String::new();
    if let Some(bucket) = req.vhost_bucket {
        resource.push('/');
        resource.push_str(bucket);
    }
    resource.push_str(raw_path);
    let mut subs: Vec<&(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort();
    for (i, (k, v)) in subs.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(k);
        if !v.is_empty() {
            resource.push('=');
            resource.push_str(v);
        }
    }
    let mut out = format!(
        "{}\n{}\n{}\n{}\n",
        req.method.as_str(),
        req.header("content-md5"),
        req.header("content-type"),
        date_line
    );
    for (n, v) in amz {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push_str(&resource);
    out
}

pub(crate) fn sign(secret: &str, to_sign: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies `Authorization: AWS AKID:signature` (`rest` is what follows `AWS `).
pub fn verify_header(
    req: &RequestView<'_>,
    rest: &str,
    creds: &Credentials,
    now_secs: u64,
) -> S3Result<Auth> {
    refuse_unsigned_parameters(req, false)?;
    let (access_key, signature) = rest.split_once(':').ok_or_else(|| {
        s3_error!(
            AuthorizationHeaderMalformed,
            BAD_REQUEST,
            "SigV2 Authorization must be 'AWS AccessKeyId:Signature'"
        )
    })?;
    let secret = creds.secret(access_key)?;
    let request_secs = request_time(req).ok_or_else(|| {
        s3_error!(
            AccessDenied,
            FORBIDDEN,
            "AWS authentication requires a valid Date or x-amz-date header"
        )
    })?;
    check_skew(request_secs, now_secs)?;
    if !verify_any(
        &secret,
        &strings_to_sign(req, DateLine::Header),
        signature.trim(),
    ) {
        return Err(signature_mismatch());
    }
    Ok(
        Auth::of(creds, access_key, SignedIn::Header, Payload::Unsigned)?
            .signed(super::SIGV2, Some(request_secs)),
    )
}

/// Verifies a SigV2 presigned URL. `Expires` is always signed and may lie at most
/// [`MAX_PRESIGNED_EXPIRES_SECS`] ahead (7 days, as SigV4's `X-Amz-Expires`).
pub fn verify_presigned(
    req: &RequestView<'_>,
    creds: &Credentials,
    now_secs: u64,
) -> S3Result<Auth> {
    refuse_unsigned_parameters(req, true)?;
    let access_key = req.query("AWSAccessKeyId").unwrap_or_default();
    let signature = req.query("Signature").unwrap_or_default();
    let expires = req.query("Expires").unwrap_or_default();
    let expires_secs: u64 = expires.parse().map_err(|_| {
        s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "Expires must be a Unix time in seconds"
        )
    })?;
    if now_secs > expires_secs {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "request has expired (Expires {expires_secs})"
        ));
    }
    if expires_secs > now_secs + MAX_PRESIGNED_EXPIRES_SECS {
        return Err(s3_error!(
            AuthorizationQueryParametersError,
            BAD_REQUEST,
            "Expires {expires_secs} is more than {MAX_PRESIGNED_EXPIRES_SECS} seconds (7 days) from now"
        ));
    }
    let secret = creds.secret(access_key)?;
    if !verify_any(
        &secret,
        &strings_to_sign(req, DateLine::Expires(expires)),
        signature,
    ) {
        return Err(signature_mismatch());
    }
    Ok(Auth::of(creds, access_key, SignedIn::Query, Payload::Unsigned)?.signed(super::SIGV2, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method};

    #[test]
    fn query_names_of_any_characters_are_judged_without_panicking() {
        assert!(is_amz("X-Amz-Security-Token"));
        assert!(!is_amz("x-amz-"));
        assert!(!is_amz("AWSAcc\u{e9}ssKeyId"));
        assert!(!is_amz("x-am\u{e9}z-token"));
    }

    /// The "Object GET" example of the SigV2 documentation.
    #[test]
    fn aws_documentation_example() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_static("johnsmith.s3.amazonaws.com"),
        );
        headers.insert(
            "date",
            HeaderValue::from_static("Tue, 27 Mar 2007 19:36:42 +0000"),
        );
        let req = RequestView {
            method: &Method::GET,
            raw_path: "/photos/puppy.jpg",
            query: &[],
            headers: &headers,
            vhost_bucket: Some("johnsmith"),
        };
        let to_sign = string_to_sign(&req, "Tue, 27 Mar 2007 19:36:42 +0000", req.raw_path, false);
        assert_eq!(
            to_sign,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
        );
        assert_eq!(
            sign("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &to_sign),
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU="
        );
    }

    fn view<'a>(
        headers: &'a HeaderMap,
        query: &'a [(String, String)],
        method: &'a Method,
    ) -> RequestView<'a> {
        RequestView {
            method,
            raw_path: "/bucket/key",
            query,
            headers,
            vhost_bucket: None,
        }
    }

    /// A header signature over `x-amz-date` (s3cmd's form) cannot be replayed as a presigned URL
    /// with a far `Expires`: the presigned string to sign always carries `Expires`.
    #[test]
    fn a_header_signature_cannot_be_replayed_as_a_presigned_url() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let creds = Credentials::single("AKID", secret, "000000000001");
        let now = 1_795_643_795;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-date",
            HeaderValue::from_static("Wed, 25 Nov 2026 21:56:35 +0000"),
        );
        let method = Method::DELETE;
        let to_sign = strings_to_sign(&view(&headers, &[], &method), DateLine::Header);
        let signature = sign(secret, &to_sign[0]);
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("AWS AKID:{signature}")).unwrap(),
        );
        let v = view(&headers, &[], &method);
        assert!(verify_header(&v, &format!("AKID:{signature}"), &creds, now).is_ok());
        // Replayed two days later as a presigned URL, with and without the x-amz-date header.
        let later = now + 2 * 86_400;
        for with_date in [true, false] {
            let mut h = HeaderMap::new();
            if with_date {
                h.insert("x-amz-date", headers["x-amz-date"].clone());
            }
            for expires in [later + 60, 9_999_999_999] {
                let q = vec![
                    ("AWSAccessKeyId".to_string(), "AKID".to_string()),
                    ("Expires".to_string(), expires.to_string()),
                    ("Signature".to_string(), signature.clone()),
                ];
                let err = verify_presigned(&view(&h, &q, &method), &creds, later).unwrap_err();
                assert!(
                    ["SignatureDoesNotMatch", "AuthorizationQueryParametersError"]
                        .contains(&err.code),
                    "{err}"
                );
            }
        }
        // A presigned URL made properly verifies, and one beyond 7 days is refused.
        let expires = (later + 600).to_string();
        let q = |sig: &str, exp: &str| {
            vec![
                ("AWSAccessKeyId".to_string(), "AKID".to_string()),
                ("Expires".to_string(), exp.to_string()),
                ("Signature".to_string(), sig.to_string()),
            ]
        };
        let empty = HeaderMap::new();
        let good = sign(
            secret,
            &strings_to_sign(&view(&empty, &[], &method), DateLine::Expires(&expires))[0],
        );
        let auth =
            verify_presigned(&view(&empty, &q(&good, &expires), &method), &creds, later).unwrap();
        assert_eq!(auth.signed_in, SignedIn::Query);
        let far = (later + 8 * 86_400).to_string();
        let far_sig = sign(
            secret,
            &strings_to_sign(&view(&empty, &[], &method), DateLine::Expires(&far))[0],
        );
        assert_eq!(
            verify_presigned(&view(&empty, &q(&far_sig, &far), &method), &creds, later)
                .unwrap_err()
                .code,
            "AuthorizationQueryParametersError"
        );
    }
}
