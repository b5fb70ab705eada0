//! Engine throughput beside the raw device.
//!
//! `cargo bench -p hoard-benches --bench engine` measures, on the dev profile's four data files
//! (O_DIRECT, the profile's I/O backend):
//! - `raw/write` and `raw/read`: 1 MiB sequential durable writes and reads through the device
//!   layer, round-robin over the four files, as many in flight as a put keeps — the physical
//!   limit the engine is compared with;
//! - `put` and `get`: engine puts and gets of 4 KiB, 1 MiB and 64 MiB objects, in a bucket of
//!   the profile's default protection (ec:2+1) and in one of `replicas:1`;
//! - `erasure`: Reed–Solomon encode and decode (M shards lost) per core for the profiles' codes;
//! - `hash/md5` and `hash/crc32c`: the per-byte CPU work every put does, for reference.
//!
//! Throughput is in bytes (criterion's `Throughput::Bytes`); the ratios engine/raw go in the
//! closing note of the change that measured them.

use std::io::Read;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoard::store::PutOptions;
use hoard::{Profile, Protection, Store, StoreOptions};

#[path = "support/raw_device.rs"]
mod raw_device;
use raw_device::{backend, raw, scratch};

const DEV_PROFILE: &str = include_str!("../hwprofiles/dev.toml");
const MIB: usize = 1 << 20;

fn engine(c: &mut Criterion) {
    let dir = scratch();
    let profile = Profile::parse(DEV_PROFILE).unwrap();
    let store = Store::open(&StoreOptions {
        profile,
        data_dir: dir.path().to_path_buf(),
        format_blank: true,
        io_backend: Some(backend()),
    })
    .unwrap();
    // The dev profile's default (ec:2+1) beside one copy, on the same files in the same run.
    let buckets = [
        ("ec-2-1", None),
        ("replicas-1", Some(Protection::Replicas(1))),
    ];
    for (bucket, protection) in buckets {
        store
            .create_bucket_with(bucket, "bench", protection)
            .unwrap();
    }
    let sizes = [("4KiB", 4096usize), ("1MiB", MIB), ("64MiB", 64 * MIB)];
    let mut group = c.benchmark_group("put");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (bucket, _) in buckets {
        for (name, size) in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            group.throughput(Throughput::Bytes(size as u64));
            let mut n = 0u64;
            group.bench_with_input(BenchmarkId::new(bucket, name), &data, |b, data| {
                b.iter(|| {
                    n += 1;
                    store
                        .put_object(
                            bucket,
                            &format!("{name}/{}", n % 64),
                            &mut &data[..],
                            PutOptions::default(),
                        )
                        .unwrap();
                })
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("get");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (bucket, _) in buckets {
        for (name, size) in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
            store
                .put_object(
                    bucket,
                    &format!("get/{name}"),
                    &mut &data[..],
                    PutOptions::default(),
                )
                .unwrap();
            group.throughput(Throughput::Bytes(size as u64));
            let mut sink = vec![0u8; 256 * 1024];
            group.bench_function(BenchmarkId::new(bucket, name), |b| {
                b.iter(|| {
                    let mut r = store
                        .get_object(bucket, &format!("get/{name}"), None)
                        .unwrap();
                    let mut got = 0;
                    loop {
                        let n = r.read(&mut sink).unwrap();
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    assert_eq!(got, size);
                })
            });
        }
    }
    group.finish();
    store.close().unwrap();
}

/// The per-byte CPU work of a put: MD5 (the S3 ETag) and crc32c (the needle checksum).
fn hashing(c: &mut Criterion) {
    use md5::Digest;
    let data: Vec<u8> = (0..MIB).map(|i| (i * 13 % 241) as u8).collect();
    let mut group = c.benchmark_group("hash");
    group
        .throughput(Throughput::Bytes(MIB as u64))
        .sample_size(10);
    group.bench_function("md5", |b| b.iter(|| md5::Md5::digest(&data)));
    group.bench_function("crc32c", |b| b.iter(|| crc32c::crc32c(&data)));
    group.finish();
}

/// Reed–Solomon as the engine uses it (`reed-solomon-simd`, one core): encoding the parity of
/// one chunk, and decoding it with M data shards lost, for the profiles' codes and chunk sizes
/// (dev 1 MiB, 4U 8 MiB). Throughput is the chunk's bytes.
fn erasure(c: &mut Criterion) {
    let mut group = c.benchmark_group("erasure");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (k, m, chunk) in [(2usize, 1usize, MIB), (4, 2, MIB), (8, 2, 8 * MIB)] {
        let shard = chunk / k;
        let data: Vec<Vec<u8>> = (0..k)
            .map(|s| (0..shard).map(|i| (i * 7 + s * 13) as u8).collect())
            .collect();
        let parity = reed_solomon_simd::encode(k, m, &data).unwrap();
        let name = format!("{k}+{m} {}MiB", chunk / MIB);
        group.throughput(Throughput::Bytes(chunk as u64));
        group.bench_function(BenchmarkId::new("encode", &name), |b| {
            b.iter(|| reed_solomon_simd::encode(k, m, &data).unwrap())
        });
        group.bench_function(BenchmarkId::new("decode_m_lost", &name), |b| {
            b.iter(|| {
                let restored = reed_solomon_simd::decode(
                    k,
                    m,
                    data.iter().enumerate().skip(m),
                    parity.iter().enumerate(),
                )
                .unwrap();
                assert_eq!(restored.len(), m);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hashing, raw, engine, erasure);
criterion_main!(benches);
