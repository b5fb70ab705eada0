//! Listing a versioned bucket at scale, through a real client: the release `hoard serve` on
//! the dev profile holding two buckets of N keys each (`HOARD_BENCH_OBJECTS`, default
//! 1,000,000): `flat`, unversioned, one version per key, and `versioned`, every key written
//! three times with versioning enabled (3N versions). aws-sdk-s3 then asks, from random
//! markers, for 1,000-entry pages of:
//! - `list_v2/flat`, `list_v2/versioned`: ListObjectsV2 (the latest versions only): the
//!   versioned bucket must cost what the flat one does;
//! - `list_versions/flat`, `list_versions/versioned`: ListObjectVersions (in the versioned
//!   bucket a page is ~333 keys x 3 versions).
//!
//! ```text
//! cargo build --release -p hoard-appliance     # the server under test (or set HOARD_BIN)
//! cargo bench -p hoard-benches --bench s3_versions
//! ```
//!
//! The buckets are filled in process through the engine (`Store::put_object`, 64 writer
//! threads, group commit), not through S3: 4N durable PUTs through HTTP would take most of an
//! hour on two cores, and the listing, not the fill, is measured. Bodies are 100 bytes
//! (inline in the index). The filled data directory is kept in
//! `target/bench-scratch/s3-versions-N` and reused by later runs. Printed once: the fill
//! rate, p50/p99 over 300 requests of each listing and the server's resident memory;
//! criterion then times each.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{client, Server};

const VERSIONS: u64 = 3;
const WRITERS: u64 = 64;
const PAGE: i32 = 1000;

fn object_count() -> u64 {
    std::env::var("HOARD_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The i-th key: spread over 28 days and 100 hosts, as a bucket of logs is.
fn key(i: u64) -> String {
    let day = 1 + i % 28;
    let host = (i / 28) % 100;
    let part = i / 2800;
    format!("logs/2026/11/{day:02}/host-{host:04}/part-{part:06}.gz")
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// Puts every key of `bucket` once from `WRITERS` threads; returns PUTs per second.
fn fill_round(store: &hoard::Store, bucket: &'static str, n: u64) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            let next = next.clone();
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = [b'x'; 100];
                store
                    .put_object(bucket, &key(i), &mut &body[..], Default::default())
                    .unwrap_or_else(|e| panic!("put {bucket}/{}: {e}", key(i)));
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn fill(data: &Path, n: u64) {
    let profile = hoard::Profile::parse(include_str!("../hwprofiles/dev.toml")).unwrap();
    let store = hoard::Store::open(&hoard::StoreOptions {
        profile,
        data_dir: data.to_path_buf(),
        format_blank: true,
        io_backend: None,
    })
    .unwrap();
    // Owned by the server's root account (any owner that is not an account ID is).
    store.create_bucket("flat", "bench").unwrap();
    store.create_bucket("versioned", "bench").unwrap();
    store
        .set_bucket_versioning("versioned", hoard::store::Versioning::Enabled)
        .unwrap();
    let rate = fill_round(&store, "flat", n);
    println!("s3_versions: filled flat with {n} objects at {rate:.0} PUT/s ({WRITERS} writer threads, in process)");
    for round in 1..=VERSIONS {
        let rate = fill_round(&store, "versioned", n);
        println!("s3_versions: wrote version {round} of {n} keys of versioned at {rate:.0} PUT/s");
    }
    store.close().unwrap();
}

/// One 1,000-entry page from a random key: ListObjectsV2 (`versions` false) or
/// ListObjectVersions. Returns the entries listed.
async fn page(s3: &Client, bucket: &str, versions: bool, n: u64, rng: &mut u64) -> usize {
    let from = key(lcg(rng) % n);
    if versions {
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .key_marker(from)
            .max_keys(PAGE)
            .send()
            .await
            .unwrap();
        out.versions().len() + out.delete_markers().len()
    } else {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .start_after(from)
            .max_keys(PAGE)
            .send()
            .await
            .unwrap();
        out.contents().len()
    }
}

const CASES: [(&str, &str, bool); 4] = [
    ("list_v2/flat", "flat", false),
    ("list_v2/versioned", "versioned", false),
    ("list_versions/flat", "flat", true),
    ("list_versions/versioned", "versioned", true),
];

fn s3_versions(c: &mut Criterion) {
    let n = object_count();
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/bench-scratch/s3-versions-{n}"));
    let filled_marker = data.join("filled");
    if !filled_marker.exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        fill(&data, n);
        std::fs::write(&filled_marker, b"").unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start(&data);
    let s3 = client(&server.endpoint);
    let mut rng = 7u64;
    for (name, bucket, versions) in CASES {
        let mut ms: Vec<f64> = Vec::with_capacity(300);
        let mut entries = 0;
        for _ in 0..300 {
            let t = Instant::now();
            entries = rt.block_on(page(&s3, bucket, versions, n, &mut rng));
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "s3_versions: {name:<24} p50 {:.2} ms  p99 {:.2} ms  ({entries} entries in the last page)",
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    }
    let (rss, hwm) = server.resident_bytes();
    println!(
        "s3_versions: server VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1048576.0,
        hwm as f64 / 1048576.0
    );
    let mut group = c.benchmark_group("s3_versions");
    group.measurement_time(Duration::from_secs(10));
    for (name, bucket, versions) in CASES {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(page(&s3, bucket, versions, n, &mut rng)))
        });
    }
    group.finish();
    server.stop();
}

criterion_group!(benches, s3_versions);
criterion_main!(benches);
