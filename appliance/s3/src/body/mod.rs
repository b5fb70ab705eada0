//! Request bodies: from the async HTTP body to a verified blocking [`Read`] the engine consumes,
//! assembled in one place ([`Ctx::body_reader`]).
//!
//! Layers, outermost last: [`pump::ChannelReader`] (bytes pumped from the connection, with an
//! idle timeout and a size limit), [`chunked::AwsChunkedReader`] (decodes `aws-chunked`,
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
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::auth::Payload;
use crate::engine::blocking_io;
use crate::error::{S3Error, S3Result};
use crate::request::Ctx;
use crate::s3_error;
use checksum::{ChecksumAlgorithm, ChecksumReader, Expected, Sha256Reader};
use chunked::{AwsChunkedReader, Trailers};
use pump::ChannelReader;

pub(crate) fn fail(e: S3Error) -> io::Error {
    e.into_io()
}

impl Ctx {
    /// Reads a small body (XML requests) whole, with a size limit.
    pub async fn small_body(&mut self, max_bytes: usize) -> S3Result<Vec<u8>> {
        let reader = self.body_reader(max_bytes as u64)?;
        blocking_io(move || {
            let mut out = Vec::new();
            reader.0.take(max_bytes as u64 + 1).read_to_end(&mut out)?;
            Ok(out)
        })
        .await
        .and_then(|v| {
            if v.len() > max_bytes {
                Err(s3_error!(
                    MalformedXML,
                    BAD_REQUEST,
                    "request body is larger than {max_bytes} bytes"
                ))
            } else {
                Ok(v)
            }
        })
    }

    /// The body as a verified blocking reader (see `s3::body`), plus the cell that receives the
    /// verified flexible checksum. Fails early when the declared size exceeds `max_bytes`.
    pub fn body_reader(
        &mut self,
        max_bytes: u64,
    ) -> S3Result<(Box<dyn Read + Send>, hoard::ChecksumCell)> {
        let declared = match &self.auth.payload {
            Payload::Streaming(_) => self
                .header("x-amz-decoded-content-length")
                .and_then(|v| v.parse::<u64>().ok()),
            _ => self
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok()),
        };
        if let Some(size) = declared {
            if size > max_bytes {
                return Err(s3_error!(
                    EntityTooLarge,
                    BAD_REQUEST,
                    "your proposed upload of {size} bytes exceeds the maximum of {max_bytes} bytes"
                ));
            }
        }
        let raw_limit = match &self.auth.payload {
            // aws-chunked framing adds ~90 bytes per chunk of at least 8 KiB.
            Payload::Streaming(_) => max_bytes + max_bytes / 64 + 64 * 1024,
            _ => max_bytes,
        };
        let body = self.body.take().unwrap_or_else(Body::empty);
        let channel = pump_body(body, self.state.config.body_idle_timeout, raw_limit);
        let trailers = Trailers::default();
        let mut reader: Box<dyn Read + Send> = match &self.auth.payload {
            Payload::Unsigned => Box::new(channel),
            Payload::Sha256(hex) => Box::new(Sha256Reader::new(channel, hex.clone())),
            Payload::Streaming(s) => Box::new(AwsChunkedReader::new(
                channel,
                s.clone(),
                declared,
                trailers.clone(),
            )),
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

/// Pumps the HTTP body into a bounded channel read by a blocking [`ChannelReader`].
fn pump_body(body: Body, idle: std::time::Duration, max_bytes: u64) -> ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        loop {
            let item = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Err(s3_error!(
                    RequestTimeout,
                    BAD_REQUEST,
                    "your socket connection to the server was not read from or written to within the timeout period ({idle:?})"
                )
                .into_io()),
                Ok(None) => break,
                Ok(Some(Err(e))) => Err(s3_error!(IncompleteBody, BAD_REQUEST, "reading the request body failed: {e}").into_io()),
                Ok(Some(Ok(bytes))) => {
                    total += bytes.len() as u64;
                    if total > max_bytes {
                        Err(s3_error!(EntityTooLarge, BAD_REQUEST, "the request body exceeds {max_bytes} bytes").into_io())
                    } else {
                        Ok(bytes)
                    }
                }
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    ChannelReader::new(rx)
}
