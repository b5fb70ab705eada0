//! Model-based property test of versioning: random puts, deletes, permanent deletes of one
//! version, copies of old versions, versioning state changes, clean restarts and power cuts,
//! checked after every step against a model of S3's rules (every version listing, page by
//! page, every version's bytes, the current listing, and live space).

use std::collections::BTreeMap;

use hoard::store::{ListQuery, PutOptions, VersionId, VersionQuery, Versioning};
use hoard::Store;
use proptest::prelude::*;

use crate::support::{fault_media, pattern, Rig};

const KEYS: [&str; 5] = ["a", "a/b", "a\u{1}", "b", "é"];
/// Around the tiny profile's inline threshold (4 KiB) and chunk size (64 KiB).
const SIZES: [usize; 4] = [0, 100, 5_000, 70_000];

#[derive(Clone, Debug)]
enum Op {
    Versioning(bool),
    Put(usize, usize),
    Delete(usize),
    DeleteVersion(usize, prop::sample::Index),
    CopyVersion(usize, prop::sample::Index, usize),
    Restart,
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        1 => any::<bool>().prop_map(Op::Versioning),
        6 => (key.clone(), 0..SIZES.len()).prop_map(|(k, s)| Op::Put(k, s)),
        3 => key.clone().prop_map(Op::Delete),
        3 => (key.clone(), any::<prop::sample::Index>()).prop_map(|(k, i)| Op::DeleteVersion(k, i)),
        1 => (key.clone(), any::<prop::sample::Index>(), key).prop_map(|(s, i, d)| Op::CopyVersion(s, i, d)),
        1 => Just(Op::Restart),
        1 => Just(Op::PowerCut),
    ]
}

/// One version as the model keeps it: its ID and its data (`None`: a delete marker).
#[derive(Clone, Debug, PartialEq)]
struct Version {
    id: VersionId,
    data: Option<Vec<u8>>,
}

#[derive(Default)]
struct Model {
    versioning: Versioning,
    /// Each key's versions, newest first.
    keys: BTreeMap<String, Vec<Version>>,
}

impl Model {
    /// A new latest version of `key` with the ID the store gave it.
    fn add(&mut self, key: &str, version: Version) {
        let versions = self.keys.entry(key.to_string()).or_default();
        match self.versioning {
            Versioning::Unversioned => versions.clear(),
            Versioning::Suspended => versions.retain(|v| v.id != VersionId::Null),
            Versioning::Enabled => {}
        }
        versions.insert(0, version);
    }

    fn remove(&mut self, key: &str, id: VersionId) {
        if let Some(versions) = self.keys.get_mut(key) {
            versions.retain(|v| v.id != id);
            if versions.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

fn open(rig: &mut Rig) -> Store {
    rig.open(false).unwrap()
}

/// Every version of the bucket, read page by page with the markers the store returns.
fn list_all(store: &Store, page: usize) -> Vec<(String, VersionId, bool, bool)> {
    let mut out = Vec::new();
    let mut query = VersionQuery {
        max_keys: page,
        ..VersionQuery::default()
    };
    loop {
        let p = store.list_object_versions("ver", &query).unwrap();
        assert!(p.versions.len() <= page);
        out.extend(
            p.versions
                .iter()
                .map(|v| (v.key.clone(), v.version, v.is_latest, v.delete_marker)),
        );
        if !p.is_truncated {
            return out;
        }
        query.key_marker = p.next_key_marker;
        query.version_id_marker = p.next_version_id_marker;
    }
}

fn check(store: &Store, model: &Model, page: usize) {
    let expected: Vec<(String, VersionId, bool, bool)> = model
        .keys
        .iter()
        .flat_map(|(k, vs)| {
            vs.iter()
                .enumerate()
                .map(move |(i, v)| (k.clone(), v.id, i == 0, v.data.is_none()))
        })
        .collect();
    assert_eq!(list_all(store, page), expected, "version listing");
    for (key, versions) in &model.keys {
        for (i, v) in versions.iter().enumerate() {
            let read = store.get_object_version("ver", key, Some(v.id), None);
            match &v.data {
                Some(data) => {
                    let mut reader = read.unwrap();
                    let mut got = Vec::new();
                    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
                    assert_eq!(&got, data, "{key} version {}", v.id);
                    assert_eq!(reader.info().version, v.id);
                }
                None => assert!(
                    matches!(
                        read,
                        Err(hoard::Error::DeleteMarker {
                            requested: true,
                            ..
                        })
                    ),
                    "{key} version {} is a delete marker",
                    v.id
                ),
            }
            if i == 0 && v.data.is_none() {
                assert!(matches!(
                    store.head_object("ver", key),
                    Err(hoard::Error::DeleteMarker {
                        requested: false,
                        ..
                    })
                ));
            }
        }
    }
    let current: Vec<String> = model
        .keys
        .iter()
        .filter(|(_, vs)| vs[0].data.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    let listed = store
        .list_objects(
            "ver",
            &ListQuery {
                max_keys: 1000,
                ..ListQuery::default()
            },
        )
        .unwrap();
    let listed: Vec<String> = listed.objects.into_iter().map(|o| o.key).collect();
    assert_eq!(listed, current, "current listing");
    let space = store.check_space().unwrap();
    assert!(space.mismatches.is_empty(), "live space: {space:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn versions_match_the_model(ops in proptest::collection::vec(op(), 1..40), page in 1usize..5) {
        let mut rig = fault_media(2);
        let mut store = rig.open(true).unwrap();
        store
            .create_bucket_with("ver", "o", Some(hoard::Protection::Replicas(1)))
            .unwrap();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Versioning(enable) => {
                    let state = if enable { Versioning::Enabled } else { Versioning::Suspended };
                    store.set_bucket_versioning("ver", state).unwrap();
                    model.versioning = state;
                }
                Op::Put(k, s) => {
                    let data = pattern(step as u64, SIZES[s]);
                    let info = store
                        .put_object("ver", KEYS[k], &mut &data[..], PutOptions::default())
                        .unwrap();
                    prop_assert_eq!(
                        info.version == VersionId::Null,
                        model.versioning != Versioning::Enabled
                    );
                    model.add(KEYS[k], Version { id: info.version, data: Some(data) });
                }
                Op::Delete(k) => {
                    let outcome = store.delete_object("ver", KEYS[k]).unwrap();
                    match model.versioning {
                        Versioning::Unversioned => {
                            prop_assert_eq!(outcome.version, None);
                            model.keys.remove(KEYS[k]);
                        }
                        _ => {
                            prop_assert!(outcome.delete_marker);
                            let id = outcome.version.unwrap();
                            model.add(KEYS[k], Version { id, data: None });
                        }
                    }
                }
                Op::DeleteVersion(k, i) => {
                    let target = match model.keys.get(KEYS[k]) {
                        Some(vs) => i.get(vs).clone(),
                        // A version that does not exist: no error, nothing changes.
                        None => Version { id: VersionId::Id(12345), data: None },
                    };
                    let outcome = store.delete_object_version("ver", KEYS[k], target.id).unwrap();
                    prop_assert_eq!(outcome.version, Some(target.id));
                    model.remove(KEYS[k], target.id);
                }
                Op::CopyVersion(s, i, d) => {
                    let Some(source) = model.keys.get(KEYS[s]).map(|vs| i.get(vs).clone()) else {
                        continue;
                    };
                    let copied = store.copy_object(
                        "ver",
                        KEYS[s],
                        "ver",
                        KEYS[d],
                        hoard::store::CopyOptions { source_version: Some(source.id), ..Default::default() },
                        &|_| Ok(()),
                    );
                    match source.data {
                        Some(data) => {
                            let info = copied.unwrap();
                            model.add(KEYS[d], Version { id: info.version, data: Some(data) });
                        }
                        None => prop_assert!(
                            matches!(copied, Err(hoard::Error::DeleteMarker { .. })),
                            "copying a delete marker is refused"
                        ),
                    }
                }
                Op::Restart => {
                    rig.close(store);
                    store = open(&mut rig);
                }
                Op::PowerCut => {
                    rig.crash();
                    drop(store);
                    store = open(&mut rig);
                }
            }
            check(&store, &model, page);
        }
        prop_assert_eq!(store.bucket_versioning("ver").unwrap(), model.versioning);
        // Every version must go before the bucket can.
        if !model.keys.is_empty() {
            prop_assert!(matches!(store.delete_bucket("ver"), Err(hoard::Error::BucketNotEmpty(_))));
        }
    }
}
