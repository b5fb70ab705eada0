//! S3 operations, routed on method, bucket, key and sub-resource: [`bucket`], [`object`],
//! [`multipart`], [`copy`], [`post_object`] (browser uploads), [`access_control`] (`?acl`,
//! `?policy`, `?publicAccessBlock`), [`cors`], [`tagging`], [`lifecycle`], [`versioning`]
//! (`?versioning`, `?versions`), and Hoard's own
//! [`admin`] requests ([`admin::directory`]: accounts, users, keys; [`admin::tenancy`]: limits, usage,
//! metrics). Routing and the one authorization of every request ([`crate::auth::access`])
//! live here; each operation lives in the file of what it acts on.
//!
//! Must not import `server`: the server calls [`dispatch`]. Everything else of the crate is
//! below it.

pub mod access_control;
pub mod admin;
pub mod bucket;
pub mod copy;
pub mod cors;
pub mod lifecycle;
pub mod multipart;
pub mod object;
pub mod post_object;
pub mod tagging;
pub mod versioning;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use crate::auth::access;
use crate::auth::policy::RequestContext;
use crate::auth::{self, RequestView};
use crate::engine::memory_first;
use crate::error::S3Result;
use crate::protocol::headers;
use crate::protocol::{Endpoint, Target};
pub use post_object::check_form;

use crate::metrics::Stage;
use crate::protocol::dates::now_secs;
use crate::protocol::uri::parse_query;
use crate::request::{parse_target, Ctx, PeerAddr, RequestNote};
use crate::s3_error;
use crate::state::AppState;

/// Parses, authenticates and runs one request; fills `note` with what the server records of
/// it (operation, account, bucket, bytes in) as they become known.
pub async fn dispatch(
    state: Arc<AppState>,
    req: Request,
    note: &mut RequestNote,
) -> S3Result<Response> {
    let (parts, body) = req.into_parts();
    note.bytes_in = parts
        .headers
        .get("x-amz-decoded-content-length")
        .or_else(|| parts.headers.get("content-length"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let tls_version = parts
        .extensions
        .get::<crate::request::SecureTransport>()
        .and_then(|s| s.0);
    let secure = tls_version.is_some();
    let raw_path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (vhost, bucket, key) = parse_target(&host, &raw_path, &state.config.domains)?;
    // Admin requests live outside the bucket namespace, on path-style requests only: in
    // virtual-host style, `/_hoard/status` is a key of the Host's bucket.
    let admin = vhost.is_none() && raw_path.starts_with(admin::PREFIX);
    let target = match (&bucket, &key) {
        (None, _) => Target::Service,
        (Some(_), None) => Target::Bucket,
        (Some(_), Some(_)) => Target::Object,
    };
    let endpoint = match admin {
        true => None,
        false => Some(Endpoint::parse(
            &parts.method,
            target,
            query.iter().map(|(k, _)| k.as_str()),
            parts.headers.contains_key("x-amz-copy-source"),
        )?),
    };
    note.bucket = bucket.clone();
    note.stages.lap(Stage::Parse);
    let auth = match endpoint {
        // A preflight is never authenticated: a browser sends it before the request it asks
        // about, with that request's query (a presigned URL's signature too) but no credential.
        Some(Endpoint::PreflightCors) => auth::Auth::anonymous(),
        _ => {
            let view = RequestView {
                method: &parts.method,
                raw_path: &raw_path,
                query: &query,
                headers: &parts.headers,
                vhost_bucket: vhost.as_deref(),
            };
            auth::authenticate(&view, &state.credentials, &state.config.region, now_secs())?
        }
    };
    note.stages.lap(Stage::Authentication);
    note.account = auth.account_id.clone();
    note.anonymous = auth.anonymous;
    // Held to the end of the request: each account (anonymous callers together) has its share
    // of the request permits, so no one caller can stop the others.
    let _permit = state.admission.request(match auth.anonymous {
        true => crate::qos::ANONYMOUS,
        false => &auth.account_id,
    })?;
    note.stages.lap(Stage::Admission);
    let Some(endpoint) = endpoint else {
        note.operation = "Admin";
        return admin::dispatch(&state, &parts.method, &raw_path, &query, &auth, body).await;
    };
    let mut ctx = Ctx {
        state,
        method: parts.method,
        headers: parts.headers,
        query,
        bucket,
        key,
        endpoint,
        auth,
        peer,
        secure,
        tls_version,
        existing_tags: None,
        request_tags: None,
        access: None,
        verdict: None,
        versioning: hoard::store::Versioning::Unversioned,
        body: Some(body),
    };

    note.operation = endpoint.name();
    refuse_control_characters(&ctx)?;
    if endpoint == Endpoint::PreflightCors {
        // Unauthenticated, so limited as anonymous callers are.
        ctx.state.qos.admit(crate::qos::ANONYMOUS, None, 0)?;
        return cors::preflight(ctx).await;
    }
    let cors = authorize(&mut ctx, peer).await?;
    note.stages.lap(Stage::Authorization);
    headers::refuse_unimplemented(&ctx.headers).map_err(|e| e.with_headers(&cors))?;
    if ctx.auth.anonymous {
        // Anonymous callers' usage is the bucket owner's (S3 bills the owner); their rate
        // limits are their own (`RequestNote::qos_scope`).
        note.account = ctx
            .access
            .as_ref()
            .map(|a| a.owner.clone())
            .unwrap_or_default();
    }
    let (qos_account, qos_bucket) = note.qos_scope();
    ctx.state
        .qos
        .admit(qos_account, qos_bucket, note.bytes_in)
        .map_err(|e| e.with_headers(&cors))?;
    let hide_missing = missing_keys_hidden(&ctx, peer);
    note.stages.lap(Stage::Qos);
    let routed = route(ctx).await;
    note.stages.lap(Stage::Handler);
    match routed {
        // S3: a caller who may not list the bucket learns nothing of which keys exist.
        Err(e) if hide_missing && e.code == "NoSuchKey" => Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "Access Denied (without s3:ListBucket, a missing key is not told from a forbidden one)"
        )
        .with_headers(&cors)),
        Ok(mut response) => {
            for (name, value) in &cors {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(n, v);
                }
            }
            Ok(response)
        }
        Err(e) => Err(e.with_headers(&cors)),
    }
}

/// Runs an authorized request: the handler of its [`Endpoint`], the same value whose action
/// [`authorize`] checked.
async fn route(ctx: Ctx) -> S3Result<Response> {
    use Endpoint as E;
    match ctx.endpoint {
        E::ListBuckets => bucket::list_buckets(ctx).await,
        E::CreateBucket => bucket::create_bucket(ctx).await,
        E::DeleteBucket => bucket::delete_bucket(ctx).await,
        E::HeadBucket => Ok(Response::builder()
            .status(axum::http::StatusCode::OK)
            .body(axum::body::Body::empty())
            .expect("static response")),
        E::ListObjects => bucket::list_objects(ctx).await,
        E::ListObjectVersions => versioning::list_versions(ctx).await,
        E::ListMultipartUploads => multipart::list_uploads(ctx).await,
        E::GetBucketLocation => bucket::location(ctx),
        E::GetBucketProtection => bucket::protection(ctx).await,
        E::DeleteObjects => bucket::delete_objects(ctx).await,
        E::PostObject => post_object::post(ctx).await,
        E::GetBucketAcl => access_control::get_bucket_acl(&ctx),
        E::PutBucketAcl => access_control::put_bucket_acl(ctx).await,
        E::GetBucketPolicy => access_control::get_policy(&ctx),
        E::PutBucketPolicy => access_control::put_policy(ctx).await,
        E::DeleteBucketPolicy => access_control::delete_policy(ctx).await,
        E::GetBucketPolicyStatus => access_control::get_policy_status(&ctx),
        E::GetBucketOwnershipControls => access_control::get_ownership_controls(&ctx),
        E::PutBucketOwnershipControls => access_control::put_ownership_controls(ctx).await,
        E::DeleteBucketOwnershipControls => access_control::delete_ownership_controls(ctx).await,
        E::GetPublicAccessBlock => access_control::get_public_access_block(&ctx),
        E::PutPublicAccessBlock => access_control::put_public_access_block(ctx).await,
        E::DeletePublicAccessBlock => access_control::delete_public_access_block(ctx).await,
        E::GetBucketLifecycle => lifecycle::get(&ctx),
        E::PutBucketLifecycle => lifecycle::put(ctx, false).await,
        E::DeleteBucketLifecycle => lifecycle::put(ctx, true).await,
        E::GetBucketTagging => tagging::get_bucket(ctx).await,
        E::PutBucketTagging => tagging::put_bucket(ctx, false).await,
        E::DeleteBucketTagging => tagging::put_bucket(ctx, true).await,
        E::GetBucketCors => cors::get(ctx).await,
        E::PutBucketCors => cors::put(ctx).await,
        E::DeleteBucketCors => cors::delete(ctx).await,
        E::GetBucketVersioning => Ok(versioning::get(&ctx)),
        E::PutBucketVersioning => versioning::put(ctx).await,
        E::GetObject => object::get_object(ctx, false).await,
        E::HeadObject => object::get_object(ctx, true).await,
        E::PutObject => object::put_object(ctx).await,
        E::CopyObject => copy::copy_object(ctx).await,
        E::DeleteObject => object::delete_object(ctx).await,
        E::GetObjectAttributes => object::get_attributes(ctx).await,
        E::GetObjectTagging => tagging::get_object(ctx).await,
        E::PutObjectTagging => tagging::put_object(ctx, false).await,
        E::DeleteObjectTagging => tagging::put_object(ctx, true).await,
        E::GetObjectAcl => access_control::get_object_acl(ctx).await,
        E::PutObjectAcl => access_control::put_object_acl(ctx).await,
        E::CreateMultipartUpload => multipart::create(ctx).await,
        E::UploadPart => multipart::upload_part(ctx).await,
        E::UploadPartCopy => {
            let (id, part_number) = (multipart::upload_id(&ctx)?, multipart::part_number(&ctx)?);
            copy::upload_part_copy(ctx, id, part_number).await
        }
        E::CompleteMultipartUpload => multipart::complete(ctx).await,
        E::AbortMultipartUpload => multipart::abort(ctx).await,
        E::ListParts => multipart::list_parts(ctx).await,
        E::PreflightCors => cors::preflight(ctx).await,
    }
}

/// Decides whether the caller may make this request ([`access::authorize`]); for a request on
/// an existing bucket, loads the bucket's access settings into `ctx` first. Object reads are
/// settled later, with the object's record (`ctx.verdict`). Returns the CORS headers the
/// answer carries (see [`cors`]); a refusal carries them too.
///
/// Errors: AccessDenied; NoSuchBucket.
async fn authorize(
    ctx: &mut Ctx,
    peer: Option<std::net::IpAddr>,
) -> S3Result<Vec<(String, String)>> {
    let Some(bucket) = ctx.bucket.clone() else {
        if ctx.auth.anonymous {
            return Err(s3_error!(
                AccessDenied,
                FORBIDDEN,
                "an anonymous caller may not list buckets; sign the request"
            ));
        }
        return Ok(Vec::new());
    };
    let action = ctx
        .endpoint
        .action(ctx.has("versionId"))
        .expect("every authorized endpoint names an action");
    if ctx.endpoint == Endpoint::CreateBucket {
        if ctx.auth.anonymous {
            return Err(s3_error!(
                AccessDenied,
                FORBIDDEN,
                "an anonymous caller may not create buckets; sign the request"
            ));
        }
        return Ok(Vec::new());
    }
    let store = ctx.state.store.clone();
    let name = bucket.clone();
    let (info, attributes) = memory_first(move || store.bucket_attributes(&name)).await?;
    let owner = ctx
        .state
        .credentials
        .owning_account(&info.owner)
        .to_string();
    let cors = match ctx.header("origin") {
        Some(origin) => cors::actual_request_headers(
            cors::CorsConfig::of(&attributes)?.as_ref(),
            Some(origin),
            ctx.method.as_str(),
        ),
        None => Vec::new(),
    };
    let bucket_access = ctx.state.access_cache.get(&bucket, &owner, attributes)?;
    let shared = bucket_access.clone();
    if let Some(policy) = &shared.policy {
        load_policy_inputs(ctx, policy).await?;
    }
    let resource = match &ctx.key {
        Some(k) => format!("{bucket}/{k}"),
        None => bucket.clone(),
    };
    let verdict = {
        let cx = request_context(ctx, action, &resource, peer);
        access::authorize(&bucket_access, &ctx.auth, &cx)
    };
    // DeleteObjects is decided key by key (`bucket::delete_objects`), a browser POST upload
    // once its form says who signed it (`post_object`).
    match ctx.endpoint {
        // Decided key by key once the body names the keys (`bucket::delete_objects`), but
        // refused here, unread, when nothing could allow the caller any key.
        Endpoint::DeleteObjects => {
            let cx = request_context(ctx, action, &resource, peer);
            let actions = ["s3:DeleteObject", "s3:DeleteObjectVersion"];
            access::authorize_some_key(&bucket_access, &ctx.auth, &cx, &actions)
        }
        // Decided once the form says who signed it (`post_object`).
        Endpoint::PostObject => Ok(()),
        // A policy on the tags it sets is decided once the body names them
        // (`tagging::put_object`); refused here, unread, when nothing could allow it.
        Endpoint::PutObjectTagging
            if bucket_access
                .policy
                .as_ref()
                .is_some_and(|p| p.uses_request_tags()) =>
        {
            let cx = request_context(ctx, action, &resource, peer);
            access::authorize_some_key(&bucket_access, &ctx.auth, &cx, &[action])
        }
        _ => verdict.check(),
    }
    .and_then(|()| {
        let header = "x-amz-expected-bucket-owner";
        headers::check_expected_owner(header, ctx.header(header), &bucket, &owner)
    })
    .map_err(|e| e.with_headers(&cors))?;
    ctx.access = Some(bucket_access);
    ctx.verdict = Some(verdict);
    ctx.versioning = info.versioning;
    Ok(cors)
}

/// Decides the request again with what its handler has learnt since [`authorize`] (the tags a
/// PutObjectTagging body sets).
///
/// Errors: AccessDenied.
pub(super) fn authorize_again(ctx: &mut Ctx) -> S3Result<()> {
    let action = ctx
        .endpoint
        .action(ctx.has("versionId"))
        .expect("an authorized endpoint names an action");
    let resource = format!("{}/{}", ctx.bucket(), ctx.key());
    let cx = request_context(ctx, action, &resource, ctx.peer);
    let verdict = access::authorize(ctx.access(), &ctx.auth, &cx);
    verdict.check()?;
    ctx.verdict = Some(verdict);
    Ok(())
}

/// Whether a GET or HEAD of a missing key answers 403 rather than 404: S3 tells a caller that
/// a key does not exist only if it may list the bucket (`s3:ListBucket`, with the key as the
/// `s3:prefix`; S3 User Guide, "Permissions for object operations").
fn missing_keys_hidden(ctx: &Ctx, peer: Option<std::net::IpAddr>) -> bool {
    if !matches!(ctx.endpoint, Endpoint::GetObject | Endpoint::HeadObject) {
        return false;
    }
    // The owner's account may list its bucket unless a policy denies it: no evaluation on
    // the common path.
    let access = ctx.access();
    if !ctx.auth.anonymous && ctx.auth.account_id == access.owner && access.policy.is_none() {
        return false;
    }
    let resource = ctx.bucket().to_string();
    let cx = RequestContext {
        prefix: ctx.key.as_deref(),
        delimiter: None,
        max_keys: None,
        ..request_context(ctx, "s3:ListBucket", &resource, peer)
    };
    access::authorize(ctx.access(), &ctx.auth, &cx)
        .check()
        .is_err()
}

/// The request as bucket policy conditions see it.
pub(crate) fn request_context<'a>(
    ctx: &'a Ctx,
    action: &'a str,
    resource: &'a str,
    peer: Option<std::net::IpAddr>,
) -> RequestContext<'a> {
    let signed = !ctx.auth.anonymous;
    let now = now_secs();
    RequestContext {
        account: signed.then_some(ctx.auth.account_id.as_str()),
        user: signed.then_some(ctx.auth.user.as_str()),
        action,
        resource,
        source_ip: peer,
        secure_transport: ctx.secure,
        now_secs: now,
        prefix: ctx.q("prefix"),
        delimiter: ctx.q("delimiter"),
        max_keys: ctx.q("max-keys"),
        user_agent: ctx.header("user-agent"),
        referer: ctx.header("referer"),
        headers: Some(&ctx.headers),
        version_id: ctx.q("versionId"),
        signature_version: signed.then_some(ctx.auth.signature_version),
        auth_type: ctx.auth.auth_type(),
        signature_age_ms: ctx
            .auth
            .signed_at_secs
            .map(|at| now.saturating_sub(at) * 1000),
        tls_version: ctx.tls_version,
        existing_tags: ctx.existing_tags.as_deref(),
        request_tags: ctx.request_tags.as_deref(),
    }
}

/// Loads what the bucket's policy reads of the request before deciding: the tags of the
/// object acted on (`s3:ExistingObjectTag/<key>`, for the actions it applies to; none when the
/// object does not exist) and the tags an `x-amz-tagging` header sets
/// (`s3:RequestObjectTag/<key>`).
///
/// Errors: InvalidArgument for a malformed `x-amz-tagging`; metadata errors.
async fn load_policy_inputs(ctx: &mut Ctx, policy: &auth::policy::Policy) -> S3Result<()> {
    use Endpoint as E;
    if policy.uses_request_tags() {
        if let Some(value) = ctx.header("x-amz-tagging") {
            ctx.request_tags = Some(crate::protocol::tags::decode(value)?);
        }
    }
    let reads_tags = matches!(
        ctx.endpoint,
        E::GetObject
            | E::HeadObject
            | E::GetObjectTagging
            | E::PutObjectTagging
            | E::DeleteObjectTagging
            | E::GetObjectAcl
            | E::PutObjectAcl
    );
    if !(reads_tags && policy.uses_existing_tags()) {
        return Ok(());
    }
    let version = match ctx.q("versionId") {
        Some(v) => Some(hoard::store::VersionId::parse(v)?),
        None => None,
    };
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let headers = memory_first(
        move || match store.head_object_version(&bucket, &key, version) {
            Ok(info) => Ok(Some(info.headers)),
            Err(hoard::Error::NoSuchKey { .. } | hoard::Error::DeleteMarker { .. }) => Ok(None),
            Err(e) => Err(e),
        },
    )
    .await?;
    ctx.existing_tags = headers.map(|h| crate::protocol::tags::stored(&h));
    Ok(())
}

/// Keys with control characters that XML 1.0 cannot carry (U+0000..U+001F but tab, LF and CR;
/// U+007F is allowed by XML but refused with them, as no client means it) are refused where
/// objects are created (PutObject, CopyObject, CreateMultipartUpload, browser POST uploads):
/// listings that named them would be ill-formed for every client's parser. Tab, LF and CR are
/// kept (a listing writes CR as `&#13;`). Existing keys are never affected; S3 itself stores
/// such keys, and this is a deliberate, documented difference.
///
/// Errors: InvalidArgument naming the character.
fn refuse_control_characters(ctx: &Ctx) -> S3Result<()> {
    let creates = matches!(
        ctx.endpoint,
        Endpoint::PutObject | Endpoint::CopyObject | Endpoint::CreateMultipartUpload
    );
    match ctx.key.as_deref().filter(|_| creates) {
        Some(key) => refuse_control_key(key),
        None => Ok(()),
    }
}

/// The check of [`refuse_control_characters`] on one key.
///
/// Errors: InvalidArgument naming the character.
pub(crate) fn refuse_control_key(key: &str) -> S3Result<()> {
    if let Some(c) = key
        .chars()
        .find(|c| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "object key contains the control character U+{:04X}, which S3 listings (XML 1.0) cannot carry",
            c as u32
        ));
    }
    Ok(())
}
