//! The store's side of space accounting ([`crate::space`]): commits that carry their
//! live-space delta, reader epochs, freeing dead segments, folding delta records, the space
//! check and status, and the capacity check that keeps each drive's reserve.
//!
//! Must not import `device` or `repair`: repair frees through it, not the reverse.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{now_unix_ms, Store};
use crate::error::{Error, Result};
use crate::meta::Batch;
use crate::profile::Protection;
use crate::schema;
use crate::space::{
    encode_space, read_records, recount, DriveSpace, ReadEpoch, SpaceCheck, SpaceDelta, SpaceState,
    SpaceStatus, KEYS_PER_BATCH, META_FULL_PCT, STALL_MS,
};

impl Store {
    /// An empty set of live-space changes for one commit.
    pub(crate) fn space_delta(&self) -> SpaceDelta {
        SpaceDelta {
            segment_size_bytes: self.inner.space.segment_size_bytes,
            map: BTreeMap::new(),
        }
    }

    /// Commits `batch` with the live-space records of `delta` in it, then applies `delta` to
    /// the in-memory table (only what it adds, if the commit failed).
    ///
    /// Errors: as [`Store::commit`].
    pub(crate) fn commit_with_space(&self, mut batch: Batch, delta: &SpaceDelta) -> Result<()> {
        let now = self.add_space_records(&mut batch, delta);
        let result = self.commit(batch);
        apply_space(&self.inner.space, delta, result.is_ok(), now);
        result
    }

    /// Stages `batch` with the live-space records of `delta` in it (see
    /// [`MetaStore::stage`](crate::meta::MetaStore::stage)); `delta` is applied to the
    /// in-memory table when it settles, in commit order, as [`Store::commit_with_space`] does.
    ///
    /// Errors: as [`MetaStore::stage`](crate::meta::MetaStore::stage).
    pub(crate) fn stage_with_space(
        &self,
        mut batch: Batch,
        delta: SpaceDelta,
    ) -> Result<crate::meta::Ticket> {
        let now = self.add_space_records(&mut batch, &delta);
        let space = self.inner.space.clone();
        self.inner.meta.stage(
            batch,
            Some(Box::new(move |committed| {
                apply_space(&space, &delta, committed, now)
            })),
        )
    }

    /// Adds the live-space records of `delta` to `batch`; returns the time they carry.
    fn add_space_records(&self, batch: &mut Batch, delta: &SpaceDelta) -> u64 {
        let space = &self.inner.space;
        let now = now_unix_ms();
        if !delta.is_empty() {
            let sequence = space.next_sequence.fetch_add(1, Ordering::Relaxed);
            for (&(slot, segment), &(bytes, needles)) in &delta.map {
                if bytes != 0 || needles != 0 {
                    let modified = if bytes > 0 { now } else { 0 };
                    batch.put(
                        schema::space_key(slot, segment, sequence),
                        encode_space(bytes, needles, modified),
                    );
                }
            }
        }
        now
    }

    /// Registers a reader: until the returned guard drops, no segment its records can point
    /// into is freed. Take it before reading the record.
    pub(crate) fn begin_read(&self) -> ReadEpoch {
        let mut epochs = self.inner.space.epochs.lock();
        let epoch = epochs.current;
        *epochs.active.entry(epoch).or_default() += 1;
        ReadEpoch {
            space: self.inner.space.clone(),
            epoch,
        }
    }

    /// Frees every segment that no committed record and no reader references (the epoch rule
    /// above); returns how many were freed.
    pub(crate) fn reclaim_segments(&self) -> u64 {
        let space = &self.inner.space;
        let mut limbo = space.limbo.lock();
        let waiting: HashSet<(u32, u32)> = limbo
            .iter()
            .map(|&(_, slot, segment, _)| (slot, segment))
            .collect();
        let mut dead = Vec::new();
        for slot in 0..self.inner.data.len() as u32 {
            let Some(dev) = self.data_device(slot) else {
                continue;
            };
            if dev.device().is_poisoned() {
                continue;
            }
            // Segments below a rebuild boundary belong to the replaced drive's records until a
            // rebuild clears it.
            let first = match self.rebuild_boundary(slot) {
                0 => 0,
                b => dev.segment_of(b.max(crate::segment::FIRST_SEGMENT_OFFSET_BYTES)),
            };
            let claimed = dev.claimed_segments();
            let candidates: Vec<u32> = {
                let table = space.table[slot as usize].lock();
                (first..claimed)
                    .filter(|&s| !table.get(s as usize).is_some_and(|t| t.live_bytes > 0))
                    .collect()
            };
            for segment in candidates {
                if waiting.contains(&(slot, segment)) || !dev.segment_idle(segment) {
                    continue;
                }
                // Checked after idleness: a writer applies its live bytes before releasing.
                if space.segment(slot, segment).live_bytes == 0 {
                    dead.push((dev.clone(), slot, segment));
                }
            }
        }
        let (tag, oldest_reader) = {
            let mut epochs = space.epochs.lock();
            let tag = epochs.current;
            if !dead.is_empty() {
                epochs.current += 1;
            }
            (tag, epochs.active.keys().next().copied())
        };
        limbo.extend(dead.into_iter().map(|(d, slot, s)| (d, slot, s, tag)));
        let mut freed = 0;
        limbo.retain(|(dev, slot, segment, tag)| {
            if oldest_reader.is_some_and(|r| r <= *tag) {
                return true;
            }
            let current = self.data_device(*slot);
            if !current.is_some_and(|c| Arc::ptr_eq(&c, dev)) || dev.device().is_poisoned() {
                return false;
            }
            assert!(
                dev.segment_idle(*segment) && space.segment(*slot, *segment).live_bytes == 0,
                "data slot {slot} segment {segment} was referenced again after it died"
            );
            dev.free_segment(*segment);
            freed += 1;
            false
        });
        space.freed.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Folds each segment's delta records into its base record, in batches; returns the
    /// records removed. Only one fold runs at a time; commits meanwhile add records of their
    /// own sequence, which the fold neither reads nor removes.
    ///
    /// Errors: metadata errors.
    pub(crate) fn fold_space_records(&self) -> Result<u64> {
        let space = &self.inner.space;
        let _one = space.fold.lock();
        space.unfolded.store(0, Ordering::Relaxed);
        let (sums, _) = read_records(&self.inner.meta, &self.inner.meta.snapshot())?;
        let mut removed = 0u64;
        let mut batch = Batch::new();
        for ((slot, segment), (bytes, needles, ms, keys)) in sums {
            let base = schema::space_key(slot, segment, 0);
            if keys.len() == 1 && keys[0] == base {
                continue;
            }
            for k in keys {
                if k != base {
                    batch.delete(k);
                    removed += 1;
                }
            }
            if bytes == 0 && needles == 0 {
                batch.delete(base);
            } else {
                batch.put(base, encode_space(bytes, needles, ms));
            }
            if batch.ops.len() >= KEYS_PER_BATCH {
                self.commit(std::mem::take(&mut batch))?;
            }
        }
        if !batch.ops.is_empty() {
            self.commit(batch)?;
        }
        Ok(removed)
    }

    /// Recounts live space from every object and part record and compares it with the
    /// live-space records (at the same snapshot) and with the in-memory table (exact only
    /// while nothing is written). Returns what disagrees.
    ///
    /// Errors: metadata errors.
    pub fn check_space(&self) -> Result<SpaceCheck> {
        let space = &self.inner.space;
        let snapshot = self.inner.meta.snapshot();
        let counted = recount(&self.inner.meta, &snapshot, space.segment_size_bytes)?;
        let (records, _) = read_records(&self.inner.meta, &snapshot)?;
        let mut check = SpaceCheck::default();
        let mut keys: BTreeMap<(u32, u32), ()> = BTreeMap::new();
        keys.extend(counted.map.keys().map(|k| (*k, ())));
        keys.extend(records.keys().map(|k| (*k, ())));
        for (slot, segment) in (0..self.inner.data.len() as u32).flat_map(|slot| {
            let n = space.table[slot as usize].lock().len() as u32;
            (0..n).map(move |s| (slot, s))
        }) {
            keys.insert((slot, segment), ());
        }
        for &(slot, segment) in keys.keys() {
            let want = counted.map.get(&(slot, segment)).copied().unwrap_or((0, 0));
            if want.0 != 0 {
                check.segments += 1;
                check.live_bytes += want.0 as u64;
            }
            let stored = records.get(&(slot, segment)).map_or((0, 0), |r| (r.0, r.1));
            if stored != want {
                check.mismatches.push(format!(
                    "slot {slot} segment {segment}: records say {} bytes in {} needles, the index {} in {}",
                    stored.0, stored.1, want.0, want.1
                ));
            }
            let memory = space.segment(slot, segment);
            if (memory.live_bytes as i64, memory.needles as i64) != want {
                check.mismatches.push(format!(
                    "slot {slot} segment {segment}: the in-memory table says {} bytes in {} needles, the index {} in {}",
                    memory.live_bytes, memory.needles, want.0, want.1
                ));
            }
        }
        Ok(check)
    }

    /// Space of the pool, its drives and the metadata SSDs.
    pub fn space_status(&self) -> SpaceStatus {
        let space = &self.inner.space;
        let seg = space.segment_size_bytes;
        let mut status = SpaceStatus {
            pool: self.inner.config.pool_name.clone(),
            ..SpaceStatus::default()
        };
        for slot in 0..self.inner.data.len() as u32 {
            let mut d = DriveSpace {
                slot,
                ..DriveSpace::default()
            };
            let live: u64 = space.table[slot as usize]
                .lock()
                .iter()
                .map(|s| s.live_bytes)
                .sum();
            d.live_bytes = live;
            if let Some(dev) = self.data_device(slot) {
                let layout = dev.layout();
                d.device = dev.device().name().to_string();
                d.raw_bytes = layout.segment_count as u64 * seg;
                let free = dev.free_segments() as u64;
                d.free_bytes = free * seg;
                d.used_bytes = d.raw_bytes - d.free_bytes;
                d.reserve_bytes = dev.reserve_segments() as u64 * seg;
                d.reclaimable_bytes = d.used_bytes.saturating_sub(d.live_bytes);
                let t = &mut status.total;
                t.raw_bytes += d.raw_bytes;
                t.used_bytes += d.used_bytes;
                t.live_bytes += d.live_bytes;
                t.free_bytes += d.free_bytes;
                t.reclaimable_bytes += d.reclaimable_bytes;
                t.reserve_bytes += d.reserve_bytes;
            }
            status.drives.push(d);
        }
        let lsm = self.inner.meta.lsm();
        status.metadata_used_bytes = lsm.table_bytes();
        status.metadata_capacity_bytes = lsm.table_area_bytes();
        status.segments_freed = space.freed.load(Ordering::Relaxed);
        status.segments_waiting = space.limbo.lock().len() as u64;
        status
    }

    /// Bytes client writes may still use on the pool: per usable drive, its free segments
    /// beyond the reserve.
    fn client_free_bytes(&self) -> (u64, u32) {
        let seg = self.inner.space.segment_size_bytes;
        let mut bytes = 0;
        let mut drives = 0;
        for dev in self.present_data_devices() {
            if dev.device().is_poisoned() {
                continue;
            }
            let beyond = dev.free_segments().saturating_sub(dev.reserve_segments());
            if beyond > 0 {
                drives += 1;
            }
            bytes += beyond as u64 * seg;
        }
        (bytes, drives)
    }

    /// The error for a client write the pool (or the metadata SSDs) has no room for.
    pub(crate) fn insufficient_storage(&self) -> Error {
        let (free_bytes, _) = self.client_free_bytes();
        let reserve_bytes = self.space_status().total.reserve_bytes;
        Error::InsufficientStorage {
            what: format!("pool {}", self.inner.config.pool_name),
            free_bytes,
            reserve_bytes,
        }
    }

    /// Admission of a client write (PUT, UploadPart, CreateMultipartUpload) of a bucket with
    /// `protection`: refused when the metadata SSDs' table area is 90% full, or when fewer than
    /// `protection`'s width of drives have free segments beyond their reserve and room left in
    /// their open segment is not counted (a write may still find it).
    ///
    /// Errors: [`Error::InsufficientStorage`] naming the pool (or the metadata SSDs) and the
    /// free bytes.
    pub(crate) fn check_capacity(&self, protection: Protection) -> Result<()> {
        let lsm = self.inner.meta.lsm();
        let (used, area) = (lsm.table_bytes(), lsm.table_area_bytes());
        if used * 100 >= area * META_FULL_PCT {
            return Err(Error::InsufficientStorage {
                what: "the metadata SSDs".into(),
                free_bytes: area.saturating_sub(used),
                reserve_bytes: area * (100 - META_FULL_PCT) / 100,
            });
        }
        if self.client_free_bytes().1 >= protection.width() {
            return Ok(());
        }
        // A pool of drives too small for one segment takes only inline and empty objects,
        // which need no HDD space: nothing to refuse there.
        let has_segments = self
            .present_data_devices()
            .iter()
            .any(|d| d.layout().segment_count > 0);
        if has_segments && !self.wait_for_room(protection.width()) {
            return Err(self.insufficient_storage());
        }
        Ok(())
    }

    /// For a client write that found fewer than `drives` drives with free segments beyond
    /// their reserve: frees dead segments, and while the garbage collector runs and the pool
    /// holds reclaimable space, wakes it and looks again every 10 ms for at most
    /// [`STALL_MS`] — a write stall, as an LSM tree's, rather than a refusal with space about
    /// to be freed. Writes never wait while a drive has room beyond its reserve; this is the
    /// near-full case only. Returns whether room appeared.
    pub(crate) fn wait_for_room(&self, drives: u32) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(STALL_MS);
        let seg = self.inner.space.segment_size_bytes;
        loop {
            self.reclaim_segments();
            if self.client_free_bytes().1 >= drives {
                return true;
            }
            let reclaimable = self.space_status().total.reclaimable_bytes;
            if !self.gc_running()
                || reclaimable < drives as u64 * seg
                || std::time::Instant::now() >= deadline
            {
                return false;
            }
            self.wake_gc();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Applies a settled commit's live-space changes to the in-memory table (only what it adds,
/// if the commit failed).
fn apply_space(space: &SpaceState, delta: &SpaceDelta, committed: bool, now: u64) {
    if delta.is_empty() {
        return;
    }
    space.apply(delta, committed, now);
    space
        .unfolded
        .fetch_add(delta.map.len() as u64, Ordering::Relaxed);
}
