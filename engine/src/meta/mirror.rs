//! Mirrored metadata SSDs: every member holds a full, byte-identical copy of the metadata
//! region, and a write is durable when it is on every healthy member.
//!
//! Owns: fanning each write out to the members (in parallel, through each device's own ring),
//! marking a member failed on its first error (the store keeps serving from the others, and
//! says so), reading from the first healthy member, and resilvering: copying the metadata onto
//! a replacement member while writes go on. Which member is the freshest at open is decided by
//! `MetaStore`, which can replay each one (see `meta/mod.rs`).
//!
//! Resilver protocol (crash-safe): the target's commit regions (manifest slots) are zeroed
//! first, so until the copy ends the target holds no valid manifest and can never be opened as
//! a copy of the metadata; then the body (WAL ring, live tables) is copied piece by piece, each piece
//! under an exclusive lock so no write can land between its read and its copy; the target is
//! synced; the anchor blocks are copied last. Writes made meanwhile go to the target too, so
//! it converges to the primary's image, except for the commit regions (the manifest slots),
//! which it receives only by the final copy: until then it never names a table it may not hold.
//!
//! Must not import `schema`, `volume`, `store` or `segment`.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::device::{AlignedBuf, Device, BLOCK_SIZE};
use crate::error::{Error, Result};

/// Bytes per resilver copy step and per checkpoint write piece.
pub const PIECE_BYTES: usize = 1 << 20;
/// Pieces in flight per device while writing many.
const WINDOW: usize = 8;

/// What metadata needs from the storage under it: a single device or a mirror set.
pub trait MetaIo: Send + Sync {
    /// For messages.
    fn name(&self) -> &str;
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf>;
    /// Writes every `(buffer, offset)` piece; durable (fdatasync) when it returns Ok.
    fn write_durable(&self, pieces: Vec<(AlignedBuf, u64)>) -> Result<()>;
    /// A zeroed buffer of `len` bytes for a write (a WAL frame): a fresh one, or one kept
    /// from an earlier write so frequent writes do not fault in new pages each time.
    fn buffer(&self, len: usize) -> AlignedBuf {
        AlignedBuf::new(len)
    }
}

impl MetaIo for Device {
    fn name(&self) -> &str {
        Device::name(self)
    }

    fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf> {
        Device::read_at(self, buf, offset)
    }

    fn write_durable(&self, mut pieces: Vec<(AlignedBuf, u64)>) -> Result<()> {
        if pieces.len() == 1 {
            // One linked write + fdatasync in the ring.
            let (buf, offset) = pieces.pop().expect("one piece");
            self.write_at(buf, offset, true)?;
            return Ok(());
        }
        let mut pending = std::collections::VecDeque::new();
        for (buf, offset) in pieces {
            pending.push_back(self.submit_write(buf, offset, false)?);
            if pending.len() >= WINDOW {
                pending.pop_front().expect("non-empty").wait()?;
            }
        }
        for p in pending {
            p.wait()?;
        }
        self.sync()
    }
}

/// The state of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Holds every acknowledged write.
    InSync,
    /// Being copied onto; receives new writes but does not count for durability yet.
    Resilvering,
    /// Failed (an I/O error, or missing from a copy): no longer written or read.
    Failed(String),
}

/// One member as reported by [`MirrorSet::members`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// SSD slot.
    pub slot: u32,
    /// Device name.
    pub device: String,
    /// Its state.
    pub state: MemberState,
}

struct Member {
    slot: u32,
    device: Arc<Device>,
    state: Mutex<MemberState>,
}

/// A set of metadata SSDs holding identical copies; see the module doc.
pub struct MirrorSet {
    members: Vec<Member>,
    name: String,
    /// Regions (offset, bytes) a resilvering member does not receive writes to until its copy
    /// ends (the manifest slots: a target must never name tables it does not hold yet).
    deferred: Vec<(u64, u64)>,
    /// Writes hold it shared; each resilver copy step holds it exclusively.
    copy_lock: RwLock<()>,
    /// Members that failed since the set was built.
    failures: std::sync::atomic::AtomicU64,
    /// Buffers of finished writes kept for the next ones ([`MetaIo::buffer`]): a WAL frame
    /// and its copies per member would otherwise be mapped, faulted in and unmapped each.
    spares: parking_lot::Mutex<Vec<AlignedBuf>>,
}

/// Buffers [`MirrorSet`] keeps for reuse, and the largest it keeps: a few frames' worth.
const SPARE_BUFFERS: usize = 8;
const SPARE_BUFFER_MAX_BYTES: usize = 1 << 20;

impl MirrorSet {
    /// A mirror of `(slot, device, state)` members; writes into the `deferred` regions skip
    /// resilvering members (see [`MirrorSet::resilver`]).
    pub fn new(
        members: Vec<(u32, Arc<Device>, MemberState)>,
        deferred: Vec<(u64, u64)>,
    ) -> MirrorSet {
        let names: Vec<String> = members
            .iter()
            .map(|(_, d, _)| d.name().to_string())
            .collect();
        MirrorSet {
            name: if names.len() == 1 {
                names[0].clone()
            } else {
                format!("metadata mirror [{}]", names.join(", "))
            },
            members: members
                .into_iter()
                .map(|(slot, device, state)| Member {
                    slot,
                    device,
                    state: Mutex::new(state),
                })
                .collect(),
            deferred,
            copy_lock: RwLock::new(()),
            spares: parking_lot::Mutex::new(Vec::new()),
            failures: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Every member and its state.
    pub fn members(&self) -> Vec<MemberStatus> {
        self.members
            .iter()
            .map(|m| MemberStatus {
                slot: m.slot,
                device: m.device.name().to_string(),
                state: m.state.lock().clone(),
            })
            .collect()
    }

    fn fail(&self, m: &Member, error: &Error) {
        let mut state = m.state.lock();
        if !matches!(*state, MemberState::Failed(_)) {
            tracing::error!(device = %m.device.name(), slot = m.slot, error = %error,
                "metadata SSD failed: metadata is degraded, serving from the other copies");
            *state = MemberState::Failed(error.to_string());
            self.failures
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// How many members have failed since the set was built (it only grows).
    pub fn failure_count(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Acquire)
    }

    fn state(&self, m: &Member) -> MemberState {
        m.state.lock().clone()
    }

    /// A zeroed buffer of `len` bytes, kept from an earlier write when one is big enough.
    fn spare(&self, len: usize) -> AlignedBuf {
        let kept = {
            let mut spares = self.spares.lock();
            let fit = spares
                .iter()
                .position(|b| b.capacity() >= crate::device::align_up(len.max(1)));
            fit.map(|i| spares.swap_remove(i))
        };
        match kept {
            Some(mut buf) => {
                buf.set_len(len.max(1));
                buf.fill(0);
                buf
            }
            None => AlignedBuf::new(len),
        }
    }

    /// Keeps a finished write's buffer for [`MirrorSet::spare`], within the bounds.
    fn keep(&self, buf: AlignedBuf) {
        if buf.capacity() <= SPARE_BUFFER_MAX_BYTES {
            let mut spares = self.spares.lock();
            if spares.len() < SPARE_BUFFERS {
                spares.push(buf);
            }
        }
    }

    /// A copy of `buf` for one member's write.
    fn copy_of(&self, buf: &AlignedBuf) -> AlignedBuf {
        let mut out = self.spare(buf.len());
        out.copy_from_slice(buf);
        out
    }

    fn write_members(&self, pieces: &[(AlignedBuf, u64)], targets: &[&Member]) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = targets.iter().map(|_| Ok(())).collect();
        if pieces.len() == 1 {
            // Each member's ring does its own linked write + fdatasync, all at once.
            let (buf, offset) = &pieces[0];
            let pending: Vec<_> = targets
                .iter()
                .map(|m| m.device.submit_write(self.copy_of(buf), *offset, true))
                .collect();
            for (r, p) in results.iter_mut().zip(pending) {
                *r = p.and_then(|p| p.wait().map(|b| self.keep(b)));
            }
            return results;
        }
        for window in pieces.chunks(WINDOW) {
            let mut pending = Vec::new();
            for (i, m) in targets.iter().enumerate() {
                if results[i].is_err() {
                    continue;
                }
                for (buf, offset) in window {
                    pending.push((i, m.device.submit_write(self.copy_of(buf), *offset, false)));
                }
            }
            for (i, p) in pending {
                if let Err(e) = p.and_then(|p| p.wait().map(|b| self.keep(b))) {
                    if results[i].is_ok() {
                        results[i] = Err(e);
                    }
                }
            }
        }
        for (i, m) in targets.iter().enumerate() {
            if results[i].is_ok() {
                results[i] = m.device.sync();
            }
        }
        results
    }

    /// Resilvers member `slot` (see the module doc): zeroes the `commit` regions (which must be
    /// among the `deferred` ones), copies the
    /// `body` regions from an in-sync member, syncs, then copies the `commit` regions. Each
    /// region is `(offset, bytes)`, 4 KiB-aligned. Writes go on meanwhile.
    ///
    /// Errors: the target or every source failed; the target is then marked failed.
    pub fn resilver(&self, slot: u32, body: &[(u64, u64)], commit: &[(u64, u64)]) -> Result<()> {
        let target = self
            .members
            .iter()
            .find(|m| m.slot == slot)
            .ok_or_else(|| {
                Error::Config(format!("no metadata mirror member in SSD slot {slot}"))
            })?;
        let result = self.resilver_into(target, body, commit);
        match &result {
            Ok(()) => {
                *target.state.lock() = MemberState::InSync;
                tracing::info!(device = %target.device.name(), slot, "metadata SSD resilvered: in sync");
            }
            Err(e) => self.fail(target, e),
        }
        result
    }

    fn resilver_into(
        &self,
        target: &Member,
        body: &[(u64, u64)],
        commit: &[(u64, u64)],
    ) -> Result<()> {
        {
            let _exclusive = self.copy_lock.write();
            let zeroes: Vec<(AlignedBuf, u64)> = commit
                .iter()
                .flat_map(|&(offset, len)| pieces_of(offset, len))
                .map(|(offset, len)| (AlignedBuf::new(len), offset))
                .collect();
            target.device.write_durable(zeroes)?;
        }
        let started = std::time::Instant::now();
        let mut copied = 0u64;
        for &(offset, len) in body {
            for (piece_offset, piece_len) in pieces_of(offset, len) {
                self.copy_piece(target, piece_offset, piece_len, false)?;
                copied += piece_len as u64;
            }
        }
        target.device.sync()?;
        for &(offset, len) in commit {
            for (piece_offset, piece_len) in pieces_of(offset, len) {
                self.copy_piece(target, piece_offset, piece_len, true)?;
            }
        }
        tracing::info!(device = %target.device.name(), bytes = copied,
            elapsed_ms = started.elapsed().as_millis() as u64, "metadata resilver copied");
        Ok(())
    }

    fn copy_piece(&self, target: &Member, offset: u64, len: usize, durable: bool) -> Result<()> {
        let _exclusive = self.copy_lock.write();
        if matches!(self.state(target), MemberState::Failed(_)) {
            return Err(Error::MetadataUnavailable {
                detail: format!("{} failed during its resilver", target.device.name()),
            });
        }
        let buf = self.read_in_sync(AlignedBuf::new(len), offset)?;
        target.device.write_at(buf, offset, durable)?;
        Ok(())
    }

    fn read_in_sync(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf> {
        let mut last_error = None;
        let len = buf.len();
        let mut buf = Some(buf);
        for m in &self.members {
            if self.state(m) != MemberState::InSync {
                continue;
            }
            match m
                .device
                .read_at(buf.take().unwrap_or_else(|| AlignedBuf::new(len)), offset)
            {
                Ok(b) => return Ok(b),
                Err(e) => {
                    self.fail(m, &e);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::MetadataUnavailable {
            detail: format!("no metadata SSD of {} is in sync", self.name),
        }))
    }
}

/// Splits a region into copy pieces of at most [`PIECE_BYTES`].
fn pieces_of(offset: u64, len: u64) -> impl Iterator<Item = (u64, usize)> {
    let len = len.div_ceil(BLOCK_SIZE as u64) * BLOCK_SIZE as u64;
    (0..len.div_ceil(PIECE_BYTES as u64)).map(move |i| {
        let start = i * PIECE_BYTES as u64;
        (
            offset + start,
            (len - start).min(PIECE_BYTES as u64) as usize,
        )
    })
}

impl MetaIo for MirrorSet {
    fn name(&self) -> &str {
        &self.name
    }

    fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf> {
        self.read_in_sync(buf, offset)
    }

    fn buffer(&self, len: usize) -> AlignedBuf {
        self.spare(len)
    }

    /// Durable on every member that is in sync (or resilvering) when it returns Ok; a member
    /// that fails is marked failed. Errors only when no in-sync member took the write.
    fn write_durable(&self, pieces: Vec<(AlignedBuf, u64)>) -> Result<()> {
        let _shared = self.copy_lock.read();
        let deferred = pieces.iter().any(|(buf, offset)| {
            self.deferred
                .iter()
                .any(|&(o, l)| *offset < o + l && o < offset + buf.len() as u64)
        });
        let targets: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| match self.state(m) {
                MemberState::InSync => true,
                MemberState::Resilvering => !deferred,
                MemberState::Failed(_) => false,
            })
            .collect();
        let in_sync: Vec<bool> = targets
            .iter()
            .map(|m| self.state(m) == MemberState::InSync)
            .collect();
        let results = self.write_members(&pieces, &targets);
        for (buf, _) in pieces {
            self.keep(buf);
        }
        let mut first_error = None;
        let mut durable = false;
        for ((m, result), in_sync) in targets.iter().zip(results).zip(in_sync) {
            match result {
                Ok(()) => durable |= in_sync,
                Err(e) => {
                    self.fail(m, &e);
                    first_error.get_or_insert(e);
                }
            }
        }
        if durable {
            Ok(())
        } else {
            Err(first_error.unwrap_or_else(|| Error::MetadataUnavailable {
                detail: format!("no metadata SSD of {} is in sync", self.name),
            }))
        }
    }
}
