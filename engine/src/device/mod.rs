//! Device layer: every byte Hoard reads or writes on an SSD or HDD goes through here.
//!
//! Owns: opening files and block devices with O_DIRECT, 4 KiB-aligned I/O from aligned buffers,
//! durability (fdatasync linked after the write), poisoning after a failed write or sync, and the
//! superblock at the start of every device. Backends: io_uring ([`uring`]), pread/pwrite
//! ([`portable`]) chosen when io_uring cannot be set up or when forced, and a fault-injecting
//! in-memory backend ([`fault`]) for crash tests. Must not know about segments, metadata or
//! objects.
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

pub mod buffer;
pub mod fault;
pub mod portable;
pub mod superblock;
pub mod uring;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

pub use buffer::{align_up, align_up_u64, AlignedBuf, BufferPool, PooledBuf, BLOCK_SIZE};

use crate::error::{Error, Result};

thread_local! {
    /// Set inside [`memory_only`]: this thread must not wait for a device.
    static MEMORY_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with device waits refused on this thread: an engine call inside it that would
/// read or write a device (a metadata block not in the block cache, an object that is not
/// inline) fails with [`Error::WouldBlock`] before it submits any I/O. An async server runs
/// its cheap calls (cache hits, inline objects) so on its own threads and only the rest on a
/// blocking thread. Locks may still be waited for: the store's namespace lock, which bucket
/// creation and deletion and repair commits hold exclusively across one metadata commit, can
/// so keep a caller waiting for one fsync.
pub fn memory_only<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            MEMORY_ONLY.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MEMORY_ONLY.with(|m| m.replace(true)));
    f()
}

/// [`Error::WouldBlock`] inside [`memory_only`]: call before starting device I/O.
pub fn may_wait() -> Result<()> {
    match MEMORY_ONLY.with(|m| m.get()) {
        true => Err(Error::WouldBlock),
        false => Ok(()),
    }
}

/// Which I/O backend a device uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// io_uring if the kernel allows it, else pread/pwrite (logged once).
    Auto,
    /// io_uring only; opening fails if it cannot be set up.
    Uring,
    /// pread/pwrite from the calling thread.
    Portable,
}

impl std::str::FromStr for IoBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(IoBackend::Auto),
            "uring" | "io_uring" => Ok(IoBackend::Uring),
            "portable" | "sync" | "pread" => Ok(IoBackend::Portable),
            other => Err(Error::Config(format!(
                "unknown I/O backend {other:?}; expected auto, uring or portable"
            ))),
        }
    }
}

/// One I/O request handed to a backend.
pub enum IoRequest {
    /// Read `buf.len()` bytes at `offset` into `buf`.
    Read {
        /// Byte offset, a multiple of 4 KiB.
        offset: u64,
        /// Destination; its length is the transfer size.
        buf: AlignedBuf,
    },
    /// Write `buf` at `offset`; if `durable`, fdatasync after it (linked in the ring).
    Write {
        /// Byte offset, a multiple of 4 KiB.
        offset: u64,
        /// Source; its length is the transfer size.
        buf: AlignedBuf,
        /// Whether to make the write durable before completing.
        durable: bool,
    },
    /// fdatasync the device.
    Sync,
}

/// The outcome of one [`IoRequest`]: the buffer comes back with the result.
pub struct IoDone {
    /// The request's buffer (None for `Sync`).
    pub buf: Option<AlignedBuf>,
    /// Ok, or the operating system's error.
    pub result: io::Result<()>,
    /// When the device completed it (not when a waiter looked), for drive timeouts.
    pub completed_at: std::time::Instant,
}

/// A submitted request; its `wait` blocks until it completes.
pub struct IoTicket(TicketInner);

enum TicketInner {
    Ready(IoDone),
    Pending(mpsc::Receiver<IoDone>),
}

impl IoTicket {
    /// A ticket already complete (synchronous backends).
    pub fn ready(done: IoDone) -> Self {
        IoTicket(TicketInner::Ready(done))
    }

    /// A ticket completed later through a channel (asynchronous backends).
    pub fn pending(rx: mpsc::Receiver<IoDone>) -> Self {
        IoTicket(TicketInner::Pending(rx))
    }

    fn wait(self) -> IoDone {
        match self.0 {
            TicketInner::Ready(done) => done,
            TicketInner::Pending(rx) => rx.recv().unwrap_or(IoDone {
                completed_at: std::time::Instant::now(),
                buf: None,
                result: Err(io::Error::other("device worker stopped")),
            }),
        }
    }
}

/// What a device backend implements: submit a request, get a ticket. Offsets and lengths are
/// already validated by [`Device`].
pub trait Backend: Send + Sync {
    /// Starts `req`; the ticket yields its completion.
    fn submit(&self, req: IoRequest) -> IoTicket;
    /// Backend name for logs (`io_uring`, `pread/pwrite`, `fault`).
    fn kind(&self) -> &'static str;
    /// fdatasyncs issued to the media so far (fewer than durable requests where the backend
    /// shares one among concurrent writers).
    fn syncs(&self) -> u64;
}

/// A device: a file or block device with a backend, a size and a poisoned flag.
///
/// All reads and writes are whole 4 KiB blocks at 4 KiB-aligned offsets. After any failed write
/// or sync the device is poisoned: every later write or sync fails with [`Error::Poisoned`]
/// (reads still work), because after a failed fsync the kernel may have dropped dirty pages and
/// the media state is unknown.
pub struct Device {
    name: String,
    size_bytes: u64,
    backend: Box<dyn Backend>,
    poisoned: AtomicBool,
    /// Reads that failed with an I/O error (not checksum mismatches: those are the media's
    /// latent errors, found and counted by whoever verifies).
    read_errors: AtomicU32,
    /// I/O submitted since open ([`Device::io_stats`]).
    io: IoCounters,
}

/// Counters of the I/O submitted to a device.
#[derive(Debug, Default)]
struct IoCounters {
    reads: std::sync::atomic::AtomicU64,
    read_bytes: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    write_bytes: std::sync::atomic::AtomicU64,
}

/// The I/O submitted to a device since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Reads submitted.
    pub reads: u64,
    /// Bytes they asked for.
    pub read_bytes: u64,
    /// Writes submitted.
    pub writes: u64,
    /// Bytes they carried.
    pub write_bytes: u64,
    /// fdatasyncs the backend issued (durable writes and syncs share them).
    pub syncs: u64,
}

/// A write in flight on a [`Device`]; [`PendingIo::wait`] completes it.
pub struct PendingIo<'a> {
    device: &'a Device,
    ticket: IoTicket,
}

impl PendingIo<'_> {
    /// Waits for completion; returns the buffer. A failed write poisons the device.
    pub fn wait(self) -> Result<AlignedBuf> {
        self.device.complete_write(self.ticket)
    }

    /// The ticket alone, for a writer that outlives this borrow of its device; complete it
    /// with [`Device::complete_write`] on the same device.
    pub fn into_ticket(self) -> IoTicket {
        self.ticket
    }
}

/// A read in flight; [`PendingRead::wait`] completes it.
pub struct PendingRead {
    device: String,
    ticket: IoTicket,
    submitted: std::time::Instant,
}

impl PendingRead {
    /// Waits for completion; returns the filled buffer.
    pub fn wait(self) -> Result<AlignedBuf> {
        self.wait_timed().0
    }

    /// Waits for completion; returns the filled buffer and how long the device took, from
    /// submission to completion (not to this call: a read collected late is not slow).
    pub fn wait_timed(self) -> (Result<AlignedBuf>, std::time::Duration) {
        let done = self.ticket.wait();
        let took = done.completed_at.saturating_duration_since(self.submitted);
        let result = match done.result {
            Ok(()) => Ok(done.buf.expect("read completion carries its buffer")),
            Err(e) => Err(Error::io(&self.device, e)),
        };
        (result, took)
    }
}

static URING_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

impl Device {
    /// Opens the file or block device at `path` with O_DIRECT.
    ///
    /// `queue_depth` sizes the io_uring ring. With [`IoBackend::Auto`], a ring that cannot be
    /// set up (old kernel, seccomp) falls back to pread/pwrite and says so once in the log.
    ///
    /// Errors: [`Error::Io`] naming the path if it cannot be opened (a filesystem without
    /// O_DIRECT support, such as tmpfs, gives EINVAL).
    pub fn open(path: &Path, backend: IoBackend, queue_depth: u32) -> Result<Device> {
        let name = path.display().to_string();
        let file = open_direct(path).map_err(|e| Error::io(&name, e))?;
        let size_bytes = device_size(&file).map_err(|e| Error::io(&name, e))?;
        let file = Arc::new(file);
        let backend: Box<dyn Backend> = match backend {
            IoBackend::Portable => Box::new(portable::PortableBackend::new(file)),
            IoBackend::Uring => Box::new(
                uring::UringBackend::new(file, queue_depth, &name)
                    .map_err(|e| Error::io(&name, e))?,
            ),
            IoBackend::Auto => match uring::UringBackend::new(file.clone(), queue_depth, &name) {
                Ok(b) => Box::new(b),
                Err(e) => {
                    if !URING_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "io_uring unavailable; using pread/pwrite for all devices");
                    }
                    Box::new(portable::PortableBackend::new(file))
                }
            },
        };
        Ok(Device {
            name,
            size_bytes,
            backend,
            poisoned: AtomicBool::new(false),
            read_errors: AtomicU32::new(0),
            io: IoCounters::default(),
        })
    }

    /// Wraps an arbitrary backend (the fault-injecting one in tests).
    pub fn with_backend(name: &str, size_bytes: u64, backend: Box<dyn Backend>) -> Device {
        Device {
            name: name.to_string(),
            size_bytes,
            backend,
            poisoned: AtomicBool::new(false),
            read_errors: AtomicU32::new(0),
            io: IoCounters::default(),
        }
    }

    /// The I/O submitted since the device was opened.
    pub fn io_stats(&self) -> IoStats {
        IoStats {
            reads: self.io.reads.load(Ordering::Relaxed),
            read_bytes: self.io.read_bytes.load(Ordering::Relaxed),
            writes: self.io.writes.load(Ordering::Relaxed),
            write_bytes: self.io.write_bytes.load(Ordering::Relaxed),
            syncs: self.backend.syncs(),
        }
    }

    /// The device's path (or test name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Usable size in bytes, rounded down to 4 KiB.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes & !(BLOCK_SIZE as u64 - 1)
    }

    /// Backend in use (`io_uring`, `pread/pwrite`, `fault`).
    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Whether an earlier write or sync failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Counts a failed read; returns how many have failed so far.
    pub fn note_read_error(&self) -> u32 {
        self.read_errors.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Reads that failed with an I/O error so far.
    pub fn read_errors(&self) -> u32 {
        self.read_errors.load(Ordering::Acquire)
    }

    /// Takes the device out of service for writes (a failed drive): as after a failed write.
    pub fn fail(&self, why: &str) {
        self.poison(&io::Error::other(why.to_string()));
    }

    fn poison(&self, cause: &io::Error) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(device = %self.name, error = %cause, "device poisoned: no more writes");
        }
    }

    fn check(&self, offset: u64, len: usize) -> Result<()> {
        let fail = |detail: String| {
            Err(Error::InvalidIo {
                device: self.name.clone(),
                detail,
            })
        };
        if !offset.is_multiple_of(BLOCK_SIZE as u64) || !len.is_multiple_of(BLOCK_SIZE) || len == 0
        {
            return fail(format!(
                "offset {offset} / length {len} not a positive multiple of {BLOCK_SIZE}"
            ));
        }
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size_bytes())
        {
            return fail(format!(
                "offset {offset} + length {len} beyond device size {}",
                self.size_bytes()
            ));
        }
        Ok(())
    }

    /// Starts reading `buf.len()` bytes at `offset`. The returned [`PendingRead`] does not
    /// borrow the device, so a stream can keep reads in flight (read-ahead).
    pub fn submit_read(&self, buf: AlignedBuf, offset: u64) -> Result<PendingRead> {
        debug_assert!(may_wait().is_ok(), "a device read inside memory_only");
        self.check(offset, buf.len())?;
        self.io.reads.fetch_add(1, Ordering::Relaxed);
        self.io
            .read_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let submitted = std::time::Instant::now();
        let ticket = self.backend.submit(IoRequest::Read { offset, buf });
        Ok(PendingRead {
            device: self.name.clone(),
            ticket,
            submitted,
        })
    }

    /// Starts writing `buf` at `offset`; with `durable`, it completes only once fdatasync has
    /// returned. Errors at once with [`Error::Poisoned`] if the device is poisoned.
    pub fn submit_write(
        &self,
        buf: AlignedBuf,
        offset: u64,
        durable: bool,
    ) -> Result<PendingIo<'_>> {
        debug_assert!(may_wait().is_ok(), "a device write inside memory_only");
        self.check(offset, buf.len())?;
        if self.is_poisoned() {
            return Err(Error::Poisoned {
                device: self.name.clone(),
            });
        }
        self.io.writes.fetch_add(1, Ordering::Relaxed);
        self.io
            .write_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let ticket = self.backend.submit(IoRequest::Write {
            offset,
            buf,
            durable,
        });
        Ok(PendingIo {
            device: self,
            ticket,
        })
    }

    /// Waits for a write submitted on this device ([`PendingIo::into_ticket`]); returns the
    /// buffer. A failed write poisons the device.
    pub fn complete_write(&self, ticket: IoTicket) -> Result<AlignedBuf> {
        let done = ticket.wait();
        match done.result {
            Ok(()) => Ok(done.buf.expect("write completion carries its buffer")),
            Err(e) => {
                self.poison(&e);
                Err(Error::io(&self.name, e))
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` and waits.
    pub fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf> {
        self.submit_read(buf, offset)?.wait()
    }

    /// Writes `buf` at `offset` and waits (durably if `durable`).
    pub fn write_at(&self, buf: AlignedBuf, offset: u64, durable: bool) -> Result<AlignedBuf> {
        self.submit_write(buf, offset, durable)?.wait()
    }

    /// fdatasync: every completed write is durable when this returns Ok.
    pub fn sync(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(Error::Poisoned {
                device: self.name.clone(),
            });
        }
        let done = self.backend.submit(IoRequest::Sync).wait();
        done.result.map_err(|e| {
            self.poison(&e);
            Error::io(&self.name, e)
        })
    }

    /// fdatasync on every device of `devices` at once (their queues work in parallel): every
    /// write completed on them is durable when this returns Ok.
    ///
    /// Errors: the first device's error ([`Error::Poisoned`], or the sync's I/O error, which
    /// poisons that device); the others are still synced.
    pub fn sync_all(devices: &[&Device]) -> Result<()> {
        let mut syncs = Vec::with_capacity(devices.len());
        for device in devices {
            if device.is_poisoned() {
                syncs.push((device, None));
            } else {
                syncs.push((device, Some(device.backend.submit(IoRequest::Sync))));
            }
        }
        let mut first = None;
        for (device, ticket) in syncs {
            let result = match ticket {
                None => Err(Error::Poisoned {
                    device: device.name.clone(),
                }),
                Some(t) => t.wait().result.map_err(|e| {
                    device.poison(&e);
                    Error::io(&device.name, e)
                }),
            };
            if let Err(e) = result {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("size_bytes", &self.size_bytes)
            .field("backend", &self.backend.kind())
            .finish()
    }
}

/// Opens a device for exclusive use by this process: O_DIRECT; O_EXCL on a block device (the
/// kernel refuses it with EBUSY while it is mounted or another process holds it so); and an
/// advisory lock (`flock`, exclusive) on files and block devices alike, taken before a byte is
/// read, so two stores can never run on one device (two writers of one log lose acknowledged
/// writes).
///
/// Errors: the open's error; `WouldBlock` naming the PID that holds the lock.
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::FileTypeExt;
    let block = std::fs::metadata(path)?.file_type().is_block_device();
    let flags = libc::O_DIRECT | if block { libc::O_EXCL } else { 0 };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => io::Error::new(
                e.kind(),
                "the block device is in use (mounted, or held exclusively by another process)",
            ),
            _ => e,
        })?;
    lock_exclusive(&file)?;
    Ok(file)
}

/// Takes an exclusive `flock` on `file` (released when it is closed).
///
/// Errors: `WouldBlock` saying "in use by process PID" (the holder, from `/proc/locks`).
fn lock_exclusive(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            match lock_holder(file) {
                Some(pid) => format!("in use by process {pid}, which holds its lock"),
                None => "in use by another process, which holds its lock".to_string(),
            },
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The PID holding a `flock` on `file`, from `/proc/locks` (`N: FLOCK ADVISORY WRITE PID
/// MAJ:MIN:INODE ...`), if it can be told.
pub fn lock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        meta.ino()
    );
    std::fs::read_to_string("/proc/locks")
        .ok()?
        .lines()
        .filter(|l| l.contains("FLOCK"))
        .find_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let at = fields
                .iter()
                .position(|f| f.contains(':') && f.matches(':').count() == 2)?;
            (fields[at] == want).then(|| fields.get(at - 1)?.parse().ok())?
        })
}

/// Size of a regular file or block device in bytes (seeking to the end works for both).
fn device_size(file: &File) -> io::Result<u64> {
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

/// Takes the store's lock on `dir`, the directory of its device files (an advisory `flock`,
/// exclusive, held while the returned handle lives), and makes the directory private (0700)
/// and each of `files` that exists 0600 (stores made before these modes).
///
/// Errors: `WouldBlock` naming the PID of the process that holds the lock; I/O errors.
pub fn lock_data_dir(dir: &Path, files: &[PathBuf]) -> Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let name = dir.display().to_string();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(&name, e))?;
    let handle = File::open(dir).map_err(|e| Error::io(&name, e))?;
    lock_exclusive(&handle).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => {
            Error::io(&name, io::Error::new(e.kind(), format!("the store is {e}")))
        }
        _ => Error::io(&name, e),
    })?;
    let private = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&path.display().to_string(), e))
    };
    private(dir, 0o700)?;
    for f in files.iter().filter(|f| f.is_file()) {
        private(f, 0o600)?;
    }
    Ok(handle)
}

/// Creates a device file of `size_bytes` (sparse) if it does not exist. Used by the file-backed
/// dev profile and by tests; block devices are never created.
///
/// `preallocate_bytes` of the start are allocated with fallocate so that durable appends there
/// do not pay a filesystem journal commit for growing the file.
pub fn create_device_file(path: &Path, size_bytes: u64, preallocate_bytes: u64) -> Result<PathBuf> {
    let name = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(&name, e))?;
    }
    // Only the store's own user reads or writes its devices: they hold every tenant's
    // objects, and the metadata device the secrets key.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(&name, e))?;
    file.set_len(size_bytes).map_err(|e| Error::io(&name, e))?;
    if preallocate_bytes > 0 {
        nix::fcntl::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            preallocate_bytes.min(size_bytes) as i64,
        )
        .map_err(|e| Error::io(&name, e.into()))?;
    }
    file.sync_all().map_err(|e| Error::io(&name, e))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn roundtrip(backend: IoBackend) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.img");
        create_device_file(&path, 1 << 20, 0).unwrap();
        let dev = Device::open(&path, backend, 8).unwrap();
        assert_eq!(dev.size_bytes(), 1 << 20);
        let mut buf = AlignedBuf::new(8192);
        buf[..5].copy_from_slice(b"hoard");
        buf[8191] = 7;
        let pending: Vec<_> = (0..4u64)
            .map(|i| {
                let mut b = AlignedBuf::new(8192);
                b[0] = i as u8;
                dev.submit_write(b, 65536 * (i + 1), true).unwrap()
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        dev.write_at(buf, 4096, true).unwrap();
        dev.sync().unwrap();
        let back = dev.read_at(AlignedBuf::new(8192), 4096).unwrap();
        assert_eq!(&back[..5], b"hoard");
        assert_eq!(back[8191], 7);
        for i in 0..4u64 {
            let b = dev.read_at(AlignedBuf::new(4096), 65536 * (i + 1)).unwrap();
            assert_eq!(b[0], i as u8);
        }
        // Misaligned and out-of-range requests are refused with a clear error.
        let mut short = AlignedBuf::new(4096);
        short.set_len(4096);
        assert!(matches!(
            dev.read_at(AlignedBuf::new(4096), 100),
            Err(Error::InvalidIo { .. })
        ));
        assert!(matches!(
            dev.read_at(short, 1 << 20),
            Err(Error::InvalidIo { .. })
        ));
    }

    #[test]
    fn uring_roundtrip() {
        roundtrip(IoBackend::Uring);
    }

    /// Durable writes in flight together share fdatasyncs, and each is durable (read back after
    /// its completion) when it completes.
    #[test]
    fn uring_durable_writes_share_fdatasyncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.img");
        create_device_file(&path, 1 << 20, 0).unwrap();
        let dev = Device::open(&path, IoBackend::Uring, 64).unwrap();
        let writes = 64u64;
        let pending: Vec<_> = (0..writes)
            .map(|i| {
                let mut b = AlignedBuf::new(4096);
                b[..8].copy_from_slice(&i.to_le_bytes());
                dev.submit_write(b, 4096 * i, true).unwrap()
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        dev.sync().unwrap();
        let stats = dev.io_stats();
        assert_eq!(stats.writes, writes);
        assert!(
            stats.syncs <= writes / 2,
            "{} fdatasyncs for {writes} concurrent durable writes and a sync",
            stats.syncs
        );
        assert!(stats.syncs >= 1);
        for i in 0..writes {
            let b = dev.read_at(AlignedBuf::new(4096), 4096 * i).unwrap();
            assert_eq!(b[..8], i.to_le_bytes());
        }
    }

    #[test]
    fn portable_roundtrip() {
        roundtrip(IoBackend::Portable);
    }

    #[test]
    fn failed_write_poisons() {
        let (backend, control) = fault::FaultBackend::new(1 << 20);
        let dev = Device::with_backend("fault0", 1 << 20, Box::new(backend));
        dev.write_at(AlignedBuf::new(4096), 0, true).unwrap();
        control.fail_writes(true);
        assert!(matches!(
            dev.write_at(AlignedBuf::new(4096), 0, true),
            Err(Error::Io { .. })
        ));
        control.fail_writes(false);
        let err = dev.write_at(AlignedBuf::new(4096), 0, true).unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
        assert!(err.to_string().contains("fault0"));
        assert!(
            dev.read_at(AlignedBuf::new(4096), 0).is_ok(),
            "reads still work"
        );
    }
}
