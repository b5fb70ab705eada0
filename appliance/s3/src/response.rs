//! Responses: S3 error documents, XML documents, the answer to a stored body, and the date
//! formats S3 uses.
//!
//! Must not import `auth` or anything above it (`ops`, `request`, `state`, `body` or `server`).

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
