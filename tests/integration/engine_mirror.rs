//! Mirrored metadata through the store, on real files with O_DIRECT: losing either metadata
//! SSD loses nothing, and a blank replacement is adopted and resilvered while the store serves.

use std::io::Read;
use std::time::{Duration, Instant};

use hoard::meta::MemberState;
use hoard::{Profile, PutOptions, Store, StoreOptions};

use crate::support::{pattern, scratch_dir};

const PROFILE: &str = r#"
name = "mirror-test"
description = "2 SSD files and 2 HDD files"
[chassis]
cpu_cores = 2
memory_bytes = 1_073_741_824
[ssd]
count = 2
size_bytes = 268_435_456
seq_mb_s = 2000
random_read_iops = 50000
[hdd]
count = 2
size_bytes = 268_435_456
seq_mb_s = 1000
random_read_iops = 10000
[files]
ssd = ["ssd0.img", "ssd1.img"]
hdd = ["hdd0.img", "hdd1.img"]
[engine]
chunk_size_bytes = 1_048_576
segment_size_bytes = 16_777_216
wal_size_bytes = 16_777_216
"#;

fn wait_in_sync(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .metadata_mirror()
        .iter()
        .any(|m| m.state != MemberState::InSync)
    {
        assert!(
            Instant::now() < deadline,
            "resilver did not finish: {:?}",
            store.metadata_mirror()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check(store: &Store, count: u64) {
    for i in 0..count {
        let mut out = Vec::new();
        store
            .get_object("mirrored", &format!("obj-{i:03}"), None)
            .unwrap_or_else(|e| panic!("obj-{i:03}: {e}"))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, pattern(i, 1000 + i as usize * 37), "obj-{i:03}");
    }
}

fn put(store: &Store, range: std::ops::Range<u64>) {
    for i in range {
        let data = pattern(i, 1000 + i as usize * 37);
        store
            .put_object(
                "mirrored",
                &format!("obj-{i:03}"),
                &mut &data[..],
                PutOptions::default(),
            )
            .unwrap();
    }
}

#[test]
fn either_metadata_ssd_can_be_lost_and_replaced() {
    let scratch = scratch_dir();
    let opts = StoreOptions {
        profile: Profile::parse(PROFILE).unwrap(),
        data_dir: scratch.path().to_path_buf(),
        format_blank: true,
        io_backend: None,
    };
    let store = Store::open(&opts).unwrap();
    assert_eq!(store.metadata_mirror().len(), 2);
    wait_in_sync(&store);
    store.create_bucket("mirrored", "owner").unwrap();
    put(&store, 0..40);
    store.close().unwrap();
    drop(store);

    // ssd1 dies and is replaced by a blank one: adopted and resilvered while writes go on.
    std::fs::remove_file(scratch.path().join("ssd1.img")).unwrap();
    let store = Store::open(&opts).unwrap();
    let states: Vec<MemberState> = store
        .metadata_mirror()
        .into_iter()
        .map(|m| m.state)
        .collect();
    assert_eq!(states[0], MemberState::InSync);
    check(&store, 40);
    put(&store, 40..60);
    wait_in_sync(&store);
    put(&store, 60..70);
    store.close().unwrap();
    drop(store);

    // Now ssd0 dies: everything, including what was written during the resilver, is on ssd1.
    std::fs::remove_file(scratch.path().join("ssd0.img")).unwrap();
    let store = Store::open(&opts).unwrap();
    check(&store, 70);
    wait_in_sync(&store);
    store.close().unwrap();
    drop(store);

    // Both present and in sync: nothing to resilver.
    let store = Store::open(&opts).unwrap();
    assert!(store
        .metadata_mirror()
        .iter()
        .all(|m| m.state == MemberState::InSync));
    check(&store, 70);
}
