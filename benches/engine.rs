//! Engine throughput beside the raw device.
//!
//! `cargo bench -p hoard-benches --bench engine` measures, on the dev profile's four data files
//! (O_DIRECT, the profile's I/O backend):
//! - `raw/write` and `raw/read`: 1 MiB sequential durable writes and reads through the device
//!   layer, round-robin over the four files, as many in flight as a put keeps — the physical
//!   limit the engine is compared with;
//! - `put` and `get`: engine puts and gets of 4 KiB, 1 MiB and 64 MiB objects;
//! - `hash/md5` and `hash/crc32c`: the per-byte CPU work every put does, for reference.
//!
//! Throughput is in bytes (criterion's `Throughput::Bytes`); the ratios engine/raw go in the
//! closing note of the change that measured them.

use std::io::Read;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoard::{Profile, PutOptions, Store, StoreOptions};

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
    store.create_bucket("bench", "bench").unwrap();
    let sizes = [("4KiB", 4096usize), ("1MiB", MIB), ("64MiB", 64 * MIB)];
    let mut group = c.benchmark_group("put");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (name, size) in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| {
                n += 1;
                store
                    .put_object(
                        "bench",
                        &format!("{name}/{}", n % 64),
                        &mut &data[..],
                        PutOptions::default(),
                    )
                    .unwrap();
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("get");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (name, size) in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        store
            .put_object(
                "bench",
                &format!("get/{name}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        let mut sink = vec![0u8; 256 * 1024];
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut r = store
                    .get_object("bench", &format!("get/{name}"), None)
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

criterion_group!(benches, hashing, raw, engine);
criterion_main!(benches);
