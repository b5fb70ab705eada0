//! Rebuild and degraded reads beside the raw device.
//!
//! `cargo bench -p hoard-benches --bench repair` measures, on the dev profile's files
//! (O_DIRECT, four 16 GiB sparse HDD files, the profile's default `ec:2+1`), a store holding
//! 384 MiB of 4 MiB objects:
//! - `raw/write` and `raw/read`: the device layer's sequential limit on the same filesystem;
//! - `rebuild/ec-2-1`: `Store::rebuild` after hdd0's file is replaced by a blank one (adopted
//!   at open), unpaced; throughput is the bytes the rebuild wrote (what hdd0 held);
//! - `get/healthy` and `get/degraded`: 4 MiB GETs with every drive, and after hdd0's
//!   replacement before the rebuild (a shard of every chunk there is reconstructed);
//! - GET latency (p50, p99) of 1 MiB objects while idle and while the background worker runs a
//!   paced rebuild, printed (criterion reports means, not tails).
//!
//! Each rebuild sample opens a fresh copy of the stored template (`cp --sparse=always`),
//! outside the timed part.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoard::store::PutOptions;
use hoard::{Profile, Store, StoreOptions};

#[path = "support/raw_device.rs"]
mod raw_device;
use raw_device::{backend, raw, scratch};

const DEV_PROFILE: &str = include_str!("../hwprofiles/dev.toml");
const MIB: usize = 1 << 20;
const OBJECTS: usize = 96;
const OBJECT_BYTES: usize = 4 * MIB;
const SMALL_OBJECTS: usize = 64;

fn open(dir: &Path) -> Store {
    Store::open(&StoreOptions {
        profile: Profile::parse(DEV_PROFILE).unwrap(),
        data_dir: dir.to_path_buf(),
        format_blank: true,
        io_backend: Some(backend()),
    })
    .unwrap()
}

/// The template: a closed store with the benchmark's objects.
fn template(dir: &Path) {
    let store = open(dir);
    store.create_bucket("bench", "bench").unwrap();
    for i in 0..OBJECTS {
        let data: Vec<u8> = (0..OBJECT_BYTES).map(|b| (b * 31 + i) as u8).collect();
        store
            .put_object(
                "bench",
                &format!("big/{i}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
    }
    for i in 0..SMALL_OBJECTS {
        let data: Vec<u8> = (0..MIB).map(|b| (b * 7 + i) as u8).collect();
        store
            .put_object(
                "bench",
                &format!("small/{i}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
    }
    store.close().unwrap();
}

/// A copy of the template in `to` with hdd0's file replaced by a blank one (at open).
fn replaced_copy(template: &Path, to: &Path) -> Store {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp")
        .args(["-r", "--sparse=always"])
        .arg(template)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(to.join("hdd0.img")).unwrap();
    open(to)
}

fn read_all(store: &Store, key: &str, sink: &mut [u8]) -> usize {
    let mut r = store.get_object("bench", key, None).unwrap();
    let mut got = 0;
    loop {
        let n = r.read(sink).unwrap();
        if n == 0 {
            return got;
        }
        got += n;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn repair(c: &mut Criterion) {
    let scratch = scratch();
    let tpl = scratch.path().join("template");
    template(&tpl);
    let work = scratch.path().join("work");
    let mut sink = vec![0u8; 256 * 1024];

    // Healthy and degraded GETs, 4 MiB objects.
    let mut group = c.benchmark_group("get");
    group
        .throughput(Throughput::Bytes(OBJECT_BYTES as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let healthy = open(&tpl);
    let mut n = 0;
    group.bench_function("healthy", |b| {
        b.iter(|| {
            n += 1;
            read_all(&healthy, &format!("big/{}", n % OBJECTS), &mut sink)
        })
    });
    healthy.close().unwrap();
    drop(healthy);
    let degraded = replaced_copy(&tpl, &work);
    group.bench_function("degraded", |b| {
        b.iter(|| {
            n += 1;
            read_all(&degraded, &format!("big/{}", n % OBJECTS), &mut sink)
        })
    });
    group.finish();

    // Rebuild: the bytes hdd0 held, rewritten from the survivors.
    let pass = degraded.rebuild().unwrap();
    drop(degraded);
    let written = pass.counters.bytes_written;
    eprintln!(
        "rebuild of hdd0: {} copies/shards, {} MiB read, {} MiB written",
        pass.counters.shards_repaired,
        pass.counters.bytes_read >> 20,
        written >> 20
    );
    let mut group = c.benchmark_group("rebuild");
    group
        .throughput(Throughput::Bytes(written))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("ec-2-1", "replaced hdd0"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = replaced_copy(&tpl, &work);
                let start = Instant::now();
                let pass = store.rebuild().unwrap();
                total += start.elapsed();
                assert_eq!(pass.counters.bytes_written, written);
                drop(store);
            }
            total
        })
    });
    group.finish();

    // GET latency of 1 MiB objects: idle, then while the worker runs a (paced) rebuild.
    let mut idle = Vec::new();
    let mut during = Vec::new();
    for round in 0..5 {
        let store = replaced_copy(&tpl, &work);
        if round == 0 {
            // Idle: after the rebuild, nothing else running.
            store.rebuild().unwrap();
            for i in 0..400 {
                let start = Instant::now();
                read_all(&store, &format!("small/{}", i % SMALL_OBJECTS), &mut sink);
                idle.push(start.elapsed());
            }
            continue;
        }
        store.start_repair_worker();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = 0;
        while store.repair_status().unwrap().last_rebuild.is_none() && Instant::now() < deadline {
            let start = Instant::now();
            read_all(&store, &format!("small/{}", i % SMALL_OBJECTS), &mut sink);
            during.push(start.elapsed());
            i += 1;
        }
        store.close().unwrap();
    }
    idle.sort();
    during.sort();
    eprintln!(
        "GET 1 MiB latency idle: p50 {:?} p99 {:?} ({} GETs); during a paced rebuild: p50 {:?} p99 {:?} ({} GETs)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        idle.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len()
    );
}

criterion_group!(benches, raw, repair);
criterion_main!(benches);
