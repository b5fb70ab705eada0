//! The connection side of a request body: bytes pumped from the async HTTP body, in async code,
//! into a bounded channel of whole buffers, read by the blocking side through
//! [`ChannelReader`].
//!
//! Bounds: a request holds at most [`PUMP_FRAMES`] frames of at most [`FRAME_BYTES`] in the
//! channel plus the one being assembled; every buffered byte is counted in a shared
//! [`BufferGauge`] (shown by `GET /_hoard/status`). A body that sends nothing for `idle` fails
//! with `RequestTimeout`; one larger than its limit fails with `EntityTooLarge`.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::s3_error;

/// Bytes per frame handed to the blocking side (frames are whole unless the body ends).
pub const FRAME_BYTES: usize = 256 * 1024;
/// Frames a request may have waiting in its channel.
pub const PUMP_FRAMES: usize = 2;

/// Bytes of request and response bodies held in memory by the S3 layer.
#[derive(Clone, Debug, Default)]
pub struct BufferGauge(Arc<AtomicU64>);

impl BufferGauge {
    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        let before = self.0.fetch_sub(n as u64, Ordering::Relaxed);
        debug_assert!(before >= n as u64, "buffer gauge underflow");
    }
}

/// Pumps `body` into a channel of whole frames, read by the returned [`ChannelReader`]. At most
/// `max_bytes` may arrive; `idle` is the longest silence allowed.
pub fn pump_body(body: Body, idle: Duration, max_bytes: u64, gauge: BufferGauge) -> ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(PUMP_FRAMES);
    let pump_gauge = gauge.clone();
    tokio::spawn(async move {
        let gauge = pump_gauge;
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        let mut frame = BytesMut::new();
        loop {
            let item = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Some(Err(s3_error!(
                    RequestTimeout,
                    BAD_REQUEST,
                    "your socket connection to the server was not read from or written to within the timeout period ({idle:?})"
                )
                .into_io())),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some(Err(s3_error!(IncompleteBody, BAD_REQUEST, "reading the request body failed: {e}").into_io())),
                Ok(Some(Ok(bytes))) => {
                    total += bytes.len() as u64;
                    if total > max_bytes {
                        Some(Err(s3_error!(EntityTooLarge, BAD_REQUEST, "the request body exceeds {max_bytes} bytes").into_io()))
                    } else {
                        Some(Ok(bytes))
                    }
                }
            };
            let (ended, error) = match item {
                None => (true, None),
                Some(Err(e)) => (true, Some(e)),
                Some(Ok(mut bytes)) => {
                    // Assemble whole frames; hyper hands over whatever one read returned.
                    while !bytes.is_empty() {
                        let take = bytes.len().min(FRAME_BYTES - frame.len());
                        if frame.is_empty() {
                            frame.reserve(FRAME_BYTES.min(bytes.len().max(FRAME_BYTES / 16)));
                        }
                        frame.extend_from_slice(&bytes.split_to(take));
                        gauge.add(take);
                        if frame.len() == FRAME_BYTES {
                            let full = std::mem::take(&mut frame).freeze();
                            if !send(&tx, full, &gauge).await {
                                return;
                            }
                        }
                    }
                    (false, None)
                }
            };
            if ended {
                if !frame.is_empty() {
                    let rest = std::mem::take(&mut frame).freeze();
                    if !send(&tx, rest, &gauge).await {
                        return;
                    }
                }
                if let Some(e) = error {
                    let _ = tx.send(Err(e)).await;
                }
                return;
            }
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
        gauge,
    }
}

/// Sends a frame; on a closed channel (the reader is gone) un-counts it and returns false.
async fn send(
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    frame: Bytes,
    gauge: &BufferGauge,
) -> bool {
    let n = frame.len();
    if tx.send(Ok(frame)).await.is_err() {
        gauge.sub(n);
        return false;
    }
    true
}

/// Reads body bytes pumped from the connection over a bounded channel.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    gauge: BufferGauge,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        self.gauge.sub(n);
        Ok(n)
    }
}

impl ChannelReader {
    /// Reads the whole body in async code (small XML bodies), failing past `max_bytes`.
    pub async fn collect(mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if !self.current.is_empty() {
                let chunk = std::mem::take(&mut self.current);
                self.gauge.sub(chunk.len());
                out.extend_from_slice(&chunk);
            }
            if out.len() > max_bytes {
                return Err(s3_error!(
                    MalformedXML,
                    BAD_REQUEST,
                    "the request body is larger than {max_bytes} bytes"
                )
                .into_io());
            }
            match self.rx.recv().await {
                None => return Ok(out),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.gauge.sub(self.current.len());
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            if let Ok(b) = item {
                self.gauge.sub(b.len());
            }
        }
    }
}
