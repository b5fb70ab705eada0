//! Space: the live bytes of every data segment, freeing segments nothing references, and
//! capacity.
//!
//! Owns: the live-space records (`g/` keys, `engine/FORMAT.md` "Live space"), the in-memory
//! table of them, reader epochs, the rule that frees a segment, the capacity report and the
//! admission check that keeps the reserve.
//!
//! - **Accounting.** Every commit that adds or drops chunk locations (put, overwrite, delete,
//!   part, complete, abort, and the moves of rebuild and garbage collection) writes, in the
//!   same metadata batch, one delta record per segment it touches: needle bytes and needles
//!   added or dropped. A segment's live space is the sum of its records, so it is exact after
//!   any crash; [`Store::check_space`] recounts it from the object and part records and must
//!   agree. The garbage collector folds a segment's deltas into one base record now and then.
//!   The in-memory table holds the same sums; a commit that fails applies only what it adds,
//!   so live space is never under-counted (a failed commit may still be replayed at open).
//! - **Freeing (the epoch rule).** A segment is freed when, checked in this order, (1) its
//!   device holds no reservation in it and it is not open for appends, (2) its live bytes are 0,
//!   and (3) every reader that began before (2) was seen has finished. A writer applies its
//!   live bytes before it releases its reservations, so (1) then (2) never misses a commit in
//!   flight. Readers (GETs, repair and GC batches) hold a [`ReadEpoch`] from before they read a
//!   record until they have read its needles; a dead segment is tagged with the current epoch,
//!   which then advances, and is freed once no reader holding an epoch at or below the tag
//!   remains. A reader that began after the tag read its record after the commit that dropped
//!   the segment's last location, so it cannot hold one. Segments of a drive replaced by a blank
//!   one stay unused below the slot's rebuild boundary until a rebuild clears it.
//! - **Capacity.** Each drive keeps `space_reserve_segments` free for garbage collection and
//!   rebuild; client writes are refused with [`Error::InsufficientStorage`] when too few drives
//!   have room beyond it, or when the metadata SSDs' table area is 90% full. Reads, deletes and
//!   garbage collection go on, and writes resume as soon as space is freed.
//!
//! Must not import `device` or `repair`: repair frees through it, not the reverse.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{now_unix_ms, Store};
use crate::error::{Error, Result};
use crate::meta::{Batch, MetaStore, Scan, Snapshot};
use crate::profile::Protection;
use crate::schema::{self, ChunkRun, Location};
use crate::segment::{needle_bytes, DataDevice};

/// The setting that marks a store whose live-space records are complete (u8 version 1).
/// A store opened without it (written before accounting existed) is recounted from its
/// records first.
const SPACE_SETTING: &str = "space-accounting";
/// Live-space records written per metadata batch by a recount or a fold.
const KEYS_PER_BATCH: usize = 4096;
/// Fill of the metadata SSDs' table area, in percent, from which client writes are refused.
const META_FULL_PCT: u64 = 90;
/// Longest a client write stalls for the garbage collector at a full pool, ms.
const STALL_MS: u64 = 10_000;

/// Live space of one data segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSpace {
    /// Bytes of the needles committed records reference (headers and padding included).
    pub live_bytes: u64,
    /// Needles committed records reference.
    pub needles: u64,
    /// When a commit last added to it, Unix ms (0: unknown); the segment's age for garbage
    /// collection.
    pub modified_unix_ms: u64,
}

/// Space of one data drive, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriveSpace {
    /// Data slot.
    pub slot: u32,
    /// Device name (empty when the slot is empty).
    pub device: String,
    /// Segment area (segment count x segment size).
    pub raw_bytes: u64,
    /// Segments in use (claimed and not free).
    pub used_bytes: u64,
    /// Needles committed records reference.
    pub live_bytes: u64,
    /// Free segments (the reserve included).
    pub free_bytes: u64,
    /// Used but not live: what garbage collection can reclaim.
    pub reclaimable_bytes: u64,
    /// Free space kept for garbage collection and rebuild.
    pub reserve_bytes: u64,
}

/// Space of the pool and its drives, and of the metadata SSDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceStatus {
    /// Pool name (the profile's).
    pub pool: String,
    /// Sums over the pool's present drives (`slot` and `device` empty).
    pub total: DriveSpace,
    /// Per data slot.
    pub drives: Vec<DriveSpace>,
    /// Bytes of SSTables in the metadata SSDs' table area.
    pub metadata_used_bytes: u64,
    /// Size of the table area.
    pub metadata_capacity_bytes: u64,
    /// Segments freed since the store opened.
    pub segments_freed: u64,
    /// Dead segments waiting for readers that began before they died.
    pub segments_waiting: u64,
}

impl SpaceStatus {
    /// A table for people: per drive and for the pool, raw, used, live, free, reclaimable and
    /// reserved bytes (MiB), then the metadata SSDs' table area.
    pub fn report(&self) -> String {
        let mib = |b: u64| format!("{:.1}", b as f64 / (1u64 << 20) as f64);
        let mut out = format!(
            "{:<10} {:<24} {:>11} {:>11} {:>11} {:>11} {:>13} {:>11}\n",
            "slot",
            "device",
            "raw MiB",
            "used MiB",
            "live MiB",
            "free MiB",
            "reclaim. MiB",
            "reserve MiB"
        );
        let mut line = |slot: String, d: &DriveSpace| {
            out.push_str(&format!(
                "{:<10} {:<24} {:>11} {:>11} {:>11} {:>11} {:>13} {:>11}\n",
                slot,
                if d.device.is_empty() && slot != "pool" {
                    "(missing)"
                } else {
                    &d.device
                },
                mib(d.raw_bytes),
                mib(d.used_bytes),
                mib(d.live_bytes),
                mib(d.free_bytes),
                mib(d.reclaimable_bytes),
                mib(d.reserve_bytes)
            ))
        };
        for d in &self.drives {
            line(format!("hdd{}", d.slot), d);
        }
        line("pool".into(), &self.total);
        out.push_str(&format!(
            "pool {}: {:.1}% free; metadata SSD tables {} of {} MiB\n",
            self.pool,
            self.total.free_bytes as f64 * 100.0 / self.total.raw_bytes.max(1) as f64,
            mib(self.metadata_used_bytes),
            mib(self.metadata_capacity_bytes)
        ));
        out
    }
}

/// What [`Store::check_space`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceCheck {
    /// Segments with live space, by the recount.
    pub segments: u64,
    /// Live bytes, by the recount.
    pub live_bytes: u64,
    /// Each segment whose live-space records, or in-memory table, disagree with the recount.
    pub mismatches: Vec<String>,
}

/// Changes to live space that one commit makes, by (slot, segment): (bytes, needles).
pub(super) struct SpaceDelta {
    segment_size_bytes: u64,
    map: BTreeMap<(u32, u32), (i64, i64)>,
}

impl SpaceDelta {
    /// Adds (`sign` = 1) or drops (`sign` = -1) every location of `runs`.
    pub(super) fn add_runs(&mut self, runs: &[ChunkRun], sign: i64) {
        for run in runs {
            for (c, chunk) in run.chunks.iter().enumerate() {
                let bytes = needle_bytes(run.payload_bytes(c)) as u64;
                for &loc in &chunk.locations {
                    self.add_location(loc, bytes, sign);
                }
            }
        }
    }

    /// Adds (`sign` = 1) or drops (`sign` = -1) one needle of `bytes` at `loc`.
    pub(super) fn add_location(&mut self, loc: Location, bytes: u64, sign: i64) {
        let segment = segment_of(loc.offset, self.segment_size_bytes);
        let e = self.map.entry((loc.slot, segment)).or_default();
        e.0 += sign * bytes as i64;
        e.1 += sign;
    }

    fn is_empty(&self) -> bool {
        self.map.values().all(|&(b, n)| b == 0 && n == 0)
    }
}

/// The segment holding needle offset `offset`.
pub(super) fn segment_of(offset: u64, segment_size_bytes: u64) -> u32 {
    let reserved = crate::segment::FIRST_SEGMENT_OFFSET_BYTES;
    assert!(
        offset >= reserved,
        "a needle offset lies past the reserved area"
    );
    ((offset - reserved) / segment_size_bytes) as u32
}

/// A live-space record value: version (u8 = 1), bytes (i64), needles (i64), modified Unix ms
/// (u64; 0 when the record only drops).
fn encode_space(bytes: i64, needles: i64, modified_unix_ms: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(25);
    v.push(1);
    v.extend_from_slice(&bytes.to_le_bytes());
    v.extend_from_slice(&needles.to_le_bytes());
    v.extend_from_slice(&modified_unix_ms.to_le_bytes());
    v
}

fn decode_space(key: &[u8], v: &[u8]) -> Result<(u32, u32, u64, i64, i64, u64)> {
    let bad = || Error::MetadataUnavailable {
        detail: format!(
            "a live-space record is malformed (key of {} bytes)",
            key.len()
        ),
    };
    let rest = key.strip_prefix(schema::SPACE_PREFIX).ok_or_else(bad)?;
    if rest.len() != 16 || v.len() != 25 || v[0] != 1 {
        return Err(bad());
    }
    let u32_at = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let i64_at = |o: usize| i64::from_le_bytes(v[o..o + 8].try_into().unwrap());
    Ok((
        u32_at(rest, 0),
        u32_at(rest, 4),
        u64::from_be_bytes(rest[8..16].try_into().unwrap()),
        i64_at(1),
        i64_at(9),
        i64_at(17) as u64,
    ))
}

struct Epochs {
    current: u64,
    /// Readers by the epoch they began in.
    active: BTreeMap<u64, usize>,
}

/// A dead segment waiting for older readers: its drive (freed only if still the slot's), slot,
/// segment and epoch tag.
type Limbo = (Arc<DataDevice>, u32, u32, u64);

pub(super) struct SpaceState {
    segment_size_bytes: u64,
    /// Per data slot: per segment.
    table: Vec<Mutex<Vec<SegmentSpace>>>,
    /// Dead segments waiting for older readers. Held across a whole
    /// [`Store::reclaim_segments`], so two never put one segment there twice.
    limbo: Mutex<Vec<Limbo>>,
    epochs: Mutex<Epochs>,
    next_sequence: AtomicU64,
    /// Delta records written since the last fold.
    pub(super) unfolded: AtomicU64,
    fold: Mutex<()>,
    freed: AtomicU64,
    /// Segments the running garbage-collection pass empties.
    pub(super) victims: RwLock<HashSet<(u32, u32)>>,
}

/// A reader's hold on the segments its records point into ([`Store::begin_read`]).
pub(super) struct ReadEpoch {
    store: Store,
    epoch: u64,
}

impl Drop for ReadEpoch {
    fn drop(&mut self) {
        let mut epochs = self.store.inner.space.epochs.lock();
        let n = epochs
            .active
            .get_mut(&self.epoch)
            .expect("a reader's epoch is counted");
        *n -= 1;
        if *n == 0 {
            epochs.active.remove(&self.epoch);
        }
    }
}

/// Live space by (slot, segment), recounted from the object and part records at `snapshot`.
fn recount(meta: &MetaStore, snapshot: &Snapshot, segment_size_bytes: u64) -> Result<SpaceDelta> {
    let mut delta = SpaceDelta {
        segment_size_bytes,
        map: BTreeMap::new(),
    };
    schema::for_each_run_record(meta, snapshot, &mut |_, runs| delta.add_runs(runs, 1))?;
    Ok(delta)
}

/// Sums of the live-space records at `snapshot`: by (slot, segment): (bytes, needles,
/// modified ms, keys), and the highest sequence seen.
#[allow(clippy::type_complexity)]
fn read_records(
    meta: &MetaStore,
    snapshot: &Snapshot,
) -> Result<(BTreeMap<(u32, u32), (i64, i64, u64, Vec<Vec<u8>>)>, u64)> {
    let mut sums: BTreeMap<(u32, u32), (i64, i64, u64, Vec<Vec<u8>>)> = BTreeMap::new();
    let mut max_sequence = 0;
    let mut err = None;
    meta.scan_at(schema::SPACE_PREFIX, snapshot, &mut |k, v| {
        if !k.starts_with(schema::SPACE_PREFIX) {
            return Scan::Stop;
        }
        match decode_space(k, v) {
            Ok((slot, segment, sequence, bytes, needles, ms)) => {
                let e = sums.entry((slot, segment)).or_default();
                e.0 += bytes;
                e.1 += needles;
                e.2 = e.2.max(ms);
                e.3.push(k.to_vec());
                max_sequence = max_sequence.max(sequence);
                Scan::Continue
            }
            Err(e) => {
                err = Some(e);
                Scan::Stop
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok((sums, max_sequence)),
    }
}

impl SpaceState {
    /// Loads the live-space table of a store of `slots` data slots; a store written before
    /// accounting is recounted from its records and the result committed first.
    ///
    /// Errors: metadata errors; [`Error::MetadataUnavailable`] for a malformed record.
    pub(super) fn load(meta: &MetaStore, slots: usize, segment_size_bytes: u64) -> Result<Self> {
        if meta.get(&schema::setting_key(SPACE_SETTING))?.is_none() {
            let counted = recount(meta, &meta.snapshot(), segment_size_bytes)?;
            tracing::info!(
                segments = counted.map.len(),
                "counting the live space of every data segment (first open with accounting)"
            );
            let now = now_unix_ms();
            let mut batch = Batch::new();
            for (&(slot, segment), &(bytes, needles)) in &counted.map {
                batch.put(
                    schema::space_key(slot, segment, 0),
                    encode_space(bytes, needles, now),
                );
                if batch.ops.len() >= KEYS_PER_BATCH {
                    meta.commit(std::mem::take(&mut batch))?;
                }
            }
            batch.put(schema::setting_key(SPACE_SETTING), vec![1]);
            meta.commit(batch)?;
        }
        let (sums, max_sequence) = read_records(meta, &meta.snapshot())?;
        let mut table: Vec<Vec<SegmentSpace>> = vec![Vec::new(); slots];
        for ((slot, segment), (bytes, needles, ms, _)) in sums {
            let segments =
                table
                    .get_mut(slot as usize)
                    .ok_or_else(|| Error::MetadataUnavailable {
                        detail: format!(
                            "a live-space record names data slot {slot}, and the store has {slots}"
                        ),
                    })?;
            if bytes < 0 || needles < 0 {
                return Err(Error::MetadataUnavailable {
                    detail: format!("the live space of data slot {slot} segment {segment} sums below zero ({bytes} bytes, {needles} needles)"),
                });
            }
            if segments.len() <= segment as usize {
                segments.resize(segment as usize + 1, SegmentSpace::default());
            }
            segments[segment as usize] = SegmentSpace {
                live_bytes: bytes as u64,
                needles: needles as u64,
                modified_unix_ms: ms,
            };
        }
        Ok(SpaceState {
            segment_size_bytes,
            table: table.into_iter().map(Mutex::new).collect(),
            limbo: Mutex::default(),
            epochs: Mutex::new(Epochs {
                current: 1,
                active: BTreeMap::new(),
            }),
            next_sequence: AtomicU64::new(max_sequence + 1),
            unfolded: AtomicU64::new(0),
            fold: Mutex::default(),
            freed: AtomicU64::new(0),
            victims: RwLock::default(),
        })
    }

    /// Applies a committed delta (`committed` false: the commit failed, so only what it adds).
    fn apply(&self, delta: &SpaceDelta, committed: bool, now: u64) {
        for (&(slot, segment), &(bytes, needles)) in &delta.map {
            if !committed && bytes < 0 {
                continue;
            }
            let mut segments = self.table[slot as usize].lock();
            if segments.len() <= segment as usize {
                segments.resize(segment as usize + 1, SegmentSpace::default());
            }
            let s = &mut segments[segment as usize];
            let live = s.live_bytes as i64 + bytes;
            let count = s.needles as i64 + needles;
            assert!(
                live >= 0 && count >= 0 && (live == 0) == (count == 0),
                "live space of data slot {slot} segment {segment} would be {live} bytes in {count} needles: a location was dropped that was never counted"
            );
            s.live_bytes = live as u64;
            s.needles = count as u64;
            if bytes > 0 {
                s.modified_unix_ms = now;
            }
        }
    }

    /// Live space of one segment.
    pub(super) fn segment(&self, slot: u32, segment: u32) -> SegmentSpace {
        self.table[slot as usize]
            .lock()
            .get(segment as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Every segment of `slot` below `claimed` with its live space.
    pub(super) fn segments(&self, slot: u32, claimed: u32) -> Vec<SegmentSpace> {
        let table = self.table[slot as usize].lock();
        (0..claimed as usize)
            .map(|s| table.get(s).copied().unwrap_or_default())
            .collect()
    }

    pub(super) fn segment_size_bytes(&self) -> u64 {
        self.segment_size_bytes
    }
}

impl Store {
    /// An empty set of live-space changes for one commit.
    pub(super) fn space_delta(&self) -> SpaceDelta {
        SpaceDelta {
            segment_size_bytes: self.inner.space.segment_size_bytes,
            map: BTreeMap::new(),
        }
    }

    /// Commits `batch` with the live-space records of `delta` in it, then applies `delta` to
    /// the in-memory table (only what it adds, if the commit failed).
    ///
    /// Errors: as [`Store::commit`].
    pub(super) fn commit_with_space(&self, mut batch: Batch, delta: &SpaceDelta) -> Result<()> {
        let space = &self.inner.space;
        let now = now_unix_ms();
        let empty = delta.is_empty();
        if !empty {
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
        let result = self.commit(batch);
        if !empty {
            space.apply(delta, result.is_ok(), now);
            space
                .unfolded
                .fetch_add(delta.map.len() as u64, Ordering::Relaxed);
        }
        result
    }

    /// Registers a reader: until the returned guard drops, no segment its records can point
    /// into is freed. Take it before reading the record.
    pub(super) fn begin_read(&self) -> ReadEpoch {
        let mut epochs = self.inner.space.epochs.lock();
        let epoch = epochs.current;
        *epochs.active.entry(epoch).or_default() += 1;
        ReadEpoch {
            store: self.clone(),
            epoch,
        }
    }

    /// Frees every segment that no committed record and no reader references (the epoch rule
    /// above); returns how many were freed.
    pub(super) fn reclaim_segments(&self) -> u64 {
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
    pub(super) fn fold_space_records(&self) -> Result<u64> {
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
    pub(super) fn insufficient_storage(&self) -> Error {
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
    pub(super) fn check_capacity(&self, protection: Protection) -> Result<()> {
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
    pub(super) fn wait_for_room(&self, drives: u32) -> bool {
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
