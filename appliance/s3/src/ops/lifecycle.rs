//! `?lifecycle` on a bucket: GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration
//! and DeleteBucketLifecycle (the rules and their worker are in [`crate::lifecycle`]).
//!
//! Must not import `server` or the other operation files; the rules and the worker are in
//! `crate::lifecycle`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use crate::engine::blocking;
use crate::error::S3Result;
use crate::lifecycle::{Lifecycle, LIFECYCLE_ATTRIBUTE};
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;

/// `GET /<bucket>?lifecycle` (404 NoSuchLifecycleConfiguration without rules).
pub(super) fn get(ctx: &Ctx) -> S3Result<Response> {
    match Lifecycle::of(&ctx.access().attributes)? {
        Some(l) => xml_response(l.to_xml()),
        None => Err(s3_error!(
            NoSuchLifecycleConfiguration,
            NOT_FOUND,
            "bucket {} has no lifecycle configuration",
            ctx.bucket()
        )),
    }
}

/// `PUT /<bucket>?lifecycle` (the rules replace any before) and `DELETE`.
pub(super) async fn put(mut ctx: Ctx, delete: bool) -> S3Result<Response> {
    let value = match delete {
        true => None,
        false => {
            let body = ctx.small_body(crate::xml::MAX_XML_REQUEST_BYTES).await?;
            let rules = Lifecycle::from_xml(&body)?;
            Some(serde_json::to_vec(&rules).expect("rules serialise"))
        }
    };
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    blocking(move || store.set_bucket_attribute(&bucket, LIFECYCLE_ATTRIBUTE, value.as_deref()))
        .await?;
    Response::builder()
        .status(if delete {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        })
        .body(Body::empty())
        .map_err(bad_header)
}
