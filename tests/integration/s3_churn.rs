//! Churn through S3 on the shipped profiles' own derived settings (no `[engine]` overrides):
//! 8 writers overwrite and delete a working set of 256 KiB objects through aws-sdk-s3 until 3x
//! the pool's raw bytes were written. No write may be refused while the pool has room, and every
//! current object must read back intact, also after a restart.
//!
//! Two geometries: the dev profile with 1 GiB HDD files (4 HDDs, `ec:2+1`), and the QEMU
//! appliance's (2 SSDs, 8 HDDs, `ec:4+2`) file-backed. CI runs the QEMU geometry with 512 MiB
//! HDDs (12 GiB of writes; ~2.5 min with the optimized build);
//! `HOARD_CHURN_QEMU_HDD_BYTES=8589934592` runs it at the appliance's real 8 GiB (192 GiB of
//! writes: a long run). The server is the optimized build when one is current
//! ([`crate::support::optimized_binary`]: CI's image build makes one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use parking_lot::Mutex;

use crate::support::{body_bytes, error_code, pattern, xml_number, Server};

const OBJECT_BYTES: usize = 256 << 10;
const WRITERS: u64 = 8;
const GIB: u64 = 1 << 30;

/// `profile` with its `[hdd]` size set to `hdd_bytes`.
fn with_hdd_bytes(profile: &str, hdd_bytes: u64) -> String {
    let mut in_hdd = false;
    let mut out = String::new();
    for line in profile.lines() {
        if line.starts_with('[') {
            in_hdd = line.trim() == "[hdd]";
        }
        if in_hdd && line.starts_with("size_bytes") {
            out.push_str(&format!("size_bytes = {hdd_bytes}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_on_the_dev_profile_with_1_gib_hdds_never_refuses_a_write() {
    let dev = include_str!("../../hwprofiles/dev.toml");
    churn("dev-1g", &with_hdd_bytes(dev, GIB), 300 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_on_the_qemu_geometry_never_refuses_a_write() {
    let hdd_bytes = std::env::var("HOARD_CHURN_QEMU_HDD_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GIB / 2);
    let qemu = include_str!("../../hwprofiles/qemu.toml");
    let files: Vec<String> = (0..8).map(|i| format!("\"hdd{i}.img\"")).collect();
    let profile = format!(
        "{}\n[files]\nssd = [\"ssd0.img\", \"ssd1.img\"]\nhdd = [{}]\n",
        with_hdd_bytes(qemu, hdd_bytes),
        files.join(", ")
    );
    // A working set of ~10% of the raw bytes, as the dev case (300 MiB of 4 GiB ~ 7%).
    churn("qemu", &profile, 8 * hdd_bytes / 10).await;
}

async fn churn(name: &str, profile_toml: &str, working_set_bytes: u64) {
    let scratch = crate::support::scratch_dir();
    let profile = scratch.path().join(format!("{name}.toml"));
    std::fs::write(&profile, profile_toml).unwrap();
    let data = scratch.path().join("data");
    // 3x the raw space is tens of GiB: the optimized build when there is one.
    let bin = crate::support::optimized_binary();
    println!("{name} churn runs {}", bin.display());
    let mut server = Server::start_binary_with_profile(&bin, &data, &profile);
    let s3 = server.client();
    s3.create_bucket().bucket("churn").send().await.unwrap();
    let raw = xml_number(&server.status(), "RawBytes");
    let keys = (working_set_bytes / OBJECT_BYTES as u64).max(WRITERS);
    let target = 3 * raw;
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The model: each writer owns the keys k = writer (mod WRITERS), so it is the only one to
    // change them and knows what each holds.
    let model: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (s3, written, model) = (s3.clone(), written.clone(), model.clone());
        let endpoint = server.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mine = keys / WRITERS;
            let (mut step, mut x) = (0u64, w * 0x9E37_79B9 + 1);
            while written.load(std::sync::atomic::Ordering::Relaxed) < target {
                step += 1;
                // A uniformly random key (xorshift64): overwrites leave segments partly live,
                // so space comes back only by collection, not by whole segments dying in order.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = w + WRITERS * (x % mine);
                if step % 9 == 0 {
                    s3.delete_object()
                        .bucket("churn")
                        .key(format!("k{k}"))
                        .send()
                        .await
                        .unwrap();
                    model.lock().remove(&k);
                    continue;
                }
                let seed = w << 40 | step;
                let body = pattern(seed, OBJECT_BYTES);
                if let Err(e) = s3
                    .put_object()
                    .bucket("churn")
                    .key(format!("k{k}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                {
                    let done = written.load(std::sync::atomic::Ordering::Relaxed);
                    let (_, status) = crate::support::curl(
                        &format!("{endpoint}/_hoard/status"),
                        "GET",
                        Some((crate::support::ACCESS_KEY, crate::support::SECRET_KEY)),
                    );
                    // The space and the collector's part of the status document.
                    let space = status
                        .find("<Space>")
                        .map_or(&status[..], |at| &status[at..]);
                    let space = &space[..space.find("<Lifecycle>").unwrap_or(space.len())];
                    panic!(
                        "writer {w}: PUT refused after {} MiB of {} MiB: {:?}\n{space}",
                        done >> 20,
                        target >> 20,
                        error_code(&e)
                    );
                }
                model.lock().insert(k, seed);
                written.fetch_add(OBJECT_BYTES as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let churn_s = started.elapsed().as_secs_f64();
    let doc = server.status();
    println!(
        "{name} churn: {} MiB written by {WRITERS} writers over a {} MiB pool ({} keys) in {churn_s:.1} s ({:.0} MB/s); gc freed {} segments, moved {} MiB in {} passes",
        written.load(std::sync::atomic::Ordering::Relaxed) >> 20,
        raw >> 20,
        keys,
        written.load(std::sync::atomic::Ordering::Relaxed) as f64 / churn_s / 1e6,
        xml_number(&doc, "SegmentsFreed"),
        xml_number(&doc, "BytesWritten") >> 20,
        xml_number(&doc, "Passes")
    );
    assert!(
        xml_number(&doc, "SegmentsFreed") > 0,
        "the collector freed segments: {doc}"
    );
    let model = model.lock().clone();
    verify(&server, &model).await;
    server.stop();
    let server = Server::start_binary_with_profile(&bin, &data, &profile);
    verify(&server, &model).await;
}

/// Every key of `model` reads back as written, and no other key is listed.
async fn verify(server: &Server, model: &BTreeMap<u64, u64>) {
    let s3 = server.client();
    for (k, seed) in model {
        let got = s3
            .get_object()
            .bucket("churn")
            .key(format!("k{k}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET k{k}: {:?}", error_code(&e)));
        assert!(
            body_bytes(got).await == pattern(*seed, OBJECT_BYTES),
            "k{k} reads back as written"
        );
    }
    let mut listed = 0usize;
    let mut pages = s3.list_objects_v2().bucket("churn").into_paginator().send();
    while let Some(page) = pages.next().await {
        listed += page.unwrap().contents().len();
    }
    assert_eq!(
        listed,
        model.len(),
        "the listing holds exactly the live keys"
    );
}
