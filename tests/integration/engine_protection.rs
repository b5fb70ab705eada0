//! Per-bucket protection (`replicas:N`) on fault-injecting devices: every acknowledged object of
//! a `replicas:2` bucket reads back byte-exact with any one data drive missing or any one drive's
//! copy corrupt; with two drives lost, an object that had both copies there fails naming itself
//! and no object ever returns wrong bytes; writes go on with a drive missing.

use hoard::store::PutOptions;
use hoard::{Error, Protection};

use crate::support::{pattern, Rig};

use crate::support::{fault_media as media, read_object as read, TINY_SIZES as SIZES};

#[test]
fn replicas_2_survive_any_one_lost_or_corrupt_drive() {
    let mut media = media(4);
    let store = media.open_without(true, &[]).unwrap();
    store
        .create_bucket_with("two", "o", Some(Protection::Replicas(2)))
        .unwrap();
    store.create_bucket("one", "o").unwrap();
    assert_eq!(
        store.head_bucket("two").unwrap().protection,
        Protection::Replicas(2)
    );
    assert_eq!(
        store.head_bucket("one").unwrap().protection,
        Protection::Replicas(1)
    );
    let objects: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let size = SIZES[i % SIZES.len()];
            (format!("k{i}"), pattern(1000 + i as u64, size))
        })
        .collect();
    for (key, data) in &objects {
        for bucket in ["two", "one"] {
            store
                .put_object(bucket, key, &mut &data[..], PutOptions::default())
                .unwrap();
        }
    }
    media.close(store);

    // Any one data drive missing: every replicas:2 object reads back exactly; the one-copy
    // bucket loses exactly the objects that had a chunk there (and says so).
    for lost in 0..4 {
        let store = media.open_without(false, &[lost]).unwrap();
        let mut one_copy_lost = 0;
        for (key, data) in &objects {
            assert_eq!(
                &read(&store, "two", key).unwrap(),
                data,
                "{key} without slot {lost}"
            );
            match read(&store, "one", key) {
                Ok(got) => assert_eq!(&got, data),
                Err(e) => {
                    assert!(e.to_string().contains(key), "{e}");
                    one_copy_lost += 1;
                }
            }
        }
        assert!(
            one_copy_lost > 0,
            "some one-copy object had a chunk on slot {lost}"
        );
        drop(store);
    }

    // Any one drive's copy corrupt: the reader falls back to the other copy. (The same flips
    // do hit data: one-copy objects fail on them.)
    let store = media.open_without(false, &[]).unwrap();
    let mut one_copy_corrupt = 0;
    for device in 1..=4 {
        for offset in [(1 << 20) + 100, (1 << 20) + 70_000, (2 << 20) + 9_000] {
            media.controls[device].flip_bit(offset, 3);
        }
        for (key, data) in &objects {
            assert_eq!(
                &read(&store, "two", key).unwrap(),
                data,
                "{key} with device {device} corrupt"
            );
            match read(&store, "one", key) {
                Ok(got) => assert_eq!(&got, data, "{key}: corrupt bytes returned"),
                Err(e) => {
                    assert!(e.to_string().contains("checksum"), "{e}");
                    one_copy_corrupt += 1;
                }
            }
        }
        for offset in [(1 << 20) + 100, (1 << 20) + 70_000, (2 << 20) + 9_000] {
            media.controls[device].flip_bit(offset, 3);
        }
    }
    assert!(one_copy_corrupt > 0, "the flipped bits hit stored chunks");
    drop(store);

    // Two drives lost: an object is either exact or an error naming it, never wrong bytes.
    let store = media.open_without(false, &[0, 1]).unwrap();
    let mut failed = 0;
    for (key, data) in &objects {
        match read(&store, "two", key) {
            Ok(got) => assert_eq!(&got, data, "{key}"),
            Err(e) => {
                assert!(e.to_string().contains(key), "{e}");
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "some object had both copies on slots 0 and 1");
}

#[test]
fn writes_go_on_with_a_drive_missing_and_protection_is_validated() {
    let mut media = media(4);
    let store = media.open_without(true, &[]).unwrap();
    store
        .create_bucket_with("three", "o", Some(Protection::Replicas(3)))
        .unwrap();
    let err = store
        .create_bucket_with("five", "o", Some(Protection::Replicas(5)))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("replicas:5") && m.contains('4')),
        "{err}"
    );
    let err = store
        .create_bucket_with(
            "coded",
            "o",
            Some(Protection::ErasureCoded { data: 4, parity: 2 }),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("ec:4+2") && m.contains("has 4")),
        "{err}"
    );
    media.close(store);

    // Slot 2 is gone: three copies still find three distinct drives.
    let store = media.open_without(false, &[2]).unwrap();
    let data = pattern(7, 400_000);
    store
        .put_object(
            "three",
            "written-degraded",
            &mut &data[..],
            PutOptions::default(),
        )
        .unwrap();
    media.close(store);
    // Any two of the other three drives lost: it still reads.
    for lost in [[0, 1], [0, 3], [1, 3]] {
        let store = media.open_without(false, &lost).unwrap();
        assert_eq!(read(&store, "three", "written-degraded").unwrap(), data);
    }
}

/// Every set of `n` slots out of `of`.
fn subsets(of: usize, n: usize) -> Vec<Vec<usize>> {
    (0u32..1 << of)
        .filter(|bits| bits.count_ones() as usize == n)
        .map(|bits| (0..of).filter(|i| bits & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn erasure_coded_buckets_survive_m_lost_or_corrupt_drives() {
    for (data, parity, hdds) in [(2u32, 1u32, 4usize), (4, 2, 6)] {
        let protection = Protection::ErasureCoded { data, parity };
        let mut media = media(hdds);
        let store = media.open_without(true, &[]).unwrap();
        store
            .create_bucket_with("coded", "o", Some(protection))
            .unwrap();
        assert_eq!(store.head_bucket("coded").unwrap().protection, protection);
        let objects: Vec<(String, Vec<u8>)> = (0..21)
            .map(|i| {
                let size = SIZES[i % SIZES.len()] + i;
                (format!("k{i}"), pattern(7000 + i as u64, size))
            })
            .collect();
        for (key, data) in &objects {
            store
                .put_object("coded", key, &mut &data[..], PutOptions::default())
                .unwrap();
        }
        media.close(store);

        // Any M drives missing (reconstruction from parity) and none (the healthy path).
        let mut sets = subsets(hdds, parity as usize);
        sets.push(Vec::new());
        for lost in sets {
            let store = media.open_without(false, &lost).unwrap();
            for (key, data) in &objects {
                assert_eq!(
                    &read(&store, "coded", key).unwrap(),
                    data,
                    "{protection}: {key} without slots {lost:?}"
                );
            }
        }

        // One drive's shards corrupt: reconstructed, never returned.
        let store = media.open_without(false, &[]).unwrap();
        let flips = [(1 << 20) + 100, (1 << 20) + 20_000, (2 << 20) + 9_000];
        for device in 1..=hdds {
            for offset in flips {
                media.controls[device].flip_bit(offset, 5);
            }
            for (key, data) in &objects {
                assert_eq!(
                    &read(&store, "coded", key).unwrap(),
                    data,
                    "{protection}: {key} with device {device} corrupt"
                );
            }
            for offset in flips {
                media.controls[device].flip_bit(offset, 5);
            }
        }
        drop(store);

        // M+1 drives lost: exact or an error naming the object, and some object is lost.
        let lost: Vec<usize> = (0..=parity as usize).collect();
        let store = media.open_without(false, &lost).unwrap();
        let mut failed = 0;
        for (key, data) in &objects {
            match read(&store, "coded", key) {
                Ok(got) => assert_eq!(&got, data, "{key}"),
                Err(e) => {
                    assert!(e.to_string().contains(key), "{e}");
                    failed += 1;
                }
            }
        }
        assert!(
            failed > 0,
            "{protection}: some object had M+1 shards on {lost:?}"
        );
    }
}

/// A drive whose reads fail at run time is failed after the profile's threshold: every object
/// keeps reading (from parity), the drive takes no new chunks, and the store names it.
#[test]
fn a_drive_failing_reads_at_run_time_is_failed_and_left_out() {
    let mut media = media(4);
    let store = media.open_without(true, &[]).unwrap();
    store
        .create_bucket_with(
            "coded",
            "o",
            Some(Protection::ErasureCoded { data: 2, parity: 1 }),
        )
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            (
                format!("k{i}"),
                pattern(500 + i as u64, 200_000 + i * 10_000),
            )
        })
        .collect();
    for (key, data) in &objects {
        store
            .put_object("coded", key, &mut &data[..], PutOptions::default())
            .unwrap();
    }
    assert!(store.failed_data_slots().is_empty());
    // Data slot 1 (device 2 of the media) starts failing every read.
    media.controls[2].fail_reads(true);
    for (key, data) in &objects {
        assert_eq!(&read(&store, "coded", key).unwrap(), data, "{key}");
    }
    let failed = store.failed_data_slots();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 1);
    // New objects go to the three other drives only.
    let writes_before = media.controls[2].writes();
    for i in 0..6 {
        let data = pattern(900 + i, 150_000);
        store
            .put_object(
                "coded",
                &format!("new{i}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
        assert_eq!(read(&store, "coded", &format!("new{i}")).unwrap(), data);
    }
    assert_eq!(media.controls[2].writes(), writes_before);
}

/// Failure groups: with 6 HDDs in 3 groups of 2, no stripe puts more than M shards (N - 1
/// copies) in one group, so losing a whole group (two drives at once) loses nothing; a
/// protection the groups cannot hold is refused naming the limit.
#[test]
fn losing_a_whole_failure_group_loses_nothing() {
    let profile = crate::support::tiny_profile_with(
        6,
        "[[pool]]\nname = \"default\"\nhdd_slots = [0, 1, 2, 3, 4, 5]\nprotection = \"ec:4+2\"\nfailure_groups = [[0, 1], [2, 3], [4, 5]]",
    );
    let mut media = Rig::blank(profile.derive(), 8 << 20, 24 << 20, 6);
    let store = media.open(true).unwrap();
    let err = store
        .create_bucket_with(
            "wide",
            "o",
            Some(Protection::ErasureCoded { data: 3, parity: 1 }),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("failure group") && m.contains("only 3 of its 4")),
        "{err}"
    );
    let buckets = [
        ("ec42", Protection::ErasureCoded { data: 4, parity: 2 }),
        ("ec21", Protection::ErasureCoded { data: 2, parity: 1 }),
        ("two", Protection::Replicas(2)),
    ];
    let objects: Vec<(String, Vec<u8>)> = (0..14)
        .map(|i| {
            (
                format!("k{i}"),
                pattern(40 + i as u64, SIZES[i % SIZES.len()] + 70_000),
            )
        })
        .collect();
    for (bucket, protection) in buckets {
        store
            .create_bucket_with(bucket, "o", Some(protection))
            .unwrap();
        for (key, data) in &objects {
            store
                .put_object(bucket, key, &mut &data[..], PutOptions::default())
                .unwrap();
        }
    }
    media.close(store);
    for group in [[0, 1], [2, 3], [4, 5]] {
        let store = media.open_without(false, &group).unwrap();
        for (bucket, _) in buckets {
            for (key, data) in &objects {
                assert_eq!(
                    &read(&store, bucket, key).unwrap(),
                    data,
                    "{bucket}/{key} without group {group:?}"
                );
            }
        }
    }
}

/// A drive whose reads are slower than the profile's drive timeout is failed like one whose
/// reads error: objects keep reading (the slow reads still return their bytes), and the drive
/// takes no new chunks.
#[test]
fn a_drive_slower_than_the_timeout_is_failed() {
    let mut media = media(4);
    media.config.drive_timeout_ms = 50;
    let store = media.open(true).unwrap();
    store
        .create_bucket_with(
            "coded",
            "o",
            Some(Protection::ErasureCoded { data: 2, parity: 1 }),
        )
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("k{i}"), pattern(60 + i as u64, 300_000)))
        .collect();
    for (key, data) in &objects {
        store
            .put_object("coded", key, &mut &data[..], PutOptions::default())
            .unwrap();
    }
    media.controls[3].slow_reads(Some(std::time::Duration::from_millis(80)));
    for (key, data) in &objects {
        assert_eq!(&read(&store, "coded", key).unwrap(), data, "{key}");
    }
    let failed = store.failed_data_slots();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 2);
    let writes = media.controls[3].writes();
    store
        .put_object(
            "coded",
            "after",
            &mut &pattern(9, 300_000)[..],
            PutOptions::default(),
        )
        .unwrap();
    assert_eq!(
        media.controls[3].writes(),
        writes,
        "a failed drive takes no new chunks"
    );
}
