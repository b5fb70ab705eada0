//! Server CPU seconds per GiB of 64 MiB PUTs and GETs on the 4U chassis' shape (60 HDDs in
//! one ec:8+2 pool, 4 mirrored metadata SSDs, its chunk size and queue depths), file-backed
//! under `target/bench-scratch`, beside one core's MD5 and CRC32 rates in the same run (the
//! per-byte work a PUT cannot avoid), and the cores of the chassis it would take to fill its
//! 2 x 10GbE at that cost. The figures go into `hwprofiles/4u-1.5pb.toml`
//! (`put_cpu_seconds_per_gib`, `get_cpu_seconds_per_gib`), from which `hoard profile show`
//! prints the estimate (`cores_for_network`).
//!
//! ```text
//! cargo build --release -p hoard-appliance       # the server under test (or set HOARD_BIN)
//! cargo bench -p hoard-benches --bench s3_cpu
//! ```
//!
//! Settings (environment): `S3_CPU_OBJECTS` (64 MiB objects per phase, default 32),
//! `S3_CPU_CONCURRENCY` (requests in flight, default 4). The client is aws-sdk-s3 with its
//! defaults (aws-chunked bodies with a CRC32 trailer: the server decodes them, checks the
//! CRC32, computes the MD5 ETag, encodes the stripes and writes them durably); its own CPU is
//! not counted. Not a timed test: developers run it and report the figures.

use std::path::Path;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use md5::Digest;

#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{client, cpu_seconds, env_number, hoard_binary, Server};

const MIB: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const OBJECT_BYTES: usize = 64 * MIB;
const BUCKET: &str = "cpu";
/// What 2 x 10GbE carries at ~92% TCP payload, bytes per second (as `network_bound`).
const NETWORK_BYTES_PER_S: f64 = 2.0 * 10e9 / 8.0 * 0.92;

/// The 4U profile with its drives as files of a size this machine can hold, and the memory
/// and cores of this machine (which the CPU figure is measured on).
fn chassis_shaped_profile(work: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(s3_server::from_workspace(Path::new(
        "hwprofiles/4u-1.5pb.toml",
    )))
    .unwrap();
    let mut out = String::new();
    let mut section = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.to_string();
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("[chassis]", "cpu_cores") => Some("cpu_cores = 2".to_string()),
            ("[chassis]", "memory_bytes") => Some(format!("memory_bytes = {}", 4u64 << 30)),
            ("[ssd]", "size_bytes") => Some(format!("size_bytes = {}", 4u64 << 30)),
            ("[hdd]", "size_bytes") => Some(format!("size_bytes = {}", 16u64 << 30)),
            _ => None,
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    let names = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| format!("\"{prefix}{i}.img\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "\n[files]\nssd = [{}]\nhdd = [{}]\n",
        names("ssd", 4),
        names("hdd", 60)
    ));
    let path = work.join("4u-files.toml");
    std::fs::write(&path, out).unwrap();
    path
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let objects = env_number("S3_CPU_OBJECTS", 32);
    let concurrency = env_number("S3_CPU_CONCURRENCY", 4).max(1);
    let work = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch/s3-cpu");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let profile = chassis_shaped_profile(&work);

    // One core's per-byte work, in the same run.
    let body: Vec<u8> = (0..OBJECT_BYTES).map(|i| (i * 7 % 253) as u8).collect();
    let t = Instant::now();
    std::hint::black_box(md5::Md5::digest(&body));
    let md5_s_per_gib = t.elapsed().as_secs_f64() * GIB / OBJECT_BYTES as f64;
    let t = Instant::now();
    std::hint::black_box(crc32fast::hash(&body));
    let crc32_s_per_gib = t.elapsed().as_secs_f64() * GIB / OBJECT_BYTES as f64;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = work.join("data");
    let server = Server::start_args(
        &hoard_binary(),
        &data,
        port,
        &["--profile", profile.to_str().unwrap()],
    );
    let pid = server.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s3 = client(&server.endpoint);
    rt.block_on(s3.create_bucket().bucket(BUCKET).send())
        .unwrap();
    let body = bytes::Bytes::from(body);

    let phase = |name: &str, put: bool| {
        let cpu0 = cpu_seconds(pid);
        let t = Instant::now();
        rt.block_on(async {
            let mut next = 0;
            let mut running = tokio::task::JoinSet::new();
            while next < objects || !running.is_empty() {
                while next < objects && running.len() < concurrency {
                    let (s3, body, key) = (s3.clone(), body.clone(), format!("o{next}"));
                    running.spawn(async move {
                        if put {
                            s3.put_object()
                                .bucket(BUCKET)
                                .key(key)
                                .body(ByteStream::from(body))
                                .send()
                                .await
                                .unwrap();
                        } else {
                            let got = s3.get_object().bucket(BUCKET).key(key).send().await;
                            let got = got.unwrap().body.collect().await.unwrap();
                            assert_eq!(got.into_bytes().len(), body.len());
                        }
                    });
                    next += 1;
                }
                running.join_next().await.unwrap().unwrap();
            }
        });
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu0;
        let gib = (objects * OBJECT_BYTES) as f64 / GIB;
        let per_gib = cpu / gib;
        println!(
            "{name:<4} {objects} x 64 MiB, {concurrency} in flight: {:>7.1} MiB/s, server CPU {per_gib:.2} s/GiB; 2 x 10GbE ({:.2} GB/s) would take {:.1} cores",
            gib * 1024.0 / wall,
            NETWORK_BYTES_PER_S / 1e9,
            per_gib * NETWORK_BYTES_PER_S / GIB
        );
        per_gib
    };
    println!(
        "s3_cpu: the 4U's shape file-backed (60 HDD files, ec:8+2, 4 SSD files) under {}",
        work.display()
    );
    println!(
        "one core: MD5 {md5_s_per_gib:.2} s/GiB ({:.0} MiB/s), CRC32 {crc32_s_per_gib:.3} s/GiB",
        1024.0 / md5_s_per_gib
    );
    phase("PUT", true);
    phase("GET", false);
    let (_, peak) = server.resident_bytes();
    println!("server peak RSS {} MiB", peak >> 20);
    server.stop();
    let _ = std::fs::remove_dir_all(&work);
}
