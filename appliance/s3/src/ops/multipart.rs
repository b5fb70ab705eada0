//! Multipart upload operations: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads.
//!
//! Must not import `server`; of the other operations only the helpers of `object`, `tagging`
//! and `access_control`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use hoard::store::{CompletedPart, UploadOptions};

use crate::body::checksum::{combine_parts, ChecksumAlgorithm};
use crate::engine::blocking;
use crate::error::S3Result;
use crate::protocol::dates::iso8601;
use crate::request::{Ctx, MAX_PUT_BYTES};
use crate::response::{stored_response, xml_response};
use crate::s3_error;
use crate::xml::{self, XmlBuilder};
use crate::xml::{malformed, walk, Node};

pub(super) fn part_number(ctx: &Ctx) -> S3Result<u32> {
    ctx.q("partNumber")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "partNumber must be an integer between 1 and 10000"
            )
        })
}

pub(super) fn upload_id(ctx: &Ctx) -> S3Result<String> {
    ctx.q("uploadId")
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| s3_error!(InvalidArgument, BAD_REQUEST, "uploadId is required"))
}

pub(super) async fn create(ctx: Ctx) -> S3Result<Response> {
    let algorithm = match ctx.header("x-amz-checksum-algorithm") {
        Some(a) => Some(ChecksumAlgorithm::parse(a).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "unsupported x-amz-checksum-algorithm {a:?}"
            )
        })?),
        None => None,
    };
    let checksum_type = match (algorithm, ctx.header("x-amz-checksum-type")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "x-amz-checksum-type needs x-amz-checksum-algorithm"
            ))
        }
        (Some(a), None) => Some(a.default_multipart_type().to_string()),
        (Some(a), Some(t)) => {
            let t = t.trim().to_ascii_uppercase();
            if !a.supports_multipart_type(&t) {
                return Err(s3_error!(
                    InvalidRequest,
                    BAD_REQUEST,
                    "the {} checksum type is not supported with {} for multipart uploads",
                    t,
                    a.name()
                ));
            }
            Some(t)
        }
    };
    let mut headers = ctx.stored_headers();
    headers.extend(super::access_control::new_object_acl(&ctx)?);
    headers.extend(super::tagging::from_header(&ctx)?);
    let opts = UploadOptions {
        content_type: ctx.header("content-type").map(str::to_string),
        user_metadata: ctx.user_metadata()?,
        headers,
        checksum_algorithm: algorithm.map(|a| a.name().to_string()),
        checksum_type: checksum_type.clone(),
    };
    let store = ctx.state.store.clone();
    let (bucket, key, owner) = (
        ctx.bucket().to_string(),
        ctx.key().to_string(),
        ctx.auth.account_id.clone(),
    );
    let id = blocking(move || store.create_multipart_upload(&bucket, &key, &owner, opts)).await?;
    let mut x = XmlBuilder::new("InitiateMultipartUploadResult");
    x.elem("Bucket", ctx.bucket())
        .elem("Key", ctx.key())
        .elem("UploadId", &id);
    let mut resp = xml_response(x.finish("InitiateMultipartUploadResult"))?;
    if let (Some(a), Some(t)) = (algorithm, checksum_type) {
        let headers = resp.headers_mut();
        headers.insert(
            "x-amz-checksum-algorithm",
            a.name().parse().expect("algorithm names are valid headers"),
        );
        headers.insert(
            "x-amz-checksum-type",
            t.parse().expect("checksum types are valid headers"),
        );
    }
    Ok(resp)
}

pub(super) async fn upload_part(mut ctx: Ctx) -> S3Result<Response> {
    let id = upload_id(&ctx)?;
    let part_number = part_number(&ctx)?;
    ctx.require_length()?;
    let md5 = ctx.content_md5()?;
    let _permit = ctx.stream_permit_for_body().await?;
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let writer = blocking(move || store.begin_part(&bucket, &key, &id, part_number, md5)).await?;
    let writer = ctx.stream_body_into(writer, MAX_PUT_BYTES).await?;
    let part = blocking(move || writer.finish()).await?;
    stored_response(&part.etag, &part.checksums)
}

pub(super) async fn complete(mut ctx: Ctx) -> S3Result<Response> {
    let id = upload_id(&ctx)?;
    let body = ctx.small_body(xml::MAX_XML_REQUEST_BYTES).await?;
    let parts: Vec<CompletedPart> = parse_complete_multipart(&body)?
        .into_iter()
        .map(|p| CompletedPart {
            part_number: p.part_number,
            etag: p.etag,
            checksums: p.checksums,
        })
        .collect();
    // A full-object checksum the client sends with Complete must match the combined one.
    let expected: Vec<(String, String)> = ChecksumAlgorithm::ALL
        .into_iter()
        .filter_map(|a| {
            Some((
                a.name().to_string(),
                ctx.header(&a.header())?.trim().to_string(),
            ))
        })
        .collect();
    let condition = super::object::write_condition(&ctx)?;
    super::object::check_write_condition(&ctx, &condition).await?;
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let info = blocking(move || {
        let combine = move |algorithm: &str, checksum_type: &str, parts: &[(u64, String)]| {
            let value = combine_parts(algorithm, checksum_type, parts)?;
            match expected.iter().find(|(a, _)| a == algorithm) {
                Some((_, sent)) if *sent != value => Err(hoard::Error::BadDigest),
                _ => Ok(value),
            }
        };
        store.complete_multipart_upload(
            &bucket,
            &key,
            &id,
            &parts,
            Some(&combine),
            condition.as_ref(),
        )
    })
    .await?;
    let mut x = XmlBuilder::new("CompleteMultipartUploadResult");
    x.elem("Location", format!("/{}/{}", ctx.bucket(), ctx.key()))
        .elem("Bucket", ctx.bucket())
        .elem("Key", ctx.key())
        .elem("ETag", format!("\"{}\"", info.etag));
    let checksum_type = info
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-checksum-type")
        .map(|(_, t)| t.as_str());
    xml::checksum_elems(&mut x, &info.checksums, checksum_type);
    let mut resp = xml_response(x.finish("CompleteMultipartUploadResult"))?;
    ctx.add_version_header(info.version, resp.headers_mut());
    Ok(resp)
}

pub(super) async fn abort(ctx: Ctx) -> S3Result<Response> {
    let id = upload_id(&ctx)?;
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    blocking(move || store.abort_multipart_upload(&bucket, &key, &id)).await?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("static response"))
}

fn parse_count(ctx: &Ctx, name: &str, default: usize) -> S3Result<usize> {
    match ctx.q(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "{name} must be a non-negative integer"
            )
        }),
    }
}

pub(super) async fn list_parts(ctx: Ctx) -> S3Result<Response> {
    let id = upload_id(&ctx)?;
    let marker = parse_count(&ctx, "part-number-marker", 0)? as u32;
    let max = parse_count(&ctx, "max-parts", 1000)?;
    let store = ctx.state.store.clone();
    let (bucket, key, uid) = (ctx.bucket().to_string(), ctx.key().to_string(), id.clone());
    let page = blocking(move || store.list_parts(&bucket, &key, &uid, marker, max)).await?;
    let mut x = XmlBuilder::new("ListPartsResult");
    x.elem("Bucket", ctx.bucket())
        .elem("Key", ctx.key())
        .elem("UploadId", &id)
        .elem("PartNumberMarker", marker.to_string())
        .opt(
            "NextPartNumberMarker",
            page.next_part_number_marker.map(|n| n.to_string()),
        )
        .elem("MaxParts", max.min(1000).to_string())
        .elem("IsTruncated", page.is_truncated.to_string())
        .elem("StorageClass", "STANDARD");
    for p in &page.parts {
        x.open("Part")
            .elem("PartNumber", p.part_number.to_string())
            .elem("LastModified", iso8601(p.last_modified_unix_ms))
            .elem("ETag", format!("\"{}\"", p.etag))
            .elem("Size", p.size.to_string());
        for (algorithm, value) in &p.checksums {
            x.elem(&format!("Checksum{algorithm}"), value);
        }
        x.close("Part");
    }
    xml_response(x.finish("ListPartsResult"))
}

pub(super) async fn list_uploads(ctx: Ctx) -> S3Result<Response> {
    let max = parse_count(&ctx, "max-uploads", 1000)?;
    let prefix = ctx.q("prefix").unwrap_or_default().to_string();
    let key_marker = ctx
        .q("key-marker")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let id_marker = ctx
        .q("upload-id-marker")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let store = ctx.state.store.clone();
    let bucket = ctx.bucket().to_string();
    let (p, km, im) = (prefix.clone(), key_marker.clone(), id_marker.clone());
    let page = blocking(move || {
        store.list_multipart_uploads(&bucket, &p, km.as_deref(), im.as_deref(), max)
    })
    .await?;
    let mut x = XmlBuilder::new("ListMultipartUploadsResult");
    x.elem("Bucket", ctx.bucket())
        .elem("KeyMarker", key_marker.unwrap_or_default())
        .elem("UploadIdMarker", id_marker.unwrap_or_default())
        .elem("Prefix", &prefix)
        .elem("MaxUploads", max.min(1000).to_string())
        .elem("IsTruncated", page.is_truncated.to_string());
    if let Some((k, u)) = &page.next_marker {
        x.elem("NextKeyMarker", k).elem("NextUploadIdMarker", u);
    }
    for u in &page.uploads {
        x.open("Upload")
            .elem("Key", &u.key)
            .elem("UploadId", &u.upload_id)
            .open("Initiator")
            .elem("ID", &u.owner)
            .elem("DisplayName", &u.owner)
            .close("Initiator")
            .open("Owner")
            .elem("ID", &u.owner)
            .elem("DisplayName", &u.owner)
            .close("Owner")
            .elem("StorageClass", "STANDARD")
            .elem("Initiated", iso8601(u.initiated_unix_ms))
            .close("Upload");
    }
    xml_response(x.finish("ListMultipartUploadsResult"))
}

/// A part named in a CompleteMultipartUpload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPart {
    /// PartNumber.
    pub part_number: u32,
    /// ETag.
    pub etag: String,
    /// `Checksum<ALGORITHM>` elements: (algorithm as S3 names it, base64 value).
    pub checksums: Vec<(String, String)>,
}

/// Parses `<CompleteMultipartUpload><Part><PartNumber/><ETag/>...</Part>...`.
pub fn parse_complete_multipart(body: &[u8]) -> S3Result<Vec<RequestPart>> {
    let mut parts = Vec::new();
    let mut number: Option<u32> = None;
    let mut etag: Option<String> = None;
    let mut checksums = Vec::new();
    walk(body, |node| {
        match node {
            Node::Text(path, text) if path.starts_with("CompleteMultipartUpload/Part/Checksum") => {
                let algorithm = &path["CompleteMultipartUpload/Part/Checksum".len()..];
                // ChecksumType is not a checksum.
                if algorithm != "Type" {
                    checksums.push((algorithm.to_string(), text));
                }
            }
            Node::Text("CompleteMultipartUpload/Part/PartNumber", text) => {
                number = Some(
                    text.trim()
                        .parse()
                        .map_err(|_| malformed(format!("PartNumber {text:?} is not a number")))?,
                )
            }
            Node::Text("CompleteMultipartUpload/Part/ETag", text) => etag = Some(text),
            Node::End("CompleteMultipartUpload/Part") => match (number.take(), etag.take()) {
                (Some(part_number), Some(etag)) => parts.push(RequestPart {
                    part_number,
                    etag,
                    checksums: std::mem::take(&mut checksums),
                }),
                _ => return Err(malformed("each Part needs PartNumber and ETag")),
            },
            _ => {}
        }
        Ok(())
    })?;
    // The schema requires at least one Part (S3 answers MalformedXML).
    if parts.is_empty() {
        return Err(malformed(
            "CompleteMultipartUpload must name at least one Part",
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_request_parses_and_rejects_garbage() {
        let body = br#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"a&amp;b"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>x</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>c</ETag></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart(body).unwrap();
        assert_eq!(
            parts,
            vec![
                RequestPart {
                    part_number: 1,
                    etag: "\"a&b\"".into(),
                    checksums: vec![("CRC32".into(), "x".into())],
                },
                RequestPart {
                    part_number: 2,
                    etag: "c".into(),
                    checksums: vec![],
                }
            ]
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload><Part>")
                .unwrap_err()
                .code,
            "MalformedXML"
        );
        assert_eq!(parse_complete_multipart(b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>").unwrap_err().code, "MalformedXML");
    }
}
