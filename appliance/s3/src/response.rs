//! Responses: S3 error documents, XML documents, the answer to a stored body, and the date
//! formats S3 uses.

use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use crate::error::{S3Error, S3Result};
use crate::s3_error;
use crate::xml;

/// An S3 error document (Amazon S3 API Reference, "Error responses").
pub fn error_response(e: &S3Error, resource: &str, request_id: &str, head: bool) -> Response {
    // SlowDown is a client over its limit, not a fault of ours.
    if e.status.is_server_error() && e.code != "SlowDown" {
        tracing::error!(code = e.code, message = %e.message, resource, "request failed");
    } else {
        tracing::debug!(code = e.code, message = %e.message, resource, "request refused");
    }
    let body = if head {
        Body::empty()
    } else {
        let mut x = xml::XmlBuilder::bare("Error");
        x.elem("Code", e.code)
            .elem("Message", &e.message)
            .elem("Resource", resource)
            .elem("RequestId", request_id);
        Body::from(x.finish("Error"))
    };
    let mut response = Response::builder()
        .status(e.status)
        .header("content-type", "application/xml");
    for (name, value) in &e.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A 200 response with an XML document.
pub fn xml_response(doc: Vec<u8>) -> S3Result<Response> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/xml")
        .body(Body::from(doc))
        .map_err(|e| {
            s3_error!(
                InternalError,
                INTERNAL_SERVER_ERROR,
                "building response: {e}"
            )
        })
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
    fn dates_format() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_369_353_600_123), "2013-05-24T00:00:00.123Z");
    }
}
