//! Block device discovery from sysfs: every whole disk under `/sys/block` with its size,
//! rotational flag, model and serial, as the kernel reports them.

use std::path::Path;

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
            name,
        });
    }
    out.sort_by(|a, b| natural_cmp(&a.bay, &b.bay).then_with(|| natural_cmp(&a.name, &b.name)));
    Ok(out)
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
