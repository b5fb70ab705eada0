//! Assembling the store from discovered drives (drive membership at boot, with
//! `store/drives.rs` while serving): each drive is matched to a slot of the profile, and only
//! blank drives are ever formatted.
//!
//! The rules, in order:
//! 1. A drive fills a class (SSD or HDD) by rotational flag and size
//!    ([`crate::profile::DriveClass::accepts`]); removable, read-only and unmatched drives are
//!    left alone.
//! 2. A drive holding this store's superblock keeps the slot written in it, whatever name the
//!    kernel gave it this boot (enumeration order changes when a drive is missing or moved).
//! 3. A drive holding another store's superblock, an unreadable superblock, or non-zero bytes
//!    without a superblock is refused: never formatted, never used, reported on the console.
//! 4. Blank drives are formatted on the first boot (no metadata SSD of any store is present):
//!    a drive whose bay the profile numbers ([`BlockDevice::bay_number`]) takes its bay's slot
//!    when that is empty; the others fill the empty slots in discovery order, which is bay
//!    order (the firmware's discovery sorts them so). After the first boot a blank SSD in
//!    an empty SSD slot is a replacement: it is adopted into the metadata mirror and resilvered
//!    online; a blank HDD in an empty HDD slot is a replacement too: the store adopts it and
//!    rebuilds onto it what the slot's old drive held (`store/repair.rs`). While the store
//!    runs, [`crate::store::Store::adopt_discovered`] does the same for a drive that appears.
//! 5. If data drives of a store are present but its metadata SSD is not (missing, blank or
//!    damaged), the metadata cannot be trusted and nothing starts: formatting would orphan them.
//!
//! Must not import `store`: the firmware hands its result (`StoreDevices`) to
//! `Store::open_devices`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::StoreDevices;
use crate::device::superblock::{self, uuid_string, Probe, Role, Superblock};
use crate::device::Device;
use crate::profile::fmt_bytes;
use crate::{EngineConfig, Error, Profile};

/// A whole-disk block device as discovery found it (the firmware reads sysfs; see
/// `appliance/src/firmware/discover.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`nvme0n1`, `sda`).
    pub name: String,
    /// Device node (`/dev/sda`).
    pub path: std::path::PathBuf,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Spinning disk.
    pub rotational: bool,
    /// Vendor and model, trimmed (`QEMU HARDDISK`).
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Removable media (USB sticks, CD-ROMs): never used for the store.
    pub removable: bool,
    /// Read-only devices: never used for the store.
    pub read_only: bool,
    /// Where the drive sits (its sysfs device path, like `/dev/disk/by-path`): stable across
    /// boots for a drive in the same bay, whatever name the kernel gives it.
    pub bay: String,
    /// The bay's number as the profile numbers its class's slots (HDD bay 7 is HDD slot 7),
    /// from the controller path the profile maps (`[[controller]] bays`); `None`: not known.
    pub bay_number: Option<u32>,
}

/// The drive classes of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Metadata drives (non-rotational).
    Ssd,
    /// Data drives (rotational).
    Hdd,
}

/// What becomes of one discovered drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// A metadata SSD slot: every one holds a full copy of the metadata (a mirror).
    Metadata {
        /// The SSD slot.
        slot: u32,
        /// Whether it is blank and will be formatted now (on first boot), or adopted as a
        /// replacement and resilvered from the other copies.
        format: bool,
    },
    /// An HDD slot.
    Data {
        /// The slot.
        slot: u32,
        /// Whether it is blank and will be formatted now.
        format: bool,
    },
    /// Never formatted, never used (rule 3).
    Refused(String),
    /// Not part of the store (rules 1 and 4).
    Unused(String),
    /// Matched a class and probed, slot not yet decided (only while [`Assembly::plan`] runs).
    Undecided,
}

/// One discovered drive and what becomes of it.
pub struct Drive {
    /// What the kernel reported.
    pub device: BlockDevice,
    /// The class it matched, if any.
    pub class: Option<Class>,
    /// The decision.
    pub disposition: Disposition,
    pub(crate) handle: Option<Arc<Device>>,
    pub(crate) superblock: Option<Superblock>,
}

/// The drives matched to a profile's slots.
pub struct Assembly {
    /// Profile name.
    pub profile: String,
    /// Every discovered drive, in discovery order.
    pub drives: Vec<Drive>,
    /// No metadata SSD of any store was found: blank drives are formatted.
    pub first_boot: bool,
    /// The store these drives belong to (`None` on first boot).
    pub store_uuid: Option<[u8; 16]>,
    ssd_slots: u32,
    hdd_slots: u32,
}

impl Assembly {
    /// Matches `devices` to the profile's slots, opening and probing every drive that fits a
    /// class. Nothing is written.
    ///
    /// Errors: [`Error::Incompatible`] when the metadata cannot be trusted (rule 5) or two
    /// stores' metadata SSDs are present; [`Error::Config`] when no metadata SSD or no data HDD
    /// can be used.
    pub fn plan(
        profile: &Profile,
        config: &EngineConfig,
        devices: Vec<BlockDevice>,
    ) -> crate::Result<Assembly> {
        let mut drives: Vec<Drive> = devices
            .into_iter()
            .map(|device| classify(profile, config, device))
            .collect();

        // The store: the one whose metadata SSD is here.
        let mut meta_stores: BTreeMap<[u8; 16], &str> = BTreeMap::new();
        for d in &drives {
            if let (Some(Class::Ssd), Some(sb)) = (d.class, &d.superblock) {
                if sb.role == Role::Meta {
                    meta_stores.insert(sb.store_uuid, d.device.path.to_str().unwrap_or("?"));
                }
            }
        }
        if meta_stores.len() > 1 {
            let list: Vec<String> = meta_stores
                .iter()
                .map(|(uuid, path)| format!("{path} (store {})", uuid_string(uuid)))
                .collect();
            return Err(Error::Incompatible {
                device: list.join(", "),
                detail: "metadata SSDs of more than one store are present; remove all but one store's drives".into(),
            });
        }
        let store_uuid = meta_stores.keys().next().copied();
        let first_boot = store_uuid.is_none();

        if first_boot {
            // Rule 5: data drives of a store whose metadata is not here.
            let mut orphans: BTreeMap<[u8; 16], Vec<&str>> = BTreeMap::new();
            for d in &drives {
                if let (Some(Class::Hdd), Some(sb)) = (d.class, &d.superblock) {
                    orphans
                        .entry(sb.store_uuid)
                        .or_default()
                        .push(d.device.path.to_str().unwrap_or("?"));
                }
            }
            let blank_hdds = drives
                .iter()
                .filter(|d| d.class == Some(Class::Hdd) && d.is_blank())
                .count();
            if let Some((uuid, paths)) = orphans.iter().max_by_key(|(_, p)| p.len()) {
                if paths.len() >= blank_hdds {
                    return Err(Error::Incompatible {
                        device: paths.join(", "),
                        detail: format!(
                            "these data drives belong to store {} but its metadata SSD is missing, blank or damaged: the metadata cannot be trusted, so nothing is formatted and the store is not started",
                            uuid_string(uuid)
                        ),
                    });
                }
            }
        }

        let mut ssd_taken = vec![false; profile.ssd.count as usize];
        let mut hdd_taken = vec![false; profile.hdd.count as usize];
        for d in drives
            .iter_mut()
            .filter(|d| d.disposition == Disposition::Undecided)
        {
            let class = d.class.expect("pending drives have a class");
            d.disposition = match (&d.superblock, store_uuid) {
                (Some(sb), Some(store)) if sb.store_uuid == store => {
                    claim_member(d.device.path.display(), class, sb, &mut ssd_taken, &mut hdd_taken)
                }
                (Some(sb), _) => Disposition::Refused(format!(
                    "holds the superblock of store {} ({:?} slot {}, profile {}): not this store's, never formatted",
                    uuid_string(&sb.store_uuid),
                    sb.role,
                    sb.slot,
                    sb.profile
                )),
                (None, _) => continue, // blank: placed below
            };
        }
        // Blank drives whose bay is known and whose bay's slot is free take it first; the
        // others fill the slots left, in discovery order.
        let in_own_bay = |d: &Drive, ssd: &[bool], hdd: &[bool]| {
            let taken = match d.class? {
                Class::Ssd => ssd,
                Class::Hdd => hdd,
            };
            d.device
                .bay_number
                .filter(|&b| taken.get(b as usize) == Some(&false))
        };
        let mut order: Vec<usize> = (0..drives.len())
            .filter(|&i| drives[i].disposition == Disposition::Undecided)
            .collect();
        order.sort_by_key(|&i| in_own_bay(&drives[i], &ssd_taken, &hdd_taken).is_none());
        for i in order {
            let own = in_own_bay(&drives[i], &ssd_taken, &hdd_taken);
            let d = &mut drives[i];
            let class = d.class.expect("pending drives have a class");
            let taken = match class {
                Class::Ssd => &mut ssd_taken,
                Class::Hdd => &mut hdd_taken,
            };
            let free = own
                .map(|b| b as usize)
                .or_else(|| taken.iter().position(|t| !t));
            d.disposition = match (class, free) {
                (_, None) => Disposition::Unused(format!(
                    "blank, but all {} {class:?} slots are filled",
                    taken.len()
                )),
                (class, Some(slot)) => {
                    taken[slot] = true;
                    match class {
                        Class::Ssd => Disposition::Metadata {
                            slot: slot as u32,
                            format: true,
                        },
                        Class::Hdd => Disposition::Data {
                            slot: slot as u32,
                            format: true,
                        },
                    }
                }
            };
        }

        let assembly = Assembly {
            profile: profile.name.clone(),
            drives,
            first_boot,
            store_uuid,
            ssd_slots: profile.ssd.count,
            hdd_slots: profile.hdd.count,
        };
        if !assembly
            .drives
            .iter()
            .any(|d| matches!(d.disposition, Disposition::Metadata { .. }))
        {
            return Err(Error::Config(format!(
                "no usable metadata SSD: none of the drives fits the profile's SSD class (rotational=0, {})\n{}",
                range(&profile.ssd),
                assembly.report()
            )));
        }
        if !assembly
            .drives
            .iter()
            .any(|d| matches!(d.disposition, Disposition::Data { .. }))
        {
            return Err(Error::Config(format!(
                "no usable data HDD: none fits the profile's HDD class (rotational=1, {}) and belongs to this store or is blank\n{}",
                range(&profile.hdd),
                assembly.report()
            )));
        }
        Ok(assembly)
    }

    /// HDD slots with no drive: the store opens degraded.
    pub fn missing_hdd_slots(&self) -> Vec<u32> {
        (0..self.hdd_slots)
            .filter(|&s| {
                !self
                    .drives
                    .iter()
                    .any(|d| d.disposition_slot() == Some((Class::Hdd, s)))
            })
            .collect()
    }

    /// SSD slots with no drive.
    pub fn missing_ssd_slots(&self) -> Vec<u32> {
        (0..self.ssd_slots)
            .filter(|&s| {
                !self
                    .drives
                    .iter()
                    .any(|d| d.disposition_slot() == Some((Class::Ssd, s)))
            })
            .collect()
    }

    /// The devices to open the store on, and whether blank ones may be formatted (on the first
    /// boot, or to adopt a blank replacement HDD).
    pub fn store_devices(&self) -> (StoreDevices, bool) {
        let mut meta = vec![None; self.ssd_slots as usize];
        let mut data = vec![None; self.hdd_slots as usize];
        for d in &self.drives {
            match d.disposition {
                Disposition::Metadata { slot, .. } => meta[slot as usize] = d.handle.clone(),
                Disposition::Data { slot, .. } => data[slot as usize] = d.handle.clone(),
                _ => {}
            }
        }
        let adopting = self
            .drives
            .iter()
            .any(|d| matches!(d.disposition, Disposition::Data { format: true, .. }));
        (StoreDevices { meta, data }, self.first_boot || adopting)
    }

    /// A console table: every drive, its slot and what happens to it; then missing slots.
    pub fn report(&self) -> String {
        let mut out = format!(
            "profile {}: {} SSD slot(s), {} HDD slot(s); {}\n",
            self.profile,
            self.ssd_slots,
            self.hdd_slots,
            match self.store_uuid {
                Some(u) => format!("store {}", uuid_string(&u)),
                None => "first boot: no store yet".into(),
            }
        );
        let _ = writeln!(
            out,
            "  {:<14} {:>9} {:>3}  {:<18} {:<12} {:<6} {:<4} state",
            "device", "size", "rot", "model", "serial", "slot", "bay"
        );
        for d in &self.drives {
            let slot = match d.disposition_slot() {
                Some((Class::Ssd, s)) => format!("ssd{s}"),
                Some((Class::Hdd, s)) => format!("hdd{s}"),
                None => "-".into(),
            };
            let state = match &d.disposition {
                Disposition::Metadata { format: true, .. } if self.first_boot => {
                    "metadata: blank, formatting".into()
                }
                Disposition::Metadata { format: true, .. } => {
                    "metadata: blank replacement, adopting into the mirror (resilver)".into()
                }
                Disposition::Metadata { format: false, .. } => "metadata: member".into(),
                Disposition::Data { format: true, .. } if self.first_boot => {
                    "data: blank, formatting".into()
                }
                Disposition::Data { format: true, .. } => {
                    "data: blank replacement, adopting (rebuild)".into()
                }
                Disposition::Data { format: false, .. } => "data: member".into(),
                Disposition::Refused(why) => format!("REFUSED: {why}"),
                Disposition::Unused(why) => format!("unused: {why}"),
                Disposition::Undecided => "undecided".into(),
            };
            let _ = writeln!(
                out,
                "  {:<14} {:>9} {:>3}  {:<18} {:<12} {:<6} {:<4} {state}",
                d.device.path.display(),
                fmt_bytes(d.device.size_bytes),
                d.device.rotational as u8,
                truncate(&d.device.model, 18),
                truncate(&d.device.serial, 12),
                slot,
                d.device
                    .bay_number
                    .map_or("-".to_string(), |b| b.to_string()),
            );
        }
        let missing_hdd = self.missing_hdd_slots();
        if !missing_hdd.is_empty() {
            let names: Vec<String> = missing_hdd.iter().map(|s| format!("hdd{s}")).collect();
            let _ = writeln!(
                out,
                "  DEGRADED: no drive for {}; objects with data there cannot be read until it returns",
                names.join(", ")
            );
        }
        let missing_ssd = self.missing_ssd_slots();
        if !missing_ssd.is_empty() {
            let names: Vec<String> = missing_ssd.iter().map(|s| format!("ssd{s}")).collect();
            let _ = writeln!(
                out,
                "  METADATA MIRROR DEGRADED: no drive for {}; the other SSDs hold full copies",
                names.join(", ")
            );
        }
        out
    }
}

impl Drive {
    fn is_blank(&self) -> bool {
        self.disposition == Disposition::Undecided && self.superblock.is_none()
    }

    fn disposition_slot(&self) -> Option<(Class, u32)> {
        match self.disposition {
            Disposition::Metadata { slot, .. } => Some((Class::Ssd, slot)),
            Disposition::Data { slot, .. } => Some((Class::Hdd, slot)),
            _ => None,
        }
    }
}

/// What becomes of one discovered drive under `profile`: its class, and whether it is
/// refused, unused or still to be placed (by the superblock it holds, read here).
pub(crate) fn classify(profile: &Profile, config: &EngineConfig, device: BlockDevice) -> Drive {
    let mut drive = Drive {
        class: None,
        disposition: Disposition::Undecided,
        handle: None,
        superblock: None,
        device,
    };
    let dev = &drive.device;
    let class = if dev.removable || dev.read_only {
        drive.disposition = Disposition::Unused(
            if dev.removable {
                "removable"
            } else {
                "read-only"
            }
            .into(),
        );
        return drive;
    } else if !dev.rotational && profile.ssd.accepts(dev.size_bytes) {
        Class::Ssd
    } else if dev.rotational && profile.hdd.accepts(dev.size_bytes) {
        Class::Hdd
    } else {
        drive.disposition = Disposition::Unused(format!(
            "fits no class (SSD: rotational=0, {}; HDD: rotational=1, {})",
            range(&profile.ssd),
            range(&profile.hdd)
        ));
        return drive;
    };
    drive.class = Some(class);
    let queue_depth = match class {
        Class::Ssd => config.meta_queue_depth,
        Class::Hdd => config.data_queue_depth,
    };
    let handle = match Device::open(&dev.path, config.io_backend, queue_depth) {
        Ok(h) => Arc::new(h),
        Err(e) => {
            drive.disposition = Disposition::Refused(format!("cannot be opened: {e}"));
            return drive;
        }
    };
    match superblock::probe(&handle) {
        Ok(Probe::Blank) => {}
        Ok(Probe::Hoard(sb)) => drive.superblock = Some(sb),
        Err(Error::NotBlank { .. }) => {
            drive.disposition = Disposition::Refused(
                "holds data but no Hoard superblock (a filesystem, a partition table, another program's data): never formatted; wipe it to adopt it".into(),
            );
            return drive;
        }
        Err(e) => {
            drive.disposition = Disposition::Refused(format!("{e}"));
            return drive;
        }
    }
    drive.handle = Some(handle);
    drive
}

fn claim_member(
    path: std::path::Display<'_>,
    class: Class,
    sb: &Superblock,
    ssd_taken: &mut [bool],
    hdd_taken: &mut [bool],
) -> Disposition {
    let (expected_role, taken) = match class {
        Class::Ssd => (Role::Meta, ssd_taken),
        Class::Hdd => (Role::Data, hdd_taken),
    };
    if sb.role != expected_role {
        return Disposition::Refused(format!(
            "holds a {:?} superblock of this store but is a {class:?}",
            sb.role
        ));
    }
    match taken.get_mut(sb.slot as usize) {
        None => Disposition::Refused(format!(
            "formatted for {class:?} slot {}, but the profile has {} such slots",
            sb.slot,
            taken.len()
        )),
        Some(true) => Disposition::Refused(format!(
            "claims {class:?} slot {} which another drive already holds ({path} may be a copy)",
            sb.slot
        )),
        Some(t) => {
            *t = true;
            match class {
                Class::Ssd => Disposition::Metadata {
                    slot: sb.slot,
                    format: false,
                },
                Class::Hdd => Disposition::Data {
                    slot: sb.slot,
                    format: false,
                },
            }
        }
    }
}

fn range(class: &crate::profile::DriveClass) -> String {
    let (lo, hi) = class.size_range_bytes();
    format!("{}..{}", fmt_bytes(lo), fmt_bytes(hi))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
