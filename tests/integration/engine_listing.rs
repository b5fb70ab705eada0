//! Model-based property test of listing: random keys, prefixes, delimiters, start-after markers
//! and page sizes, checked page by page against a `BTreeSet` and S3's rules, with a metadata
//! LSM small enough that the keys spread over flushed tables, compacted levels and the memtable.

use std::collections::BTreeSet;
use std::sync::Arc;

use hoard::device::fault::FaultBackend;
use hoard::device::Device;
use hoard::store::{ListQuery, PutOptions};
use hoard::{Profile, Store, StoreDevices};
use proptest::prelude::*;

fn store() -> Store {
    let device = |name: &str, size: u64| {
        let (backend, _control) = FaultBackend::new(size);
        Arc::new(Device::with_backend(name, size, Box::new(backend)))
    };
    let mut profile = Profile::parse(hoard_profile()).unwrap().derive();
    profile.wal_size_bytes = 1 << 20;
    // A tiny memtable and levels, so listing runs across flushed tables, compactions and the
    // memtable at once.
    profile.lsm.memtable_budget_bytes = 2 << 10;
    profile.lsm.table_target_bytes = 4 << 10;
    profile.lsm.block_bytes = 256;
    profile.lsm.l0_trigger = 2;
    profile.lsm.l1_target_bytes = 8 << 10;
    let data = (0..2)
        .map(|i| Some(device(&format!("hdd{i}"), 4 << 20)))
        .collect();
    let store = Store::open_devices(
        StoreDevices {
            meta: vec![Some(device("ssd", 8 << 20))],
            data,
        },
        profile,
        true,
    )
    .unwrap();
    // Two data devices: one copy per chunk (the dev profile's ec:2+1 needs three).
    store
        .create_bucket_with("model", "o", Some(hoard::Protection::Replicas(1)))
        .unwrap();
    store
}

fn hoard_profile() -> &'static str {
    include_str!("../../hwprofiles/dev.toml")
}

/// Every (key or common prefix) S3 lists for `prefix`/`delimiter`, in order.
fn model(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        let entry = match delimiter.and_then(|d| {
            k[prefix.len()..]
                .find(d)
                .map(|i| k[..prefix.len() + i + d.len()].to_string())
        }) {
            Some(cp) => cp,
            None => k.clone(),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

fn key_strategy() -> impl Strategy<Value = String> {
    // A small alphabet with the delimiters, so keys share prefixes and common prefixes nest.
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("/"),
            Just("-"),
            Just("é"),
            Just("z")
        ],
        1..7,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pages_match_the_model(
        keys in proptest::collection::btree_set(key_strategy(), 0..60),
        deleted in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        prefix in prop_oneof![Just(""), Just("a"), Just("a/"), Just("b-"), Just("é")],
        delimiter in prop_oneof![Just(None), Just(Some("/")), Just(Some("-")), Just(Some("a/"))],
        page in 1usize..8,
    ) {
        let store = store();
        let mut keys = keys;
        for k in &keys {
            store.put_object("model", k, &mut &b""[..], PutOptions::default()).unwrap();
        }
        let all: Vec<String> = keys.iter().cloned().collect();
        for i in deleted {
            if !all.is_empty() {
                let k = i.get(&all);
                store.delete_object("model", k).unwrap();
                keys.remove(k);
            }
        }
        if all.len() > 30 {
            prop_assert!(store.meta_stats().flushes > 0, "the listing must span flushed tables");
        }
        let expected = model(&keys, prefix, delimiter);
        let mut listed = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let query = ListQuery { prefix: prefix.to_string(), delimiter: delimiter.map(str::to_string), start_after: marker.clone(), max_keys: page };
            let result = store.list_objects("model", &query).unwrap();
            let mut entries: Vec<String> = result.objects.iter().map(|o| o.key.clone()).chain(result.common_prefixes.clone()).collect();
            entries.sort();
            prop_assert!(entries.len() <= page);
            listed.extend(entries);
            if !result.is_truncated {
                break;
            }
            marker = result.next_marker.clone();
            prop_assert!(marker.is_some());
        }
        prop_assert_eq!(listed, expected);
    }
}
