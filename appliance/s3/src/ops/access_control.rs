//! Access-control operations on buckets and objects: `?acl` (GetBucketAcl, PutBucketAcl,
//! GetObjectAcl, PutObjectAcl), `?policy` (Get/Put/DeleteBucketPolicy), `?policyStatus`
//! (GetBucketPolicyStatus) and `?publicAccessBlock` (Get/Put/DeletePublicAccessBlock), and
//! the ACL a new bucket or object is created with. Who may call each was decided by
//! `auth::access` before they run.
//!
//! Must not import `server` or any other operation file: `object`, `bucket`, `copy`,
//! `multipart` and `post_object` use its ACL helpers.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::access::{self, PUBLIC_ACCESS_BLOCK_ATTRIBUTE};
use crate::auth::acl::{self, Acl, Ownership, BUCKET_ACL_ATTRIBUTE, OBJECT_ACL_HEADER};
use crate::auth::policy::{Policy, BUCKET_POLICY_ATTRIBUTE, MAX_POLICY_BYTES};
use crate::engine::blocking;
use crate::error::S3Result;
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;
use crate::xml::{self, XmlBuilder};

fn no_content() -> S3Result<Response> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(bad_header)
}

/// The ACL a request sets with `x-amz-acl` or `x-amz-grant-*`, for something owned by
/// `owner` in a bucket owned by `bucket_owner`; `None` if it sets none. Refused when public
/// and the bucket blocks public ACLs.
///
/// Errors: as [`Acl::from_headers`]; AccessDenied (BlockPublicAcls).
fn acl_from_headers(
    ctx: &Ctx,
    owner: &str,
    bucket_owner: &str,
    block: Option<&access::BucketAccess>,
) -> S3Result<Option<Acl>> {
    acl_from(
        ctx,
        |h| ctx.header(h).map(str::to_string),
        owner,
        bucket_owner,
        block,
    )
}

/// As [`acl_from_headers`], with the headers read by `header`.
fn acl_from(
    ctx: &Ctx,
    header: impl Fn(&str) -> Option<String>,
    owner: &str,
    bucket_owner: &str,
    block: Option<&access::BucketAccess>,
) -> S3Result<Option<Acl>> {
    let creds = &ctx.state.credentials;
    let acl = Acl::from_headers(header, owner, bucket_owner, |id| creds.account_exists(id))?;
    if let (Some(acl), Some(access)) = (&acl, block) {
        access::check_acl_allowed(access, acl)?;
    }
    Ok(acl)
}

/// The ACL a new bucket is created with (CreateBucket's `x-amz-acl` or grants), as the
/// attribute to set once it exists.
///
/// Errors: as [`Acl::from_headers`].
pub(super) fn new_bucket_acl(ctx: &Ctx) -> S3Result<Option<Vec<u8>>> {
    let owner = &ctx.auth.account_id;
    Ok(acl_from_headers(ctx, owner, owner, None)?.map(|a| a.to_json().into_bytes()))
}

/// The stored header carrying a new object's ACL (PutObject, CreateMultipartUpload): the
/// requested one, or `private` owned by the writer when the writer is another account than
/// the bucket's (so the object's ownership is recorded); none for the owner's private
/// default. Anonymous writes (a `public-read-write` bucket) belong to the bucket owner.
///
/// Errors: as [`Acl::from_headers`]; AccessDenied (BlockPublicAcls).
pub(super) fn new_object_acl(ctx: &Ctx) -> S3Result<Option<(String, String)>> {
    object_acl_from(ctx, |h| ctx.header(h).map(str::to_string))
}

/// As [`new_object_acl`], for a browser POST upload: its canned ACL is the form's `acl`
/// field.
pub(super) fn new_object_acl_with(
    ctx: &Ctx,
    canned: Option<String>,
) -> S3Result<Option<(String, String)>> {
    object_acl_from(ctx, |h| {
        (h == "x-amz-acl").then(|| canned.clone()).flatten()
    })
}

fn object_acl_from(
    ctx: &Ctx,
    header: impl Fn(&str) -> Option<String>,
) -> S3Result<Option<(String, String)>> {
    let access = ctx.access();
    // Object ownership: with ACLs disabled every object is the bucket owner's, and an ACL
    // other than `bucket-owner-full-control` is refused; BucketOwnerPreferred gives the bucket
    // owner an object written with that ACL.
    let canned = header("x-amz-acl");
    let to_bucket_owner = canned.as_deref().map(str::trim) == Some("bucket-owner-full-control");
    match access.ownership {
        Ownership::BucketOwnerEnforced => {
            let grants = acl::GRANT_HEADERS.iter().any(|(h, _)| header(h).is_some());
            if grants || (canned.is_some() && !to_bucket_owner) {
                return Err(acl::acls_not_supported());
            }
            return Ok(None);
        }
        Ownership::BucketOwnerPreferred if to_bucket_owner => return Ok(None),
        _ => {}
    }
    let writer = match ctx.auth.anonymous {
        true => access.owner.as_str(),
        false => ctx.auth.account_id.as_str(),
    };
    let acl = match acl_from(ctx, header, writer, &access.owner, Some(access))? {
        Some(acl) => acl,
        None if writer == access.owner => return Ok(None),
        None => Acl::private(writer),
    };
    Ok(Some((OBJECT_ACL_HEADER.to_string(), acl.to_json())))
}

/// `GET /<bucket>?acl`.
pub(super) fn get_bucket_acl(ctx: &Ctx) -> S3Result<Response> {
    xml_response(ctx.access().acl.to_xml())
}

/// `PUT /<bucket>?acl`: a canned ACL, grant headers, or an `AccessControlPolicy` body.
pub(super) async fn put_bucket_acl(mut ctx: Ctx) -> S3Result<Response> {
    let owner = ctx.access().owner.clone();
    let acl = new_acl(&mut ctx, &owner).await?;
    if !ctx.access().ownership.acls_enabled() && !acl::is_owner_full_control(&acl, &owner) {
        return Err(acl::acls_not_supported());
    }
    access::check_acl_allowed(ctx.access(), &acl)?;
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let value = acl.to_json().into_bytes();
    blocking(move || store.set_bucket_attribute(&bucket, BUCKET_ACL_ATTRIBUTE, Some(&value)))
        .await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

/// The ACL a PutBucketAcl or PutObjectAcl sets, for something owned by `owner`.
async fn new_acl(ctx: &mut Ctx, owner: &str) -> S3Result<Acl> {
    let bucket_owner = ctx.access().owner.clone();
    let body = ctx.small_body(xml::MAX_XML_REQUEST_BYTES).await?;
    let from_headers = acl_from_headers(ctx, owner, &bucket_owner, None)?;
    match (from_headers, body.is_empty()) {
        (Some(acl), true) => Ok(acl),
        (None, false) => {
            let creds = &ctx.state.credentials;
            Acl::from_xml(&body, owner, |id| creds.account_exists(id))
        }
        (Some(_), false) => Err(s3_error!(
            UnexpectedContent,
            BAD_REQUEST,
            "this request does not accept both ACL headers and an AccessControlPolicy body"
        )),
        (None, true) => Err(s3_error!(
            MissingSecurityHeader,
            BAD_REQUEST,
            "the request needs x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body"
        )),
    }
}

/// The ACL of an object's current version (the bucket owner's `private` if it has none).
fn object_acl(ctx: &Ctx, headers: &[(String, String)]) -> S3Result<Acl> {
    if !ctx.access().ownership.acls_enabled() {
        // ACLs disabled: the bucket owner owns every object, whatever it was written with.
        return Ok(Acl::private(&ctx.access().owner));
    }
    match headers.iter().find(|(n, _)| n == OBJECT_ACL_HEADER) {
        Some((_, v)) => Acl::from_json(v.as_bytes()),
        None => Ok(Acl::private(&ctx.access().owner)),
    }
}

/// `GET /<bucket>/<key>?acl`.
pub(super) async fn get_object_acl(ctx: Ctx) -> S3Result<Response> {
    let info = ctx.readable_version().await?;
    xml_response(object_acl(&ctx, &info.headers)?.to_xml())
}

/// `PUT /<bucket>/<key>?acl`: rewrites the current version's ACL in place.
pub(super) async fn put_object_acl(mut ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let info = ctx.readable_version().await?;
    let owner = object_acl(&ctx, &info.headers)?.owner;
    let acl = new_acl(&mut ctx, &owner).await?;
    // ACLs disabled: only the bucket owner's full control, which every object has already.
    let enforced = !ctx.access().ownership.acls_enabled();
    if enforced && !acl::is_owner_full_control(&acl, &owner) {
        return Err(acl::acls_not_supported());
    }
    access::check_acl_allowed(ctx.access(), &acl)?;
    let changes = vec![(
        OBJECT_ACL_HEADER.to_string(),
        (!enforced).then(|| acl.to_json()),
    )];
    blocking(move || store.update_object_headers(&bucket, &key, Some(info.version), &changes))
        .await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

fn no_policy(ctx: &Ctx) -> crate::error::S3Error {
    s3_error!(
        NoSuchBucketPolicy,
        NOT_FOUND,
        "bucket {} has no policy",
        ctx.bucket()
    )
}

/// `GET /<bucket>?policy`: the policy as put (404 NoSuchBucketPolicy without one).
pub(super) fn get_policy(ctx: &Ctx) -> S3Result<Response> {
    let text = ctx
        .access()
        .policy_text
        .clone()
        .ok_or_else(|| no_policy(ctx))?;
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(text))
        .map_err(bad_header)
}

/// `PUT /<bucket>?policy`: validated ([`Policy::parse`]); a public policy is refused when
/// the bucket's public access block sets BlockPublicPolicy.
pub(super) async fn put_policy(mut ctx: Ctx) -> S3Result<Response> {
    let text = ctx
        .small_body(MAX_POLICY_BYTES + 1)
        .await
        .map_err(|e| match e.code {
            "EntityTooLarge" | "MalformedXML" => s3_error!(
                MalformedPolicy,
                BAD_REQUEST,
                "Policies must be at most {MAX_POLICY_BYTES} bytes"
            ),
            _ => e,
        })?;
    let policy = Policy::parse(&text, ctx.bucket())?;
    if policy.is_public() && ctx.access().block.block_public_policy {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "bucket {} blocks public policies (its public access block sets BlockPublicPolicy), and this policy allows anyone",
            ctx.bucket()
        ));
    }
    set_attribute_of(&ctx, BUCKET_POLICY_ATTRIBUTE, Some(text)).await?;
    no_content()
}

/// `DELETE /<bucket>?policy`.
pub(super) async fn delete_policy(ctx: Ctx) -> S3Result<Response> {
    set_attribute_of(&ctx, BUCKET_POLICY_ATTRIBUTE, None).await?;
    no_content()
}

/// The engine call of setting a bucket attribute (a future that holds no `&Ctx`, which is
/// not `Sync`).
fn set_attribute_of(
    ctx: &Ctx,
    name: &'static str,
    value: Option<Vec<u8>>,
) -> impl std::future::Future<Output = S3Result<()>> + Send {
    set(
        ctx.state.store.clone(),
        ctx.bucket().to_string(),
        name,
        value,
    )
}

async fn set(
    store: hoard::Store,
    bucket: String,
    name: &'static str,
    value: Option<Vec<u8>>,
) -> S3Result<()> {
    blocking(move || store.set_bucket_attribute(&bucket, name, value.as_deref())).await
}

/// `GET /<bucket>?policyStatus`: `<PolicyStatus><IsPublic>`.
pub(super) fn get_policy_status(ctx: &Ctx) -> S3Result<Response> {
    let access = ctx.access();
    let policy = access.policy.as_ref().ok_or_else(|| no_policy(ctx))?;
    let public = policy.is_public() && !access.block.restrict_public_buckets;
    let mut x = XmlBuilder::new("PolicyStatus");
    x.elem("IsPublic", public.to_string());
    xml_response(x.finish("PolicyStatus"))
}

/// `GET /<bucket>?publicAccessBlock` (404 NoSuchPublicAccessBlockConfiguration when unset).
pub(super) fn get_public_access_block(ctx: &Ctx) -> S3Result<Response> {
    let access = ctx.access();
    if !access.block_set {
        return Err(s3_error!(
            NoSuchPublicAccessBlockConfiguration,
            NOT_FOUND,
            "bucket {} has no public access block configuration",
            ctx.bucket()
        ));
    }
    let b = access.block;
    let mut x = XmlBuilder::new("PublicAccessBlockConfiguration");
    x.elem("BlockPublicAcls", b.block_public_acls.to_string())
        .elem("IgnorePublicAcls", b.ignore_public_acls.to_string())
        .elem("BlockPublicPolicy", b.block_public_policy.to_string())
        .elem(
            "RestrictPublicBuckets",
            b.restrict_public_buckets.to_string(),
        );
    xml_response(x.finish("PublicAccessBlockConfiguration"))
}

/// `PUT /<bucket>?publicAccessBlock`.
pub(super) async fn put_public_access_block(mut ctx: Ctx) -> S3Result<Response> {
    let body = ctx.small_body(64 * 1024).await?;
    let block = crate::auth::access::parse_public_access_block(&body)?;
    let value = serde_json::to_vec(&block).expect("a block serialises");
    set_attribute_of(&ctx, PUBLIC_ACCESS_BLOCK_ATTRIBUTE, Some(value)).await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

/// `DELETE /<bucket>?publicAccessBlock`.
pub(super) async fn delete_public_access_block(ctx: Ctx) -> S3Result<Response> {
    set_attribute_of(&ctx, PUBLIC_ACCESS_BLOCK_ATTRIBUTE, None).await?;
    no_content()
}

/// `GET /<bucket>?ownershipControls` (404 OwnershipControlsNotFoundError when none was set:
/// the bucket then behaves as ObjectWriter).
pub(super) fn get_ownership_controls(ctx: &Ctx) -> S3Result<Response> {
    let set = ctx
        .access()
        .attributes
        .iter()
        .any(|(n, _)| n == acl::OWNERSHIP_ATTRIBUTE);
    if !set {
        return Err(s3_error!(
            OwnershipControlsNotFoundError,
            NOT_FOUND,
            "The bucket ownership controls were not found (bucket {} behaves as ObjectWriter)",
            ctx.bucket()
        ));
    }
    let mut x = XmlBuilder::new("OwnershipControls");
    x.open("Rule")
        .elem("ObjectOwnership", ctx.access().ownership.name())
        .close("Rule");
    xml_response(x.finish("OwnershipControls"))
}

/// `PUT /<bucket>?ownershipControls`: `<OwnershipControls><Rule><ObjectOwnership>`. Disabling
/// ACLs (BucketOwnerEnforced) is refused while the bucket's ACL grants anyone but the owner.
///
/// Errors: MalformedXML; InvalidArgument (an unknown value);
/// InvalidBucketAclWithObjectOwnership.
pub(super) async fn put_ownership_controls(mut ctx: Ctx) -> S3Result<Response> {
    let body = ctx.small_body(64 * 1024).await?;
    let ownership = Ownership::parse(&crate::auth::acl::parse_ownership_controls(&body)?)?;
    check_ownership_fits_acl(ownership, &ctx.access().acl, &ctx.access().owner)?;
    set_attribute_of(
        &ctx,
        acl::OWNERSHIP_ATTRIBUTE,
        Some(ownership.name().as_bytes().to_vec()),
    )
    .await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

/// `DELETE /<bucket>?ownershipControls`: back to ObjectWriter.
pub(super) async fn delete_ownership_controls(ctx: Ctx) -> S3Result<Response> {
    set_attribute_of(&ctx, acl::OWNERSHIP_ATTRIBUTE, None).await?;
    no_content()
}

/// S3 refuses BucketOwnerEnforced on a bucket whose ACL grants anyone but its owner.
///
/// Errors: InvalidBucketAclWithObjectOwnership.
pub(super) fn check_ownership_fits_acl(
    ownership: Ownership,
    bucket_acl: &Acl,
    owner: &str,
) -> S3Result<()> {
    if ownership.acls_enabled() || acl::is_owner_full_control(bucket_acl, owner) {
        return Ok(());
    }
    Err(s3_error!(
        InvalidBucketAclWithObjectOwnership,
        BAD_REQUEST,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
    ))
}
