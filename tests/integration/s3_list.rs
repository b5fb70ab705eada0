//! Listing over 2,500 keys: ListObjectsV2 and ListObjects with prefix, delimiter, pagination and
//! encoding-type=url, checked against a model (a sorted set of keys).

use std::collections::BTreeSet;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use aws_sdk_s3::Client;

use crate::support::Server;

/// Expected (keys, common prefixes) for prefix/delimiter over `all`, as S3 defines them.
fn model(all: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for k in all.iter().filter(|k| k.starts_with(prefix)) {
        match delimiter.and_then(|d| {
            k[prefix.len()..]
                .find(d)
                .map(|i| &k[..prefix.len() + i + d.len()])
        }) {
            Some(cp) => out.insert(format!("P:{cp}")),
            None => out.insert(format!("K:{k}")),
        };
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by(|a, b| a[2..].cmp(&b[2..]));
    v
}

async fn list_v2_all(
    s3: &Client,
    prefix: &str,
    delimiter: Option<&str>,
    page: i32,
) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let resp = s3
            .list_objects_v2()
            .bucket("many")
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .max_keys(page)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        let mut entries: Vec<String> = resp
            .contents()
            .iter()
            .map(|o| format!("K:{}", o.key().unwrap()))
            .collect();
        entries.extend(
            resp.common_prefixes()
                .iter()
                .map(|p| format!("P:{}", p.prefix().unwrap())),
        );
        entries.sort_by(|a, b| a[2..].cmp(&b[2..]));
        assert!(entries.len() <= page as usize);
        assert_eq!(resp.key_count(), Some(entries.len() as i32));
        out.extend(entries);
        if resp.is_truncated() != Some(true) {
            return (out, pages);
        }
        token = resp.next_continuation_token().map(str::to_string);
        assert!(
            token.is_some(),
            "truncated page without a continuation token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_2600_keys_matches_the_model() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("many").send().await.unwrap();
    let mut all = BTreeSet::new();
    for d in 0..25 {
        for f in 0..100 {
            all.insert(format!("logs/2026/{d:02}/host-{f:03}.gz"));
        }
    }
    for i in 0..100 {
        all.insert(format!("top-{i:03}"));
    }
    all.insert("logs/readme".into());
    all.insert("naïve café/ü".into());
    all.insert("sp ace+plus".into());
    let keys: Vec<String> = all.iter().cloned().collect();
    for batch in keys.chunks(64) {
        let puts = batch.iter().map(|k| {
            s3.put_object()
                .bucket("many")
                .key(k)
                .body(ByteStream::from(k.clone().into_bytes()))
                .send()
        });
        for r in futures_util::future::join_all(puts).await {
            r.unwrap();
        }
    }

    let (everything, pages) = list_v2_all(&s3, "", None, 1000).await;
    assert_eq!(everything, model(&all, "", None));
    assert_eq!(pages, 3);
    assert_eq!(
        list_v2_all(&s3, "", Some("/"), 1000).await.0,
        model(&all, "", Some("/"))
    );
    assert_eq!(
        list_v2_all(&s3, "logs/", Some("/"), 1000).await.0,
        model(&all, "logs/", Some("/"))
    );
    assert_eq!(
        list_v2_all(&s3, "logs/2026/", Some("/"), 7).await.0,
        model(&all, "logs/2026/", Some("/"))
    );
    assert_eq!(
        list_v2_all(&s3, "logs/2026/07/", Some("/"), 33).await.0,
        model(&all, "logs/2026/07/", Some("/"))
    );
    assert_eq!(
        list_v2_all(&s3, "top-0", None, 9).await.0,
        model(&all, "top-0", None)
    );
    assert!(list_v2_all(&s3, "nothing-here", Some("/"), 10)
        .await
        .0
        .is_empty());

    // start-after
    let resp = s3
        .list_objects_v2()
        .bucket("many")
        .start_after("top-097")
        .send()
        .await
        .unwrap();
    let got: Vec<&str> = resp.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(got, vec!["top-098", "top-099"]);

    // ListObjects (v1) with markers.
    let mut v1 = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let resp = s3
            .list_objects()
            .bucket("many")
            .max_keys(500)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        v1.extend(resp.contents().iter().map(|o| o.key().unwrap().to_string()));
        if resp.is_truncated() != Some(true) {
            break;
        }
        marker = resp
            .next_marker()
            .map(str::to_string)
            .or_else(|| v1.last().cloned());
    }
    assert_eq!(v1, keys);

    // encoding-type=url: keys come back percent-encoded (the SDK leaves them as sent).
    let resp = s3
        .list_objects_v2()
        .bucket("many")
        .prefix("sp")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let key = resp.contents()[0].key().unwrap();
    assert!(key == "sp%20ace%2Bplus", "{key}");
    assert_eq!(resp.encoding_type(), Some(&EncodingType::Url));
}

/// `max-keys=0` is an empty page that is not truncated (as S3 answers); a huge `max-keys`, even
/// past 64 bits, is clamped to 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keys_zero_and_huge_as_s3_answers() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("maxkeys").send().await.unwrap();
    for i in 0..3 {
        s3.put_object()
            .bucket("maxkeys")
            .key(format!("k{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let page = s3
        .list_objects_v2()
        .bucket("maxkeys")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(page.key_count(), Some(0));
    assert_eq!(page.is_truncated(), Some(false));
    assert!(page.next_continuation_token().is_none());
    let v1 = s3
        .list_objects()
        .bucket("maxkeys")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(v1.contents().is_empty());
    assert_eq!(v1.is_truncated(), Some(false));
    let (code, body) = crate::support::curl(
        &format!(
            "{}/maxkeys?list-type=2&max-keys=99999999999999999999999",
            server.endpoint
        ),
        "GET",
        Some((crate::support::ACCESS_KEY, crate::support::SECRET_KEY)),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<MaxKeys>1000</MaxKeys>") && body.contains("<KeyCount>3</KeyCount>"),
        "{body}"
    );
}
