//! The connection side of a request body: bytes pumped from the async HTTP body, in async code,
//! into a bounded channel of whole frames ([`FrameReceiver`]).
//!
//! Memory: every frame the S3 layer holds (request bodies here, GET frames in `ops::object`)
//! draws its room from one [`BufferBudget`] (the profile's `request_buffer_bytes`) before a
//! byte of it is read, and returns it when the frame is consumed or dropped. A request holds at
//! most [`PUMP_FRAMES`] frames in its channel plus the one being assembled, each of at most
//! [`FRAME_BYTES`] (less when the declared length says the body is smaller). When the budget
//! is spent, bodies wait (their clients' TCP windows fill) rather than grow memory.
//!
//! Deadlines ([`RateFloor`]): a body that sends nothing for `idle`, or whose client, after a
//! grace of `idle`, has sent less than the minimum rate over the time the server spent
//! waiting for it, fails with `RequestTimeout`; one that cannot get room for `idle` fails
//! with `SlowDown`; one larger than its limit fails with `EntityTooLarge`. GET bodies keep the
//! same floor on what their client reads (`ops::object`).
//!
//! Must not import `state`, `request`, `ops` or `body` itself (`super`): `state` holds its
//! budget, not the reverse.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::S3Result;
use crate::s3_error;

/// Bytes per request-body frame (frames are whole unless the body ends).
pub const FRAME_BYTES: usize = 256 * 1024;
/// Largest frame any body may hold room for (GET frames are this large: one blocking read of
/// a whole chunk per frame).
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// Frames a request may have waiting in its channel.
pub const PUMP_FRAMES: usize = 2;
/// Budget accounting unit.
const UNIT_BYTES: usize = 1024;

/// The memory all body frames of the S3 layer share, and each account's share of it
/// ([`crate::qos::share_cap`]: half for an account, a quarter for anonymous callers
/// together), so that no one tenant's bodies, and no crowd of anonymous ones, pin it all.
#[derive(Clone, Debug)]
pub struct BufferBudget {
    room: Arc<Semaphore>,
    capacity_units: usize,
    /// Each account's share, made when it first asks. Accounts are made by an admin, so
    /// this holds at most one entry per account plus one for anonymous callers.
    shares: Arc<parking_lot::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>>,
}

impl BufferBudget {
    /// A budget of `bytes` (at least one frame).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes as usize / UNIT_BYTES).max(MAX_FRAME_BYTES / UNIT_BYTES);
        BufferBudget {
            room: Arc::new(Semaphore::new(units)),
            capacity_units: units,
            shares: Default::default(),
        }
    }

    /// Bytes held by frames now.
    pub fn held_bytes(&self) -> u64 {
        ((self.capacity_units - self.room.available_permits()) * UNIT_BYTES) as u64
    }

    /// The budget, in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        (self.capacity_units * UNIT_BYTES) as u64
    }

    /// The budget as `account` (an account ID, or [`crate::qos::ANONYMOUS`]) draws on it.
    pub fn for_account(&self, account: &str) -> AccountBudget {
        let share = self
            .shares
            .lock()
            .entry(account.to_string())
            .or_insert_with(|| {
                let cap = crate::qos::share_cap(self.capacity_units, account);
                // A share always fits the largest frame.
                Arc::new(Semaphore::new(cap.max(MAX_FRAME_BYTES / UNIT_BYTES)))
            })
            .clone();
        AccountBudget {
            budget: self.clone(),
            share,
        }
    }
}

/// One account's view of the [`BufferBudget`]: room comes from its share, then from the
/// whole.
#[derive(Clone, Debug)]
pub struct AccountBudget {
    budget: BufferBudget,
    share: Arc<Semaphore>,
}

impl AccountBudget {
    /// Room for a frame of up to `bytes` (at most [`MAX_FRAME_BYTES`]), waiting up to `wait`
    /// for it.
    ///
    /// Errors: SlowDown (503) when the account's share or the budget stays spent that long.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> S3Result<Room> {
        let units = bytes
            .div_ceil(UNIT_BYTES)
            .clamp(1, MAX_FRAME_BYTES / UNIT_BYTES) as u32;
        let both = async {
            let share = self.share.clone().acquire_many_owned(units).await?;
            let whole = self.budget.room.clone().acquire_many_owned(units).await?;
            Ok::<_, tokio::sync::AcquireError>(Room { share, whole })
        };
        match tokio::time::timeout(wait, both).await {
            Ok(Ok(room)) => Ok(room),
            _ => Err(s3_error!(
                SlowDown,
                SERVICE_UNAVAILABLE,
                "please reduce your request rate: the server's {} of body buffers, or this account's share of them, stayed full for {wait:?}",
                self.budget.capacity_bytes()
            )),
        }
    }
}

/// Room held in a [`BufferBudget`] and its account's share; returned when dropped.
#[derive(Debug)]
pub struct Room {
    #[allow(dead_code)]
    share: OwnedSemaphorePermit,
    whole: OwnedSemaphorePermit,
}

/// Body bytes with the room they hold.
#[derive(Debug)]
pub struct Frame {
    /// The bytes.
    pub bytes: Bytes,
    _room: Room,
}

impl Frame {
    /// `bytes` holding `room` (which must cover them).
    pub fn new(bytes: Bytes, room: Room) -> Self {
        debug_assert!(bytes.len() <= room.whole.num_permits() * UNIT_BYTES);
        Frame { bytes, _room: room }
    }
}

/// The deadlines of one transfer with a client: at most `idle` of silence at a time, and,
/// past a grace of `idle`, at least `min_rate_bytes_per_s` over the time spent waiting for
/// the client (time the server spends on its own side, waiting for buffer room or the
/// engine, is not the client's and is not counted). Slowloris clients that send a byte now
/// and then thus hold a request, a data stream and its buffers for a bounded time only.
#[derive(Clone, Copy, Debug)]
pub struct RateFloor {
    idle: Duration,
    min_rate_bytes_per_s: u64,
    waited: Duration,
    bytes: u64,
}

impl RateFloor {
    /// A transfer that has not started.
    pub fn new(idle: Duration, min_rate_bytes_per_s: u64) -> Self {
        RateFloor {
            idle,
            min_rate_bytes_per_s: min_rate_bytes_per_s.max(1),
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// How long the next wait for the client may last: `None` if the transfer is already
    /// below its floor.
    pub fn allowance(&self) -> Option<Duration> {
        let earned = self.idle
            + Duration::from_secs_f64(self.bytes as f64 / self.min_rate_bytes_per_s as f64);
        let left = earned.checked_sub(self.waited)?;
        (!left.is_zero()).then_some(left.min(self.idle))
    }

    /// Counts a wait of `waited` that moved `bytes`.
    pub fn record(&mut self, waited: Duration, bytes: u64) {
        self.waited += waited;
        self.bytes += bytes;
    }

    /// Why the transfer was cut.
    pub fn timeout(&self) -> crate::error::S3Error {
        s3_error!(
            RequestTimeout,
            BAD_REQUEST,
            "your socket connection to the server was not read from or written to within the timeout period: {} bytes moved in {:.1} s of waiting for the client (no byte for {:?}, or under {} bytes/s after the first {:?})",
            self.bytes,
            self.waited.as_secs_f64(),
            self.idle,
            self.min_rate_bytes_per_s,
            self.idle
        )
    }
}

/// Pumps `body` into a channel of whole frames, read by the returned [`FrameReceiver`]. At most
/// `max_bytes` may arrive; `declared` is the body's Content-Length if known (it sizes the
/// frames of small bodies); `floor` sets how slow the client may be.
pub fn pump_body(
    body: Body,
    mut floor: RateFloor,
    max_bytes: u64,
    declared: Option<u64>,
    budget: AccountBudget,
) -> FrameReceiver {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Frame>>(PUMP_FRAMES);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        let mut frame = BytesMut::new();
        let mut room: Option<(Room, usize)> = None;
        let mut pending = Bytes::new();
        loop {
            if pending.is_empty() {
                let waiting = std::time::Instant::now();
                let next = match floor.allowance() {
                    None => Err(()),
                    Some(limit) => tokio::time::timeout(limit, stream.next())
                        .await
                        .map_err(|_| ()),
                };
                let got = match &next {
                    Ok(Some(Ok(b))) => b.len() as u64,
                    _ => 0,
                };
                floor.record(waiting.elapsed(), got);
                let next = match next {
                    Err(()) => Some(Err(floor.timeout())),
                    Ok(None) => None,
                    Ok(Some(Err(e))) => Some(Err(s3_error!(
                        IncompleteBody,
                        BAD_REQUEST,
                        "reading the request body failed: {e}"
                    ))),
                    Ok(Some(Ok(bytes))) => {
                        total += bytes.len() as u64;
                        if total > max_bytes {
                            Some(Err(s3_error!(
                                EntityTooLarge,
                                BAD_REQUEST,
                                "the request body exceeds {max_bytes} bytes"
                            )))
                        } else {
                            Some(Ok(bytes))
                        }
                    }
                };
                match next {
                    Some(Ok(bytes)) => pending = bytes,
                    end => {
                        // The body ended (or failed): send what was assembled, then the error.
                        if let Some((r, _)) = room.take() {
                            if !frame.is_empty() {
                                let last = Frame::new(std::mem::take(&mut frame).freeze(), r);
                                if tx.send(Ok(last)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        if let Some(Err(e)) = end {
                            let _ = tx.send(Err(e.into_io())).await;
                        }
                        return;
                    }
                }
                continue;
            }
            // Room for the frame being assembled: a whole frame, or what is left of a body
            // whose length was declared.
            if room.is_none() {
                let left = declared.map_or(FRAME_BYTES as u64, |d| {
                    d.saturating_sub(total - pending.len() as u64)
                });
                let want = (left.max(pending.len() as u64) as usize).clamp(1, FRAME_BYTES);
                match budget.reserve(want, floor.idle).await {
                    Ok(r) => {
                        frame.reserve(want);
                        room = Some((r, want));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into_io())).await;
                        return;
                    }
                }
            }
            let (_, capacity) = room.as_ref().expect("room was reserved");
            let take = pending.len().min(capacity - frame.len());
            frame.extend_from_slice(&pending.split_to(take));
            if frame.len() == *capacity {
                let (r, _) = room.take().expect("room was reserved");
                let full = Frame::new(std::mem::take(&mut frame).freeze(), r);
                if tx.send(Ok(full)).await.is_err() {
                    return;
                }
            }
        }
    });
    FrameReceiver { rx }
}

/// The frames of one request body, received in async code.
pub struct FrameReceiver {
    rx: tokio::sync::mpsc::Receiver<io::Result<Frame>>,
}

impl FrameReceiver {
    /// The next frame; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<io::Result<Frame>> {
        self.rx.recv().await
    }

    /// Reads the whole body (small XML bodies), failing past `max_bytes`. The frames stay
    /// counted in the budget until the body is whole.
    pub async fn collect(mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        let mut frames = Vec::new();
        let mut len = 0;
        while let Some(frame) = self.next().await {
            let frame = frame?;
            len += frame.bytes.len();
            frames.push(frame);
            if len > max_bytes {
                return Err(s3_error!(
                    MalformedXML,
                    BAD_REQUEST,
                    "the request body is larger than {max_bytes} bytes"
                )
                .into_io());
            }
        }
        let mut out = Vec::with_capacity(len);
        for frame in &frames {
            out.extend_from_slice(&frame.bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_is_cut_after_its_grace() {
        let idle = Duration::from_secs(20);
        let mut f = RateFloor::new(idle, 1000);
        assert_eq!(f.allowance(), Some(idle));
        // One byte per 10 s: 20 s of grace, then 1 ms per byte earned.
        f.record(Duration::from_secs(10), 1);
        f.record(Duration::from_secs(10), 1);
        assert!(f.allowance().unwrap() <= Duration::from_millis(2));
        f.record(Duration::from_millis(2), 0);
        assert_eq!(f.allowance(), None);
        assert_eq!(f.timeout().code, "RequestTimeout");
        // A client at the floor's rate is never cut.
        let mut g = RateFloor::new(idle, 1000);
        for _ in 0..1000 {
            g.record(Duration::from_secs(1), 1000);
            assert_eq!(g.allowance(), Some(idle));
        }
    }
}
