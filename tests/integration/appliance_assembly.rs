//! The appliance's drive assembly on real files opened with O_DIRECT (the same code PID 1 runs
//! on /dev/sd* and /dev/nvme*): blank drives are formatted only on first boot; a drive holding
//! another store's superblock, or non-zero bytes without one, is never formatted; drives keep
//! their slots when the kernel names them differently; a missing drive degrades the store; lost
//! metadata stops everything; blank drives take the slot of the bay the profile numbers them by.

use std::io::Read;
use std::path::{Path, PathBuf};

use hoard::store::PutOptions;
use hoard::volume::assembly::{Assembly, Disposition};
use hoard::{Error, Profile, Store};
use hoard_appliance::firmware::discover::BlockDevice;
use sha2::{Digest, Sha256};

use crate::support::{pattern, scratch_dir};

const PROFILE: &str = r#"
name = "assembly-test"
description = "2 SSDs and 3 HDDs as files"
[chassis]
cpu_cores = 2
memory_bytes = 1_073_741_824
[ssd]
count = 2
size_bytes = 268_435_456
seq_mb_s = 2000
random_read_iops = 50000
[hdd]
count = 3
size_bytes = 134_217_728
seq_mb_s = 250
random_read_iops = 170
[engine]
chunk_size_bytes = 1_048_576
segment_size_bytes = 2_097_152
wal_size_bytes = 16_777_216
"#;

const MIB: u64 = 1 << 20;

/// A drive as discovery would report it, backed by a sparse file.
fn drive(
    dir: &Path,
    file: &str,
    kernel_name: &str,
    size_bytes: u64,
    rotational: bool,
) -> BlockDevice {
    let path = dir.join(file);
    if !path.exists() {
        std::fs::File::create(&path)
            .unwrap()
            .set_len(size_bytes)
            .unwrap();
    }
    BlockDevice {
        name: kernel_name.into(),
        path,
        size_bytes,
        rotational,
        model: if rotational { "TEST HDD" } else { "TEST SSD" }.into(),
        serial: file.into(),
        removable: false,
        read_only: false,
        bay: String::new(),
        bay_number: None,
    }
}

fn sha256_file(path: &PathBuf) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn all_zero(path: &Path) -> bool {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    sha256_file(&path.to_path_buf()) == hex::encode(Sha256::digest(vec![0u8; len]))
}

fn open(profile: &Profile, drives: Vec<BlockDevice>) -> hoard::Result<(Assembly, Store)> {
    let config = profile.derive();
    let assembly = Assembly::plan(profile, &config, drives)?;
    let (devices, format_blank) = assembly.store_devices();
    let store = Store::open_devices(devices, config, format_blank)?;
    Ok((assembly, store))
}

fn disposition<'a>(a: &'a Assembly, file: &str) -> &'a Disposition {
    &a.drives
        .iter()
        .find(|d| d.device.serial == file)
        .unwrap_or_else(|| panic!("{file} was not discovered"))
        .disposition
}

fn read_all(store: &Store, bucket: &str, key: &str) -> hoard::Result<Vec<u8>> {
    let mut reader = store.get_object(bucket, key, None)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(Error::Body)?;
    Ok(out)
}

#[test]
fn only_blank_drives_are_formatted_and_slots_follow_superblocks() {
    let profile = Profile::parse(PROFILE).unwrap();
    let scratch = scratch_dir();
    let dir = scratch.path();

    // Another store, whose HDD will turn up among ours.
    let other_dir = dir.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (_, other) = open(
        &profile,
        vec![
            drive(&other_dir, "ssd0", "nvme0n1", 256 * MIB, false),
            drive(&other_dir, "hdd0", "sda", 128 * MIB, true),
        ],
    )
    .unwrap();
    other.close().unwrap();
    drop(other);
    std::fs::rename(other_dir.join("hdd0"), dir.join("foreign")).unwrap();

    // A drive with a filesystem-like header and no superblock.
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, pattern(7, MIB as usize)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&garbage)
        .unwrap()
        .set_len(128 * MIB)
        .unwrap();
    let foreign_before = sha256_file(&dir.join("foreign"));
    let garbage_before = sha256_file(&garbage);

    // First boot.
    let first = vec![
        drive(dir, "foreign", "sda", 128 * MIB, true),
        drive(dir, "hdd-a", "sdb", 128 * MIB, true),
        drive(dir, "garbage", "sdc", 128 * MIB, true),
        drive(dir, "hdd-b", "sdd", 128 * MIB, true),
        drive(dir, "hdd-c", "sde", 128 * MIB, true),
        drive(dir, "tiny", "sdf", 16 * MIB, true),
        drive(dir, "ssd-a", "nvme0n1", 256 * MIB, false),
        drive(dir, "ssd-b", "nvme1n1", 256 * MIB, false),
    ];
    let (assembly, store) = open(&profile, first).unwrap();
    let report = assembly.report();
    assert!(assembly.first_boot, "{report}");
    assert_eq!(
        disposition(&assembly, "ssd-a"),
        &Disposition::Metadata {
            slot: 0,
            format: true
        }
    );
    assert_eq!(
        disposition(&assembly, "ssd-b"),
        &Disposition::Metadata {
            slot: 1,
            format: true
        }
    );
    for (file, slot) in [("hdd-a", 0), ("hdd-b", 1), ("hdd-c", 2)] {
        assert_eq!(
            disposition(&assembly, file),
            &Disposition::Data { slot, format: true },
            "{report}"
        );
    }
    assert!(
        matches!(disposition(&assembly, "foreign"), Disposition::Refused(why) if why.contains("not this store's")),
        "{report}"
    );
    assert!(
        matches!(disposition(&assembly, "garbage"), Disposition::Refused(why) if why.contains("no Hoard superblock")),
        "{report}"
    );
    assert!(
        matches!(disposition(&assembly, "tiny"), Disposition::Unused(_)),
        "{report}"
    );
    assert!(report.contains("REFUSED"), "{report}");

    store.create_bucket("photos", "owner").unwrap();
    // Three 1 MiB chunks go round-robin over the three HDDs: one is on every drive.
    let wide = pattern(1, 3 * MIB as usize);
    store
        .put_object("photos", "wide", &mut &wide[..], PutOptions::default())
        .unwrap();
    let small: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("small-{i}"), pattern(100 + i, 4096 + i as usize)))
        .collect();
    for (key, data) in &small {
        store
            .put_object("photos", key, &mut &data[..], PutOptions::default())
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    drop(assembly);
    assert_eq!(sha256_file(&dir.join("foreign")), foreign_before);
    assert_eq!(sha256_file(&garbage), garbage_before);

    // Second boot: the kernel names every drive differently, hdd-b (slot 1) is missing and a
    // blank drive sits in the chassis.
    let second = vec![
        drive(dir, "spare", "sda", 128 * MIB, true),
        drive(dir, "hdd-c", "sdb", 128 * MIB, true),
        drive(dir, "garbage", "sdc", 128 * MIB, true),
        drive(dir, "hdd-a", "sdd", 128 * MIB, true),
        drive(dir, "foreign", "sde", 128 * MIB, true),
        drive(dir, "ssd-b", "nvme0n1", 256 * MIB, false),
        drive(dir, "ssd-a", "nvme1n1", 256 * MIB, false),
    ];
    let (assembly, store) = open(&profile, second).unwrap();
    let report = assembly.report();
    assert!(!assembly.first_boot);
    assert_eq!(
        disposition(&assembly, "ssd-a"),
        &Disposition::Metadata {
            slot: 0,
            format: false
        }
    );
    assert_eq!(
        disposition(&assembly, "ssd-b"),
        &Disposition::Metadata {
            slot: 1,
            format: false
        },
        "the mirror SSD keeps its slot under another kernel name"
    );
    assert_eq!(
        disposition(&assembly, "hdd-a"),
        &Disposition::Data {
            slot: 0,
            format: false
        }
    );
    assert_eq!(
        disposition(&assembly, "hdd-c"),
        &Disposition::Data {
            slot: 2,
            format: false
        }
    );
    // The blank drive is a replacement for the missing slot 1: adopted, to be rebuilt.
    assert_eq!(
        disposition(&assembly, "spare"),
        &Disposition::Data {
            slot: 1,
            format: true
        },
        "{report}"
    );
    assert!(
        report.contains("blank replacement, adopting (rebuild)"),
        "{report}"
    );
    assert!(assembly.missing_hdd_slots().is_empty());
    assert!(store.missing_data_slots().is_empty());
    let repair = store.repair_status().unwrap();
    assert_eq!(repair.lost_slots.len(), 1, "{:?}", repair.lost_slots);
    assert_eq!(repair.lost_slots[0].0, 1);
    assert!(repair.rebuild_pending);

    match read_all(&store, "photos", "wide") {
        Err(Error::ObjectUnreadable { key, detail, .. }) => {
            assert_eq!(key, "wide");
            assert!(
                detail.contains("hdd1") && detail.contains("replaced"),
                "{detail}"
            );
        }
        other => panic!("an object with a chunk on the missing drive read as {other:?}"),
    }
    let mut readable = 0;
    for (key, data) in &small {
        match read_all(&store, "photos", key) {
            Ok(back) => {
                assert_eq!(&back, data, "{key}");
                readable += 1;
            }
            Err(Error::ObjectUnreadable { detail, .. }) => assert!(detail.contains("hdd1")),
            Err(e) => panic!("{key}: {e}"),
        }
    }
    assert!(readable > 0, "every small object was on the missing drive");
    store.close().unwrap();
    drop(store);
    drop(assembly);
    assert_eq!(sha256_file(&dir.join("foreign")), foreign_before);
    assert_eq!(sha256_file(&garbage), garbage_before);

    // The metadata SSD is replaced by a blank one: nothing may be formatted.
    let lost = vec![
        drive(dir, "hdd-a", "sda", 128 * MIB, true),
        drive(dir, "hdd-b", "sdb", 128 * MIB, true),
        drive(dir, "hdd-c", "sdc", 128 * MIB, true),
        drive(dir, "new-ssd", "nvme0n1", 256 * MIB, false),
    ];
    let err = open(&profile, lost)
        .err()
        .expect("lost metadata must not open");
    let msg = err.to_string();
    assert!(msg.contains("metadata cannot be trusted"), "{msg}");
    assert!(
        all_zero(&dir.join("new-ssd")),
        "the blank SSD was written to"
    );
}

/// `drive` in a bay the profile numbers.
fn in_bay(mut d: BlockDevice, bay: u32) -> BlockDevice {
    d.bay_number = Some(bay);
    d
}

#[test]
fn blank_drives_take_their_own_bays_slot_and_a_replacement_goes_back_to_its_bay() {
    let profile = Profile::parse(PROFILE).unwrap();
    let scratch = scratch_dir();
    let dir = scratch.path();
    // Discovered in an order unlike their bays: each takes its bay's slot, not the next free.
    let first = vec![
        in_bay(drive(dir, "hdd-x", "sda", 128 * MIB, true), 2),
        drive(dir, "hdd-y", "sdb", 128 * MIB, true),
        in_bay(drive(dir, "hdd-z", "sdc", 128 * MIB, true), 0),
        in_bay(drive(dir, "ssd-a", "nvme0n1", 256 * MIB, false), 1),
        drive(dir, "ssd-b", "nvme1n1", 256 * MIB, false),
    ];
    let (assembly, store) = open(&profile, first).unwrap();
    let report = assembly.report();
    for (file, slot) in [("hdd-z", 0), ("hdd-y", 1), ("hdd-x", 2)] {
        assert_eq!(
            disposition(&assembly, file),
            &Disposition::Data { slot, format: true },
            "{report}"
        );
    }
    assert_eq!(
        disposition(&assembly, "ssd-a"),
        &Disposition::Metadata {
            slot: 1,
            format: true
        },
        "{report}"
    );
    assert!(report.contains(" bay "), "the report shows bays: {report}");
    store.close().unwrap();
    drop((store, assembly));

    // Two HDDs gone (bays 0 and 2); a blank one arrives in bay 2: it is adopted there, not
    // into slot 0, the lowest empty one.
    std::fs::remove_file(dir.join("hdd-z")).unwrap();
    std::fs::remove_file(dir.join("hdd-x")).unwrap();
    let later = vec![
        in_bay(drive(dir, "hdd-new", "sda", 128 * MIB, true), 2),
        drive(dir, "hdd-y", "sdb", 128 * MIB, true),
        drive(dir, "ssd-a", "nvme0n1", 256 * MIB, false),
        drive(dir, "ssd-b", "nvme1n1", 256 * MIB, false),
    ];
    let (assembly, store) = open(&profile, later).unwrap();
    let report = assembly.report();
    assert_eq!(
        disposition(&assembly, "hdd-new"),
        &Disposition::Data {
            slot: 2,
            format: true
        },
        "{report}"
    );
    assert_eq!(store.missing_data_slots(), vec![0], "{report}");
    store.close().unwrap();
}
