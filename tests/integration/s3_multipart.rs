//! Multipart uploads through aws-sdk-s3: a 100 MiB object, listing parts and uploads, and the
//! errors S3 defines.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

use crate::support::{body_bytes, error_code, md5_hex, pattern, Server};

const PART: usize = 5 << 20;

fn completed(parts: &[(i32, String)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_100_mib_in_parts() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let size = 100 << 20;
    let data = pattern(42, size);
    let created = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("big/object.bin")
        .content_type("application/x-big")
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap().to_string();

    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(upload_id.as_str()));

    // Upload the 20 parts, 4 at a time, out of order.
    let mut etags = Vec::new();
    let numbers: Vec<usize> = (0..size.div_ceil(PART)).rev().collect();
    for group in numbers.chunks(4) {
        let mut tasks = Vec::new();
        for &i in group {
            let s3 = s3.clone();
            let id = upload_id.clone();
            let chunk = data[i * PART..((i + 1) * PART).min(size)].to_vec();
            tasks.push(tokio::spawn(async move {
                let out = s3
                    .upload_part()
                    .bucket("mpu")
                    .key("big/object.bin")
                    .upload_id(id)
                    .part_number(i as i32 + 1)
                    .body(ByteStream::from(chunk.clone()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    out.e_tag(),
                    Some(format!("\"{}\"", md5_hex(&chunk)).as_str())
                );
                (i as i32 + 1, out.e_tag().unwrap().to_string())
            }));
        }
        for t in tasks {
            etags.push(t.await.unwrap());
        }
    }
    etags.sort();
    let parts = s3
        .list_parts()
        .bucket("mpu")
        .key("big/object.bin")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 20);
    assert!(parts
        .parts()
        .windows(2)
        .all(|w| w[0].part_number() < w[1].part_number()));
    let page = s3
        .list_parts()
        .bucket("mpu")
        .key("big/object.bin")
        .upload_id(&upload_id)
        .max_parts(7)
        .part_number_marker("7")
        .send()
        .await
        .unwrap();
    assert_eq!(page.parts().first().and_then(|p| p.part_number()), Some(8));
    assert_eq!(page.is_truncated(), Some(true));

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big/object.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed(&etags))
        .send()
        .await
        .unwrap();
    let mut md5s = Vec::new();
    for i in 0..20 {
        md5s.extend(hex::decode(md5_hex(&data[i * PART..((i + 1) * PART).min(size)])).unwrap());
    }
    assert_eq!(
        done.e_tag(),
        Some(format!("\"{}-20\"", md5_hex(&md5s)).as_str())
    );

    let head = s3
        .head_object()
        .bucket("mpu")
        .key("big/object.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(size as i64));
    assert_eq!(head.content_type(), Some("application/x-big"));
    let got = body_bytes(
        s3.get_object()
            .bucket("mpu")
            .key("big/object.bin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        hex::encode(Sha256::digest(&got)),
        hex::encode(Sha256::digest(&data))
    );
    // A range across a part boundary.
    let got = s3
        .get_object()
        .bucket("mpu")
        .key("big/object.bin")
        .range(format!("bytes={}-{}", PART - 10, PART + 10))
        .send()
        .await
        .unwrap();
    assert!(body_bytes(got).await == data[PART - 10..PART + 11]);
    assert!(s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap()
        .uploads()
        .is_empty());
    let err = s3
        .list_parts()
        .bucket("mpu")
        .key("big/object.bin")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchUpload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_errors() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mperr").send().await.unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("mperr")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let mut etags = Vec::new();
    for (n, size) in [(1, 1000usize), (2, 2000), (3, PART)] {
        let out = s3
            .upload_part()
            .bucket("mperr")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(pattern(n as u64, size)))
            .send()
            .await
            .unwrap();
        etags.push((n, out.e_tag().unwrap().to_string()));
    }
    let complete = |parts: Vec<(i32, String)>| {
        s3.complete_multipart_upload()
            .bucket("mperr")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&parts))
            .send()
    };
    let err = complete(vec![etags[1].clone(), etags[0].clone()])
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPartOrder"));
    let err = complete(vec![(1, "\"0000\"".into())]).await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPart"));
    let err = complete(vec![etags[0].clone(), (9, etags[1].1.clone())])
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPart"));
    let err = complete(etags.clone()).await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("EntityTooSmall"));
    let err = s3
        .upload_part()
        .bucket("mperr")
        .key("k")
        .upload_id(&id)
        .part_number(10001)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidArgument"));
    // Only the last part may be small: parts 3 alone completes.
    let done = complete(vec![etags[2].clone()]).await.unwrap();
    assert!(done.e_tag().unwrap().ends_with("-1\""));
    // Repeating Complete (an SDK retry after a timeout) answers with the same object.
    let again = complete(vec![etags[2].clone()]).await.unwrap();
    assert_eq!(again.e_tag(), done.e_tag());

    let id2 = s3
        .create_multipart_upload()
        .bucket("mperr")
        .key("k2")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    s3.abort_multipart_upload()
        .bucket("mperr")
        .key("k2")
        .upload_id(&id2)
        .send()
        .await
        .unwrap();
    let err = s3
        .abort_multipart_upload()
        .bucket("mperr")
        .key("k2")
        .upload_id(&id2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchUpload"));
    let err = s3
        .upload_part()
        .bucket("mperr")
        .key("k2")
        .upload_id(&id2)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchUpload"));
    let err = s3
        .head_object()
        .bucket("mperr")
        .key("k2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::support::error_status(&err), Some(404));
}

/// GetObject and HeadObject with `partNumber` return that part's bytes and
/// `x-amz-mp-parts-count`; a part past the last is InvalidPartNumber (416).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_by_part_number() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("parts").send().await.unwrap();
    let sizes = [PART, PART + 3, 1000];
    let created = s3
        .create_multipart_upload()
        .bucket("parts")
        .key("three")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap();
    let mut etags = Vec::new();
    let mut whole = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = pattern(100 + i as u64, *size);
        whole.extend_from_slice(&data);
        let part = s3
            .upload_part()
            .bucket("parts")
            .key("three")
            .upload_id(id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        etags.push((i as i32 + 1, part.e_tag().unwrap().to_string()));
    }
    s3.complete_multipart_upload()
        .bucket("parts")
        .key("three")
        .upload_id(id)
        .multipart_upload(completed(&etags))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("parts")
        .key("three")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parts_count(), Some(3));
    assert_eq!(
        got.content_range(),
        Some(format!("bytes {}-{}/{}", PART, 2 * PART + 2, whole.len()).as_str())
    );
    assert_eq!(body_bytes(got).await, &whole[PART..2 * PART + 3]);
    let head = s3
        .head_object()
        .bucket("parts")
        .key("three")
        .part_number(3)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(1000));
    assert_eq!(head.parts_count(), Some(3));
    let err = s3
        .get_object()
        .bucket("parts")
        .key("three")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPartNumber"));
}
