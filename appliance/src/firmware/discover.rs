//! Block device discovery from sysfs: every whole disk under `/sys/block` with its size,
//! rotational flag, model and serial, as the kernel reports them, and its bay: where it sits
//! on its controller (SCSI `host:channel:target:lun`, the ATA port, or the SES enclosure slot
//! under `/sys/class/enclosure`), numbered as the profile's `[[controller]] bays` says
//! ([`assign_bays`]).

use std::path::{Path, PathBuf};

use hoard::profile::{BayRule, ControllerRole};
use hoard::Profile;

pub use hoard::volume::assembly::BlockDevice;

/// Kernel name prefixes of devices that are never storage drives.
const IGNORED_PREFIXES: [&str; 7] = ["loop", "ram", "zram", "sr", "fd", "dm-", "md"];

/// Scans `sys_block` (normally `/sys/block`) and names each node under `dev_dir` (`/dev`).
/// Devices are sorted by bay in natural order (numbers compare as numbers), so the order is the
/// chassis's, not the order in which the kernel happened to probe them.
///
/// Errors: `sys_block` cannot be read. A device whose attributes cannot be read is skipped
/// with a warning.
pub fn scan(sys_block: &Path, dev_dir: &Path) -> std::io::Result<Vec<BlockDevice>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sys_block)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dir = entry.path();
        let Some(sectors) = read_u64(&dir.join("size")) else {
            tracing::warn!(device = %name, "cannot read its size; skipped");
            continue;
        };
        if sectors == 0 {
            continue;
        }
        out.push(BlockDevice {
            path: dev_dir.join(&name),
            size_bytes: sectors * 512,
            rotational: read_u64(&dir.join("queue/rotational")) == Some(1),
            model: model(&dir),
            serial: serial(&dir),
            removable: read_u64(&dir.join("removable")) == Some(1),
            read_only: read_u64(&dir.join("ro")) == Some(1),
            bay: std::fs::canonicalize(dir.join("device"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| name.clone()),
            bay_number: None,
            name,
        });
    }
    out.sort_by(|a, b| natural_cmp(&a.bay, &b.bay).then_with(|| natural_cmp(&a.name, &b.name)));
    Ok(out)
}

/// Where a drive sits, read from its sysfs device path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The kernel driver of the controller it hangs off (the nearest ancestor of the disk's
    /// device with a `driver` link, the disk's own SCSI device excepted).
    pub controller: Option<String>,
    /// SCSI `host:channel:target:lun`.
    pub scsi: Option<[u32; 4]>,
    /// The ATA port (`ataN`), counted from 1.
    pub ata_port: Option<u32>,
    /// The SES enclosure slot holding it.
    pub enclosure_slot: Option<u32>,
}

/// Reads where the drive whose canonical sysfs device path is `device` sits. `enclosures`
/// maps canonical SCSI device paths to their enclosure slot ([`enclosure_slots`]).
pub fn locate(device: &Path, enclosures: &[(PathBuf, u32)]) -> Location {
    let text = device.display().to_string();
    let scsi = device.file_name().and_then(|n| n.to_str()).and_then(|n| {
        let parts: Vec<u32> = n
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        <[u32; 4]>::try_from(parts).ok()
    });
    let ata_port = text
        .split('/')
        .find_map(|c| c.strip_prefix("ata")?.parse::<u32>().ok());
    let controller = device
        .ancestors()
        .skip(usize::from(scsi.is_some()))
        .find_map(|dir| {
            let target = std::fs::read_link(dir.join("driver")).ok()?;
            Some(target.file_name()?.to_string_lossy().into_owned())
        });
    Location {
        controller,
        scsi,
        ata_port,
        enclosure_slot: enclosures
            .iter()
            .find(|(path, _)| path == device)
            .map(|(_, slot)| *slot),
    }
}

/// Every SES enclosure component with a drive in it (the kernel's enclosure class:
/// `/sys/class/enclosure/<enclosure>/<component>/` with `slot` and a `device` link to the
/// SCSI device): (the device's canonical path, the slot number).
pub fn enclosure_slots(sys_class_enclosure: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for enclosure in std::fs::read_dir(sys_class_enclosure)
        .into_iter()
        .flatten()
        .flatten()
    {
        for component in std::fs::read_dir(enclosure.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = component.path();
            let (Some(slot), Ok(device)) = (
                read_u64(&dir.join("slot")),
                std::fs::canonicalize(dir.join("device")),
            ) else {
                continue;
            };
            out.push((device, slot as u32));
        }
    }
    out
}

/// The component directory of enclosure slot `slot` (for its `locate` and `fault` LEDs).
pub fn enclosure_component(sys_class_enclosure: &Path, slot: u32) -> Option<PathBuf> {
    for enclosure in std::fs::read_dir(sys_class_enclosure).ok()?.flatten() {
        for component in std::fs::read_dir(enclosure.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if read_u64(&component.path().join("slot")) == Some(u64::from(slot)) {
                return Some(component.path());
            }
        }
    }
    None
}

/// Turns the locate LED of enclosure slot `slot` on or off (writes `1` or `0` to its
/// component's `locate`); returns the file written.
///
/// Errors: no enclosure component has that slot, or the write failed; the message names it.
pub fn set_locate_led(sys_class_enclosure: &Path, slot: u32, on: bool) -> Result<PathBuf, String> {
    let component = enclosure_component(sys_class_enclosure, slot).ok_or_else(|| {
        format!(
            "no SES enclosure slot {slot} under {} (a backplane without SES has no locate LEDs)",
            sys_class_enclosure.display()
        )
    })?;
    let file = component.join("locate");
    std::fs::write(&file, if on { "1" } else { "0" })
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}

/// The enclosure slot of HDD bay `bay`, by the first HDD controller whose bays are enclosure
/// slots (bay = its `first_bay` + slot).
pub fn enclosure_slot_of_bay(profile: &Profile, bay: u32) -> Option<u32> {
    profile
        .controller
        .iter()
        .find(|c| c.carries == ControllerRole::Hdd && c.bays == Some(BayRule::EnclosureSlot))
        .and_then(|c| bay.checked_sub(c.first_bay))
}

/// Sets each drive's bay number by the profile's rule for its controller (the first of its
/// driver that carries the drive's class): the SCSI target, the ATA port minus one, or the
/// enclosure slot, plus the controller's `first_bay`. Drives whose controller has no rule,
/// or whose path lacks what the rule reads, keep `None`.
pub fn assign_bays(profile: &Profile, devices: &mut [BlockDevice], sys_class_enclosure: &Path) {
    let enclosures = enclosure_slots(sys_class_enclosure);
    for d in devices.iter_mut() {
        let location = locate(Path::new(&d.bay), &enclosures);
        let role = if d.rotational {
            ControllerRole::Hdd
        } else {
            ControllerRole::Ssd
        };
        let Some(rule) = profile.controller.iter().find(|c| {
            c.carries == role && Some(c.driver.as_str()) == location.controller.as_deref()
        }) else {
            continue;
        };
        let index = match rule.bays {
            None => None,
            Some(BayRule::ScsiTarget) => location.scsi.map(|a| a[2]),
            Some(BayRule::AtaPort) => location.ata_port.and_then(|p| p.checked_sub(1)),
            Some(BayRule::EnclosureSlot) => location.enclosure_slot,
        };
        d.bay_number = index.map(|i| rule.first_bay + i);
    }
}

/// Compares strings with runs of digits taken as numbers (`target0:0:10` after `target0:0:9`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_text(path)?.parse().ok()
}

fn model(dir: &Path) -> String {
    let vendor = read_text(&dir.join("device/vendor")).unwrap_or_default();
    let model = read_text(&dir.join("device/model")).unwrap_or_default();
    if vendor.is_empty() || model.starts_with(&vendor) {
        model
    } else {
        format!("{vendor} {model}")
    }
}

fn serial(dir: &Path) -> String {
    if let Some(s) = read_text(&dir.join("device/serial")).filter(|s| !s.is_empty()) {
        return s;
    }
    // SCSI: VPD page 0x80 (Unit Serial Number): 4-byte header, then the serial in ASCII,
    // its length in bytes 2..4 (SPC-4, 7.8.19).
    if let Ok(page) = std::fs::read(dir.join("device/vpd_pg80")) {
        if page.len() > 4 && page[1] == 0x80 {
            let len = u16::from_be_bytes([page[2], page[3]]) as usize;
            let serial = &page[4..page.len().min(4 + len)];
            return String::from_utf8_lossy(serial)
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
        }
    }
    read_text(&dir.join("device/wwid")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_disk(sys: &Path, name: &str, sectors: u64, rotational: u8, extra: &[(&str, &[u8])]) {
        let dir = sys.join(name);
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::create_dir_all(dir.join("device")).unwrap();
        std::fs::write(dir.join("size"), format!("{sectors}\n")).unwrap();
        std::fs::write(dir.join("queue/rotational"), format!("{rotational}\n")).unwrap();
        std::fs::write(dir.join("removable"), "0\n").unwrap();
        std::fs::write(dir.join("ro"), "0\n").unwrap();
        for (file, bytes) in extra {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
    }

    /// A device tree as sysfs lays it out: a PCI function bound to `driver`, under it the
    /// disk's SCSI device at `tail` (`host2/target2:0:5/2:0:5:0`); returns the SCSI
    /// device's directory.
    fn fake_device(root: &Path, pci: &str, driver: &str, tail: &str) -> PathBuf {
        let function = root.join("devices/pci0000:00").join(pci);
        let drivers = root.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drivers).unwrap();
        std::fs::create_dir_all(&function).unwrap();
        if !function.join("driver").exists() {
            std::os::unix::fs::symlink(&drivers, function.join("driver")).unwrap();
        }
        let device = function.join(tail);
        std::fs::create_dir_all(&device).unwrap();
        let sd = root.join("bus/scsi/drivers/sd");
        std::fs::create_dir_all(&sd).unwrap();
        std::os::unix::fs::symlink(&sd, device.join("driver")).unwrap();
        device.canonicalize().unwrap()
    }

    fn drive(bay: &Path, rotational: bool) -> BlockDevice {
        BlockDevice {
            name: "sdx".into(),
            path: "/dev/sdx".into(),
            size_bytes: 8 << 30,
            rotational,
            model: String::new(),
            serial: String::new(),
            removable: false,
            read_only: false,
            bay: bay.display().to_string(),
            bay_number: None,
        }
    }

    #[test]
    fn bays_are_read_from_scsi_targets_ata_ports_and_enclosure_slots_as_the_profile_says() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let hba = fake_device(
            root,
            "0000:00:04.0",
            "megaraid_sas",
            "host3/target3:2:7/3:2:7:0",
        );
        let sata = fake_device(
            root,
            "0000:00:1f.2",
            "ahci",
            "ata2/host1/target1:0:0/1:0:0:0",
        );
        let sas = fake_device(
            root,
            "0000:00:05.0",
            "mpt3sas",
            "host4/port-4:0/end_device-4:0/target4:0:9/4:0:9:0",
        );
        let other = fake_device(
            root,
            "0000:00:06.0",
            "virtio_scsi",
            "host5/target5:0:1/5:0:1:0",
        );
        let loc = locate(&hba, &[]);
        assert_eq!(loc.controller.as_deref(), Some("megaraid_sas"));
        assert_eq!(loc.scsi, Some([3, 2, 7, 0]));
        assert_eq!(locate(&sata, &[]).ata_port, Some(2));

        // The SES enclosure: slot 41 holds the mpt3sas drive; its LEDs sit beside it.
        let component = root.join("class/enclosure/4:0:20:0/Slot 41");
        std::fs::create_dir_all(&component).unwrap();
        std::fs::write(component.join("slot"), "41\n").unwrap();
        std::fs::write(component.join("locate"), "0\n").unwrap();
        std::os::unix::fs::symlink(&sas, component.join("device")).unwrap();
        let enclosures = root.join("class/enclosure");
        assert_eq!(enclosure_slots(&enclosures), vec![(sas.clone(), 41)]);
        assert_eq!(
            enclosure_component(&enclosures, 41),
            Some(component.clone())
        );
        assert_eq!(enclosure_component(&enclosures, 40), None);
        let file = set_locate_led(&enclosures, 41, true).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1");
        set_locate_led(&enclosures, 41, false).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0");
        let err = set_locate_led(&enclosures, 7, true).unwrap_err();
        assert!(err.contains("slot 7"), "{err}");

        let profile = Profile::parse(&include_str!("../../../hwprofiles/qemu-hba.toml").replace(
            "[[controller]]\nmodel = \"LSI",
            "[[controller]]\ndriver = \"mpt3sas\"\ncarries = \"hdd\"\nbays = \"enclosure_slot\"\nfirst_bay = 0\n\n[[controller]]\nmodel = \"LSI",
        ))
        .unwrap();
        let mut drives = vec![
            drive(&hba, true),
            drive(&sata, false),
            drive(&sas, true),
            drive(&other, true),
            drive(Path::new("sdq"), true),
        ];
        assign_bays(&profile, &mut drives, &enclosures);
        let bays: Vec<Option<u32>> = drives.iter().map(|d| d.bay_number).collect();
        // HBA target 7, SATA port 2 (bay 1), enclosure slot 41; a controller the profile
        // does not name and a path without a device give none.
        assert_eq!(bays, [Some(7), Some(1), Some(41), None, None]);
        assert_eq!(enclosure_slot_of_bay(&profile, 41), Some(41));
        // An SSD class drive on the HDDs' HBA does not take the HBA's rule.
        let mut ssd_on_hba = [drive(&hba, false)];
        assign_bays(&profile, &mut ssd_on_hba, &enclosures);
        assert_eq!(ssd_on_hba[0].bay_number, None);
    }

    #[test]
    fn bays_sort_by_number() {
        use std::cmp::Ordering::*;
        let t =
            |n: u32| format!("/sys/devices/pci0000:00/0000:00:03.0/host0/target0:0:{n}/0:0:{n}:0");
        assert_eq!(natural_cmp(&t(9), &t(10)), Less);
        assert_eq!(natural_cmp(&t(10), &t(2)), Greater);
        assert_eq!(natural_cmp(&t(3), &t(3)), Equal);
        assert_eq!(natural_cmp("sdz", "sdaa"), Greater); // names compare as text
        assert_eq!(natural_cmp("nvme2n1", "nvme10n1"), Less);
        assert_eq!(natural_cmp("a", "a1"), Less);
    }

    #[test]
    fn reads_what_the_kernel_reports() {
        let sys = tempfile::tempdir().unwrap();
        let mut pg80 = vec![0u8, 0x80, 0, 5];
        pg80.extend_from_slice(b"hdd7 ");
        fake_disk(
            sys.path(),
            "sdb",
            16_777_216,
            1,
            &[
                ("device/vendor", b"QEMU    \n"),
                ("device/model", b"QEMU HARDDISK   \n"),
                ("device/vpd_pg80", &pg80),
            ],
        );
        fake_disk(sys.path(), "sdaa", 100, 1, &[]);
        fake_disk(
            sys.path(),
            "nvme0n1",
            4_194_304,
            0,
            &[
                ("device/model", b"QEMU NVMe Ctrl\n"),
                ("device/serial", b"ssd0  \n"),
            ],
        );
        fake_disk(sys.path(), "loop0", 100, 0, &[]);
        fake_disk(sys.path(), "sr0", 0, 1, &[]);
        let found = scan(sys.path(), Path::new("/dev")).unwrap();
        let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
        // No device links here, so the bay is the kernel name.
        assert_eq!(names, ["nvme0n1", "sdaa", "sdb"]);
        let hdd = &found[2];
        assert_eq!(hdd.path, Path::new("/dev/sdb"));
        assert_eq!(hdd.size_bytes, 8 << 30);
        assert!(hdd.rotational);
        assert_eq!(hdd.model, "QEMU HARDDISK");
        assert_eq!(hdd.serial, "hdd7");
        let ssd = &found[0];
        assert!(!ssd.rotational);
        assert_eq!(
            (ssd.model.as_str(), ssd.serial.as_str()),
            ("QEMU NVMe Ctrl", "ssd0")
        );
    }
}
