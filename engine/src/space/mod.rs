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
//!   any crash; [`crate::store::Store::check_space`] recounts it from the object and part records and must
//!   agree. The garbage collector folds a segment's deltas into one base record now and then.
//!   The in-memory table holds the same sums; a commit that fails applies only what it adds,
//!   so live space is never under-counted (a failed commit may still be replayed at open).
//! - **Freeing (the epoch rule).** A segment is freed when, checked in this order, (1) its
//!   device holds no reservation in it and it is not open for appends, (2) its live bytes are 0,
//!   and (3) every reader that began before (2) was seen has finished. A writer applies its
//!   live bytes before it releases its reservations, so (1) then (2) never misses a commit in
//!   flight. Readers (GETs, repair and GC batches) hold a `ReadEpoch` from before they read a
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
//! This layer holds the accounting itself: the records' encoding, the in-memory table, the
//! epochs and limbo of dead segments, the delta a commit carries. The store drives it
//! (`store/space.rs`: commits with their deltas, freeing, the capacity check).
//!
//! Must not import `store`, `repair` or `device`: the store and repair account through it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::meta::{Batch, MetaStore, Scan, Snapshot};
use crate::schema::now_unix_ms;
use crate::schema::{self, ChunkRun, Location};
use crate::segment::{needle_bytes, DataDevice};

/// The setting that marks a store whose live-space records are complete (u8 version 1).
/// A store opened without it (written before accounting existed) is recounted from its
/// records first.
const SPACE_SETTING: &str = "space-accounting";
/// Live-space records written per metadata batch by a recount or a fold.
pub(crate) const KEYS_PER_BATCH: usize = 4096;
/// Fill of the metadata SSDs' table area, in percent, from which client writes are refused.
pub(crate) const META_FULL_PCT: u64 = 90;
/// Longest a client write stalls for the garbage collector at a full pool, ms.
pub(crate) const STALL_MS: u64 = 10_000;

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

/// What [`crate::store::Store::check_space`] found.
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
pub(crate) struct SpaceDelta {
    pub(crate) segment_size_bytes: u64,
    pub(crate) map: BTreeMap<(u32, u32), (i64, i64)>,
}

impl SpaceDelta {
    /// Adds (`sign` = 1) or drops (`sign` = -1) every location of `runs`.
    pub(crate) fn add_runs(&mut self, runs: &[ChunkRun], sign: i64) {
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
    pub(crate) fn add_location(&mut self, loc: Location, bytes: u64, sign: i64) {
        let segment = segment_of(loc.offset, self.segment_size_bytes);
        let e = self.map.entry((loc.slot, segment)).or_default();
        e.0 += sign * bytes as i64;
        e.1 += sign;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.values().all(|&(b, n)| b == 0 && n == 0)
    }
}

/// The segment holding needle offset `offset`.
pub(crate) fn segment_of(offset: u64, segment_size_bytes: u64) -> u32 {
    let reserved = crate::segment::FIRST_SEGMENT_OFFSET_BYTES;
    assert!(
        offset >= reserved,
        "a needle offset lies past the reserved area"
    );
    ((offset - reserved) / segment_size_bytes) as u32
}

/// A live-space record value: version (u8 = 1), bytes (i64), needles (i64), modified Unix ms
/// (u64; 0 when the record only drops).
pub(crate) fn encode_space(bytes: i64, needles: i64, modified_unix_ms: u64) -> Vec<u8> {
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

pub(crate) struct Epochs {
    pub(crate) current: u64,
    /// Readers by the epoch they began in.
    pub(crate) active: BTreeMap<u64, usize>,
}

/// A dead segment waiting for older readers: its drive (freed only if still the slot's), slot,
/// segment and epoch tag.
pub(crate) type Limbo = (Arc<DataDevice>, u32, u32, u64);

pub(crate) struct SpaceState {
    pub(crate) segment_size_bytes: u64,
    /// Per data slot: per segment.
    pub(crate) table: Vec<Mutex<Vec<SegmentSpace>>>,
    /// Dead segments waiting for older readers. Held across a whole
    /// `Store::reclaim_segments`, so two never put one segment there twice.
    pub(crate) limbo: Mutex<Vec<Limbo>>,
    pub(crate) epochs: Mutex<Epochs>,
    pub(crate) next_sequence: AtomicU64,
    /// Delta records written since the last fold.
    pub(crate) unfolded: AtomicU64,
    pub(crate) fold: Mutex<()>,
    pub(crate) freed: AtomicU64,
    /// Segments the running garbage-collection pass empties.
    pub(crate) victims: RwLock<HashSet<(u32, u32)>>,
}

/// A reader's hold on the segments its records point into (`Store::begin_read`).
pub(crate) struct ReadEpoch {
    pub(crate) space: Arc<SpaceState>,
    pub(crate) epoch: u64,
}

impl Drop for ReadEpoch {
    fn drop(&mut self) {
        let mut epochs = self.space.epochs.lock();
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
pub(crate) fn recount(
    meta: &MetaStore,
    snapshot: &Snapshot,
    segment_size_bytes: u64,
) -> Result<SpaceDelta> {
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
pub(crate) fn read_records(
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
    pub(crate) fn load(meta: &MetaStore, slots: usize, segment_size_bytes: u64) -> Result<Self> {
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
    pub(crate) fn apply(&self, delta: &SpaceDelta, committed: bool, now: u64) {
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
    pub(crate) fn segment(&self, slot: u32, segment: u32) -> SegmentSpace {
        self.table[slot as usize]
            .lock()
            .get(segment as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Every segment of `slot` below `claimed` with its live space.
    pub(crate) fn segments(&self, slot: u32, claimed: u32) -> Vec<SegmentSpace> {
        let table = self.table[slot as usize].lock();
        (0..claimed as usize)
            .map(|s| table.get(s).copied().unwrap_or_default())
            .collect()
    }

    pub(crate) fn segment_size_bytes(&self) -> u64 {
        self.segment_size_bytes
    }
}
