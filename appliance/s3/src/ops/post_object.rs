//! Browser-based uploads (S3 API Reference, "PostObject"; "Browser-Based Uploads Using POST
//! (AWS Signature Version 4)" and its SigV2 form): `POST /<bucket>` with a
//! `multipart/form-data` body whose fields carry the key, metadata, a base64 policy document
//! and its signature, and end with the `file` field, which is streamed to the engine (never
//! held whole).
//!
//! - **Signature**: SigV4 (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
//!   `X-Amz-Signature`: HMAC-SHA256 of the base64 policy under the scope's signing key) or
//!   SigV2 (`AWSAccessKeyId`, `Signature`: base64 HMAC-SHA1 of the base64 policy). The signer
//!   is the caller, authorized for `s3:PutObject` on the key like any request. A form with
//!   no signature is anonymous (and may carry no policy).
//! - **Policy**: `expiration` (ISO 8601) and `conditions`: `{"field": "value"}` and `["eq",
//!   "$field", "value"]` (exact), `["starts-with", "$field", "prefix"]` (`""` allows any),
//!   `["content-length-range", min, max]` (the file's bytes). Every form field but `policy`,
//!   the signature fields, `file`, `x-ignore-*` and `x-amz-checksum-*` must be named by a
//!   condition. Field names are case-insensitive.
//! - **Fields**: `key` (`${filename}` is replaced by the file's name), `acl`, `Content-Type`,
//!   `Cache-Control`, `Content-Disposition`, `Content-Encoding`, `Expires`, `x-amz-meta-*`,
//!   `x-amz-security-token`, `x-amz-checksum-<algorithm>` (the file's checksum, verified: a
//!   mismatch is `BadDigest`), `success_action_redirect` (303 to it with `bucket`, `key` and
//!   `etag` appended), `success_action_status` (200, 201 with a `PostResponse` document, or
//!   204, the default). Fields after `file` are ignored.
//! - **Errors**: a policy that is not one (not JSON, no or a malformed `expiration`, no or
//!   empty `conditions`, a `content-length-range` without two ordered whole numbers) is
//!   `400 InvalidPolicyDocument`; a policy without a signature `400 InvalidArgument`; an
//!   expired policy, a failed condition or an unnamed field
//!   `403 AccessDenied` ("Invalid according to Policy: ..."); a field Hoard does not implement
//!   (`x-amz-server-side-encryption`, ...) `501 NotImplemented`; a forged signature
//!   `SignatureDoesNotMatch`; a file outside `content-length-range` `EntityTooLarge` or
//!   `EntityTooSmall`; a body that is not multipart/form-data `MalformedPOSTRequest`. Nothing
//!   is stored unless everything holds: the object is committed after the file's last byte.
//!
//! Must not import `server`; of the other operations only `access_control`'s helpers.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;

use crate::auth::access;
use crate::auth::{signatures_equal, sigv2, sigv4, Auth, Payload, SignedIn};
use crate::body::checksum::{ChecksumAlgorithm, ChecksumCheck, Expected};
use crate::body::{BatchWriter, WRITE_BATCH_BYTES};
use crate::engine::blocking;
use crate::error::{S3Error, S3Result};
use crate::protocol::dates::now_secs;
use crate::request::{Ctx, MAX_PUT_BYTES};
use crate::response::bad_header;
use crate::s3_error;
use crate::xml::XmlBuilder;

/// Most bytes of all fields before `file`.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most fields before `file`.
const MAX_FIELDS: usize = 100;
/// Largest policy document, decoded.
const MAX_POLICY_BYTES: usize = 20 * 1024;

fn malformed(detail: impl std::fmt::Display) -> S3Error {
    s3_error!(
        MalformedPOSTRequest,
        BAD_REQUEST,
        "the body of your POST request is not well-formed multipart/form-data: {detail}"
    )
}

fn policy_refusal(detail: impl std::fmt::Display) -> S3Error {
    s3_error!(
        AccessDenied,
        FORBIDDEN,
        "Invalid according to Policy: {detail}"
    )
}

/// A policy document that is not one (S3: 400 InvalidPolicyDocument, "Invalid Policy: ..."),
/// as opposed to a valid policy the form does not satisfy (403, [`policy_refusal`]).
fn invalid_policy(detail: impl std::fmt::Display) -> S3Error {
    s3_error!(
        InvalidPolicyDocument,
        BAD_REQUEST,
        "Invalid Policy: {detail}"
    )
}

/// The form fields before `file`: (lower-case name, value), in order.
struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed policy: when it expires, its conditions.
struct PostPolicy {
    expiration_secs: u64,
    conditions: Vec<Value>,
    /// `content-length-range` (min, max), if given.
    length: Option<(u64, u64)>,
}

impl PostPolicy {
    fn parse(b64: &str) -> S3Result<PostPolicy> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| malformed("the policy is not base64"))?;
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(malformed("the policy is larger than 20 KB"));
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_policy(format!("Invalid JSON: {e}")))?;
        // Field names are case-sensitive: `EXPIRATION` is no expiration.
        let expiration = doc
            .get("expiration")
            .ok_or_else(|| invalid_policy("Policy missing expiration."))?;
        let expiration_secs = expiration
            .as_str()
            .and_then(parse_iso8601)
            .ok_or_else(|| invalid_policy(format!("Invalid 'expiration' value: {expiration}")))?;
        let conditions = doc
            .get("conditions")
            .ok_or_else(|| invalid_policy("Policy missing conditions."))?
            .as_array()
            .cloned()
            .ok_or_else(|| invalid_policy("'conditions' must be a list"))?;
        if conditions.is_empty() {
            return Err(invalid_policy(
                "'conditions' is empty; it must name at least the bucket",
            ));
        }
        let mut length = None;
        for c in &conditions {
            let Some(items) = c.as_array() else { continue };
            if items.first().and_then(Value::as_str) != Some("content-length-range") {
                continue;
            }
            let bound = |v: Option<&Value>| v.and_then(Value::as_u64);
            match (items.len(), bound(items.get(1)), bound(items.get(2))) {
                (3, Some(min), Some(max)) if min <= max => length = Some((min, max)),
                _ => {
                    return Err(invalid_policy(format!(
                        "Invalid content-length-range: {c} (two whole numbers, the lower first)"
                    )))
                }
            }
        }
        Ok(PostPolicy {
            expiration_secs,
            conditions,
            length,
        })
    }

    /// Checks the expiration, every condition against the form and the bucket, and that
    /// every field is named by a condition.
    ///
    /// Errors: AccessDenied ("Invalid according to Policy").
    fn check(&self, form: &Form, bucket: &str, now: u64) -> S3Result<()> {
        if now >= self.expiration_secs {
            return Err(policy_refusal("Policy expired."));
        }
        let value_of = |field: &str| -> Option<String> {
            match field {
                "bucket" => Some(bucket.to_string()),
                f => form.get(f).map(str::to_string),
            }
        };
        let mut named: Vec<String> = vec!["bucket".into()];
        for c in &self.conditions {
            let failed = || policy_refusal(format!("Policy Condition failed: {c}"));
            match c {
                Value::Object(map) => {
                    for (field, want) in map {
                        let field = field.to_ascii_lowercase();
                        let want = want.as_str().ok_or_else(failed)?;
                        if value_of(&field).as_deref() != Some(want) {
                            return Err(failed());
                        }
                        named.push(field);
                    }
                }
                Value::Array(items) => match items.as_slice() {
                    [Value::String(op), Value::String(field), Value::String(want)]
                        if op.eq_ignore_ascii_case("eq")
                            || op.eq_ignore_ascii_case("starts-with") =>
                    {
                        let field = field.trim_start_matches('$').to_ascii_lowercase();
                        let have = value_of(&field).unwrap_or_default();
                        let ok = if op.eq_ignore_ascii_case("eq") {
                            have == *want
                        } else {
                            have.starts_with(want.as_str())
                        };
                        if !ok {
                            return Err(failed());
                        }
                        named.push(field);
                    }
                    [Value::String(op), _, _] if op == "content-length-range" => {}
                    _ => return Err(policy_refusal(format!("unknown condition {c}"))),
                },
                _ => return Err(policy_refusal(format!("unknown condition {c}"))),
            }
        }
        // A checksum of the file is verified against the file, not against the policy.
        let exempt = |n: &str| {
            matches!(
                n,
                "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file"
            ) || n.starts_with("x-ignore-")
                || n.strip_prefix("x-amz-checksum-")
                    .and_then(ChecksumAlgorithm::parse)
                    .is_some()
        };
        let extra: Vec<&str> = form
            .fields
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !exempt(n) && !named.iter().any(|m| m == n))
            .collect();
        if !extra.is_empty() {
            return Err(policy_refusal(format!(
                "Extra input fields: {}",
                extra.join(", ")
            )));
        }
        Ok(())
    }
}

/// Parses `2026-11-26T07:00:00.000Z` (fraction optional) into Unix seconds.
fn parse_iso8601(s: &str) -> Option<u64> {
    let s = s.trim();
    let compact: String = s
        .get(..19)?
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    crate::protocol::dates::parse_amz_date(&format!("{compact}Z"))
}

/// Who signed the form: the caller it authenticates as.
///
/// Errors: InvalidAccessKeyId, SignatureDoesNotMatch, AuthorizationQueryParametersError /
/// InvalidArgument for a malformed credential, InvalidToken / ExpiredToken.
fn signer(ctx: &Ctx, form: &Form) -> S3Result<Option<Auth>> {
    let creds = &ctx.state.credentials;
    let Some(policy) = form.get("policy") else {
        if form.get("x-amz-signature").is_some() || form.get("signature").is_some() {
            return Err(malformed("a signed form needs its policy field"));
        }
        return Ok(None);
    };
    let access_key = if let Some(signature) = form.get("x-amz-signature") {
        if form.get("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "X-Amz-Algorithm must be AWS4-HMAC-SHA256"
            ));
        }
        let credential = form.get("x-amz-credential").unwrap_or("");
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = parts.as_slice() else {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "X-Amz-Credential {credential:?} is not AKID/date/region/s3/aws4_request"
            ));
        };
        if *region != ctx.state.config.region || *service != "s3" {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "X-Amz-Credential names region {region} and service {service}; expecting {} and s3",
                ctx.state.config.region
            ));
        }
        let secret = creds.secret(access_key)?;
        let key = sigv4::signing_key(&secret, date, region, service);
        let expected = hex::encode(sigv4::hmac_sha256(&key, policy.as_bytes()));
        if !signatures_equal(&expected, &signature.to_ascii_lowercase()) {
            return Err(crate::auth::signature_mismatch());
        }
        access_key.to_string()
    } else if let (Some(access_key), Some(signature)) =
        (form.get("awsaccesskeyid"), form.get("signature"))
    {
        let secret = creds.secret(access_key)?;
        if !signatures_equal(&sigv2::sign(&secret, policy), signature) {
            return Err(crate::auth::signature_mismatch());
        }
        access_key.to_string()
    } else {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "Bucket POST must contain a signature: X-Amz-Signature (with X-Amz-Credential), or AWSAccessKeyId and Signature"
        ));
    };
    creds.check_session(
        &access_key,
        form.get("x-amz-security-token").unwrap_or(""),
        now_secs(),
    )?;
    let version = match form.get("x-amz-signature") {
        Some(_) => crate::auth::SIGV4,
        None => crate::auth::SIGV2,
    };
    let mut auth =
        Auth::of(creds, &access_key, SignedIn::Header, Payload::Unsigned)?.signed(version, None);
    auth.signed_in_form = true;
    Ok(Some(auth))
}

/// `POST /<bucket>` with a form: see the module doc.
/// A reader of a form body: each field but `file` holds at most [`MAX_FIELD_BYTES`] (multer
/// stops reading past it: a field is never buffered whole beyond that), `file` at most
/// [`MAX_PUT_BYTES`].
///
/// Errors: MalformedPOSTRequest for a content type without a boundary.
fn form_reader<S>(content_type: &str, stream: S) -> S3Result<multer::Multipart<'static>>
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let limits = multer::SizeLimit::new()
        .per_field(MAX_FIELD_BYTES as u64)
        .for_field("file", MAX_PUT_BYTES);
    Ok(multer::Multipart::with_constraints(
        stream,
        boundary,
        multer::Constraints::new().size_limit(limits),
    ))
}

/// Reads the fields before `file` (at most [`MAX_FIELDS`], [`MAX_FIELD_BYTES`] in all) and
/// the key they name (`${filename}` replaced by the file's name), checked as a PUT's key is.
/// Returns the form (its `key` field rewritten), the file field, and the key.
///
/// Errors: MalformedPOSTRequest; InvalidArgument for no key or a bad one.
async fn read_fields(
    multipart: &mut multer::Multipart<'static>,
) -> S3Result<(Form, multer::Field<'static>, String)> {
    let mut form = Form { fields: Vec::new() };
    let mut field_bytes = 0;
    let (file, file_name) = loop {
        let field = multipart
            .next_field()
            .await
            .map_err(malformed)?
            .ok_or_else(|| malformed("no file field"))?;
        let name = field.name().unwrap_or("").to_ascii_lowercase();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("").to_string();
            break (field, file_name);
        }
        let value = field.text().await.map_err(malformed)?;
        field_bytes += name.len() + value.len();
        if field_bytes > MAX_FIELD_BYTES || form.fields.len() >= MAX_FIELDS {
            return Err(malformed(format!(
                "at most {MAX_FIELDS} fields of {MAX_FIELD_BYTES} bytes in all before the file"
            )));
        }
        form.fields.push((name, value));
    };
    let key = form
        .get("key")
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "Bucket POST must contain a field named 'key'"
            )
        })?
        .replace("${filename}", &file_name);
    hoard::store::validate_key(&key)?;
    super::refuse_control_key(&key)?;
    if let Some(v) = form.fields.iter_mut().find(|(n, _)| n == "key") {
        v.1 = key.clone();
    }
    Ok((form, file, key))
}

/// What a browser POST's form goes through before anyone is believed, on a whole `body`:
/// its fields before `file`, its key, and its policy document (parsed, then checked against
/// the fields and `bucket` at `now_secs`). Returns the key. A hook for the fuzz target
/// `fuzz/fuzz_targets/post_form.rs`; `post` runs the same steps on a streamed body.
///
/// Errors: as `post`'s before the signature is checked.
pub async fn check_form(
    content_type: &str,
    body: bytes::Bytes,
    bucket: &str,
    now_secs: u64,
) -> S3Result<String> {
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(body)]);
    let mut multipart = form_reader(content_type, stream)?;
    let (form, _file, key) = read_fields(&mut multipart).await?;
    if let Some(p) = form.get("policy") {
        PostPolicy::parse(p)?.check(&form, bucket, now_secs)?;
    }
    Ok(key)
}

pub async fn post(mut ctx: Ctx) -> S3Result<Response> {
    let content_type = ctx.header("content-type").unwrap_or("").to_string();
    let stream = ctx.raw_body_stream(MAX_PUT_BYTES + MAX_FIELD_BYTES as u64 + 64 * 1024)?;
    let mut multipart = form_reader(&content_type, stream)?;
    let (form, mut file, key) = read_fields(&mut multipart).await?;
    // Who signed it (before anything of the policy is believed), what the policy allows, and
    // whether that caller may write the key.
    if let Some(auth) = signer(&ctx, &form)? {
        ctx.auth = auth;
    }
    let policy = match form.get("policy") {
        Some(p) => Some(PostPolicy::parse(p)?),
        None => None,
    };
    if let Some(p) = &policy {
        p.check(&form, ctx.bucket(), now_secs())?;
    }
    crate::protocol::headers::refuse_unimplemented_fields(
        form.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )?;
    // A field `x-amz-checksum-<algorithm>` is the file's checksum: verified as it streams.
    let mut checksum = form.fields.iter().find_map(|(n, v)| {
        let algorithm = ChecksumAlgorithm::parse(n.strip_prefix("x-amz-checksum-")?)?;
        Some(ChecksumCheck::new(
            algorithm,
            Expected::Header(v.trim().to_string()),
        ))
    });
    let resource = format!("{}/{key}", ctx.bucket());
    {
        let cx = super::request_context(&ctx, "s3:PutObject", &resource, ctx.peer);
        access::authorize(ctx.access(), &ctx.auth, &cx).check()?;
    }
    // The object: its headers and metadata from the fields, its ACL from `acl`.
    let mut headers: Vec<(String, String)> = crate::request::STORED_HEADERS
        .iter()
        .filter_map(|h| form.get(h).map(|v| (h.to_string(), v.to_string())))
        .collect();
    let acl_header = form.get("acl").map(str::to_string);
    headers.extend(super::access_control::new_object_acl_with(
        &ctx, acl_header,
    )?);
    let user_metadata: Vec<(String, String)> = form
        .fields
        .iter()
        .filter_map(|(n, v)| {
            n.strip_prefix("x-amz-meta-")
                .map(|m| (m.to_string(), v.clone()))
        })
        .collect();
    let metadata_bytes: usize = user_metadata.iter().map(|(n, v)| n.len() + v.len()).sum();
    if metadata_bytes > crate::request::MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            BAD_REQUEST,
            "user metadata is {metadata_bytes} bytes; the limit is {}",
            crate::request::MAX_USER_METADATA_BYTES
        ));
    }
    let opts = hoard::store::PutOptions {
        content_type: form
            .get("content-type")
            .map(str::to_string)
            .or_else(|| file.content_type().map(|m| m.to_string())),
        user_metadata,
        content_md5: None,
        verified_checksum: None,
        headers,
        condition: None,
    };
    let (min, max) = policy
        .as_ref()
        .and_then(|p| p.length)
        .unwrap_or((0, MAX_PUT_BYTES));
    let max = max.min(MAX_PUT_BYTES);
    // The file, streamed to the engine in batches; nothing is committed unless it ends
    // within the range. Its length is not known before it is read: the permit is a whole
    // stream's.
    let _permit = ctx
        .state
        .admission
        .stream(&ctx.share_account(), None)
        .await?;
    let store = ctx.state.store.clone();
    let (bucket, k) = (ctx.bucket().to_string(), key.clone());
    let writer = blocking(move || store.begin_put(&bucket, &k, opts)).await?;
    let mut writer = BatchWriter::new(writer);
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES);
    let mut total = 0u64;
    while let Some(chunk) = file.chunk().await.map_err(malformed)? {
        total += chunk.len() as u64;
        if total > max {
            return Err(s3_error!(
                EntityTooLarge,
                BAD_REQUEST,
                "your proposed upload exceeds the maximum allowed size of {max} bytes"
            ));
        }
        if let Some(c) = checksum.as_mut() {
            c.update(&chunk);
        }
        batch.extend_from_slice(&chunk);
        if batch.len() >= WRITE_BATCH_BYTES {
            writer.write(std::mem::take(&mut batch), ()).await?;
        }
    }
    if total < min {
        return Err(s3_error!(
            EntityTooSmall,
            BAD_REQUEST,
            "your proposed upload of {total} bytes is smaller than the minimum allowed size of {min} bytes"
        ));
    }
    if !batch.is_empty() {
        writer.write(batch, ()).await?;
    }
    // A checksum mismatch drops the writer: nothing is committed.
    let verified = checksum.map(|c| c.finish(&[])).transpose()?;
    let mut writer = writer.finish().await?;
    if let Some((algorithm, base64)) = verified {
        writer.set_verified_checksum(&algorithm, &base64);
    }
    let info = blocking(move || writer.finish()).await?;
    answer(&ctx, &form, &key, &info.etag)
}

/// The answer to a stored upload: a redirect, or the status the form asked for.
fn answer(ctx: &Ctx, form: &Form, key: &str, etag: &str) -> S3Result<Response> {
    let enc = |s: &str| crate::protocol::uri::uri_encode(s, false);
    let location = format!(
        "/{}/{}",
        ctx.bucket(),
        crate::protocol::uri::uri_encode(key, true)
    );
    let redirect = form
        .get("success_action_redirect")
        .or_else(|| form.get("redirect"))
        .filter(|r| !r.is_empty());
    if let Some(url) = redirect {
        let sep = if url.contains('?') { '&' } else { '?' };
        let to = format!(
            "{url}{sep}bucket={}&key={}&etag={}",
            enc(ctx.bucket()),
            enc(key),
            enc(&format!("\"{etag}\""))
        );
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header("location", to)
            .header("etag", format!("\"{etag}\""))
            .body(Body::empty())
            .map_err(bad_header);
    }
    let status = match form.get("success_action_status") {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    };
    let body = if status == StatusCode::CREATED {
        let mut x = XmlBuilder::bare("PostResponse");
        x.elem("Location", &location)
            .elem("Bucket", ctx.bucket())
            .elem("Key", key)
            .elem("ETag", format!("\"{etag}\""));
        Body::from(x.finish("PostResponse"))
    } else {
        Body::empty()
    };
    Response::builder()
        .status(status)
        .header("etag", format!("\"{etag}\""))
        .header("location", location)
        .body(body)
        .map_err(bad_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn policy(doc: &str) -> PostPolicy {
        PostPolicy::parse(&base64::engine::general_purpose::STANDARD.encode(doc)).unwrap()
    }

    #[test]
    fn conditions_cover_every_field() {
        let p = policy(
            r#"{"expiration":"2030-01-01T00:00:00.000Z","conditions":[{"bucket":"b"},
            ["starts-with","$key","up/"],["eq","$Content-Type","image/png"],
            ["starts-with","$x-amz-meta-tag",""],["content-length-range",1,100]]}"#,
        );
        assert_eq!(p.length, Some((1, 100)));
        let ok = form(&[
            ("key", "up/a.png"),
            ("content-type", "image/png"),
            ("x-amz-meta-tag", "anything"),
            ("policy", "..."),
            ("x-ignore-me", "1"),
        ]);
        let now = 1_795_700_000;
        p.check(&ok, "b", now).unwrap();
        assert!(p
            .check(&ok, "other", now)
            .unwrap_err()
            .message
            .contains("Condition failed"));
        let wrong_key = form(&[("key", "down/a.png"), ("content-type", "image/png")]);
        assert_eq!(
            p.check(&wrong_key, "b", now).unwrap_err().code,
            "AccessDenied"
        );
        let extra = form(&[
            ("key", "up/a"),
            ("content-type", "image/png"),
            ("acl", "public-read"),
        ]);
        assert!(p
            .check(&extra, "b", now)
            .unwrap_err()
            .message
            .contains("Extra input fields: acl"));
        let expired =
            policy(r#"{"expiration":"2020-01-01T00:00:00Z","conditions":[{"bucket":"b"}]}"#);
        assert!(expired
            .check(&form(&[]), "b", now)
            .unwrap_err()
            .message
            .contains("expired"));
    }

    /// A document that is no policy is 400 InvalidPolicyDocument, as S3 answers it.
    #[test]
    fn malformed_policies_are_invalid_policy_documents() {
        use base64::Engine as _;
        for doc in [
            "not json",
            r#"{"expiration":"2030-01-01","conditions":[{"bucket":"b"}]}"#,
            r#"{"EXPIRATION":"2030-01-01T00:00:00Z","conditions":[{"bucket":"b"}]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z","CONDITIONS":[{"bucket":"b"}]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z"}"#,
            r#"{"conditions":[{"bucket":"b"}]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",5]]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",-1,5]]}"#,
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",9,5]]}"#,
        ] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
            let e = PostPolicy::parse(&b64)
                .err()
                .unwrap_or_else(|| panic!("{doc} parsed"));
            assert_eq!(
                (e.code, e.status.as_u16()),
                ("InvalidPolicyDocument", 400),
                "{doc}"
            );
        }
    }
}
