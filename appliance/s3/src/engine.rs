//! Calls into the engine: each runs on the blocking pool (engine calls wait on devices, never
//! on clients: bodies reach the engine as batches already in memory, see `body`), its error
//! mapped to an S3 error; or, for reads that are usually answered from memory (metadata
//! cache hits, inline objects), first on the async thread itself ([`memory_first`]), so a
//! small GET is not handed between threads.
//!
//! Must not import anything of this crate but `error`.

use crate::error::{S3Error, S3Result};
use crate::s3_error;

/// Runs an engine call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> hoard::Result<T> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(f).await {
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
    match hoard::store::memory_only(&f) {
        Err(hoard::Error::WouldBlock) => blocking(f).await,
        r => r.map_err(S3Error::from),
    }
}

/// Runs a blocking call that answers in S3 terms (the directory's changes) on a blocking thread.
pub async fn blocking_s3<T: Send + 'static>(
    f: impl FnOnce() -> S3Result<T> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "worker failed: {e}"
        )),
    }
}
