//! Per-bucket protection through S3: `x-hoard-protection` at CreateBucket (validated against
//! the pool), `GET ?x-hoard-protection`, and a `replicas:2` and an `ec:2+1` bucket on real
//! files that lose an HDD file: every object still reads back byte-exact through aws-sdk-s3;
//! the blank file `hoard serve` puts in its place is adopted and rebuilt by the repair worker,
//! an admin-requested scrub runs, and then a *different* HDD file may be lost (redundancy
//! really returned).

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;

use crate::support::{body_bytes, curl, pattern, xml_number, Server, ACCESS_KEY, SECRET_KEY};

/// Polls the status document until `done` holds (at most 120 s); returns it.
fn wait_for_status(server: &Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let doc = server.status();
        if done(&doc) {
            return doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within 120 s: {doc}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A signed request with `x-hoard-protection` (curl's own SigV4); returns (status, body).
fn create_bucket(server: &Server, bucket: &str, protection: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-X", "PUT", "-w", "\n%{http_code}"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["-H", &format!("x-hoard-protection: {protection}")])
        .arg(format!("{}/{bucket}", server.endpoint))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_and_erasure_coded_buckets_read_back_after_losing_an_hdd_file() {
    let scratch = crate::support::scratch_dir();
    let mut server = Server::start_in(scratch.path(), None);
    assert_eq!(create_bucket(&server, "twocopies", "replicas:2").0, 200);
    assert_eq!(create_bucket(&server, "striped", "ec:2+1").0, 200);
    let (code, body) = create_bucket(&server, "toowide", "replicas:9");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("InvalidArgument") && body.contains("the pool has 4"),
        "{body}"
    );
    let (code, body) = create_bucket(&server, "garbled", "mirror:2");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("x-hoard-protection"), "{body}");
    let (code, body) = curl(
        &format!("{}/twocopies?x-hoard-protection=", server.endpoint),
        "GET",
        Some((ACCESS_KEY, SECRET_KEY)),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(">replicas:2</Protection>"), "{body}");

    let s3 = server.client();
    let objects: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            (
                format!("obj-{i}"),
                pattern(i, 100_000 + i as usize * 700_000),
            )
        })
        .collect();
    for bucket in ["twocopies", "striped"] {
        for (key, data) in &objects {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(server.stop(), Some(0));
    // The drive is gone; `hoard serve` starts with a blank file in its place, adopts it
    // and rebuilds onto it, while every object reads back.
    std::fs::remove_file(scratch.path().join("hdd1.img")).unwrap();
    let mut server = Server::start_in(scratch.path(), None);
    let check = |server: &Server| {
        let s3 = server.client();
        let objects = objects.clone();
        async move {
            for bucket in ["twocopies", "striped"] {
                for (key, data) in &objects {
                    let got = s3
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(&body_bytes(got).await, data, "{bucket}/{key}");
                }
            }
        }
    };
    check(&server).await;
    let doc = wait_for_status(&server, "the rebuild finishes", |doc| {
        doc.contains("<LastRebuild>") && !doc.contains("<LostDataSlot>")
    });
    assert!(
        doc.contains("<RebuildPending>false</RebuildPending>"),
        "{doc}"
    );
    let rebuild = &doc[doc.find("<LastRebuild>").unwrap()..];
    assert!(xml_number(rebuild, "ShardsRepaired") > 0, "{doc}");
    assert_eq!(xml_number(rebuild, "Unrecoverable"), 0, "{doc}");

    // A scrub on request: every copy and shard read and found good.
    let (code, body) = curl(
        &format!("{}/_hoard/scrub", server.endpoint),
        "POST",
        Some((ACCESS_KEY, SECRET_KEY)),
    );
    assert_eq!(code, 202, "{body}");
    let doc = wait_for_status(&server, "the scrub finishes", |doc| {
        doc.contains("<LastScrub>") && !doc.contains("<RunningPass>")
    });
    let scrub = &doc[doc.find("<LastScrub>").unwrap()..];
    assert!(xml_number(scrub, "ChunksChecked") > 0, "{doc}");
    assert_eq!(xml_number(scrub, "ShardsRepaired"), 0, "{doc}");
    assert_eq!(server.stop(), Some(0));

    // Redundancy returned: a different drive may now go.
    std::fs::remove_file(scratch.path().join("hdd2.img")).unwrap();
    let server = Server::start_in(scratch.path(), None);
    check(&server).await;
}
