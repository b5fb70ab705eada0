//! Repair's state: the rebuild boundaries of replaced drives, the queue of records reads found
//! damaged, the pass running now and its persistent form (`s/repair-pass`, `engine/FORMAT.md`),
//! the counters and status a pass reports, and the worker's wake-up and pacing clock. The
//! passes themselves (rebuild, scrub, and the collection pass of garbage collection) run on
//! the store (`store/repair.rs`), which rewrites its records with the repaired locations;
//! the stripe arithmetic is [`crate::protection`].
//!
//! Must not import `store`, `space` or `device`: the store's passes read and update it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::meta::codec::{DecodeError, Decoder, Encoder};
use crate::schema::{now_unix_ms, record_name};

/// The store setting holding the running (or last) pass ([`PassStatus`]).
pub(crate) const PASS_SETTING: &str = "repair-pass";
/// The store setting holding the last completed scrub ([`PassStatus`]).
pub(crate) const LAST_SCRUB_SETTING: &str = "repair-last-scrub";
/// The store setting holding when the first scrub period began (u64 little-endian Unix ms),
/// until a scrub completes.
pub(crate) const SCRUB_CLOCK_SETTING: &str = "repair-scrub-since";
/// The store setting holding the last completed rebuild ([`PassStatus`]).
pub(crate) const LAST_REBUILD_SETTING: &str = "repair-last-rebuild";
/// Records a batch takes at most (besides its byte bound).
pub(crate) const BATCH_RECORDS: usize = 1024;
/// Objects named in the unrecoverable list kept in memory for the status document.
pub(crate) const UNRECOVERABLE_KEPT: usize = 100;
/// A client request within this window (ms) makes a rebuild keep to its paced rate.
pub(crate) const BUSY_WINDOW_MS: u64 = 200;

/// What a pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassKind {
    /// Repairs lost locations (drives missing, failed or replaced) without reading them.
    Rebuild,
    /// Reads and verifies every location, and repairs lost and damaged ones.
    Scrub,
    /// Garbage collection: moves every location in a victim segment (`SpaceState::victims`)
    /// to the relocation head of the same drive, reading it (or, if that fails, rebuilding it
    /// from the chunk's other locations). Its cursor is not kept: an interrupted collection
    /// starts over with victims chosen anew.
    Collect,
}

impl PassKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            PassKind::Rebuild => 1,
            PassKind::Scrub => 2,
            PassKind::Collect => 3,
        }
    }

    /// `rebuild`, `scrub` or `gc`.
    pub fn name(self) -> &'static str {
        match self {
            PassKind::Rebuild => "rebuild",
            PassKind::Scrub => "scrub",
            PassKind::Collect => "gc",
        }
    }

    /// Whether the pass keeps its cursor and counters in `s/repair-pass`.
    pub(crate) fn persisted(self) -> bool {
        self != PassKind::Collect
    }
}

/// Counts of one pass, exact across crashes (committed with the records they count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairCounters {
    /// Chunks examined (every chunk for a scrub; chunks with a lost location for a rebuild).
    pub chunks_checked: u64,
    /// Copies and shards rewritten to a new location.
    pub shards_repaired: u64,
    /// Object and part records rewritten.
    pub records_repaired: u64,
    /// Chunks that could not be repaired: fewer good copies or shards than needed.
    pub unrecoverable: u64,
    /// Needle bytes read from the drives.
    pub bytes_read: u64,
    /// Needle bytes written to the drives.
    pub bytes_written: u64,
}

/// A pass: running, or the last of its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassStatus {
    /// Rebuild or scrub.
    pub kind: PassKind,
    /// When it started, Unix ms.
    pub started_unix_ms: u64,
    /// When it finished, Unix ms; 0 while running.
    pub finished_unix_ms: u64,
    /// Time spent working (not across restarts' downtime), ms.
    pub active_ms: u64,
    /// Its counts.
    pub counters: RepairCounters,
    /// The next metadata key it examines (empty: the start).
    pub cursor: Vec<u8>,
}

impl PassStatus {
    pub(crate) fn new(kind: PassKind) -> Self {
        PassStatus {
            kind,
            started_unix_ms: now_unix_ms(),
            finished_unix_ms: 0,
            active_ms: 0,
            counters: RepairCounters::default(),
            cursor: Vec::new(),
        }
    }

    /// Bytes read and written per second of active time.
    pub fn rate_bytes_per_s(&self) -> u64 {
        let bytes = self.counters.bytes_read + self.counters.bytes_written;
        bytes * 1000 / self.active_ms.max(1)
    }

    /// The cursor as text (`bucket/key`, or `upload <id>`), for logs and status.
    pub fn cursor_text(&self) -> String {
        let c = &self.cursor;
        if c.starts_with(b"p/") {
            format!("upload parts {}", String::from_utf8_lossy(&c[2..]))
        } else if c.is_empty() {
            String::new()
        } else {
            record_name(c)
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let c = &self.counters;
        let mut e = Encoder::new();
        e.u8(1)
            .u8(self.kind.code())
            .u64(self.started_unix_ms)
            .u64(self.finished_unix_ms)
            .u64(self.active_ms)
            .u64(c.chunks_checked)
            .u64(c.shards_repaired)
            .u64(c.records_repaired)
            .u64(c.unrecoverable)
            .u64(c.bytes_read)
            .u64(c.bytes_written)
            .bytes(&self.cursor);
        e.finish()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        (|| -> std::result::Result<Self, DecodeError> {
            if d.u8()? != 1 {
                return Err(DecodeError("unknown repair pass version".into()));
            }
            let kind = match d.u8()? {
                1 => PassKind::Rebuild,
                2 => PassKind::Scrub,
                k => return Err(DecodeError(format!("unknown repair pass kind {k}"))),
            };
            Ok(PassStatus {
                kind,
                started_unix_ms: d.u64()?,
                finished_unix_ms: d.u64()?,
                active_ms: d.u64()?,
                counters: RepairCounters {
                    chunks_checked: d.u64()?,
                    shards_repaired: d.u64()?,
                    records_repaired: d.u64()?,
                    unrecoverable: d.u64()?,
                    bytes_read: d.u64()?,
                    bytes_written: d.u64()?,
                },
                cursor: d.bytes()?.to_vec(),
            })
        })()
        .map_err(|e| Error::MetadataUnavailable {
            detail: format!("undecodable repair pass record: {e}"),
        })
    }
}

/// Repair as the status document shows it.
#[derive(Clone, Debug, Default)]
pub struct RepairStatus {
    /// The pass running now (or interrupted by a restart and about to resume).
    pub running: Option<PassStatus>,
    /// The last completed rebuild.
    pub last_rebuild: Option<PassStatus>,
    /// The last completed scrub.
    pub last_scrub: Option<PassStatus>,
    /// Data slots whose locations are lost, and why (missing, failed, replaced).
    pub lost_slots: Vec<(u32, String)>,
    /// Whether a rebuild is still to run for them.
    pub rebuild_pending: bool,
    /// Bytes of needles the lost slots held (from their claimed segments: an upper bound of
    /// what a rebuild writes), for the ETA.
    pub lost_bytes_estimate: u64,
    /// Whether a scrub was asked for and has not started.
    pub scrub_requested: bool,
    /// Object records queued for repair by reads that found a bad copy or shard.
    pub queued_records: usize,
    /// The last objects found unrecoverable (`bucket/key`), newest last.
    pub unrecoverable_objects: Vec<String>,
}

/// The store's repair state in memory.
pub(crate) struct RepairState {
    /// Per data slot: locations at offsets below this were on a drive since replaced by a blank
    /// one (`r/<slot>`); 0 for none.
    pub(crate) lost_below: Vec<AtomicU64>,
    /// The lost-slot set a rebuild last completed for (see `Store::lost_signature`).
    pub(crate) clean_for: Mutex<Option<Vec<(u32, u64)>>>,
    /// Commits that moved a record naming a lost location from one key range to another
    /// (see `Store::note_record_moved`).
    pub(crate) moved_lost: AtomicU64,
    /// Object record keys that reads found a bad copy or shard in.
    pub(crate) queue: Mutex<BTreeSet<Vec<u8>>>,
    pub(crate) scrub_requested: AtomicBool,
    /// The pass running now.
    pub(crate) running: Mutex<Option<PassStatus>>,
    pub(crate) unrecoverable: Mutex<Vec<String>>,
    /// When a client request (put, part or get) last started, Unix ms.
    pub(crate) last_request_unix_ms: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) wake: Condvar,
    pub(crate) wake_lock: Mutex<()>,
    pub(crate) worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RepairState {
    /// Repair state for a store of `boundaries.len()` data slots with these rebuild boundaries.
    pub(crate) fn new(boundaries: Vec<u64>) -> Self {
        RepairState {
            lost_below: boundaries.into_iter().map(AtomicU64::new).collect(),
            clean_for: Mutex::default(),
            moved_lost: AtomicU64::default(),
            queue: Mutex::default(),
            scrub_requested: AtomicBool::default(),
            running: Mutex::default(),
            unrecoverable: Mutex::default(),
            last_request_unix_ms: AtomicU64::default(),
            stop: AtomicBool::default(),
            wake: Condvar::new(),
            wake_lock: Mutex::default(),
            worker: Mutex::default(),
        }
    }
}
