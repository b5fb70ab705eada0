//! pread/pwrite backend: the portable fallback behind the same [`Backend`] interface, used when
//! io_uring cannot be set up or when the profile forces it. I/O runs on the calling thread.
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

use std::fs::File;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Backend, IoDone, IoRequest, IoTicket};

/// pread/pwrite + fdatasync backend.
pub struct PortableBackend {
    file: Arc<File>,
    /// fdatasyncs so far: one per durable write or sync (calling threads do not share them).
    syncs: AtomicU64,
}

impl PortableBackend {
    /// Wraps an O_DIRECT file.
    pub fn new(file: Arc<File>) -> Self {
        PortableBackend {
            file,
            syncs: AtomicU64::new(0),
        }
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }
}

impl Backend for PortableBackend {
    fn submit(&self, req: IoRequest) -> IoTicket {
        let done = match req {
            IoRequest::Read { offset, mut buf } => {
                let result = self.file.read_exact_at(&mut buf, offset);
                IoDone {
                    completed_at: std::time::Instant::now(),
                    buf: Some(buf),
                    result,
                }
            }
            IoRequest::Write {
                offset,
                buf,
                durable,
            } => {
                let result = self.file.write_all_at(&buf, offset).and_then(|()| {
                    if durable {
                        self.sync_data()
                    } else {
                        Ok(())
                    }
                });
                IoDone {
                    completed_at: std::time::Instant::now(),
                    buf: Some(buf),
                    result,
                }
            }
            IoRequest::Sync => IoDone {
                completed_at: std::time::Instant::now(),
                buf: None,
                result: self.sync_data(),
            },
        };
        IoTicket::ready(done)
    }

    fn kind(&self) -> &'static str {
        "pread/pwrite"
    }

    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
