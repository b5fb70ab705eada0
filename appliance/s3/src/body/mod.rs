//! Request bodies: from the async HTTP body to a verified blocking [`Read`] the engine consumes,
//! assembled in one place ([`Ctx::body_reader`]).
//!
//! Layers, outermost last: [`pump::ChannelReader`] (bytes pumped from the connection in async
//! code, handed over in whole frames, with an idle timeout and a size limit), [`chunked::AwsChunkedReader`] (decodes `aws-chunked`,
//! verifying each chunk signature and the trailer), [`checksum::Sha256Reader`] (a signed
//! payload's SHA-256), [`checksum::ChecksumReader`] (`x-amz-checksum-*`, from a header or the
//! trailer). Each verifier fails the read that would have returned end-of-file, so the engine
//! never commits an object whose body did not verify.

pub mod checksum;
pub mod chunked;
pub mod pump;

use std::io::{self, Read};
use std::sync::Arc;

use axum::body::Body;
use md5::Digest;
use parking_lot::Mutex;

use crate::auth::Payload;
use crate::error::{S3Error, S3Result};
use crate::request::Ctx;
use crate::s3_error;
use checksum::{ChecksumAlgorithm, ChecksumReader, Expected, Sha256Reader};
use chunked::{AwsChunkedReader, Trailers};

pub(crate) fn fail(e: S3Error) -> io::Error {
    e.into_io()
}

impl Ctx {
    /// Reads a small body (XML requests) whole, in async code, with a size limit; verifies it
    /// like any body (signature, `x-amz-checksum-*`) and against `Content-MD5` when sent.
    ///
    /// Errors: MalformedXML past `max_bytes`, BadDigest, InvalidDigest, and the body errors.
    pub async fn small_body(&mut self, max_bytes: usize) -> S3Result<Vec<u8>> {
        let md5 = self.content_md5()?;
        let raw_limit = raw_limit(&self.auth.payload, max_bytes as u64);
        let body = self.body.take().unwrap_or_else(Body::empty);
        let state = &self.state;
        let pump = pump::pump_body(
            body,
            state.config.idle_timeout,
            raw_limit,
            self.raw_length(),
            state.buffers.clone(),
        );
        let raw = pump
            .collect(raw_limit as usize)
            .await
            .map_err(|e| S3Error::from(hoard::Error::Body(e)))?;
        let (mut reader, _) = self.decoded(Box::new(io::Cursor::new(raw)))?;
        let mut out = Vec::new();
        reader
            .by_ref()
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| S3Error::from(hoard::Error::Body(e)))?;
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

    /// Whether the request carries an integrity check of its body: `Content-MD5` or a flexible
    /// checksum (header or declared trailer). S3 demands one on DeleteObjects.
    pub fn has_body_digest(&self) -> bool {
        self.header("content-md5").is_some()
            || self.header("x-amz-trailer").is_some()
            || ChecksumAlgorithm::ALL
                .iter()
                .any(|a| self.header(&a.header()).is_some())
    }

    /// The body as a verified blocking reader, plus the cell that receives the verified
    /// flexible checksum. Fails early when the declared size exceeds `max_bytes`.
    pub fn body_reader(
        &mut self,
        max_bytes: u64,
    ) -> S3Result<(Box<dyn Read + Send>, hoard::ChecksumCell)> {
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
        let channel = pump::pump_body(
            body,
            self.state.config.idle_timeout,
            raw_limit(&self.auth.payload, max_bytes),
            self.raw_length(),
            self.state.buffers.clone(),
        );
        self.decoded(Box::new(channel))
    }

    /// A data-stream permit for a body bound for the HDDs; none for a body that declares a
    /// length the engine stores inline in the index (it holds no chunk buffer).
    pub fn stream_permit_for_body(
        &self,
    ) -> impl std::future::Future<Output = S3Result<Option<crate::server::Permit>>> + Send + 'static
    {
        let inline_bytes = self.state.store.config().inline_threshold_bytes;
        let to_hdds = !matches!(self.declared_length(), Some(n) if n <= inline_bytes);
        let state = self.state.clone();
        async move {
            if to_hdds {
                state.admission.stream().await.map(Some)
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

    /// Stacks the verifiers the request asks for on `raw` (see the module doc).
    ///
    /// Errors: InvalidRequest for a `*-TRAILER` payload without `x-amz-trailer`, or a trailer
    /// that names no supported checksum.
    fn decoded(
        &self,
        raw: Box<dyn Read + Send>,
    ) -> S3Result<(Box<dyn Read + Send>, hoard::ChecksumCell)> {
        let trailers = Trailers::default();
        let mut reader: Box<dyn Read + Send> = match &self.auth.payload {
            Payload::Unsigned => raw,
            Payload::Sha256(hex) => Box::new(Sha256Reader::new(raw, hex.clone())),
            Payload::Streaming(s) => {
                let declared: Vec<String> = self
                    .header("x-amz-trailer")
                    .map(|t| {
                        t.split(',')
                            .map(|n| n.trim().to_ascii_lowercase())
                            .filter(|n| !n.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                if s.trailer && declared.is_empty() {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "a STREAMING-...-TRAILER payload needs an x-amz-trailer header naming what the trailer carries"
                    ));
                }
                Box::new(AwsChunkedReader::new(
                    raw,
                    s.clone(),
                    self.declared_length(),
                    declared,
                    trailers.clone(),
                ))
            }
        };
        let verified: hoard::ChecksumCell = Arc::new(Mutex::new(None));
        if let Some((algorithm, expected)) = self.expected_checksum(&trailers)? {
            reader = Box::new(ChecksumReader::new(
                reader,
                algorithm,
                expected,
                verified.clone(),
            ));
        }
        Ok((reader, verified))
    }

    fn expected_checksum(
        &self,
        trailers: &Trailers,
    ) -> S3Result<Option<(ChecksumAlgorithm, Expected)>> {
        let mut found = None;
        for algorithm in ChecksumAlgorithm::ALL {
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
        if found.is_none() {
            if let Some(trailer) = self.header("x-amz-trailer") {
                let name = trailer.trim().to_ascii_lowercase();
                let algorithm = ChecksumAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.header() == name)
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidRequest,
                            BAD_REQUEST,
                            "unsupported x-amz-trailer {trailer:?}"
                        )
                    })?;
                if !matches!(&self.auth.payload, Payload::Streaming(s) if s.trailer) {
                    return Err(s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "x-amz-trailer needs a STREAMING-...-TRAILER payload"
                    ));
                }
                found = Some((algorithm, Expected::Trailer(trailers.clone())));
            }
        }
        Ok(found)
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
