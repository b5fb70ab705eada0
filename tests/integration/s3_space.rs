//! Space through S3, on real files: the real `hoard serve` with its garbage collector churns a
//! working set of half the pool (overwrites and deletes through aws-sdk-s3) for 3x the pool's
//! raw bytes without a write refused; then the pool is filled until PUT and
//! CreateMultipartUpload answer `507 InsufficientStorage` naming the pool, while GET, LIST and
//! DELETE work; after deletes, PUT succeeds again. The status document shows the space.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::support::{
    body_bytes, error_code, error_status, pattern, small_profile_toml, xml_number, Server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_through_s3_never_fills_and_a_full_pool_answers_507_then_recovers() {
    let scratch = crate::support::scratch_dir();
    let profile = scratch.path().join("small.toml");
    std::fs::write(
        &profile,
        small_profile_toml(
            4,
            64 << 20,
            "gc_interval_ms = 50\n[[pool]]\nname = \"default\"\nhdd_slots = [0, 1, 2, 3]\nprotection = \"ec:2+1\"",
        ),
    )
    .unwrap();
    let data = scratch.path().join("data");
    let server = Server::start_with_profile(&data, &profile);
    let s3 = server.client();
    s3.create_bucket().bucket("churn").send().await.unwrap();
    let raw = xml_number(&server.status(), "RawBytes");
    assert!(raw > 200 << 20, "the pool's raw space is shown: {raw}");

    // Churn: a working set of half the pool (in stored bytes: 1.5x under ec:2+1).
    let object_bytes = 512 << 10;
    let keys = raw / 2 * 2 / 3 / object_bytes as u64;
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let (mut written, mut step) = (0u64, 0u64);
    let started = Instant::now();
    while written < 3 * raw {
        step += 1;
        let k = (step * 7919) % keys;
        if step % 9 == 0 {
            s3.delete_object()
                .bucket("churn")
                .key(format!("k{k}"))
                .send()
                .await
                .unwrap();
            model.remove(&k);
            continue;
        }
        let body = pattern(step, object_bytes + (step as usize % 4096));
        if let Err(e) = s3
            .put_object()
            .bucket("churn")
            .key(format!("k{k}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
        {
            panic!(
                "put {step} refused after {} MiB of {} MiB: {:?}\n{}",
                written >> 20,
                3 * raw >> 20,
                error_code(&e),
                server.status()
            );
        }
        written += body.len() as u64 * 3 / 2;
        model.insert(k, body);
    }
    let churn_s = started.elapsed().as_secs_f64();
    for (k, want) in &model {
        let got = s3
            .get_object()
            .bucket("churn")
            .key(format!("k{k}"))
            .send()
            .await
            .unwrap();
        assert!(&body_bytes(got).await == want, "k{k}");
    }
    let doc = server.status();
    assert!(
        xml_number(&doc, "SegmentsFreed") > 0,
        "the collector freed segments: {doc}"
    );
    println!(
        "s3 churn: {} MiB stored over a {} MiB pool in {churn_s:.1} s; gc freed {} segments, moved {} MiB in {} passes",
        written >> 20,
        raw >> 20,
        xml_number(&doc, "SegmentsFreed"),
        xml_number(&doc, "BytesWritten") >> 20,
        xml_number(&doc, "Passes")
    );

    // Fill the pool until it refuses.
    s3.create_bucket().bucket("fill").send().await.unwrap();
    let mut filled = 0u64;
    let refusal = loop {
        let body = pattern(10_000 + filled, 1 << 20);
        match s3
            .put_object()
            .bucket("fill")
            .key(format!("f{filled}"))
            .body(ByteStream::from(body))
            .send()
            .await
        {
            Ok(_) => filled += 1,
            Err(e) => break e,
        }
        assert!(filled < 400, "a 4 x 64 MiB pool fills");
    };
    assert_eq!(error_status(&refusal), Some(507), "{refusal:?}");
    assert_eq!(error_code(&refusal).as_deref(), Some("InsufficientStorage"));
    let message = refusal
        .as_service_error()
        .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::message(e))
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("pool default"), "{message}");
    let err = s3
        .create_multipart_upload()
        .bucket("fill")
        .key("mp")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InsufficientStorage"));
    // Reads, listings and deletes go on.
    let got = s3
        .get_object()
        .bucket("fill")
        .key("f0")
        .send()
        .await
        .unwrap();
    assert!(body_bytes(got).await == pattern(10_000, 1 << 20));
    let listed = s3.list_objects_v2().bucket("fill").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(filled.min(1000) as i32));
    for f in 0..filled {
        s3.delete_object()
            .bucket("fill")
            .key(format!("f{f}"))
            .send()
            .await
            .unwrap();
    }
    // The space comes back: at once where whole segments died, after the collector otherwise.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s3
            .put_object()
            .bucket("fill")
            .key("after")
            .body(ByteStream::from(pattern(7, 1 << 20)))
            .send()
            .await;
        match r {
            Ok(_) => break,
            Err(e) if error_status(&e) == Some(507) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("PUT after deletes: {:?}", error_code(&e)),
        }
    }
    let doc = server.status();
    for tag in [
        "<Space>",
        "<Pool>",
        "LiveBytes",
        "ReclaimableBytes",
        "<GarbageCollection>",
    ] {
        assert!(doc.contains(tag), "status shows {tag}: {doc}");
    }
}
