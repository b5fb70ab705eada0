//! io_uring backend: one ring per device, owned by one worker thread.
//!
//! Callers hand requests over a channel; the worker batches everything waiting (up to the queue
//! depth) into one `io_uring_enter`, so concurrent writers share syscalls. A durable write is two
//! linked SQEs: the write with `IO_LINK`, then `fsync(DATASYNC)`; if the write fails or is short
//! the kernel cancels the fsync and the request fails. Buffers move into the worker with the
//! request and come back with the completion, so the kernel never sees freed memory.
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
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
}

impl UringBackend {
    /// Sets up a ring of `queue_depth` requests on `file` and starts its worker thread.
    ///
    /// Errors: the ring cannot be created (kernel without io_uring, seccomp, `io_uring_disabled`).
    pub fn new(file: Arc<File>, queue_depth: u32, name: &str) -> io::Result<Self> {
        let queue_depth = queue_depth.clamp(1, 4096);
        let ring = IoUring::new((queue_depth * 2).next_power_of_two())?;
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name(format!("uring:{}", short_name(name)))
            .spawn(move || Worker::new(ring, file, queue_depth as usize).run(rx))?;
        Ok(UringBackend {
            jobs: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
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
    cqes_left: u8,
    error: Option<io::Error>,
}

struct Worker {
    ring: IoUring,
    file: Arc<File>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
}

impl Worker {
    fn new(ring: IoUring, file: Arc<File>, queue_depth: usize) -> Self {
        Worker {
            ring,
            file,
            slots: (0..queue_depth).map(|_| None).collect(),
            free: (0..queue_depth).rev().collect(),
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
        let user = (index as u64) << 1;
        let (buf, expected_bytes, sqes) = match req {
            IoRequest::Read { offset, mut buf } => {
                let len = buf.len();
                let sqe = opcode::Read::new(fd, buf.as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build();
                (Some(buf), len, vec![sqe.user_data(user)])
            }
            IoRequest::Write {
                offset,
                mut buf,
                durable,
            } => {
                let len = buf.len();
                let write = opcode::Write::new(fd, buf.as_mut_ptr(), len as u32)
                    .offset(offset)
                    .build();
                let sqes = if durable {
                    let sync = opcode::Fsync::new(fd)
                        .flags(types::FsyncFlags::DATASYNC)
                        .build();
                    vec![
                        write.flags(squeue::Flags::IO_LINK).user_data(user),
                        sync.user_data(user | 1),
                    ]
                } else {
                    vec![write.user_data(user)]
                };
                (Some(buf), len, sqes)
            }
            IoRequest::Sync => {
                let sync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build();
                (None, 0, vec![sync.user_data(user | 1)])
            }
        };
        let cqes_left = sqes.len() as u8;
        self.slots[index] = Some(Slot {
            buf,
            reply,
            expected_bytes,
            cqes_left,
            error: None,
        });
        for sqe in &sqes {
            // SAFETY: the SQE points into `buf`, which the slot owns until its completions are
            // reaped; the ring has room for 2 SQEs per slot and is submitted before refilling.
            if unsafe { self.ring.submission().push(sqe) }.is_err() {
                // The ring has 2 entries per slot, so this means entries were left unsubmitted.
                if let Err(e) = self.ring.submit() {
                    self.complete(index, Some(e));
                    return;
                }
                // SAFETY: as above.
                let pushed = unsafe { self.ring.submission().push(sqe) };
                assert!(
                    pushed.is_ok(),
                    "io_uring submission queue full after submit"
                );
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
            let index = (user >> 1) as usize;
            let is_sync = user & 1 == 1;
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            slot.cqes_left -= 1;
            if slot.error.is_none() {
                if res < 0 {
                    slot.error = Some(io::Error::from_raw_os_error(-res));
                } else if !is_sync && res as usize != slot.expected_bytes {
                    slot.error = Some(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("short transfer: {res} of {} bytes", slot.expected_bytes),
                    ));
                }
            }
            if slot.cqes_left == 0 {
                let err = slot.error.take();
                self.complete(index, err);
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
