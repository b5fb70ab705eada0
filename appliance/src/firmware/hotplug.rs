//! Drives that arrive while the appliance serves: every few seconds the block devices are
//! scanned again, and each new one is offered to the store
//! (`hoard::Store::adopt_discovered`), which adopts a blank HDD of the profile into its own
//! bay's slot when that one is empty or failed (else the lowest such slot) and rebuilds onto
//! it. A drive that leaves (hot-removed) needs
//! nothing here: its I/O fails, the store fails it and re-protects its pieces onto the
//! survivors. Every decision is printed on the console.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use hoard::{Profile, Store};

use super::discover::{self, BlockDevice};

/// How a drive is recognised across scans: kernel name, serial and size (the kernel may give
/// a new drive a removed one's name).
type DriveKey = (String, String, u64);

fn key(d: &BlockDevice) -> DriveKey {
    (d.name.clone(), d.serial.clone(), d.size_bytes)
}

/// Starts the watcher thread; `present` are the drives seen at boot (never offered again).
pub fn watch(store: Store, profile: Profile, present: &[BlockDevice], every: Duration) {
    let mut known: BTreeSet<DriveKey> = present.iter().map(key).collect();
    let spawned = std::thread::Builder::new()
        .name("hoard-hotplug".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Ok(mut now) = discover::scan(Path::new("/sys/block"), Path::new("/dev")) else {
                continue;
            };
            discover::assign_bays(&profile, &mut now, Path::new(super::ENCLOSURES_DIR));
            // Forget drives that left, so a drive given a departed one's name is seen as new.
            let current: BTreeSet<DriveKey> = now.iter().map(key).collect();
            known.retain(|k| current.contains(k));
            for drive in now {
                if known.insert(key(&drive)) {
                    let name = drive.path.display().to_string();
                    match store.adopt_discovered(&profile, drive) {
                        Ok(slot) => println!(
                            "hoard: new drive {name} adopted into hdd{slot}: rebuilding onto it"
                        ),
                        Err(e) => println!("hoard: new drive {name} not adopted: {e}"),
                    }
                }
            }
        });
    if let Err(e) = spawned {
        println!("hoard: cannot watch for new drives: {e}");
    }
}
