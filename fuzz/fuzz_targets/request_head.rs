//! A request head as a client may send it: method, target, headers. Runs everything the
//! server does before a body is read: query and target parsing, the route table, SigV4 and
//! SigV2 (header and presigned) canonicalization and verification against a real directory,
//! the Range header. Nothing may panic; every refusal is an S3 error.
//!
//! Input: `METHOD TARGET\nName: value\n...` (lossy UTF-8).
#![no_main]

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use hoard_s3::auth::{authenticate, Credentials, RequestView};
use hoard_s3::protocol::{Endpoint, Target};
use hoard_s3::protocol::uri::parse_query;
use hoard_s3::request::{parse_range, parse_target};
use libfuzzer_sys::fuzz_target;

/// A store and its directory, made once per fuzzing process.
fn credentials() -> &'static Credentials {
    static CREDS: OnceLock<(tempfile::TempDir, hoard::Store, Credentials)> = OnceLock::new();
    &CREDS
        .get_or_init(|| {
            // Under target/, on a filesystem with O_DIRECT (not tmpfs).
            let base = concat!(env!("CARGO_MANIFEST_DIR"), "/target");
            std::fs::create_dir_all(base).expect("fuzz/target");
            let dir = tempfile::tempdir_in(base).expect("scratch dir");
            let mut profile =
                hoard::Profile::parse(include_str!("../../hwprofiles/dev.toml")).unwrap();
            profile.ssd.size_bytes = 256 << 20;
            profile.hdd.size_bytes = 256 << 20;
            let store = hoard::Store::open(&hoard::store::StoreOptions {
                profile,
                data_dir: dir.path().to_path_buf(),
                format_blank: true,
                io_backend: Some(hoard::device::IoBackend::Portable),
            })
            .expect("open a scratch store");
            let creds = Credentials::open(&store, "AKIDFUZZ", "fuzz-secret").unwrap();
            (dir, store, creds)
        })
        .2
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Ok(query) = parse_query(query) else {
        return;
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9000")
        .to_string();
    let Ok((vhost, bucket, key)) = parse_target(&host, path, &["localhost".to_string()]) else {
        return;
    };
    let place = match (&bucket, &key) {
        (None, _) => Target::Service,
        (Some(_), None) => Target::Bucket,
        (Some(_), Some(_)) => Target::Object,
    };
    if let Ok(e) = Endpoint::parse(
        &method,
        place,
        query.iter().map(|(k, _)| k.as_str()),
        headers.contains_key("x-amz-copy-source"),
    ) {
        let _ = e.action(query.iter().any(|(k, _)| k == "versionId"));
    }
    if let Some(range) = headers.get("range").and_then(|r| r.to_str().ok()) {
        let _ = parse_range(range);
    }
    let view = RequestView {
        method: &method,
        raw_path: path,
        query: &query,
        headers: &headers,
        vhost_bucket: vhost.as_deref(),
    };
    let _ = authenticate(&view, credentials(), "us-east-1", 1_795_000_000);
});
