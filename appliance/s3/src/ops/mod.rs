//! S3 operations, routed on method, bucket, key and sub-resource: [`bucket`], [`object`],
//! [`multipart`], [`copy`], [`post_object`] (browser uploads), [`access_control`] (`?acl`,
//! `?policy`, `?publicAccessBlock`), [`cors`], [`tagging`], [`lifecycle`], [`versioning`]
//! (`?versioning`, `?versions`), and Hoard's own
//! [`admin`] requests ([`directory`]: accounts, users, keys; [`tenancy`]: limits, usage,
//! metrics). Routing and the one authorization of every request ([`crate::auth::access`])
//! live here; each operation lives in the file of what it acts on.

mod access_control;
mod admin;
mod bucket;
mod copy;
pub mod cors;
mod directory;
mod lifecycle;
mod multipart;
mod object;
mod post_object;
mod tagging;
mod tenancy;
mod versioning;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

use crate::auth::access;
use crate::auth::policy::RequestContext;
use crate::auth::{self, RequestView};
use crate::engine::blocking;
use crate::error::S3Result;
pub(crate) use admin::process_resident_bytes;

use crate::request::{now_secs, parse_query, parse_target, Ctx, PeerAddr, RequestNote};
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
    let raw_path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (vhost, bucket, key) = parse_target(&host, &raw_path, &state.config.domains)?;
    let view = RequestView {
        method: &parts.method,
        raw_path: &raw_path,
        query: &query,
        headers: &parts.headers,
        vhost_bucket: vhost.as_deref(),
    };
    let auth = auth::authenticate(&view, &state.credentials, &state.config.region, now_secs())?;
    // Admin requests live outside the bucket namespace, on path-style requests only: in
    // virtual-host style, `/_hoard/status` is a key of the Host's bucket.
    note.account = auth.account_id.clone();
    note.bucket = bucket.clone();
    if vhost.is_none() && raw_path.starts_with(admin::PREFIX) {
        note.operation = "Admin";
        return admin::dispatch(&state, &parts.method, &raw_path, &query, &auth).await;
    }
    let mut ctx = Ctx {
        state,
        method: parts.method,
        headers: parts.headers,
        query,
        bucket,
        key,
        auth,
        peer,
        access: None,
        verdict: None,
        versioning: hoard::Versioning::Unversioned,
        body: Some(body),
    };

    note.operation = operation_of(&ctx);
    refuse_control_characters(&ctx)?;
    if ctx.method == Method::OPTIONS {
        return match ctx.bucket {
            Some(_) => cors::preflight(ctx).await,
            None => Err(s3_error!(
                BadRequest,
                BAD_REQUEST,
                "a CORS preflight names a bucket"
            )),
        };
    }
    let cors = authorize(&mut ctx, peer).await?;
    if ctx.auth.anonymous {
        // Anonymous callers count against the bucket owner's account.
        note.account = ctx
            .access
            .as_ref()
            .map(|a| a.owner.clone())
            .unwrap_or_default();
    }
    ctx.state
        .qos
        .admit(&note.account, ctx.bucket.as_deref(), note.bytes_in)
        .map_err(|e| e.with_headers(&cors))?;
    match route(ctx).await {
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

/// The operation's name, for metrics and usage: the S3 action without `s3:`
/// (`GetObject`, `PutObject`, `ListBucket`, ...), `ListBuckets`, `PostObject` or
/// `PreflightCORS`.
fn operation_of(ctx: &Ctx) -> &'static str {
    if ctx.method == Method::OPTIONS {
        return "PreflightCORS";
    }
    if ctx.bucket.is_none() {
        return "ListBuckets";
    }
    if post_object::is_post_upload(ctx) {
        return "PostObject";
    }
    let action = access::action_of(ctx.method.as_str(), ctx.key.is_some(), |s| ctx.has(s));
    action.strip_prefix("s3:").unwrap_or(action)
}

/// The tags an object's stored headers carry (lifecycle filters).
pub(crate) fn object_tags(headers: &[(String, String)]) -> Vec<(String, String)> {
    tagging::of_headers(headers).unwrap_or_default()
}

/// Runs an authorized request.
async fn route(ctx: Ctx) -> S3Result<Response> {
    if post_object::is_post_upload(&ctx) {
        return post_object::post(ctx).await;
    }
    let m = ctx.method.clone();
    match (ctx.bucket.is_some(), ctx.key.is_some()) {
        (false, _) if m == Method::GET => bucket::list_buckets(ctx).await,
        (false, _) => Err(s3_error!(
            MethodNotAllowed,
            METHOD_NOT_ALLOWED,
            "{m} is not allowed on the service"
        )),
        (true, false) => bucket::dispatch(ctx).await,
        (true, true) => {
            if ctx.has("uploads") || ctx.has("uploadId") {
                multipart::dispatch(ctx).await
            } else {
                object::dispatch(ctx).await
            }
        }
    }
}

/// Hoard's header (at CreateBucket) and sub-resource (GET) for a bucket's protection:
/// `replicas:N` or `ec:K+M`; the pool's default when absent.
pub const PROTECTION: &str = "x-hoard-protection";

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
    let action = access::action_of(ctx.method.as_str(), ctx.key.is_some(), |s| ctx.has(s));
    if action == "s3:CreateBucket" {
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
    let (info, attributes) = blocking(move || store.bucket_attributes(&name)).await?;
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
    let per_key = ctx.method == Method::POST && ctx.has("delete") && ctx.key.is_none();
    if !per_key && !post_object::is_post_upload(ctx) {
        verdict.check().map_err(|e| e.with_headers(&cors))?;
    }
    ctx.access = Some(bucket_access);
    ctx.verdict = Some(verdict);
    ctx.versioning = info.versioning;
    Ok(cors)
}

/// The request as bucket policy conditions see it.
pub(crate) fn request_context<'a>(
    ctx: &'a Ctx,
    action: &'a str,
    resource: &'a str,
    peer: Option<std::net::IpAddr>,
) -> RequestContext<'a> {
    let signed = !ctx.auth.anonymous;
    RequestContext {
        account: signed.then_some(ctx.auth.account_id.as_str()),
        user: signed.then_some(ctx.auth.user.as_str()),
        action,
        resource,
        source_ip: peer,
        secure_transport: false,
        now_secs: now_secs(),
        prefix: ctx.q("prefix"),
        delimiter: ctx.q("delimiter"),
        max_keys: ctx.q("max-keys"),
        user_agent: ctx.header("user-agent"),
        referer: ctx.header("referer"),
    }
}

/// The sub-resources we do not implement; asking for one gets NotImplemented, not a wrong answer.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "encryption",
    "inventory",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "legal-hold",
    "select",
    "torrent",
    "website",
    "accelerate",
    "analytics",
    "intelligent-tiering",
];

/// Keys with control characters (U+0000..U+001F, U+007F) are refused where objects are created
/// (PutObject, CreateMultipartUpload): XML 1.0 cannot carry them, so listings that named them
/// would be ill-formed for every client's parser. Existing keys are never affected; S3 itself
/// stores such keys, and this is a deliberate, documented difference.
///
/// Errors: InvalidArgument naming the character.
fn refuse_control_characters(ctx: &Ctx) -> S3Result<()> {
    let creates = ctx.method == Method::PUT || (ctx.method == Method::POST && ctx.has("uploads"));
    let Some(key) = ctx.key.as_deref().filter(|_| creates) else {
        return Ok(());
    };
    if let Some(c) = key.chars().find(|c| c.is_ascii_control()) {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "object key contains the control character U+{:04X}, which S3 listings (XML 1.0) cannot carry",
            c as u32
        ));
    }
    Ok(())
}

fn refuse_unsupported(ctx: &Ctx) -> S3Result<()> {
    if let Some(sub) = UNSUPPORTED_SUBRESOURCES.iter().find(|s| ctx.has(s)) {
        return Err(s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "the ?{sub} sub-resource is not implemented"
        ));
    }
    Ok(())
}
