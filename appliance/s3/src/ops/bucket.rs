//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
//! ListObjects (v1), ListObjectsV2, DeleteObjects (of versions too).
//!
//! Must not import `server` or an operation file but `access_control`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use hoard::store::{ListPage, ListQuery};

use crate::engine::blocking;
use crate::error::S3Result;
use crate::protocol::dates::iso8601;
use crate::protocol::headers::PROTECTION;
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;
use crate::xml::{self, XmlBuilder};
use crate::xml::{malformed, walk, Node};

/// A listing's continuation token (ListObjectsV2, ListBuckets): the last name of the page,
/// base64url, opaque to clients.
fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

/// The name a continuation token of [`encode_token`] resumes after.
///
/// Errors: InvalidArgument for a token this server did not give.
fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "the continuation token provided is incorrect"
            )
        })
}

/// ListBuckets, paginated as S3 has been since 2024: `max-buckets` (1..=10000; all when absent),
/// `continuation-token` (opaque: the last name of the previous page), `prefix` and
/// `bucket-region` (this server's region holds every bucket; another holds none).
///
/// Errors: InvalidArgument for a `max-buckets` out of range or a malformed token.
pub(super) async fn list_buckets(ctx: Ctx) -> S3Result<Response> {
    let max_buckets = match ctx.q("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "max-buckets must be 1 to 10000, not {v:?}"
                )
            })?,
    };
    let after = ctx.q("continuation-token").map(decode_token).transpose()?;
    let prefix = ctx.q("prefix").unwrap_or("").to_string();
    let region = ctx.state.config.region.clone();
    let in_region = ctx.q("bucket-region").is_none_or(|r| r == region);
    let store = ctx.state.store.clone();
    let mut buckets = blocking(move || store.list_buckets()).await?;
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let credentials = &ctx.state.credentials;
    let mine: Vec<_> = buckets
        .iter()
        .filter(|b| in_region && credentials.owning_account(&b.owner) == ctx.auth.account_id)
        .filter(|b| b.name.starts_with(&prefix))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .collect();
    let page = &mine[..mine.len().min(max_buckets)];
    let mut x = XmlBuilder::new("ListAllMyBucketsResult");
    x.open("Owner")
        .elem("ID", &ctx.auth.account_id)
        .elem("DisplayName", &ctx.auth.account_id)
        .close("Owner");
    x.open("Buckets");
    for b in page {
        x.open("Bucket")
            .elem("Name", &b.name)
            .elem("CreationDate", iso8601(b.created_unix_ms))
            .elem("BucketRegion", &region)
            .close("Bucket");
    }
    x.close("Buckets");
    if page.len() < mine.len() {
        let last = page.last().map_or("", |b| b.name.as_str());
        x.elem("ContinuationToken", encode_token(last));
    }
    x.opt("Prefix", ctx.q("prefix"));
    xml_response(x.finish("ListAllMyBucketsResult"))
}

pub(super) async fn create_bucket(mut ctx: Ctx) -> S3Result<Response> {
    let protection = match ctx.header(PROTECTION) {
        Some(text) => Some(
            text.trim()
                .parse::<hoard::Protection>()
                .map_err(|e| s3_error!(InvalidArgument, BAD_REQUEST, "{PROTECTION}: {e}"))?,
        ),
        None => None,
    };
    let acl = super::access_control::new_bucket_acl(&ctx)?;
    // x-amz-object-ownership (S3 User Guide, "Setting Object Ownership on an existing
    // bucket"): none keeps Hoard's default, ObjectWriter.
    let ownership = ctx
        .header("x-amz-object-ownership")
        .map(crate::auth::acl::Ownership::parse)
        .transpose()?;
    if let (Some(o), Some(acl)) = (ownership, &acl) {
        let acl = crate::auth::acl::Acl::from_json(acl)?;
        super::access_control::check_ownership_fits_acl(o, &acl, &ctx.auth.account_id)?;
    }
    // The body may carry CreateBucketConfiguration: its location constraint must be this
    // server's region (S3: the region's endpoint refuses another; us-east-1 is the empty one).
    let config = ctx.small_body(64 * 1024).await?;
    let region = ctx.state.config.region.clone();
    if !config.iter().all(u8::is_ascii_whitespace) {
        let constraint = parse_create_bucket_configuration(&config)?.unwrap_or_default();
        let means = |c: &str| c == region || (region == "us-east-1" && c.is_empty());
        if !means(&constraint) {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                BAD_REQUEST,
                "The {constraint:?} location constraint is incompatible for the region specific endpoint this request was sent to ({region})"
            ));
        }
    }
    let store = ctx.state.store.clone();
    let (name, owner) = (ctx.bucket().to_string(), ctx.auth.account_id.clone());
    blocking(move || {
        let acl_attribute = crate::auth::acl::BUCKET_ACL_ATTRIBUTE;
        match store.create_bucket_with(&name, &owner, protection) {
            // S3 in us-east-1 answers 200 to a caller re-creating a bucket it owns, and resets
            // the bucket's ACL (to the request's, else private); every other region answers
            // 409 BucketAlreadyOwnedByYou (S3 API Reference, "Error responses").
            Err(hoard::Error::BucketAlreadyExists {
                owned_by_caller: true,
                ..
            }) if region == "us-east-1" => {
                store.set_bucket_attribute(&name, acl_attribute, acl.as_deref())
            }
            Err(e) => Err(e),
            // A crash between the commits leaves the bucket private and ObjectWriter: the
            // safe side for its ACL, and what an unset ownership means.
            Ok(_) => {
                if let Some(acl) = acl {
                    store.set_bucket_attribute(&name, acl_attribute, Some(&acl))?;
                }
                match ownership {
                    Some(o) => store.set_bucket_attribute(
                        &name,
                        crate::auth::acl::OWNERSHIP_ATTRIBUTE,
                        Some(o.name().as_bytes()),
                    ),
                    None => Ok(()),
                }
            }
        }
    })
    .await?;
    Response::builder()
        .status(StatusCode::OK)
        .header("location", format!("/{}", ctx.bucket()))
        .body(Body::empty())
        .map_err(bad_header)
}

pub(super) async fn delete_bucket(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let name = ctx.bucket().to_string();
    blocking(move || store.delete_bucket(&name)).await?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("static response"))
}

/// `GET /<bucket>?x-hoard-protection`: `<Protection>replicas:2</Protection>`.
pub(super) async fn protection(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let name = ctx.bucket().to_string();
    let info = blocking(move || store.head_bucket(&name)).await?;
    let mut x = XmlBuilder::new("Protection");
    x.elem_text(&info.protection.to_string());
    xml_response(x.finish("Protection"))
}

pub(super) fn location(ctx: Ctx) -> S3Result<Response> {
    let region = &ctx.state.config.region;
    let mut x = XmlBuilder::new("LocationConstraint");
    if region != "us-east-1" {
        x.elem_text(region);
    }
    xml_response(x.finish("LocationConstraint"))
}

/// `max-keys` as S3 reads it: a non-negative integer, clamped to 1000 however large (even past
/// 64 bits); absent means 1000.
pub(super) fn parse_max(ctx: &Ctx, name: &str) -> S3Result<usize> {
    match ctx.q(name) {
        None => Ok(1000),
        Some(v) => Some(v.trim())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .map(|t| t.parse::<u64>().map_or(1000, |n| n.min(1000)) as usize)
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "{name} must be a non-negative integer, got {v:?}"
                )
            }),
    }
}

/// `encoding-type` of a listing: whether keys are URL-encoded in the answer.
///
/// Errors: InvalidArgument for another encoding than `url`.
pub(super) fn url_encoding(ctx: &Ctx) -> S3Result<bool> {
    match ctx.q("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "invalid encoding-type {other:?}; only 'url' is supported"
        )),
    }
}

pub(super) async fn list_objects(ctx: Ctx) -> S3Result<Response> {
    let v2 = ctx.q("list-type") == Some("2");
    let url_encode = url_encoding(&ctx)?;
    let token = ctx
        .q("continuation-token")
        .filter(|_| v2)
        .map(decode_token)
        .transpose()?;
    let start_after = if v2 {
        token
            .clone()
            .or_else(|| ctx.q("start-after").map(str::to_string))
    } else {
        ctx.q("marker").map(str::to_string)
    };
    let query = ListQuery {
        prefix: ctx.q("prefix").unwrap_or_default().to_string(),
        delimiter: ctx
            .q("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        start_after: start_after.filter(|s| !s.is_empty()),
        max_keys: parse_max(&ctx, "max-keys")?,
    };
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let q = query.clone();
    // `max-keys=0` asks for nothing: an empty page that is not truncated, as S3 answers.
    let page: ListPage = if query.max_keys == 0 {
        ListPage::default()
    } else {
        blocking(move || store.list_objects(&bucket, &q)).await?
    };

    let enc = |s: &str| {
        if url_encode {
            crate::protocol::uri::uri_encode(s, true)
        } else {
            s.to_string()
        }
    };
    let mut x = XmlBuilder::new("ListBucketResult");
    // With encoding-type=url, S3 encodes the top-level Prefix in v2 only (v1 encodes Delimiter,
    // Marker, NextMarker, Key and the common prefixes; botocore decodes exactly those).
    let prefix = match v2 {
        true => enc(&query.prefix),
        false => query.prefix.clone(),
    };
    x.elem("Name", ctx.bucket()).elem("Prefix", prefix);
    if let Some(d) = &query.delimiter {
        x.elem("Delimiter", enc(d));
    }
    x.elem("MaxKeys", query.max_keys.to_string());
    if url_encode {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", page.is_truncated.to_string());
    if v2 {
        x.elem(
            "KeyCount",
            (page.objects.len() + page.common_prefixes.len()).to_string(),
        );
        x.opt("ContinuationToken", ctx.q("continuation-token"));
        x.opt("StartAfter", ctx.q("start-after").map(enc));
        x.opt(
            "NextContinuationToken",
            page.next_marker.as_ref().map(|m| encode_token(m)),
        );
    } else {
        x.elem("Marker", enc(ctx.q("marker").unwrap_or_default()));
        x.opt("NextMarker", page.next_marker.as_deref().map(enc));
    }
    for o in &page.objects {
        x.open("Contents")
            .elem("Key", enc(&o.key))
            .elem("LastModified", iso8601(o.last_modified_unix_ms))
            .elem("ETag", format!("\"{}\"", o.etag))
            .elem("Size", o.size.to_string())
            .elem("StorageClass", "STANDARD");
        if !v2 || ctx.q("fetch-owner") == Some("true") {
            x.open("Owner")
                .elem("ID", &ctx.access().owner)
                .elem("DisplayName", &ctx.access().owner)
                .close("Owner");
        }
        x.close("Contents");
    }
    for p in &page.common_prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", enc(p))
            .close("CommonPrefixes");
    }
    xml_response(x.finish("ListBucketResult"))
}

pub(super) async fn delete_objects(mut ctx: Ctx) -> S3Result<Response> {
    if !ctx.has_body_digest() {
        return Err(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "missing required header for this request: Content-MD5 (or an x-amz-checksum-* header)"
        ));
    }
    let body = ctx.small_body(xml::MAX_XML_REQUEST_BYTES).await?;
    let (keys, quiet) = parse_delete(&body)?;
    // S3 authorizes s3:DeleteObject (s3:DeleteObjectVersion with a version) on each key: a
    // policy may allow some prefixes only.
    let allowed: Vec<crate::error::S3Result<Option<hoard::store::VersionId>>> = keys
        .iter()
        .map(|(k, v)| {
            let version = v
                .as_deref()
                .map(hoard::store::VersionId::parse)
                .transpose()
                .map_err(crate::error::S3Error::from)?;
            let action = match version {
                Some(_) => "s3:DeleteObjectVersion",
                None => "s3:DeleteObject",
            };
            let resource = format!("{}/{k}", ctx.bucket());
            let cx = super::request_context(&ctx, action, &resource, ctx.peer);
            crate::auth::access::authorize(ctx.access(), &ctx.auth, &cx)
                .check()
                .map(|()| version)
        })
        .collect();
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let results = blocking(move || {
        Ok(keys
            .into_iter()
            .zip(allowed)
            .map(|((k, v), allowed)| {
                let r = allowed.and_then(|version| {
                    match version {
                        Some(version) => store.delete_object_version(&bucket, &k, version),
                        None => store.delete_object(&bucket, &k),
                    }
                    .map_err(crate::error::S3Error::from)
                });
                (k, v, r)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut x = XmlBuilder::new("DeleteResult");
    for (key, asked, result) in results {
        match result {
            Ok(_) if quiet => {}
            Ok(outcome) => {
                x.open("Deleted").elem("Key", &key);
                x.opt("VersionId", asked.as_deref());
                if outcome.delete_marker {
                    x.elem("DeleteMarker", "true");
                    if asked.is_none() {
                        x.opt(
                            "DeleteMarkerVersionId",
                            outcome.version.map(|v| v.to_string()),
                        );
                    }
                }
                x.close("Deleted");
            }
            Err(e) => {
                x.open("Error").elem("Key", &key);
                x.opt("VersionId", asked.as_deref());
                x.elem("Code", e.code)
                    .elem("Message", &e.message)
                    .close("Error");
            }
        }
    }
    xml_response(x.finish("DeleteResult"))
}

/// Parses `<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>`: the
/// location constraint, if any (S3 API Reference, CreateBucket).
///
/// Errors: MalformedXML for another root; NotImplemented naming any other element (a
/// directory bucket's `Location` and `Bucket`, `Tags`), which Hoard does not implement.
pub fn parse_create_bucket_configuration(body: &[u8]) -> S3Result<Option<String>> {
    let mut constraint = None;
    let mut refused = None;
    walk(body, |node| {
        match node {
            Node::Text("CreateBucketConfiguration/LocationConstraint", text) => {
                constraint = Some(text)
            }
            Node::End(
                "CreateBucketConfiguration" | "CreateBucketConfiguration/LocationConstraint",
            ) => {}
            Node::End(path) if !path.starts_with("CreateBucketConfiguration") => {
                return Err(malformed(format!(
                    "a CreateBucket body is CreateBucketConfiguration, not {path}"
                )))
            }
            Node::Text(path, _) | Node::End(path) => {
                refused.get_or_insert_with(|| path.to_string());
            }
        }
        Ok(())
    })?;
    if let Some(path) = refused {
        return Err(crate::s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "the CreateBucket element {path} is not implemented (directory buckets and bucket tags at creation)"
        ));
    }
    Ok(constraint)
}

/// Parses `<Delete><Quiet/>?<Object><Key/><VersionId/>?</Object>...</Delete>`; returns
/// ((key, version ID as sent), quiet).
///
/// Errors: MalformedXML for an Object without a Key, or more than 1000.
#[allow(clippy::type_complexity)]
pub fn parse_delete(body: &[u8]) -> S3Result<(Vec<(String, Option<String>)>, bool)> {
    let mut keys = Vec::new();
    let mut quiet = false;
    let (mut key, mut version) = (None, None);
    walk(body, |node| {
        match node {
            Node::Text("Delete/Object/Key", text) => key = Some(text),
            Node::Text("Delete/Object/VersionId", text) => version = Some(text),
            Node::End("Delete/Object") => match key.take() {
                Some(k) => keys.push((k, version.take())),
                None => return Err(malformed("each Object needs a Key")),
            },
            Node::Text("Delete/Quiet", text) => quiet = text.eq_ignore_ascii_case("true"),
            _ => {}
        }
        Ok(())
    })?;
    if keys.len() > 1000 {
        return Err(malformed("at most 1000 keys per Delete request"));
    }
    Ok((keys, quiet))
}
