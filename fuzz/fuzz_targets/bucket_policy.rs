//! Bucket policy JSON: parsed and validated as PutBucketPolicy does, then judged (public or
//! not) and evaluated against a request, as every request's authorization does. Nothing may
//! panic.
#![no_main]

use hoard_s3::auth::policy::{Policy, RequestContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = Policy::parse(data, "bucket") else {
        return;
    };
    let _ = policy.is_public();
    for (account, action, resource) in [
        (None, "s3:GetObject", "bucket/key"),
        (Some("111122223333"), "s3:ListBucket", "bucket"),
        (Some("111122223333"), "s3:DeleteObject", "bucket/a/b"),
    ] {
        let tags = vec![("project".to_string(), "blue".to_string())];
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-amz-acl", axum::http::HeaderValue::from_static("private"));
        let cx = RequestContext {
            account,
            user: account.map(|_| "alice"),
            action,
            resource,
            source_ip: Some("192.0.2.7".parse().unwrap()),
            secure_transport: false,
            now_secs: 1_795_000_000,
            prefix: Some("a/"),
            delimiter: Some("/"),
            max_keys: Some("1000"),
            user_agent: Some("fuzz"),
            referer: None,
            version_id: Some("0000000000000001"),
            signature_version: account.map(|_| "AWS4-HMAC-SHA256"),
            auth_type: account.map(|_| "REST-HEADER"),
            signature_age_ms: Some(1_000),
            tls_version: Some("1.3"),
            existing_tags: Some(&tags),
            request_tags: Some(&tags),
            headers: Some(&headers),
        };
        let _ = policy.decide(&cx, true);
        let _ = policy.may_allow(&cx, false);
    }
});
