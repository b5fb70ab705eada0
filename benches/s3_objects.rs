//! S3 object throughput through a real client, beside the raw device and one core's hash rate
//! in the same run: the release `hoard serve` on the dev profile, driven by aws-sdk-s3 with its
//! defaults (aws-chunked bodies with a CRC32 trailer, so the server decodes, hashes MD5 and
//! CRC32 and writes durably before it answers).
//!
//! ```text
//! cargo build --release -p hoard-appliance     # the server under test (or set HOARD_BIN)
//! cargo bench -p hoard-benches --bench s3_objects
//! ```
//!
//! Groups (throughput in bytes):
//! - `raw/write`, `raw/read`: the four data files through the device layer (the limit);
//! - `hash/md5`, `hash/crc32`: the per-byte CPU work every PUT does on one core;
//! - `s3_put/{1MiB,64MiB}`, `s3_get/{1MiB,64MiB}`: one object at a time;
//! - `s3_put_parallel/1MiB x16`: 16 PUTs in flight (the client and server share the 2 cores).

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use md5::Digest;

#[path = "support/raw_device.rs"]
mod raw_device;
#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{client, Server};

const MIB: usize = 1 << 20;
const BUCKET: &str = "objects";

fn hash(c: &mut Criterion) {
    let data: Vec<u8> = (0..16 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("hash");
    group
        .throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10);
    group.bench_function("md5", |b| b.iter(|| md5::Md5::digest(&data)));
    group.bench_function("crc32", |b| b.iter(|| crc32fast::hash(&data)));
    group.finish();
}

fn s3_objects(c: &mut Criterion) {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch/s3-objects");
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let server = Server::start(&data_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s3: Client = client(&server.endpoint);
    rt.block_on(s3.create_bucket().bucket(BUCKET).send())
        .unwrap();
    let put = |s3: &Client, key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        }
    };

    for (name, size) in [("1MiB", MIB), ("64MiB", 64 * MIB)] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let mut group = c.benchmark_group("s3_put");
        group
            .throughput(Throughput::Bytes(size as u64))
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        let mut n = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                n += 1;
                rt.block_on(put(&s3, format!("{name}/{}", n % 8), body.clone()))
            })
        });
        group.finish();
        let mut group = c.benchmark_group("s3_get");
        group
            .throughput(Throughput::Bytes(size as u64))
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let out = s3
                        .get_object()
                        .bucket(BUCKET)
                        .key(format!("{name}/1"))
                        .send()
                        .await
                        .unwrap();
                    let got = out.body.collect().await.unwrap().into_bytes();
                    assert_eq!(got.len(), size);
                })
            })
        });
        group.finish();
    }

    let body: Vec<u8> = (0..MIB).map(|i| (i * 11 % 241) as u8).collect();
    let mut group = c.benchmark_group("s3_put_parallel");
    group
        .throughput(Throughput::Bytes(16 * MIB as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("1MiB x16", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for i in 0..16 {
                    tasks.spawn(put(&s3, format!("parallel/{i}"), body.clone()));
                }
                while let Some(r) = tasks.join_next().await {
                    r.unwrap();
                }
            })
        })
    });
    group.finish();
    let (rss, hwm) = server.resident_bytes();
    println!(
        "s3_objects: server VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1048576.0,
        hwm as f64 / 1048576.0
    );
    server.stop();
}

criterion_group!(benches, raw_device::raw, hash, s3_objects);
criterion_main!(benches);
