//! The front door under hostile or careless clients: stalled readers and trickled aws-chunked
//! uploads neither stall other clients nor grow memory; unsigned headers, mixed auth
//! mechanisms and presigned admin requests are refused; buckets survive a key rotation.
//! Hostile requests are raw (TcpStream, curl); the well-behaved client is aws-sdk-s3.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::support::{
    body_bytes, client_with, curl, error_code, pattern, xml_number, Server, ACCESS_KEY, SECRET_KEY,
};

fn host_and_path(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.to_string(), format!("/{path}"))
}

/// A presigned URL (SigV4 query auth, valid 10 minutes) for GetObject.
async fn presign_get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let config = PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();
    let request = s3.get_object().bucket(bucket).key(key).presigned(config);
    request.await.unwrap().uri().to_string()
}

/// A presigned URL (SigV4 query auth, valid 10 minutes) for PutObject.
async fn presign_put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let config = PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();
    let request = s3.put_object().bucket(bucket).key(key).presigned(config);
    request.await.unwrap().uri().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_and_trickled_uploads_neither_stall_others_nor_grow_memory() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("slow").send().await.unwrap();
    let big = pattern(7, 8 << 20);
    s3.put_object()
        .bucket("slow")
        .key("big")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    let url = presign_get(&s3, "slow", "big").await;
    let (host, path) = host_and_path(&url);
    let before = server.status();
    let rss_before = xml_number(&before, "ResidentBytes");
    let budget = xml_number(&before, "BudgetBytes");

    // 64 presigned GETs of an 8 MiB object whose clients never read a byte.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut c = TcpStream::connect(&host).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        stalled.push(c);
    }
    // 60 signed aws-chunked uploads that declare 16 MiB chunks and send one byte of each.
    let mut trickles = Vec::new();
    for i in 0..60 {
        let mut child = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-T", "-"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            .args([
                "-H",
                "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            ])
            .args(["-H", "x-amz-decoded-content-length: 16777216"])
            .args(["-H", "x-amz-trailer: x-amz-checksum-crc32"])
            .args(["-H", "content-encoding: aws-chunked"])
            .arg(format!("{}/slow/trickle-{i}", server.endpoint))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run curl");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"1000000\r\nx").unwrap();
        stdin.flush().unwrap();
        trickles.push((child, stdin));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Another client keeps getting answers: list, head, small put and get, a big get.
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        let t = Instant::now();
        s3.list_objects_v2().bucket("slow").send().await.unwrap();
        s3.head_object()
            .bucket("slow")
            .key("big")
            .send()
            .await
            .unwrap();
        let key = format!("small-{round}");
        s3.put_object()
            .bucket("slow")
            .key(&key)
            .body(ByteStream::from_static(b"answered"))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("slow")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(body_bytes(got).await, b"answered");
        slowest = slowest.max(t.elapsed());
    }
    let t = Instant::now();
    let got = s3.get_object().bucket("slow").key("big").send().await;
    let big_get = t.elapsed();
    match got {
        Ok(out) => assert_eq!(body_bytes(out).await, big),
        // Every data stream may be held by the stalled readers: the answer is SlowDown.
        Err(e) => assert_eq!(error_code(&e).as_deref(), Some("SlowDown"), "{e:?}"),
    }
    let during = server.status();
    let rss_during = xml_number(&during, "ResidentBytes");
    let peak = xml_number(&during, "PeakResidentBytes");
    println!(
        "with 64 stalled readers and 60 trickled uploads: slowest round of 4 requests {slowest:?}, \
         big GET {big_get:?}; resident {} MiB -> {} MiB (peak {} MiB, budget {} MiB), \
         S3 body buffers {} KiB, streams {}",
        rss_before >> 20,
        rss_during >> 20,
        peak >> 20,
        budget >> 20,
        xml_number(&during, "RequestBufferBytes") >> 10,
        xml_number(&during, "StreamsInFlight"),
    );
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    assert!(
        peak < budget,
        "peak resident {peak} over the budget {budget}"
    );
    // Declared chunk sizes were not allocated: 60 x 16 MiB would be 960 MiB. (What the
    // process does hold is bounded by the budget: the 16 stalled GETs' read-ahead, stripe
    // shards and frames.)
    assert!(
        rss_during < rss_before + (480 << 20),
        "{rss_before} -> {rss_during}"
    );
    drop(stalled);
    for (mut child, stdin) in trickles {
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
    // No trickled upload became an object.
    let listed = s3
        .list_objects_v2()
        .bucket("slow")
        .prefix("trickle")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_headers_mixed_auth_and_presigned_admin_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("door").send().await.unwrap();
    let put_url = presign_put(&s3, "door", "page.html").await;
    // The holder of a presigned PUT adds metadata of its own: refused.
    let added = ureq::put(&put_url)
        .set("x-amz-meta-injected", "yes")
        .send_bytes(b"<script>")
        .unwrap_err();
    let ureq::Error::Status(code, resp) = added else {
        panic!("{added:?}")
    };
    let body = resp.into_string().unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("<Code>AccessDenied</Code>") && body.contains("x-amz-meta-injected"),
        "{body}"
    );
    assert!(ureq::put(&put_url).send_bytes(b"plain").is_ok());

    // Keys that XML 1.0 listings could not carry are refused where objects are created.
    let err = s3
        .put_object()
        .bucket("door")
        .key("bell\u{7}")
        .body(ByteStream::from_static(b"ding"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidArgument"));

    // A signed Authorization header together with query auth.
    let get_url = presign_get(&s3, "door", "page.html").await;
    let (code, body) = curl(&get_url, "GET", Some((ACCESS_KEY, SECRET_KEY)));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("<Code>InvalidArgument</Code>"), "{body}");

    // Admin requests: never by a presigned URL; in virtual-host style `_hoard/status` is a key.
    let admin = client_with(&server.endpoint, ACCESS_KEY, SECRET_KEY);
    let presigned_status = presign_get(&admin, "_hoard", "status").await;
    let refused = ureq::get(&presigned_status).call().unwrap_err();
    let ureq::Error::Status(code, resp) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(code, 403, "{}", resp.into_string().unwrap());
    s3.put_object()
        .bucket("door")
        .key("_hoard/status")
        .body(ByteStream::from_static(b"a key, not a request"))
        .send()
        .await
        .unwrap();
    let port = server.endpoint.rsplit(':').next().unwrap();
    let out = Command::new("curl")
        .args(["-s", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["--resolve", &format!("door.localhost:{port}:127.0.0.1")])
        .arg(format!("http://door.localhost:{port}/_hoard/status"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a key, not a request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_belong_to_the_account_and_survive_a_key_rotation() {
    let scratch = crate::support::scratch_dir();
    let mut first = Server::start_with_key(
        scratch.path(),
        None,
        "OLDKEY0000000000000A",
        "old-secret-0123456789",
    );
    let s3 = client_with(
        &first.endpoint,
        "OLDKEY0000000000000A",
        "old-secret-0123456789",
    );
    s3.create_bucket().bucket("kept").send().await.unwrap();
    s3.put_object()
        .bucket("kept")
        .key("k")
        .body(ByteStream::from_static(b"mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.stop(), Some(0));
    let second = Server::start_with_key(
        scratch.path(),
        None,
        "NEWKEY0000000000000B",
        "new-secret-0123456789",
    );
    let s3 = client_with(
        &second.endpoint,
        "NEWKEY0000000000000B",
        "new-secret-0123456789",
    );
    let got = s3
        .get_object()
        .bucket("kept")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(body_bytes(got).await, b"mine");
    let buckets = s3.list_buckets().send().await.unwrap();
    assert_eq!(buckets.buckets().len(), 1);
    let owner = buckets.owner().and_then(|o| o.id()).unwrap().to_string();
    assert!(
        owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()),
        "{owner}"
    );
}

/// The secret is printed in full once, when generated; later starts show only its ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_secret_is_printed_once() {
    let scratch = crate::support::scratch_dir();
    let mut first = Server::start_with_key(scratch.path(), None, "", "");
    let stored = std::fs::read_to_string(scratch.path().join("credentials")).unwrap();
    let mut lines = stored.lines();
    let (access, secret) = (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    );
    let printed = |server: &Server| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.stdout().contains("credentials") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        server.stdout()
    };
    assert!(printed(&first).contains(&secret), "{}", first.stdout());
    assert_eq!(first.stop(), Some(0));
    let second = Server::start_with_key(scratch.path(), None, "", "");
    let out = printed(&second);
    assert!(out.contains(&access) && out.contains("(stored)"), "{out}");
    assert!(
        !out.contains(&secret),
        "the secret was printed again: {out}"
    );
    // The kept key still works.
    client_with(&second.endpoint, &access, &secret)
        .list_buckets()
        .send()
        .await
        .unwrap();
}

/// XML request bodies are checked against Content-MD5; DeleteObjects needs a digest; a SigV4
/// scope naming another region is refused naming ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_bodies_are_verified_and_scopes_checked() {
    use base64::Engine;
    use md5::Digest;

    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("digests").send().await.unwrap();
    s3.put_object()
        .bucket("digests")
        .key("k")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    let delete = "<Delete><Object><Key>k</Key></Object></Delete>";
    let post = |md5: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", "POST", "-w", "\n%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--data-binary", delete]);
        if let Some(m) = md5 {
            cmd.args(["-H", &format!("Content-MD5: {m}")]);
        }
        let out = cmd
            .arg(format!("{}/digests?delete=", server.endpoint))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse::<u16>().unwrap(), body.to_string())
    };
    let (code, body) = post(None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
    let (code, body) = post(Some("1B2M2Y8AsgTpgAmY7PhCfg=="));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("<Code>BadDigest</Code>"), "{body}");
    // Nothing was deleted by the refused requests; the right digest deletes.
    s3.head_object()
        .bucket("digests")
        .key("k")
        .send()
        .await
        .unwrap();
    let right = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(delete));
    let (code, body) = post(Some(&right));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<Deleted><Key>k</Key></Deleted>"), "{body}");

    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-1"))
        .endpoint_url(&server.endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        ))
        .force_path_style(true)
        .build();
    let err = aws_sdk_s3::Client::from_conf(conf)
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&err).as_deref(),
        Some("AuthorizationHeaderMalformed")
    );
    assert!(
        format!("{err:?}").contains("expecting 'us-east-1'"),
        "{err:?}"
    );
}
