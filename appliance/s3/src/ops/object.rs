//! Object operations: PutObject, GetObject (ranges, conditionals, response overrides),
//! HeadObject, DeleteObject, each of one version with `versionId` (S3 versioning; the
//! engine's `store/versions.rs` keeps the versions).
//!
//! Must not import `server` or an operation file but `access_control` and `tagging` (`copy` and
//! `multipart` build on it, not the reverse).

use std::io::Read;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hoard::store::{ByteRange, ObjectInfo, PutOptions, WriteCondition};

use crate::body::pump::{AccountBudget, Frame, RateFloor, MAX_FRAME_BYTES};
use crate::engine::{blocking, memory_first};
use crate::error::{S3Error, S3Result};
use crate::protocol::dates::http_date;
use crate::request::{Ctx, MAX_PUT_BYTES, STORED_HEADERS};
use crate::response::{bad_header, stored_response, with_checksums, xml_response};
use crate::s3_error;
use crate::state::Permit;
use crate::xml::XmlBuilder;

pub(super) async fn put_object(mut ctx: Ctx) -> S3Result<Response> {
    ctx.require_length()?;
    let condition = write_condition(&ctx)?;
    check_write_condition(&ctx, &condition).await?;
    let mut headers = ctx.stored_headers();
    headers.extend(super::access_control::new_object_acl(&ctx)?);
    headers.extend(super::tagging::from_header(&ctx)?);
    let opts = PutOptions {
        content_type: ctx.header("content-type").map(str::to_string),
        user_metadata: ctx.user_metadata()?,
        content_md5: ctx.content_md5()?,
        verified_checksum: None,
        headers,
        condition,
    };
    let _permit = ctx.stream_permit_for_body().await?;
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let writer = memory_first(move || store.begin_put(&bucket, &key, opts.clone())).await?;
    let writer = ctx.stream_body_into(writer, MAX_PUT_BYTES).await?;
    // A small object of an unversioned bucket commits from this thread and waits for its
    // durable write asynchronously; others on a blocking thread.
    let info = match hoard::store::memory_only(|| writer.finishes_in_memory()) {
        Ok(true) => crate::engine::wait(writer.finish_staged()?).await?,
        _ => blocking(move || writer.finish()).await?,
    };
    let mut response = stored_response(&info.etag, &info.checksums)?;
    add_expiration(&ctx, &info, response.headers_mut());
    ctx.add_version_header(info.version, response.headers_mut());
    Ok(response)
}

/// `x-amz-expiration` when a lifecycle rule of the bucket expires the object.
fn add_expiration(ctx: &Ctx, info: &ObjectInfo, headers: &mut axum::http::HeaderMap) {
    let expiration = crate::lifecycle::expiration_header(
        &ctx.access().attributes,
        info,
        ctx.state.lifecycle.day,
    );
    if let Some(v) = expiration.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
        headers.insert("x-amz-expiration", v);
    }
}

/// Parses `Range: bytes=...`; `None` for an absent or unsupported (multi-range) header, which
/// RFC 9110 lets a server ignore.

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

/// `GET /<bucket>/<key>?attributes` (GetObjectAttributes): the attributes that
/// `x-amz-object-attributes` names (`ETag`, `Checksum`, `ObjectParts`, `StorageClass`,
/// `ObjectSize`), read from the record alone; `ObjectParts` pages with `x-amz-max-parts`
/// (default 1000) and `x-amz-part-number-marker`.
///
/// Errors: InvalidArgument for a missing or unknown attribute; NoSuchKey.
pub(super) async fn get_attributes(ctx: Ctx) -> S3Result<Response> {
    const KNOWN: [&str; 5] = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    let wanted: Vec<String> = ctx
        .header("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "x-amz-object-attributes must name at least one of {}",
            KNOWN.join(", ")
        ));
    }
    if let Some(bad) = wanted.iter().find(|a| !KNOWN.contains(&a.as_str())) {
        return Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "unknown object attribute {bad} (known: {})",
            KNOWN.join(", ")
        ));
    }
    let (max_parts, marker) = {
        let number = |name: &str, default: u32| -> S3Result<u32> {
            match ctx.header(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| {
                    s3_error!(InvalidArgument, BAD_REQUEST, "{name} {v:?} is not a number")
                }),
            }
        };
        (
            number("x-amz-max-parts", 1000)?.clamp(1, 1000),
            number("x-amz-part-number-marker", 0)?,
        )
    };
    let info = ctx.readable_version().await?;
    let has = |a: &str| wanted.iter().any(|w| w == a);
    let mut x = XmlBuilder::new("GetObjectAttributesResponse");
    if has("ETag") {
        x.elem("ETag", &info.etag);
    }
    if has("Checksum") && !info.checksums.is_empty() {
        x.open("Checksum");
        let checksum_type = info
            .headers
            .iter()
            .find(|(n, _)| n == "x-amz-checksum-type")
            .map_or("FULL_OBJECT", |(_, t)| t.as_str());
        crate::xml::checksum_elems(&mut x, &info.checksums, Some(checksum_type));
        x.close("Checksum");
    }
    if has("ObjectParts") && !info.part_sizes.is_empty() {
        let total = info.part_sizes.len() as u32;
        let page: Vec<(u32, u64)> = info
            .part_sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32 + 1, *s))
            .filter(|(n, _)| *n > marker)
            .take(max_parts as usize)
            .collect();
        let next = page.last().map_or(marker, |(n, _)| *n);
        x.open("ObjectParts")
            .elem("PartsCount", total.to_string())
            .elem("PartNumberMarker", marker.to_string())
            .elem("NextPartNumberMarker", next.to_string())
            .elem("MaxParts", max_parts.to_string())
            .elem("IsTruncated", (next < total).to_string());
        // Each part's checksum, of the object's algorithm, where the completion kept them.
        let algorithm = info.checksums.first().map(|(a, _)| a.as_str());
        let part_checksums: Vec<&str> = info
            .headers
            .iter()
            .find(|(n, _)| n == hoard::store::PART_CHECKSUMS_HEADER)
            .map_or_else(Vec::new, |(_, v)| v.split(',').collect());
        for (n, size) in page {
            x.open("Part").elem("PartNumber", n.to_string());
            if let (Some(a), Some(value)) = (algorithm, part_checksums.get(n as usize - 1)) {
                x.elem(&format!("Checksum{a}"), value);
            }
            x.elem("Size", size.to_string()).close("Part");
        }
        x.close("ObjectParts");
    }
    if has("StorageClass") {
        x.elem("StorageClass", "STANDARD");
    }
    if has("ObjectSize") {
        x.elem("ObjectSize", info.size.to_string());
    }
    let mut resp = xml_response(x.finish("GetObjectAttributesResponse"))?;
    if let Ok(v) = axum::http::HeaderValue::from_str(&http_date(info.last_modified_unix_ms)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    ctx.add_version_header(info.version, resp.headers_mut());
    Ok(resp)
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload; S3 User Guide,
/// "Add preconditions to S3 operations with conditional requests"): `If-None-Match: *` (only
/// if the key has no object), `If-None-Match: "<etag>"` (only if its object, if any, has
/// another ETag) or `If-Match: "<etag>"` (only if its object has that ETag).
///
/// Errors: InvalidRequest for both at once.
pub(super) fn write_condition(ctx: &Ctx) -> S3Result<Option<WriteCondition>> {
    match (ctx.header("if-none-match"), ctx.header("if-match")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "a write takes If-None-Match or If-Match, not both"
        )),
        (Some(v), None) if v.trim() == "*" => Ok(Some(WriteCondition::IfNoneMatch)),
        (Some(v), None) => Ok(Some(WriteCondition::IfNoneMatchEtag(
            v.trim().trim_matches('"').to_string(),
        ))),
        (None, Some(v)) => Ok(Some(WriteCondition::IfMatch(
            v.trim().trim_matches('"').to_string(),
        ))),
    }
}

/// Checks a write's condition before its body is stored (it is checked again, atomically,
/// at the commit: a writer that races in between gets 409 ConditionalRequestConflict).
///
/// Errors: 412 PreconditionFailed; NoSuchKey for `If-Match` on a key with no object.
pub(super) fn check_write_condition(
    ctx: &Ctx,
    condition: &Option<WriteCondition>,
) -> impl std::future::Future<Output = S3Result<()>> + Send + 'static {
    let condition = condition.clone();
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    async move {
        let Some(condition) = condition else {
            return Ok(());
        };
        let k = key.clone();
        let current = memory_first(move || match store.head_object(&bucket, &k) {
            Ok(info) => Ok(Some(info.etag)),
            Err(hoard::Error::NoSuchKey { .. } | hoard::Error::DeleteMarker { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        let failed = || {
            s3_error!(
                PreconditionFailed,
                PRECONDITION_FAILED,
                "At least one of the pre-conditions you specified did not hold"
            )
        };
        match (condition, current) {
            (WriteCondition::IfNoneMatch, None) => Ok(()),
            (WriteCondition::IfNoneMatch, Some(_)) => Err(failed()),
            (WriteCondition::IfNoneMatchEtag(_), None) => Ok(()),
            (WriteCondition::IfNoneMatchEtag(etag), Some(have)) if etag == have => Err(failed()),
            (WriteCondition::IfNoneMatchEtag(_), Some(_)) => Ok(()),
            (WriteCondition::IfMatch(_), None) => Err(s3_error!(
                NoSuchKey,
                NOT_FOUND,
                "If-Match names a version of {key}, which does not exist"
            )),
            (WriteCondition::IfMatch(want), Some(have)) if want == have => Ok(()),
            (WriteCondition::IfMatch(_), Some(_)) => Err(failed()),
            // Not a client's condition (lifecycle's): the commit checks it.
            (WriteCondition::IfVersion(..), _) => Ok(()),
        }
    }
}

/// Evaluates If-Match / If-None-Match / If-(Un)Modified-Since (RFC 9110 section 13.2.2).
fn check_preconditions(ctx: &Ctx, info: &ObjectInfo) -> S3Result<Option<StatusCode>> {
    let modified_secs = info.last_modified_unix_ms / 1000;
    let parse = |v: &str| {
        httpdate::parse_http_date(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    if let Some(m) = ctx.header("if-match") {
        if !etag_matches(m, &info.etag) {
            return Err(s3_error!(
                PreconditionFailed,
                PRECONDITION_FAILED,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    } else if let Some(since) = ctx.header("if-unmodified-since").and_then(parse) {
        if modified_secs > since {
            return Err(s3_error!(
                PreconditionFailed,
                PRECONDITION_FAILED,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    }
    if let Some(m) = ctx.header("if-none-match") {
        if etag_matches(m, &info.etag) {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    } else if let Some(since) = ctx.header("if-modified-since").and_then(parse) {
        if modified_secs <= since {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    }
    Ok(None)
}

/// The bytes a GET of `range` of `info` reads from the HDDs, counted from the start of the
/// first chunk it touches (what its stream permit is weighed by).
fn range_len(info: &ObjectInfo, range: Option<ByteRange>, chunk_bytes: u64) -> u64 {
    let (start, end) = range
        .and_then(|r| r.resolve(info.size).ok())
        .unwrap_or((0, info.size));
    end - start + start % chunk_bytes.max(1)
}

/// `partNumber=N` of GetObject/HeadObject as the byte range of part N (Amazon S3 API Reference,
/// GetObject "partNumber"): `None` for part 1 of an object that was not uploaded in parts (the
/// whole object).
///
/// Errors: InvalidArgument for a number outside 1..=10000 or with a Range header;
/// InvalidPartNumber (416) past the object's parts.
fn part_range(
    ctx: &Ctx,
    info: &ObjectInfo,
    range: Option<ByteRange>,
) -> S3Result<Option<ByteRange>> {
    let Some(text) = ctx.q("partNumber") else {
        return Ok(range);
    };
    let n: usize = text
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "partNumber must be an integer between 1 and 10000, got {text:?}"
            )
        })?;
    if range.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "cannot specify both Range header and partNumber query parameter"
        ));
    }
    let unsatisfiable = || {
        s3_error!(
            InvalidPartNumber,
            RANGE_NOT_SATISFIABLE,
            "the requested partnumber {n} is not satisfiable: the object has {} part(s)",
            info.part_sizes.len().max(1)
        )
    };
    if info.part_sizes.is_empty() {
        return if n == 1 {
            Ok(None)
        } else {
            Err(unsatisfiable())
        };
    }
    let size = *info.part_sizes.get(n - 1).ok_or_else(unsatisfiable)?;
    let start: u64 = info.part_sizes[..n - 1].iter().sum();
    if size == 0 {
        return Err(unsatisfiable());
    }
    Ok(Some(ByteRange::FromTo(start, start + size - 1)))
}

pub(super) async fn get_object(ctx: Ctx, head: bool) -> S3Result<Response> {
    let range = match ctx.header("range") {
        Some(v) => crate::request::parse_range(v)?,
        None => None,
    };
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    // The record first: it sizes the request (a part's range, whether a stream permit is
    // needed) and answers HEAD.
    let recorded = ctx.readable_version().await?;
    let version = ctx.version_id()?;
    let range = part_range(&ctx, &recorded, range)?;
    // A GET opens the object (reading and verifying its first chunk) before answering, so a
    // missing drive or a corrupt chunk is a clean error, and headers and body are one version.
    let (info, reader, permit) = if head {
        (recorded, None, None)
    } else {
        // Reading from the HDDs takes a stream permit; objects small enough to be inline in
        // the index do not.
        let permit = if recorded.size > store.config().inline_threshold_bytes {
            let bytes = range_len(&recorded, range, store.config().chunk_size_bytes);
            let account = ctx.share_account();
            Some(ctx.state.admission.stream(&account, Some(bytes)).await?)
        } else {
            None
        };
        // An inline object opens from memory on this thread; others read their first chunk
        // on a blocking thread.
        let reader =
            memory_first(move || store.get_object_version(&bucket, &key, version, range)).await?;
        // The same version as the record that sized the part (an unversioned overwrite keeps
        // the version ID `null`, so the ETag and Last-Modified are compared too).
        let opened = reader.info();
        let same = opened.version == recorded.version
            && opened.etag == recorded.etag
            && opened.last_modified_unix_ms == recorded.last_modified_unix_ms;
        if ctx.has("partNumber") && !same {
            return Err(s3_error!(
                ServiceUnavailable,
                SERVICE_UNAVAILABLE,
                "the object was replaced while its part was looked up; retry"
            ));
        }
        (reader.info().clone(), Some(reader), permit)
    };
    let mut resp = Response::builder()
        .header(header::ETAG, format!("\"{}\"", info.etag))
        .header(header::LAST_MODIFIED, http_date(info.last_modified_unix_ms))
        .header(header::ACCEPT_RANGES, "bytes");
    if ctx.has("partNumber") && !info.part_sizes.is_empty() {
        resp = resp.header("x-amz-mp-parts-count", info.part_sizes.len());
    }
    if let Some(status) = check_preconditions(&ctx, &info)? {
        return resp.status(status).body(Body::empty()).map_err(bad_header);
    }
    // The bytes to send are charged to the QoS byte limits now, before any is sent, and the
    // GET is refused while a limit is in debt: parallel GETs admitted at once overshoot a
    // limit by at most the one that found it solvent (charged when answered, they went ~4x
    // over). The server then charges nothing more for this answer.
    if let Some(r) = &reader {
        let (start, end) = r.range();
        let (account, bucket) = crate::qos::scope_of(&ctx.auth, ctx.bucket.as_deref());
        ctx.state.qos.take_bytes(account, bucket, end - start)?;
    }
    resp = resp.header(
        header::CONTENT_TYPE,
        ctx.q("response-content-type").unwrap_or(&info.content_type),
    );
    for (name, value) in &info.user_metadata {
        resp = resp.header(format!("x-amz-meta-{name}"), value);
    }
    let tags = crate::protocol::tags::of_headers(&info.headers)?.len();
    if tags > 0 {
        resp = resp.header("x-amz-tagging-count", tags);
    }
    if let Some(headers) = resp.headers_mut() {
        add_expiration(&ctx, &info, headers);
        ctx.add_version_header(info.version, headers);
    }
    // Stored standard headers, unless a `response-*` override replaces them below.
    for (name, value) in info
        .headers
        .iter()
        .filter(|(n, _)| STORED_HEADERS.contains(&n.as_str()))
    {
        if !ctx.has(&format!("response-{name}")) {
            resp = resp.header(name.as_str(), value.as_str());
        }
    }
    for (param, name) in [
        ("response-content-disposition", header::CONTENT_DISPOSITION),
        ("response-content-encoding", header::CONTENT_ENCODING),
        ("response-content-language", header::CONTENT_LANGUAGE),
        ("response-cache-control", header::CACHE_CONTROL),
        ("response-expires", header::EXPIRES),
    ] {
        if let Some(v) = ctx.q(param) {
            resp = resp.header(name, v);
        }
    }
    if ctx
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
        && range.is_none()
    {
        resp = with_checksums(resp, &info.checksums);
        if let Some((_, t)) = info
            .headers
            .iter()
            .find(|(n, _)| n == "x-amz-checksum-type")
        {
            resp = resp.header("x-amz-checksum-type", t.as_str());
        }
    }
    let (start, end) = match (&reader, range) {
        (Some(r), _) => r.range(),
        (None, Some(r)) => r.resolve(info.size).map_err(crate::error::S3Error::from)?,
        (None, None) => (0, info.size),
    };
    resp = resp.header(header::CONTENT_LENGTH, end - start);
    if range.is_some() {
        resp = resp.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end - 1, info.size),
        );
    } else {
        resp = resp.status(StatusCode::OK);
    }
    let Some(reader) = reader.filter(|_| start < end) else {
        return resp.body(Body::empty()).map_err(bad_header);
    };
    let budget = ctx.state.buffers.for_account(&ctx.share_account());
    let floor = ctx.state.config.rate_floor();
    let body = if reader.rest_in_memory() && end - start <= MAX_FRAME_BYTES as u64 {
        in_memory_body(reader, floor, permit, budget).await?
    } else {
        Body::from_stream(stream_object(reader, floor, permit, budget))
    };
    let mut response = resp.body(body).map_err(bad_header)?;
    response.extensions_mut().insert(crate::qos::BytesCharged);
    Ok(response)
}

/// Streams an object to the connection. Device reads run on blocking threads one frame at a
/// time; waiting for the client happens here, in async code, so a client that stops reading
/// holds no engine thread. One that reads slower than `floor` allows is cut: the stream ends
/// early (the connection closes short of Content-Length) and the reader, with its read-ahead
/// buffers and its stream permit, is dropped.
fn stream_object(
    reader: hoard::store::ObjectReader,
    mut floor: RateFloor,
    permit: Option<Permit>,
    budget: AccountBudget,
) -> FrameStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame>>(1);
    tokio::spawn(async move {
        let _permit = permit;
        let floor_idle = floor.allowance().unwrap_or_default();
        let (start, end) = reader.range();
        let mut remaining = end - start;
        let mut reader = Some(reader);
        while remaining > 0 {
            let Some(mut r) = reader.take() else { return };
            let want = remaining.min(MAX_FRAME_BYTES as u64) as usize;
            // Room first: a frame's bytes are counted before they are read.
            let room = match budget.reserve(want, floor_idle).await {
                Ok(room) => room,
                Err(e) => {
                    tracing::warn!("GET cut: {e}");
                    return;
                }
            };
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                let result = loop {
                    match r.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                (r, buf, result)
            })
            .await;
            let Ok((r, buf, result)) = read else { return };
            let short = buf.len() < want;
            remaining -= buf.len() as u64;
            if !buf.is_empty() {
                let len = buf.len() as u64;
                let frame = Frame::new(Bytes::from(buf), room);
                let Some(limit) = floor.allowance() else {
                    tracing::info!("GET cut: {}", floor.timeout());
                    return;
                };
                let waiting = std::time::Instant::now();
                let sent = tokio::time::timeout(limit, tx.send(Ok(frame))).await;
                floor.record(waiting.elapsed(), len);
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return, // the connection is gone
                    Err(_) => {
                        tracing::info!("GET cut: {}", floor.timeout());
                        return;
                    }
                }
            }
            if let Err(e) = result {
                tracing::error!(error = %e, "object read failed mid-stream");
                let _ = tx.send(Err(e)).await;
                return;
            }
            if short {
                return;
            }
            reader = Some(r);
        }
    });
    FrameStream(rx)
}

/// The body of an object whose bytes to send are in memory already (inline, or within the
/// chunk the open read): one frame, built on this thread, holding its room in the account's
/// buffer budget and the stream permit until it is sent.
async fn in_memory_body(
    mut reader: hoard::store::ObjectReader,
    floor: RateFloor,
    permit: Option<Permit>,
    budget: AccountBudget,
) -> S3Result<Body> {
    let (start, end) = reader.range();
    let len = (end - start) as usize;
    let room = budget
        .reserve(len, floor.allowance().unwrap_or_default())
        .await?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match hoard::store::memory_only(|| reader.read(&mut buf[filled..])) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(S3Error::from(hoard::Error::Body(e))),
        }
    }
    debug_assert_eq!(filled, len, "an object's in-memory rest ends early");
    buf.truncate(filled);
    let frame = Frame::new(Bytes::from(buf), room);
    Ok(Body::from_stream(OneFrame {
        frame,
        sent: false,
        _permit: permit,
    }))
}

/// One frame as a `Stream` of body frames; its room and the permit are released when the
/// body is dropped, once it is sent.
struct OneFrame {
    frame: Frame,
    sent: bool,
    _permit: Option<Permit>,
}

impl futures_util::Stream for OneFrame {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if std::mem::replace(&mut self.sent, true) {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Ready(Some(Ok(self.frame.bytes.clone())))
    }
}

/// The receiving end of a frame channel as a `Stream` of body frames.
struct FrameStream(tokio::sync::mpsc::Receiver<std::io::Result<Frame>>);

impl futures_util::Stream for FrameStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(|frame| frame.bytes)))
    }
}

/// DeleteObject: without `versionId`, the key's object (in a versioned bucket, a new
/// delete marker hides it); with one, that version for good.
pub(super) async fn delete_object(ctx: Ctx) -> S3Result<Response> {
    let store = ctx.state.store.clone();
    let (bucket, key) = (ctx.bucket().to_string(), ctx.key().to_string());
    let version = ctx.version_id()?;
    // An unversioned key's delete commits from this thread and waits for its durable write
    // asynchronously; others on a blocking thread.
    let in_memory = version.is_none()
        && hoard::store::memory_only(|| store.delete_finishes_in_memory(&bucket, &key))
            .unwrap_or(false);
    let outcome = match in_memory {
        true => crate::engine::wait(store.delete_object_staged(&bucket, &key)?).await?,
        false => {
            blocking(move || match version {
                Some(v) => store.delete_object_version(&bucket, &key, v),
                None => store.delete_object(&bucket, &key),
            })
            .await?
        }
    };
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("static response");
    if let Some(v) = outcome.version {
        ctx.add_version_header(v, resp.headers_mut());
    }
    if outcome.delete_marker {
        resp.headers_mut().insert(
            "x-amz-delete-marker",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            crate::request::parse_range("bytes=0-9").unwrap(),
            Some(ByteRange::FromTo(0, 9))
        );
        assert_eq!(
            crate::request::parse_range("bytes=5-").unwrap(),
            Some(ByteRange::From(5))
        );
        assert_eq!(
            crate::request::parse_range("bytes=-3").unwrap(),
            Some(ByteRange::Last(3))
        );
        assert_eq!(crate::request::parse_range("bytes=0-1,4-5").unwrap(), None);
        assert_eq!(crate::request::parse_range("items=0-1").unwrap(), None);
        assert!(crate::request::parse_range("bytes=x-1").is_err());
    }
}
