//! S3 listing at scale, through a real client: the release `hoard serve` on the dev profile
//! with N objects in one bucket (`HOARD_BENCH_OBJECTS`, default 1,000,000), filled through S3 by
//! aws-sdk-s3, then ListObjectsV2 pages, with the server's resident memory read beside the
//! profile's `memory_budget_bytes`.
//!
//! ```text
//! cargo build --release -p hoard-appliance     # the server under test (or set HOARD_BIN)
//! cargo bench -p hoard-benches --bench s3_listing
//! ```
//!
//! Keys look like `logs/2026/11/DD/host-HHHH/part-PPPPPP.gz` (28 days x 100 hosts, parts
//! numbered per host), 100-byte bodies (stored inline in the index). The filled data directory
//! is kept in `target/bench-scratch/s3-listing-N` and reused by later runs. Printed once:
//! the fill rate, a full listing of the bucket page by page, p50/p99 over 300 requests of each
//! listing below, and the server's VmRSS/VmHWM (proc(5)). Criterion then times:
//! - `days`: prefix `logs/2026/11/`, delimiter `/`: 28 common prefixes, each skipped by a seek;
//! - `hosts`: prefix of a random day, delimiter `/`: 100 common prefixes;
//! - `parts`: prefix of a random day and host, delimiter `/`: one host's keys;
//! - `page_from_random_key`: 1,000 keys from a random start-after, no delimiter.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{client, Server};

const BUCKET: &str = "logs";
const DAYS: u64 = 28;
const HOSTS: u64 = 100;
const FILL_IN_FLIGHT: u64 = 128;

fn object_count() -> u64 {
    std::env::var("HOARD_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The i-th key: objects spread over days, then hosts, then parts.
fn key(i: u64) -> String {
    let day = 1 + i % DAYS;
    let host = (i / DAYS) % HOSTS;
    let part = i / (DAYS * HOSTS);
    format!("logs/2026/11/{day:02}/host-{host:04}/part-{part:06}.gz")
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

async fn fill(s3: &Client, n: u64) {
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..FILL_IN_FLIGHT {
        let s3 = s3.clone();
        tasks.spawn(async move {
            let body = vec![b'x'; 100];
            let mut i = worker;
            while i < n {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(key(i))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("put {}: {e:?}", key(i)));
                i += FILL_IN_FLIGHT;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "s3_listing: filled {n} objects through S3 in {secs:.1} s ({:.0} PUT/s, {FILL_IN_FLIGHT} in flight)",
        n as f64 / secs
    );
}

/// One ListObjectsV2 request; returns keys + common prefixes.
async fn list(s3: &Client, prefix: &str, delimiter: bool, start_after: Option<String>) -> usize {
    let mut req = s3.list_objects_v2().bucket(BUCKET).prefix(prefix);
    if delimiter {
        req = req.delimiter("/");
    }
    if let Some(after) = start_after {
        req = req.start_after(after);
    }
    let out = req.send().await.unwrap();
    out.contents().len() + out.common_prefixes().len()
}

/// A random listing of the kind `name` (see the module doc).
async fn list_kind(s3: &Client, name: &str, n: u64, rng: &mut u64) -> usize {
    let day = 1 + lcg(rng) % DAYS;
    let host = lcg(rng) % HOSTS;
    match name {
        "days" => list(s3, "logs/2026/11/", true, None).await,
        "hosts" => list(s3, &format!("logs/2026/11/{day:02}/"), true, None).await,
        "parts" => {
            list(
                s3,
                &format!("logs/2026/11/{day:02}/host-{host:04}/"),
                true,
                None,
            )
            .await
        }
        _ => list(s3, "", false, Some(key(lcg(rng) % n))).await,
    }
}

const KINDS: [&str; 4] = ["days", "hosts", "parts", "page_from_random_key"];

fn s3_listing(c: &mut Criterion) {
    let n = object_count();
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/bench-scratch/s3-listing-{n}"));
    let filled_marker = data.join("filled");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if !filled_marker.exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let server = Server::start(&data);
        rt.block_on(fill(&client(&server.endpoint), n));
        let (rss, hwm) = server.resident_bytes();
        println!(
            "s3_listing: after the fill: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            rss as f64 / 1048576.0,
            hwm as f64 / 1048576.0
        );
        server.stop();
        std::fs::write(&filled_marker, b"").unwrap();
    }
    let budget = hoard::Profile::parse(include_str!("../hwprofiles/dev.toml"))
        .unwrap()
        .derive()
        .memory_budget_bytes;
    let start = Instant::now();
    let server = Server::start(&data);
    println!(
        "s3_listing: server open on {n} objects in {:.2} s (clean start)",
        start.elapsed().as_secs_f64()
    );
    let s3 = Arc::new(client(&server.endpoint));

    // The whole bucket, page by page.
    let start = Instant::now();
    let (mut pages, mut keys, mut after) = (0u64, 0u64, None::<String>);
    rt.block_on(async {
        loop {
            let mut req = s3.list_objects_v2().bucket(BUCKET);
            if let Some(token) = after.take() {
                req = req.continuation_token(token);
            }
            let out = req.send().await.unwrap();
            pages += 1;
            keys += out.contents().len() as u64;
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => after = Some(t.to_string()),
                _ => break,
            }
        }
    });
    assert_eq!(keys, n, "the listing must return every object once");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "s3_listing: listed all {keys} keys in {pages} pages in {secs:.1} s ({:.0} keys/s, {:.2} ms per page)",
        keys as f64 / secs,
        secs * 1e3 / pages as f64
    );

    let mut rng = 42u64;
    for kind in KINDS {
        let mut ms: Vec<f64> = Vec::with_capacity(300);
        let mut entries = 0;
        for _ in 0..300 {
            let t = Instant::now();
            entries = rt.block_on(list_kind(&s3, kind, n, &mut rng));
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "s3_listing: {kind:<22} p50 {:.2} ms  p99 {:.2} ms  ({entries} entries in the last page)",
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    }
    let (rss, hwm) = server.resident_bytes();
    println!(
        "s3_listing: server VmRSS {:.1} MiB, VmHWM {:.1} MiB, dev profile memory_budget_bytes {:.1} MiB",
        rss as f64 / 1048576.0,
        hwm as f64 / 1048576.0,
        budget as f64 / 1048576.0
    );

    let mut group = c.benchmark_group("s3_listing");
    group.measurement_time(Duration::from_secs(10));
    for kind in KINDS {
        group.bench_function(kind, |b| {
            b.iter(|| rt.block_on(list_kind(&s3, kind, n, &mut rng)))
        });
    }
    group.finish();
    server.stop();
}

criterion_group!(benches, s3_listing);
criterion_main!(benches);
