//! `kill -9` of a running server while clients write concurrently: after a restart every
//! acknowledged object reads back byte-identical, and nothing half-written is visible.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use parking_lot::Mutex;

use crate::support::{body_bytes, md5_hex, pattern, scratch_dir, Server};

/// Version `v` of key `k`: its bytes are a function of (k, v), so any content can be checked.
fn content(writer: u64, key: u64, version: u64) -> Vec<u8> {
    let seed = writer << 40 | key << 20 | version;
    let size = [0usize, 1, 777, 4096, 70_000, 1_100_000, 2_700_000][(seed % 7) as usize];
    pattern(seed, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let scratch = scratch_dir();
    let mut server = Server::start_in(scratch.path(), None);
    let s3 = server.client();
    s3.create_bucket().bucket("crash").send().await.unwrap();

    // (writer, key) -> highest acknowledged version.
    let acked: Arc<Mutex<HashMap<(u64, u64), u64>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..8u64 {
        let s3 = s3.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for version in 1.. {
                // Each writer cycles over 6 keys, so keys are overwritten while the crash hits.
                let key = version % 6;
                let body = content(writer, key, version);
                let result = s3
                    .put_object()
                    .bucket("crash")
                    .key(format!("w{writer}/k{key}"))
                    .metadata("version", version.to_string())
                    .body(ByteStream::from(body))
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        acked.lock().insert((writer, key), version);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    assert!(
        acked.len() >= 8,
        "writers made progress before the kill: {acked:?}"
    );

    let server = Server::start_in(scratch.path(), None);
    let s3 = server.client();
    let listed = s3.list_objects_v2().bucket("crash").send().await.unwrap();
    let mut seen = 0;
    for object in listed.contents() {
        let key = object.key().unwrap();
        let (w, k) = key.trim_start_matches('w').split_once("/k").unwrap();
        let (writer, k): (u64, u64) = (w.parse().unwrap(), k.parse().unwrap());
        let got = s3
            .get_object()
            .bucket("crash")
            .key(key)
            .send()
            .await
            .unwrap();
        let version: u64 = got.metadata().unwrap()["version"].parse().unwrap();
        let bytes = body_bytes(got).await;
        // Whole: exactly the content of the version its metadata names.
        assert!(
            bytes == content(writer, k, version),
            "{key}: torn or mixed content for version {version}"
        );
        assert_eq!(object.e_tag().unwrap().trim_matches('"'), md5_hex(&bytes));
        // Durable: never older than what was acknowledged.
        if let Some(&a) = acked.get(&(writer, k)) {
            assert!(
                version >= a,
                "{key}: version {version} is older than acknowledged {a}"
            );
        }
        seen += 1;
    }
    for (writer, k) in acked.keys() {
        assert!(
            listed
                .contents()
                .iter()
                .any(|o| o.key() == Some(&format!("w{writer}/k{k}"))),
            "acknowledged w{writer}/k{k} is missing"
        );
    }
    assert!(seen >= acked.len());
}
