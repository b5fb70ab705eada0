//! Metadata: a checksummed write-ahead log with group commit, feeding a log-structured index
//! (memtable, SSTables, compaction) on the metadata SSDs, mirrored on every one of them.
//!
//! Owns: the SSD's layout after the superblock (WAL ring, then the LSM region: two manifest
//! slots and the table area), commit (durable in the WAL on every healthy SSD before it returns,
//! then visible), replay at open (only the WAL written since the last flush), and the two
//! maintenance threads, one flushing frozen memtables and one compacting (paced by the profile's
//! bandwidth budget, never delaying a flush), so commits never wait for either unless the WAL
//! is full. Knows nothing of buckets or objects: it stores byte keys
//! and values (the store's schema lives in `schema/`). Must not touch HDDs.
//!
//! Back of the envelope (the development VM's disk, measured with fio): one fdatasync of an overwrite
//! ~40 us, so one writer commits ~10-20k batches/s; group commit puts every batch waiting while a
//! frame is written into the next frame, so 64 writers share one fdatasync.
//!
//! Commits are queued in ticket order and written by whichever waiter leads the group (each
//! waiter sleeps on its own condition variable; the leader wakes exactly those it settled and
//! one to lead next). A batch can also be staged ([`MetaStore::stage`]): visible at once to
//! [`MetaStore::get_staged`] (writers that serialise their read-modify-writes of a key, so the
//! next one builds on it), to readers only once durable; waited for synchronously
//! ([`MetaStore::wait`]) or from async code ([`MetaStore::poll_settled`], led by the store's
//! committer thread through [`CommitSignal`]).
//!
//! Must not import `schema`, `volume`, `store` or `segment`: it stores opaque keys and values.

pub mod codec;
pub mod index;
pub mod lsm;
pub mod mirror;
pub mod sstable;
pub mod wal;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::device::superblock::RESERVED_BYTES;
use crate::device::{Device, BLOCK_SIZE};
use crate::error::{Error, Result};

pub use index::{Batch, Index, MemIndex, Op, Scan};
pub use lsm::{Lsm, LsmConfig, LsmLayout, Snapshot};
pub use mirror::{MemberState, MemberStatus, MetaIo, MirrorSet};
use wal::{WalRegion, WalWriter};

/// Bytes of each of the two manifest slots (a manifest names ~37,000 tables per MiB).
pub const MANIFEST_SLOT_BYTES: u64 = 1 << 20;

/// Where everything lives on a metadata device.
#[derive(Clone, Copy, Debug)]
pub struct MetaLayout {
    /// The WAL ring.
    pub wal: WalRegion,
    /// The LSM region: manifest slots and table area.
    pub lsm: LsmLayout,
}

impl MetaLayout {
    /// Lays out a device of `device_bytes`: superblock in the first MiB, then the WAL ring of
    /// `wal_size_bytes`, then the LSM region (two manifest slots, then tables) to the end.
    ///
    /// Errors: [`Error::Config`] if the table area would be smaller than twice the WAL.
    pub fn new(device_bytes: u64, wal_size_bytes: u64, salt: u32) -> Result<MetaLayout> {
        let wal_size_bytes = wal_size_bytes & !(BLOCK_SIZE as u64 - 1);
        let lsm_offset = RESERVED_BYTES + wal_size_bytes;
        let lsm_bytes = device_bytes.saturating_sub(lsm_offset) & !(BLOCK_SIZE as u64 - 1);
        if wal_size_bytes < 16 * BLOCK_SIZE as u64
            || lsm_bytes < 2 * MANIFEST_SLOT_BYTES + 2 * wal_size_bytes
        {
            return Err(Error::Config(format!(
                "metadata device of {device_bytes} bytes is too small for a {wal_size_bytes}-byte WAL and a table area twice its size"
            )));
        }
        Ok(MetaLayout {
            wal: WalRegion {
                offset: RESERVED_BYTES,
                size_bytes: wal_size_bytes,
                salt,
            },
            lsm: LsmLayout::new(lsm_offset, lsm_bytes, MANIFEST_SLOT_BYTES),
        })
    }
}

struct Writer {
    wal: WalWriter,
}

/// A batch's place in the commit order, from [`MetaStore::stage`]: batches are written, made
/// visible and settled (written or failed) in ticket order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Runs once a staged batch has settled, in ticket order, with whether it was committed.
pub type OnSettled = Box<dyn FnOnce(bool) + Send>;

/// A batch waiting for a frame.
struct Queued {
    ticket: u64,
    batch: Arc<Batch>,
    on_settled: Option<OnSettled>,
}

#[derive(Default)]
struct CommitQueue {
    pending: Vec<Queued>,
    next_ticket: u64,
    /// Every ticket below this one has settled.
    settled: u64,
    leader_active: bool,
    done: HashMap<u64, Result<(), String>>,
    /// Staged batches' changes not yet visible to readers, by key: the newest staged batch
    /// that changes the key and the index of its last op on it (see [`MetaStore::get_staged`]).
    staged: HashMap<Vec<u8>, (u64, Arc<Batch>, usize)>,
    /// The waiters of unsettled tickets, each on its own condition variable: a group's
    /// leader wakes exactly the ones it settled, and one waiter of a ticket still queued to
    /// lead the next group (no thundering herd of every waiter per frame).
    sleepers: HashMap<u64, Arc<Condvar>>,
    /// The async waiters of unsettled tickets ([`MetaStore::poll_settled`]), woken by the
    /// leader that settles them; the committer thread leads for them.
    wakers: HashMap<u64, std::task::Waker>,
    /// Tickets whose waiter went away ([`MetaStore::abandon`]): their outcome is not kept.
    abandoned: std::collections::HashSet<u64>,
    /// Set by [`MetaStore::close`]: later commits fail with [`Error::Closed`].
    closed: bool,
    /// Set when the store is dropped: the committer thread ends.
    dropped: bool,
}

/// What the commit queue shares with the committer thread, which must not keep the store
/// (its devices and their locks) alive while it waits.
struct CommitShared {
    queue: Mutex<CommitQueue>,
    /// Woken when batches settle, for synchronous waiters.
    committed: Condvar,
    /// Wakes the committer thread ([`CommitSignal::wait_for_work`]).
    work: Condvar,
}

/// The committer thread's view of the commit queue: it waits here, holding the store only
/// weakly, until async waiters need a leader ([`MetaStore::serve_async_waiters`]).
#[derive(Clone)]
pub struct CommitSignal(Arc<CommitShared>);

impl CommitSignal {
    /// Waits up to `idle` for async waiters with queued batches and no leader. Returns
    /// `None` once the store is dropped, else whether there is such work.
    pub fn wait_for_work(&self, idle: Duration) -> Option<bool> {
        let mut q = self.0.queue.lock();
        if !q.dropped && !needs_async_leader(&q) {
            self.0.work.wait_for(&mut q, idle);
        }
        match q.dropped {
            true => None,
            false => Some(needs_async_leader(&q)),
        }
    }
}

/// Whether async waiters have queued batches that no one is writing.
fn needs_async_leader(q: &CommitQueue) -> bool {
    !q.leader_active && !q.pending.is_empty() && !q.wakers.is_empty()
}

thread_local! {
    /// This thread's condition variable for [`CommitQueue::sleepers`].
    static SLEEPER: Arc<Condvar> = Arc::new(Condvar::new());
}

/// Counters for benchmarks and `hoard` logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetaStats {
    /// Batches committed.
    pub batches: u64,
    /// WAL frames written (each one durable write).
    pub frames: u64,
    /// Memtable flushes handed to the flush thread.
    pub flushes: u64,
    /// Bytes of keys and values applied, written to tables by flushes, and by compactions
    /// (write amplification = (flushed + compacted) / applied).
    pub applied_bytes: u64,
    /// See `applied_bytes`.
    pub flushed_bytes: u64,
    /// See `applied_bytes`.
    pub compacted_bytes: u64,
}

/// One metadata SSD handed to [`MetaStore::open_mirrored`].
pub struct MetaMember {
    /// Its SSD slot.
    pub slot: u32,
    /// The device.
    pub device: Arc<Device>,
    /// Just formatted into the mirror: it holds no copy yet and is resilvered.
    pub new: bool,
}

/// What one member's copy holds, read at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loaded {
    generation: u64,
    replay_lsn: u64,
    tail_lsn: u64,
}

/// What the flush thread reports back.
#[derive(Default)]
struct Flushed {
    /// WAL position before which everything is in tables (durably).
    lsn: Option<u64>,
    /// The last flush's error, if it failed.
    error: Option<String>,
}

struct Maintenance {
    jobs: mpsc::Sender<Option<u64>>,
    flushed: Arc<(Mutex<Flushed>, Condvar)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The metadata store on one SSD or a mirror of several; see the module doc.
pub struct MetaStore {
    io: Arc<MirrorSet>,
    layout: MetaLayout,
    lsm: Arc<Lsm>,
    writer: Mutex<Writer>,
    /// The commit queue, shared with the committer thread ([`CommitSignal`]).
    shared: Arc<CommitShared>,
    stats: Mutex<MetaStats>,
    maintenance: Mutex<Maintenance>,
}

impl MetaStore {
    /// Initialises a freshly formatted device: an empty index, replay from LSN 0.
    pub fn format(device: Arc<Device>, layout: MetaLayout, config: LsmConfig) -> Result<MetaStore> {
        Self::format_mirrored(vec![(0, device)], layout, config)
    }

    /// Initialises freshly formatted devices (SSD slot, device) as one mirror: an empty index,
    /// replay from LSN 0, on every member.
    pub fn format_mirrored(
        members: Vec<(u32, Arc<Device>)>,
        layout: MetaLayout,
        config: LsmConfig,
    ) -> Result<MetaStore> {
        for (_, device) in &members {
            let io: Arc<dyn MetaIo> = device.clone();
            Lsm::create(io, layout.lsm, config.clone())?;
        }
        Self::open_mirrored(
            members
                .into_iter()
                .map(|(slot, device)| MetaMember {
                    slot,
                    device,
                    new: false,
                })
                .collect(),
            layout,
            config,
        )
    }

    /// Opens one device: reads the manifest and the tables' footers, replays the WAL written
    /// since the last flush.
    ///
    /// Errors: [`Error::Corrupt`] if the manifest or a table fails verification.
    pub fn open(device: Arc<Device>, layout: MetaLayout, config: LsmConfig) -> Result<MetaStore> {
        Self::open_mirrored(
            vec![MetaMember {
                slot: 0,
                device,
                new: false,
            }],
            layout,
            config,
        )
    }

    /// Opens a mirror of metadata SSDs. Each member's manifest is read and its WAL replayed on
    /// its own; the one that replays furthest (highest WAL tail, then highest manifest
    /// generation) is the primary. Members whose copy is unreadable, differs from the
    /// primary's (a crash between mirrored writes, or a member that failed earlier) or is `new`
    /// are resilvered from the primary in the background while the store serves.
    ///
    /// Errors: [`Error::Corrupt`] (from the best member) when no member holds a readable copy;
    /// [`Error::Config`] when no member is given.
    pub fn open_mirrored(
        members: Vec<MetaMember>,
        layout: MetaLayout,
        config: LsmConfig,
    ) -> Result<MetaStore> {
        if members.is_empty() {
            return Err(Error::Config("no metadata SSD is present".into()));
        }
        let mut loaded: Vec<Option<Result<Loaded>>> = members
            .iter()
            .map(|m| (!m.new).then(|| Self::load(&*m.device, &layout)))
            .collect();
        let primary = loaded
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l {
                Some(Ok(l)) => Some((i, (l.tail_lsn, l.generation))),
                _ => None,
            })
            .max_by_key(|(_, rank)| *rank)
            .map(|(i, _)| i);
        let Some(primary) = primary else {
            let first_error = loaded.into_iter().flatten().find_map(Result::err);
            return Err(first_error.unwrap_or_else(|| Error::MetadataUnavailable {
                detail: "every metadata SSD is new: there is no copy to open".into(),
            }));
        };
        let Some(Ok(best)) = loaded[primary].take() else {
            unreachable!("the primary loaded")
        };
        let mut states = Vec::with_capacity(members.len());
        for (m, l) in members.iter().zip(&loaded) {
            let state = match l {
                None if m.new => {
                    tracing::info!(device = %m.device.name(), slot = m.slot, "new metadata SSD: resilvering");
                    MemberState::Resilvering
                }
                None => MemberState::InSync, // the primary
                Some(Ok(l)) if *l == best => MemberState::InSync,
                Some(Ok(l)) => {
                    tracing::warn!(device = %m.device.name(), slot = m.slot, tail_lsn = l.tail_lsn,
                        primary_tail_lsn = best.tail_lsn, "metadata SSD is behind its mirror: resilvering");
                    MemberState::Resilvering
                }
                Some(Err(e)) => {
                    tracing::warn!(device = %m.device.name(), slot = m.slot, error = %e,
                        "metadata SSD holds no readable copy: resilvering");
                    MemberState::Resilvering
                }
            };
            states.push(state);
        }
        let manifests = (
            layout.lsm.manifest_offset,
            2 * layout.lsm.manifest_slot_bytes,
        );
        let io = Arc::new(MirrorSet::new(
            members
                .iter()
                .zip(states)
                .map(|(m, state)| (m.slot, m.device.clone(), state))
                .collect(),
            vec![manifests],
        ));
        let dyn_io: Arc<dyn MetaIo> = io.clone();
        let lsm = Arc::new(Lsm::open(dyn_io, layout.lsm, config)?);
        let replay_lsn = lsm.replay_lsn();
        let mut replayed = 0u64;
        let tail_lsn = wal::replay(&*io, &layout.wal, replay_lsn, |batch| {
            lsm.apply(&batch);
            replayed += 1;
        })?;
        tracing::info!(
            device = %io.name(),
            replayed_batches = replayed,
            replayed_bytes = tail_lsn - replay_lsn,
            tables = ?lsm.level_counts(),
            "metadata opened"
        );
        let mut body = vec![(layout.wal.offset, layout.wal.size_bytes)];
        body.extend(lsm.live_extents());
        for member in io.members() {
            if member.state == MemberState::Resilvering {
                let (io, body) = (io.clone(), body.clone());
                std::thread::Builder::new()
                    .name(format!("resilver-ssd{}", member.slot))
                    .spawn(move || {
                        if let Err(e) = io.resilver(member.slot, &body, &[manifests]) {
                            tracing::error!(device = %member.device, error = %e, "metadata resilver failed");
                        }
                    })
                    .map_err(|e| Error::io("resilver thread", e))?;
            }
        }
        let maintenance = Self::start_maintenance(lsm.clone())?;
        Ok(MetaStore {
            writer: Mutex::new(Writer {
                wal: WalWriter::new(layout.wal, replay_lsn, tail_lsn),
            }),
            io,
            layout,
            lsm,
            shared: Arc::new(CommitShared {
                queue: Mutex::new(CommitQueue::default()),
                committed: Condvar::new(),
                work: Condvar::new(),
            }),
            stats: Mutex::new(MetaStats::default()),
            maintenance: Mutex::new(maintenance),
        })
    }

    /// Reads one member's copy: manifest generation and replay position, and how far its WAL
    /// replays (without applying it).
    fn load(device: &dyn MetaIo, layout: &MetaLayout) -> Result<Loaded> {
        let (generation, replay_lsn) = Lsm::peek(device, &layout.lsm)?;
        let tail_lsn = wal::replay(device, &layout.wal, replay_lsn, |_| {})?;
        Ok(Loaded {
            generation,
            replay_lsn,
            tail_lsn,
        })
    }

    /// The maintenance threads. `meta-flush` flushes each frozen memtable it is sent (with
    /// the WAL position of its freeze), reports back, and wakes `meta-compaction`, which
    /// compacts (paced, see [`LsmConfig::compaction_bytes_per_s`]) while a level needs it. A
    /// compaction never delays a flush.
    fn start_maintenance(lsm: Arc<Lsm>) -> Result<Maintenance> {
        let (jobs, rx) = mpsc::channel::<Option<u64>>();
        let flushed = Arc::new((Mutex::new(Flushed::default()), Condvar::new()));
        let report = flushed.clone();
        let (wake, woken) = mpsc::channel::<()>();
        let compactor = lsm.clone();
        let compaction = std::thread::Builder::new()
            .name("meta-compaction".into())
            .spawn(move || {
                // Ends when the flush thread ends (its sender is dropped).
                while woken.recv().is_ok() {
                    while woken.try_recv().is_ok() {}
                    loop {
                        match compactor.compact() {
                            Ok(true) => continue,
                            Ok(false) => break,
                            Err(e) => {
                                tracing::error!(error = %e, "metadata compaction failed; retried after the next flush");
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| Error::io("metadata compaction thread", e))?;
        let flush = std::thread::Builder::new()
            .name("meta-flush".into())
            .spawn(move || {
                while let Ok(Some(lsn)) = rx.recv() {
                    let result = lsm.flush_frozen(lsn);
                    {
                        let (state, cv) = &*report;
                        let mut f = state.lock();
                        match &result {
                            Ok(()) => {
                                f.lsn = Some(f.lsn.map_or(lsn, |l| l.max(lsn)));
                                f.error = None;
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "metadata flush failed; retried at the next one");
                                f.error = Some(e.to_string());
                            }
                        }
                        cv.notify_all();
                    }
                    if result.is_ok() {
                        let _ = wake.send(());
                    }
                }
            })
            .map_err(|e| Error::io("metadata flush thread", e))?;
        Ok(Maintenance {
            jobs,
            flushed,
            threads: vec![flush, compaction],
        })
    }

    /// The metadata SSDs and their states (in sync, resilvering, failed).
    pub fn mirror_members(&self) -> Vec<MemberStatus> {
        self.io.members()
    }

    /// How many mirror members have failed since open (it only grows).
    pub fn mirror_failures(&self) -> u64 {
        self.io.failure_count()
    }

    /// A snapshot: reads through it see every commit acknowledged before it was taken, and
    /// none after, however many flushes and compactions run meanwhile.
    pub fn snapshot(&self) -> Snapshot {
        self.lsm.snapshot()
    }

    /// The value stored under `key`.
    ///
    /// Errors: [`Error::Corrupt`] when a table block fails verification on every mirror
    /// member; device errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.lsm.get(key, &self.lsm.snapshot())
    }

    /// The value stored under `key` at `snapshot`, so that several reads see one state.
    ///
    /// Errors: as [`MetaStore::get`].
    pub fn get_at(&self, key: &[u8], snapshot: &Snapshot) -> Result<Option<Vec<u8>>> {
        self.lsm.get(key, snapshot)
    }

    /// Visits keys >= `from` in byte order at a fresh snapshot; see [`Scan`].
    ///
    /// Errors: as [`MetaStore::get`].
    pub fn scan(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        self.lsm.scan(from, &self.lsm.snapshot(), visit)
    }

    /// Visits keys >= `from` in byte order at `snapshot`; see [`Scan`].
    ///
    /// Errors: as [`MetaStore::get`].
    pub fn scan_at(
        &self,
        from: &[u8],
        snapshot: &Snapshot,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan,
    ) -> Result<()> {
        self.lsm.scan(from, snapshot, visit)
    }

    /// Counters.
    pub fn stats(&self) -> MetaStats {
        let mut s = *self.stats.lock();
        let l = self.lsm.stats();
        s.applied_bytes = l.applied_bytes;
        s.flushed_bytes = l.flushed_bytes;
        s.compacted_bytes = l.compacted_bytes;
        s
    }

    /// The LSM under the store (for benchmarks: levels, RAM and SSD bytes).
    pub fn lsm(&self) -> &Lsm {
        &self.lsm
    }

    /// Commits `batch`: returns once it is durable on the SSD and visible to readers.
    ///
    /// Concurrent callers are grouped: one becomes leader and writes every waiting batch in one
    /// frame (one durable write); batches become visible in commit order.
    ///
    /// Errors: [`Error::MetadataUnavailable`] if the WAL write failed (the device is then
    /// poisoned and every later commit fails too) or the batch is too large for a frame;
    /// [`Error::Closed`] after [`MetaStore::close`].
    pub fn commit(&self, batch: Batch) -> Result<()> {
        let ticket = self.enqueue(batch, false, None)?;
        self.wait(ticket)
    }

    /// Queues `batch` for the next frame without waiting for it, and makes its changes visible
    /// to [`MetaStore::get_staged`] at once (to readers only once durable, as a commit's). A
    /// caller that serialises its read-modify-writes of some keys (the store's key locks) can
    /// so stage one, let the next writer of the same key read it and stage its own, and have
    /// both share one durable write: [`MetaStore::wait`] returns the outcome. `on_settled`
    /// runs once the batch is written or has failed, in ticket order (before `wait` returns).
    /// A failed frame fails every batch queued behind it too, as they may have been computed
    /// from it.
    ///
    /// Errors: [`Error::MetadataUnavailable`] for a batch too large for a frame;
    /// [`Error::Closed`] after [`MetaStore::close`]. Nothing is queued then.
    pub fn stage(&self, batch: Batch, on_settled: Option<OnSettled>) -> Result<Ticket> {
        self.enqueue(batch, true, on_settled)
    }

    fn enqueue(
        &self,
        batch: Batch,
        visible: bool,
        on_settled: Option<OnSettled>,
    ) -> Result<Ticket> {
        let max_frame = self.layout.wal.max_frame_bytes();
        if wal::frame_bytes(batch.encoded_len()) > max_frame {
            return Err(Error::MetadataUnavailable {
                detail: format!(
                    "a metadata batch of {} bytes is larger than a WAL frame ({max_frame} bytes)",
                    batch.encoded_len()
                ),
            });
        }
        let batch = Arc::new(batch);
        let mut q = self.shared.queue.lock();
        if q.closed {
            return Err(Error::Closed);
        }
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        if visible {
            for (i, op) in batch.ops.iter().enumerate() {
                let key = match op {
                    Op::Put(k, _) | Op::Delete(k) => k,
                };
                q.staged.insert(key.clone(), (ticket, batch.clone(), i));
            }
        }
        q.pending.push(Queued {
            ticket,
            batch,
            on_settled,
        });
        Ok(Ticket(ticket))
    }

    /// Waits for a staged batch to be durable and visible (see [`MetaStore::stage`]); the
    /// waiting callers take turns leading the group commit.
    ///
    /// Errors: as [`MetaStore::commit`].
    pub fn wait(&self, ticket: Ticket) -> Result<()> {
        let mut q = self.shared.queue.lock();
        loop {
            if let Some(result) = q.done.remove(&ticket.0) {
                return result.map_err(|detail| Error::MetadataUnavailable { detail });
            }
            if q.leader_active {
                let cv = SLEEPER.with(|c| c.clone());
                q.sleepers.insert(ticket.0, cv.clone());
                cv.wait(&mut q);
                q.sleepers.remove(&ticket.0);
                continue;
            }
            self.lead_or_wait(&mut q);
        }
    }

    /// Waits until `ticket` and every batch before it have settled (written or failed),
    /// without taking its outcome (that is its stager's).
    pub fn wait_settled(&self, ticket: Ticket) {
        let mut q = self.shared.queue.lock();
        while q.settled <= ticket.0 {
            self.lead_or_wait(&mut q);
        }
    }

    /// Polls a staged batch's outcome from async code (see [`MetaStore::stage`]): `Ready`
    /// once it is durable and visible (or failed); else the waker is woken when it settles.
    /// The group commit is led for async waiters by the committer thread, which must be
    /// running [`MetaStore::serve_async_waiters`] (the store starts it).
    pub fn poll_settled(
        &self,
        ticket: Ticket,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        let mut q = self.shared.queue.lock();
        if let Some(result) = q.done.remove(&ticket.0) {
            q.wakers.remove(&ticket.0);
            return std::task::Poll::Ready(
                result.map_err(|detail| Error::MetadataUnavailable { detail }),
            );
        }
        q.wakers.insert(ticket.0, cx.waker().clone());
        if !q.leader_active {
            self.shared.work.notify_one();
        }
        std::task::Poll::Pending
    }

    /// Forgets the outcome of a staged batch whose async waiter went away (the batch itself
    /// still commits, or has).
    pub fn abandon(&self, ticket: Ticket) {
        let mut q = self.shared.queue.lock();
        q.wakers.remove(&ticket.0);
        if q.done.remove(&ticket.0).is_none() && q.settled <= ticket.0 {
            q.abandoned.insert(ticket.0);
        }
    }

    /// The committer's turn: leads groups while async waiters have queued batches and no
    /// one writes them (see [`CommitSignal::wait_for_work`]).
    pub fn serve_async_waiters(&self) {
        let mut q = self.shared.queue.lock();
        while needs_async_leader(&q) {
            self.lead_or_wait(&mut q);
        }
    }

    /// What the committer thread waits on.
    pub fn commit_signal(&self) -> CommitSignal {
        CommitSignal(self.shared.clone())
    }

    /// Waits until every batch queued so far has settled. A caller that excludes stagers (the
    /// store's namespace lock, held exclusively) so sees every staged change visible.
    pub fn barrier(&self) {
        let last = {
            let q = self.shared.queue.lock();
            match q.next_ticket {
                0 => return,
                n => n - 1,
            }
        };
        self.wait_settled(Ticket(last));
    }

    /// One turn of a waiter: writes the queued batches if no one is, else waits for the one
    /// who is to finish.
    fn lead_or_wait(&self, q: &mut MutexGuard<'_, CommitQueue>) {
        if q.leader_active {
            self.shared.committed.wait(q);
            return;
        }
        q.leader_active = true;
        let work = std::mem::take(&mut q.pending);
        let results = MutexGuard::unlocked(q, || self.write_group(work));
        let failed = results.iter().find_map(|(_, r)| r.as_ref().err().cloned());
        let mut settled: Vec<(u64, Arc<Batch>, Option<OnSettled>, bool)> = results
            .into_iter()
            .map(|(queued, r)| {
                let ok = r.is_ok();
                if !q.abandoned.remove(&queued.ticket) {
                    q.done.insert(queued.ticket, r);
                }
                (queued.ticket, queued.batch, queued.on_settled, ok)
            })
            .collect();
        if let Some(detail) = failed {
            // Batches staged while the failed one was visible to stagers may build on it.
            for queued in std::mem::take(&mut q.pending) {
                if !q.abandoned.remove(&queued.ticket) {
                    let why = format!("an earlier batch this one may build on failed: {detail}");
                    q.done.insert(queued.ticket, Err(why));
                }
                settled.push((queued.ticket, queued.batch, queued.on_settled, false));
            }
        }
        for (ticket, batch, _, _) in &settled {
            for op in &batch.ops {
                let key = match op {
                    Op::Put(k, _) | Op::Delete(k) => k,
                };
                if q.staged.get(key).is_some_and(|(t, _, _)| t == ticket) {
                    q.staged.remove(key);
                }
            }
        }
        let settled_tickets: Vec<u64> = settled.iter().map(|(t, ..)| *t).collect();
        if let Some((last, ..)) = settled.last() {
            debug_assert!(settled.windows(2).all(|w| w[0].0 < w[1].0));
            q.settled = last + 1;
        }
        let callbacks: Vec<(OnSettled, bool)> = settled
            .into_iter()
            .filter_map(|(_, _, f, ok)| f.map(|f| (f, ok)))
            .collect();
        if !callbacks.is_empty() {
            MutexGuard::unlocked(q, || {
                for (f, ok) in callbacks {
                    f(ok);
                }
            });
        }
        q.leader_active = false;
        let mut wake = Vec::new();
        for ticket in settled_tickets {
            if let Some(cv) = q.sleepers.remove(&ticket) {
                cv.notify_one();
            }
            if let Some(w) = q.wakers.remove(&ticket) {
                wake.push(w);
            }
        }
        // The next group's leader: the waiter of the oldest ticket still queued, if one waits;
        // else the committer, for async waiters.
        let next = q
            .pending
            .iter()
            .find_map(|p| q.sleepers.get(&p.ticket).cloned());
        match next {
            Some(cv) => {
                cv.notify_one();
            }
            None if !q.pending.is_empty() => {
                self.shared.work.notify_one();
            }
            None => {}
        }
        self.shared.committed.notify_all();
        if !wake.is_empty() {
            MutexGuard::unlocked(q, || wake.into_iter().for_each(|w| w.wake()));
        }
    }

    /// The value of `key` with the staged batches' changes (see [`MetaStore::stage`]): the
    /// newest staged change of it, else what readers see.
    ///
    /// Errors: as [`MetaStore::get`].
    pub fn get_staged(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        {
            let q = self.shared.queue.lock();
            if let Some((_, batch, i)) = q.staged.get(key) {
                return Ok(match &batch.ops[*i] {
                    Op::Put(_, v) => Some(v.clone()),
                    Op::Delete(_) => None,
                });
            }
        }
        // Not staged, or applied to the memtable before its staged entry was removed.
        self.get(key)
    }

    fn write_group(&self, work: Vec<Queued>) -> Vec<(Queued, Result<(), String>)> {
        let mut writer = self.writer.lock();
        self.reclaim(&mut writer);
        let max_frame = self.layout.wal.max_frame_bytes();
        let mut results = Vec::with_capacity(work.len());
        let mut failed: Option<String> = None;
        let mut work = work.into_iter().peekable();
        while let Some(first) = work.next() {
            // Take as many batches as fit one frame (at least one).
            let mut payload = first.batch.encoded_len();
            let mut frame = vec![first];
            while let Some(next) = work.peek() {
                let bigger = payload + next.batch.encoded_len();
                if wal::frame_bytes(bigger) > max_frame {
                    break;
                }
                payload = bigger;
                frame.push(work.next().expect("peeked"));
            }
            let outcome = match &failed {
                // A later frame may hold batches computed from the failed one's.
                Some(detail) => Err(Error::MetadataUnavailable {
                    detail: format!("an earlier frame failed: {detail}"),
                }),
                None => {
                    let group: Vec<&Batch> = frame.iter().map(|q| &*q.batch).collect();
                    let bytes = wal::frame_bytes(payload);
                    let mut outcome = Ok(());
                    if !writer.wal.has_room(bytes) && bytes <= max_frame {
                        outcome = self.make_room(&mut writer, bytes);
                    }
                    if outcome.is_ok() {
                        outcome = writer.wal.append(&*self.io, &group);
                    }
                    if outcome.is_ok() {
                        for b in &group {
                            self.lsm.apply(b);
                        }
                    }
                    outcome
                }
            };
            match outcome {
                Ok(()) => {
                    let mut stats = self.stats.lock();
                    stats.batches += frame.len() as u64;
                    stats.frames += 1;
                    results.extend(frame.into_iter().map(|q| (q, Ok(()))));
                }
                Err(e) => {
                    let msg = e.to_string();
                    failed.get_or_insert_with(|| msg.clone());
                    results.extend(frame.into_iter().map(|q| (q, Err(msg.clone()))));
                }
            }
        }
        if self.lsm.needs_flush() || writer.wal.live_bytes() > self.layout.wal.size_bytes / 2 {
            self.start_flush(&writer);
        }
        results
    }

    /// Lets the WAL reuse the space a finished flush made redundant.
    fn reclaim(&self, writer: &mut Writer) {
        let flushed = self.maintenance.lock().flushed.clone();
        let lsn = flushed.0.lock().lsn;
        if let Some(lsn) = lsn {
            if lsn > writer.wal.checkpoint_lsn {
                writer.wal.checkpoint_lsn = lsn;
            }
        }
    }

    /// Freezes the memtable and hands it to the flush thread, unless a flush is already
    /// under way. Called with the writer lock held, so the WAL tail is the freeze's position.
    fn start_flush(&self, writer: &Writer) -> bool {
        if !self.lsm.freeze() {
            return false;
        }
        let lsn = writer.wal.tail_lsn;
        self.stats.lock().flushes += 1;
        let _ = self.maintenance.lock().jobs.send(Some(lsn));
        true
    }

    /// Waits until the WAL has room for `bytes`: starts a flush if none is under way and waits
    /// for flushes to finish.
    fn make_room(&self, writer: &mut Writer, bytes: u64) -> Result<()> {
        loop {
            self.reclaim(writer);
            if writer.wal.has_room(bytes) {
                return Ok(());
            }
            if !self.lsm.has_frozen() && !self.start_flush(writer) {
                // Nothing in the memtable: every logged batch is in the tables already (empty
                // batches only); say so in the manifest and reuse the whole log.
                let tail = writer.wal.tail_lsn;
                self.lsm.record_replay_lsn(tail)?;
                writer.wal.checkpoint_lsn = tail;
                continue;
            }
            let flushed = self.maintenance.lock().flushed.clone();
            let (state, cv) = &*flushed;
            let mut f = state.lock();
            if let Some(e) = f.error.take() {
                return Err(Error::MetadataUnavailable {
                    detail: format!("the write-ahead log is full and the flush failed: {e}"),
                });
            }
            cv.wait_for(&mut f, Duration::from_millis(50));
        }
    }

    /// Clean shutdown: refuses later commits ([`Error::Closed`]), then checkpoints (see
    /// [`MetaStore::checkpoint`]) so the next open replays nothing. Calling it again only
    /// checkpoints again.
    pub fn close(&self) -> Result<()> {
        self.shared.queue.lock().closed = true;
        self.checkpoint()
    }

    /// Whether [`MetaStore::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.lock().closed
    }

    /// Flushes everything committed so far into tables (clean shutdown: the next open then
    /// replays nothing), waiting for any flush under way.
    ///
    /// Errors: the flush's error.
    pub fn checkpoint(&self) -> Result<()> {
        // Hold leadership so no frame is written meanwhile.
        let mut q = self.shared.queue.lock();
        while q.leader_active {
            self.shared.committed.wait(&mut q);
        }
        q.leader_active = true;
        drop(q);
        let result = (|| {
            let mut writer = self.writer.lock();
            while self.lsm.has_frozen() {
                let flushed = self.maintenance.lock().flushed.clone();
                let (state, cv) = &*flushed;
                let mut f = state.lock();
                if let Some(e) = f.error.take() {
                    return Err(Error::MetadataUnavailable { detail: e });
                }
                cv.wait_for(&mut f, Duration::from_millis(50));
            }
            self.reclaim(&mut writer);
            if writer.wal.live_bytes() > 0 {
                let tail = writer.wal.tail_lsn;
                if self.lsm.freeze() {
                    self.lsm.flush_frozen(tail)?;
                }
                self.lsm.record_replay_lsn(tail)?;
                writer.wal.checkpoint_lsn = tail;
            }
            Ok(())
        })();
        let mut q = self.shared.queue.lock();
        q.leader_active = false;
        self.shared.committed.notify_all();
        result
    }
}

impl Drop for MetaStore {
    fn drop(&mut self) {
        self.shared.queue.lock().dropped = true;
        self.shared.work.notify_all();
        let mut m = self.maintenance.lock();
        self.lsm.stop_pacing();
        let _ = m.jobs.send(None);
        for t in m.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::{FaultBackend, FaultControl};
    use std::collections::BTreeMap;

    const DEV_BYTES: u64 = 8 << 20;

    fn device(image: Option<Vec<u8>>) -> (Arc<Device>, FaultControl) {
        let (backend, control) = match image {
            Some(i) => FaultBackend::from_image(i),
            None => FaultBackend::new(DEV_BYTES),
        };
        (
            Arc::new(Device::with_backend("ssd", DEV_BYTES, Box::new(backend))),
            control,
        )
    }

    fn layout() -> MetaLayout {
        MetaLayout::new(DEV_BYTES, 256 * 1024, 42).unwrap()
    }

    fn config() -> LsmConfig {
        LsmConfig {
            memtable_budget_bytes: 64 << 10,
            table_target_bytes: 64 << 10,
            block_bytes: 1024,
            bloom_bits_per_key: 10,
            l0_trigger: 3,
            l1_target_bytes: 256 << 10,
            level_multiplier: 4,
            block_cache_bytes: 64 << 10,
            compaction_bytes_per_s: 0,
        }
    }

    fn keys_of(meta: &MetaStore) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        meta.scan(b"", &mut |k, _| {
            out.push(k.to_vec());
            Scan::Continue
        })
        .unwrap();
        out
    }

    #[test]
    fn commits_survive_reopen_through_flushes_and_compactions() {
        let (dev, control) = device(None);
        let meta = MetaStore::format(dev, layout(), config()).unwrap();
        for i in 0..2000u32 {
            let mut b = Batch::new();
            b.put(format!("k{i:06}").into_bytes(), vec![1; 100]);
            if i % 10 == 0 {
                b.delete(format!("k{:06}", i / 2).into_bytes());
            }
            meta.commit(b).unwrap();
        }
        assert!(
            meta.stats().flushes > 0,
            "a 64 KiB memtable must have flushed"
        );
        let expect = keys_of(&meta);
        assert_eq!(expect.len(), 2000 - 200);
        drop(meta);
        let (dev, _c) = device(Some(control.durable_image()));
        let meta = MetaStore::open(dev, layout(), config()).unwrap();
        assert_eq!(keys_of(&meta), expect);
        assert!(meta.get(b"k001999").unwrap().is_some());
        assert!(
            meta.get(b"k000500").unwrap().is_none(),
            "deleted by batch 1000"
        );
        assert!(meta.lsm().level_counts().iter().sum::<usize>() > 0);
    }

    #[test]
    fn group_commit_from_many_threads() {
        let (dev, control) = device(None);
        let meta = Arc::new(MetaStore::format(dev, layout(), config()).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let meta = meta.clone();
                std::thread::spawn(move || {
                    for i in 0..100u32 {
                        let mut b = Batch::new();
                        b.put(format!("t{t:02}/{i:04}").into_bytes(), vec![t as u8; 10]);
                        meta.commit(b).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = meta.stats();
        assert_eq!(stats.batches, 1600);
        assert_eq!(keys_of(&meta).len(), 1600);
        drop(meta);
        let (dev, _c) = device(Some(control.durable_image()));
        let meta = MetaStore::open(dev, layout(), config()).unwrap();
        assert_eq!(keys_of(&meta).len(), 1600);
    }

    #[test]
    fn acknowledged_commits_survive_power_cuts_at_every_point() {
        for cut in 0..60u64 {
            let (dev, control) = device(None);
            let meta = MetaStore::format(dev, layout(), config()).unwrap();
            control.power_cut_after(cut, cut % 2 == 0);
            let mut acked = 0u32;
            for i in 0..200u32 {
                let mut b = Batch::new();
                b.put(format!("k{i:04}").into_bytes(), vec![7; 3000])
                    .put(format!("z{i:04}").into_bytes(), vec![]);
                if meta.commit(b).is_err() {
                    break;
                }
                acked = i + 1;
            }
            drop(meta);
            let (dev, _c) = device(Some(control.durable_image()));
            let meta = MetaStore::open(dev, layout(), config()).unwrap();
            for i in 0..acked {
                assert!(
                    meta.get(format!("k{i:04}").as_bytes()).unwrap().is_some(),
                    "cut {cut}: k{i} lost"
                );
            }
            // Each batch is all-or-nothing.
            for i in 0..200u32 {
                let k = meta.get(format!("k{i:04}").as_bytes()).unwrap().is_some();
                let z = meta.get(format!("z{i:04}").as_bytes()).unwrap().is_some();
                assert_eq!(k, z, "cut {cut}: batch {i} torn");
            }
        }
    }

    fn member(slot: u32, device: Arc<Device>, new: bool) -> MetaMember {
        MetaMember { slot, device, new }
    }

    fn put(meta: &MetaStore, i: u32) -> Result<()> {
        let mut b = Batch::new();
        b.put(format!("k{i:05}").into_bytes(), vec![i as u8; 700]);
        meta.commit(b)
    }

    fn wait_in_sync(meta: &MetaStore) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while meta
            .mirror_members()
            .iter()
            .any(|m| m.state != MemberState::InSync)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "resilver did not finish: {:?}",
                meta.mirror_members()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn assert_keys(meta: &MetaStore, count: u32, context: &str) {
        for i in 0..count {
            assert_eq!(
                meta.get(format!("k{i:05}").as_bytes()).unwrap(),
                Some(vec![i as u8; 700]),
                "{context}: k{i:05}"
            );
        }
    }

    #[test]
    fn a_mirror_keeps_serving_when_one_ssd_fails_and_resilvers_it() {
        let (a, ca) = device(None);
        let (b, cb) = device(None);
        let meta = MetaStore::format_mirrored(vec![(0, a), (1, b)], layout(), config()).unwrap();
        for i in 0..300 {
            if i == 100 {
                cb.fail_writes(true);
            }
            put(&meta, i).unwrap();
        }
        let states = meta.mirror_members();
        assert_eq!(states[0].state, MemberState::InSync);
        assert!(
            matches!(states[1].state, MemberState::Failed(_)),
            "{states:?}"
        );
        drop(meta);

        // The survivor alone holds everything.
        let (a, _) = device(Some(ca.durable_image()));
        let meta = MetaStore::open(a, layout(), config()).unwrap();
        assert_keys(&meta, 300, "survivor alone");
        drop(meta);

        // Both again: the stale one is found behind and resilvered, then holds everything.
        let (a, ca) = device(Some(ca.durable_image()));
        let (b, cb) = device(Some(cb.durable_image()));
        let meta = MetaStore::open_mirrored(
            vec![member(0, a, false), member(1, b, false)],
            layout(),
            config(),
        )
        .unwrap();
        assert_keys(&meta, 300, "mirror after a failure");
        wait_in_sync(&meta);
        put(&meta, 300).unwrap();
        drop(meta);
        drop(ca);
        let (b, _) = device(Some(cb.durable_image()));
        let meta = MetaStore::open(b, layout(), config()).unwrap();
        assert_keys(&meta, 301, "resilvered member alone");
    }

    #[test]
    fn a_blank_replacement_is_resilvered_while_commits_go_on() {
        let (a, ca) = device(None);
        let meta = MetaStore::format(a, layout(), config()).unwrap();
        for i in 0..400 {
            put(&meta, i).unwrap();
        }
        assert!(meta.stats().flushes > 0, "the copy must include tables");
        drop(meta);
        let (a, _ca) = device(Some(ca.durable_image()));
        let (c, cc) = device(None);
        let meta = Arc::new(
            MetaStore::open_mirrored(
                vec![member(0, a, false), member(1, c, true)],
                layout(),
                config(),
            )
            .unwrap(),
        );
        let writer = {
            let meta = meta.clone();
            std::thread::spawn(move || {
                for i in 400..800 {
                    put(&meta, i).unwrap();
                }
            })
        };
        writer.join().unwrap();
        wait_in_sync(&meta);
        for i in 800..850 {
            put(&meta, i).unwrap();
        }
        drop(meta);
        let (c, _) = device(Some(cc.durable_image()));
        let meta = MetaStore::open(c, layout(), config()).unwrap();
        assert_keys(&meta, 850, "replacement alone");
    }

    #[test]
    fn a_crash_between_mirrored_writes_loses_no_acknowledged_commit() {
        for cut in 0..40u64 {
            let (a, ca) = device(None);
            let (b, cb) = device(None);
            let meta =
                MetaStore::format_mirrored(vec![(0, a), (1, b)], layout(), config()).unwrap();
            // The two SSDs lose power a few writes apart, as they would in a real cut.
            ca.power_cut_after(cut, cut % 2 == 0);
            cb.power_cut_after(cut + 1 + cut % 3, cut % 3 == 0);
            let mut acked = 0;
            for i in 0..200 {
                if put(&meta, i).is_err() {
                    break;
                }
                acked = i + 1;
            }
            drop(meta);
            let (a, ca) = device(Some(ca.durable_image()));
            let (b, cb) = device(Some(cb.durable_image()));
            let meta = MetaStore::open_mirrored(
                vec![member(0, a, false), member(1, b, false)],
                layout(),
                config(),
            )
            .unwrap();
            assert_keys(&meta, acked, &format!("cut {cut}, both"));
            wait_in_sync(&meta);
            drop(meta);
            for (name, control) in [("a", ca), ("b", cb)] {
                let (d, _) = device(Some(control.durable_image()));
                let meta = MetaStore::open(d, layout(), config()).unwrap();
                assert_keys(
                    &meta,
                    acked,
                    &format!("cut {cut}, {name} alone after resync"),
                );
            }
        }
    }

    /// splitmix64: a seeded, dependency-free random sequence for the crash-point sweep.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Runs a random workload of puts, overwrites and deletes (seeded by `seed`) on a fresh
    /// store whose device loses power after `cut` writes (`None`: never), through WAL
    /// appends, flushes and compactions. Returns the state of every acknowledged commit, the
    /// one commit in doubt (failed, so maybe durable) and the device.
    #[allow(clippy::type_complexity)]
    fn random_run(
        seed: u64,
        cut: Option<(u64, bool)>,
    ) -> (BTreeMap<Vec<u8>, Vec<u8>>, Option<Batch>, FaultControl) {
        let mut rng = Rng(seed);
        let (dev, control) = device(None);
        let meta = MetaStore::format(dev, layout(), config()).unwrap();
        if let Some((writes, tear)) = cut {
            control.power_cut_after(writes, tear);
        }
        let mut acked = BTreeMap::new();
        let mut in_doubt = None;
        for n in 0..400u64 {
            let mut b = Batch::new();
            for _ in 0..1 + rng.below(4) {
                let key = format!("key{:04}", rng.below(500)).into_bytes();
                if rng.below(6) == 0 {
                    b.delete(key);
                } else {
                    let len = [0, 20, 200, 1500][rng.below(4) as usize];
                    let value = format!("{n}:").into_bytes().repeat(len / 4 + 1);
                    b.put(key, value);
                }
            }
            match meta.commit(b.clone()) {
                Ok(()) => apply(&mut acked, &b),
                Err(_) => {
                    in_doubt = Some(b);
                    break;
                }
            }
        }
        drop(meta);
        (acked, in_doubt, control)
    }

    fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, batch: &Batch) {
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    model.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    model.remove(k);
                }
            }
        }
    }

    #[test]
    fn two_thousand_random_power_cuts_lose_no_acknowledged_commit() {
        // Each point: a random workload (flushes and compactions run beneath it), the power
        // lost after a random number of device writes, torn or not. The reopened store holds
        // exactly every acknowledged commit, plus possibly the one commit in flight, whole.
        let (_, _, control) = random_run(0, None);
        let writes_per_run = control.writes();
        let mut rng = Rng(0xC0FFEE);
        let mut reached_maintenance = 0;
        for point in 0..2000u64 {
            let seed = rng.next();
            let cut = rng.below(writes_per_run + 8);
            let tear = rng.below(2) == 0;
            let (acked, in_doubt, control) = random_run(seed, Some((cut, tear)));
            let (dev, _c) = device(Some(control.durable_image()));
            let meta = MetaStore::open(dev, layout(), config())
                .unwrap_or_else(|e| panic!("point {point} (seed {seed}, cut {cut}): {e}"));
            if meta.lsm().level_counts().iter().sum::<usize>() > 0 {
                reached_maintenance += 1;
            }
            let mut got = BTreeMap::new();
            meta.scan(b"", &mut |k, v| {
                got.insert(k.to_vec(), v.to_vec());
                Scan::Continue
            })
            .unwrap();
            let mut with_doubt = acked.clone();
            if let Some(b) = &in_doubt {
                apply(&mut with_doubt, b);
            }
            assert!(
                got == acked || got == with_doubt,
                "point {point} (seed {seed}, cut {cut}, torn {tear}): {} keys, {} acknowledged",
                got.len(),
                acked.len()
            );
        }
        assert!(
            reached_maintenance > 500,
            "only {reached_maintenance} points cut after a flush"
        );
    }
}
