//! Sustained overwrites with garbage collection running, beside the same workload on an
//! empty pool.
//!
//! `cargo bench -p hoard-benches --bench gc` measures, on real files (O_DIRECT, four
//! HDD files of 1 GiB with the chunk and segment sizes the profile derives for them (1 MiB
//! chunks, 8 MiB segments, 127 per drive, a reserve of 2), `ec:2+1`, inline storage off so
//! every object goes
//! to the HDDs), for objects of 1 MiB and 64 KiB (the latter stored as 2 copies: hybrid
//! protection below `replicate_below_bytes`):
//! - (`HOARD_GC_BENCH=1MiB/80pct` runs one configuration.)
//! - `overwrite/<size>/<fill>`: throughput of overwriting random keys of a working set that
//!   fills 5% ("empty"), 50% or 80% of the pool's raw space, with the background collector
//!   running; each configuration is first churned through the whole pool once so it is in
//!   steady state;
//! - printed per configuration: garbage collection's write amplification (bytes it wrote /
//!   bytes clients wrote while measured), the live fraction of the raw space measured at
//!   the end, and PUT and GET latency p50/p99 (a GET of a random
//!   key after every 8th PUT): idle collector at 5%, active at 50% and 80%.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoard::store::PutOptions;
use hoard::{Profile, Store, StoreOptions};

#[path = "support/raw_device.rs"]
mod raw_device;
use raw_device::{backend, scratch};

const MIB: u64 = 1 << 20;
const HDD_BYTES: u64 = 1024 * MIB;

fn profile() -> Profile {
    Profile::parse(&format!(
        r#"
name = "gc-bench"
description = "four 1 GiB HDD files for garbage collection under churn"
[chassis]
cpu_cores = 2
memory_bytes = 2_147_483_648
[ssd]
count = 1
size_bytes = 1_073_741_824
seq_mb_s = 1600
random_read_iops = 13600
[hdd]
count = 4
size_bytes = {HDD_BYTES}
seq_mb_s = 1000
random_read_iops = 13600
[[pool]]
name = "default"
hdd_slots = [0, 1, 2, 3]
protection = "ec:2+1"
[files]
ssd = ["ssd0.img"]
hdd = ["hdd0.img", "hdd1.img", "hdd2.img", "hdd3.img"]
[engine]
inline_threshold_bytes = 0
gc_interval_ms = 100
"#
    ))
    .unwrap()
}

fn open(dir: &Path) -> Store {
    let store = Store::open(&StoreOptions {
        profile: profile(),
        data_dir: dir.to_path_buf(),
        format_blank: true,
        io_backend: Some(backend()),
    })
    .unwrap();
    store.start_gc_worker();
    store
}

/// Stored bytes per object byte: 1.5 for a stripe, 2 for the copies of a small object.
fn expansion(object_bytes: usize) -> f64 {
    if object_bytes >= MIB as usize {
        1.5
    } else {
        2.0
    }
}

struct Churn {
    store: Store,
    keys: u64,
    object_bytes: usize,
    rng: u64,
    step: u64,
    puts: Vec<Duration>,
    gets: Vec<Duration>,
    client_bytes: u64,
}

impl Churn {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Overwrites random keys until `bytes` of objects are written.
    fn run(&mut self, bytes: u64, record: bool) {
        let mut data = vec![0u8; self.object_bytes];
        let mut sink = vec![0u8; self.object_bytes];
        let mut done = 0;
        while done < bytes {
            self.step += 1;
            let k = self.next() % self.keys;
            data[..8].copy_from_slice(&self.step.to_le_bytes());
            let start = Instant::now();
            self.store
                .put_object(
                    "bench",
                    &format!("k{k}"),
                    &mut &data[..],
                    PutOptions::default(),
                )
                .unwrap();
            if record {
                self.puts.push(start.elapsed());
                self.client_bytes += data.len() as u64;
            }
            done += data.len() as u64;
            if self.step % 8 == 0 {
                let k = self.next() % self.keys;
                let start = Instant::now();
                if let Ok(mut r) = self.store.get_object("bench", &format!("k{k}"), None) {
                    while r.read(&mut sink).unwrap() > 0 {}
                    if record {
                        self.gets.push(start.elapsed());
                    }
                }
            }
        }
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn gc(c: &mut Criterion) {
    let root = scratch();
    let mut group = c.benchmark_group("overwrite");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    for object_bytes in [MIB as usize, 64 << 10] {
        for fill_pct in [5u64, 50, 80] {
            let label = if object_bytes >= MIB as usize {
                "1MiB"
            } else {
                "64KiB"
            };
            let only = std::env::var("HOARD_GC_BENCH").ok();
            if only.is_some_and(|o| o != format!("{label}/{fill_pct}pct")) {
                continue;
            }
            let dir = root.path().join(format!("{object_bytes}-{fill_pct}"));
            let store = open(&dir);
            store.create_bucket("bench", "bench").unwrap();
            let raw = store.space_status().total.raw_bytes;
            let keys = ((raw * fill_pct / 100) as f64
                / (object_bytes as f64 * expansion(object_bytes))) as u64;
            let mut churn = Churn {
                store,
                keys: keys.max(1),
                object_bytes,
                rng: 0x2545_F491_4F6C_DD1D,
                step: 0,
                puts: Vec::new(),
                gets: Vec::new(),
                client_bytes: 0,
            };
            // Fill the working set, then churn a whole pool's worth to reach steady state.
            for k in 0..churn.keys {
                let data = vec![k as u8; object_bytes];
                churn
                    .store
                    .put_object(
                        "bench",
                        &format!("k{k}"),
                        &mut &data[..],
                        PutOptions::default(),
                    )
                    .unwrap();
            }
            churn.run(raw, false);
            let gc_before = churn.store.gc_status().bytes_written;
            let batch = 32 * MIB;
            group.throughput(Throughput::Bytes(batch));
            group.bench_function(BenchmarkId::new(label, format!("{fill_pct}pct")), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        churn.run(batch, true);
                    }
                    start.elapsed()
                })
            });
            let gc = churn.store.gc_status();
            let moved = gc.bytes_written - gc_before;
            let space = churn.store.space_status().total;
            eprintln!(
                "overwrite {label} at {fill_pct}% fill (live {:.1}% of raw, free {:.1}%): gc write amplification {:.2} ({} MiB moved for {} MiB written, {} passes); PUT p50 {:?} p99 {:?}; GET p50 {:?} p99 {:?}",
                100.0 * space.live_bytes as f64 / space.raw_bytes as f64,
                100.0 * space.free_bytes as f64 / space.raw_bytes as f64,
                moved as f64 / churn.client_bytes.max(1) as f64,
                moved / MIB,
                churn.client_bytes / MIB,
                gc.passes,
                percentile(&mut churn.puts, 0.5),
                percentile(&mut churn.puts, 0.99),
                percentile(&mut churn.gets, 0.5),
                percentile(&mut churn.gets, 0.99),
            );
            churn.store.close().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

criterion_group!(benches, gc);
criterion_main!(benches);
