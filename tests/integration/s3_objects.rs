//! Buckets and single-part objects through aws-sdk-s3 with its default checksum settings.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

use crate::support::{body_bytes, error_code, error_status, md5_hex, pattern, scratch_dir, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.head_bucket().bucket("alpha").send().await.unwrap();
    // Re-creating one's own bucket in us-east-1 is S3's legacy 200 (409 BucketAlreadyOwnedByYou
    // in every other region; `tests/scripts/test_answers.py` checks both).
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    let bad = s3
        .create_bucket()
        .bucket("Bad_Name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&bad).as_deref(), Some("InvalidBucketName"));
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, vec!["alpha"]);
    let loc = s3
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint().is_none()
            || loc.location_constraint().unwrap().as_str().is_empty()
    );

    s3.put_object()
        .bucket("alpha")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(error_code(&not_empty).as_deref(), Some("BucketNotEmpty"));
    s3.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.head_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(error_status(&gone), Some(404));
    let missing = s3
        .list_objects_v2()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&missing).as_deref(), Some("NoSuchBucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_every_size_roundtrip_signed_and_streaming() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("sizes").send().await.unwrap();
    let scratch = scratch_dir();
    for (i, size) in [0usize, 1, 4096, (5 << 20) + 1].into_iter().enumerate() {
        let data = pattern(i as u64, size);
        // In-memory body: signed payload + x-amz-checksum-crc32.
        let key = format!("mem/{size}");
        let put = s3
            .put_object()
            .bucket("sizes")
            .key(&key)
            .content_type("application/x-test")
            .metadata("origin", "memory")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.e_tag(),
            Some(format!("\"{}\"", md5_hex(&data)).as_str())
        );
        let got = s3
            .get_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("application/x-test"));
        assert_eq!(
            got.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("memory")
        );
        assert_eq!(got.content_length(), Some(size as i64));
        assert!(
            body_bytes(got).await == data,
            "in-memory body of {size} bytes differs"
        );

        // File body: aws-chunked with a signed trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER).
        let path = scratch.path().join(format!("f{size}"));
        std::fs::write(&path, &data).unwrap();
        let key = format!("file/{size}");
        s3.put_object()
            .bucket("sizes")
            .key(&key)
            .body(ByteStream::from_path(&path).await.unwrap())
            .send()
            .await
            .unwrap();
        let head = s3
            .head_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(size as i64));
        assert_eq!(
            head.e_tag(),
            Some(format!("\"{}\"", md5_hex(&data)).as_str())
        );
        let got = s3
            .get_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert!(
            body_bytes(got).await == data,
            "streamed body of {size} bytes differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flexible_checksum_is_verified_and_returned() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("sums").send().await.unwrap();
    let data = pattern(9, 300_000);
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("k-{}", algorithm.as_str());
        s3.put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e:?}"));
        // With checksum mode on, the SDK validates the returned checksum against the body.
        let got = s3
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let returned = [
            got.checksum_crc32(),
            got.checksum_crc32_c(),
            got.checksum_crc64_nvme(),
            got.checksum_sha1(),
            got.checksum_sha256(),
        ];
        assert_eq!(
            returned.iter().flatten().count(),
            1,
            "{algorithm:?}: one checksum returned"
        );
        assert!(body_bytes(got).await == data);
    }
    // A wrong checksum is refused and stores nothing.
    let err = s3
        .put_object()
        .bucket("sums")
        .key("wrong")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BadDigest"));
    let err = s3
        .head_object()
        .bucket("sums")
        .key("wrong")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&err), Some(404));
    // A wrong Content-MD5 is refused.
    let err = s3
        .put_object()
        .bucket("sums")
        .key("wrong-md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BadDigest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_missing_keys() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ranges").send().await.unwrap();
    let size = (3 << 20) + 123;
    let data = pattern(5, size);
    s3.put_object()
        .bucket("ranges")
        .key("obj")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    for (header, start, end) in [
        ("bytes=0-0".to_string(), 0, 1),
        ("bytes=100-2000000".to_string(), 100, 2_000_001),
        ("bytes=-5".to_string(), size - 5, size),
        (format!("bytes={}-", size - 1), size - 1, size),
        (format!("bytes=1048570-{}", size + 100), 1_048_570, size),
    ] {
        let got = s3
            .get_object()
            .bucket("ranges")
            .key("obj")
            .range(&header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {start}-{}/{size}", end - 1).as_str()),
            "{header}"
        );
        assert!(body_bytes(got).await == data[start..end], "{header}");
    }
    let err = s3
        .get_object()
        .bucket("ranges")
        .key("obj")
        .range(format!("bytes={size}-"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidRange"));
    assert_eq!(error_status(&err), Some(416));

    let err = s3
        .get_object()
        .bucket("ranges")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));
    assert_eq!(error_status(&err), Some(404));
    let err = s3
        .head_object()
        .bucket("ranges")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&err), Some(404));
    let err = s3
        .get_object()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchBucket"));
    // Deleting a missing key succeeds, as in S3.
    s3.delete_object()
        .bucket("ranges")
        .key("missing")
        .send()
        .await
        .unwrap();
    let long_key = "k".repeat(1025);
    let err = s3
        .put_object()
        .bucket("ranges")
        .key(&long_key)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("KeyTooLongError"));

    // A response override HTTP cannot carry is refused, not a crash.
    let err = s3
        .get_object()
        .bucket("ranges")
        .key("obj")
        .response_content_type("a\nb")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidArgument"));
    let got = s3
        .get_object()
        .bucket("ranges")
        .key("obj")
        .response_content_type("text/x-override")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/x-override"));

    // Overwrite replaces atomically.
    s3.put_object()
        .bucket("ranges")
        .key("obj")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("ranges")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(body_bytes(got).await, b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_clean_restart() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("keep").send().await.unwrap();
    let data = pattern(77, 2_500_000);
    s3.put_object()
        .bucket("keep")
        .key("a/b")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(server.stop(), Some(0), "SIGTERM shuts down cleanly");
    let restarted = Server::start_in(&server.data, None);
    let got = restarted
        .client()
        .get_object()
        .bucket("keep")
        .key("a/b")
        .send()
        .await
        .unwrap();
    assert!(body_bytes(got).await == data);
}
