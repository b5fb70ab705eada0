//! The engine's contracts (DESIGN.md 1-3 and 9), proven on the Store API directly: on real
//! files with both I/O backends, and on fault-injecting devices for power cuts, bit flips and
//! full devices.

use std::io::Read;

use hoard::device::fault::FaultControl;
use hoard::device::IoBackend;
use hoard::store::{CompletedPart, PutOptions};
use hoard::{Error, Profile, Store, StoreOptions};

use crate::support::{md5_hex, pattern, scratch_dir, tiny_profile, Rig};

/// Tiny devices: 4 data devices, 64 KiB chunks, 1 MiB segments.
fn profile() -> Profile {
    tiny_profile(4)
}

/// Fault devices: metadata of `meta_bytes`, 4 data devices of `data_bytes`.
fn blank_rig(meta_bytes: usize, data_bytes: usize) -> Rig {
    Rig::blank(profile().derive(), meta_bytes, data_bytes, 4)
}

fn read_all(store: &Store, bucket: &str, key: &str) -> hoard::Result<Vec<u8>> {
    let mut r = store.get_object(bucket, key, None)?;
    let mut v = Vec::new();
    r.read_to_end(&mut v).map_err(Error::Body)?;
    Ok(v)
}

fn content(key: u64, version: u64) -> Vec<u8> {
    let size = [0usize, 10, 5000, 65536, 65537, 200_000][((key + version) % 6) as usize];
    pattern(key << 32 | version, size)
}

#[test]
fn both_io_backends_store_and_reopen_on_real_files() {
    for backend in [IoBackend::Uring, IoBackend::Portable] {
        let dir = scratch_dir();
        let opts = StoreOptions {
            profile: profile(),
            data_dir: dir.path().to_path_buf(),
            format_blank: true,
            io_backend: Some(backend),
        };
        let store = Store::open(&opts).unwrap();
        store.create_bucket("bkt", "owner").unwrap();
        let big = pattern(1, 1_000_003);
        let info = store
            .put_object("bkt", "big", &mut &big[..], PutOptions::default())
            .unwrap();
        assert_eq!(info.etag, md5_hex(&big));
        let id = store
            .create_multipart_upload("bkt", "mp", "owner", Default::default())
            .unwrap();
        let p1 = pattern(2, 5 << 20);
        let p2 = pattern(3, 1234);
        let e1 = store
            .upload_part("bkt", "mp", &id, 1, &mut &p1[..], None, None)
            .unwrap()
            .etag;
        let e2 = store
            .upload_part("bkt", "mp", &id, 2, &mut &p2[..], None, None)
            .unwrap()
            .etag;
        let parts = [
            CompletedPart {
                part_number: 1,
                etag: e1,
                checksums: vec![],
            },
            CompletedPart {
                part_number: 2,
                etag: e2,
                checksums: vec![],
            },
        ];
        store
            .complete_multipart_upload("bkt", "mp", &id, &parts, None, None)
            .unwrap();
        // Repeated (an SDK retry after a timeout): the same version, not NoSuchUpload.
        let again = store
            .complete_multipart_upload("bkt", "mp", &id, &parts, None, None)
            .unwrap();
        assert_eq!(again.size, (5 << 20) + 1234);
        store.close().unwrap();
        drop(store);
        let store = Store::open(&StoreOptions {
            format_blank: false,
            ..opts
        })
        .unwrap();
        assert!(
            read_all(&store, "bkt", "big").unwrap() == big,
            "{backend:?}"
        );
        assert!(
            read_all(&store, "bkt", "mp").unwrap() == [p1, p2].concat(),
            "{backend:?}"
        );
    }
}

#[test]
fn power_cuts_keep_acknowledged_objects_whole() {
    let mut crash_points = 0;
    // Cut the metadata device (0) or a data device (1..4) after n of its writes.
    for device in [0usize, 1, 3] {
        for cut in (0..90u64).step_by(3) {
            let mut rig = blank_rig(8 << 20, 16 << 20);
            let store = rig.open(true).unwrap();
            store.create_bucket("bkt", "o").unwrap();
            rig.controls[device].power_cut_after(cut, true);
            let mut acked: std::collections::HashMap<u64, u64> = Default::default();
            'writes: for version in 1..60u64 {
                let key = version % 7;
                let data = content(key, version);
                let opts = PutOptions {
                    user_metadata: vec![("version".into(), version.to_string())],
                    ..PutOptions::default()
                };
                match store.put_object("bkt", &format!("k{key}"), &mut &data[..], opts) {
                    Ok(_) => {
                        acked.insert(key, version);
                    }
                    Err(_) => break 'writes,
                }
            }
            drop(store);
            rig.crash();
            crash_points += 1;
            let store = rig
                .open(false)
                .unwrap_or_else(|e| panic!("device {device} cut {cut}: reopen failed: {e}"));
            for key in 0..7u64 {
                match store.head_object("bkt", &format!("k{key}")) {
                    Ok(info) => {
                        let version: u64 = info.user_metadata[0].1.parse().unwrap();
                        let data = read_all(&store, "bkt", &format!("k{key}")).unwrap();
                        assert!(
                            data == content(key, version),
                            "device {device} cut {cut}: k{key} torn"
                        );
                        assert!(
                            acked.get(&key).is_none_or(|&a| version >= a),
                            "device {device} cut {cut}: k{key} lost its acknowledged version"
                        );
                    }
                    Err(Error::NoSuchKey { .. }) => assert!(
                        !acked.contains_key(&key),
                        "device {device} cut {cut}: acknowledged k{key} missing"
                    ),
                    Err(e) => panic!("device {device} cut {cut}: {e}"),
                }
            }
        }
    }
    assert!(crash_points >= 90);
}

#[test]
fn corrupt_chunks_are_reported_never_returned() {
    let mut rig = blank_rig(8 << 20, 16 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    let data = pattern(11, 300_000);
    store
        .put_object("bkt", "victim", &mut &data[..], PutOptions::default())
        .unwrap();
    // Flip one bit inside the first needle of segment 0 on every data device.
    for control in &rig.controls[1..] {
        control.flip_bit((1 << 20) + 9000, 2);
    }
    let result = read_all(&store, "bkt", "victim");
    let err = result.expect_err("a corrupt chunk must not be returned as data");
    let msg = err.to_string();
    assert!(msg.contains("victim") && msg.contains("checksum"), "{msg}");
}

struct FailingBody {
    sent: usize,
    fail_at: usize,
}

impl Read for FailingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.fail_at {
            return Err(std::io::Error::other("client went away"));
        }
        let n = buf.len().min(self.fail_at - self.sent).min(10_000);
        buf[..n].fill(0xAB);
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn bad_input_changes_nothing() {
    let mut rig = blank_rig(8 << 20, 4 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    let old = pattern(5, 100_000);
    store
        .put_object("bkt", "k", &mut &old[..], PutOptions::default())
        .unwrap();

    assert!(matches!(
        store.put_object("nope", "k", &mut &old[..], PutOptions::default()),
        Err(Error::NoSuchBucket(_))
    ));
    assert!(matches!(
        store.put_object(
            "bkt",
            &"x".repeat(1025),
            &mut &old[..],
            PutOptions::default()
        ),
        Err(Error::InvalidKey { .. })
    ));
    let err = store
        .put_object(
            "bkt",
            "k",
            &mut FailingBody {
                sent: 0,
                fail_at: 250_000,
            },
            PutOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err}");
    let bad_md5 = PutOptions {
        content_md5: Some([0; 16]),
        ..PutOptions::default()
    };
    assert!(matches!(
        store.put_object("bkt", "k", &mut &pattern(6, 10)[..], bad_md5),
        Err(Error::BadDigest)
    ));
    assert!(
        read_all(&store, "bkt", "k").unwrap() == old,
        "failed puts left the old object"
    );
    assert!(matches!(
        store.create_bucket("Not_Valid", "o"),
        Err(Error::InvalidBucketName { .. })
    ));

    // Fill the (tiny) pool: a clear NoSpace error, and everything stored stays readable.
    let mut stored = vec![("k".to_string(), old.clone())];
    let mut full = None;
    for i in 0..200u64 {
        let data = pattern(100 + i, 400_000);
        match store.put_object(
            "bkt",
            &format!("fill{i}"),
            &mut &data[..],
            PutOptions::default(),
        ) {
            Ok(_) => stored.push((format!("fill{i}"), data)),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let full = full.expect("a 4 x 4 MiB pool fills up");
    assert!(
        matches!(full, Error::InsufficientStorage { .. }) && full.to_string().contains("pool"),
        "{full}"
    );
    for (key, data) in &stored {
        assert!(
            read_all(&store, "bkt", key).unwrap() == *data,
            "{key} damaged by a full pool"
        );
    }
    store.delete_object("bkt", "fill0").unwrap();
    drop(store);
    rig.crash();
    let store = rig.open(false).unwrap();
    assert!(read_all(&store, "bkt", "k").unwrap() == old);
    assert!(matches!(
        store.head_object("bkt", "fill0"),
        Err(Error::NoSuchKey { .. })
    ));
}

#[test]
fn foreign_and_non_blank_devices_are_never_formatted() {
    let mut rig = blank_rig(8 << 20, 4 << 20);
    rig.open(true).unwrap();
    rig.crash();
    // Another store's data device in slot 2.
    let mut other = blank_rig(8 << 20, 4 << 20);
    other.open(true).unwrap();
    other.crash();
    let mut mixed = rig.copy();
    mixed.images[3] = other.images[3].clone();
    let err = mixed.open(true).err().expect("foreign device refused");
    assert!(matches!(err, Error::ForeignStore { .. }), "{err}");
    assert!(err.to_string().contains("fault3"));
    // Non-zero bytes with no superblock (say, a filesystem) in a data slot.
    let mut dirty = blank_rig(8 << 20, 4 << 20);
    dirty.images[2][1080] = 0x53;
    let err = dirty.open(true).err().expect("non-blank device refused");
    assert!(matches!(err, Error::NotBlank { .. }), "{err}");
    assert!(dirty.images[2][..4096].iter().any(|&b| b != 0));
    // A blank metadata device beside data devices of a store: refused, not reformatted.
    let mut lost = rig.copy();
    lost.images[0] = vec![0; 8 << 20];
    let err = lost.open(true).err().expect("lost metadata refused");
    assert!(err.to_string().contains("refusing to format"), "{err}");
}

#[test]
fn clean_restarts_reuse_the_open_segment_and_crashes_after_them_lose_nothing() {
    let mut rig = blank_rig(8 << 20, 8 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    store.close().unwrap();
    drop(store);
    rig.crash();
    let mut expected = Vec::new();
    // 7 segments of 1 MiB per device: 200 clean restarts must not use one up each.
    for i in 0..200u64 {
        let store = rig.open(false).unwrap();
        let data = pattern(i, 3000);
        store
            .put_object(
                "bkt",
                &format!("k{i}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
        expected.push(data);
        store.close().unwrap();
        assert!(matches!(
            store.put_object("bkt", "late", &mut &b"x"[..], PutOptions::default()),
            Err(Error::Closed)
        ));
        drop(store);
        rig.crash();
    }
    // Resume after a clean close, write, then crash without closing: nothing is overwritten.
    let store = rig.open(false).unwrap();
    let after = pattern(999, 70_000);
    store
        .put_object("bkt", "after", &mut &after[..], PutOptions::default())
        .unwrap();
    drop(store);
    rig.crash();
    let store = rig.open(false).unwrap();
    let more = pattern(1000, 70_000);
    store
        .put_object("bkt", "more", &mut &more[..], PutOptions::default())
        .unwrap();
    for (i, data) in expected.iter().enumerate() {
        assert!(
            read_all(&store, "bkt", &format!("k{i}")).unwrap() == *data,
            "k{i}"
        );
    }
    assert!(read_all(&store, "bkt", "after").unwrap() == after);
    assert!(read_all(&store, "bkt", "more").unwrap() == more);
}

#[test]
fn small_objects_live_in_the_index_and_never_touch_an_hdd() {
    let mut rig = blank_rig(8 << 20, 8 << 20);
    let store = rig.open(true).unwrap();
    let threshold = store.config().inline_threshold_bytes as usize;
    assert!(threshold >= 1024, "threshold {threshold}");
    store.create_bucket("bkt", "o").unwrap();
    let hdd_writes =
        |rig: &Rig| -> u64 { rig.controls[1..].iter().map(FaultControl::writes).sum() };
    let before = hdd_writes(&rig);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..300u64 {
        // Sizes 1..=threshold, both ends included.
        let size = match i {
            0 => threshold,
            1 => 1,
            _ => 1 + (i as usize * 7919) % threshold,
        };
        let data = pattern(i, size);
        let key = format!("small/{i:03}");
        let info = store
            .put_object("bkt", &key, &mut &data[..], PutOptions::default())
            .unwrap();
        assert_eq!(info.etag, md5_hex(&data));
        expected.insert(key, data);
    }
    // Overwrites and deletes of inline objects stay in the index too.
    for i in (0..300u64).step_by(7) {
        let data = pattern(1000 + i, 1 + i as usize % threshold);
        let key = format!("small/{i:03}");
        store
            .put_object("bkt", &key, &mut &data[..], PutOptions::default())
            .unwrap();
        expected.insert(key, data);
    }
    for i in (3..300u64).step_by(11) {
        let key = format!("small/{i:03}");
        store.delete_object("bkt", &key).unwrap();
        expected.remove(&key);
    }
    assert_eq!(
        hdd_writes(&rig),
        before,
        "an object at or under {threshold} bytes was written to an HDD"
    );
    // One byte over the threshold goes to an HDD; a big object's key can turn small and back.
    let over = pattern(7, threshold + 1);
    store
        .put_object("bkt", "over", &mut &over[..], PutOptions::default())
        .unwrap();
    assert!(hdd_writes(&rig) > before);
    let big = pattern(8, 200_000);
    store
        .put_object("bkt", "small/001", &mut &big[..], PutOptions::default())
        .unwrap();
    let small = pattern(9, 100);
    store
        .put_object(
            "bkt",
            "grows-then-shrinks",
            &mut &big[..],
            PutOptions::default(),
        )
        .unwrap();
    store
        .put_object(
            "bkt",
            "grows-then-shrinks",
            &mut &small[..],
            PutOptions::default(),
        )
        .unwrap();
    expected.insert("grows-then-shrinks".into(), small.clone());
    expected.remove("small/001");
    // Ranges of an inline object.
    let mut r = store
        .get_object(
            "bkt",
            "small/002",
            Some(hoard::store::ByteRange::FromTo(10, 19)),
        )
        .unwrap();
    let mut part = Vec::new();
    r.read_to_end(&mut part).unwrap();
    assert_eq!(part, expected["small/002"][10..20]);

    // Power cut, then open with three of the four HDDs missing (a store needs one): every
    // inline object reads back whole.
    drop(store);
    rig.crash();
    let store = rig.open_without(false, &[0, 1, 2]).unwrap();
    for (key, data) in &expected {
        assert!(read_all(&store, "bkt", key).unwrap() == *data, "{key}");
        assert_eq!(store.head_object("bkt", key).unwrap().etag, md5_hex(data));
    }
    let page = store
        .list_objects(
            "bkt",
            &hoard::store::ListQuery {
                prefix: "small/".into(),
                max_keys: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    let listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let want: Vec<&str> = expected
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("small/"))
        .chain(["small/001"])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(listed, want);
}

/// A conditional write is decided atomically with its commit: of 16 writers racing to create
/// one key with `IfNoneMatch`, one commits and the others fail without a trace; `IfMatch`
/// commits only over the version it names.
#[test]
fn conditional_writes_are_atomic_with_their_commit() {
    use hoard::store::WriteCondition;
    let mut rig = blank_rig(8 << 20, 16 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    let barrier = std::sync::Barrier::new(16);
    let results: Vec<hoard::Result<hoard::store::ObjectInfo>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16u64)
            .map(|i| {
                let (store, barrier) = (&store, &barrier);
                s.spawn(move || {
                    let data = pattern(i, 200_000);
                    barrier.wait();
                    let opts = PutOptions {
                        condition: Some(WriteCondition::IfNoneMatch),
                        ..PutOptions::default()
                    };
                    store.put_object("bkt", "once", &mut &data[..], opts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..16).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one create wins");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    }
    let won = winners[0] as u64;
    assert_eq!(
        read_all(&store, "bkt", "once").unwrap(),
        pattern(won, 200_000)
    );
    let etag = results[winners[0]].as_ref().unwrap().etag.clone();
    let over = |etag: &str, data: &[u8]| {
        let opts = PutOptions {
            condition: Some(WriteCondition::IfMatch(etag.to_string())),
            ..PutOptions::default()
        };
        store.put_object("bkt", "once", &mut &data[..], opts)
    };
    assert!(matches!(
        over("not-it", b"x"),
        Err(Error::PreconditionFailed { .. })
    ));
    let next = over(&etag, b"second").unwrap();
    assert_eq!(read_all(&store, "bkt", "once").unwrap(), b"second");
    assert!(matches!(
        over(&etag, b"third"),
        Err(Error::PreconditionFailed { .. })
    ));
    over(&next.etag, b"third").unwrap();
    // Nothing the losers wrote stays referenced: live space is exact.
    let check = store.check_space().unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
}

/// Writers of one key share durable writes (each stages its commit under the key's lock and
/// waits for it outside), yet each replaces exactly the version before it: 8 threads put 40
/// objects each to one key, inline and in segments, while another deletes it now and then
/// (a commit that waits for the staged ones); a chain of `IfMatch` writers never loses an
/// update. Afterwards live space is exact, the key holds one thread's last write, and a crash
/// and reopen keeps what was acknowledged.
#[test]
fn writers_of_one_key_share_durable_writes_and_lose_nothing() {
    use hoard::store::WriteCondition;
    let mut rig = blank_rig(8 << 20, 32 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    let before = store.meta_stats();
    let last: Vec<Vec<u8>> = std::thread::scope(|s| {
        let deleter = s.spawn(|| {
            for _ in 0..10 {
                store.delete_object("bkt", "hot").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let writers: Vec<_> = (0..8u64)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let mut data = Vec::new();
                    for v in 0..40u64 {
                        data = content(t, v);
                        store
                            .put_object("bkt", "hot", &mut &data[..], PutOptions::default())
                            .unwrap();
                    }
                    data
                })
            })
            .collect();
        deleter.join().unwrap();
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let after = store.meta_stats();
    let (batches, frames) = (after.batches - before.batches, after.frames - before.frames);
    assert!(
        frames < batches,
        "{batches} commits of one key took {frames} durable writes: none were shared"
    );
    let now = read_all(&store, "bkt", "hot").unwrap();
    assert!(
        last.contains(&now),
        "the key holds a write that was not any thread's last"
    );
    // A counter kept with IfMatch by 4 threads: every increment lands exactly once.
    store
        .put_object("bkt", "counter", &mut &b"0"[..], PutOptions::default())
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut done = 0;
                while done < 25 {
                    let info = store.head_object("bkt", "counter").unwrap();
                    let n: u64 = String::from_utf8(read_all(&store, "bkt", "counter").unwrap())
                        .unwrap()
                        .parse()
                        .unwrap();
                    let opts = PutOptions {
                        condition: Some(WriteCondition::IfMatch(info.etag.clone())),
                        ..PutOptions::default()
                    };
                    let next = (n + 1).to_string();
                    match store.put_object("bkt", "counter", &mut next.as_bytes(), opts) {
                        Ok(_) => done += 1,
                        // Replaced between the read and the write (or the read saw a
                        // record whose bytes were replaced): read again.
                        Err(Error::PreconditionFailed { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(read_all(&store, "bkt", "counter").unwrap(), b"100");
    let check = store.check_space().unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
    drop(store);
    rig.crash();
    let store = rig.open(false).unwrap();
    assert_eq!(read_all(&store, "bkt", "hot").unwrap(), now);
    assert_eq!(read_all(&store, "bkt", "counter").unwrap(), b"100");
}

/// Small puts committed from async code (`ObjectWriter::finish_staged`): 64 in flight on one
/// async thread all resolve through the committer thread, in shared durable writes; staged
/// deletes of 8 of them (twice each) remove them; 8 puts whose futures are dropped at once
/// still commit (a bucket creation, which waits for every staged
/// commit, sees them); an object too big to be inline says it does not finish in memory; and
/// all of it survives a crash.
#[test]
fn staged_puts_resolve_from_async_code_and_commit_even_when_abandoned() {
    let mut rig = blank_rig(8 << 20, 16 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("bkt", "o").unwrap();
    let threshold = store.config().inline_threshold_bytes as usize;
    let writer = |key: &str, data: &[u8]| {
        let mut w = store.begin_put("bkt", key, PutOptions::default()).unwrap();
        w.write(data).unwrap();
        w
    };
    let big = writer("big", &pattern(1, threshold + 1));
    assert!(
        !big.finishes_in_memory().unwrap(),
        "a chunked object needs its devices"
    );
    big.finish().unwrap();
    let before = store.meta_stats();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let infos = runtime.block_on(async {
        let staged: Vec<_> = (0..64u64)
            .map(|i| {
                let w = writer(&format!("k{i}"), &pattern(i, 100 + i as usize));
                assert!(w.finishes_in_memory().unwrap());
                w.finish_staged().unwrap()
            })
            .collect();
        let mut infos = Vec::new();
        for s in staged {
            infos.push(s.await.unwrap());
        }
        infos
    });
    let after = store.meta_stats();
    assert!(
        after.frames - before.frames < 64,
        "64 staged puts took {} durable writes",
        after.frames - before.frames
    );
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.etag, md5_hex(&pattern(i as u64, 100 + i)));
        assert_eq!(
            read_all(&store, "bkt", &format!("k{i}")).unwrap(),
            pattern(i as u64, 100 + i)
        );
    }
    // Deletes too: staged, awaited; a second delete of the same key answers once the first
    // is durable.
    runtime.block_on(async {
        for i in 0..8 {
            let key = format!("k{i}");
            assert!(store.delete_finishes_in_memory("bkt", &key).unwrap());
            let first = store.delete_object_staged("bkt", &key).unwrap();
            let again = store.delete_object_staged("bkt", &key).unwrap();
            first.await.unwrap();
            again.await.unwrap();
        }
    });
    for i in 0..8 {
        assert!(matches!(
            read_all(&store, "bkt", &format!("k{i}")),
            Err(Error::NoSuchKey { .. })
        ));
    }
    for i in 0..8u64 {
        drop(
            writer(&format!("gone{i}"), &pattern(100 + i, 50))
                .finish_staged()
                .unwrap(),
        );
    }
    store.create_bucket("other", "o").unwrap();
    for i in 0..8u64 {
        assert_eq!(
            read_all(&store, "bkt", &format!("gone{i}")).unwrap(),
            pattern(100 + i, 50),
            "an abandoned staged put was not committed"
        );
    }
    let check = store.check_space().unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
    drop(store);
    rig.crash();
    let store = rig.open(false).unwrap();
    assert_eq!(read_all(&store, "bkt", "k63").unwrap(), pattern(63, 163));
    assert_eq!(read_all(&store, "bkt", "gone7").unwrap(), pattern(107, 50));
}

/// A copy shares the source's chunks: copying a multi-chunk object writes nothing to the
/// HDDs, the copy reads back after the source is deleted, live space counts the shared
/// needles once per record, and once both are gone the space comes back.
#[test]
fn copies_share_chunks_and_write_nothing_to_the_hdds() {
    use hoard::store::CopyOptions;
    let mut rig = blank_rig(16 << 20, 64 << 20);
    let store = rig.open(true).unwrap();
    store.create_bucket("src", "o").unwrap();
    store.create_bucket("dst", "o").unwrap();
    let data = pattern(9, 10 << 20);
    let put = PutOptions {
        user_metadata: vec![("origin".into(), "camera".into())],
        content_type: Some("image/raw".into()),
        ..PutOptions::default()
    };
    let source = store.put_object("src", "big", &mut &data[..], put).unwrap();
    let written =
        |store: &Store| -> u64 { store.data_slots().iter().map(|s| s.io.write_bytes).sum() };
    let before = written(&store);
    let copy = store
        .copy_object("src", "big", "dst", "copy", CopyOptions::default(), &|_| {
            Ok(())
        })
        .unwrap();
    assert_eq!(written(&store), before, "a copy writes nothing to the HDDs");
    assert_eq!(copy.etag, source.etag);
    assert_eq!(
        copy.user_metadata,
        vec![("origin".to_string(), "camera".to_string())]
    );
    // REPLACE rewrites the metadata; a refusing source check stops the copy.
    let replaced = CopyOptions {
        metadata: Some((Some("text/plain".into()), vec![])),
        ..CopyOptions::default()
    };
    let again = store
        .copy_object("src", "big", "dst", "copy2", replaced, &|_| Ok(()))
        .unwrap();
    assert_eq!(
        (again.content_type.as_str(), again.user_metadata.len()),
        ("text/plain", 0)
    );
    let refused = store.copy_object(
        "src",
        "big",
        "dst",
        "copy3",
        CopyOptions::default(),
        &|_| Err(Error::InvalidArgument("no".into())),
    );
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    assert!(matches!(
        read_all(&store, "dst", "copy3"),
        Err(Error::NoSuchKey { .. })
    ));
    let check = store.check_space().unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
    // The source goes; the copies stay whole, and survive a reopen.
    store.delete_object("src", "big").unwrap();
    store.collect_garbage(false).unwrap();
    assert_eq!(read_all(&store, "dst", "copy").unwrap(), data);
    store.close().unwrap();
    drop(store);
    rig.crash();
    let store = rig.open(false).unwrap();
    assert_eq!(read_all(&store, "dst", "copy2").unwrap(), data);
    // When no record names them, the segments are free again.
    let live_with_copies = store.space_status().total.live_bytes;
    assert!(
        live_with_copies >= 2 * data.len() as u64,
        "{live_with_copies}"
    );
    store.delete_object("dst", "copy").unwrap();
    store.delete_object("dst", "copy2").unwrap();
    store.collect_garbage(false).unwrap();
    assert_eq!(store.space_status().total.live_bytes, 0);
    let check = store.check_space().unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
}
