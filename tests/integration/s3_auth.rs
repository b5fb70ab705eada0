//! Authentication: wrong secrets and unknown keys are refused; presigned URLs (SigV4) work
//! through plain HTTP and expire.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::support::{
    body_bytes, client_with, error_code, error_status, pattern, Server, ACCESS_KEY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_unknown_key_are_refused() {
    let server = Server::start();
    server
        .client()
        .create_bucket()
        .bucket("auth")
        .send()
        .await
        .unwrap();
    let wrong = client_with(&server.endpoint, ACCESS_KEY, "not-the-secret");
    let err = wrong
        .list_objects_v2()
        .bucket("auth")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("SignatureDoesNotMatch"));
    assert_eq!(error_status(&err), Some(403));
    let err = wrong
        .put_object()
        .bucket("auth")
        .key("x")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("SignatureDoesNotMatch"));
    let unknown = client_with(&server.endpoint, "nobody", "secret");
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidAccessKeyId"));
    // Nothing was stored by the refused put.
    let listed = server
        .client()
        .list_objects_v2()
        .bucket("auth")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_sigv4_get_and_put_over_plain_http() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("pre").send().await.unwrap();
    let data = pattern(3, 1_500_000);

    let put = s3
        .put_object()
        .bucket("pre")
        .key("up/loaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let url = put.uri().to_string();
    let payload = data.clone();
    let status = tokio::task::spawn_blocking(move || {
        ureq::put(&url)
            .send_bytes(&payload)
            .map(|r| r.status())
            .map_err(Box::new)
    })
    .await
    .unwrap()
    .expect("presigned PUT");
    assert_eq!(status, 200);
    let got = s3
        .get_object()
        .bucket("pre")
        .key("up/loaded")
        .send()
        .await
        .unwrap();
    assert!(body_bytes(got).await == data);

    let get = s3
        .get_object()
        .bucket("pre")
        .key("up/loaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let url = get.uri().to_string();
    let body = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(
            &mut ureq::get(&url).call().expect("presigned GET").into_reader(),
            &mut v,
        )
        .unwrap();
        v
    })
    .await
    .unwrap();
    assert!(body == data);

    // A tampered signature and an expired URL are refused.
    let tampered = get.uri().replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let status = tokio::task::spawn_blocking(move || match ureq::get(&tampered).call() {
        Err(ureq::Error::Status(code, _)) => code,
        other => panic!("tampered URL answered {other:?}"),
    })
    .await
    .unwrap();
    assert_eq!(status, 403);
    let short = s3
        .get_object()
        .bucket("pre")
        .key("up/loaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let url = short.uri().to_string();
    let (status, text) = tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        other => panic!("expired URL answered {other:?}"),
    })
    .await
    .unwrap();
    assert_eq!(status, 403);
    assert!(
        text.contains("AccessDenied") && text.contains("expired"),
        "{text}"
    );
}

/// Raw bytes that are not a valid request (this proves robustness, not S3 behaviour): each gets
/// a 4xx answer or a closed connection, and the server keeps serving real clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_requests_get_errors_not_crashes() {
    use std::io::{Read, Write};
    let server = Server::start();
    // An unsigned PUT into an existing private bucket is an anonymous caller refused access.
    server
        .client()
        .create_bucket()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let addr = server.endpoint.trim_start_matches("http://").to_string();
    let answers = tokio::task::spawn_blocking(move || {
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        );
        let unsigned_put =
            "PUT /bkt/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_string();
        let bad_auth =
            "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 garbage\r\n\r\n"
                .to_string();
        [
            "\x00\x01\x02 not http at all\r\n\r\n".to_string(),
            huge,
            unsigned_put,
            bad_auth,
        ]
        .into_iter()
        .map(|request| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = stream.write_all(request.as_bytes());
            let mut answer = vec![0u8; 4096];
            let n = stream.read(&mut answer).unwrap_or(0);
            String::from_utf8_lossy(&answer[..n]).into_owned()
        })
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for answer in &answers {
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    assert!(answers[2].contains("AccessDenied"), "{}", answers[2]);
    assert!(
        answers[3].contains("AuthorizationHeaderMalformed"),
        "{}",
        answers[3]
    );
    server
        .client()
        .list_buckets()
        .send()
        .await
        .expect("still serving");
}
