//! Rebuild and scrub on fault-injecting devices: redundancy really returns. After a drive is
//! lost (missing, or replaced by a blank one) a rebuild rewrites every copy and shard it held
//! onto the others, and then any M *other* drives may be lost with every object still reading
//! byte-exact; a scrub finds and repairs flipped bits; a power cut mid-rebuild resumes and
//! counts every repair exactly once.

use hoard::store::{PutOptions, UploadOptions};
use hoard::{Protection, Store};

use crate::support::pattern;

use crate::support::{fault_media as media, read_object as read, TINY_SIZES as SIZES};

/// Fills bucket `b` (with `protection`) with objects of every size, a completed multipart
/// object and an upload in progress (part records are repaired too); returns what to expect.
fn fill(store: &Store, protection: Protection) -> Vec<(String, Vec<u8>)> {
    store
        .create_bucket_with("bkt", "o", Some(protection))
        .unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = (0..21)
        .map(|i| {
            let size = SIZES[i % SIZES.len()] + i;
            (format!("k{i:02}"), pattern(3000 + i as u64, size))
        })
        .collect();
    for (key, data) in &objects {
        store
            .put_object("bkt", key, &mut &data[..], PutOptions::default())
            .unwrap();
    }
    for (key, complete) in [("multi", true), ("pending", false)] {
        let upload = store
            .create_multipart_upload("bkt", key, "o", UploadOptions::default())
            .unwrap();
        let sizes: &[usize] = if complete {
            &[5 << 20, 100_000]
        } else {
            &[300_000]
        };
        let parts: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(p, &size)| pattern(77 + p as u64, size))
            .collect();
        let mut done = Vec::new();
        for (p, data) in parts.iter().enumerate() {
            let info = store
                .upload_part(
                    "bkt",
                    key,
                    &upload,
                    p as u32 + 1,
                    &mut &data[..],
                    None,
                    None,
                )
                .unwrap();
            done.push(hoard::store::CompletedPart {
                part_number: p as u32 + 1,
                etag: info.etag,
                checksums: Vec::new(),
            });
        }
        if complete {
            store
                .complete_multipart_upload("bkt", key, &upload, &done, None, None)
                .unwrap();
            objects.push((key.to_string(), parts.concat()));
        }
    }
    objects
}

fn check_all(store: &Store, objects: &[(String, Vec<u8>)], what: &str) {
    for (key, data) in objects {
        let got = read(store, "bkt", key).unwrap_or_else(|e| panic!("{what}: {key}: {e}"));
        assert!(&got == data, "{what}: {key} differs");
    }
}

#[test]
fn rebuild_without_a_replacement_restores_redundancy() {
    for (protection, hdds) in [
        (Protection::ErasureCoded { data: 2, parity: 1 }, 4usize),
        (Protection::ErasureCoded { data: 4, parity: 2 }, 7),
        (Protection::Replicas(3), 4),
    ] {
        let mut media = media(hdds);
        let store = media.open(true).unwrap();
        let objects = fill(&store, protection);
        media.close(store);

        // Slot 0 is lost: the store serves degraded and a rebuild re-protects onto the rest.
        let store = media.open_without(false, &[0]).unwrap();
        assert!(store.rebuild_pending());
        let lost = store.count_lost_locations().unwrap();
        assert!(lost > 0, "{protection}: something was on slot 0");
        let pass = store.rebuild().unwrap();
        assert_eq!(pass.counters.shards_repaired, lost, "{protection}");
        assert_eq!(pass.counters.unrecoverable, 0, "{protection}");
        assert_eq!(store.count_lost_locations().unwrap(), 0, "{protection}");
        assert!(!store.rebuild_pending());
        let status = store.repair_status().unwrap();
        assert_eq!(status.last_rebuild.unwrap().counters, pass.counters);
        check_all(&store, &objects, &format!("{protection} rebuilt"));
        // A second pass finds nothing to do.
        assert_eq!(store.rebuild().unwrap().counters.shards_repaired, 0);
        media.close(store);

        // Now lose as many *other* drives as the protection tolerates: all still read.
        let mut gone = vec![0];
        gone.extend(1..=protection.tolerates() as usize);
        let store = media.open_without(false, &gone).unwrap();
        check_all(&store, &objects, &format!("{protection} without {gone:?}"));
    }
}

#[test]
fn a_blank_replacement_is_adopted_and_rebuilt() {
    let protection = Protection::ErasureCoded { data: 2, parity: 1 };
    let mut media = media(4);
    let store = media.open(true).unwrap();
    let objects = fill(&store, protection);
    media.close(store);

    // Slot 2's drive is swapped for a blank one: adopted (formatting blank drives allowed)
    // with a rebuild boundary, served degraded, then rebuilt.
    let size = media.images[3].len();
    media.images[3] = vec![0; size];
    let store = media.open(true).unwrap();
    let status = store.repair_status().unwrap();
    assert_eq!(status.lost_slots.len(), 1, "{:?}", status.lost_slots);
    assert_eq!(status.lost_slots[0].0, 2);
    assert!(status.lost_slots[0].1.contains("replaced"), "{status:?}");
    assert!(status.lost_bytes_estimate > 0);
    check_all(&store, &objects, "degraded, before the rebuild");
    let lost = store.count_lost_locations().unwrap();
    assert!(lost > 0);
    let pass = store.rebuild().unwrap();
    assert_eq!(pass.counters.shards_repaired, lost);
    assert!(
        media.controls[3].writes() > 0,
        "the replacement takes rebuilt shards"
    );
    assert!(store.repair_status().unwrap().lost_slots.is_empty());
    media.close(store);

    // The boundary is gone for good; a different drive may now be lost.
    let store = media.open_without(false, &[0]).unwrap();
    assert!(store.repair_status().unwrap().lost_slots.len() == 1);
    check_all(&store, &objects, "rebuilt, then slot 0 lost");
}

#[test]
fn scrub_finds_and_repairs_flipped_bits() {
    let protection = Protection::ErasureCoded { data: 2, parity: 1 };
    let mut media = media(4);
    let store = media.open(true).unwrap();
    let objects = fill(&store, protection);
    media.close(store);

    // Latent errors: bits flipped every 64 KiB across slot 1's first 8 MiB of segments.
    for offset in (1 << 20..9 << 20).step_by(64 << 10) {
        media.images[2][offset + 777] ^= 0x10;
    }
    let store = media.open(false).unwrap();
    let pass = store.scrub().unwrap();
    assert!(pass.counters.shards_repaired > 0, "{pass:?}");
    assert_eq!(pass.counters.unrecoverable, 0);
    assert!(pass.counters.bytes_read > 0);
    // Repaired for good: a second scrub finds nothing, and slot 0 may now be lost.
    assert_eq!(store.scrub().unwrap().counters.shards_repaired, 0);
    media.close(store);
    let store = media.open_without(false, &[0]).unwrap();
    check_all(&store, &objects, "scrubbed, then slot 0 lost");
    drop(store);

    // With M + 1 bad shards of a chunk, scrub names the object and repairs nothing wrongly.
    let store = media.open(false).unwrap();
    media.controls[1].fail_reads(true);
    media.controls[2].fail_reads(true);
    let pass = store.scrub().unwrap();
    assert!(pass.counters.unrecoverable > 0);
    let status = store.repair_status().unwrap();
    assert!(
        !status.unrecoverable_objects.is_empty()
            && status.unrecoverable_objects[0].starts_with("bkt/"),
        "{:?}",
        status.unrecoverable_objects
    );
}

#[test]
fn a_power_cut_mid_rebuild_resumes_and_counts_each_repair_once() {
    let protection = Protection::ErasureCoded { data: 2, parity: 1 };
    let mut base = media(4);
    let store = base.open(true).unwrap();
    let objects = fill(&store, protection);
    base.close(store);
    // How many metadata writes a whole rebuild makes, to cut it at points across it.
    let mut probe = base.copy();
    let store = probe.open_without(false, &[3]).unwrap();
    let lost = store.count_lost_locations().unwrap();
    let before = probe.controls[0].writes();
    store.rebuild().unwrap();
    let writes = probe.controls[0].writes() - before;
    drop(store);
    assert!(
        writes >= 4,
        "the rebuild commits in several batches ({writes} writes)"
    );

    let mut resumed_any = false;
    // Cut points across the pass (the SSD's writes also include table flushes, whose timing
    // varies, so several points make sure some fall between batches).
    let mut cuts: Vec<u64> = (1..writes).step_by((writes / 8).max(1) as usize).collect();
    cuts.push(writes - 1);
    for cut_after in cuts {
        let mut media = base.copy();
        let store = media.open_without(false, &[3]).unwrap();
        // The metadata SSD loses power after `cut_after` more writes.
        media.controls[0].power_cut_after(cut_after, true);
        let err = store.rebuild();
        assert!(err.is_err(), "cut after {cut_after}: the pass was cut");
        drop(store);
        media.crash();

        let store = media.open_without(false, &[3]).unwrap();
        let left = store.count_lost_locations().unwrap();
        let status = store.repair_status().unwrap();
        // Committed repairs are counted exactly: in the interrupted pass, or (when the cut
        // came after its last batch) in the completed one.
        let resumed = status.running.is_some();
        resumed_any |= resumed && left > 0;
        let committed = status
            .running
            .or(status.last_rebuild)
            .map_or(0, |p| p.counters.shards_repaired);
        assert_eq!(committed + left, lost, "cut after {cut_after}");
        let pass = store.rebuild().unwrap();
        assert_eq!(
            pass.counters.shards_repaired,
            if resumed { lost } else { left },
            "cut after {cut_after}"
        );
        assert_eq!(store.count_lost_locations().unwrap(), 0);
        check_all(
            &store,
            &objects,
            &format!("resumed after a cut at {cut_after}"),
        );
        media.close(store);
        let store = media.open_without(false, &[3, 1]).unwrap();
        check_all(
            &store,
            &objects,
            &format!("cut at {cut_after}, then slot 1 lost"),
        );
    }
    assert!(resumed_any, "some cut fell between a pass's batches");
}

#[test]
fn overwrites_during_a_rebuild_win() {
    let protection = Protection::ErasureCoded { data: 2, parity: 1 };
    let mut media = media(4);
    let store = media.open(true).unwrap();
    let objects = fill(&store, protection);
    media.close(store);
    let store = media.open_without(false, &[1]).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut latest = Vec::new();
            for round in 0..3u64 {
                for i in (0..21).step_by(2) {
                    let data = pattern(round * 100 + i, 70_000 + i as usize);
                    store
                        .put_object(
                            "bkt",
                            &format!("k{i:02}"),
                            &mut &data[..],
                            PutOptions::default(),
                        )
                        .unwrap();
                    latest.push((format!("k{i:02}"), data));
                }
            }
            latest
        })
    };
    store.rebuild().unwrap();
    let latest = writer.join().unwrap();
    // Written while slot 1 was missing: nothing of the new versions is on it.
    let mut expect: std::collections::BTreeMap<String, Vec<u8>> = objects.into_iter().collect();
    expect.extend(latest);
    let expect: Vec<(String, Vec<u8>)> = expect.into_iter().collect();
    store.rebuild().unwrap();
    assert_eq!(store.count_lost_locations().unwrap(), 0);
    check_all(&store, &expect, "after racing overwrites");
}

#[test]
fn a_failed_drive_is_replaced_while_the_store_runs() {
    use hoard::device::{fault::FaultBackend, Device};
    use hoard::store::DriveState;
    let protection = Protection::ErasureCoded { data: 2, parity: 1 };
    let mut media = media(4);
    let store = media.open(true).unwrap();
    let objects = fill(&store, protection);

    // Slot 1's drive dies while serving: its reads and writes fail, reads fail it over.
    media.controls[2].fail_reads(true);
    media.controls[2].fail_writes(true);
    check_all(&store, &objects, "slot 1 dying");
    let slots = store.data_slots();
    assert_eq!(slots[1].state, DriveState::Failed, "{slots:?}");

    // A blank drive is adopted into the slot while the store runs; a non-blank one and a
    // healthy slot are refused.
    let size = media.images[2].len() as u64;
    let (backend, control) = FaultBackend::new(size);
    let blank = std::sync::Arc::new(Device::with_backend("replacement", size, Box::new(backend)));
    let err = store.adopt_data_drive(0, blank.clone()).unwrap_err();
    assert!(err.to_string().contains("healthy"), "{err}");
    store.adopt_data_drive(1, blank.clone()).unwrap();
    let err = store.adopt_data_drive(1, blank).unwrap_err();
    assert!(err.to_string().contains("healthy"), "{err}");
    assert_eq!(store.data_slots()[1].state, DriveState::Rebuilding);
    assert!(store.rebuild_pending());
    check_all(&store, &objects, "replacement adopted, not yet rebuilt");
    let pass = store.rebuild().unwrap();
    assert!(pass.counters.shards_repaired > 0);
    assert_eq!(store.count_lost_locations().unwrap(), 0);
    assert_eq!(store.data_slots()[1].state, DriveState::Healthy);
    assert!(control.writes() > 0, "the replacement takes rebuilt shards");
    store.close().unwrap();
    drop(store);
    media.crash();
    media.images[2] = control.durable_image();

    // The replacement keeps its slot across a restart, and slot 0 may now be lost.
    let store = media.open_without(false, &[0]).unwrap();
    check_all(&store, &objects, "replaced at run time, then slot 0 lost");
}
