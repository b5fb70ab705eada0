//! Tags (S3 User Guide, "Categorizing your storage using tags"; API Reference,
//! PutObjectTagging, PutBucketTagging): key-value pairs on objects (`x-amz-tagging` on
//! PutObject and CreateMultipartUpload, `?tagging` GET/PUT/DELETE, `x-amz-tagging-count` on
//! GET and HEAD) and on buckets (`?tagging` on the bucket).
//!
//! An object's tags live with its version as the stored header [`OBJECT_TAGGING_HEADER`]
//! (the tag set URL-encoded, `k1=v1&k2=v2`), so an overwrite replaces them and a delete
//! removes them; `?tagging` PUT rewrites them in place. A bucket's are the bucket attribute
//! `tagging` (the same encoding). S3's limits hold: at most 10 tags on an object and 50 on a
//! bucket, keys of 1 to 128 characters and values of at most 256, keys unique, no `aws:`
//! prefix.
//!
//! Must not import `server` or the other operation files; the tag set itself is
//! `protocol::tags`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use crate::engine::blocking;
use crate::error::S3Result;
use crate::protocol::tags::{
    check, decode, encode, of_headers, parse_tagging, tagging_xml, TagSet,
    BUCKET_TAGGING_ATTRIBUTE, MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, OBJECT_TAGGING_HEADER,
};
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;

/// The `x-amz-tagging` header of a create request, checked, as the stored header to keep.
///
/// Errors: as [`check`] and [`decode`].
pub fn from_header(ctx: &Ctx) -> S3Result<Option<(String, String)>> {
    let Some(value) = ctx.header("x-amz-tagging") else {
        return Ok(None);
    };
    let tags = decode(value)?;
    check(&tags, MAX_OBJECT_TAGS)?;
    Ok((!tags.is_empty()).then(|| (OBJECT_TAGGING_HEADER.to_string(), encode(&tags))))
}

async fn body_tags(ctx: &mut Ctx, max: usize) -> S3Result<TagSet> {
    let body = ctx.small_body(64 * 1024).await?;
    let tags = parse_tagging(&body)?;
    check(&tags, max)?;
    Ok(tags)
}

fn no_content() -> S3Result<Response> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(bad_header)
}

/// `GET /<bucket>/<key>?tagging`.
pub(super) async fn get_object(ctx: Ctx) -> S3Result<Response> {
    let info = ctx.readable_version().await?;
    let mut resp = xml_response(tagging_xml(&of_headers(&info.headers)?))?;
    ctx.add_version_header(info.version, resp.headers_mut());
    Ok(resp)
}

/// `PUT /<bucket>/<key>?tagging` (a `Tagging` document) and `DELETE` (`tags` `None`).
pub(super) async fn put_object(mut ctx: Ctx, delete: bool) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let value = match delete {
        true => None,
        false => {
            let tags = body_tags(&mut ctx, MAX_OBJECT_TAGS).await?;
            // A bucket policy on the tags set (`s3:RequestObjectTag/<key>`) is decided now
            // that the body names them; `ops::authorize` refused callers nothing could allow.
            if ctx
                .access()
                .policy
                .as_ref()
                .is_some_and(|p| p.uses_request_tags())
            {
                ctx.request_tags = Some(tags.clone());
                super::authorize_again(&mut ctx)?;
            }
            Some(tags).filter(|t| !t.is_empty()).map(|t| encode(&t))
        }
    };
    let info = ctx.readable_version().await?;
    let changes = vec![(OBJECT_TAGGING_HEADER.to_string(), value)];
    blocking(move || store.update_object_headers(&bucket, &key, Some(info.version), &changes))
        .await?;
    let mut resp = match delete {
        true => no_content()?,
        false => Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .map_err(bad_header)?,
    };
    // S3 names the version whose tags these are.
    ctx.add_version_header(info.version, resp.headers_mut());
    Ok(resp)
}

/// `GET /<bucket>?tagging` (404 NoSuchTagSet without tags).
pub(super) async fn get_bucket(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let (_, attributes) = blocking(move || store.bucket_attributes(&bucket)).await?;
    match attributes
        .iter()
        .find(|(n, _)| n == BUCKET_TAGGING_ATTRIBUTE)
    {
        Some((_, v)) => xml_response(tagging_xml(&decode(&String::from_utf8_lossy(v))?)),
        None => Err(s3_error!(
            NoSuchTagSet,
            NOT_FOUND,
            "bucket {} has no tags",
            ctx.bucket()
        )),
    }
}

/// `PUT /<bucket>?tagging` and `DELETE`.
pub(super) async fn put_bucket(mut ctx: Ctx, delete: bool) -> S3Result<Response> {
    let value = match delete {
        true => None,
        false => Some(encode(&body_tags(&mut ctx, MAX_BUCKET_TAGS).await?).into_bytes()),
    };
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    blocking(move || {
        store.set_bucket_attribute(&bucket, BUCKET_TAGGING_ATTRIBUTE, value.as_deref())
    })
    .await?;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sets_encode_check_and_refuse() {
        let tags: TagSet = vec![
            ("project".into(), "blue sky".into()),
            ("cost/centre".into(), "42&7".into()),
        ];
        assert_eq!(decode(&encode(&tags)).unwrap(), tags);
        check(&tags, MAX_OBJECT_TAGS).unwrap();
        let many: TagSet = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            check(&many, MAX_OBJECT_TAGS).unwrap_err().code,
            "BadRequest"
        );
        for bad in [
            vec![("aws:x".to_string(), "v".to_string())],
            vec![(String::new(), "v".to_string())],
            vec![("k".repeat(129), "v".to_string())],
            vec![("k".to_string(), "v".repeat(257))],
            vec![
                ("k".to_string(), "1".to_string()),
                ("k".to_string(), "2".to_string()),
            ],
        ] {
            assert_eq!(check(&bad, MAX_OBJECT_TAGS).unwrap_err().code, "InvalidTag");
        }
    }
}
