//! Mirrored metadata through the store, on real files with O_DIRECT: losing either metadata
//! SSD loses nothing, and a blank replacement is adopted and resilvered while the store serves.

use std::io::Read;
use std::time::{Duration, Instant};

use hoard::device::fault::FaultBackend;
use hoard::device::{Device, IoBackend};
use hoard::meta::MemberState;
use hoard::store::PutOptions;
use hoard::{Profile, Store, StoreDevices, StoreOptions};

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
segment_size_bytes = 4_194_304
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
    // The secrets key (sealing the S3 layer's secrets) lives on every SSD and follows the
    // mirror through both replacements below: losing it would lose every access key.
    let secrets_key = store.secrets_key();
    assert_ne!(secrets_key, [0; 32]);
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
    assert_eq!(store.secrets_key(), secrets_key);
    check(&store, 40);
    put(&store, 40..60);
    wait_in_sync(&store);
    put(&store, 60..70);
    store.close().unwrap();
    drop(store);

    // Now ssd0 dies: everything, including what was written during the resilver, is on ssd1.
    std::fs::remove_file(scratch.path().join("ssd0.img")).unwrap();
    let store = Store::open(&opts).unwrap();
    assert_eq!(
        store.secrets_key(),
        secrets_key,
        "the key reached the replacement SSD"
    );
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

/// Opens the store on its files, leaving out the metadata SSDs (slots) in `missing`.
fn open_without(opts: &StoreOptions, missing: &[usize]) -> hoard::Result<Store> {
    let open = |name: &str| {
        Some(std::sync::Arc::new(
            Device::open(&opts.data_dir.join(name), IoBackend::Auto, 32).unwrap(),
        ))
    };
    let config = opts.profile.derive();
    Store::open_devices(
        StoreDevices {
            meta: (0..2)
                .map(|i| {
                    (!missing.contains(&i))
                        .then(|| open(&format!("ssd{i}.img")))
                        .flatten()
                })
                .collect(),
            data: vec![open("hdd0.img"), open("hdd1.img")],
        },
        config,
        false,
    )
}

#[test]
fn an_ssd_left_behind_is_never_served_alone() {
    let scratch = scratch_dir();
    let opts = StoreOptions {
        profile: Profile::parse(PROFILE).unwrap(),
        data_dir: scratch.path().to_path_buf(),
        format_blank: true,
        io_backend: None,
    };
    let store = Store::open(&opts).unwrap();
    store.create_bucket("mirrored", "owner").unwrap();
    put(&store, 0..10);
    store.close().unwrap();
    drop(store);

    // ssd0 is absent for a while; the store goes on with ssd1 alone.
    let store = open_without(&opts, &[0]).unwrap();
    put(&store, 10..20);
    store.close().unwrap();
    drop(store);

    // Later only ssd0 is there: it lacks objects 10..20, so it is refused, with the reason.
    let err = open_without(&opts, &[1])
        .err()
        .expect("stale metadata must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("stale") && msg.contains("ssd0.img") && msg.contains("epoch"),
        "{msg}"
    );

    // Both again: ssd0 is resilvered from ssd1, and then it may serve alone.
    let store = Store::open(&opts).unwrap();
    check(&store, 20);
    wait_in_sync(&store);
    store.close().unwrap();
    drop(store);
    let store = open_without(&opts, &[1]).unwrap();
    check(&store, 20);
}

#[test]
fn an_ssd_that_failed_while_serving_is_never_served_alone() {
    const SSD_BYTES: u64 = 64 << 20;
    const HDD_BYTES: u64 = 64 << 20;
    let config = Profile::parse(PROFILE).unwrap().derive();
    let config = hoard::EngineConfig {
        wal_size_bytes: 4 << 20,
        ..config
    };
    // Fault-injecting devices from images (empty: blank); returns the devices and controls.
    let devices = |images: Vec<Option<Vec<u8>>>| {
        let mut controls = Vec::new();
        let mut devs = Vec::new();
        for (i, image) in images.into_iter().enumerate() {
            let size = if i < 2 { SSD_BYTES } else { HDD_BYTES };
            match image {
                None => devs.push(None),
                Some(image) => {
                    let image = if image.is_empty() {
                        vec![0; size as usize]
                    } else {
                        image
                    };
                    let (backend, control) = FaultBackend::from_image(image);
                    controls.push(Some(control));
                    devs.push(Some(std::sync::Arc::new(Device::with_backend(
                        &format!("dev{i}"),
                        size,
                        Box::new(backend),
                    ))));
                    continue;
                }
            }
            controls.push(None);
        }
        let data = devs.split_off(2);
        (StoreDevices { meta: devs, data }, controls)
    };
    let (devs, controls) = devices(vec![Some(vec![]); 4]);
    let store = Store::open_devices(devs, config.clone(), true).unwrap();
    wait_in_sync(&store);
    store.create_bucket("mirrored", "owner").unwrap();
    put(&store, 0..10);
    // dev0 (ssd0) starts failing its writes: the store goes on with ssd1 alone.
    controls[0].as_ref().unwrap().fail_writes(true);
    put(&store, 10..20);
    assert!(matches!(
        store.metadata_mirror()[0].state,
        MemberState::Failed(_)
    ));
    // Power cut.
    drop(store);
    let images: Vec<Vec<u8>> = controls
        .iter()
        .map(|c| c.as_ref().unwrap().durable_image())
        .collect();
    let only = |keep: usize| {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| (i >= 2 || i == keep).then(|| image.clone()))
            .collect::<Vec<_>>()
    };
    let err = Store::open_devices(devices(only(0)).0, config.clone(), false)
        .err()
        .expect("ssd0 missed objects 10..20");
    assert!(err.to_string().contains("stale"), "{err}");
    let store = Store::open_devices(devices(only(1)).0, config, false).unwrap();
    check(&store, 20);
}
