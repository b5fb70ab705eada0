//! Metadata: a checksummed write-ahead log with group commit, and the ordered index it feeds.
//!
//! Owns: the SSD's layout after the superblock (anchor blocks, WAL ring, two checkpoint slots),
//! commit (durable on the SSD before it returns, then visible), replay at open, and checkpoints
//! that bound replay to half the WAL ring. Knows nothing of buckets or objects: it stores byte
//! keys and values (the store's schema lives in `store/schema.rs`). Must not touch HDDs.
//!
//! Back of the envelope (dev machine, ../shared/facts/machine.md): one fdatasync of an overwrite
//! ~40 us, so one writer commits ~10-20k batches/s; group commit puts every batch waiting while a
//! frame is written into the next frame, so 64 writers share one fdatasync.

pub mod checkpoint;
pub mod codec;
pub mod index;
pub mod lsm;
pub mod mirror;
pub mod sstable;
pub mod wal;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::device::superblock::RESERVED_BYTES;
use crate::device::{Device, BLOCK_SIZE};
use crate::error::{Error, Result};

use checkpoint::{Anchor, CheckpointSlots, ANCHOR_OFFSETS};
pub use index::{Batch, Index, MemIndex, Op, Scan};
pub use mirror::{MemberState, MemberStatus, MetaIo, MirrorSet};
use wal::{WalRegion, WalWriter};

/// Where everything lives on a metadata device.
#[derive(Clone, Copy, Debug)]
pub struct MetaLayout {
    /// The WAL ring.
    pub wal: WalRegion,
    /// The two checkpoint slots.
    pub checkpoints: CheckpointSlots,
}

impl MetaLayout {
    /// Lays out a device of `device_bytes`: superblock and anchors in the first MiB, then the WAL
    /// ring of `wal_size_bytes`, then two equal checkpoint slots filling the rest.
    ///
    /// Errors: [`Error::Config`] if the device is too small for the WAL plus two slots of at
    /// least the WAL's size.
    pub fn new(device_bytes: u64, wal_size_bytes: u64, salt: u32) -> Result<MetaLayout> {
        let wal_size_bytes = wal_size_bytes & !(BLOCK_SIZE as u64 - 1);
        let rest = device_bytes.saturating_sub(RESERVED_BYTES + wal_size_bytes);
        let slot_bytes = (rest / 2) & !(BLOCK_SIZE as u64 - 1);
        if wal_size_bytes < 16 * BLOCK_SIZE as u64 || slot_bytes < wal_size_bytes {
            return Err(Error::Config(format!(
                "metadata device of {device_bytes} bytes is too small for a {wal_size_bytes}-byte WAL and two checkpoint slots"
            )));
        }
        Ok(MetaLayout {
            wal: WalRegion {
                offset: RESERVED_BYTES,
                size_bytes: wal_size_bytes,
                salt,
            },
            checkpoints: CheckpointSlots {
                offset: RESERVED_BYTES + wal_size_bytes,
                slot_bytes,
            },
        })
    }
}

struct Writer {
    wal: WalWriter,
    anchor: Anchor,
}

#[derive(Default)]
struct CommitQueue {
    pending: Vec<(u64, Batch)>,
    next_ticket: u64,
    leader_active: bool,
    done: HashMap<u64, Result<(), String>>,
}

/// Counters for benchmarks and `hoard` logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetaStats {
    /// Batches committed.
    pub batches: u64,
    /// WAL frames written (each one durable write).
    pub frames: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Keys in the index.
    pub keys: u64,
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
struct Loaded {
    anchor: Anchor,
    index: MemIndex,
    tail_lsn: u64,
}

/// The metadata store on one SSD or a mirror of several; see the module doc.
pub struct MetaStore {
    io: Arc<MirrorSet>,
    layout: MetaLayout,
    index: RwLock<MemIndex>,
    writer: Mutex<Writer>,
    queue: Mutex<CommitQueue>,
    committed: Condvar,
    stats: Mutex<MetaStats>,
}

impl MetaStore {
    /// Initialises a freshly formatted device: an empty index, replay from LSN 0.
    pub fn format(device: Arc<Device>, layout: MetaLayout) -> Result<MetaStore> {
        Self::format_mirrored(vec![(0, device)], layout)
    }

    /// Initialises freshly formatted devices (SSD slot, device) as one mirror: an empty index,
    /// replay from LSN 0, on every member.
    pub fn format_mirrored(
        members: Vec<(u32, Arc<Device>)>,
        layout: MetaLayout,
    ) -> Result<MetaStore> {
        let anchor = Anchor {
            generation: 1,
            slot: 0,
            checkpoint_bytes: 0,
            checkpoint_crc: 0,
            replay_lsn: 0,
        };
        for (_, device) in &members {
            anchor.write(&**device)?;
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
        )
    }

    /// Opens one device: reads the anchor and its checkpoint, replays the WAL after it.
    ///
    /// Errors: [`Error::Corrupt`] if the anchor or checkpoint fails verification.
    pub fn open(device: Arc<Device>, layout: MetaLayout) -> Result<MetaStore> {
        Self::open_mirrored(
            vec![MetaMember {
                slot: 0,
                device,
                new: false,
            }],
            layout,
        )
    }

    /// Opens a mirror of metadata SSDs. Each member's copy is read and replayed on its own; the
    /// one that replays furthest (highest WAL tail, then highest checkpoint generation) is the
    /// primary and its index is served. Members whose copy is unreadable, differs from the
    /// primary's (a crash between mirrored writes, or a member that failed earlier) or is `new`
    /// are resilvered from the primary in the background while the store serves.
    ///
    /// Errors: [`Error::Corrupt`] (from the best member) when no member holds a readable copy;
    /// [`Error::Config`] when no member is given.
    pub fn open_mirrored(members: Vec<MetaMember>, layout: MetaLayout) -> Result<MetaStore> {
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
                Some(Ok(l)) => Some((i, (l.tail_lsn, l.anchor.generation))),
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
                Some(Ok(l)) if l.tail_lsn == best.tail_lsn && l.anchor == best.anchor => {
                    MemberState::InSync
                }
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
        let io = Arc::new(MirrorSet::new(
            members
                .iter()
                .zip(states)
                .map(|(m, state)| (m.slot, m.device.clone(), state))
                .collect(),
        ));
        tracing::info!(
            device = %io.name(),
            keys = best.index.len(),
            replay_from_lsn = best.anchor.replay_lsn,
            tail_lsn = best.tail_lsn,
            "metadata opened"
        );
        let stats = MetaStats {
            keys: best.index.len() as u64,
            ..MetaStats::default()
        };
        let resilver_body = [
            (layout.wal.offset, layout.wal.size_bytes),
            (
                layout.checkpoints.slot_offset(best.anchor.slot),
                best.anchor.checkpoint_bytes,
            ),
        ];
        let anchors = [(ANCHOR_OFFSETS[0], 2 * BLOCK_SIZE as u64)];
        for member in io.members() {
            if member.state == MemberState::Resilvering {
                let io = io.clone();
                std::thread::Builder::new()
                    .name(format!("resilver-ssd{}", member.slot))
                    .spawn(move || {
                        if let Err(e) = io.resilver(member.slot, &resilver_body, &anchors) {
                            tracing::error!(device = %member.device, error = %e, "metadata resilver failed");
                        }
                    })
                    .map_err(|e| Error::io("resilver thread", e))?;
            }
        }
        Ok(MetaStore {
            writer: Mutex::new(Writer {
                wal: WalWriter::new(layout.wal, best.anchor.replay_lsn, best.tail_lsn),
                anchor: best.anchor,
            }),
            io,
            layout,
            index: RwLock::new(best.index),
            queue: Mutex::new(CommitQueue::default()),
            committed: Condvar::new(),
            stats: Mutex::new(stats),
        })
    }

    /// Reads one member's copy: anchor, checkpoint, WAL replay.
    fn load(device: &dyn MetaIo, layout: &MetaLayout) -> Result<Loaded> {
        let anchor = Anchor::read(device)?;
        let mut index = layout.checkpoints.read(device, &anchor)?;
        let tail_lsn = wal::replay(device, &layout.wal, anchor.replay_lsn, |batch| {
            index.apply(&batch);
        })?;
        Ok(Loaded {
            anchor,
            index,
            tail_lsn,
        })
    }

    /// The metadata SSDs and their states (in sync, resilvering, failed).
    pub fn mirror_members(&self) -> Vec<MemberStatus> {
        self.io.members()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.index.read().get(key)
    }

    /// Visits keys >= `from` in byte order; see [`Scan`].
    pub fn scan(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan) {
        self.index.read().scan(from, visit)
    }

    /// Counters.
    pub fn stats(&self) -> MetaStats {
        let mut s = *self.stats.lock();
        s.keys = self.index.read().len() as u64;
        s
    }

    /// Commits `batch`: returns once it is durable on the SSD and visible to readers.
    ///
    /// Concurrent callers are grouped: one becomes leader and writes every waiting batch in one
    /// frame (one durable write); batches become visible in commit order.
    ///
    /// Errors: [`Error::MetadataUnavailable`] if the WAL write failed (the device is then
    /// poisoned and every later commit fails too) or the batch is too large for a frame.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        let mut q = self.queue.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((ticket, batch));
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result.map_err(|detail| Error::MetadataUnavailable { detail });
            }
            if q.leader_active {
                self.committed.wait(&mut q);
                continue;
            }
            q.leader_active = true;
            let work = std::mem::take(&mut q.pending);
            let results = MutexGuard::unlocked(&mut q, || self.write_group(work));
            q.done.extend(results);
            q.leader_active = false;
            self.committed.notify_all();
        }
    }

    fn write_group(&self, work: Vec<(u64, Batch)>) -> Vec<(u64, Result<(), String>)> {
        let mut writer = self.writer.lock();
        let max_frame = self.layout.wal.max_frame_bytes();
        let mut results = Vec::with_capacity(work.len());
        let mut i = 0;
        while i < work.len() {
            // Take as many batches as fit one frame (at least one).
            let mut j = i;
            let mut payload = 0usize;
            while j < work.len() {
                let next = payload + work[j].1.encoded_len();
                if j > i && wal::frame_bytes(next) > max_frame {
                    break;
                }
                payload = next;
                j += 1;
            }
            let group: Vec<&Batch> = work[i..j].iter().map(|(_, b)| b).collect();
            let bytes = wal::frame_bytes(payload);
            let mut outcome = Ok(());
            if !writer.wal.has_room(bytes) && bytes <= max_frame {
                outcome = self.checkpoint_locked(&mut writer);
            }
            if outcome.is_ok() {
                outcome = writer.wal.append(&*self.io, &group);
            }
            match outcome {
                Ok(()) => {
                    let mut index = self.index.write();
                    for b in &group {
                        index.apply(b);
                    }
                    drop(index);
                    let mut stats = self.stats.lock();
                    stats.batches += group.len() as u64;
                    stats.frames += 1;
                    results.extend(work[i..j].iter().map(|(t, _)| (*t, Ok(()))));
                }
                Err(e) => {
                    let msg = e.to_string();
                    results.extend(work[i..j].iter().map(|(t, _)| (*t, Err(msg.clone()))));
                }
            }
            i = j;
        }
        if writer.wal.live_bytes() > self.layout.wal.size_bytes / 2 {
            if let Err(e) = self.checkpoint_locked(&mut writer) {
                tracing::error!(error = %e, "metadata checkpoint failed");
            }
        }
        results
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        let slot = 1 - writer.anchor.slot;
        let (bytes, crc) = {
            let index = self.index.read();
            self.layout.checkpoints.write(&*self.io, slot, &index)?
        };
        let anchor = Anchor {
            generation: writer.anchor.generation + 1,
            slot,
            checkpoint_bytes: bytes,
            checkpoint_crc: crc,
            replay_lsn: writer.wal.tail_lsn,
        };
        anchor.write(&*self.io)?;
        writer.anchor = anchor;
        writer.wal.checkpoint_lsn = writer.wal.tail_lsn;
        self.stats.lock().checkpoints += 1;
        tracing::debug!(
            generation = anchor.generation,
            bytes,
            "metadata checkpoint written"
        );
        Ok(())
    }

    /// Writes a checkpoint now if anything was logged since the last one (clean shutdown: the
    /// next open then replays nothing).
    pub fn checkpoint(&self) -> Result<()> {
        // Hold leadership so no frame is written meanwhile.
        let mut q = self.queue.lock();
        while q.leader_active {
            self.committed.wait(&mut q);
        }
        q.leader_active = true;
        drop(q);
        let result = {
            let mut writer = self.writer.lock();
            if writer.wal.live_bytes() > 0 {
                self.checkpoint_locked(&mut writer)
            } else {
                Ok(())
            }
        };
        let mut q = self.queue.lock();
        q.leader_active = false;
        self.committed.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::{FaultBackend, FaultControl};

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

    #[test]
    fn commits_survive_reopen_through_checkpoints() {
        let (dev, control) = device(None);
        let meta = MetaStore::format(dev, layout()).unwrap();
        for i in 0..2000u32 {
            let mut b = Batch::new();
            b.put(format!("k{i:06}").into_bytes(), vec![1; 100]);
            if i % 10 == 0 {
                b.delete(format!("k{:06}", i / 2).into_bytes());
            }
            meta.commit(b).unwrap();
        }
        assert!(
            meta.stats().checkpoints > 0,
            "a 256 KiB WAL must have checkpointed"
        );
        let expect = meta.stats().keys;
        drop(meta);
        let (dev, _c) = device(Some(control.durable_image()));
        let meta = MetaStore::open(dev, layout()).unwrap();
        assert_eq!(meta.stats().keys, expect);
        assert!(meta.get(b"k001999").is_some());
        assert!(meta.get(b"k000500").is_none(), "deleted by batch 1000");
    }

    #[test]
    fn group_commit_from_many_threads() {
        let (dev, control) = device(None);
        let meta = Arc::new(MetaStore::format(dev, layout()).unwrap());
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
        assert_eq!(stats.keys, 1600);
        drop(meta);
        let (dev, _c) = device(Some(control.durable_image()));
        assert_eq!(MetaStore::open(dev, layout()).unwrap().stats().keys, 1600);
    }

    #[test]
    fn acknowledged_commits_survive_power_cuts_at_every_point() {
        for cut in 0..60u64 {
            let (dev, control) = device(None);
            let meta = MetaStore::format(dev, layout()).unwrap();
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
            let meta = MetaStore::open(dev, layout()).unwrap();
            for i in 0..acked {
                assert!(
                    meta.get(format!("k{i:04}").as_bytes()).is_some(),
                    "cut {cut}: k{i} lost"
                );
            }
            // Each batch is all-or-nothing.
            for i in 0..200u32 {
                let k = meta.get(format!("k{i:04}").as_bytes()).is_some();
                let z = meta.get(format!("z{i:04}").as_bytes()).is_some();
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
                meta.get(format!("k{i:05}").as_bytes()),
                Some(vec![i as u8; 700]),
                "{context}: k{i:05}"
            );
        }
    }

    #[test]
    fn a_mirror_keeps_serving_when_one_ssd_fails_and_resilvers_it() {
        let (a, ca) = device(None);
        let (b, cb) = device(None);
        let meta = MetaStore::format_mirrored(vec![(0, a), (1, b)], layout()).unwrap();
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
        let meta = MetaStore::open(a, layout()).unwrap();
        assert_keys(&meta, 300, "survivor alone");
        drop(meta);

        // Both again: the stale one is found behind and resilvered, then holds everything.
        let (a, ca) = device(Some(ca.durable_image()));
        let (b, cb) = device(Some(cb.durable_image()));
        let meta =
            MetaStore::open_mirrored(vec![member(0, a, false), member(1, b, false)], layout())
                .unwrap();
        assert_keys(&meta, 300, "mirror after a failure");
        wait_in_sync(&meta);
        put(&meta, 300).unwrap();
        drop(meta);
        drop(ca);
        let (b, _) = device(Some(cb.durable_image()));
        let meta = MetaStore::open(b, layout()).unwrap();
        assert_keys(&meta, 301, "resilvered member alone");
    }

    #[test]
    fn a_blank_replacement_is_resilvered_while_commits_go_on() {
        let (a, ca) = device(None);
        let meta = MetaStore::format(a, layout()).unwrap();
        for i in 0..400 {
            put(&meta, i).unwrap();
        }
        assert!(
            meta.stats().checkpoints > 0,
            "the copy must include a checkpoint"
        );
        drop(meta);
        let (a, _ca) = device(Some(ca.durable_image()));
        let (c, cc) = device(None);
        let meta = Arc::new(
            MetaStore::open_mirrored(vec![member(0, a, false), member(1, c, true)], layout())
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
        let meta = MetaStore::open(c, layout()).unwrap();
        assert_keys(&meta, 850, "replacement alone");
    }

    #[test]
    fn a_crash_between_mirrored_writes_loses_no_acknowledged_commit() {
        for cut in 0..40u64 {
            let (a, ca) = device(None);
            let (b, cb) = device(None);
            let meta = MetaStore::format_mirrored(vec![(0, a), (1, b)], layout()).unwrap();
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
            let meta =
                MetaStore::open_mirrored(vec![member(0, a, false), member(1, b, false)], layout())
                    .unwrap();
            assert_keys(&meta, acked, &format!("cut {cut}, both"));
            wait_in_sync(&meta);
            drop(meta);
            for (name, control) in [("a", ca), ("b", cb)] {
                let (d, _) = device(Some(control.durable_image()));
                let meta = MetaStore::open(d, layout()).unwrap();
                assert_keys(
                    &meta,
                    acked,
                    &format!("cut {cut}, {name} alone after resync"),
                );
            }
        }
    }
}
