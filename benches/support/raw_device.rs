//! The physical limit the benchmarks are set beside (`#[path]`-included by each): 1 MiB
//! sequential durable writes and reads through the device layer on four files like the dev
//! profile's data files (O_DIRECT, the profile's I/O backend), round-robin, as many in flight
//! as a put keeps.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use hoard::device::{create_device_file, AlignedBuf, Device, IoBackend};
use hoard::Profile;

const DEV_PROFILE: &str = include_str!("../../hwprofiles/dev.toml");
const MIB: usize = 1 << 20;

/// A scratch directory on the target's filesystem (O_DIRECT works there, not on tmpfs).
pub fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// `HOARD_IO_BACKEND`, else auto.
pub fn backend() -> IoBackend {
    std::env::var("HOARD_IO_BACKEND")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(IoBackend::Auto)
}

/// Criterion group `raw`: `write` and `read` of 64 MiB.
pub fn raw(c: &mut Criterion) {
    let profile = Profile::parse(DEV_PROFILE).unwrap();
    let config = profile.derive();
    let dir = scratch();
    let devices: Vec<Device> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("raw{i}.img"));
            create_device_file(&path, profile.hdd.size_bytes, 0).unwrap();
            Device::open(&path, backend(), config.data_queue_depth).unwrap()
        })
        .collect();
    let in_flight = config.chunks_in_flight_per_stream as usize;
    let total = 64 * MIB;
    let mut group = c.benchmark_group("raw");
    group
        .throughput(Throughput::Bytes(total as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let region = (profile.hdd.size_bytes / 2) as usize;
    let mut cursor = 0usize;
    group.bench_function("write", |b| {
        b.iter(|| {
            let mut pending = VecDeque::new();
            for i in 0..total / MIB {
                let dev = &devices[i % devices.len()];
                let offset = (MIB + (cursor % region)) as u64;
                cursor += MIB;
                pending.push_back(
                    dev.submit_write(AlignedBuf::new(MIB), offset, true)
                        .unwrap(),
                );
                if pending.len() >= in_flight {
                    pending.pop_front().unwrap().wait().unwrap();
                }
            }
            for p in pending {
                p.wait().unwrap();
            }
        })
    });
    group.bench_function("read", |b| {
        let mut at = 0usize;
        b.iter(|| {
            let mut pending = VecDeque::new();
            for i in 0..total / MIB {
                let dev = &devices[i % devices.len()];
                let offset = (MIB + (at % region)) as u64;
                at += MIB;
                pending.push_back(dev.submit_read(AlignedBuf::new(MIB), offset).unwrap());
                if pending.len() >= in_flight {
                    pending.pop_front().unwrap().wait().unwrap();
                }
            }
            for p in pending {
                p.wait().unwrap();
            }
        })
    });
    group.finish();
}
