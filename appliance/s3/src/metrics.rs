//! Metrics in the OpenMetrics text format (the Prometheus exposition format's successor, which
//! Prometheus scrapes; written by the `prometheus-client` crate),
//! served on the admin side only: `GET /_hoard/metrics` (an admin credential, like every admin
//! request) and, when `S3Config::metrics_listen` is set, plain `GET /metrics` on that separate
//! (management) address for a Prometheus scraper. Never to anonymous S3 clients.
//!
//! - `hoard_s3_requests_total{operation,status}`, `hoard_s3_request_duration_seconds{operation}`
//!   (histogram), `hoard_s3_bytes_total{direction="in"|"out"}`, requests and data streams in
//!   flight;
//! - per data drive (`slot`, `device`): reads, writes and their bytes, read errors, state;
//! - metadata: batches, flushes, bytes applied, flushed and compacted (compaction);
//! - memory: the profile's budget, the process's resident size, the store's own uses;
//! - space: raw, free and live bytes of the pool; garbage collection bytes written;
//! - `hoard_request_stage_seconds_total{stage}`: the server time of requests by stage
//!   ([`Stage`]), so what each stage costs per request is the counter's rate over the
//!   request rate (the `s3_requests` benchmark prints it).
//!
//! Must not import `state`, `request`, `ops` or `server`: callers hand it the store, the
//! server's gauges and each request's [`StageClock`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriveLabels {
    slot: String,
    device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriveStateLabels {
    slot: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UseLabel {
    r#use: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

type U64Gauge = Gauge<u64, std::sync::atomic::AtomicU64>;
type SecondsCounter = Counter<f64, std::sync::atomic::AtomicU64>;

/// The stages of a request's time in the server, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the target and query, routing.
    Parse,
    /// Verifying the signature (SigV4, SigV2, presigned) and looking up the key.
    Authentication,
    /// Taking a request permit from the caller's share.
    Admission,
    /// Bucket access settings, ACLs and the bucket policy decided (engine reads apart).
    Authorization,
    /// Header checks and the QoS limits.
    Qos,
    /// The operation's own work outside the engine (body, headers, XML).
    Handler,
    /// Engine calls: on the async thread from memory, or the wait for a blocking thread.
    Engine,
    /// Metrics, usage and the answer's error document, after the operation.
    Record,
}

impl Stage {
    const ALL: [Stage; 8] = [
        Stage::Parse,
        Stage::Authentication,
        Stage::Admission,
        Stage::Authorization,
        Stage::Qos,
        Stage::Handler,
        Stage::Engine,
        Stage::Record,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Authentication => "authentication",
            Stage::Admission => "admission",
            Stage::Authorization => "authorization",
            Stage::Qos => "qos",
            Stage::Handler => "handler",
            Stage::Engine => "engine",
            Stage::Record => "record",
        }
    }
}

/// One request's time by [`Stage`]: each [`StageClock::lap`] charges the time since the last
/// one to a stage, less what engine calls took meanwhile ([`crate::engine::engine_nanos`]),
/// which is charged to [`Stage::Engine`].
#[derive(Clone, Debug)]
pub struct StageClock {
    last: std::time::Instant,
    engine_at_last: u64,
    nanos: [u64; Stage::ALL.len()],
}

impl Default for StageClock {
    fn default() -> Self {
        StageClock {
            last: std::time::Instant::now(),
            engine_at_last: crate::engine::engine_nanos(),
            nanos: [0; Stage::ALL.len()],
        }
    }
}

impl StageClock {
    /// Charges the time since the last lap to `stage`.
    pub fn lap(&mut self, stage: Stage) {
        let now = std::time::Instant::now();
        let engine = crate::engine::engine_nanos();
        let engine_spent = engine.saturating_sub(self.engine_at_last);
        let spent = now.duration_since(self.last).as_nanos() as u64;
        self.nanos[stage as usize] += spent.saturating_sub(engine_spent);
        self.nanos[Stage::Engine as usize] += engine_spent;
        self.last = now;
        self.engine_at_last = engine;
    }
}

/// The registry and the metrics in it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<OperationLabel, Histogram, fn() -> Histogram>,
    bytes: Family<DirectionLabel, Counter>,
    in_flight: Family<UseLabel, U64Gauge>,
    drive_reads: Family<DriveLabels, Counter>,
    drive_read_bytes: Family<DriveLabels, Counter>,
    drive_writes: Family<DriveLabels, Counter>,
    drive_write_bytes: Family<DriveLabels, Counter>,
    drive_read_errors: Family<DriveLabels, Counter>,
    drive_state: Family<DriveStateLabels, U64Gauge>,
    metadata: Family<UseLabel, Counter>,
    memory: Family<UseLabel, U64Gauge>,
    space: Family<UseLabel, U64Gauge>,
    gc_bytes: Counter,
    stage_nanos: [std::sync::atomic::AtomicU64; Stage::ALL.len()],
    stage_seconds: Family<StageLabel, SecondsCounter>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Sets a counter fed from a monotonic source to `value` (it only ever moves up).
fn catch_up(counter: &Counter, value: u64) {
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            bytes: Family::default(),
            in_flight: Family::default(),
            drive_reads: Family::default(),
            drive_read_bytes: Family::default(),
            drive_writes: Family::default(),
            drive_write_bytes: Family::default(),
            drive_read_errors: Family::default(),
            drive_state: Family::default(),
            metadata: Family::default(),
            memory: Family::default(),
            space: Family::default(),
            gc_bytes: Counter::default(),
            stage_nanos: Default::default(),
            stage_seconds: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "hoard_s3_requests",
            "S3 requests answered",
            m.requests.clone(),
        );
        r.register(
            "hoard_s3_request_duration_seconds",
            "Time from a request's arrival to its answer's headers",
            m.duration.clone(),
        );
        r.register(
            "hoard_s3_bytes",
            "S3 body bytes received and sent",
            m.bytes.clone(),
        );
        r.register(
            "hoard_s3_in_flight",
            "Requests and data streams being served",
            m.in_flight.clone(),
        );
        r.register(
            "hoard_drive_reads",
            "Reads submitted to a data drive",
            m.drive_reads.clone(),
        );
        r.register(
            "hoard_drive_read_bytes",
            "Bytes of reads submitted to a data drive",
            m.drive_read_bytes.clone(),
        );
        r.register(
            "hoard_drive_writes",
            "Writes submitted to a data drive",
            m.drive_writes.clone(),
        );
        r.register(
            "hoard_drive_write_bytes",
            "Bytes of writes submitted to a data drive",
            m.drive_write_bytes.clone(),
        );
        r.register(
            "hoard_drive_read_errors",
            "Reads of a data drive that failed or timed out",
            m.drive_read_errors.clone(),
        );
        r.register(
            "hoard_drive_state",
            "1 for a data slot's current state (healthy, missing, failed, rebuilding)",
            m.drive_state.clone(),
        );
        r.register(
            "hoard_metadata",
            "Metadata index activity: batches, frames, flushes, and bytes applied, flushed and compacted",
            m.metadata.clone(),
        );
        r.register(
            "hoard_memory_bytes",
            "Memory: the profile's budget, the process's resident size, the store's uses",
            m.memory.clone(),
        );
        r.register(
            "hoard_space_bytes",
            "Pool space: raw, free, live, reclaimable",
            m.space.clone(),
        );
        r.register(
            "hoard_gc_written_bytes",
            "Bytes garbage collection wrote moving live needles",
            m.gc_bytes.clone(),
        );
        r.register(
            "hoard_request_stage_seconds",
            "Server time of S3 requests by stage (parse, authentication, admission, authorization, qos, handler, engine, record)",
            m.stage_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds one request's stage times (atomics only: no label lookup per request).
    pub fn observe_stages(&self, clock: &StageClock) {
        for (total, nanos) in self.stage_nanos.iter().zip(clock.nanos) {
            if nanos > 0 {
                total.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Records one answered request.
    pub fn observe(
        &self,
        operation: &str,
        status: u16,
        seconds: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&OperationLabel {
                operation: operation.to_string(),
            })
            .observe(seconds);
        for (direction, n) in [("in", bytes_in), ("out", bytes_out)] {
            if n > 0 {
                self.bytes
                    .get_or_create(&DirectionLabel {
                        direction: direction.into(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// The exposition text, with the store's figures read now and the server's `gauges`.
    pub fn render(&self, store: &hoard::Store, gauges: ServerGauges) -> String {
        let label = |u: &str| UseLabel {
            r#use: u.to_string(),
        };
        for stage in Stage::ALL {
            let nanos = self.stage_nanos[stage as usize].load(std::sync::atomic::Ordering::Relaxed);
            let counter = self.stage_seconds.get_or_create(&StageLabel {
                stage: stage.name(),
            });
            let behind = nanos as f64 / 1e9 - counter.get();
            if behind > 0.0 {
                counter.inc_by(behind);
            }
        }
        self.in_flight
            .get_or_create(&label("requests"))
            .set(gauges.requests_in_flight);
        self.in_flight
            .get_or_create(&label("streams"))
            .set(gauges.streams_in_flight);
        self.drive_state.clear();
        for d in store.data_slots() {
            let l = DriveLabels {
                slot: d.slot.to_string(),
                device: d.device.clone().unwrap_or_default(),
            };
            catch_up(&self.drive_reads.get_or_create(&l), d.io.reads);
            catch_up(&self.drive_read_bytes.get_or_create(&l), d.io.read_bytes);
            catch_up(&self.drive_writes.get_or_create(&l), d.io.writes);
            catch_up(&self.drive_write_bytes.get_or_create(&l), d.io.write_bytes);
            catch_up(
                &self.drive_read_errors.get_or_create(&l),
                d.read_errors as u64,
            );
            self.drive_state
                .get_or_create(&DriveStateLabels {
                    slot: d.slot.to_string(),
                    state: format!("{:?}", d.state).to_ascii_lowercase(),
                })
                .set(1);
        }
        let meta = store.meta_stats();
        for (name, value) in [
            ("batches", meta.batches),
            ("frames", meta.frames),
            ("flushes", meta.flushes),
            ("applied_bytes", meta.applied_bytes),
            ("flushed_bytes", meta.flushed_bytes),
            ("compacted_bytes", meta.compacted_bytes),
        ] {
            catch_up(&self.metadata.get_or_create(&label(name)), value);
        }
        let memory = store.memory();
        let (resident, peak) = process_resident_bytes();
        for (name, value) in [
            ("budget", memory.budget_bytes),
            ("resident", resident),
            ("resident_peak", peak),
            ("index", memory.index_bytes),
            ("block_cache", memory.block_cache_bytes),
            ("chunk_buffers", memory.chunk_buffer_bytes),
            ("request_bodies", gauges.request_body_bytes),
        ] {
            self.memory.get_or_create(&label(name)).set(value);
        }
        let space = store.space_status().total;
        for (name, value) in [
            ("raw", space.raw_bytes),
            ("free", space.free_bytes),
            ("live", space.live_bytes),
            ("reclaimable", space.reclaimable_bytes),
            ("reserve", space.reserve_bytes),
        ] {
            self.space.get_or_create(&label(name)).set(value);
        }
        catch_up(&self.gc_bytes, store.gc_status().bytes_written);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// What the server itself holds at the moment of a scrape (the store reports the rest).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerGauges {
    /// Requests being handled.
    pub requests_in_flight: u64,
    /// Data streams open (bodies being written, GETs being read).
    pub streams_in_flight: u64,
    /// Bytes of request bodies held in memory.
    pub request_body_bytes: u64,
}

/// The process's resident set size now and at its peak, in bytes (`VmRSS` and `VmHWM` of
/// /proc/self/status, proc(5)); zeros where /proc is not mounted.
pub fn process_resident_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
