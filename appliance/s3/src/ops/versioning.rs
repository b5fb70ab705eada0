//! `?versioning` and `?versions` on a bucket: GetBucketVersioning, PutBucketVersioning and
//! ListObjectVersions (Amazon S3 API Reference). The versions themselves are the engine's
//! (`store/versions.rs`); `versionId` on object requests is handled where each one lives.
//!
//! Must not import `server` or an operation file but `bucket`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use hoard::store::{VersionId, VersionPage, VersionQuery, Versioning};

use super::bucket::{parse_max, url_encoding};
use crate::engine::blocking;
use crate::error::S3Result;
use crate::protocol::dates::iso8601;
use crate::request::Ctx;
use crate::response::{bad_header, xml_response};
use crate::s3_error;
use crate::xml::{self, XmlBuilder};
use crate::xml::{malformed, walk, Node};

/// `GET /<bucket>?versioning`: the state, or an empty configuration for a bucket never
/// versioned.
pub(super) fn get(ctx: &Ctx) -> Response {
    let mut x = XmlBuilder::new("VersioningConfiguration");
    match ctx.versioning {
        Versioning::Enabled => {
            x.elem("Status", "Enabled");
        }
        Versioning::Suspended => {
            x.elem("Status", "Suspended");
        }
        Versioning::Unversioned => {}
    }
    xml_response(x.finish("VersioningConfiguration")).expect("static XML response")
}

/// `PUT /<bucket>?versioning`: Enabled or Suspended (a bucket never returns to unversioned).
///
/// Errors: MalformedXML; NotImplemented for MFA delete.
pub(super) async fn put(mut ctx: Ctx) -> S3Result<Response> {
    let body = ctx.small_body(xml::MAX_XML_REQUEST_BYTES).await?;
    let state = parse_versioning(&body)?;
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    blocking(move || store.set_bucket_versioning(&bucket, state)).await?;
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .map_err(bad_header)
}

/// `GET /<bucket>?versions` (ListObjectVersions): `prefix`, `delimiter`, `key-marker`,
/// `version-id-marker`, `max-keys`, `encoding-type`; versions and delete markers in key
/// order, newest first within a key.
///
/// Errors: InvalidArgument for a version-id-marker without a key-marker or a malformed one.
pub(super) async fn list_versions(ctx: Ctx) -> S3Result<Response> {
    let url_encode = url_encoding(&ctx)?;
    let key_marker = ctx.q("key-marker").filter(|m| !m.is_empty());
    let version_marker = match ctx.q("version-id-marker").filter(|m| !m.is_empty()) {
        None => None,
        Some(_) if key_marker.is_none() => {
            return Err(s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "a version-id-marker cannot be specified without a key-marker"
            ))
        }
        Some(m) => Some(VersionId::parse(m)?),
    };
    let query = VersionQuery {
        prefix: ctx.q("prefix").unwrap_or_default().to_string(),
        delimiter: ctx
            .q("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        key_marker: key_marker.map(str::to_string),
        version_id_marker: version_marker,
        max_keys: parse_max(&ctx, "max-keys")?,
    };
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let q = query.clone();
    let page: VersionPage = if query.max_keys == 0 {
        VersionPage::default()
    } else {
        blocking(move || store.list_object_versions(&bucket, &q)).await?
    };
    let enc = |s: &str| match url_encode {
        true => crate::protocol::uri::uri_encode(s, true),
        false => s.to_string(),
    };
    let owner = &ctx.access().owner;
    let mut x = XmlBuilder::new("ListVersionsResult");
    x.elem("Name", ctx.bucket())
        .elem("Prefix", enc(&query.prefix))
        .elem("KeyMarker", enc(key_marker.unwrap_or_default()))
        .elem(
            "VersionIdMarker",
            ctx.q("version-id-marker").unwrap_or_default(),
        );
    x.opt("NextKeyMarker", page.next_key_marker.as_deref().map(enc));
    x.opt(
        "NextVersionIdMarker",
        page.next_version_id_marker.map(|v| v.to_string()),
    );
    x.elem("MaxKeys", query.max_keys.to_string());
    x.opt("Delimiter", query.delimiter.as_deref().map(enc));
    if url_encode {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", page.is_truncated.to_string());
    for v in &page.versions {
        let element = if v.delete_marker {
            "DeleteMarker"
        } else {
            "Version"
        };
        x.open(element)
            .elem("Key", enc(&v.key))
            .elem("VersionId", v.version.to_string())
            .elem("IsLatest", v.is_latest.to_string())
            .elem("LastModified", iso8601(v.last_modified_unix_ms));
        if !v.delete_marker {
            x.elem("ETag", format!("\"{}\"", v.etag))
                .elem("Size", v.size.to_string())
                .elem("StorageClass", "STANDARD");
        }
        x.open("Owner")
            .elem("ID", owner)
            .elem("DisplayName", owner)
            .close("Owner")
            .close(element);
    }
    for p in &page.common_prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", enc(p))
            .close("CommonPrefixes");
    }
    xml_response(x.finish("ListVersionsResult"))
}

/// Parses `<VersioningConfiguration><Status>Enabled|Suspended</Status>
/// <MfaDelete/>?</VersioningConfiguration>` (PutBucketVersioning).
///
/// Errors: MalformedXML without a Status or with another one; NotImplemented for MFA delete.
pub fn parse_versioning(body: &[u8]) -> S3Result<hoard::store::Versioning> {
    let mut status = None;
    let mut mfa = None;
    walk(body, |node| {
        match node {
            Node::Text("VersioningConfiguration/Status", text) => status = Some(text),
            Node::Text("VersioningConfiguration/MfaDelete", text) => mfa = Some(text),
            _ => {}
        }
        Ok(())
    })?;
    if mfa.as_deref() == Some("Enabled") {
        return Err(crate::s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "MFA delete is not supported"
        ));
    }
    match status.as_deref() {
        Some("Enabled") => Ok(hoard::store::Versioning::Enabled),
        Some("Suspended") => Ok(hoard::store::Versioning::Suspended),
        Some(other) => Err(malformed(format!(
            "versioning Status must be Enabled or Suspended, not {other:?}"
        ))),
        None => Err(malformed("VersioningConfiguration needs a Status")),
    }
}
