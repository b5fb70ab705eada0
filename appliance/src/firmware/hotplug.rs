//! Drives that arrive while the appliance serves: every few seconds the block devices are
//! scanned again, and a new blank HDD of the profile's class is adopted into an empty or failed
//! data slot (the lowest), then rebuilt onto by the store's repair worker
//! (`hoard::Store::adopt_data_drive`). A drive that leaves (hot-removed) needs nothing here:
//! its I/O fails, the store fails it and re-protects its pieces onto the survivors. Every
//! decision is printed on the console.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoard::device::Device;
use hoard::{DriveState, EngineConfig, Profile, Store};

use super::discover::{self, BlockDevice};

/// How a drive is recognised across scans: kernel name, serial and size (the kernel may give
/// a new drive a removed one's name).
type DriveKey = (String, String, u64);

fn key(d: &BlockDevice) -> DriveKey {
    (d.name.clone(), d.serial.clone(), d.size_bytes)
}

/// Starts the watcher thread; `present` are the drives seen at boot (never adopted again).
pub fn watch(
    store: Store,
    profile: Profile,
    config: EngineConfig,
    present: &[BlockDevice],
    every: Duration,
) {
    let mut known: BTreeSet<DriveKey> = present.iter().map(key).collect();
    let spawned = std::thread::Builder::new()
        .name("hoard-hotplug".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Ok(now) = discover::scan(Path::new("/sys/block"), Path::new("/dev")) else {
                continue;
            };
            // Forget drives that left, so a drive given a departed one's name is seen as new.
            let current: BTreeSet<DriveKey> = now.iter().map(key).collect();
            known.retain(|k| current.contains(k));
            for drive in now {
                if known.insert(key(&drive)) {
                    arrived(&store, &profile, &config, &drive);
                }
            }
        });
    if let Err(e) = spawned {
        println!("hoard: cannot watch for new drives: {e}");
    }
}

/// A drive appeared: adopt it if it is a blank HDD of the profile and a slot needs one.
fn arrived(store: &Store, profile: &Profile, config: &EngineConfig, drive: &BlockDevice) {
    let name = drive.path.display();
    if drive.removable
        || drive.read_only
        || !drive.rotational
        || !profile.hdd.accepts(drive.size_bytes)
    {
        println!(
            "hoard: new drive {name} ({} bytes): not an HDD of profile {}; left alone",
            drive.size_bytes, profile.name
        );
        return;
    }
    let Some(slot) = store
        .data_slots()
        .into_iter()
        .find(|s| matches!(s.state, DriveState::Missing | DriveState::Failed))
        .map(|s| s.slot)
    else {
        println!("hoard: new drive {name}: every HDD slot holds a working drive; left unused");
        return;
    };
    let device = match Device::open(&drive.path, config.io_backend, config.data_queue_depth) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            println!("hoard: new drive {name}: cannot be opened: {e}");
            return;
        }
    };
    match store.adopt_data_drive(slot, device) {
        Ok(()) => println!("hoard: new drive {name} adopted into hdd{slot}: rebuilding onto it"),
        Err(e) => println!("hoard: new drive {name}: not adopted into hdd{slot}: {e}"),
    }
}
