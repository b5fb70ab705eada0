//! Rebuild efficiency on emulated spindles: the rebuild rate as a fraction of the replacement
//! drive's sequential write bandwidth, when every drive has a bandwidth of its own.
//!
//! On this VM every device file shares one virtual disk, so a rebuild's source reads and its
//! writes compete for the same bandwidth, and no rebuild can keep a "replacement" busy (with
//! `ec:2+1`, two bytes are read per byte written, all from the one disk). Here each data drive
//! is a loop device (`losetup --direct-io=on`) throttled by the kernel to `HOARD_SPINDLE_MB_S`
//! MB/s of reads and as many of writes (cgroup v1 `blkio.throttle.*_bps_device`; default 100),
//! so four drives together stay far below the disk beneath and each behaves as a drive of its
//! own, as on the chassis. Needs root, loop devices and the blkio controller; otherwise it says
//! so and measures nothing.
//!
//! ```text
//! cargo bench -p hoard-benches --bench rebuild_spindles
//! ```
//!
//! Printed, all in the same run, on the dev profile (`ec:2+1`, four data drives):
//! - `raw write`: 1 MiB durable sequential writes through the device layer to a fifth,
//!   identically throttled drive, as many in flight as a put keeps (best of three runs of
//!   256 MiB): the limit;
//! - `rebuild onto a replacement`: hdd0 is replaced by a blank drive, adopted at open, and
//!   `Store::rebuild` rewrites what it held: bytes written per second, the share of them that
//!   went to the replacement, and that rate over the raw write;
//! - `re-protect without a replacement`: hdd0 is missing and the rebuild re-protects onto the
//!   survivors' free space (as Ceph does).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use hoard::device::{AlignedBuf, Device};
use hoard::store::PutOptions;
use hoard::{Profile, Store, StoreOptions};

// Only the scratch directory and the I/O backend of the shared support are used here.
#[allow(dead_code)]
#[path = "support/raw_device.rs"]
mod raw_device;
use raw_device::{backend, scratch};

const DEV_PROFILE: &str = include_str!("../hwprofiles/dev.toml");
const MIB: usize = 1 << 20;
const OBJECTS: usize = 192;
const OBJECT_BYTES: usize = 4 * MIB;
const CGROUP: &str = "/sys/fs/cgroup/blkio/hoard-spindles";

fn mb_s() -> u64 {
    std::env::var("HOARD_SPINDLE_MB_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A loop device over a fresh sparse backing file of `bytes`, throttled in [`CGROUP`].
struct Spindle {
    backing: PathBuf,
    loop_dev: String,
}

impl Spindle {
    fn new(backing: PathBuf, bytes: u64) -> Result<Spindle, String> {
        let _ = std::fs::remove_file(&backing);
        let f = std::fs::File::create(&backing).map_err(|e| e.to_string())?;
        f.set_len(bytes).map_err(|e| e.to_string())?;
        let loop_dev = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--direct-io=on",
                backing.to_str().unwrap(),
            ],
        )?;
        let rdev = std::fs::metadata(&loop_dev).map_err(|e| e.to_string())?;
        let rdev = std::os::unix::fs::MetadataExt::rdev(&rdev);
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        let bps = mb_s() * 1_000_000;
        for file in [
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
        ] {
            std::fs::write(
                format!("{CGROUP}/{file}"),
                format!("{major}:{minor} {bps}\n"),
            )
            .map_err(|e| format!("{file}: {e}"))?;
        }
        Ok(Spindle { backing, loop_dev })
    }
}

impl Drop for Spindle {
    fn drop(&mut self) {
        let _ = run("losetup", &["-d", &self.loop_dev]);
        let _ = std::fs::remove_file(&self.backing);
    }
}

/// Moves this whole process into (`true`) or out of the throttled cgroup.
fn throttled(on: bool) -> Result<(), String> {
    let procs = match on {
        true => format!("{CGROUP}/cgroup.procs"),
        false => "/sys/fs/cgroup/blkio/cgroup.procs".to_string(),
    };
    std::fs::write(&procs, std::process::id().to_string()).map_err(|e| format!("{procs}: {e}"))
}

fn open(dir: &Path) -> Store {
    Store::open(&StoreOptions {
        profile: Profile::parse(DEV_PROFILE).unwrap(),
        data_dir: dir.to_path_buf(),
        format_blank: true,
        io_backend: Some(backend()),
    })
    .unwrap()
}

/// The store on `dir` with bay 0 empty (its drive lost, no replacement).
fn open_without_hdd0(dir: &Path) -> Store {
    let mut config = Profile::parse(DEV_PROFILE).unwrap().derive();
    config.io_backend = backend();
    let device = |name: &str, depth: u32| {
        Some(std::sync::Arc::new(
            Device::open(&dir.join(name), config.io_backend, depth).unwrap(),
        ))
    };
    let meta = vec![device("ssd0.img", config.meta_queue_depth)];
    let data = (0..4)
        .map(|i| match i {
            0 => None,
            _ => device(&format!("hdd{i}.img"), config.data_queue_depth),
        })
        .collect();
    Store::open_devices(hoard::StoreDevices { meta, data }, config, false).unwrap()
}

/// Points the store's `hdd<i>.img` at drive `spindle`.
fn attach(dir: &Path, i: usize, spindle: &Spindle) {
    let link = dir.join(format!("hdd{i}.img"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&spindle.loop_dev, link).unwrap();
}

/// MB/s of 1 MiB durable sequential writes to `spindle`, as many in flight as a put keeps.
fn raw_write(spindle: &Spindle) -> f64 {
    let config = Profile::parse(DEV_PROFILE).unwrap().derive();
    let dev = Device::open(
        Path::new(&spindle.loop_dev),
        backend(),
        config.data_queue_depth,
    )
    .unwrap();
    let in_flight = config.chunks_in_flight_per_stream as usize;
    let total = 256 * MIB;
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for i in 0..total / MIB {
        pending.push_back(
            dev.submit_write(AlignedBuf::new(MIB), (MIB * (i + 1)) as u64, true)
                .unwrap(),
        );
        if pending.len() >= in_flight {
            pending.pop_front().unwrap().wait().unwrap();
        }
    }
    for p in pending {
        p.wait().unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Runs a rebuild on `store`; prints and returns (bytes written per second in MB/s, share
/// written to slot 0).
fn timed_rebuild(store: &Store, what: &str) -> (f64, f64) {
    let io = || -> Vec<(u64, u64)> {
        store
            .data_slots()
            .iter()
            .map(|s| (s.io.read_bytes, s.io.write_bytes))
            .collect()
    };
    let before = io();
    let start = Instant::now();
    let pass = store.rebuild().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let after = io();
    let written: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).collect();
    let read_max = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.0 - b.0)
        .max()
        .unwrap_or(0);
    let total: u64 = written.iter().sum();
    let rate = pass.counters.bytes_written as f64 / secs / 1e6;
    println!(
        "rebuild_spindles: {what}: {} shards, {:.0} MB read, {:.0} MB written in {secs:.2} s = {rate:.1} MB/s written; device writes per slot (MB): {:?}",
        pass.counters.shards_repaired,
        pass.counters.bytes_read as f64 / 1e6,
        pass.counters.bytes_written as f64 / 1e6,
        written.iter().map(|w| (*w as f64 / 1e6).round()).collect::<Vec<_>>()
    );
    println!(
        "rebuild_spindles: {what}: the busiest source drive read {:.1} MB/s = {:.2} of its {} MB/s read limit",
        read_max as f64 / secs / 1e6,
        read_max as f64 / secs / 1e6 / mb_s() as f64,
        mb_s()
    );
    (rate, written[0] as f64 / total.max(1) as f64)
}

fn measure() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Err("needs root (losetup, cgroups)".into());
    }
    if !Path::new("/sys/fs/cgroup/blkio").exists() {
        return Err("no cgroup v1 blkio controller at /sys/fs/cgroup/blkio".into());
    }
    let _ = std::fs::create_dir(CGROUP);
    let profile = Profile::parse(DEV_PROFILE).unwrap();
    let bytes = profile.hdd.size_bytes;
    let dir = scratch();
    let spindle = |name: &str| Spindle::new(dir.path().join(name), bytes);
    let mut drives: Vec<Spindle> = (0..4)
        .map(|i| spindle(&format!("drive{i}.back")))
        .collect::<Result<_, _>>()?;
    let spare = spindle("spare.back")?;
    let data = dir.path().join("store");
    std::fs::create_dir_all(&data).unwrap();
    for (i, d) in drives.iter().enumerate() {
        attach(&data, i, d);
    }
    // Filled unthrottled: the fill is not what is measured.
    let store = open(&data);
    store.create_bucket("bench", "bench").unwrap();
    for i in 0..OBJECTS {
        let body: Vec<u8> = (0..OBJECT_BYTES).map(|b| (b * 31 + i) as u8).collect();
        store
            .put_object(
                "bench",
                &format!("big/{i}"),
                &mut &body[..],
                PutOptions::default(),
            )
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    let snapshot = dir.path().join("snapshot");
    std::fs::create_dir_all(&snapshot).unwrap();
    for (i, d) in drives.iter().enumerate() {
        run(
            "cp",
            &[
                "--sparse=always",
                d.backing.to_str().unwrap(),
                snapshot.join(format!("drive{i}")).to_str().unwrap(),
            ],
        )?;
    }
    run(
        "cp",
        &[
            data.join("ssd0.img").to_str().unwrap(),
            snapshot.join("ssd0.img").to_str().unwrap(),
        ],
    )?;

    // The copies above are still being written back: let them land first.
    run("sync", &[])?;
    throttled(true)?;
    // The best of three: the drive's sequential limit through the device layer.
    let limit = (0..3).map(|_| raw_write(&spare)).fold(0.0, f64::max);
    println!(
        "rebuild_spindles: raw write, one drive throttled to {} MB/s: {limit:.1} MB/s",
        mb_s()
    );

    // A blank replacement in bay 0, adopted at open.
    drives[0] = spindle("drive0-replacement.back")?;
    attach(&data, 0, &drives[0]);
    let store = open(&data);
    run("sync", &[])?;
    let (rate, share) = timed_rebuild(&store, "rebuild onto a replacement");
    println!(
        "rebuild_spindles: rebuild onto a replacement: {rate:.1} MB/s written = {:.2} of the drive's raw write ({:.0}% of the bytes to the replacement)",
        rate / limit,
        share * 100.0
    );
    store.close().unwrap();
    drop(store);

    // The same loss with no replacement: re-protected onto the survivors.
    throttled(false)?;
    drop(drives);
    let drives: Vec<Spindle> = (0..4)
        .map(|i| spindle(&format!("drive{i}.back")))
        .collect::<Result<_, _>>()?;
    for (i, d) in drives.iter().enumerate() {
        run(
            "cp",
            &[
                "--sparse=always",
                snapshot.join(format!("drive{i}")).to_str().unwrap(),
                d.backing.to_str().unwrap(),
            ],
        )?;
        attach(&data, i, d);
    }
    run(
        "cp",
        &[
            snapshot.join("ssd0.img").to_str().unwrap(),
            data.join("ssd0.img").to_str().unwrap(),
        ],
    )?;
    run("sync", &[])?;
    throttled(true)?;
    let store = open_without_hdd0(&data);
    let (rate, _) = timed_rebuild(&store, "re-protect without a replacement");
    println!(
        "rebuild_spindles: re-protect without a replacement: {rate:.1} MB/s written = {:.2} of one drive's raw write",
        rate / limit
    );
    store.close().unwrap();
    throttled(false)?;
    Ok(())
}

fn rebuild_spindles(_c: &mut Criterion) {
    if let Err(e) = measure() {
        let _ = throttled(false);
        println!("rebuild_spindles: not measured: {e}");
    }
    let _ = std::fs::remove_dir(CGROUP);
}

criterion_group!(benches, rebuild_spindles);
criterion_main!(benches);
