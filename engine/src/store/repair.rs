//! Repair: rebuild and scrub, and the collection pass of garbage collection (`store/gc.rs`),
//! which moves needles out of victim segments with the same machinery.
//!
//! Owns: deciding which chunk locations are lost or damaged, reconstructing them from the
//! chunk's other copies or shards, appending them to other drives, committing the new
//! locations, the pass's persistent cursor and counters (`s/repair-pass`), pacing, and the
//! background worker that runs passes.
//!
//! - A location is **lost** when its drive is missing, failed (poisoned), or was replaced by a
//!   blank drive that lies below the slot's rebuild boundary (`r/<slot>`, `engine/FORMAT.md`).
//!   A **rebuild** pass repairs lost locations without reading them. A **scrub** pass also
//!   reads every other location and repairs any whose needle fails verification (crc32c,
//!   identity, length) or whose read fails.
//! - A pass walks noncurrent version records (`n/`), latest version records (`o/`), then part
//!   records (`p/`) in key order, in batches of at most `repair_batch_bytes` of reads. A
//!   commit that moves a record naming a lost location from one range to another (a version
//!   retired or promoted, parts completed into an object) may land it behind the cursor, so
//!   a rebuild during which one happened walks again before it declares the slots clean. A batch's reads are submitted together, sorted per
//!   source drive by offset, so each drive streams in on-disk order while all drives work at
//!   once (declustered: the stripes of a lost drive are spread over every survivor).
//! - A repaired copy or shard is appended to a drive holding no other location of its chunk,
//!   the one with the most free segments, then the record is rewritten with the new location.
//!   The rewrite happens only if the record is byte-identical to the one the batch read
//!   (objects under the namespace lock held exclusively, parts under their upload's lock), so
//!   a concurrent overwrite, delete or completion always wins; what was appended for a record
//!   that changed is garbage. Nothing is overwritten in place, so a reader holding the old
//!   record still reads correct bytes.
//! - The cursor and counters are committed in the same metadata batch as the records they
//!   count: after a crash the pass resumes after the last committed batch, and no repair is
//!   counted twice or lost.
//!
//! Must not import `device`, `objects`, `multipart` or `copy`: it works on records and needles.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_unix_ms, Store};
use crate::error::{Error, Result};
use crate::meta::{Batch, Scan};
use crate::repair::{
    PassKind, PassStatus, RepairCounters, RepairStatus, BATCH_RECORDS, BUSY_WINDOW_MS,
    LAST_REBUILD_SETTING, LAST_SCRUB_SETTING, PASS_SETTING, SCRUB_CLOCK_SETTING,
    UNRECOVERABLE_KEPT,
};
use crate::schema::{
    self, decode_runs, for_each_run_record, has_runs, part_upload_id, record_name, ChunkRun,
    Location, ObjectRecord, PartRecord, RECORDS_WITH_RUNS_START,
};
use crate::segment::{
    needle_bytes, seal_needle, verify_needle, AlignedBuf, ChunkId, DataDevice, IoTicket,
    PendingRead, Reservation, Stream, NEEDLE_HEADER_BYTES,
};
use crate::space::ReadEpoch;

/// A record being repaired: its key, the bytes read, and its runs.
struct Work {
    key: Vec<u8>,
    raw: Vec<u8>,
    /// The upload a part record belongs to (its lock guards the rewrite); `None` for objects.
    upload_id: Option<String>,
    /// `bucket/key` (or `upload <id> part <n>`) for logs.
    name: String,
    runs: Vec<ChunkRun>,
    /// Copies and shards rewritten (0: the record is unchanged).
    repaired: u64,
}

/// One chunk of a [`Work`] being examined.
struct Job {
    work: usize,
    run: usize,
    chunk: usize,
    /// Per location: lost or found bad.
    bad: Vec<bool>,
    /// Per location: tried (read, or known lost).
    tried: Vec<bool>,
    /// Per location: the verified payload (copy or shard bytes).
    payload: Vec<Option<Vec<u8>>>,
}

/// A batch of records with its chunks planned and its first reads in flight.
struct Batched {
    /// Held from before its records were read until they are committed: no segment they
    /// point into is freed meanwhile.
    _epoch: ReadEpoch,
    /// Room for its rebuilt or moved needles, held until its records are committed.
    reservations: Vec<Reservation>,
    works: Vec<Work>,
    /// The key after the batch (`None`: the walk ends with it).
    next: Option<Vec<u8>>,
    jobs: Vec<Job>,
    reads: Vec<(usize, usize, Option<PendingRead>)>,
    /// Rebuilt needles being written: (work, run, chunk, location index, new location, the
    /// drive, its ticket).
    writes: Vec<PendingWrite>,
    /// What this batch adds to its pass's counters (records and shards repaired are added at
    /// its commit).
    counters: RepairCounters,
}

type PendingWrite = (
    usize,
    usize,
    usize,
    usize,
    Location,
    Arc<DataDevice>,
    IoTicket,
);

impl Drop for Batched {
    /// A batch abandoned on an error waits for its writes in flight before its reservations
    /// are released: a freed segment is never written by a straggler.
    fn drop(&mut self) {
        for (.., dev, ticket) in self.writes.drain(..) {
            let _ = dev.device().complete_write(ticket);
        }
    }
}

/// The batches of a pass in flight: one with its reads out, one with its writes out.
#[derive(Default)]
struct Pipeline {
    ahead: Option<Batched>,
    writing: Option<Batched>,
}

/// How a batch ended.
enum Walk {
    More,
    Done,
}

impl Job {
    fn needs_repair(&self) -> bool {
        self.bad.iter().any(|b| *b)
    }

    /// Whether every bad location was read good (a garbage-collection move): nothing more
    /// needs reading.
    fn bad_all_read(&self) -> bool {
        self.bad
            .iter()
            .zip(&self.payload)
            .all(|(bad, p)| !bad || p.is_some())
    }
}

impl Store {
    /// The rebuild boundary of data slot `slot` (`r/<slot>`): locations below it were on a
    /// drive since replaced; 0 for none.
    pub(super) fn rebuild_boundary(&self, slot: u32) -> u64 {
        self.inner
            .repair
            .lost_below
            .get(slot as usize)
            .map_or(0, |b| b.load(Ordering::Acquire))
    }

    /// Sets data slot `slot`'s rebuild boundary in memory (it is committed already).
    pub(super) fn set_rebuild_boundary(&self, slot: u32, boundary: u64) {
        self.inner.repair.lost_below[slot as usize].store(boundary, Ordering::Release);
    }

    /// A slot's drive changed: the lost slots are no longer what the last rebuild covered.
    pub(super) fn rebuild_due(&self) {
        *self.inner.repair.clean_for.lock() = None;
        self.wake_repair();
    }

    /// Why each lost slot is lost, as (slot, lost-below offset: `u64::MAX` for the whole drive).
    fn lost_signature(&self) -> Vec<(u32, u64)> {
        (0..self.inner.data.len() as u32)
            .filter_map(|slot| {
                let whole = match self.data_device(slot) {
                    None => true,
                    Some(d) => d.device().is_poisoned(),
                };
                if whole {
                    Some((slot, u64::MAX))
                } else {
                    let b = self.rebuild_boundary(slot);
                    (b > 0).then_some((slot, b))
                }
            })
            .collect()
    }

    /// Called before a commit that moves a record with `runs` from one key range to another
    /// (a latest version becoming noncurrent or back, a part becoming an object's): a pass
    /// walking the ranges in key order may already be past where the record lands, so a
    /// rebuild running now cannot prove the lost slots clean if the record names one of them.
    pub(super) fn note_record_moved(&self, runs: &[ChunkRun]) {
        let lost = self.lost_signature();
        if lost.is_empty() {
            return;
        }
        let names_lost = runs
            .iter()
            .flat_map(|r| &r.chunks)
            .flat_map(|c| &c.locations)
            .any(|l| self.location_lost(*l, &lost));
        if names_lost {
            self.inner.repair.moved_lost.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn location_lost(&self, loc: Location, lost: &[(u32, u64)]) -> bool {
        // A missing slot is in `lost` with the bound `u64::MAX` (see `lost_signature`).
        lost.iter()
            .any(|&(slot, below)| slot == loc.slot && loc.offset < below)
    }

    /// Whether a pass of `kind` must rewrite `loc`: lost (rebuild, scrub) or in a victim
    /// segment (garbage collection).
    fn location_selected(&self, kind: PassKind, loc: Location, lost: &[(u32, u64)]) -> bool {
        match kind {
            PassKind::Collect => self.location_in_victim(loc),
            _ => self.location_lost(loc, lost),
        }
    }

    /// Whether a rebuild has lost locations to look for that no completed rebuild covered.
    pub fn rebuild_pending(&self) -> bool {
        let lost = self.lost_signature();
        !lost.is_empty() && self.inner.repair.clean_for.lock().as_ref() != Some(&lost)
    }

    /// Asks the background worker for a scrub pass now (the admin request).
    pub fn request_scrub(&self) {
        self.inner
            .repair
            .scrub_requested
            .store(true, Ordering::Release);
        self.wake_repair();
    }

    /// Queues the object at `bucket`/`key` for repair: a read found a bad copy or shard.
    pub(crate) fn queue_repair(&self, bucket: &str, key: &str) {
        self.inner
            .repair
            .queue
            .lock()
            .insert(schema::object_key(bucket, key));
        self.wake_repair();
    }

    fn wake_repair(&self) {
        let _l = self.inner.repair.wake_lock.lock();
        self.inner.repair.wake.notify_all();
    }

    /// Repair as it stands: the pass running, the last ones, the lost slots.
    ///
    /// Errors: metadata read errors.
    pub fn repair_status(&self) -> Result<RepairStatus> {
        let r = &self.inner.repair;
        let stored = |name| -> Result<Option<PassStatus>> {
            self.setting(name)?
                .map(|v| PassStatus::decode(&v))
                .transpose()
        };
        let running = match r.running.lock().clone() {
            Some(p) => Some(p),
            None => stored(PASS_SETTING)?.filter(|p| p.finished_unix_ms == 0),
        };
        let lost = self.lost_signature();
        let mut lost_bytes_estimate = 0;
        let lost_slots = lost
            .iter()
            .map(|&(slot, below)| {
                let why = match self.data_device(slot) {
                    None => "missing".to_string(),
                    Some(d) if d.device().is_poisoned() => {
                        format!("failed ({})", d.device().name())
                    }
                    Some(d) => format!(
                        "replaced by a blank drive ({}): locations below byte {below} are rebuilt",
                        d.device().name()
                    ),
                };
                lost_bytes_estimate += self.claimed_bytes(slot, below);
                (slot, why)
            })
            .collect();
        Ok(RepairStatus {
            running,
            last_rebuild: stored(LAST_REBUILD_SETTING)?,
            last_scrub: stored(LAST_SCRUB_SETTING)?,
            lost_slots,
            rebuild_pending: self.rebuild_pending(),
            lost_bytes_estimate,
            scrub_requested: r.scrub_requested.load(Ordering::Acquire),
            queued_records: r.queue.lock().len(),
            unrecoverable_objects: r.unrecoverable.lock().clone(),
        })
    }

    /// Bytes of segments claimed on `slot` below offset `below` (from its head record).
    fn claimed_bytes(&self, slot: u32, below: u64) -> u64 {
        let next = self
            .inner
            .meta
            .get(&schema::segment_claim_key(slot))
            .ok()
            .flatten()
            .and_then(|v| crate::segment::HeadState::decode(&v))
            .map_or(0, |h| h.next_unclaimed as u64);
        let bytes = next * self.inner.config.segment_size_bytes;
        bytes.min(below.saturating_sub(crate::segment::FIRST_SEGMENT_OFFSET_BYTES))
    }

    /// Counts the copies and shards on lost drives that a rebuild would rewrite (walks every
    /// record; metadata only).
    ///
    /// Errors: metadata read errors.
    pub fn count_lost_locations(&self) -> Result<u64> {
        let lost = self.lost_signature();
        let mut count = 0;
        for_each_run_record(
            &self.inner.meta,
            &self.inner.meta.snapshot(),
            &mut |_, runs| {
                for loc in runs
                    .iter()
                    .flat_map(|r| &r.chunks)
                    .flat_map(|c| &c.locations)
                {
                    count += self.location_lost(*loc, &lost) as u64;
                }
            },
        )?;
        Ok(count)
    }

    /// Runs a rebuild pass to its end now (resuming an interrupted one): every copy or shard
    /// on a missing, failed or replaced drive is reconstructed onto the others. Unpaced.
    ///
    /// Errors: metadata and device errors (the pass resumes where it stopped next time).
    pub fn rebuild(&self) -> Result<PassStatus> {
        self.run_pass(PassKind::Rebuild, None)
    }

    /// Runs a scrub pass to its end now (resuming an interrupted one): every copy and shard is
    /// read and verified, and lost or damaged ones are repaired. Unpaced.
    ///
    /// Errors: as [`Store::rebuild`].
    pub fn scrub(&self) -> Result<PassStatus> {
        self.run_pass(PassKind::Scrub, None)
    }

    /// Runs a pass of `kind`, resuming a stored one of that kind. `pace`: bytes per second to
    /// keep to while clients are active (`None`: unpaced); a scheduled scrub keeps to
    /// `scrub_bytes_per_s` always.
    pub(super) fn run_pass(&self, kind: PassKind, pace: Option<(u64, bool)>) -> Result<PassStatus> {
        let lost_at_start = self.lost_signature();
        let stored = match kind.persisted() {
            true => self.setting(PASS_SETTING)?,
            false => None,
        };
        let mut pass = match stored {
            Some(v) => {
                let p = PassStatus::decode(&v)?;
                if p.kind == kind && p.finished_unix_ms == 0 {
                    tracing::info!(pass = kind.name(), cursor = %p.cursor_text(), "resuming an interrupted {} pass", kind.name());
                    p
                } else {
                    PassStatus::new(kind)
                }
            }
            None => PassStatus::new(kind),
        };
        // Only a pass that walked every record under one set of lost slots proves them clean
        // (one resumed after a restart may have started under another).
        let whole_walk = pass.cursor.is_empty();
        let moved_at_start = self.inner.repair.moved_lost.load(Ordering::Acquire);
        if whole_walk {
            tracing::info!(pass = kind.name(), lost = ?lost_at_start, "{} pass started", kind.name());
        }
        let mut raced = false;
        let mut pipeline = Pipeline::default();
        let mut logged = Instant::now();
        loop {
            if self.pass_stopped(kind) {
                self.set_running(kind, None);
                return Err(Error::Closed);
            }
            let started = Instant::now();
            let before = pass.counters;
            self.set_running(kind, Some(&pass));
            // While clients are active a paced pass reads in batches an eighth the size, so a
            // client's read never queues behind much repair I/O on a drive.
            let budget = match pace {
                Some(_) if self.clients_active() => (self.inner.config.repair_batch_bytes / 8)
                    .max(self.inner.config.chunk_size_bytes),
                _ => self.inner.config.repair_batch_bytes,
            };
            let walk = self.repair_batch(&mut pass, &mut raced, &mut pipeline, budget);
            let walk = match walk {
                Ok(w) => w,
                Err(e) => {
                    self.set_running(kind, None);
                    return Err(e);
                }
            };
            let elapsed = started.elapsed();
            pass.active_ms += elapsed.as_millis() as u64;
            if logged.elapsed() > Duration::from_secs(10) {
                logged = Instant::now();
                tracing::info!(
                    pass = kind.name(),
                    cursor = %pass.cursor_text(),
                    chunks = pass.counters.chunks_checked,
                    repaired = pass.counters.shards_repaired,
                    rate_mb_s = pass.rate_bytes_per_s() / 1_000_000,
                    "{} progress",
                    kind.name()
                );
            }
            if let Walk::Done = walk {
                break;
            }
            // Pacing: while clients are active (or always, for a scheduled scrub) a batch's
            // bytes at the allowed rate take at least this long; idle, the next batch starts
            // at once.
            if let Some((rate, always)) = pace {
                let bytes = (pass.counters.bytes_read - before.bytes_read)
                    + (pass.counters.bytes_written - before.bytes_written);
                if rate > 0 && (always || self.clients_active()) {
                    let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(elapsed) {
                        match kind {
                            PassKind::Collect => self.gc_sleep(wait),
                            _ => self.sleep_unless_stopped(wait),
                        }
                    }
                }
            }
            if kind == PassKind::Scrub && self.rebuild_pending() {
                // A drive was lost meanwhile: rebuild first; this scrub resumes later.
                let drained = self.drain(&mut pass, &mut pipeline, &mut raced);
                self.set_running(kind, None);
                drained?;
                return Ok(pass);
            }
        }
        pass.finished_unix_ms = now_unix_ms();
        if !kind.persisted() {
            self.set_running(kind, None);
            return Ok(pass);
        }
        let mut batch = Batch::new();
        batch.put(schema::setting_key(PASS_SETTING), pass.encode());
        let last = match kind {
            PassKind::Rebuild => LAST_REBUILD_SETTING,
            PassKind::Scrub | PassKind::Collect => LAST_SCRUB_SETTING,
        };
        batch.put(schema::setting_key(last), pass.encode());
        // Lost slots no record points into any more are clean: forget their boundaries.
        let lost_now = self.lost_signature();
        // A record that moved behind the cursor while naming a lost location was not seen.
        let moved = self.inner.repair.moved_lost.load(Ordering::Acquire) != moved_at_start;
        let complete = whole_walk && !raced && !moved && lost_now == lost_at_start;
        let bounded: Vec<u32> = (0..self.inner.data.len() as u32)
            .filter(|&slot| complete && self.rebuild_boundary(slot) > 0)
            .collect();
        for &slot in &bounded {
            batch.delete(schema::rebuild_boundary_key(slot));
        }
        self.commit(batch)?;
        for slot in bounded {
            self.inner.repair.lost_below[slot as usize].store(0, Ordering::Release);
        }
        if complete {
            *self.inner.repair.clean_for.lock() = Some(self.lost_signature());
        }
        *self.inner.repair.running.lock() = None;
        tracing::info!(
            pass = kind.name(),
            chunks = pass.counters.chunks_checked,
            repaired = pass.counters.shards_repaired,
            records = pass.counters.records_repaired,
            unrecoverable = pass.counters.unrecoverable,
            read_mb = pass.counters.bytes_read / 1_000_000,
            written_mb = pass.counters.bytes_written / 1_000_000,
            rate_mb_s = pass.rate_bytes_per_s() / 1_000_000,
            "{} pass finished",
            kind.name()
        );
        Ok(pass)
    }

    /// Whether the worker running passes of `kind` is stopping.
    fn pass_stopped(&self, kind: PassKind) -> bool {
        match kind {
            PassKind::Collect => self.gc_stopped(),
            _ => self.inner.repair.stop.load(Ordering::Acquire),
        }
    }

    /// Publishes the pass running now (garbage collection keeps its own).
    fn set_running(&self, kind: PassKind, pass: Option<&PassStatus>) {
        match kind {
            PassKind::Collect => self.set_gc_running(pass),
            _ => *self.inner.repair.running.lock() = pass.cloned(),
        }
    }

    /// Whether a client request started within the last [`BUSY_WINDOW_MS`].
    pub(super) fn clients_active(&self) -> bool {
        let last = self
            .inner
            .repair
            .last_request_unix_ms
            .load(Ordering::Acquire);
        now_unix_ms().saturating_sub(last) < BUSY_WINDOW_MS
    }

    /// Notes that a client request (put, part or get) starts, for repair's pacing.
    pub(super) fn note_client_request(&self) {
        self.inner
            .repair
            .last_request_unix_ms
            .store(now_unix_ms(), Ordering::Release);
    }

    fn sleep_unless_stopped(&self, wait: Duration) {
        let r = &self.inner.repair;
        let mut l = r.wake_lock.lock();
        if !r.stop.load(Ordering::Acquire) {
            r.wake.wait_for(&mut l, wait);
        }
    }

    /// Examines the records after `pass.cursor` up to the batch bounds, repairs what they
    /// need, and commits the rewritten records with the advanced cursor. Sets `raced` when a
    /// record changed meanwhile or a repair found no drive with room: the pass is then not
    /// complete.
    ///
    /// Three batches overlap: the next one's reads are submitted before this one is decoded,
    /// and this one's writes go out before the previous one's are waited for and committed.
    /// So the drives read, the cores decode and the drives write at once.
    fn repair_batch(
        &self,
        pass: &mut PassStatus,
        raced: &mut bool,
        pipeline: &mut Pipeline,
        budget: u64,
    ) -> Result<Walk> {
        let lost = self.lost_signature();
        let mut batch = match pipeline.ahead.take() {
            Some(b) => b,
            None => {
                let cursor = match &pipeline.writing {
                    Some(w) => w.next.clone().unwrap_or_default(),
                    None => pass.cursor.clone(),
                };
                self.prepare_batch(pass.kind, &cursor, &lost, budget)?
            }
        };
        if let Some(next) = &batch.next {
            pipeline.ahead = Some(self.prepare_batch(pass.kind, next, &lost, budget)?);
        }
        self.rebuild_batch(&mut batch, raced)?;
        self.drain(pass, pipeline, raced)?;
        let done = batch.next.is_none();
        pipeline.writing = Some(batch);
        if done {
            self.drain(pass, pipeline, raced)?;
            return Ok(Walk::Done);
        }
        Ok(Walk::More)
    }

    /// Completes the batch whose writes are out (if any): waits for them, makes them durable
    /// and commits its records with the pass's advanced cursor and counters.
    fn drain(
        &self,
        pass: &mut PassStatus,
        pipeline: &mut Pipeline,
        raced: &mut bool,
    ) -> Result<()> {
        let Some(mut batch) = pipeline.writing.take() else {
            return Ok(());
        };
        self.complete_writes(&mut batch)?;
        let mut advanced = pass.clone();
        let (c, b) = (&mut advanced.counters, &batch.counters);
        c.chunks_checked += b.chunks_checked;
        c.unrecoverable += b.unrecoverable;
        c.bytes_read += b.bytes_read;
        c.bytes_written += b.bytes_written;
        advanced.cursor = batch.next.clone().unwrap_or_default();
        let persisted = pass.kind.persisted();
        let (records, shards) =
            self.commit_works(&batch.works, persisted.then_some(&mut advanced), raced)?;
        if !persisted {
            advanced.counters.records_repaired += records;
            advanced.counters.shards_repaired += shards;
        }
        *pass = advanced;
        // The batch's reservations and read epoch are released only now, after its commit.
        drop(batch);
        Ok(())
    }

    /// Reads the records of the batch starting at `cursor` (empty: the start), plans its
    /// chunks and submits its first reads.
    fn prepare_batch(
        &self,
        kind: PassKind,
        cursor: &[u8],
        lost: &[(u32, u64)],
        budget: u64,
    ) -> Result<Batched> {
        let epoch = self.begin_read();
        let (works, next) = self.collect_batch(kind, cursor, lost, budget)?;
        Ok(self.prepare_works(kind, works, next, lost, epoch))
    }

    /// Plans the chunks of `works` to examine (every chunk for a scrub; those with a lost
    /// location for a rebuild) and submits the first reads: every location for a scrub, just
    /// enough sources for a rebuild.
    fn prepare_works(
        &self,
        kind: PassKind,
        works: Vec<Work>,
        next: Option<Vec<u8>>,
        lost: &[(u32, u64)],
        epoch: ReadEpoch,
    ) -> Batched {
        let mut jobs = Vec::new();
        for (w, work) in works.iter().enumerate() {
            for (r, run) in work.runs.iter().enumerate() {
                for (c, chunk) in run.chunks.iter().enumerate() {
                    let bad: Vec<bool> = chunk
                        .locations
                        .iter()
                        .map(|l| self.location_selected(kind, *l, lost))
                        .collect();
                    if kind != PassKind::Scrub && !bad.iter().any(|b| *b) {
                        continue;
                    }
                    let n = chunk.locations.len();
                    jobs.push(Job {
                        work: w,
                        run: r,
                        chunk: c,
                        // A lost location is never read; a needle to move is read first.
                        tried: match kind {
                            PassKind::Collect => vec![false; n],
                            _ => bad.clone(),
                        },
                        bad,
                        payload: vec![None; n],
                    });
                }
            }
        }
        let mut wave = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            let run = &works[job.work].runs[job.run];
            match kind {
                PassKind::Collect => {
                    wave.extend((0..job.bad.len()).filter(|&l| job.bad[l]).map(|l| (j, l)))
                }
                PassKind::Scrub => wave.extend(
                    (0..job.bad.len())
                        .filter(|&l| !job.tried[l])
                        .map(|l| (j, l)),
                ),
                PassKind::Rebuild => {
                    let want = needed_sources(run.data_shards);
                    let untried = (0..job.bad.len()).filter(|&l| !job.tried[l]);
                    wave.extend(untried.take(want).map(|l| (j, l)));
                }
            }
        }
        let reads = self.submit_wave(&works, &jobs, wave);
        Batched {
            _epoch: epoch,
            reservations: Vec::new(),
            works,
            next,
            jobs,
            reads,
            writes: Vec::new(),
            counters: RepairCounters::default(),
        }
    }

    /// Reads records from the cursor until the batch's bounds (`budget` bytes of reads, 1024
    /// records); returns them and the key to continue from (`None`: the walk is complete).
    fn collect_batch(
        &self,
        kind: PassKind,
        cursor: &[u8],
        lost: &[(u32, u64)],
        budget: u64,
    ) -> Result<(Vec<Work>, Option<Vec<u8>>)> {
        let mut works = Vec::new();
        let mut bytes = 0u64;
        let mut next: Option<Vec<u8>> = None;
        let mut err = None;
        let from = if cursor.is_empty() {
            RECORDS_WITH_RUNS_START.to_vec()
        } else {
            cursor.to_vec()
        };
        // The noncurrent, object and part ranges are adjacent (`engine/FORMAT.md`): the
        // first key past them ends the walk.
        self.inner.meta.scan(&from, &mut |k, v| {
            if !has_runs(k) {
                return Scan::Stop;
            }
            if works.len() >= BATCH_RECORDS || bytes >= budget {
                next = Some(k.to_vec());
                return Scan::Stop;
            }
            match decode_runs(k, v) {
                Ok(runs) => {
                    // The reads the batch will make: every location for a scrub; enough
                    // sources of each chunk with a lost location for a rebuild.
                    for run in &runs {
                        for (i, c) in run.chunks.iter().enumerate() {
                            let reads = match kind {
                                PassKind::Scrub => c.locations.len(),
                                PassKind::Collect => c
                                    .locations
                                    .iter()
                                    .filter(|l| self.location_in_victim(**l))
                                    .count(),
                                PassKind::Rebuild
                                    if c.locations.iter().any(|l| self.location_lost(*l, lost)) =>
                                {
                                    needed_sources(run.data_shards)
                                }
                                PassKind::Rebuild => 0,
                            };
                            bytes += (reads * needle_bytes(payload_bytes(run, i))) as u64;
                        }
                    }
                    works.push(Work {
                        key: k.to_vec(),
                        raw: v.to_vec(),
                        upload_id: part_upload_id(k),
                        name: record_name(k),
                        runs,
                        repaired: 0,
                    });
                    Scan::Continue
                }
                Err(e) => {
                    err = Some(e);
                    Scan::Stop
                }
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        Ok((works, next))
    }

    /// Rebuilds a prepared batch up to its writes: waits for its first reads, reads further
    /// sources where too few were good, reconstructs bad locations and submits their new
    /// needles (not yet durable: [`Store::complete_writes`]). Sets `deferred` when a repair
    /// found no drive with room.
    fn rebuild_batch(&self, batch: &mut Batched, deferred: &mut bool) -> Result<()> {
        let Batched {
            works,
            jobs,
            reads,
            writes: pending,
            counters,
            reservations: batch_reservations,
            ..
        } = batch;
        let works = &mut works[..];
        counters.chunks_checked += jobs.len() as u64;
        self.collect_wave(works, jobs, std::mem::take(reads), counters);
        // Wave 2 and on: where too few sources were good, read the others not yet tried.
        loop {
            let mut wave = Vec::new();
            for (j, job) in jobs.iter().enumerate() {
                let need = needed_sources(works[job.work].runs[job.run].data_shards);
                let good = job.payload.iter().filter(|p| p.is_some()).count();
                if job.needs_repair() && !job.bad_all_read() && good < need {
                    let untried = (0..job.bad.len()).filter(|&l| !job.tried[l]);
                    wave.extend(untried.take(need - good).map(|l| (j, l)));
                }
            }
            if wave.is_empty() {
                break;
            }
            let reads = self.submit_wave(works, jobs, wave);
            self.collect_wave(works, jobs, reads, counters);
        }
        // Reconstruct (Reed–Solomon is CPU-bound: the chunks are shared out over the cores),
        // then rewrite.
        let needing: Vec<usize> = (0..jobs.len())
            .filter(|&j| jobs[j].needs_repair())
            .collect();
        let mut rebuilt_all = reconstruct_all(works, jobs, &needing);
        let mut writes = Vec::new();
        for (j, job) in jobs
            .iter_mut()
            .enumerate()
            .filter(|(_, j)| j.needs_repair())
        {
            let work = &works[job.work];
            let run = &work.runs[job.run];
            let chunk = &run.chunks[job.chunk];
            let index = run.first_index + job.chunk as u32;
            let rebuilt = match rebuilt_all.remove(&j).expect("reconstructed") {
                Ok(r) => r,
                Err(why) => {
                    counters.unrecoverable += 1;
                    tracing::error!(object = %work.name, chunk = index, "unrecoverable chunk: {why}");
                    let mut names = self.inner.repair.unrecoverable.lock();
                    if !names.contains(&work.name) {
                        if names.len() == UNRECOVERABLE_KEPT {
                            names.remove(0);
                        }
                        names.push(work.name.clone());
                    }
                    job.bad.fill(false);
                    continue;
                }
            };
            let mut taken: Vec<u32> = chunk
                .locations
                .iter()
                .zip(&job.bad)
                .filter(|(_, bad)| !**bad)
                .map(|(l, _)| l.slot)
                .collect();
            let mut placed = Vec::with_capacity(rebuilt.len());
            let mut held = Vec::with_capacity(rebuilt.len());
            for (l, payload) in rebuilt {
                let id = needle_id(run, job.chunk, l);
                let mut needle = AlignedBuf::new(needle_bytes(payload.len()));
                needle.set_len(needle_bytes(payload.len()));
                needle[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + payload.len()]
                    .copy_from_slice(&payload);
                seal_needle(&mut needle, id, payload.len());
                let max_per_group = max_per_failure_group(run.data_shards, chunk.locations.len());
                let old = chunk.locations[l];
                // A needle moved out of a victim segment stays on its drive (the stripe keeps
                // its distinct drives); a lost one goes where there is most room.
                let placement = if self.location_in_victim(old) {
                    self.place_move(old.slot, needle.len() as u64)
                } else {
                    self.place_repair(
                        &taken,
                        needle.len() as u64,
                        run.object_id ^ l as u128,
                        max_per_group,
                    )
                };
                match placement {
                    Ok((slot, reservation)) => {
                        taken.push(slot);
                        let offset = reservation.offset;
                        held.push(reservation);
                        placed.push((l, Location { slot, offset }, needle));
                    }
                    Err(Error::NoSpace { detail }) => {
                        // Left as it is for a later pass (room reserved is garbage).
                        tracing::warn!(object = %work.name, chunk = index, "repair deferred: {detail}");
                        *deferred = true;
                        placed.clear();
                        held.clear();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            for (l, loc, needle) in placed {
                writes.push((job.work, job.run, job.chunk, l, loc, needle));
            }
            batch_reservations.append(&mut held);
        }
        for (w, r, c, l, loc, needle) in writes {
            let dev = self
                .data_device(loc.slot)
                .expect("placed on a present drive");
            counters.bytes_written += needle.len() as u64;
            let ticket = dev.submit_write_batched(needle, loc.offset)?.into_ticket();
            pending.push((w, r, c, l, loc, dev, ticket));
        }
        Ok(())
    }

    /// Waits for a batch's rebuilt needles, makes them durable (one sync per drive written)
    /// and puts their locations in the batch's records.
    ///
    /// Errors: a write or sync error (nothing of the batch is committed; the pass retries it,
    /// the failed drive having left placement).
    fn complete_writes(&self, batch: &mut Batched) -> Result<()> {
        let works = &mut batch.works;
        let pending = std::mem::take(&mut batch.writes);
        let mut first_error = None;
        let mut done = Vec::with_capacity(pending.len());
        let mut written: Vec<Arc<DataDevice>> = Vec::new();
        for (w, r, c, l, loc, dev, ticket) in pending {
            match dev.device().complete_write(ticket) {
                Ok(_) => done.push((w, r, c, l, loc)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            if !written.iter().any(|d| Arc::ptr_eq(d, &dev)) {
                written.push(dev);
            }
        }
        // One sync per drive written makes the batch's needles durable before any record
        // references them.
        if let Err(e) = crate::segment::sync_all(&written) {
            first_error.get_or_insert(e);
        }
        if let Some(e) = first_error {
            // Nothing of this batch is committed; the pass retries it (the failed drive has
            // left placement).
            return Err(e);
        }
        for (w, r, c, l, loc) in done {
            let work = &mut works[w];
            let locations = &mut work.runs[r].chunks[c].locations;
            assert_ne!(
                locations[l], loc,
                "a repair never rewrites a location in place"
            );
            locations[l] = loc;
            let slots: BTreeSet<u32> = locations.iter().map(|l| l.slot).collect();
            assert_eq!(
                slots.len(),
                locations.len(),
                "a chunk's locations stay on distinct drives"
            );
            work.repaired += 1;
        }
        Ok(())
    }

    /// Submits the reads of `(job, location)` pairs at once, sorted per drive by offset (a
    /// location whose drive cannot be read gets `None`).
    fn submit_wave(
        &self,
        works: &[Work],
        jobs: &[Job],
        mut wave: Vec<(usize, usize)>,
    ) -> Vec<(usize, usize, Option<PendingRead>)> {
        fn location(works: &[Work], job: &Job, l: usize) -> Location {
            works[job.work].runs[job.run].chunks[job.chunk].locations[l]
        }
        wave.sort_by_key(|&(j, l)| {
            let loc = location(works, &jobs[j], l);
            (loc.slot, loc.offset)
        });
        let mut in_flight = Vec::with_capacity(wave.len());
        for (j, l) in wave {
            let job = &jobs[j];
            let loc = location(works, job, l);
            let run = &works[job.work].runs[job.run];
            let len = payload_bytes(run, job.chunk);
            let io = self.readable_location(loc).and_then(|dev| {
                dev.submit_read(AlignedBuf::new(needle_bytes(len)), loc.offset, len)
                    .ok()
            });
            in_flight.push((j, l, io));
        }
        in_flight
    }

    /// Waits for reads from [`Store::submit_wave`]: verified payloads go to the jobs;
    /// failures mark locations bad (an I/O error counts against its drive).
    fn collect_wave(
        &self,
        works: &[Work],
        jobs: &mut [Job],
        in_flight: Vec<(usize, usize, Option<PendingRead>)>,
        counters: &mut RepairCounters,
    ) {
        for (j, l, io) in in_flight {
            let job = &mut jobs[j];
            let loc = works[job.work].runs[job.run].chunks[job.chunk].locations[l];
            job.tried[l] = true;
            let run = &works[job.work].runs[job.run];
            let len = payload_bytes(run, job.chunk);
            let index = run.first_index + job.chunk as u32;
            let id = needle_id(run, job.chunk, l);
            let Some(io) = io else {
                job.bad[l] = true;
                continue;
            };
            let read = self.wait_read(loc.slot, io);
            counters.bytes_read += needle_bytes(len) as u64;
            let dev_name = self
                .data_device(loc.slot)
                .map_or(String::new(), |d| d.device().name().to_string());
            match read
                .and_then(|buf| verify_needle(&dev_name, loc.offset, &buf, id, len).map(|()| buf))
            {
                Ok(buf) => {
                    job.payload[l] =
                        Some(buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + len].to_vec())
                }
                Err(e) => {
                    tracing::warn!(object = %works[job.work].name, chunk = index, location = l, slot = loc.slot, "bad copy or shard found: {e}");
                    job.bad[l] = true;
                }
            }
        }
    }

    /// A drive for a repaired copy or shard: present, not failed, holding no other location
    /// of its chunk (`taken`), in a failure group holding fewer than `max_per_group` of them,
    /// with the most free segments (ties spread by `salt`); room for `bytes` is reserved on
    /// it. Returns (slot, offset).
    ///
    /// Errors: [`Error::NoSpace`] when no such drive has room.
    fn place_repair(
        &self,
        taken: &[u32],
        bytes: u64,
        salt: u128,
        max_per_group: u32,
    ) -> Result<(u32, Reservation)> {
        let n = self.inner.data.len() as u32;
        let groups = &self.inner.config.failure_groups;
        let in_group = |g: u32| {
            taken
                .iter()
                .filter(|&&t| groups.group_of[t as usize] == g)
                .count() as u32
        };
        let mut candidates: Vec<(u32, u32)> = (0..n)
            .filter(|s| !taken.contains(s))
            .filter(|&s| in_group(groups.group_of[s as usize]) < max_per_group)
            .filter_map(|s| {
                let d = self.data_device(s)?;
                (!d.device().is_poisoned()).then(|| (d.free_segments(), s))
            })
            .collect();
        let start = (xxhash_rust::xxh3::xxh3_64(&salt.to_le_bytes()) % n.max(1) as u64) as u32;
        candidates.sort_by_key(|&(free, s)| (std::cmp::Reverse(free), (s + n - start) % n));
        for (_, slot) in candidates {
            let dev = self.data_device(slot).expect("a candidate is present");
            match dev.reserve(bytes, Stream::Relocation, &self.inner.meta) {
                Ok(r) => return Ok((slot, r)),
                Err(Error::NoSpace { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoSpace {
            detail: format!(
                "no data drive outside slots {taken:?} (at most {max_per_group} per failure group) has room for a repaired copy or shard"
            ),
        })
    }

    /// Room for a needle moved out of a victim segment of `slot`, on the same drive's
    /// relocation head. Returns (slot, reservation).
    ///
    /// Errors: [`Error::NoSpace`] when the drive is gone, failed or has no free segment.
    fn place_move(&self, slot: u32, bytes: u64) -> Result<(u32, Reservation)> {
        match self.data_device(slot) {
            Some(dev) if !dev.device().is_poisoned() => Ok((
                slot,
                dev.reserve(bytes, Stream::Relocation, &self.inner.meta)?,
            )),
            _ => Err(Error::NoSpace {
                detail: format!("data slot {slot} is missing or failed"),
            }),
        }
    }

    /// Commits the changed works in one batch, each rewritten only if its record is unchanged
    /// since it was read (upload locks, then the namespace lock, are held across the check and
    /// the commit), with the live space each moves. With `pass`, its counters gain what was
    /// committed and its state goes in the same batch. Sets `raced` if any record had changed
    /// meanwhile (a later pass examines it again). Returns the records and locations
    /// rewritten.
    fn commit_works(
        &self,
        works: &[Work],
        pass: Option<&mut PassStatus>,
        raced: &mut bool,
    ) -> Result<(u64, u64)> {
        let changed: Vec<&Work> = works.iter().filter(|w| w.repaired > 0).collect();
        let mut stripes: Vec<usize> = changed
            .iter()
            .filter_map(|w| w.upload_id.as_deref())
            .map(|id| self.upload_lock_stripe(id))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _uploads: Vec<_> = stripes
            .iter()
            .map(|&s| self.inner.upload_locks[s].lock())
            .collect();
        let _ns = self.namespace_exclusive();
        let mut batch = Batch::new();
        let mut delta = self.space_delta();
        let (mut records, mut shards) = (0, 0);
        for work in changed {
            if self.inner.meta.get(&work.key)?.as_deref() != Some(&work.raw[..]) {
                *raced = true;
                continue;
            }
            // Unchanged locations cancel out.
            delta.add_runs(&decode_runs(&work.key, &work.raw)?, -1);
            delta.add_runs(&work.runs, 1);
            let value = if work.upload_id.is_some() {
                let mut record = PartRecord::decode(&work.raw)?;
                record.run = work.runs[0].clone();
                record.encode()
            } else {
                let mut record = ObjectRecord::decode(&work.raw)?;
                record.runs = work.runs.clone();
                record.encode()
            };
            batch.put(work.key.clone(), value);
            records += 1;
            shards += work.repaired;
        }
        if let Some(p) = pass {
            p.counters.records_repaired += records;
            p.counters.shards_repaired += shards;
            batch.put(schema::setting_key(PASS_SETTING), p.encode());
        }
        if !batch.ops.is_empty() {
            self.commit_with_space(batch, &delta)?;
        }
        Ok((records, shards))
    }

    /// Repairs the object records reads queued (a scrub of just those records).
    fn repair_queued(&self) -> Result<()> {
        let keys: Vec<Vec<u8>> = std::mem::take(&mut *self.inner.repair.queue.lock())
            .into_iter()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let lost = self.lost_signature();
        let epoch = self.begin_read();
        let mut works = Vec::new();
        for key in keys {
            let Some(raw) = self.inner.meta.get(&key)? else {
                continue;
            };
            works.push(Work {
                runs: decode_runs(&key, &raw)?,
                name: record_name(&key),
                upload_id: None,
                key,
                raw,
                repaired: 0,
            });
        }
        let mut batch = self.prepare_works(PassKind::Scrub, works, None, &lost, epoch);
        self.rebuild_batch(&mut batch, &mut false)?;
        self.complete_writes(&mut batch)?;
        self.commit_works(&batch.works, None, &mut false)?;
        let repaired: u64 = batch.works.iter().map(|w| w.repaired).sum();
        if repaired > 0 {
            tracing::info!(
                records = batch.works.len(),
                repaired,
                "repaired copies or shards that reads found bad"
            );
        }
        Ok(())
    }

    /// Starts the background worker: it repairs records reads queued, rebuilds when a drive is
    /// lost (paced while clients are active), and scrubs when asked or when the profile's
    /// period is due. [`Store::close`] stops it. Calling it again does nothing.
    pub fn start_repair_worker(&self) {
        let mut worker = self.inner.repair.worker.lock();
        if worker.is_some() {
            return;
        }
        let store = self.clone();
        *worker = Some(
            std::thread::Builder::new()
                .name("hoard-repair".into())
                .spawn(move || store.repair_worker())
                .expect("spawning the repair thread"),
        );
    }

    /// Stops the background worker and waits for it (at the end of its batch).
    pub(super) fn stop_repair_worker(&self) {
        let r = &self.inner.repair;
        r.stop.store(true, Ordering::Release);
        self.wake_repair();
        let handle = r.worker.lock().take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    fn repair_worker(&self) {
        let r = &self.inner.repair;
        let config = &self.inner.config;
        let mut backoff = Duration::from_secs(1);
        while !r.stop.load(Ordering::Acquire) {
            let result = (|| -> Result<bool> {
                self.repair_queued()?;
                let stored = self
                    .setting(PASS_SETTING)?
                    .map(|v| PassStatus::decode(&v))
                    .transpose()?;
                let interrupted = stored.filter(|p| p.finished_unix_ms == 0).map(|p| p.kind);
                if self.rebuild_pending() || interrupted == Some(PassKind::Rebuild) {
                    self.run_pass(
                        PassKind::Rebuild,
                        Some((config.rebuild_paced_bytes_per_s, false)),
                    )?;
                    return Ok(true);
                }
                let requested = r.scrub_requested.swap(false, Ordering::AcqRel);
                let last_scrub = self
                    .setting(LAST_SCRUB_SETTING)?
                    .map(|v| PassStatus::decode(&v))
                    .transpose()?;
                let period_ms = match config.scrub_period_ms {
                    0 => u64::MAX,
                    ms => ms,
                };
                // A period runs from the last scrub's start (a pass at `scrub_bytes_per_s`
                // reads a full pool within one), or from when the store first ran its worker.
                let since = match &last_scrub {
                    Some(p) => p.started_unix_ms,
                    None => match self.setting(SCRUB_CLOCK_SETTING)? {
                        Some(v) => u64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                            Error::MetadataUnavailable {
                                detail: "the scrub clock setting is not 8 bytes".into(),
                            }
                        })?),
                        None => {
                            let now = now_unix_ms();
                            self.put_setting(SCRUB_CLOCK_SETTING, &now.to_le_bytes())?;
                            now
                        }
                    },
                };
                let due = now_unix_ms().saturating_sub(since) >= period_ms;
                if requested || interrupted == Some(PassKind::Scrub) || due {
                    let pace = if requested {
                        (config.rebuild_paced_bytes_per_s, false)
                    } else {
                        (config.scrub_bytes_per_s, true)
                    };
                    self.run_pass(PassKind::Scrub, Some(pace))?;
                    return Ok(true);
                }
                Ok(false)
            })();
            match result {
                Ok(true) => backoff = Duration::from_secs(1),
                Ok(false) => self.sleep_unless_stopped(Duration::from_secs(1)),
                Err(Error::Closed) => return,
                Err(e) => {
                    if r.stop.load(Ordering::Acquire) {
                        return;
                    }
                    tracing::error!(error = %e, "repair failed; retrying in {} s", backoff.as_secs());
                    self.sleep_unless_stopped(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

/// The identity of the needle at location `l` of chunk `c` of `run`: the chunk's for a copy,
/// the shard's (`chunk index | shard << 24`) for a stripe.
fn needle_id(run: &ChunkRun, c: usize, l: usize) -> ChunkId {
    let index = run.first_index + c as u32;
    ChunkId {
        object_id: run.object_id,
        index: if run.data_shards > 0 {
            schema::shard_index(index, l)
        } else {
            index
        },
    }
}

/// Pieces of a chunk of `locations` copies (`data_shards` 0) or shards that may share a failure
/// group (as [`crate::Protection::max_per_failure_group`]).
fn max_per_failure_group(data_shards: u8, locations: usize) -> u32 {
    let tolerates = match data_shards {
        0 => locations.saturating_sub(1),
        k => locations - k as usize,
    };
    (tolerates as u32).max(1)
}

/// Copies (replicas) or shards (K) a chunk needs to be rebuilt from.
fn needed_sources(data_shards: u8) -> usize {
    (data_shards as usize).max(1)
}

/// Payload bytes of each location of chunk `c` of `run` ([`ChunkRun::payload_bytes`]).
fn payload_bytes(run: &ChunkRun, c: usize) -> usize {
    run.payload_bytes(c)
}

/// [`reconstruct`] for each job of `needing`, on up to one thread per core.
fn reconstruct_all(
    works: &[Work],
    jobs: &[Job],
    needing: &[usize],
) -> std::collections::HashMap<usize, std::result::Result<Vec<(usize, Vec<u8>)>, String>> {
    let one = |j: usize| {
        let job = &jobs[j];
        let run = &works[job.work].runs[job.run];
        (
            j,
            crate::protection::reconstruct(run.data_shards, &job.payload, &job.bad),
        )
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(needing.len());
    if threads <= 1 {
        return needing.iter().map(|&j| one(j)).collect();
    }
    let per_thread = needing.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = needing
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(|&j| one(j)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reconstruction does not panic"))
            .collect()
    })
}
