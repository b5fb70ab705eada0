//! Calls into the engine: each runs off the async threads (engine calls wait on devices), its
//! error mapped to an S3 error. Short calls use the blocking pool ([`blocking`]); calls fed by a
//! request body use threads of their own ([`body_fed`]).

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

/// Runs an engine call that reads a request body (PutObject, UploadPart) on a thread of its
/// own, not on the blocking pool: such a call waits on the client between frames, and a slow
/// client must not take a thread that other requests' engine calls need. Each such call holds
/// a stream permit ([`crate::server::Admission`]), so these threads are bounded.
pub async fn body_fed<T: Send + 'static>(
    f: impl FnOnce() -> hoard::Result<T> + Send + 'static,
) -> S3Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hoard-upload".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| {
            s3_error!(
                ServiceUnavailable,
                SERVICE_UNAVAILABLE,
                "cannot start an upload thread: {e}"
            )
        })?;
    match rx.await {
        Ok(r) => r.map_err(S3Error::from),
        Err(_) => Err(s3_error!(
            InternalError,
            INTERNAL_SERVER_ERROR,
            "upload worker failed"
        )),
    }
}
