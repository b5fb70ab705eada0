//! Metadata: the current commit path and the LSM index that will replace the in-RAM index,
//! beside fjall (a Rust LSM a user would otherwise pick) on the same keys, in the same run.
//!
//! `cargo bench -p hoard-benches --bench metadata` (`HOARD_BENCH_KEYS`, default 1,000,000;
//! the target is 10,000,000) measures, on files in `target/bench-scratch` (O_DIRECT,
//! io_uring for Hoard; fjall through the page cache with its defaults):
//! - `commit/1_writer`, `commit/64_writers`: durable metadata commits (WAL frame + fdatasync,
//!   group commit) of one object-record-sized put each — the path every S3 PUT takes today;
//! - load (printed once, not a criterion group): N keys in random order, one batch each, with
//!   flushes and compactions as they fall due (hoard: synchronously in the loop; fjall: its
//!   background threads, then a final persist), reporting keys/s, write amplification (bytes
//!   written to tables / bytes of keys and values), SSD bytes per key, RAM bytes per key
//!   (block indexes + bloom filters; the memtable and a 256 MiB block cache come on top), tables
//!   per level and clean-open time;
//! - `scan_all` (printed once): a full scan in keys/s, which also warms the block cache;
//! - `get`: point lookups of random present keys;
//! - `list1000`: 1,000 keys from a random start (a ListObjectsV2 page).
//!
//! Keys look like `o/logs\0logs/2026/11/22/host-0042/part-000123.gz` (shared prefixes, as a
//! bucket of logs has), values are 120 bytes (an object record's size).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hoard::device::{create_device_file, Device, IoBackend};
use hoard::meta::lsm::{Lsm, LsmConfig, LsmLayout};
use hoard::meta::{Batch, MetaIo, MetaLayout, MetaStore, Scan};

const VALUE_BYTES: usize = 120;

fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn key_count() -> u64 {
    std::env::var("HOARD_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The i-th key: 100 hosts per day, parts numbered per host.
fn key(i: u64) -> Vec<u8> {
    let day = 1 + (i / 1_000_000) % 28;
    let host = (i / 10_000) % 100;
    let part = i % 10_000 + (i / 1_000_000) * 10_000;
    format!("o/logs\0logs/2026/11/{day:02}/host-{host:04}/part-{part:06}.gz").into_bytes()
}

/// A permutation of 0..n (multiplication by a prime that does not divide n), so inserts arrive
/// in random key order as uploads from many clients do, and every key is inserted once.
fn shuffled(i: u64, n: u64) -> u64 {
    const PRIME: u128 = 2_654_435_761;
    assert!(!(n as u128).is_multiple_of(PRIME));
    (i as u128 * PRIME % n as u128) as u64
}

fn value(i: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_BYTES];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 11
}

/// A device file, preallocated (fallocate) as the profile's SSD files are, so durable writes
/// do not grow the file (each growth costs an ext4 journal commit per fdatasync).
fn ssd(dir: &Path, name: &str, bytes: u64) -> Arc<Device> {
    let path = dir.join(name);
    create_device_file(&path, bytes, bytes).unwrap();
    Arc::new(Device::open(&path, IoBackend::Auto, 64).unwrap())
}

fn commit(c: &mut Criterion) {
    let dir = scratch();
    let device = ssd(dir.path(), "wal.img", 1 << 30);
    let layout = MetaLayout::new(1 << 30, 256 << 20, 7).unwrap();
    let meta = Arc::new(MetaStore::format(device.clone(), layout, lsm_config()).unwrap());
    let mut group = c.benchmark_group("commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let put = |meta: &MetaStore, counter: &std::sync::atomic::AtomicU64| {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut b = Batch::new();
        b.put(key(i), value(i));
        meta.commit(b).unwrap();
    };
    group.bench_function("1_writer", |b| b.iter(|| put(&meta, &counter)));
    group.bench_function("64_writers", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let threads: Vec<_> = (0..64)
                .map(|t| {
                    let (meta, counter) = (meta.clone(), counter.clone());
                    std::thread::spawn(move || {
                        for _ in 0..iters / 64 + u64::from(t < iters % 64) {
                            put(&meta, &counter);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Criterion divides by `iters`: the figure is wall time per durable put.
            start.elapsed()
        })
    });
    group.finish();

    // Open after a crash: the store is dropped without a clean close, so the next open
    // replays the WAL written since the last flush into the memtable.
    let commits = counter.load(std::sync::atomic::Ordering::Relaxed);
    drop(Arc::into_inner(meta).expect("no other handle"));
    let start = Instant::now();
    let meta = MetaStore::open(device, layout, lsm_config()).unwrap();
    println!(
        "hoard meta: open after a crash {:.1} ms ({commits} commits made, the unflushed ones replayed from the WAL; {} tables)",
        start.elapsed().as_secs_f64() * 1e3,
        meta.lsm().level_counts().iter().sum::<usize>()
    );
}

fn lsm_config() -> LsmConfig {
    LsmConfig {
        memtable_budget_bytes: 32 << 20,
        table_target_bytes: 16 << 20,
        block_bytes: 4096,
        bloom_bits_per_key: 10,
        l0_trigger: 4,
        l1_target_bytes: 128 << 20,
        level_multiplier: 10,
        block_cache_bytes: 256 << 20,
        // Unpaced: the load measures how fast the LSM can absorb writes.
        compaction_bytes_per_s: 0,
    }
}

fn index(c: &mut Criterion) {
    let n = key_count();
    let dir = scratch();
    let area_bytes: u64 = (n * 600).max(1 << 30);
    let device = ssd(dir.path(), "lsm.img", area_bytes + (2 << 20));
    let io: Arc<dyn MetaIo> = device;
    let layout = LsmLayout::new(1 << 20, area_bytes, 1 << 20);
    let lsm = Lsm::create(io.clone(), layout, lsm_config()).unwrap();

    let start = Instant::now();
    for i in 0..n {
        let k = shuffled(i, n);
        let mut b = Batch::new();
        b.put(key(k), value(k));
        lsm.apply(&b);
        if lsm.needs_flush() {
            lsm.flush(0).unwrap();
            while lsm.compact().unwrap() {}
        }
    }
    lsm.flush(0).unwrap();
    while lsm.compact().unwrap() {}
    let load = start.elapsed();
    let stats = lsm.stats();
    let written = stats.flushed_bytes + stats.compacted_bytes;
    println!(
        "hoard lsm: loaded {n} keys in {:.1} s ({:.0} keys/s); write amplification {:.2} ({} MiB to tables / {} MiB applied); SSD {:.1} B/key; RAM {:.1} B/key (block indexes + bloom filters; block cache budget 256 MiB besides); tables per level {:?}",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        written as f64 / stats.applied_bytes as f64,
        written >> 20,
        stats.applied_bytes >> 20,
        lsm.table_bytes() as f64 / n as f64,
        lsm.resident_bytes() as f64 / n as f64,
        lsm.level_counts()
    );
    drop(lsm);
    let start = Instant::now();
    let lsm = Lsm::open(io, layout, lsm_config()).unwrap();
    println!(
        "hoard lsm: clean open {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let fjall_dir = dir.path().join("fjall");
    let db = fjall::Database::builder(&fjall_dir).open().unwrap();
    let items = db
        .keyspace("index", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let k = shuffled(i, n);
        items.insert(key(k), value(k)).unwrap();
    }
    db.persist(fjall::PersistMode::SyncAll).unwrap();
    let fjall_load = start.elapsed();
    let disk: u64 = walk_bytes(&fjall_dir);
    println!(
        "fjall: loaded {n} keys in {:.1} s ({:.0} keys/s, buffered then one persist); disk {:.1} B/key (LZ4)",
        fjall_load.as_secs_f64(),
        n as f64 / fjall_load.as_secs_f64(),
        disk as f64 / n as f64
    );

    // The full scan first: it also warms Hoard's block cache, as the load warmed fjall's (and
    // the page cache under it), so the lookups below compare warm with warm.
    let start = Instant::now();
    let snap = lsm.snapshot();
    let mut seen = 0u64;
    lsm.scan(b"", &snap, &mut |_, _| {
        seen += 1;
        Scan::Continue
    })
    .unwrap();
    let hoard_scan = start.elapsed();
    let start = Instant::now();
    let fjall_seen = items.iter().count() as u64;
    let fjall_scan = start.elapsed();
    println!(
        "full scan: hoard lsm {seen} keys at {:.0} keys/s; fjall {fjall_seen} keys at {:.0} keys/s",
        seen as f64 / hoard_scan.as_secs_f64(),
        fjall_seen as f64 / fjall_scan.as_secs_f64()
    );

    // Latency percentiles (criterion reports means): 5,000 gets and 500 pages of 1,000 each.
    let mut rng = 7u64;
    let hoard_list = |from: &[u8]| {
        let snap = lsm.snapshot();
        let mut seen = 0;
        lsm.scan(from, &snap, &mut |_, _| {
            seen += 1;
            if seen == 1000 {
                Scan::Stop
            } else {
                Scan::Continue
            }
        })
        .unwrap();
    };
    let p_get_hoard = percentiles(5000, || {
        let snap = lsm.snapshot();
        assert!(lsm.get(&key(lcg(&mut rng) % n), &snap).unwrap().is_some());
    });
    let p_get_fjall = percentiles(5000, || {
        assert!(items.get(key(lcg(&mut rng) % n)).unwrap().is_some());
    });
    let p_list_hoard = percentiles(500, || hoard_list(&key(lcg(&mut rng) % n)));
    let p_list_fjall = percentiles(500, || {
        assert!(items.range(key(lcg(&mut rng) % n)..).take(1000).count() > 0);
    });
    println!(
        "get p50/p99: hoard lsm {:.1}/{:.1} us, fjall {:.1}/{:.1} us; list1000 p50/p99: hoard lsm {:.2}/{:.2} ms, fjall {:.2}/{:.2} ms",
        p_get_hoard.0 * 1e6,
        p_get_hoard.1 * 1e6,
        p_get_fjall.0 * 1e6,
        p_get_fjall.1 * 1e6,
        p_list_hoard.0 * 1e3,
        p_list_hoard.1 * 1e3,
        p_list_fjall.0 * 1e3,
        p_list_fjall.1 * 1e3
    );

    let mut group = c.benchmark_group("get");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let mut rng = 1u64;
    group.bench_function("hoard_lsm", |b| {
        b.iter(|| {
            let snap = lsm.snapshot();
            let k = lcg(&mut rng) % n;
            assert!(lsm.get(&key(k), &snap).unwrap().is_some());
        })
    });
    group.bench_function("fjall", |b| {
        b.iter(|| {
            let k = lcg(&mut rng) % n;
            assert!(items.get(key(k)).unwrap().is_some());
        })
    });
    group.finish();

    let mut group = c.benchmark_group("list1000");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("hoard_lsm", |b| {
        b.iter(|| hoard_list(&key(lcg(&mut rng) % n)))
    });
    group.bench_function("fjall", |b| {
        b.iter(|| {
            let from = key(lcg(&mut rng) % n);
            let seen = items.range(from..).take(1000).count();
            assert!(seen > 0);
        })
    });
    group.finish();
}

/// Runs `op` `samples` times; returns its (p50, p99) in seconds.
fn percentiles(samples: usize, mut op: impl FnMut()) -> (f64, f64) {
    let mut secs: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    (secs[samples / 2], secs[samples * 99 / 100])
}

fn walk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

criterion_group!(benches, commit, index);
criterion_main!(benches);
