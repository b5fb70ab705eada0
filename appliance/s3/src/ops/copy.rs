//! CopyObject and UploadPartCopy (S3 API Reference): `PUT` with `x-amz-copy-source`.
//!
//! - **CopyObject** shares the source's chunks ([`hoard::Store::copy_object`]): a copy of
//!   any size is one metadata commit, with no HDD write (between buckets of one protection).
//!   `x-amz-metadata-directive` `COPY` (default) keeps the source's Content-Type, user
//!   metadata and standard headers, `REPLACE` takes the request's; `x-amz-tagging-directive`
//!   likewise for tags. The ACL is never copied: the copy gets the request's (`x-amz-acl`,
//!   grants) or the default. Copying an object onto itself needs `REPLACE`.
//! - **UploadPartCopy** (`?partNumber&uploadId`, with `x-amz-copy-source-range: bytes=a-b`,
//!   at most 5 GiB) reads the range and writes it as the part.
//! - Both honour `x-amz-copy-source-if-match`, `-if-none-match`, `-if-modified-since` and
//!   `-if-unmodified-since` (412 PreconditionFailed), and need `s3:GetObject` on the source
//!   (its bucket's policy and ACL, its object ACL) besides `s3:PutObject` on the destination.
//!
//! Must not import `server`; of the other operations only the helpers of `object`, `tagging`
//! and `access_control`.

use axum::response::Response;

use crate::auth::access;
use crate::engine::blocking;
use crate::error::{S3Error, S3Result};
use crate::protocol::dates::iso8601;
use crate::request::{Ctx, MAX_PUT_BYTES, STORED_HEADERS};
use crate::response::xml_response;
use crate::s3_error;
use crate::xml::XmlBuilder;

use super::access_control::new_object_acl;
use super::tagging;

/// The source a copy names: (bucket, key, version: its latest when `None`).
///
/// Errors: InvalidArgument for a malformed `x-amz-copy-source` or version ID.
fn copy_source(ctx: &Ctx) -> S3Result<(String, String, Option<hoard::store::VersionId>)> {
    let raw = ctx.header("x-amz-copy-source").unwrap_or("");
    let (path, version) = match raw.split_once("?versionId=") {
        Some((p, v)) => (p, Some(hoard::store::VersionId::parse(v)?)),
        None => (raw, None),
    };
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "x-amz-copy-source is not UTF-8"
            )
        })?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => {
            Ok((b.to_string(), k.to_string(), version))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "x-amz-copy-source must be BUCKET/KEY, not {raw:?}"
        )),
    }
}

/// Authorizes reading the source (as a GET of it would be) and returns the check to run on
/// its record: the source's object ACL and the `x-amz-copy-source-if-*` conditions. (A
/// future holding no `&Ctx`, which is not `Sync`.)
fn source_check(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    version: Option<hoard::store::VersionId>,
) -> impl std::future::Future<
    Output = S3Result<
        impl Fn(&hoard::store::ObjectInfo) -> hoard::Result<()> + Send + Sync + 'static,
    >,
> + Send
       + 'static {
    let state = ctx.state.clone();
    let auth = ctx.auth.clone();
    let peer = ctx.peer;
    let secure = ctx.secure;
    let header = |n: &str| ctx.header(n).map(str::to_string);
    let (user_agent, referer) = (header("user-agent"), header("referer"));
    let expected_owner = header("x-amz-source-expected-bucket-owner");
    let (if_match, if_none_match) = (
        header("x-amz-copy-source-if-match"),
        header("x-amz-copy-source-if-none-match"),
    );
    let parse = |v: Option<String>| v.and_then(|v| crate::protocol::dates::parse_http_date(&v));
    let (modified_since, unmodified_since) = (
        parse(header("x-amz-copy-source-if-modified-since")),
        parse(header("x-amz-copy-source-if-unmodified-since")),
    );
    let (bucket, key) = (bucket.to_string(), key.to_string());
    async move {
        let store = state.store.clone();
        let b = bucket.clone();
        let (info, attributes) = blocking(move || store.bucket_attributes(&b)).await?;
        let owner = state.credentials.owning_account(&info.owner).to_string();
        let access = state.access_cache.get(&bucket, &owner, attributes)?;
        let resource = format!("{bucket}/{key}");
        let signed = !auth.anonymous;
        let cx = crate::auth::policy::RequestContext {
            account: signed.then_some(auth.account_id.as_str()),
            user: signed.then_some(auth.user.as_str()),
            action: match version {
                Some(_) => "s3:GetObjectVersion",
                None => "s3:GetObject",
            },
            resource: &resource,
            source_ip: peer,
            secure_transport: secure,
            now_secs: crate::protocol::dates::now_secs(),
            prefix: None,
            delimiter: None,
            max_keys: None,
            user_agent: user_agent.as_deref(),
            referer: referer.as_deref(),
            ..Default::default()
        };
        let verdict = access::authorize(&access, &auth, &cx);
        verdict.check()?;
        crate::protocol::headers::check_expected_owner(
            "x-amz-source-expected-bucket-owner",
            expected_owner.as_deref(),
            &bucket,
            &owner,
        )?;
        Ok(
            move |info: &hoard::store::ObjectInfo| -> hoard::Result<()> {
                let refuse = |e: S3Error| hoard::Error::Body(e.into_io());
                verdict.check_object(&info.headers).map_err(refuse)?;
                let modified = info.last_modified_unix_ms / 1000;
                let etag_in = |list: &str| {
                    list.split(',')
                        .map(|t| t.trim().trim_matches('"'))
                        .any(|t| t == "*" || t == info.etag)
                };
                // S3: a matching if-match overrides a failing if-unmodified-since, and an
                // if-none-match overrides if-modified-since.
                let held = if_match.as_deref().map_or(true, etag_in)
                    && if_none_match.as_deref().map_or(true, |n| !etag_in(n))
                    && (if_match.is_some() || unmodified_since.is_none_or_before(modified))
                    && (if_none_match.is_some() || modified_since.is_none_or_after(modified));
                if held {
                    Ok(())
                } else {
                    Err(refuse(s3_error!(
                        PreconditionFailed,
                        PRECONDITION_FAILED,
                        "At least one of the pre-conditions you specified did not hold"
                    )))
                }
            },
        )
    }
}

/// `Option<u64>` of Unix seconds, as the `-since` conditions compare them.
trait Since {
    /// None, or the object was modified after it.
    fn is_none_or_after(&self, modified: u64) -> bool;
    /// None, or the object was not modified after it.
    fn is_none_or_before(&self, modified: u64) -> bool;
}

impl Since for Option<u64> {
    fn is_none_or_after(&self, modified: u64) -> bool {
        self.map_or(true, |t| modified > t)
    }
    fn is_none_or_before(&self, modified: u64) -> bool {
        self.map_or(true, |t| modified <= t)
    }
}

fn directive(ctx: &Ctx, name: &str) -> S3Result<bool> {
    match ctx.header(name).map(|v| v.trim().to_ascii_uppercase()) {
        None => Ok(false),
        Some(v) if v == "COPY" => Ok(false),
        Some(v) if v == "REPLACE" => Ok(true),
        Some(v) => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "{name} must be COPY or REPLACE, not {v:?}"
        )),
    }
}

/// `PUT /<bucket>/<key>` with `x-amz-copy-source`.
pub(super) async fn copy_object(ctx: Ctx) -> S3Result<Response> {
    let (src_bucket, src_key, src_version) = copy_source(&ctx)?;
    let replace_metadata = directive(&ctx, "x-amz-metadata-directive")?;
    let replace_tags = directive(&ctx, "x-amz-tagging-directive")?;
    // Copying a named version onto its own key is how a version is restored (S3 User
    // Guide, "Restoring previous versions"); copying the latest onto itself changes nothing.
    if src_bucket == ctx.bucket()
        && src_key == ctx.key()
        && src_version.is_none()
        && !replace_metadata
    {
        return Err(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata; use x-amz-metadata-directive: REPLACE"
        ));
    }
    let check = source_check(&ctx, &src_bucket, &src_key, src_version).await?;
    let condition = super::object::write_condition(&ctx)?;
    let mut header_changes: Vec<(String, Option<String>)> = vec![(
        crate::auth::acl::OBJECT_ACL_HEADER.to_string(),
        new_object_acl(&ctx)?.map(|(_, v)| v),
    )];
    if replace_tags {
        header_changes.push((
            crate::protocol::tags::OBJECT_TAGGING_HEADER.to_string(),
            tagging::from_header(&ctx)?.map(|(_, v)| v),
        ));
    }
    let metadata = match replace_metadata {
        true => {
            let stored = ctx.stored_headers();
            for name in STORED_HEADERS {
                let value = stored
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
                header_changes.push((name.to_string(), value));
            }
            Some((
                ctx.header("content-type").map(str::to_string),
                ctx.user_metadata()?,
            ))
        }
        false => None,
    };
    let opts = hoard::store::CopyOptions {
        metadata,
        header_changes,
        condition,
        source_version: src_version,
    };
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let (info, source) = blocking(move || {
        let source = parking_lot::Mutex::new(None);
        let check_and_note = |info: &hoard::store::ObjectInfo| {
            check(info)?;
            *source.lock() = Some(info.version);
            Ok(())
        };
        let info =
            store.copy_object(&src_bucket, &src_key, &bucket, &key, opts, &check_and_note)?;
        Ok((info, source.into_inner()))
    })
    .await?;
    let mut x = XmlBuilder::new("CopyObjectResult");
    x.elem("LastModified", iso8601(info.last_modified_unix_ms))
        .elem("ETag", format!("\"{}\"", info.etag));
    crate::xml::checksum_elems(&mut x, &info.checksums, None);
    let mut resp = xml_response(x.finish("CopyObjectResult"))?;
    ctx.add_version_header(info.version, resp.headers_mut());
    if let Some(v) = source.filter(|v| *v != hoard::store::VersionId::Null || src_version.is_some())
    {
        if let Ok(value) = axum::http::HeaderValue::from_str(&v.to_string()) {
            resp.headers_mut()
                .insert("x-amz-copy-source-version-id", value);
        }
    }
    Ok(resp)
}

/// `PUT /<bucket>/<key>?partNumber=N&uploadId=ID` with `x-amz-copy-source`: the source's
/// bytes (or `x-amz-copy-source-range`) become the part.
pub(super) async fn upload_part_copy(
    ctx: Ctx,
    upload_id: String,
    part_number: u32,
) -> S3Result<Response> {
    let (src_bucket, src_key, src_version) = copy_source(&ctx)?;
    let check = source_check(&ctx, &src_bucket, &src_key, src_version).await?;
    let range = match ctx.header("x-amz-copy-source-range") {
        None => None,
        Some(v) => {
            let spec = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|s| s.split_once('-'));
            let bad = || {
                s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "x-amz-copy-source-range must be bytes=first-last, not {v:?}"
                )
            };
            let (a, b) = spec.ok_or_else(bad)?;
            let (first, last): (u64, u64) =
                (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if last < first || last - first + 1 > MAX_PUT_BYTES {
                return Err(bad());
            }
            Some(hoard::store::ByteRange::FromTo(first, last))
        }
    };
    // Weighed by the range when one is given; the source's size is known only once it is open.
    let range_bytes = match range {
        Some(hoard::store::ByteRange::FromTo(first, last)) => Some(last - first + 1),
        _ => None,
    };
    let _permit = ctx
        .state
        .admission
        .stream(&ctx.share_account(), range_bytes)
        .await?;
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let part = blocking(move || {
        let mut reader = store.get_object_version(&src_bucket, &src_key, src_version, range)?;
        check(reader.info())?;
        // The whole range must lie in the source (S3: 416 InvalidRange); a GET's Range is
        // clamped instead.
        if let Some(hoard::store::ByteRange::FromTo(first, last)) = range {
            if last >= reader.info().size {
                return Err(hoard::Error::InvalidRange {
                    start: first,
                    size_bytes: reader.info().size,
                });
            }
        }
        let copied = reader.range().1 - reader.range().0;
        if copied > MAX_PUT_BYTES {
            return Err(hoard::Error::EntityTooLarge {
                size_bytes: copied,
                max_bytes: MAX_PUT_BYTES,
            });
        }
        store.upload_part(
            &bucket,
            &key,
            &upload_id,
            part_number,
            &mut reader,
            None,
            None,
        )
    })
    .await?;
    let mut x = XmlBuilder::new("CopyPartResult");
    x.elem("LastModified", iso8601(part.last_modified_unix_ms))
        .elem("ETag", format!("\"{}\"", part.etag));
    xml_response(x.finish("CopyPartResult"))
}
