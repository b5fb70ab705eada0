//! Space: live-space accounting agrees with a recount after random workloads and power cuts,
//! garbage collection keeps a churning store from ever filling, a reader holding an old record
//! reads through a collection, and a full pool refuses writes with `InsufficientStorage` while
//! reads and deletes go on, then recovers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hoard::store::{CompletedPart, PutOptions, UploadOptions};
use hoard::{Error, Protection, Store};

use crate::support::{fault_media, pattern, read_object as read, tiny_profile, Rig};

const EC: Protection = Protection::ErasureCoded { data: 2, parity: 1 };

fn assert_space_exact(store: &Store, what: &str) {
    let check = store.check_space().unwrap();
    assert!(
        check.mismatches.is_empty(),
        "{what}: live space disagrees with a recount:\n{}",
        check.mismatches.join("\n")
    );
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Keys per bucket in the random workload.
const KEYS: u64 = 6;

const SIZES: [usize; 6] = [0, 3_000, 65_536, 70_000, 200_000, 5 << 20];

/// One random operation on bucket `b`: put, overwrite, delete, or a multipart upload
/// (completed, with a replaced part and a part left out, or aborted). Returns the key and
/// its expected value after the operation (`None`: absent), or `None` for no change to the
/// model.
fn random_op(
    store: &Store,
    rng: &mut Rng,
    bucket: &str,
    key: &str,
    step: usize,
) -> hoard::Result<Option<(String, Option<Vec<u8>>)>> {
    let key = key.to_string();
    match rng.below(10) {
        0..=4 => {
            let size = SIZES[rng.below(SIZES.len() as u64 - 1) as usize] + step;
            let data = pattern(step as u64, size);
            store.put_object(bucket, &key, &mut &data[..], PutOptions::default())?;
            Ok(Some((key, Some(data))))
        }
        5 | 6 => {
            store.delete_object(bucket, &key)?;
            Ok(Some((key, None)))
        }
        7 | 8 => {
            let upload =
                store.create_multipart_upload(bucket, &key, "o", UploadOptions::default())?;
            let first = pattern(step as u64 + 1, 5 << 20);
            let second = pattern(step as u64 + 2, 70_000);
            let mut done = Vec::new();
            for (n, data) in [
                (1, &first),
                (2, &pattern(9, 100_000)),
                (2, &second),
                (3, &first),
            ] {
                let info =
                    store.upload_part(bucket, &key, &upload, n, &mut &data[..], None, None)?;
                if n != 3 {
                    done.retain(|p: &CompletedPart| p.part_number != n);
                    done.push(CompletedPart {
                        part_number: n,
                        etag: info.etag,
                        checksums: Vec::new(),
                    });
                }
            }
            store.complete_multipart_upload(bucket, &key, &upload, &done, None, None)?;
            Ok(Some((key, Some([first, second].concat()))))
        }
        _ => {
            let upload =
                store.create_multipart_upload(bucket, &key, "o", UploadOptions::default())?;
            let data = pattern(step as u64, 300_000);
            store.upload_part(bucket, &key, &upload, 1, &mut &data[..], None, None)?;
            store.abort_multipart_upload(bucket, &key, &upload)?;
            Ok(None)
        }
    }
}

#[test]
fn live_space_is_exact_after_random_workloads_gc_and_power_cuts() {
    for seed in 1..=3u64 {
        // 48 MiB drives: the live set (6 keys of up to 5 MiB in each bucket) with its garbage.
        let mut media = Rig::blank(tiny_profile(4).derive(), 8 << 20, 48 << 20, 4);
        media.config.gc_interval_ms = 20;
        let mut store = media.open(true).unwrap();
        store.start_gc_worker();
        store.create_bucket_with("ecb", "o", Some(EC)).unwrap();
        store
            .create_bucket_with("rep", "o", Some(Protection::Replicas(2)))
            .unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut model: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
        let apply = |model: &mut BTreeMap<(String, String), Vec<u8>>,
                     bucket: &str,
                     change: Option<(String, Option<Vec<u8>>)>| {
            if let Some((key, value)) = change {
                match value {
                    Some(v) => model.insert((bucket.to_string(), key), v),
                    None => model.remove(&(bucket.to_string(), key)),
                };
            }
        };
        for step in 0..40 {
            let bucket = if step % 3 == 0 { "rep" } else { "ecb" };
            let key = format!("k{}", rng.below(KEYS));
            let change = random_op(&store, &mut rng, bucket, &key, step).unwrap();
            apply(&mut model, bucket, change);
        }
        let round = store.collect_garbage(true).unwrap();
        assert!(round.victims > 0, "seed {seed}: overwrites left victims");
        for ((bucket, key), data) in &model {
            assert!(
                &read(&store, bucket, key).unwrap() == data,
                "seed {seed}: {bucket}/{key}"
            );
        }

        // Power cuts: the metadata SSD loses power after a random number of writes while the
        // workload and collections go on; after reopening, live space is exact, and every
        // acknowledged object reads whole (the one in flight is old or new).
        for cut in 0..3 {
            let before = media.controls[0].writes();
            media.controls[0].power_cut_after(1 + rng.below(40), true);
            let mut in_doubt = None;
            for step in 0..30 {
                let bucket = if step % 2 == 0 { "rep" } else { "ecb" };
                let key = format!("k{}", rng.below(KEYS));
                let result = if step % 7 == 6 {
                    store.collect_garbage(true).map(|_| None)
                } else {
                    random_op(&store, &mut rng, bucket, &key, 1000 * (cut + 1) + step)
                };
                match result {
                    Ok(change) => apply(&mut model, bucket, change),
                    Err(_) => {
                        in_doubt = Some((bucket.to_string(), key));
                        break;
                    }
                }
            }
            assert!(
                media.controls[0].writes() > before,
                "seed {seed} cut {cut}: the workload wrote"
            );
            drop(store);
            media.crash();
            let reopened = media.open(false).unwrap();
            assert_space_exact(&reopened, &format!("seed {seed} after power cut {cut}"));
            reopened.start_gc_worker();
            for bucket in ["ecb", "rep"] {
                for k in 0..KEYS {
                    let id = (bucket.to_string(), format!("k{k}"));
                    let got = read(&reopened, bucket, &id.1).ok();
                    if in_doubt.as_ref() == Some(&id) {
                        // Old or new, whole: take the store's word for it from here on.
                        match got {
                            Some(v) => model.insert(id, v),
                            None => model.remove(&id),
                        };
                        continue;
                    }
                    assert!(
                        got.as_ref() == model.get(&id),
                        "seed {seed} cut {cut}: {}/{} is not what was acknowledged",
                        id.0,
                        id.1
                    );
                }
            }
            // Freed segments are reused by new writes, and nothing acknowledged is touched.
            for step in 0..10 {
                let key = format!("k{}", rng.below(KEYS));
                let change = random_op(&reopened, &mut rng, "ecb", &key, 5000 + step).unwrap();
                apply(&mut model, "ecb", change);
            }
            for ((bucket, key), data) in &model {
                assert!(
                    &read(&reopened, bucket, key).unwrap() == data,
                    "seed {seed} cut {cut}: {bucket}/{key} after reuse"
                );
            }
            store = reopened;
        }
        media.close(store);
        let store = media.open(false).unwrap();
        assert_space_exact(&store, &format!("seed {seed} at the end"));
        media.close(store);
    }
}

/// Power cuts at points across a collection pass (its needle copies on the HDDs, its record
/// commits on the SSD, the freeing after): nothing acknowledged is lost, live space agrees
/// with a recount, and segments freed at reopen are reused without touching a live object.
#[test]
fn power_cuts_inside_a_collection_lose_nothing_and_free_nothing_referenced() {
    let mut base = fault_media(4);
    let store = base.open(true).unwrap();
    store.create_bucket_with("bkt", "o", Some(EC)).unwrap();
    let mut objects = Vec::new();
    for i in 0..24u64 {
        let data = pattern(40 + i, 300_000 + i as usize * 1000);
        store
            .put_object(
                "bkt",
                &format!("k{i}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
        objects.push((format!("k{i}"), data));
    }
    // Every other object goes: each segment keeps live needles, so collection must copy.
    for i in (0..24).step_by(2) {
        store.delete_object("bkt", &format!("k{i}")).unwrap();
    }
    objects.retain(|(k, _)| k[1..].parse::<u64>().unwrap() % 2 == 1);
    base.close(store);
    // How many writes a whole collection makes on the SSD and on hdd0.
    let mut probe = base.copy();
    let store = probe.open(false).unwrap();
    let (ssd, hdd) = (probe.controls[0].writes(), probe.controls[1].writes());
    let round = store.collect_garbage(true).unwrap();
    assert!(round.needles_moved > 0, "{round:?}");
    let ssd_writes = probe.controls[0].writes() - ssd;
    let hdd_writes = probe.controls[1].writes() - hdd;
    drop(store);
    assert!(
        ssd_writes >= 2 && hdd_writes >= 2,
        "{ssd_writes} {hdd_writes}"
    );
    let cuts = [
        (0, 1),
        (0, ssd_writes / 2),
        (0, ssd_writes - 1),
        (1, 1),
        (1, hdd_writes / 2),
    ];
    for (device, after) in cuts {
        let what = format!("cut of device {device} after {after} writes");
        let mut media = base.copy();
        let store = media.open(false).unwrap();
        media.controls[device].power_cut_after(after, true);
        let _ = store.collect_garbage(true);
        drop(store);
        media.crash();
        let store = media.open(false).unwrap();
        assert_space_exact(&store, &what);
        for (key, data) in &objects {
            assert!(&read(&store, "bkt", key).unwrap() == data, "{what}: {key}");
        }
        // Collection completes, and writes that reuse whatever was freed touch nothing live.
        store.collect_garbage(true).unwrap();
        for i in 0..16u64 {
            let data = pattern(900 + i, 250_000);
            store
                .put_object(
                    "bkt",
                    &format!("new{i}"),
                    &mut &data[..],
                    PutOptions::default(),
                )
                .unwrap();
        }
        for (key, data) in &objects {
            assert!(
                &read(&store, "bkt", key).unwrap() == data,
                "{what}: {key} after reuse"
            );
        }
        assert_space_exact(&store, &format!("{what}, after reuse"));
        media.close(store);
    }
}

#[test]
fn a_reader_holding_an_old_record_reads_through_gc_and_deletes() {
    let mut media = fault_media(4);
    let store = media.open(true).unwrap();
    store.create_bucket_with("bkt", "o", Some(EC)).unwrap();
    // Interleave a keeper with garbage, so the keeper's segments become victims.
    let keeper = pattern(1, 3 << 20);
    for i in 0..6 {
        let junk = pattern(100 + i, 1 << 20);
        store
            .put_object(
                "bkt",
                &format!("junk{i}"),
                &mut &junk[..],
                PutOptions::default(),
            )
            .unwrap();
        if i == 2 {
            store
                .put_object("bkt", "keeper", &mut &keeper[..], PutOptions::default())
                .unwrap();
        }
    }
    let mut reader = store.get_object("bkt", "keeper", None).unwrap();
    let mut first = vec![0u8; 100_000];
    std::io::Read::read_exact(&mut reader, &mut first).unwrap();
    for i in 0..6 {
        store.delete_object("bkt", &format!("junk{i}")).unwrap();
    }
    // The keeper moves out of its segments while the reader holds its old record; then the
    // keeper itself is deleted, and the pool is churned to reuse whatever is freed.
    let round = store.collect_garbage(true).unwrap();
    assert!(
        round.needles_moved > 0,
        "the keeper's needles moved: {round:?}"
    );
    assert!(
        store.space_status().segments_waiting > 0,
        "the keeper's old segments wait for the reader"
    );
    store.delete_object("bkt", "keeper").unwrap();
    for i in 0..12 {
        let data = pattern(500 + i, 1 << 20);
        store
            .put_object(
                "bkt",
                &format!("new{}", i % 4),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
        store.collect_garbage(true).unwrap();
    }
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
    assert!(
        [first, rest].concat() == keeper,
        "the old record's bytes read whole"
    );
    drop(reader);
    let waiting = store.space_status().segments_waiting;
    store.collect_garbage(false).unwrap();
    let after = store.space_status();
    assert!(
        after.segments_waiting < waiting || waiting == 0,
        "segments the reader held are freed once it is gone ({waiting} -> {})",
        after.segments_waiting
    );
    assert_space_exact(&store, "after the reader");
    media.close(store);
}

#[test]
fn a_full_pool_refuses_writes_keeps_reads_and_deletes_and_recovers() {
    let mut media = fault_media(4);
    let store = media.open(true).unwrap();
    store.start_gc_worker();
    store.create_bucket_with("bkt", "o", Some(EC)).unwrap();
    let mut stored = Vec::new();
    let full = loop {
        let data = pattern(stored.len() as u64, 1 << 20);
        match store.put_object(
            "bkt",
            &format!("fill{}", stored.len()),
            &mut &data[..],
            PutOptions::default(),
        ) {
            Ok(_) => stored.push(data),
            Err(e) => break e,
        }
        assert!(stored.len() < 200, "a 4 x 24 MiB pool fills");
    };
    match &full {
        Error::InsufficientStorage {
            what,
            reserve_bytes,
            ..
        } => {
            assert_eq!(what, "pool default");
            assert!(*reserve_bytes > 0);
        }
        e => panic!("a full pool refuses with InsufficientStorage, not {e}"),
    }
    // Multipart is refused at creation; reads, listing and deletes go on.
    assert!(matches!(
        store.create_multipart_upload("bkt", "mp", "o", UploadOptions::default()),
        Err(Error::InsufficientStorage { .. })
    ));
    for (i, data) in stored.iter().enumerate() {
        assert!(
            &read(&store, "bkt", &format!("fill{i}")).unwrap() == data,
            "fill{i}"
        );
    }
    let page = store
        .list_objects(
            "bkt",
            &hoard::store::ListQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.objects.len(), stored.len());
    let status = store.space_status();
    assert!(status.total.free_bytes <= status.total.reserve_bytes + 4 * (1 << 20));
    // Deleting every other object leaves no segment wholly dead: the collector copies the
    // survivors out and writes are accepted again within moments.
    for i in (0..stored.len()).step_by(2) {
        store.delete_object("bkt", &format!("fill{i}")).unwrap();
    }
    let data = pattern(999, 1 << 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.put_object("bkt", "after", &mut &data[..], PutOptions::default()) {
            Ok(_) => break,
            Err(Error::InsufficientStorage { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("the pool did not recover after deletes: {e}"),
        }
    }
    assert!(read(&store, "bkt", "after").unwrap() == data);
    for (i, data) in stored.iter().enumerate().skip(1).step_by(2) {
        assert!(
            &read(&store, "bkt", &format!("fill{i}")).unwrap() == data,
            "fill{i}"
        );
    }
    media.close(store);
    let store = media.open(false).unwrap();
    assert_space_exact(&store, "after the full pool");
    media.close(store);
}

/// Churn: a working set of half the pool is overwritten and deleted at random until 20x the
/// pool's raw bytes have been written, with the garbage collector running in the background
/// as it does in service. No write is ever refused, every current object reads back, and
/// once the churn stops the pool settles at the collector's free-space target. (Fault
/// devices of 24 MiB keep 20 pools quick; `s3_space` churns real files through S3.)
#[test]
fn churn_of_twenty_pools_never_fills_and_space_settles() {
    let mut media = fault_media(4);
    media.config.gc_interval_ms = 20;
    let store = media.open(true).unwrap();
    store.start_gc_worker();
    store.create_bucket_with("bkt", "o", Some(EC)).unwrap();
    let raw = store.space_status().total.raw_bytes;
    // Half the pool in stored bytes (1.5x the object bytes under ec:2+1).
    let object_bytes = 256 << 10;
    let working_set = (raw / 2 * 2 / 3) / object_bytes as u64;
    let mut rng = Rng(42);
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut written = 0u64;
    let started = Instant::now();
    let mut step = 0u64;
    while written < 20 * raw {
        step += 1;
        let k = rng.below(working_set);
        if rng.below(8) == 0 {
            store.delete_object("bkt", &format!("k{k}")).unwrap();
            model.remove(&k);
            continue;
        }
        let data = pattern(step, object_bytes + rng.below(4096) as usize);
        store
            .put_object(
                "bkt",
                &format!("k{k}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "write {step} ({} of {} MiB written) refused: {e}; {:?}; {:?}",
                    written >> 20,
                    20 * raw >> 20,
                    store.space_status(),
                    store.gc_status()
                )
            });
        written += data.len() as u64 * 3 / 2;
        model.insert(k, data);
    }
    let churn = started.elapsed();
    for (k, data) in &model {
        assert!(
            &read(&store, "bkt", &format!("k{k}")).unwrap() == data,
            "k{k}"
        );
    }
    // Settled: the collector brings free space back to its target (20% of raw), minus the
    // segments open for appends (two heads per drive).
    let target_free = raw / 5 - 8 * (1 << 20);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.space_status().total.free_bytes < target_free && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = store.space_status();
    assert!(
        status.total.used_bytes <= raw - target_free,
        "used {} MiB of {} MiB settles under {} MiB",
        status.total.used_bytes >> 20,
        raw >> 20,
        (raw - target_free) >> 20
    );
    let gc = store.gc_status();
    assert!(gc.passes > 0 && gc.needles_moved > 0, "{gc:?}");
    println!(
        "churn: {} MiB written over a {} MiB pool in {:.1} s; gc moved {} MiB in {} passes (write amplification {:.2})",
        written >> 20,
        raw >> 20,
        churn.as_secs_f64(),
        gc.bytes_written >> 20,
        gc.passes,
        gc.bytes_written as f64 / written as f64
    );
    // With the collector stopped, the in-memory table is exact too; and so is a reopen.
    media.close(store);
    let store = media.open(false).unwrap();
    assert_space_exact(&store, "after the churn");
    for (k, data) in &model {
        assert!(
            &read(&store, "bkt", &format!("k{k}")).unwrap() == data,
            "k{k} reopened"
        );
    }
    media.close(store);
}
