//! Hardware profiles (`hwprofiles/*.toml`) and the engine configuration derived from them.
//!
//! Owns: parsing and validating a profile, and deriving every engine tunable (queue depths,
//! chunk and segment sizes, WAL size, buffer budgets, writer threads) with a sentence saying why,
//! which `hoard profile show` prints. Must not open devices.
//!
//! Must not import `schema`, `volume` or `store`: it derives their settings, they read it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::device::superblock::RESERVED_BYTES;
use crate::device::IoBackend;
use crate::error::{Error, Result};

/// A hardware profile as written in `hwprofiles/*.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`dev`, `qemu`, `4u-1.5pb`); written into every superblock.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// CPU and memory of the machine.
    pub chassis: Chassis,
    /// The metadata device class (SSDs).
    pub ssd: DriveClass,
    /// The data device class (HDDs).
    pub hdd: DriveClass,
    /// Data pools; by default one pool of every HDD.
    #[serde(default)]
    pub pool: Vec<PoolSpec>,
    /// Storage controllers the machine carries (their kernel drivers go into the firmware
    /// image); none for file-backed profiles.
    #[serde(default)]
    pub controller: Vec<ControllerSpec>,
    /// Network interfaces.
    #[serde(default)]
    pub nic: Option<NicSpec>,
    /// The hardware watchdog, if the machine has one the firmware should arm.
    #[serde(default)]
    pub watchdog: Option<WatchdogSpec>,
    /// File-backed devices (dev profile): file names under the data directory.
    #[serde(default)]
    pub files: Option<FileDevices>,
    /// Explicit overrides of derived settings.
    #[serde(default)]
    pub engine: EngineOverrides,
}

/// CPU and memory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chassis {
    /// Model name, for humans.
    #[serde(default)]
    pub model: String,
    /// CPU cores available to Hoard.
    pub cpu_cores: u32,
    /// Memory Hoard may plan around, in bytes.
    pub memory_bytes: u64,
    /// Server CPU seconds (user + system, all threads) per GiB of 64 MiB PUTs through the
    /// S3 server, as measured by `cargo bench -p hoard-benches --bench s3_cpu` on cores of
    /// this class; `hoard profile show` derives `cores_for_network` from it.
    #[serde(default)]
    pub put_cpu_seconds_per_gib: Option<f64>,
    /// The same for 64 MiB GETs.
    #[serde(default)]
    pub get_cpu_seconds_per_gib: Option<f64>,
}

/// One class of drives with its measured figures.
///
/// On the appliance a discovered block device fills a slot of this class when its rotational
/// flag is right (SSD: 0, HDD: 1) and its size is within `size_tolerance_pct` of `size_bytes`
/// (vendors round "18 TB" differently); see [`DriveClass::accepts`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveClass {
    /// Model, for humans (matching is by class and size, not by model string).
    #[serde(default)]
    pub model: String,
    /// Number of drives of this class.
    pub count: u32,
    /// Capacity of each, in bytes.
    pub size_bytes: u64,
    /// How far, in percent of `size_bytes`, a drive's capacity may differ and still match.
    #[serde(default = "default_size_tolerance_pct")]
    pub size_tolerance_pct: u32,
    /// Sustained sequential bandwidth, MB/s (10^6 bytes).
    pub seq_mb_s: u32,
    /// Random 4 KiB read IOPS at the queue depth below.
    pub random_read_iops: u32,
    /// Native command queue depth the drive accepts.
    #[serde(default = "default_ncq")]
    pub queue_depth: u32,
}

fn default_ncq() -> u32 {
    32
}

fn default_size_tolerance_pct() -> u32 {
    10
}

impl DriveClass {
    /// The capacities, in bytes, a drive of this class may have: `size_bytes` ±
    /// `size_tolerance_pct` percent (inclusive).
    pub fn size_range_bytes(&self) -> (u64, u64) {
        let slack = (self.size_bytes as u128 * self.size_tolerance_pct as u128 / 100) as u64;
        (
            self.size_bytes.saturating_sub(slack),
            self.size_bytes.saturating_add(slack),
        )
    }

    /// Whether a drive of `size_bytes` capacity fits this class.
    pub fn accepts(&self, size_bytes: u64) -> bool {
        let (lo, hi) = self.size_range_bytes();
        (lo..=hi).contains(&size_bytes)
    }
}

/// How a pool protects object data (`replicas:N` or `ec:K+M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// N full copies on N distinct HDDs.
    Replicas(u32),
    /// Reed–Solomon: K data shards and M parity shards on K+M distinct HDDs.
    ErasureCoded {
        /// Data shards.
        data: u32,
        /// Parity shards.
        parity: u32,
    },
}

impl Protection {
    /// HDDs a stripe spans (copies or shards).
    pub fn width(&self) -> u32 {
        match *self {
            Protection::Replicas(n) => n,
            Protection::ErasureCoded { data, parity } => data + parity,
        }
    }

    /// Drive failures a stripe survives.
    pub fn tolerates(&self) -> u32 {
        match *self {
            Protection::Replicas(n) => n - 1,
            Protection::ErasureCoded { parity, .. } => parity,
        }
    }

    /// Pieces of one chunk that may share a failure group: as many as a stripe survives
    /// losing (at least 1), so losing a whole group loses no chunk.
    pub fn max_per_failure_group(&self) -> u32 {
        self.tolerates().max(1)
    }
}

impl std::str::FromStr for Protection {
    type Err = String;

    /// Parses `replicas:N` (1..=16) or `ec:K+M` (K 1..=32, M 1..=16).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!("protection {s:?} must be replicas:N (N 1..=16) or ec:K+M (K 1..=32, M 1..=16)")
        };
        if let Some(n) = s.strip_prefix("replicas:") {
            let n: u32 = n.parse().map_err(|_| bad())?;
            return (1..=16)
                .contains(&n)
                .then_some(Protection::Replicas(n))
                .ok_or_else(bad);
        }
        let (k, m) = s
            .strip_prefix("ec:")
            .and_then(|km| km.split_once('+'))
            .ok_or_else(bad)?;
        let (data, parity): (u32, u32) =
            (k.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1..=32).contains(&data) || !(1..=16).contains(&parity) {
            return Err(bad());
        }
        Ok(Protection::ErasureCoded { data, parity })
    }
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::Replicas(n) => write!(f, "replicas:{n}"),
            Protection::ErasureCoded { data, parity } => write!(f, "ec:{data}+{parity}"),
        }
    }
}

/// A data pool: a set of HDD slots and its default protection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// HDD slots (indices into the HDD class) in this pool.
    pub hdd_slots: Vec<u32>,
    /// Default protection of buckets in this pool (`replicas:N` or `ec:K+M`).
    #[serde(default = "default_protection")]
    pub protection: String,
    /// Failure groups: sets of HDD slots that can fail together (a backplane, an expander, a
    /// drawer). A stripe puts at most M shards (`ec:K+M`) or N - 1 copies (`replicas:N`) in
    /// one group. Empty: every slot is its own group.
    #[serde(default)]
    pub failure_groups: Vec<Vec<u32>>,
}

fn default_protection() -> String {
    "replicas:1".into()
}

impl PoolSpec {
    /// The parsed protection.
    ///
    /// Errors: a message naming the text when it is neither `replicas:N` nor `ec:K+M`.
    pub fn protection(&self) -> std::result::Result<Protection, String> {
        self.protection.parse()
    }
}

/// Network interfaces.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    /// Model, for humans.
    #[serde(default)]
    pub model: String,
    /// Number of ports.
    pub count: u32,
    /// Line rate of each, Gbit/s.
    pub speed_gbps: u32,
    /// The Linux kernel module that drives it (`i40e`, `e1000e`, `virtio_net`).
    #[serde(default)]
    pub driver: Option<String>,
}

/// A hardware watchdog (`/dev/watchdog`): the firmware pets it while the store completes I/O
/// and the S3 server runs; `timeout_s` without either and the machine resets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSpec {
    /// Model, for humans.
    #[serde(default)]
    pub model: String,
    /// The Linux kernel module that drives it (`i6300esb`, `iTCO_wdt`, `ipmi_watchdog`,
    /// `sp5100_tco`).
    pub driver: String,
    /// Seconds without a healthy store and server before the reset (the driver's timeout).
    pub timeout_s: u32,
}

/// Which drives a storage controller connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControllerRole {
    /// The data HDDs.
    Hdd,
    /// The metadata SSDs.
    Ssd,
    /// The boot device (a SATA DOM or M.2 drive, never a drive of the store).
    Boot,
}

/// One storage controller (an HBA, a RAID card in JBOD mode, the chipset's AHCI, NVMe).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSpec {
    /// Model, for humans.
    #[serde(default)]
    pub model: String,
    /// The Linux kernel module that drives it (`mpt3sas`, `megaraid_sas`, `ahci`, `nvme`).
    pub driver: String,
    /// Which drives hang off it.
    pub carries: ControllerRole,
    /// How a drive's bay is read from its path on this controller; none: bays follow
    /// discovery order.
    #[serde(default)]
    pub bays: Option<BayRule>,
    /// The bay number of the controller's first position (a second HBA's drives continue
    /// after the first's).
    #[serde(default)]
    pub first_bay: u32,
}

/// Where a drive's bay number comes from (the number is also its slot in its class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BayRule {
    /// The SCSI target ID of its `host:channel:target:lun` (an HBA that numbers its ports).
    ScsiTarget,
    /// The ATA port (`ataN`, counted from 1) minus one (the chipset's SATA ports).
    AtaPort,
    /// The slot of the SES enclosure component holding it (`/sys/class/enclosure/*/*/slot`),
    /// the backplane's own numbering.
    EnclosureSlot,
}

/// File-backed devices, relative to the data directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDevices {
    /// One file per SSD.
    pub ssd: Vec<String>,
    /// One file per HDD.
    pub hdd: Vec<String>,
}

/// Explicit overrides; anything unset is derived.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineOverrides {
    /// `auto`, `uring` or `portable`.
    pub io_backend: Option<IoBackend>,
    /// Chunk size in bytes.
    pub chunk_size_bytes: Option<u64>,
    /// Segment size in bytes.
    pub segment_size_bytes: Option<u64>,
    /// WAL size in bytes.
    pub wal_size_bytes: Option<u64>,
    /// Objects of at most this many bytes are stored in the metadata index (0: never).
    pub inline_threshold_bytes: Option<u64>,
    /// Seconds a client may move no byte of a request or response body before it is cut.
    pub request_idle_timeout_s: Option<u64>,
    /// Days a scheduled scrub takes to read every stored byte once (0: no scheduled scrub).
    pub scrub_period_days: Option<u64>,
    /// Free segments each HDD keeps for garbage collection and rebuild.
    pub space_reserve_segments: Option<u32>,
    /// Garbage collection cleans while the pool's free space is below this percentage.
    pub gc_free_target_pct: Option<u32>,
    /// Milliseconds between the garbage collector's looks at the pool.
    pub gc_interval_ms: Option<u64>,
    /// Seconds after which an incomplete multipart upload is aborted (default 7 days).
    pub upload_expiry_s: Option<u64>,
}

/// Every tunable of the engine, derived from a [`Profile`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Profile name.
    pub profile_name: String,
    /// Which I/O backend devices use.
    pub io_backend: IoBackend,
    /// Object data is split into chunks of this size; one HDD read per chunk.
    pub chunk_size_bytes: u64,
    /// Size of an append-only segment on an HDD.
    pub segment_size_bytes: u64,
    /// io_uring queue depth per HDD.
    pub data_queue_depth: u32,
    /// io_uring queue depth per SSD.
    pub meta_queue_depth: u32,
    /// Size of the metadata write-ahead log ring on the SSD.
    pub wal_size_bytes: u64,
    /// Chunk buffers allocated at most (memory = this x chunk size).
    pub max_chunk_buffers: u32,
    /// Chunk writes (or read-aheads) one put (or get) keeps in flight.
    pub chunks_in_flight_per_stream: u32,
    /// Threads for blocking engine work behind the S3 server.
    pub writer_threads: u32,
    /// Most threads the S3 server runs engine calls that wait on devices on (reads not in
    /// the block cache, chunk writes, commits): its blocking pool's size.
    pub blocking_threads: u32,
    /// Bytes of the SSD file to preallocate (WAL region) so durable appends do not grow it.
    pub meta_preallocate_bytes: u64,
    /// The metadata LSM's memtable, table and level sizes.
    pub lsm: crate::meta::LsmConfig,
    /// Objects of at most this many bytes (and more than 0) are stored in the metadata index on
    /// the SSDs and never touch an HDD, while the index's tables fill less than half of the
    /// SSD's table area (0: never).
    pub inline_threshold_bytes: u64,
    /// RAM allowed for the block indexes and bloom filters of the metadata tables.
    pub index_memory_bytes: u64,
    /// Failed reads after which a data drive is failed at run time (it leaves placement).
    pub drive_read_errors_to_fail: u32,
    /// A data drive read slower than this (ms, from submission) counts as a failed read.
    pub drive_timeout_ms: u64,
    /// The failure group of each data slot (the pools' `failure_groups`; a slot in none is
    /// its own group). Group IDs are unique across pools.
    pub failure_groups: crate::placement::FailureGroups,
    /// Protection of a bucket created without choosing one (the first pool's, as built).
    pub default_protection: Protection,
    /// An erasure-coded bucket's object smaller than this (and than a chunk) is stored as
    /// M + 1 copies instead of a stripe: as many drive failures survived, one read per GET.
    pub replicate_below_bytes: u64,
    /// Bytes of shard and copy reads a repair batch (rebuild or scrub) keeps in flight at
    /// once, issued per drive in on-disk order; also its buffer memory.
    pub repair_batch_bytes: u64,
    /// Rate (bytes read + written per second) a rebuild keeps to while clients are active;
    /// with no client request for a moment it runs unpaced.
    pub rebuild_paced_bytes_per_s: u64,
    /// Rate (bytes read per second) of a scheduled scrub; 0: no scheduled scrub (an admin
    /// request still starts one, which runs at the rebuild's pace).
    pub scrub_bytes_per_s: u64,
    /// A scheduled scrub starts this long after the last one started (ms); 0: never.
    pub scrub_period_ms: u64,
    /// Name of the pool (the first of the profile).
    pub pool_name: String,
    /// Free segments each HDD keeps for garbage collection and rebuild: client writes never
    /// take them.
    pub space_reserve_segments: u32,
    /// Garbage collection cleans (copies live needles out of mostly dead segments) while the
    /// pool's free space is below this percentage of its raw space; fully dead segments are
    /// freed whenever found.
    pub gc_free_target_pct: u32,
    /// Rate (bytes read + written per second) garbage collection keeps to while clients are
    /// active and free space is above the reserve's double; otherwise unpaced.
    pub gc_bytes_per_s: u64,
    /// Milliseconds between the garbage collector's looks at the pool.
    pub gc_interval_ms: u64,
    /// Incomplete multipart uploads older than this (ms) are aborted and their parts freed.
    pub upload_expiry_ms: u64,
    /// Requests the S3 server handles at once; beyond, it answers `503 SlowDown`.
    pub max_requests: u32,
    /// Data streams at once (request bodies written to the HDDs, objects read from them), each
    /// holding up to `chunks_in_flight_per_stream` chunk buffers.
    pub max_data_streams: u32,
    /// Memory for request and response body frames held by the S3 server (bodies in flight,
    /// GET frames not yet sent); a body waits for room, so this bounds them all.
    pub request_buffer_bytes: u64,
    /// A client that moves no byte of a body for this long is cut (ms).
    pub request_idle_timeout_ms: u64,
    /// The least a client must move per second (a body it sends, a GET it reads) once the
    /// idle timeout's grace has passed; below it, the request is cut with RequestTimeout.
    pub min_transfer_rate_bytes_per_s: u64,
    /// Resident memory the process stays within: memtables, block cache, chunk buffers,
    /// indexes and filters, request buffers, and a fixed allowance for code, stacks and
    /// connections.
    pub memory_budget_bytes: u64,
    /// Why each value is what it is, for `hoard profile show`.
    pub explanations: Vec<(String, String, String)>,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Segments an HDD holds at the least (derived or set): enough that cost-benefit collection has
/// victims to choose between, and that the reserve (at least [`MIN_RESERVE_SEGMENTS`], at most
/// an eighth) fits beside the segments clients fill.
pub const MIN_SEGMENTS_PER_HDD: u64 = 32;
/// Segments the derived layout aims for per HDD: a small drive gets smaller segments (and
/// chunks) rather than fewer of them.
const TARGET_SEGMENTS_PER_HDD: u64 = 64;
/// Free segments an HDD keeps back at the least: one for the relocation head garbage
/// collection and rebuild fill, one more so that a victim's live needles always have room
/// while the head is partly used.
pub const MIN_RESERVE_SEGMENTS: u32 = 2;
/// The smallest chunk (bytes) the layout derives, for drives too small for a 1 MiB chunk.
const MIN_CHUNK_BYTES: u64 = 64 * 1024;
/// Largest inline threshold a profile may set: a put buffers this much before it knows where
/// the object goes.
pub const MAX_INLINE_BYTES: u64 = MIB;

impl Profile {
    /// Reads and validates a profile file.
    ///
    /// Errors: [`Error::Config`] naming the file and the field at fault.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read profile {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("profile {}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses and validates profile text.
    pub fn parse(text: &str) -> Result<Profile> {
        let profile: Profile = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.name.is_empty() || self.name.len() > 32 {
            return bad(format!("name {:?} must be 1 to 32 bytes", self.name));
        }
        if self.chassis.cpu_cores == 0 {
            return bad("chassis.cpu_cores must be at least 1".into());
        }
        if self.chassis.memory_bytes < 256 * MIB {
            return bad(format!(
                "chassis.memory_bytes {} is under the 256 MiB minimum",
                self.chassis.memory_bytes
            ));
        }
        for (class, d) in [("ssd", &self.ssd), ("hdd", &self.hdd)] {
            if d.count == 0 {
                return bad(format!("{class}.count must be at least 1"));
            }
            if d.size_bytes < 64 * MIB {
                return bad(format!(
                    "{class}.size_bytes {} is under the 64 MiB minimum",
                    d.size_bytes
                ));
            }
            if d.seq_mb_s == 0 || d.random_read_iops == 0 || d.queue_depth == 0 {
                return bad(format!(
                    "{class}: seq_mb_s, random_read_iops and queue_depth must be positive"
                ));
            }
        }
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return bad(format!(
                "name {:?} may hold only a-z, 0-9, '-' and '.'",
                self.name
            ));
        }
        if let Some(inline) = self.engine.inline_threshold_bytes {
            if inline > MAX_INLINE_BYTES {
                return bad(format!(
                    "engine.inline_threshold_bytes {inline} is over the {MAX_INLINE_BYTES}-byte maximum (larger objects belong on the HDDs)"
                ));
            }
        }
        for (class, d) in [("ssd", &self.ssd), ("hdd", &self.hdd)] {
            if d.size_tolerance_pct > 50 {
                return bad(format!(
                    "{class}.size_tolerance_pct {} is over 50",
                    d.size_tolerance_pct
                ));
            }
        }
        let mut pooled = vec![None::<&str>; self.hdd.count as usize];
        for pool in &self.pool {
            if pool.hdd_slots.is_empty() {
                return bad(format!("pool {} has no hdd_slots", pool.name));
            }
            for &slot in &pool.hdd_slots {
                let Some(owner) = pooled.get_mut(slot as usize) else {
                    return bad(format!(
                        "pool {} names hdd slot {slot}, but hdd.count is {}",
                        pool.name, self.hdd.count
                    ));
                };
                if let Some(other) = owner.replace(&pool.name) {
                    return bad(format!(
                        "hdd slot {slot} is in both pool {other} and pool {}",
                        pool.name
                    ));
                }
            }
            let protection = pool
                .protection()
                .map_err(|e| Error::Config(format!("pool {}: {e}", pool.name)))?;
            if !pool.failure_groups.is_empty() {
                let mut grouped: Vec<u32> = pool.failure_groups.concat();
                grouped.sort_unstable();
                let mut slots = pool.hdd_slots.clone();
                slots.sort_unstable();
                if grouped != slots {
                    return bad(format!(
                        "pool {}: failure_groups must hold each of its hdd_slots exactly once",
                        pool.name
                    ));
                }
                let groups = crate::placement::FailureGroups {
                    group_of: pool_group_of(pool, self.hdd.count),
                };
                let usable: Vec<bool> = (0..self.hdd.count)
                    .map(|s| pool.hdd_slots.contains(&s))
                    .collect();
                let fits = groups.capacity(&usable, protection.max_per_failure_group());
                if fits < protection.width() {
                    return bad(format!(
                        "pool {}: {protection} puts at most {} pieces in one failure group, so its {} groups hold only {fits} of a stripe's {}",
                        pool.name,
                        protection.max_per_failure_group(),
                        pool.failure_groups.len(),
                        protection.width()
                    ));
                }
            }
            if protection.width() > pool.hdd_slots.len() as u32 {
                return bad(format!(
                    "pool {}: {protection} spans {} HDDs but the pool has {}",
                    pool.name,
                    protection.width(),
                    pool.hdd_slots.len()
                ));
            }
        }
        if let Some(nic) = &self.nic {
            if nic.count == 0 || nic.speed_gbps == 0 {
                return bad("nic.count and nic.speed_gbps must be positive".into());
            }
        }
        if let Some(w) = &self.watchdog {
            if !(5..=600).contains(&w.timeout_s) {
                return bad(format!(
                    "watchdog.timeout_s = {} must be 5 to 600 s",
                    w.timeout_s
                ));
            }
        }
        // Module names as the kernel writes them (`modinfo -F name`): letters (`iTCO_wdt`),
        // digits and underscores.
        for driver in self
            .controller
            .iter()
            .map(|c| &c.driver)
            .chain(self.nic.iter().filter_map(|n| n.driver.as_ref()))
            .chain(self.watchdog.iter().map(|w| &w.driver))
        {
            let valid = !driver.is_empty()
                && driver
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return bad(format!(
                    "driver {driver:?} is not a kernel module name (letters, digits, _)"
                ));
            }
        }
        if self.files.is_none() {
            for (role, class) in [(ControllerRole::Hdd, "hdd"), (ControllerRole::Ssd, "ssd")] {
                if !self.controller.is_empty() && !self.controller.iter().any(|c| c.carries == role)
                {
                    return bad(format!(
                        "no [[controller]] carries the {class} drives (carries = \"{class}\"); each drive class needs one"
                    ));
                }
            }
        }
        if let Some(files) = &self.files {
            if files.ssd.len() != self.ssd.count as usize
                || files.hdd.len() != self.hdd.count as usize
            {
                return bad(format!(
                    "files lists {} ssd and {} hdd files, but ssd.count is {} and hdd.count is {}",
                    files.ssd.len(),
                    files.hdd.len(),
                    self.ssd.count,
                    self.hdd.count
                ));
            }
        }
        if let Some(segment) = self.engine.segment_size_bytes {
            let segments = self.hdd.size_bytes.saturating_sub(RESERVED_BYTES) / segment.max(1);
            if segments < MIN_SEGMENTS_PER_HDD {
                return bad(format!(
                    "engine.segment_size_bytes {segment} gives an HDD of {} only {segments} segments; at least {MIN_SEGMENTS_PER_HDD} are needed for garbage collection to keep room (leave it unset to derive one)",
                    fmt_bytes(self.hdd.size_bytes)
                ));
            }
        }
        if let Some(reserve) = self.engine.space_reserve_segments {
            if reserve < MIN_RESERVE_SEGMENTS {
                return bad(format!(
                    "engine.space_reserve_segments {reserve} is under {MIN_RESERVE_SEGMENTS}: garbage collection copies before it frees, so it needs a free segment to copy into"
                ));
            }
        }
        if let Some(c) = self.engine.chunk_size_bytes {
            if !(MIN_CHUNK_BYTES..=64 * MIB).contains(&c) || !c.is_multiple_of(4096) {
                return bad(format!(
                    "engine.chunk_size_bytes {c} must be a multiple of 4096 in 64 KiB..=64 MiB"
                ));
            }
        }
        Ok(())
    }

    /// The kernel modules the machine's controllers and NICs need, sorted, without repeats:
    /// what the firmware image packs for this profile (`hoard profile drivers`).
    pub fn drivers(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .controller
            .iter()
            .map(|c| c.driver.clone())
            .chain(self.nic.iter().filter_map(|n| n.driver.clone()))
            .chain(self.watchdog.iter().map(|w| w.driver.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Device file paths under `data_dir` (file-backed profiles only): (ssd paths, hdd paths).
    pub fn device_files(&self, data_dir: &Path) -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
        let files = self.files.as_ref()?;
        let join = |v: &Vec<String>| v.iter().map(|f| data_dir.join(f)).collect();
        Some((join(&files.ssd), join(&files.hdd)))
    }

    /// Derives the engine configuration; see each field of [`EngineConfig`].
    pub fn derive(&self) -> EngineConfig {
        let mut why = Vec::new();
        let mut explain =
            |name: &str, value: String, reason: String| why.push((name.to_string(), value, reason));

        let drivers = self.drivers();
        if !drivers.is_empty() {
            let by_role = |role: ControllerRole| {
                self.controller
                    .iter()
                    .filter(|c| c.carries == role)
                    .map(|c| c.driver.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            explain(
                "drivers",
                drivers.join(" "),
                format!(
                    "kernel modules the firmware image packs for this machine (with their dependencies): HDDs on {}, SSDs on {}, boot device on {}, NICs on {}, watchdog {}",
                    or_none(&by_role(ControllerRole::Hdd)),
                    or_none(&by_role(ControllerRole::Ssd)),
                    or_none(&by_role(ControllerRole::Boot)),
                    or_none(self.nic.as_ref().and_then(|n| n.driver.as_deref()).unwrap_or("")),
                    or_none(self.watchdog.as_ref().map_or("", |w| w.driver.as_str()))
                ),
            );
        }

        let hdd = &self.hdd;
        let access_time_s = 1.0 / hdd.random_read_iops as f64;
        let seq_bytes_s = hdd.seq_mb_s as f64 * 1e6;
        // The largest segment that still gives an HDD its target count of segments.
        let usable_bytes = hdd.size_bytes.saturating_sub(RESERVED_BYTES);
        let segment_cap =
            prev_pow2(usable_bytes / TARGET_SEGMENTS_PER_HDD).max(4 * MIN_CHUNK_BYTES);
        // A chunk read costs one access plus its transfer; 4 accesses' worth of transfer keeps
        // the access overhead near 20% of the read time.
        let ideal = (seq_bytes_s * access_time_s * 4.0) as u64;
        let chunk = self.engine.chunk_size_bytes.unwrap_or_else(|| {
            let by_segment = self.engine.segment_size_bytes.unwrap_or(segment_cap) / 4;
            ideal
                .next_power_of_two()
                .clamp(MIB, 16 * MIB)
                .min(by_segment)
                .max(MIN_CHUNK_BYTES)
        });
        explain(
            "chunk_size_bytes",
            fmt_bytes(chunk),
            match self.engine.chunk_size_bytes {
                Some(_) => "set in [engine]".into(),
                None => format!(
                    "HDD access {:.2} ms x {} MB/s x 4 = {} -> power of two in 1..16 MiB (at most a quarter of a segment): one access per chunk costs ~20% of its read time",
                    access_time_s * 1e3,
                    hdd.seq_mb_s,
                    fmt_bytes(ideal)
                ),
            },
        );

        let segment = self
            .engine
            .segment_size_bytes
            .unwrap_or_else(|| (chunk * 128).min(segment_cap).max(chunk * 4));
        let segments_per_hdd = usable_bytes / segment;
        explain(
            "segment_size_bytes",
            format!("{} ({segments_per_hdd} per HDD)", fmt_bytes(segment)),
            match self.engine.segment_size_bytes {
                Some(_) => format!("set in [engine]; at least {MIN_SEGMENTS_PER_HDD} per HDD"),
                None => format!(
                    "128 chunks, at most 1/{TARGET_SEGMENTS_PER_HDD} of an HDD (a small drive gets smaller segments, never fewer than {MIN_SEGMENTS_PER_HDD}): big enough that a segment switch (one metadata commit) is rare, small enough for garbage collection to choose mostly dead victims among many"
                ),
            },
        );
        // Validation guarantees the count; the derivation the 4 chunks per segment (unless
        // both sizes were set).
        assert!(
            segments_per_hdd >= MIN_SEGMENTS_PER_HDD,
            "{segments_per_hdd} segments per HDD"
        );
        debug_assert!(
            segment >= 4 * chunk
                || (self.engine.chunk_size_bytes.is_some()
                    && self.engine.segment_size_bytes.is_some())
        );

        let data_qd = hdd.queue_depth.clamp(1, 256);
        explain(
            "data_queue_depth",
            data_qd.to_string(),
            format!("the HDDs' command queue depth ({})", hdd.queue_depth),
        );
        let meta_qd = self.ssd.queue_depth.clamp(1, 256);
        explain(
            "meta_queue_depth",
            meta_qd.to_string(),
            format!("the SSDs' command queue depth ({})", self.ssd.queue_depth),
        );

        let wal = self
            .engine
            .wal_size_bytes
            .unwrap_or_else(|| prev_pow2(self.ssd.size_bytes / 16).clamp(16 * MIB, GIB));
        explain(
            "wal_size_bytes",
            fmt_bytes(wal),
            "1/16 of an SSD, 16 MiB..1 GiB: a checkpoint runs when half is used, so crash recovery replays at most half of it".into(),
        );

        let io_budget = self.chassis.memory_bytes / 4;
        let by_budget = (io_budget / chunk).max(4);
        let by_devices = data_qd as u64 * hdd.count as u64;
        let buffers = by_budget.min(by_devices).min(u32::MAX as u64) as u32;
        explain(
            "max_chunk_buffers",
            format!("{buffers} ({})", fmt_bytes(buffers as u64 * chunk)),
            format!(
                "min(1/4 of memory / chunk = {by_budget}, queue depth x HDDs = {by_devices}): enough to keep every HDD's queue full, never more than a quarter of RAM"
            ),
        );

        let per_stream = hdd.count.clamp(2, 8).min(buffers / 2).max(1);
        explain(
            "chunks_in_flight_per_stream",
            per_stream.to_string(),
            "one per HDD up to 8: a single large put or get keeps several drives busy at once; memory per stream is this x chunk size".into(),
        );

        let writers = (self.chassis.cpu_cores * 2).clamp(4, 256);
        explain(
            "writer_threads",
            writers.to_string(),
            "2 per core (at least 4): hashing is CPU-bound, device waits are not, so a little oversubscription keeps cores busy".into(),
        );
        let blocking_threads = (writers * 16).max(64);
        explain(
            "blocking_threads",
            blocking_threads.to_string(),
            "writer threads x 16 (at least 64): engine calls that wait on a device (a read not in the block cache, a chunk write, a commit) each hold a thread of the S3 server's blocking pool while they wait, so many wait at once while the writer threads' worth of them compute; each counts in the memory budget".into(),
        );

        // The front door: admission and body memory, so slow or hostile clients cannot take
        // the threads, buffers or memory that others need.
        let streams = (buffers / per_stream / 2).max(1);
        explain(
            "max_data_streams",
            streams.to_string(),
            format!(
                "chunk buffers / chunks in flight per stream / 2 = {buffers} / {per_stream} / 2: concurrent bodies to and objects from the HDDs use at most half the chunk buffers, so other clients always find some; a stream shorter than {per_stream} chunks counts as the chunks it needs (at least one), so up to {} one-chunk objects stream at once; beyond, a request waits up to 2 s, then gets 503 SlowDown",
                streams * per_stream
            ),
        );
        let requests = (writers * 64).max(streams * 2);
        explain(
            "max_requests",
            requests.to_string(),
            "64 per writer thread: requests handled at once (most are metadata-only and short); beyond, 503 SlowDown at once".into(),
        );
        // A data stream holds up to 3 MiB of frames: an upload 3 frames of 256 KiB in its
        // channel plus a 1 MiB batch being decoded and one being written; a GET 2 frames of
        // 1 MiB.
        let per_stream_bytes = 3 * MIB;
        let request_buffers = prev_pow2(self.chassis.memory_bytes / 64)
            .max(streams as u64 * per_stream_bytes)
            .clamp(16 * MIB, 4 * GIB);
        explain(
            "request_buffer_bytes",
            fmt_bytes(request_buffers),
            format!(
                "max(1/64 of memory, data streams x 3 MiB = {}): every body frame the S3 server holds (uploads in flight, GET frames not yet sent) draws from it, so memory follows bytes received and never what clients declare; a body that finds no room waits (up to the idle timeout, then 503 SlowDown)",
                fmt_bytes(streams as u64 * per_stream_bytes)
            ),
        );
        let idle_timeout_s = self.engine.request_idle_timeout_s.unwrap_or(20);
        explain(
            "request_idle_timeout_ms",
            format!("{} s", idle_timeout_s),
            match self.engine.request_idle_timeout_s {
                Some(_) => "set in [engine]".into(),
                None => "a client that moves no byte of a body for 20 s is stalled (a 256 KiB frame takes 2 s even at 1 Mbit/s): it is cut with RequestTimeout and its buffers freed".into(),
            },
        );

        // A data stream is one of `streams` shares of the front door's bandwidth (the NICs,
        // or 10 Gbit/s where the profile names none); a request holding one must move at
        // least a ten-thousandth of its even share, and never less than 4 KiB/s (a slow link
        // of a few hundred kbit/s is never cut; a slowloris client sending a byte now and
        // then is, once the grace has passed).
        let front_door_bytes_s = self.nic.as_ref().map_or(10e9 / 8.0, |n| {
            n.count as f64 * n.speed_gbps as f64 * 1e9 / 8.0
        });
        let min_rate = ((front_door_bytes_s / streams as f64 / 10_000.0) as u64).clamp(4096, MIB);
        explain(
            "min_transfer_rate_bytes_per_s",
            format!("{}/s", fmt_bytes(min_rate)),
            format!(
                "front-door bandwidth / data streams / 10000 = {}/s / {streams} / 10000 (at least 4 KiB/s): after the first {idle_timeout_s} s (the idle timeout), a body sent or a GET read slower than this, counted over the time spent waiting for the client, is cut with RequestTimeout, so a slow client holds its request, stream and buffers for a bounded time",
                fmt_bytes(front_door_bytes_s as u64)
            ),
        );

        let io_backend = self.engine.io_backend.unwrap_or(IoBackend::Auto);
        explain(
            "io_backend",
            format!("{io_backend:?}").to_lowercase(),
            "io_uring when the kernel allows it, pread/pwrite otherwise".into(),
        );

        for (class, d, rotational) in [("ssd", &self.ssd, 0), ("hdd", &self.hdd, 1)] {
            let (lo, hi) = d.size_range_bytes();
            explain(
                &format!("{class}_slots"),
                format!("{} x {}", d.count, fmt_bytes(d.size_bytes)),
                format!(
                    "a discovered drive fills a {class} slot when rotational={rotational} and its size is {}..{} (±{}%); drives holding this store's superblock keep their slot",
                    fmt_bytes(lo),
                    fmt_bytes(hi),
                    d.size_tolerance_pct
                ),
            );
        }
        let pools: Vec<PoolSpec> = if self.pool.is_empty() {
            vec![PoolSpec {
                name: "default".into(),
                hdd_slots: (0..hdd.count).collect(),
                protection: default_protection(),
                failure_groups: Vec::new(),
            }]
        } else {
            self.pool.clone()
        };
        let read_errors_to_fail = 3;
        explain(
            "drive_read_errors_to_fail",
            read_errors_to_fail.to_string(),
            "reads failing with an I/O error (after the drive's own retries) before a data drive is failed at run time: it takes no new chunks at once and its chunks are served from other copies or parity; one error may be a bad sector, three in a row of a drive's life mean it is going".into(),
        );
        // A read waits behind at most a full queue of chunk reads, each an access plus a
        // transfer; four times that, and at least the 30 s a Linux SCSI command gets before
        // the kernel itself gives up: a loaded but healthy drive never reaches it.
        let queue_ms = data_qd as f64 * (access_time_s + chunk as f64 / seq_bytes_s) * 1e3;
        let drive_timeout_ms = ((queue_ms * 4.0) as u64).max(30_000);
        explain(
            "drive_timeout_ms",
            format!("{:.1} s", drive_timeout_ms as f64 / 1e3),
            format!(
                "queue depth {data_qd} x (access {:.2} ms + chunk transfer {:.1} ms) x 4 = {:.0} ms, at least 30 s (the kernel's own SCSI command timeout): a data drive read slower than this counts as a failed read (drive_read_errors_to_fail of them fail the drive), so a drive that hangs or retries for long is treated like one that errors, while a drive slow only because the whole box is busy is not",
                access_time_s * 1e3,
                chunk as f64 / seq_bytes_s * 1e3,
                queue_ms * 4.0
            ),
        );
        let mut default_protection = Protection::Replicas(1);
        // Slots of no pool, and pools without groups: every slot its own group.
        let mut failure_groups = crate::placement::FailureGroups::singletons(hdd.count as usize);
        for pool in &pools {
            for (slot, group) in pool_group_of(pool, hdd.count).into_iter().enumerate() {
                if pool.hdd_slots.contains(&(slot as u32)) {
                    failure_groups.group_of[slot] = group;
                }
            }
            if !pool.failure_groups.is_empty() {
                let sizes: Vec<String> = pool
                    .failure_groups
                    .iter()
                    .map(|g| g.len().to_string())
                    .collect();
                explain(
                    &format!("pool {} failure groups", pool.name),
                    format!("{} groups of {} HDDs", pool.failure_groups.len(), sizes.join("/")),
                    "bays that can fail together (set in the profile): a stripe puts at most M shards (N - 1 copies) in one group, so losing a whole group loses no object".into(),
                );
            }
        }
        for (i, pool) in pools.iter().enumerate() {
            let protection = pool.protection().unwrap_or(Protection::Replicas(1));
            if i == 0 {
                default_protection = protection;
            }
            explain(
                &format!("pool {}", pool.name),
                format!("{} HDDs, {protection}", pool.hdd_slots.len()),
                format!(
                    "default protection of its buckets: every chunk {} on {} distinct HDDs, so it survives {} drive failure(s) and costs {:.2}x its size; a bucket may choose its own at creation (x-hoard-protection). A write needs {} of the pool's {} HDDs with room beyond their reserve: garbage collection cleans each drive toward its own target and moves a victim's needles within that drive, so no drive stays full while the pool has reclaimable space",
                    match protection {
                        Protection::Replicas(_) => "copied",
                        Protection::ErasureCoded { .. } => "striped (Reed–Solomon)",
                    },
                    protection.width(),
                    protection.tolerates(),
                    match protection {
                        Protection::Replicas(n) => n as f64,
                        Protection::ErasureCoded { data, parity } =>
                            (data + parity) as f64 / data as f64,
                    },
                    protection.width(),
                    pool.hdd_slots.len()
                ),
            );
        }
        if let Some(nic) = &self.nic {
            let nic_bytes_s = nic.count as f64 * nic.speed_gbps as f64 * 1e9 / 8.0 * 0.92;
            let hdd_bytes_s = hdd.count as f64 * seq_bytes_s;
            explain(
                "network_bound",
                format!("{:.2} GB/s", nic_bytes_s / 1e9),
                format!(
                    "{} x {} Gbit/s at ~92% TCP payload, against {:.2} GB/s of HDD streaming: {} bounds large-object throughput",
                    nic.count,
                    nic.speed_gbps,
                    hdd_bytes_s / 1e9,
                    if nic_bytes_s < hdd_bytes_s { "the network" } else { "the HDDs" }
                ),
            );
            if let (Some(put), Some(get)) = (
                self.chassis.put_cpu_seconds_per_gib,
                self.chassis.get_cpu_seconds_per_gib,
            ) {
                let gib_s = nic_bytes_s.min(hdd_bytes_s) / GIB as f64;
                explain(
                    "cores_for_network",
                    format!(
                        "{:.1} / {:.1} of {}",
                        gib_s * put,
                        gib_s * get,
                        self.chassis.cpu_cores
                    ),
                    format!(
                        "cores kept busy by PUTs / GETs streaming at the bound: {:.2} GB/s x {put} / {get} server CPU seconds per GiB of 64 MiB objects, measured on this profile's shape (cargo bench --bench s3_cpu)",
                        gib_s * GIB as f64 / 1e9
                    ),
                );
            }
        }

        let memtable = prev_pow2(self.chassis.memory_bytes / 32).clamp(8 * MIB, 256 * MIB);
        let memtable = memtable.min(wal / 2);
        explain(
            "memtable_budget_bytes",
            fmt_bytes(memtable),
            "1/32 of memory (8..256 MiB, at most half the WAL): RAM for the newest metadata; a full memtable is flushed to one SSTable while writes go on".into(),
        );
        let l1 = memtable * 4;
        explain(
            "lsm_levels",
            format!("L0 x4, L1 {}, x10", fmt_bytes(l1)),
            "leveled compaction: level 0 (overlapping flushes) merges into level 1 at 4 tables; each deeper level is 10x larger, so space amplification stays near 1.1 at a write amplification of about 10 per level".into(),
        );
        let block_cache = prev_pow2(self.chassis.memory_bytes / 8).clamp(16 * MIB, 32 * GIB);
        explain(
            "block_cache_bytes",
            fmt_bytes(block_cache),
            "1/8 of memory (16 MiB..32 GiB): decoded metadata blocks, so hot lookups and listings do not read the SSD; block indexes and bloom filters (~3.5 B per key measured) come on top".into(),
        );
        let compaction_rate = self.ssd.seq_mb_s as u64 * 1_000_000 / 4;
        explain(
            "compaction_bytes_per_s",
            format!("{} MB/s", compaction_rate / 1_000_000),
            format!(
                "a quarter of one SSD's {} MB/s: commits, flushes and reads keep the rest; compaction merges without blocking flushes, and runs unthrottled while level 0 holds over twice its trigger (writes outrunning it)",
                self.ssd.seq_mb_s
            ),
        );
        explain(
            "bloom_bits_per_key",
            "10".into(),
            "~1% false positives: a lookup of an absent key reads a table block 1 time in 100"
                .into(),
        );

        // An HDD read of a small object is one access (~1/IOPS) plus a short transfer; below
        // 1/64 of an access's worth of transfer, more than 98% of the read is the access.
        let inline_ideal = (seq_bytes_s * access_time_s / 64.0) as u64;
        let inline = self.engine.inline_threshold_bytes.unwrap_or_else(|| {
            prev_pow2(inline_ideal)
                .clamp(4 << 10, 64 << 10)
                .min(chunk)
                .min(memtable / 64)
        });
        explain(
            "inline_threshold_bytes",
            fmt_bytes(inline),
            match self.engine.inline_threshold_bytes {
                Some(_) => "set in [engine]".into(),
                None => format!(
                    "objects up to this size live in the metadata index on the SSDs (mirrored like it) and never touch an HDD: HDD access {:.2} ms x {} MB/s / 64 = {} -> power of two in 4..64 KiB (at most 1/64 of the memtable), where an HDD read would be over 98% access time; only while the index's tables fill under half of the SSD's table area, so small objects can never crowd out the index",
                    access_time_s * 1e3,
                    hdd.seq_mb_s,
                    fmt_bytes(inline_ideal)
                ),
            },
        );

        // Hybrid protection by size: striping an object whose whole read is a fraction of an
        // access multiplies its IOPS by K and saves little space.
        let replicate_ideal = (seq_bytes_s * access_time_s / 4.0) as u64;
        let replicate_below = prev_pow2(replicate_ideal).clamp(64 << 10, chunk);
        explain(
            "replicate_below_bytes",
            fmt_bytes(replicate_below),
            format!(
                "HDD access {:.2} ms x {} MB/s / 4 = {} -> power of two in 64 KiB..chunk: an object of an erasure-coded (ec:K+M) bucket smaller than this (and past the inline threshold) is stored as M + 1 copies, surviving as many lost drives; its whole read is under a quarter of an access, so K shard reads would cost K accesses for one object's bytes",
                access_time_s * 1e3,
                hdd.seq_mb_s,
                fmt_bytes(replicate_ideal)
            ),
        );
        // Repair: rebuild and scrub. One chunk's worth of reads per HDD per batch keeps every
        // source drive streaming; bounded by 1/16 of memory.
        let repair_batch = (8 * chunk * hdd.count as u64)
            .min(self.chassis.memory_bytes / 16)
            .max(4 * chunk);
        explain(
            "repair_batch_bytes",
            fmt_bytes(repair_batch),
            "8 chunks per HDD (at least 4 chunks, at most 1/16 of memory): a rebuild or scrub batch reads this much at once, sorted per source drive by offset, so every drive streams in on-disk order rather than seeking object by object, and one metadata commit covers hundreds of repairs".into(),
        );
        let pool_bytes_s = hdd.count as f64 * seq_bytes_s;
        let paced = (pool_bytes_s / 4.0) as u64;
        // What an idle rebuild keeps of each source drive's streaming bandwidth, measured on
        // drives with a bandwidth each (`cargo bench --bench rebuild_spindles`: the busiest
        // source drive read 0.67 to 0.80 of its limit; the closing note of issue 9).
        const REPAIR_EFFICIENCY: f64 = 0.74;
        let survivors_bytes_s = hdd.count.saturating_sub(1).max(1) as f64 * seq_bytes_s;
        let drive_rebuild_h = |rate: f64| {
            // A lost drive's bytes are rewritten once and read K times over (8+2 worst case
            // of the profiles): (1 + K) x its size at `rate`.
            hdd.size_bytes as f64 * 9.0 / rate / 3600.0
        };
        explain(
            "rebuild_paced_bytes_per_s",
            format!("{} MB/s", paced / 1_000_000),
            format!(
                "a quarter of the pool's streaming bandwidth ({} HDDs x {} MB/s) while clients are active, so their requests keep three quarters; unpaced when no request came for 200 ms. Every survivor reads and writes its share (read 8 shards + write 1 per lost shard), so one full {} drive is re-protected in ~{:.1} h paced, ~{:.1} h idle at the {:.0}% of each survivor's streaming bandwidth an idle rebuild was measured to keep busy",
                hdd.count,
                hdd.seq_mb_s,
                fmt_bytes(hdd.size_bytes),
                drive_rebuild_h(paced as f64),
                drive_rebuild_h(survivors_bytes_s * REPAIR_EFFICIENCY),
                REPAIR_EFFICIENCY * 100.0
            ),
        );
        let scrub_days = self.engine.scrub_period_days.unwrap_or(30);
        let scrub_rate = match scrub_days {
            0 => 0,
            days => (hdd.count as u64 * hdd.size_bytes / (days * 86_400)).max(1),
        };
        explain(
            "scrub_bytes_per_s",
            if scrub_rate >= 1_000_000 {
                format!("{:.1} MB/s", scrub_rate as f64 / 1e6)
            } else {
                format!("{:.1} kB/s", scrub_rate as f64 / 1e3)
            },
            format!(
                "every HDD byte read and verified once per {scrub_days} days ({} HDDs x {}): a latent sector error is found and repaired from redundancy long before a second failure could make it fatal; an admin request starts a pass at once",
                hdd.count,
                fmt_bytes(hdd.size_bytes)
            ),
        );

        // Space: the reserve and garbage collection.
        let reserve_segments = self.engine.space_reserve_segments.unwrap_or_else(|| {
            ((segments_per_hdd / 50)
                .clamp(MIN_RESERVE_SEGMENTS as u64, 64)
                .min(segments_per_hdd / 8)) as u32
        });
        explain(
            "space_reserve_segments",
            format!("{reserve_segments} per HDD ({})", fmt_bytes(reserve_segments as u64 * segment)),
            format!(
                "2% of an HDD's {segments_per_hdd} segments, {MIN_RESERVE_SEGMENTS} to 64 (at most an eighth): client writes never take them, so garbage collection (which copies a victim's live needles into one of them before it frees the victim) and rebuild always have room; a pool whose drives are down to it stalls a write up to 10 s for the collector, then refuses PUT, UploadPart and CreateMultipartUpload with 507 InsufficientStorage while GET, LIST and DELETE go on"
            ),
        );
        let gc_target = self.engine.gc_free_target_pct.unwrap_or(20).clamp(1, 90);
        explain(
            "gc_free_target_pct",
            format!("{gc_target}%"),
            "garbage collection copies the live needles out of the segments that gain most (Rosenblum and Ousterhout's cost-benefit: free space x age / copy cost) while the pool's free space is below this share; above it only fully dead segments are freed, which costs no I/O, so a pool with room never pays write amplification".into(),
        );
        let gc_rate = (pool_bytes_s / 8.0) as u64;
        explain(
            "gc_bytes_per_s",
            format!("{} MB/s", gc_rate / 1_000_000),
            "an eighth of the pool's streaming bandwidth while clients are active (unpaced when idle, or when free space is under twice the reserve): foreground requests never wait for garbage collection, they only share the drives with it".into(),
        );
        let gc_interval_ms = self.engine.gc_interval_ms.unwrap_or(1000);
        let upload_expiry_s = self.engine.upload_expiry_s.unwrap_or(7 * 86_400);
        explain(
            "upload_expiry",
            format!("{:.1} days", upload_expiry_s as f64 / 86_400.0),
            "an incomplete multipart upload older than this is aborted and its parts' space reclaimed (S3's lifecycle rule AbortIncompleteMultipartUpload, applied pool-wide)".into(),
        );

        let index_memory = prev_pow2(self.chassis.memory_bytes / 16);
        explain(
            "index_memory_bytes",
            fmt_bytes(index_memory),
            format!(
                "1/16 of memory: the block indexes and bloom filters of every table stay in RAM (~3.5 B per key measured), enough for ~{:.1e} objects",
                index_memory as f64 / 3.5
            ),
        );
        // Per thread: its stack as far as it is touched, and the allocator's cache of the
        // blocks it freed (measured ~2-4 MiB per blocking thread under rclone's mixed loads).
        let overhead = 64 * MIB + (writers + blocking_threads) as u64 * 2 * MIB;
        // A stripe read ahead holds its data shards in buffers of their own beside the chunk
        // buffer it is assembled into: up to one chunk more per chunk in flight.
        let shard_buffers = streams as u64 * per_stream as u64 * (chunk + 4096);
        let memory_budget = 2 * memtable
            + block_cache
            + buffers as u64 * (chunk + 4096)
            + shard_buffers
            + index_memory
            + request_buffers
            + 2 * repair_batch
            + overhead;
        explain(
            "memory_budget_bytes",
            fmt_bytes(memory_budget),
            format!(
                "what the process may hold resident: 2 memtables (one filling, one flushing) {} + block cache {} + chunk buffers {} + stripe shard buffers {} + indexes and filters {} + request buffers {} + repair batch (read and rebuilt) {} + 64 MiB for code and connections and 2 MiB per writer and blocking thread ({}) for stacks and the allocator's per-thread cache; reported with the resident size by GET /_hoard/status",
                fmt_bytes(2 * memtable),
                fmt_bytes(block_cache),
                fmt_bytes(buffers as u64 * (chunk + 4096)),
                fmt_bytes(shard_buffers),
                fmt_bytes(index_memory),
                fmt_bytes(request_buffers),
                fmt_bytes(2 * repair_batch),
                writers + blocking_threads
            ),
        );

        EngineConfig {
            memory_budget_bytes: memory_budget,
            index_memory_bytes: index_memory,
            inline_threshold_bytes: inline,
            lsm: crate::meta::LsmConfig {
                memtable_budget_bytes: memtable as usize,
                table_target_bytes: memtable as usize,
                block_bytes: 4096,
                bloom_bits_per_key: 10,
                l0_trigger: 4,
                l1_target_bytes: l1,
                level_multiplier: 10,
                block_cache_bytes: block_cache as usize,
                compaction_bytes_per_s: compaction_rate,
            },
            profile_name: self.name.clone(),
            io_backend,
            chunk_size_bytes: chunk,
            segment_size_bytes: segment,
            data_queue_depth: data_qd,
            meta_queue_depth: meta_qd,
            wal_size_bytes: wal,
            max_chunk_buffers: buffers,
            chunks_in_flight_per_stream: per_stream,
            writer_threads: writers,
            blocking_threads,
            default_protection,
            drive_read_errors_to_fail: read_errors_to_fail,
            drive_timeout_ms,
            failure_groups,
            replicate_below_bytes: replicate_below,
            repair_batch_bytes: repair_batch,
            rebuild_paced_bytes_per_s: paced,
            scrub_bytes_per_s: scrub_rate,
            scrub_period_ms: scrub_days * 86_400_000,
            pool_name: pools
                .first()
                .map_or_else(|| "default".into(), |p| p.name.clone()),
            space_reserve_segments: reserve_segments,
            gc_free_target_pct: gc_target,
            gc_bytes_per_s: gc_rate,
            gc_interval_ms,
            upload_expiry_ms: upload_expiry_s * 1000,
            max_requests: requests,
            max_data_streams: streams,
            request_buffer_bytes: request_buffers,
            request_idle_timeout_ms: idle_timeout_s * 1000,
            min_transfer_rate_bytes_per_s: min_rate,
            meta_preallocate_bytes: wal + 2 * MIB,
            explanations: why,
        }
    }
}

/// The failure group of each of `hdd_count` slots by `pool`'s `failure_groups`: group IDs are
/// `hdd_count + pool's first slot x 64 + group index`, unique across pools and apart from the
/// singleton IDs (the slot numbers); a slot outside the pool's groups is its own group.
fn pool_group_of(pool: &PoolSpec, hdd_count: u32) -> Vec<u32> {
    let mut group_of: Vec<u32> = (0..hdd_count).collect();
    let base = hdd_count + pool.hdd_slots.iter().min().copied().unwrap_or(0) * 64;
    for (g, slots) in pool.failure_groups.iter().enumerate() {
        for &slot in slots {
            if let Some(s) = group_of.get_mut(slot as usize) {
                *s = base + g as u32;
            }
        }
    }
    group_of
}

fn prev_pow2(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

/// Formats a byte count with a binary unit (`4 MiB`, `1.5 GiB`).
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "none named"
    } else {
        s
    }
}

impl EngineConfig {
    /// A human-readable report of every derived setting and why.
    pub fn report(&self) -> String {
        let mut out = format!("profile {}\n", self.profile_name);
        for (name, value, why) in &self.explanations {
            out.push_str(&format!("  {name:<28} {value:<18} {why}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = include_str!("../../../hwprofiles/dev.toml");

    #[test]
    fn drivers_are_module_names_and_every_drive_class_has_a_controller() {
        let qemu = include_str!("../../../hwprofiles/qemu.toml");
        let p = Profile::parse(qemu).unwrap();
        assert_eq!(
            p.drivers(),
            ["i6300esb", "nvme", "virtio_net", "virtio_scsi"]
        );
        assert_eq!(p.watchdog.as_ref().map(|w| w.timeout_s), Some(30));
        let short = qemu.replace("timeout_s = 30", "timeout_s = 2");
        let err = Profile::parse(&short).unwrap_err().to_string();
        assert!(err.contains("watchdog.timeout_s = 2"), "{err}");
        let bad = qemu.replace("driver = \"nvme\"", "driver = \"nvme.ko\"");
        let err = Profile::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("\"nvme.ko\" is not a kernel module name"),
            "{err}"
        );
        let no_ssd = qemu.replace("carries = \"ssd\"", "carries = \"boot\"");
        let err = Profile::parse(&no_ssd).unwrap_err().to_string();
        assert!(err.contains("carries the ssd drives"), "{err}");
        let unknown = qemu.replace("carries = \"ssd\"", "carries = \"tape\"");
        assert!(Profile::parse(&unknown).is_err());
        // The dev profile's files need no controller.
        assert!(Profile::parse(DEV).unwrap().drivers().is_empty());
    }

    #[test]
    fn dev_profile_derives() {
        let p = Profile::parse(DEV).unwrap();
        let c = p.derive();
        assert_eq!(c.chunk_size_bytes % 4096, 0);
        assert!(c.segment_size_bytes >= 4 * c.chunk_size_bytes);
        assert!(c.report().contains("chunk_size_bytes"));
    }

    #[test]
    fn every_shipped_profile_validates_and_derives() {
        for (name, text) in [
            ("dev", DEV),
            ("qemu", include_str!("../../../hwprofiles/qemu.toml")),
            (
                "qemu-hba",
                include_str!("../../../hwprofiles/qemu-hba.toml"),
            ),
            (
                "4u-1.5pb",
                include_str!("../../../hwprofiles/4u-1.5pb.toml"),
            ),
        ] {
            let p = Profile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
            let c = p.derive();
            let report = c.report();
            let inline = if name == "dev" { 4 << 10 } else { 16 << 10 };
            assert_eq!(c.inline_threshold_bytes, inline, "{name}");
            for field in [
                "chunk_size_bytes",
                "ssd_slots",
                "hdd_slots",
                "pool default",
                "inline_threshold_bytes",
            ] {
                assert!(
                    report.contains(field),
                    "{name} report lacks {field}:\n{report}"
                );
            }
        }
        let chassis = Profile::parse(include_str!("../../../hwprofiles/4u-1.5pb.toml")).unwrap();
        assert_eq!(chassis.hdd.count, 60);
        let raw = chassis.hdd.count as u64 * chassis.hdd.size_bytes;
        assert!((1_400_000_000_000_000..1_600_000_000_000_000).contains(&raw));
        let flash = chassis.ssd.count as u64 * chassis.ssd.size_bytes;
        assert!(
            flash * 100 < raw,
            "metadata flash must stay under 1% of raw"
        );
        assert_eq!(
            chassis.pool[0].protection(),
            Ok(Protection::ErasureCoded { data: 8, parity: 2 })
        );
        // It names the drivers of its HBAs, NVMe, boot SATA, NICs and watchdog.
        assert_eq!(
            chassis.drivers(),
            [
                "ahci",
                "i40e",
                "iTCO_wdt",
                "megaraid_sas",
                "mpt3sas",
                "nvme"
            ]
        );
        assert!(chassis
            .derive()
            .report()
            .contains("HDDs on mpt3sas, megaraid_sas"));
        // The measured CPU cost gives the cores that fill 2 x 10GbE: 2.30 GB/s = 2.14 GiB/s.
        let report = chassis.derive().report();
        let line = report
            .lines()
            .find(|l| l.trim_start().starts_with("cores_for_network"))
            .unwrap_or_else(|| panic!("no cores_for_network in:\n{report}"));
        let put = 2.3e9 / GIB as f64 * chassis.chassis.put_cpu_seconds_per_gib.unwrap();
        assert!(line.contains(&format!("{put:.1} / ")), "{line}");
        assert!(line.contains(" of 32"), "{line}");
    }

    #[test]
    fn drive_classes_match_by_size_with_tolerance() {
        let p = Profile::parse(include_str!("../../../hwprofiles/qemu.toml")).unwrap();
        assert!(p.hdd.accepts(8 << 30));
        assert!(p.hdd.accepts((8 << 30) - (100 << 20)));
        assert!(!p.hdd.accepts(2 << 30));
        assert!(!p.ssd.accepts(8 << 30));
        assert!(p.ssd.accepts(2 << 30));
    }

    #[test]
    fn protection_parses_and_is_checked_against_the_pool() {
        assert_eq!("replicas:3".parse(), Ok(Protection::Replicas(3)));
        assert_eq!(
            "ec:4+2".parse(),
            Ok(Protection::ErasureCoded { data: 4, parity: 2 })
        );
        for bad in ["replicas:0", "ec:4", "ec:0+2", "raid5", "ec:4+x"] {
            assert!(bad.parse::<Protection>().is_err(), "{bad}");
        }
        let huge_inline = DEV.replace(
            "[nic]",
            "[engine]\ninline_threshold_bytes = 2000000\n\n[nic]",
        );
        let err = Profile::parse(&huge_inline).unwrap_err().to_string();
        assert!(err.contains("engine.inline_threshold_bytes"), "{err}");
        let wide = DEV.replace("ec:2+1", "ec:4+2");
        let err = Profile::parse(&wide).unwrap_err().to_string();
        assert!(err.contains("spans 6 HDDs but the pool has 4"), "{err}");
        let twice = DEV.replace(
            "[nic]",
            "[[pool]]\nname = \"other\"\nhdd_slots = [3]\n\n[nic]",
        );
        let err = Profile::parse(&twice).unwrap_err().to_string();
        assert!(
            err.contains("hdd slot 3 is in both pool default and pool other"),
            "{err}"
        );
    }

    #[test]
    fn bad_profile_names_the_field() {
        let text = DEV.replace("count = 4", "count = 0");
        let err = Profile::parse(&text).unwrap_err().to_string();
        assert!(err.contains("count"), "{err}");
        let err = Profile::parse("name = 3").unwrap_err().to_string();
        assert!(err.contains("name"), "{err}");
    }

    /// One HDD-pool profile of the space the property test walks.
    fn spanned_profile(
        hdd_bytes: u64,
        hdds: u32,
        protection: &str,
        seq_mb_s: u32,
        iops: u32,
        memory_bytes: u64,
    ) -> String {
        format!(
            r#"
name = "span"
description = "a profile of the property test"
[chassis]
cpu_cores = 8
memory_bytes = {memory_bytes}
[ssd]
count = 2
size_bytes = 1_000_000_000_000
seq_mb_s = 3000
random_read_iops = 500000
[hdd]
count = {hdds}
size_bytes = {hdd_bytes}
seq_mb_s = {seq_mb_s}
random_read_iops = {iops}
[[pool]]
name = "default"
hdd_slots = [{slots}]
protection = "{protection}"
"#,
            slots = (0..hdds)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Over drives of 1 GiB to 30 TB, 3 to 100 HDDs and every protection that fits the pool,
        /// each derived setting keeps the invariant `hoard profile show` states for it.
        #[test]
        fn derived_settings_keep_their_invariants_over_the_profile_space(
            hdd_bytes in GIB..30_000_000_000_000u64,
            hdds in 3u32..=100,
            scheme in 0usize..8,
            seq_mb_s in 50u32..3000,
            iops in 50u32..20_000,
            memory_bytes in (1u64 << 30)..(1u64 << 40),
        ) {
            let protection = [
                "replicas:1".to_string(),
                "replicas:2".into(),
                "replicas:3".into(),
                "ec:2+1".into(),
                format!("ec:{}+1", (hdds - 1).min(16)),
                format!("ec:{}+2", (hdds - 2).min(16)),
                "ec:4+2".into(),
                "ec:8+3".into(),
            ][scheme].clone();
            let text = spanned_profile(hdd_bytes, hdds, &protection, seq_mb_s, iops, memory_bytes);
            let parsed = Profile::parse(&text);
            let width = protection.parse::<Protection>().unwrap().width();
            if width > hdds {
                // A stripe wider than the pool is refused, never derived.
                proptest::prop_assert!(parsed.is_err());
                return Ok(());
            }
            let c = parsed.unwrap().derive();
            let segments = (hdd_bytes - RESERVED_BYTES) / c.segment_size_bytes;
            proptest::prop_assert!(segments >= MIN_SEGMENTS_PER_HDD, "{segments} segments of {}", c.segment_size_bytes);
            proptest::prop_assert!(c.segment_size_bytes >= 4 * c.chunk_size_bytes);
            proptest::prop_assert!(c.chunk_size_bytes.is_power_of_two());
            proptest::prop_assert!((MIN_CHUNK_BYTES..=16 * MIB).contains(&c.chunk_size_bytes));
            // The reserve: at least two segments (a relocation head and room for a victim's
            // needles beside it), at most an eighth of a drive.
            proptest::prop_assert!(c.space_reserve_segments >= MIN_RESERVE_SEGMENTS);
            proptest::prop_assert!(c.space_reserve_segments as u64 <= segments / 8);
            // Collection can always clean: at the reserve, a drive has room for the live
            // needles of any victim it may choose (at most 95% live).
            proptest::prop_assert!(
                (c.space_reserve_segments as u64 - 1) * c.segment_size_bytes
                    >= c.segment_size_bytes * 95 / 100
            );
            // A stripe never needs more drives with room than the pool has.
            proptest::prop_assert!(c.default_protection.width() <= hdds);
            proptest::prop_assert!((1..=256).contains(&c.data_queue_depth));
            proptest::prop_assert!((16 * MIB..=GIB).contains(&c.wal_size_bytes));
            proptest::prop_assert!(c.max_chunk_buffers >= 1);
            proptest::prop_assert!(c.max_chunk_buffers as u64 * c.chunk_size_bytes <= (memory_bytes / 4).max(4 * c.chunk_size_bytes));
            proptest::prop_assert!((1..=8).contains(&c.chunks_in_flight_per_stream));
            proptest::prop_assert!((4..=256).contains(&c.writer_threads));
            proptest::prop_assert!((1..=90).contains(&c.gc_free_target_pct));
            proptest::prop_assert!(c.scrub_bytes_per_s > 0);
            let report = c.report();
            for name in ["chunk_size_bytes", "segment_size_bytes", "space_reserve_segments", "gc_free_target_pct", "max_chunk_buffers", "wal_size_bytes", "pool default"] {
                proptest::prop_assert!(report.contains(name), "profile show states {name}");
            }
        }
    }

    #[test]
    fn a_segment_size_that_leaves_too_few_segments_or_a_reserve_under_two_is_refused() {
        let base = spanned_profile(GIB, 4, "ec:2+1", 200, 200, GIB);
        let err = Profile::parse(&format!("{base}[engine]\nsegment_size_bytes = 67108864\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("segment_size_bytes") && err.contains("15 segments"),
            "{err}"
        );
        let err = Profile::parse(&format!("{base}[engine]\nspace_reserve_segments = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("space_reserve_segments"), "{err}");
        // The shipped QEMU geometry derives many small segments and a reserve of two.
        let qemu = Profile::parse(include_str!("../../../hwprofiles/qemu.toml"))
            .unwrap()
            .derive();
        assert_eq!(qemu.segment_size_bytes, 64 * MIB);
        assert_eq!(qemu.space_reserve_segments, 2);
    }
}
