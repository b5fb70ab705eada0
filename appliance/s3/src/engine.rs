//! Calls into the engine: each runs on the blocking pool (engine calls wait on devices, never
//! on clients: bodies reach the engine as batches already in memory, see `body`), its error
//! mapped to an S3 error; or, for reads that are usually answered from memory (metadata
//! cache hits, inline objects), first on the async thread itself ([`memory_first`]), so a
//! small GET is not handed between threads.
//!
//! Must not import anything of this crate but `error`.

use std::cell::Cell;

use crate::error::{S3Error, S3Result};
use crate::s3_error;

tokio::task_local! {
    /// Nanoseconds the current request has spent in engine calls (see [`timed`]).
    static ENGINE_NANOS: Cell<u64>;
}

/// Runs `f` (a request) counting the time its engine calls take ([`engine_nanos`]).
pub async fn timed<F: std::future::Future>(f: F) -> F::Output {
    ENGINE_NANOS.scope(Cell::new(0), f).await
}

/// Nanoseconds the current request (inside [`timed`]) has spent in engine calls so far; 0
/// outside one.
pub fn engine_nanos() -> u64 {
    ENGINE_NANOS.try_with(|n| n.get()).unwrap_or(0)
}

/// Adds the time since `started` to the current request's engine time.
fn charge(started: std::time::Instant) {
    let nanos = started.elapsed().as_nanos() as u64;
    let _ = ENGINE_NANOS.try_with(|n| n.set(n.get() + nanos));
}

/// Runs an engine call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> hoard::Result<T> + Send + 'static,
) -> S3Result<T> {
    let started = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(f).await;
    charge(started);
    match done {
        Ok(r) => r.map_err(S3Error::from),
        Err(e) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "worker failed: {e}"
        )),
    }
}

/// Runs an engine read on this async thread with device waits refused
/// ([`hoard::store::memory_only`]); only if it needed a device does it run again on a
/// blocking thread. `f` is called once or twice, so it must not have effects beyond reads.
pub async fn memory_first<T: Send + 'static>(
    f: impl Fn() -> hoard::Result<T> + Send + 'static,
) -> S3Result<T> {
    let started = std::time::Instant::now();
    let first = hoard::store::memory_only(&f);
    charge(started);
    match first {
        Err(hoard::Error::WouldBlock) => blocking(f).await,
        r => r.map_err(S3Error::from),
    }
}

/// Awaits an engine future (a staged commit's durability), its time charged to the engine.
pub async fn wait<T>(f: impl std::future::Future<Output = hoard::Result<T>>) -> S3Result<T> {
    let started = std::time::Instant::now();
    let result = f.await;
    charge(started);
    result.map_err(S3Error::from)
}

/// Runs a blocking call that answers in S3 terms (the directory's changes) on a blocking thread.
pub async fn blocking_s3<T: Send + 'static>(
    f: impl FnOnce() -> S3Result<T> + Send + 'static,
) -> S3Result<T> {
    let started = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(f).await;
    charge(started);
    match done {
        Ok(r) => r,
        Err(e) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "worker failed: {e}"
        )),
    }
}
