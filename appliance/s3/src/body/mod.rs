//! Request bodies, in push mode: from the connection to the engine without an engine thread
//! ever waiting on a client. Assembled in one place ([`Ctx::stream_body_into`],
//! [`Ctx::small_body`]).
//!
//! The path of a body: [`pump`] reads the connection in async code into whole frames (room for
//! each drawn first from the server's body budget; idle timeout; size limit) → a
//! [`BodyDecoder`] decodes and verifies them as they arrive, in async code ([`chunked`]:
//! aws-chunked framing, chunk and trailer signatures; [`checksum`]: a signed payload's
//! SHA-256, `x-amz-checksum-*` from a header or the trailer) → decoded bytes go to the engine
//! in batches on the blocking pool ([`BodySink`]: `ObjectWriter`, `PartWriter`), one batch
//! written while the next arrives. Verification ends before the engine's `finish` commits, so
//! a body that does not verify is never stored.
//!
//! Must not import `ops` or `server`: the operations call it; its readers (`pump`, `chunked`,
//! `checksum`) sit below `state` and must not import `state`, `request` or this file.

pub mod checksum;
pub mod chunked;
pub mod pump;

use axum::body::Body;
use md5::Digest;

use crate::auth::Payload;
use crate::error::{S3Error, S3Result};
use crate::request::Ctx;
use crate::s3_error;
use checksum::{ChecksumAlgorithm, ChecksumCheck, Expected, PayloadSha256};
use chunked::ChunkedDecoder;
use pump::{FrameReceiver, FRAME_BYTES};

/// Decoded bytes handed to the engine in one blocking call (four frames).
pub const WRITE_BATCH_BYTES: usize = 4 * FRAME_BYTES;

/// Where a verified body goes: the engine's push-mode writers.
pub trait BodySink: Send + 'static {
    /// Appends decoded bytes (runs on the blocking pool; waits only on devices). Tried first
    /// inside [`hoard::store::memory_only`]: a sink that would wait for a device fails then
    /// with [`hoard::Error::WouldBlock`], having changed nothing.
    fn write(&mut self, data: &[u8]) -> hoard::Result<()>;
    /// Records the flexible checksum the body verified.
    fn set_verified_checksum(&mut self, algorithm: &str, base64: &str);
}

impl BodySink for hoard::store::ObjectWriter {
    fn write(&mut self, data: &[u8]) -> hoard::Result<()> {
        hoard::store::ObjectWriter::write(self, data)
    }
    fn set_verified_checksum(&mut self, algorithm: &str, base64: &str) {
        hoard::store::ObjectWriter::set_verified_checksum(self, algorithm, base64)
    }
}

impl BodySink for hoard::store::PartWriter {
    fn write(&mut self, data: &[u8]) -> hoard::Result<()> {
        hoard::store::PartWriter::write(self, data)
    }
    fn set_verified_checksum(&mut self, algorithm: &str, base64: &str) {
        hoard::store::PartWriter::set_verified_checksum(self, algorithm, base64)
    }
}

/// The verifiers one body passes through, fed raw bytes as they arrive.
pub struct BodyDecoder {
    chunked: Option<ChunkedDecoder>,
    sha256: Option<PayloadSha256>,
    checksum: Option<ChecksumCheck>,
}

impl BodyDecoder {
    /// Decodes `raw`, appending the body's bytes to `out`.
    ///
    /// Errors: the framing and signature errors of [`ChunkedDecoder::feed`].
    pub fn feed(&mut self, raw: &[u8], out: &mut Vec<u8>) -> S3Result<()> {
        let start = out.len();
        match &mut self.chunked {
            Some(c) => c.feed(raw, out)?,
            None => out.extend_from_slice(raw),
        }
        if let Some(s) = &mut self.sha256 {
            s.update(raw);
        }
        if let Some(c) = &mut self.checksum {
            c.update(&out[start..]);
        }
        Ok(())
    }

    /// The body ended: checks framing, payload hash and checksum; returns the verified
    /// (algorithm, base64) checksum, if the request carried one.
    ///
    /// Errors: IncompleteBody, XAmzContentSHA256Mismatch, BadDigest, InvalidRequest.
    pub fn finish(self) -> S3Result<Option<(String, String)>> {
        let trailers = match self.chunked {
            Some(c) => c.finish()?,
            None => Vec::new(),
        };
        if let Some(s) = self.sha256 {
            s.finish()?;
        }
        self.checksum.map(|c| c.finish(&trailers)).transpose()
    }
}

fn body_error(e: std::io::Error) -> S3Error {
    S3Error::from(hoard::Error::Body(e))
}

impl Ctx {
    /// Reads a small body (XML requests) whole, in async code, with a size limit; verifies it
    /// like any body (signature, `x-amz-checksum-*`) and against `Content-MD5` when sent.
    ///
    /// Errors: MalformedXML past `max_bytes`, BadDigest, InvalidDigest, and the body errors.
    pub async fn small_body(&mut self, max_bytes: usize) -> S3Result<Vec<u8>> {
        let md5 = self.content_md5()?;
        let mut decoder = self.body_decoder()?;
        let raw_limit = raw_limit(&self.auth.payload, max_bytes as u64);
        let raw = self
            .body_frames(raw_limit)?
            .collect(raw_limit as usize)
            .await
            .map_err(body_error)?;
        let mut out = Vec::with_capacity(raw.len());
        decoder.feed(&raw, &mut out)?;
        decoder.finish()?;
        if out.len() > max_bytes {
            return Err(s3_error!(
                MalformedXML,
                BAD_REQUEST,
                "the request body is larger than {max_bytes} bytes"
            ));
        }
        if let Some(expected) = md5 {
            let actual: [u8; 16] = md5::Md5::digest(&out).into();
            if actual != expected {
                return Err(s3_error!(
                    BadDigest,
                    BAD_REQUEST,
                    "the Content-MD5 you specified did not match what we received"
                ));
            }
        }
        Ok(out)
    }

    /// Streams the body, verified, into `sink` (an engine writer); returns the sink with the
    /// verified checksum recorded, for the caller to `finish` (commit). Network waits happen
    /// here, in async code; each blocking call writes one batch that is already in memory,
    /// while the next batch arrives.
    ///
    /// Errors: EntityTooLarge past `max_bytes` (declared or received), the body's framing,
    /// signature, digest, timeout and budget errors, and the engine's write errors.
    pub async fn stream_body_into<S: BodySink>(&mut self, sink: S, max_bytes: u64) -> S3Result<S> {
        let mut decoder = self.body_decoder()?;
        let mut frames = self.body_frames(max_bytes)?;
        let mut writer = BatchWriter::new(sink);
        let mut batch = Vec::new();
        // Raw frames behind `batch`, kept (and counted in the budget) until it is written.
        let mut held = Vec::new();
        loop {
            let end = match frames.next().await {
                None => true,
                Some(Err(e)) => return Err(body_error(e)),
                Some(Ok(frame)) => {
                    decoder.feed(&frame.bytes, &mut batch)?;
                    held.push(frame);
                    false
                }
            };
            if batch.len() >= WRITE_BATCH_BYTES || (end && !batch.is_empty()) {
                let frames_written = std::mem::take(&mut held);
                writer
                    .write(std::mem::take(&mut batch), frames_written)
                    .await?;
            }
            if end {
                break;
            }
        }
        let mut sink = writer.finish().await?;
        if let Some((algorithm, value)) = decoder.finish()? {
            sink.set_verified_checksum(&algorithm, &value);
        }
        Ok(sink)
    }

    /// The request's raw body as a stream of byte runs (budgeted while read, as every body),
    /// for parsers that pull (the multipart/form-data of a browser POST upload).
    ///
    /// Errors: EntityTooLarge (declared length over `max_bytes`).
    pub fn raw_body_stream(
        &mut self,
        max_bytes: u64,
    ) -> S3Result<impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static>
    {
        let frames = self.body_frames(max_bytes)?;
        Ok(futures_util::stream::unfold(
            frames,
            |mut frames| async move {
                let next = frames.next().await?;
                Some((next.map(|frame| frame.bytes.clone()), frames))
            },
        ))
    }

    /// The request's body as frames, after checking its declared size against `max_bytes`.
    ///
    /// Errors: EntityTooLarge.
    fn body_frames(&mut self, max_bytes: u64) -> S3Result<FrameReceiver> {
        if let Some(size) = self.declared_length() {
            if size > max_bytes {
                return Err(s3_error!(
                    EntityTooLarge,
                    BAD_REQUEST,
                    "your proposed upload of {size} bytes exceeds the maximum of {max_bytes} bytes"
                ));
            }
        }
        let body = self.body.take().unwrap_or_else(Body::empty);
        Ok(pump::pump_body(
            body,
            self.state.config.rate_floor(),
            raw_limit(&self.auth.payload, max_bytes),
            self.raw_length(),
            self.state.buffers.for_account(&self.share_account()),
        ))
    }

    /// Whether the request carries an integrity check of its body: `Content-MD5` or a flexible
    /// checksum (header or declared trailer). S3 demands one on DeleteObjects.
    pub fn has_body_digest(&self) -> bool {
        self.header("content-md5").is_some()
            || self.header("x-amz-trailer").is_some()
            || ChecksumAlgorithm::ALL
                .iter()
                .any(|a| self.header(&a.header()).is_some())
    }

    /// A data-stream permit for a body bound for the HDDs, weighed by its declared length
    /// ([`crate::state::Admission::stream`]); none for a body that declares a length the
    /// engine stores inline in the index (it holds no chunk buffer).
    pub fn stream_permit_for_body(
        &self,
    ) -> impl std::future::Future<Output = S3Result<Option<crate::state::Permit>>> + Send + 'static
    {
        let inline_bytes = self.state.store.config().inline_threshold_bytes;
        let declared = self.declared_length();
        let to_hdds = !matches!(declared, Some(n) if n <= inline_bytes);
        let state = self.state.clone();
        let account = self.share_account();
        async move {
            if to_hdds {
                state.admission.stream(&account, declared).await.map(Some)
            } else {
                Ok(None)
            }
        }
    }

    /// The body's length on the wire, when `Content-Length` declares it.
    fn raw_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The decoded length the client declared: `x-amz-decoded-content-length` for aws-chunked
    /// bodies, else `Content-Length`.
    fn declared_length(&self) -> Option<u64> {
        let name = match &self.auth.payload {
            Payload::Streaming(_) => "x-amz-decoded-content-length",
            _ => "content-length",
        };
        self.header(name).and_then(|v| v.parse::<u64>().ok())
    }

    /// The verifiers the request asks for (see the module doc).
    ///
    /// Errors: InvalidRequest for a `*-TRAILER` payload without `x-amz-trailer`, more than one
    /// `x-amz-checksum-*` header, or a trailer that names no supported checksum.
    fn body_decoder(&self) -> S3Result<BodyDecoder> {
        let declared: Vec<String> = self
            .header("x-amz-trailer")
            .map(|t| {
                t.split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let (chunked, sha256) = match &self.auth.payload {
            Payload::Unsigned => (None, None),
            Payload::Sha256(hex) => (None, Some(PayloadSha256::new(hex.clone()))),
            Payload::Streaming(s) => {
                if s.trailer && declared.is_empty() {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "a STREAMING-...-TRAILER payload needs an x-amz-trailer header naming what the trailer carries"
                    ));
                }
                let decoder =
                    ChunkedDecoder::new(s.clone(), self.declared_length(), declared.clone());
                (Some(decoder), None)
            }
        };
        let checksum = self
            .expected_checksum(&declared)?
            .map(|(algorithm, expected)| ChecksumCheck::new(algorithm, expected));
        Ok(BodyDecoder {
            chunked,
            sha256,
            checksum,
        })
    }

    fn expected_checksum(
        &self,
        declared_trailers: &[String],
    ) -> S3Result<Option<(ChecksumAlgorithm, Expected)>> {
        let mut found = None;
        // On CompleteMultipartUpload an `x-amz-checksum-*` header is the whole object's
        // expected checksum (checked against the parts' combined one), not the XML body's.
        let object_checksum = self.endpoint == crate::protocol::Endpoint::CompleteMultipartUpload;
        for algorithm in ChecksumAlgorithm::ALL
            .into_iter()
            .filter(|_| !object_checksum)
        {
            if let Some(v) = self.header(&algorithm.header()) {
                if found.is_some() {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "expecting a single x-amz-checksum- header"
                    ));
                }
                found = Some((algorithm, Expected::Header(v.trim().to_string())));
            }
        }
        if found.is_some() || declared_trailers.is_empty() {
            return Ok(found);
        }
        if !matches!(&self.auth.payload, Payload::Streaming(s) if s.trailer) {
            return Err(s3_error!(
                InvalidRequest,
                BAD_REQUEST,
                "x-amz-trailer needs a STREAMING-...-TRAILER payload"
            ));
        }
        let algorithm = declared_trailers
            .iter()
            .find_map(|name| {
                ChecksumAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.header() == *name)
            })
            .ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    BAD_REQUEST,
                    "unsupported x-amz-trailer {declared_trailers:?}"
                )
            })?;
        Ok(Some((algorithm, Expected::Trailer)))
    }
}

/// Writes batches to a sink on the blocking pool, one batch written while the next arrives.
pub struct BatchWriter<S: BodySink> {
    sink: Option<S>,
    job: Option<tokio::task::JoinHandle<(S, hoard::Result<()>)>>,
}

impl<S: BodySink> BatchWriter<S> {
    /// Writes to `sink`.
    pub fn new(sink: S) -> Self {
        BatchWriter {
            sink: Some(sink),
            job: None,
        }
    }

    /// Hands `data` to the sink once the previous batch is written; `hold` (the budgeted
    /// frames behind the batch) lives until this one is.
    ///
    /// Errors: the previous batch's write error.
    pub async fn write<H: Send + 'static>(&mut self, data: Vec<u8>, hold: H) -> S3Result<()> {
        if let Some(previous) = self.job.take() {
            self.sink = Some(join_write(previous).await?);
        }
        let mut s = self
            .sink
            .take()
            .expect("the sink is back from its last write");
        // Buffered in memory (a small object's bytes): no thread hop.
        match hoard::store::memory_only(|| s.write(&data)) {
            Err(hoard::Error::WouldBlock) => {}
            Ok(()) => {
                self.sink = Some(s);
                return Ok(());
            }
            Err(e) => return Err(S3Error::from(e)),
        }
        self.job = Some(tokio::task::spawn_blocking(move || {
            let result = s.write(&data);
            drop(hold);
            (s, result)
        }));
        Ok(())
    }

    /// Waits for the last batch; returns the sink.
    ///
    /// Errors: its write error.
    pub async fn finish(mut self) -> S3Result<S> {
        if let Some(last) = self.job.take() {
            self.sink = Some(join_write(last).await?);
        }
        Ok(self
            .sink
            .take()
            .expect("the sink is back from its last write"))
    }
}

/// Waits for a batch written on the blocking pool; returns the sink.
async fn join_write<S>(job: tokio::task::JoinHandle<(S, hoard::Result<()>)>) -> S3Result<S> {
    match job.await {
        Ok((sink, Ok(()))) => Ok(sink),
        Ok((_, Err(e))) => Err(S3Error::from(e)),
        Err(e) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "body writer failed: {e}"
        )),
    }
}

/// The most raw bytes a body of at most `max_bytes` decoded bytes may take on the wire:
/// aws-chunked framing adds ~90 bytes per chunk of at least 8 KiB.
fn raw_limit(payload: &Payload, max_bytes: u64) -> u64 {
    match payload {
        Payload::Streaming(_) => max_bytes + max_bytes / 64 + 64 * 1024,
        _ => max_bytes,
    }
}
