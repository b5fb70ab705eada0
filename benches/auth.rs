//! What deciding who may do what costs per request: authentication (SigV4 header signature)
//! plus authorization (loading the bucket's ACL and policy from its attributes, evaluating
//! them, settling an object read with the object's ACL).
//!
//! `cargo bench -p hoard-benches --bench auth`:
//! - `authorization/none`: the configured key only, a bucket with no ACL or policy;
//!   (the bucket's attributes are cloned per request, as the server reads them per request, and
//!   parsed only when they changed: `AccessCache`)
//! - `authorization/10k_users_100_policies`: 10,000 users (100 accounts of 100, a key each)
//!   in the store's directory, 100 buckets each with a 6-statement policy (account grants, a
//!   deny by prefix, a condition on the source address and on `s3:prefix`) and a bucket ACL
//!   with grants; requests for objects from users of other accounts: the policy lets one
//!   reader account of each bucket in, the rest are refused (a whole evaluation either way).
//!
//! Printed beside each: p50 and p99 of one decision over 20,000 requests (the added latency
//! of a request), measured in this process.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use criterion::{criterion_group, criterion_main, Criterion};
use hoard::{Profile, Store, StoreOptions};
use hoard_s3::auth::access::{authorize, AccessCache};
use hoard_s3::auth::policy::RequestContext;
use hoard_s3::auth::{authenticate, sigv4, Credentials, RequestView};

#[path = "support/raw_device.rs"]
mod raw_device;
use raw_device::{backend, scratch};

const DEV_PROFILE: &str = include_str!("../hwprofiles/dev.toml");
const REGION: &str = "us-east-1";

struct Case {
    creds: Credentials,
    /// (bucket, its attributes, its owner).
    buckets: Vec<(String, Vec<(String, Vec<u8>)>, String)>,
    /// (access key, secret) of the callers.
    callers: Vec<(String, String)>,
    amz_date: String,
    now_secs: u64,
    cache: AccessCache,
}

/// One decision: the request signed by caller `i % callers` on bucket `i % buckets`.
fn decide(case: &Case, headers: &HeaderMap, path: &str, bucket: usize) -> bool {
    let view = RequestView {
        method: &Method::GET,
        raw_path: path,
        query: &[],
        headers,
        vhost_bucket: None,
    };
    let auth = authenticate(&view, &case.creds, REGION, case.now_secs).expect("signed");
    let (name, attributes, owner) = &case.buckets[bucket];
    // As the server does: the attributes are read (here: cloned) with every request, and
    // parsed only when they changed.
    let access = case
        .cache
        .get(name, owner, attributes.clone())
        .expect("stored settings parse");
    let resource = &path[1..];
    let cx = RequestContext {
        account: Some(&auth.account_id),
        user: Some(&auth.user),
        action: "s3:GetObject",
        resource,
        source_ip: Some("10.1.2.3".parse().unwrap()),
        secure_transport: false,
        now_secs: case.now_secs,
        prefix: None,
        delimiter: None,
        max_keys: None,
        user_agent: None,
        referer: None,
        ..Default::default()
    };
    let verdict = authorize(&access, &auth, &cx);
    verdict.check().is_ok() && verdict.check_object(&[]).is_ok()
}

fn signed(case: &Case, caller: usize, path: &str) -> HeaderMap {
    let (ak, sk) = &case.callers[caller];
    let mut headers = HeaderMap::new();
    for (k, v) in sigv4::sign_empty_request(
        "GET",
        "127.0.0.1:9000",
        path,
        &[],
        REGION,
        ak,
        sk,
        &case.amz_date,
    ) {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    headers
}

fn now() -> (String, u64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (hoard_s3::protocol::dates::amz_date(secs), secs)
}

fn policy(bucket: &str, reader: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{reader}:root"}},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}},
        {{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::{bucket}/secret/*"}},
        {{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/lan/*","Condition":{{"IpAddress":{{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}}}}},
        {{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{bucket}","Condition":{{"StringLike":{{"s3:prefix":["public/*","shared/*"]}}}}}},
        {{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{bucket}/*","Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}},
        {{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{reader}:user/u7","arn:aws:iam::{reader}:user/u8"]}},"Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/inbox/*"}}]}}"#
    )
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let dir = scratch();
    let store = Store::open(&StoreOptions {
        profile: Profile::parse(DEV_PROFILE).unwrap(),
        data_dir: dir.path().to_path_buf(),
        format_blank: true,
        io_backend: Some(backend()),
    })
    .unwrap();
    let (amz_date, now_secs) = now();

    // No directory, no policy.
    let root = Credentials::open(&store, "ROOTKEY", "rootsecret").unwrap();
    let plain = Case {
        buckets: vec![("plain".into(), Vec::new(), root.root_account().to_string())],
        creds: root,
        callers: vec![("ROOTKEY".into(), "rootsecret".into())],
        amz_date: amz_date.clone(),
        now_secs,
        cache: AccessCache::default(),
    };

    // 10,000 users in 100 accounts, 100 buckets with policies (owned by account 0, read by
    // the others through the policy).
    let creds = Credentials::open(&store, "ROOTKEY", "rootsecret").unwrap();
    let started = Instant::now();
    let mut accounts = Vec::new();
    let mut callers = Vec::new();
    for a in 0..100 {
        let account = creds.create_account(&format!("tenant{a}")).unwrap();
        for u in 0..100 {
            creds
                .create_user(&account.id, &format!("u{u}"), false)
                .unwrap();
            let k = creds.create_key(&account.id, &format!("u{u}")).unwrap();
            if a > 0 && u % 10 == 0 {
                callers.push((k.info.access_key, k.secret_key));
            }
        }
        accounts.push(account.id);
    }
    eprintln!(
        "directory: 10,000 users and keys made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let buckets = (0..100)
        .map(|b| {
            let name = format!("bucket-{b:03}");
            let reader = &accounts[1 + b % 99];
            // The policy names one reader account; the ACL lists grants to the others
            // (bucket-level: they may list, not read objects).
            let acl = format!(
                r#"{{"owner":"{}","grants":[{}]}}"#,
                accounts[0],
                accounts[1..]
                    .iter()
                    .map(|a| format!(r#"{{"grantee":{{"Account":"{a}"}},"permission":"Read"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let attributes = vec![
                ("acl".to_string(), acl.into_bytes()),
                ("policy".to_string(), policy(&name, reader).into_bytes()),
            ];
            (name, attributes, accounts[0].clone())
        })
        .collect();
    let many = Case {
        creds,
        buckets,
        callers,
        amz_date,
        now_secs,
        cache: AccessCache::default(),
    };

    let mut group = c.benchmark_group("authorization");
    for (label, case) in [("none", &plain), ("10k_users_100_policies", &many)] {
        let requests: Vec<(HeaderMap, String, usize)> = (0..256)
            .map(|i| {
                let b = i % case.buckets.len();
                let path = format!("/{}/photos/{i}.jpg", case.buckets[b].0);
                (signed(case, i % case.callers.len(), &path), path, b)
            })
            .collect();
        let mut samples = Vec::with_capacity(20_000);
        for i in 0..20_000 {
            let (h, p, b) = &requests[i % requests.len()];
            let start = Instant::now();
            // Allowed or refused, the whole decision is made.
            let _ = decide(case, h, p, *b);
            samples.push(start.elapsed());
        }
        let (p50, p99) = percentiles(samples);
        eprintln!("authorization/{label}: p50 {p50:?} p99 {p99:?} per request");
        let mut i = 0;
        group.bench_function(label, |bench| {
            bench.iter(|| {
                let (h, p, b) = &requests[i % requests.len()];
                i += 1;
                decide(case, h, p, *b)
            })
        });
    }
    group.finish();
    store.close().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
