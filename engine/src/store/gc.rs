//! Garbage collection: the background worker that returns dead space to the free list.
//!
//! Owns: choosing victim segments, running the collection pass that moves their live needles,
//! folding live-space records, and aborting expired multipart uploads. The worker looks at the
//! pool every `gc_interval_ms`:
//!
//! 1. **Free dead segments** ([`Store::reclaim_segments`]): segments no record references are
//!    freed under the epoch rule of `store/space.rs`. This costs no I/O, and it is how deletes,
//!    overwrites, aborted uploads, failed bodies and crash tails give space back.
//! 2. **Clean** while a drive's free space is below its target (`gc_free_target_pct` of it,
//!    at most half of what is not live): victims are the
//!    sealed segments that gain most by Rosenblum and Ousterhout's cost-benefit rule (LFS,
//!    1992): `(1 - u) x age / (1 + u)`, with `u` the segment's live fraction and `age` the time
//!    since a commit last added to it; cold, mostly dead segments first. A collection pass (a
//!    repair pass of kind [`PassKind::Collect`]) walks the records in batches, reads each
//!    needle of a victim, appends it to the same drive's relocation head (so a stripe keeps
//!    its distinct-drive placement) and commits the new locations with the same
//!    compare-and-set as a rebuild: a concurrent overwrite or delete wins, and a reader holding
//!    the old record still reads the old needle, because the victim is freed only after that
//!    reader finishes. Paced at `gc_bytes_per_s` while clients are active, unless free space is
//!    under twice the reserve. Client writes never wait for it: they take free segments
//!    beyond the reserve, or are refused with `InsufficientStorage`.
//! 3. **Fold** live-space delta records into base records once enough have accumulated.
//! 4. **Expire** incomplete multipart uploads older than `upload_expiry_ms` (once a minute).
//!
//! Must not import `device`; of the store's files only `repair` (the collection pass), `space`
//! and the store itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{now_unix_ms, Store};
use crate::error::Result;
use crate::meta::Scan;
use crate::repair::{PassKind, PassStatus};
use crate::schema::{self, Location, UploadRecord};

/// Delta records after which the worker folds them.
const FOLD_AFTER_RECORDS: u64 = 100_000;
/// Milliseconds between looks for expired multipart uploads.
const EXPIRY_PERIOD_MS: u64 = 60_000;
/// Segments more live than this fraction are never victims: copying them gains too little.
const MAX_VICTIM_LIVE: f64 = 0.95;

/// Garbage collection as the status document shows it.
#[derive(Clone, Debug, Default)]
pub struct GcStatus {
    /// The collection pass running now.
    pub running: Option<PassStatus>,
    /// The last finished collection pass.
    pub last: Option<PassStatus>,
    /// Collection passes since the store opened.
    pub passes: u64,
    /// Needles moved since the store opened.
    pub needles_moved: u64,
    /// Bytes read and written by collection passes since the store opened.
    pub bytes_read: u64,
    /// Bytes written by collection passes since the store opened.
    pub bytes_written: u64,
    /// Multipart uploads aborted for age since the store opened.
    pub uploads_expired: u64,
}

/// What one [`Store::collect_garbage`] round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcRound {
    /// Victim segments chosen.
    pub victims: u64,
    /// Needles moved out of them.
    pub needles_moved: u64,
    /// Bytes written moving them.
    pub bytes_written: u64,
    /// Segments freed by the round (dead ones and emptied victims).
    pub segments_freed: u64,
}

#[derive(Default)]
pub(super) struct GcState {
    stop: AtomicBool,
    wake: Condvar,
    wake_lock: Mutex<()>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    status: Mutex<GcStatus>,
    /// Serialises rounds (the worker's, and ones called directly).
    round: Mutex<()>,
    last_expiry_unix_ms: AtomicU64,
}

/// Clears the victim set when a round ends, however it ends.
struct VictimGuard<'a>(&'a Store);

impl Drop for VictimGuard<'_> {
    fn drop(&mut self) {
        self.0.inner.space.victims.write().clear();
    }
}

impl Store {
    /// Whether `loc` lies in a victim segment of the running collection pass.
    pub(super) fn location_in_victim(&self, loc: Location) -> bool {
        let victims = self.inner.space.victims.read();
        if victims.is_empty() {
            return false;
        }
        let segment = crate::space::segment_of(loc.offset, self.inner.space.segment_size_bytes());
        victims.contains(&(loc.slot, segment))
    }

    pub(super) fn gc_stopped(&self) -> bool {
        self.inner.gc.stop.load(Ordering::Acquire)
    }

    pub(super) fn gc_sleep(&self, wait: Duration) {
        let g = &self.inner.gc;
        let mut l = g.wake_lock.lock();
        if !g.stop.load(Ordering::Acquire) {
            g.wake.wait_for(&mut l, wait);
        }
    }

    /// Whether the background worker runs.
    pub(super) fn gc_running(&self) -> bool {
        self.inner.gc.worker.lock().is_some() && !self.gc_stopped()
    }

    /// Wakes the background worker for a round now.
    pub(super) fn wake_gc(&self) {
        let g = &self.inner.gc;
        let _l = g.wake_lock.lock();
        g.wake.notify_all();
    }

    pub(super) fn set_gc_running(&self, pass: Option<&PassStatus>) {
        self.inner.gc.status.lock().running = pass.cloned();
    }

    /// Garbage collection as it stands.
    pub fn gc_status(&self) -> GcStatus {
        self.inner.gc.status.lock().clone()
    }

    /// Victim segments by cost-benefit, best first per drive, until they would free what
    /// each drive lacks (`want_bytes`, by slot) or hold `max_live_bytes` of live needles in
    /// all. Drives are cleaned each toward the target, so no drive runs out while others
    /// have room (a stripe needs distinct drives).
    fn choose_victims(&self, want_bytes: &[u64], max_live_bytes: u64) -> Vec<(u32, u32)> {
        let space = &self.inner.space;
        let seg = space.segment_size_bytes();
        let now = now_unix_ms();
        let mut per_drive: Vec<Vec<(f64, u32, u64)>> = Vec::new();
        // What each drive can take of its own moved needles: its free segments but one (the
        // relocation head may hold a partly used one).
        let mut room = vec![0u64; self.inner.data.len()];
        for slot in 0..self.inner.data.len() as u32 {
            let mut candidates = Vec::new();
            let dev = self
                .data_device(slot)
                .filter(|d| !d.device().is_poisoned() && want_bytes[slot as usize] > 0);
            if let Some(dev) = dev {
                room[slot as usize] = dev.free_segments().saturating_sub(1) as u64 * seg;
                let first = match self.rebuild_boundary(slot) {
                    0 => 0,
                    b => dev.segment_of(b.max(crate::segment::FIRST_SEGMENT_OFFSET_BYTES)),
                };
                let table = space.segments(slot, dev.claimed_segments());
                for (segment, s) in table.iter().enumerate().skip(first as usize) {
                    let u = s.live_bytes as f64 / seg as f64;
                    if s.live_bytes == 0 || u > MAX_VICTIM_LIVE || !dev.segment_idle(segment as u32)
                    {
                        continue;
                    }
                    let age_ms = now.saturating_sub(s.modified_unix_ms).max(1) as f64;
                    let score = (1.0 - u) * age_ms / (1.0 + u);
                    candidates.push((score, segment as u32, s.live_bytes));
                }
                candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            }
            per_drive.push(candidates);
        }
        // Round-robin over the drives, each taking its next best victim while it lacks space.
        let mut gain = vec![0u64; per_drive.len()];
        let mut next = vec![0usize; per_drive.len()];
        let mut live = 0u64;
        let mut victims = Vec::new();
        loop {
            let mut took = false;
            for (slot, candidates) in per_drive.iter().enumerate() {
                if gain[slot] >= want_bytes[slot] {
                    continue;
                }
                let Some(&(_, segment, live_bytes)) = candidates.get(next[slot]) else {
                    continue;
                };
                if live + live_bytes > max_live_bytes {
                    return victims;
                }
                next[slot] += 1;
                if live_bytes > room[slot] {
                    // Its moved needles would not fit on the drive this pass.
                    gain[slot] = u64::MAX;
                    continue;
                }
                room[slot] -= live_bytes;
                gain[slot] += seg - live_bytes;
                live += live_bytes;
                victims.push((slot as u32, segment));
                took = true;
            }
            if !took {
                return victims;
            }
        }
    }

    /// One round of garbage collection now: frees dead segments, then, for each drive whose
    /// free space is below `gc_free_target_pct` of its raw space (every drive, with `force`),
    /// moves the live needles out of the best victims and frees them too.
    ///
    /// Errors: metadata and device errors (nothing is freed that a record references).
    pub fn collect_garbage(&self, force: bool) -> Result<GcRound> {
        let _one = self.inner.gc.round.lock();
        let config = &self.inner.config;
        let mut round = GcRound {
            segments_freed: self.reclaim_segments(),
            ..GcRound::default()
        };
        let status = self.space_status();
        // A drive's headroom above its reserve: `gc_free_target_pct` of its raw space, but at
        // most a quarter of what is neither live nor reserved, so a full pool leaves room for
        // garbage to gather in sealed segments between cleanings (victims are then emptier)
        // instead of copying nearly live segments over and over.
        let headroom = |d: &super::DriveSpace| {
            (d.raw_bytes * config.gc_free_target_pct as u64 / 100)
                .min(d.raw_bytes.saturating_sub(d.live_bytes + d.reserve_bytes) / 4)
        };
        let below_target = |d: &super::DriveSpace| d.free_bytes < d.reserve_bytes + headroom(d);
        if !force && !status.drives.iter().any(below_target) {
            return Ok(round);
        }
        // A drive below its target is cleaned a quarter of its headroom past it, so passes
        // (each a walk of every record) are few and large.
        let want: Vec<u64> = status
            .drives
            .iter()
            .map(|d| match force {
                true => u64::MAX,
                false if below_target(d) => {
                    (d.reserve_bytes + headroom(d) * 5 / 4).saturating_sub(d.free_bytes)
                }
                false => 0,
            })
            .collect();
        // One pass walks every record, so each moves up to 1/16 of the pool's raw space.
        let seg = self.inner.space.segment_size_bytes();
        let victims = self.choose_victims(&want, (status.total.raw_bytes / 16).max(seg));
        if victims.is_empty() {
            return Ok(round);
        }
        round.victims = victims.len() as u64;
        let _clear = VictimGuard(self);
        self.inner
            .space
            .victims
            .write()
            .extend(victims.iter().copied());
        tracing::debug!(victims = victims.len(), "garbage collection pass");
        // Unpaced while any drive is under twice its reserve: writes would soon be refused.
        let urgent = status
            .drives
            .iter()
            .any(|d| d.raw_bytes > 0 && d.free_bytes < 2 * d.reserve_bytes);
        let pace = (!urgent).then_some((config.gc_bytes_per_s, false));
        let pass = self.run_pass(PassKind::Collect, pace)?;
        drop(_clear);
        round.needles_moved = pass.counters.shards_repaired;
        round.bytes_written = pass.counters.bytes_written;
        round.segments_freed += self.reclaim_segments();
        let mut s = self.inner.gc.status.lock();
        s.passes += 1;
        s.needles_moved += pass.counters.shards_repaired;
        s.bytes_read += pass.counters.bytes_read;
        s.bytes_written += pass.counters.bytes_written;
        s.last = Some(pass);
        Ok(round)
    }

    /// Aborts every multipart upload initiated more than `upload_expiry_ms` ago; returns how
    /// many.
    ///
    /// Errors: metadata errors.
    pub fn expire_uploads(&self) -> Result<u64> {
        let cutoff = now_unix_ms().saturating_sub(self.inner.config.upload_expiry_ms);
        let mut expired = Vec::new();
        let mut err = None;
        self.inner.meta.scan(b"u/", &mut |k, v| {
            let Some(rest) = k.strip_prefix(b"u/") else {
                return Scan::Stop;
            };
            match UploadRecord::decode(v) {
                Ok(u) if u.initiated_unix_ms < cutoff => {
                    let Some(nul) = rest.iter().position(|&b| b == 0) else {
                        return Scan::Continue;
                    };
                    let (bucket, tail) = (&rest[..nul], &rest[nul + 1..]);
                    if tail.len() <= schema::UPLOAD_ID_LEN {
                        return Scan::Continue;
                    }
                    let (key, id) = tail.split_at(tail.len() - schema::UPLOAD_ID_LEN - 1);
                    expired.push((
                        String::from_utf8_lossy(bucket).into_owned(),
                        String::from_utf8_lossy(key).into_owned(),
                        String::from_utf8_lossy(&id[1..]).into_owned(),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    err = Some(e);
                    return Scan::Stop;
                }
            }
            Scan::Continue
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let mut n = 0;
        for (bucket, key, id) in expired {
            match self.abort_multipart_upload(&bucket, &key, &id) {
                Ok(()) => {
                    n += 1;
                    tracing::info!(
                        bucket,
                        key,
                        upload_id = id,
                        "aborted an expired multipart upload"
                    );
                }
                Err(crate::Error::NoSuchUpload { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.inner.gc.status.lock().uploads_expired += n;
        Ok(n)
    }

    /// Starts the garbage collector's background worker; [`Store::close`] stops it. Calling
    /// it again does nothing.
    pub fn start_gc_worker(&self) {
        let mut worker = self.inner.gc.worker.lock();
        if worker.is_some() {
            return;
        }
        let store = self.clone();
        *worker = Some(
            std::thread::Builder::new()
                .name("hoard-gc".into())
                .spawn(move || store.gc_worker())
                .expect("spawning the garbage collection thread"),
        );
    }

    pub(super) fn stop_gc_worker(&self) {
        let g = &self.inner.gc;
        g.stop.store(true, Ordering::Release);
        self.wake_gc();
        let handle = g.worker.lock().take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    fn gc_worker(&self) {
        let interval = Duration::from_millis(self.inner.config.gc_interval_ms.max(1));
        let mut backoff = Duration::from_secs(1);
        while !self.gc_stopped() {
            let result = (|| -> Result<bool> {
                let round = self.collect_garbage(false)?;
                if self.inner.space.unfolded.load(Ordering::Relaxed) >= FOLD_AFTER_RECORDS {
                    let removed = self.fold_space_records()?;
                    tracing::debug!(removed, "folded live-space records");
                }
                let now = now_unix_ms();
                let g = &self.inner.gc;
                if now.saturating_sub(g.last_expiry_unix_ms.load(Ordering::Relaxed))
                    >= EXPIRY_PERIOD_MS.min(self.inner.config.upload_expiry_ms)
                {
                    g.last_expiry_unix_ms.store(now, Ordering::Relaxed);
                    self.expire_uploads()?;
                }
                // A round that moved needles may have more to do at once.
                Ok(round.victims > 0)
            })();
            match result {
                Ok(true) => backoff = Duration::from_secs(1),
                Ok(false) => self.gc_sleep(interval),
                Err(crate::Error::Closed) => return,
                Err(e) => {
                    if self.gc_stopped() {
                        return;
                    }
                    tracing::error!(error = %e, "garbage collection failed; retrying in {} s", backoff.as_secs());
                    self.gc_sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
