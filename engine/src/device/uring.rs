//! io_uring backend: one ring per device, owned by one worker thread.
//!
//! Callers hand requests over a channel; the worker batches everything waiting (up to the queue
//! depth) into one `io_uring_enter`, so concurrent writers share syscalls. Durable writes share
//! fdatasyncs (group commit at the device): a durable write is submitted as a plain write; once
//! it has completed it waits for the next `fsync(DATASYNC)` the worker submits, and the worker
//! keeps at most one in flight, submitted as soon as the previous one completes and a completed
//! write (or a [`IoRequest::Sync`]) waits for it. An fdatasync covers every write completed
//! before it was submitted, so each waiter is durable when its fsync completes; a failed fsync
//! fails every request it covered. Under load N concurrent durable writers so cost about one
//! fdatasync per device round trip instead of N (each of which the kernel runs on its own io-wq
//! worker thread). Buffers move into the worker with the request and come back with the
//! completion, so the kernel never sees freed memory.
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;

use super::{AlignedBuf, Backend, IoDone, IoRequest, IoTicket};

type Job = (IoRequest, mpsc::SyncSender<IoDone>);

/// io_uring backend; see the module doc.
pub struct UringBackend {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// fdatasyncs submitted to the kernel so far.
    syncs: Arc<AtomicU64>,
}

impl UringBackend {
    /// Sets up a ring of `queue_depth` requests on `file` and starts its worker thread.
    ///
    /// Errors: the ring cannot be created (kernel without io_uring, seccomp, `io_uring_disabled`).
    pub fn new(file: Arc<File>, queue_depth: u32, name: &str) -> io::Result<Self> {
        let queue_depth = queue_depth.clamp(1, 4096);
        let ring = IoUring::new((queue_depth * 2).next_power_of_two())?;
        let (tx, rx) = mpsc::channel::<Job>();
        let syncs = Arc::new(AtomicU64::new(0));
        let worker_syncs = syncs.clone();
        let worker = std::thread::Builder::new()
            .name(format!("uring:{}", short_name(name)))
            .spawn(move || Worker::new(ring, file, queue_depth as usize, worker_syncs).run(rx))?;
        Ok(UringBackend {
            jobs: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            syncs,
        })
    }
}

fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl Backend for UringBackend {
    fn submit(&self, req: IoRequest) -> IoTicket {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.lock();
        match jobs.as_ref() {
            Some(tx) if tx.send((req, reply_tx)).is_ok() => IoTicket::pending(reply_rx),
            _ => IoTicket::ready(IoDone {
                completed_at: std::time::Instant::now(),
                buf: None,
                result: Err(io::Error::other("io_uring worker has stopped")),
            }),
        }
    }

    fn kind(&self) -> &'static str {
        "io_uring"
    }

    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        self.jobs.lock().take();
        if let Some(worker) = self.worker.lock().take() {
            let _ = worker.join();
        }
    }
}

struct Slot {
    buf: Option<AlignedBuf>,
    reply: mpsc::SyncSender<IoDone>,
    expected_bytes: usize,
    /// Completes only after an fdatasync submitted once its write (if any) completed.
    durable: bool,
}

/// Tag bit of the shared fdatasync's `user_data` (below it: which fdatasync, so a completion
/// left over from a failed `io_uring_enter` cannot complete a later one's waiters); slot CQEs
/// carry their slot index.
const GROUP_SYNC: u64 = 1 << 63;

struct Worker {
    ring: IoUring,
    file: Arc<File>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Slots whose write has completed (or Sync requests) waiting for the next fdatasync.
    sync_next: Vec<usize>,
    /// Slots the fdatasync in flight covers; `None` when no fdatasync is in flight.
    sync_in_flight: Option<Vec<usize>>,
    /// fdatasyncs submitted by this worker (also the low bits of the next one's `user_data`).
    syncs: Arc<AtomicU64>,
}

impl Worker {
    fn new(ring: IoUring, file: Arc<File>, queue_depth: usize, syncs: Arc<AtomicU64>) -> Self {
        Worker {
            ring,
            file,
            slots: (0..queue_depth).map(|_| None).collect(),
            free: (0..queue_depth).rev().collect(),
            sync_next: Vec::new(),
            sync_in_flight: None,
            syncs,
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        let mut open = true;
        loop {
            // Block for work only when nothing is in flight; otherwise take what is waiting.
            if self.in_flight() == 0 {
                if !open {
                    return;
                }
                match jobs.recv() {
                    Ok(job) => self.push(job),
                    Err(_) => return,
                }
            }
            while open && !self.free.is_empty() {
                match jobs.try_recv() {
                    Ok(job) => self.push(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            if self.in_flight() == 0 {
                continue;
            }
            self.start_group_sync();
            loop {
                match self.ring.submit_and_wait(1) {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) =>
                    {
                        break
                    }
                    Err(e) => {
                        self.fail_all(e);
                        break;
                    }
                }
            }
            self.reap();
        }
    }

    fn push(&mut self, (req, reply): Job) {
        let index = self.free.pop().expect("push only with a free slot");
        let fd = types::Fd(self.file.as_raw_fd());
        let user = index as u64;
        let (buf, expected_bytes, durable, sqe) = match req {
            IoRequest::Read { offset, mut buf } => {
                let len = buf.len();
                let sqe = opcode::Read::new(fd, buf.as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build();
                (Some(buf), len, false, Some(sqe.user_data(user)))
            }
            IoRequest::Write {
                offset,
                mut buf,
                durable,
            } => {
                let len = buf.len();
                let sqe = opcode::Write::new(fd, buf.as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build();
                (Some(buf), len, durable, Some(sqe.user_data(user)))
            }
            IoRequest::Sync => (None, 0, true, None),
        };
        self.slots[index] = Some(Slot {
            buf,
            reply,
            expected_bytes,
            durable,
        });
        match sqe {
            Some(sqe) => {
                self.push_sqe(&sqe, Some(index));
            }
            // A Sync has no write of its own: it waits for the next fdatasync.
            None => self.sync_next.push(index),
        }
    }

    /// Queues one SQE; on failure completes `slot` (if any) with the error.
    fn push_sqe(&mut self, sqe: &squeue::Entry, slot: Option<usize>) -> bool {
        // SAFETY: the SQE points into a buffer its slot owns until its completion is reaped (a
        // fsync points at nothing); the ring has room for 2 SQEs per slot and is submitted
        // before refilling.
        if unsafe { self.ring.submission().push(sqe) }.is_ok() {
            return true;
        }
        // The ring has 2 entries per slot, so this means entries were left unsubmitted.
        if let Err(e) = self.ring.submit() {
            if let Some(index) = slot {
                self.complete(index, Some(e));
            }
            return false;
        }
        // SAFETY: as above.
        let pushed = unsafe { self.ring.submission().push(sqe) };
        assert!(
            pushed.is_ok(),
            "io_uring submission queue full after submit"
        );
        true
    }

    /// Submits the shared fdatasync when none is in flight and some request waits for one.
    fn start_group_sync(&mut self) {
        if self.sync_in_flight.is_some() || self.sync_next.is_empty() {
            return;
        }
        let fd = types::Fd(self.file.as_raw_fd());
        let sync = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(GROUP_SYNC | self.syncs.load(Ordering::Relaxed));
        let covered = std::mem::take(&mut self.sync_next);
        if self.push_sqe(&sync, None) {
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.sync_in_flight = Some(covered);
        } else {
            let e = io::Error::other("io_uring submission failed before fdatasync");
            for index in covered {
                self.complete(index, Some(io::Error::new(e.kind(), e.to_string())));
            }
        }
    }

    fn reap(&mut self) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user, res) in cqes {
            if user & GROUP_SYNC != 0 {
                // The fdatasync in flight is the last one submitted (number `syncs - 1`).
                if user & !GROUP_SYNC != self.syncs.load(Ordering::Relaxed).wrapping_sub(1) {
                    continue;
                }
                // Every request it covered completes with its result.
                for index in self.sync_in_flight.take().unwrap_or_default() {
                    let error = (res < 0).then(|| io::Error::from_raw_os_error(-res));
                    self.complete(index, error);
                }
                continue;
            }
            let index = user as usize;
            let Some(slot) = self.slots[index].as_ref() else {
                continue;
            };
            let error = if res < 0 {
                Some(io::Error::from_raw_os_error(-res))
            } else if res as usize != slot.expected_bytes {
                Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("short transfer: {res} of {} bytes", slot.expected_bytes),
                ))
            } else {
                None
            };
            if error.is_none() && slot.durable {
                self.sync_next.push(index);
            } else {
                self.complete(index, error);
            }
        }
    }

    fn complete(&mut self, index: usize, error: Option<io::Error>) {
        if let Some(slot) = self.slots[index].take() {
            let result = match error {
                None => Ok(()),
                Some(e) => Err(e),
            };
            let _ = slot.reply.send(IoDone {
                completed_at: std::time::Instant::now(),
                buf: slot.buf,
                result,
            });
            self.free.push(index);
        }
    }

    fn fail_all(&mut self, e: io::Error) {
        // A failed io_uring_enter leaves submissions in an unknown state: the kernel may still
        // hold the buffers, so they are leaked rather than freed, and every request fails.
        self.sync_next.clear();
        self.sync_in_flight = None;
        for index in 0..self.slots.len() {
            if let Some(mut slot) = self.slots[index].take() {
                if let Some(buf) = slot.buf.take() {
                    std::mem::forget(buf);
                }
                let error = io::Error::new(e.kind(), format!("io_uring_enter failed: {e}"));
                let _ = slot.reply.send(IoDone {
                    completed_at: std::time::Instant::now(),
                    buf: None,
                    result: Err(error),
                });
                self.free.push(index);
            }
        }
    }
}
