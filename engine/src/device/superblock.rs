//! The superblock: the first 4 KiB of every Hoard device, saying whose it is and what it holds.
//! Layout in `engine/FORMAT.md` ("Superblock").
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store. (The volume decides what a superblock means for a store.)

use super::{AlignedBuf, Device, BLOCK_SIZE};
use crate::error::{Error, Result};

/// Magic bytes at offset 0 of every Hoard device.
pub const SUPERBLOCK_MAGIC: &[u8; 8] = b"HOARDSB1";
/// Superblock format version written by this build.
pub const SUPERBLOCK_VERSION: u32 = 2;
/// Bytes at the start of a device that must be zero for it to count as blank.
pub const BLANK_CHECK_BYTES: u64 = 1 << 20;
/// Bytes reserved at the start of every device for the superblock (the rest of it stays zero).
pub const RESERVED_BYTES: u64 = 1 << 20;

/// What a device holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Metadata (an SSD): the write-ahead log and the index.
    Meta = 1,
    /// Object data (an HDD): append-only segments.
    Data = 2,
}

/// A decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Format version it was written with.
    pub format_version: u32,
    /// What the device holds.
    pub role: Role,
    /// The store this device belongs to.
    pub store_uuid: [u8; 16],
    /// This device's own identity.
    pub device_uuid: [u8; 16],
    /// Index of the device among the profile's devices of its role (its slot).
    pub slot: u32,
    /// Data pool index (0 for metadata devices).
    pub pool: u32,
    /// Device size in bytes when it was formatted.
    pub device_size_bytes: u64,
    /// When it was formatted (Unix milliseconds).
    pub created_unix_ms: u64,
    /// Role-specific layout: data = segment size in bytes; meta = WAL size in bytes.
    pub layout_a: u64,
    /// Role-specific layout: data = number of segments; meta = manifest slot size in bytes.
    pub layout_b: u64,
    /// Name of the hardware profile that formatted it (up to 32 bytes).
    pub profile: String,
}

/// What [`probe`] found on a device.
#[derive(Debug)]
pub enum Probe {
    /// The first MiB is all zeros: safe to format.
    Blank,
    /// A valid Hoard superblock.
    Hoard(Superblock),
}

/// Formats a UUID as the usual 8-4-4-4-12 hex string.
pub fn uuid_string(uuid: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*uuid).hyphenated().to_string()
}

impl Superblock {
    /// Encodes into one 4 KiB block (crc32c in its last 4 bytes).
    pub fn encode(&self) -> AlignedBuf {
        let mut buf = AlignedBuf::new(BLOCK_SIZE);
        let b = &mut buf[..];
        b[0..8].copy_from_slice(SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        b[12] = self.role as u8;
        b[16..32].copy_from_slice(&self.store_uuid);
        b[32..48].copy_from_slice(&self.device_uuid);
        b[48..52].copy_from_slice(&self.slot.to_le_bytes());
        b[52..56].copy_from_slice(&self.pool.to_le_bytes());
        b[56..64].copy_from_slice(&self.device_size_bytes.to_le_bytes());
        b[64..72].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        b[72..80].copy_from_slice(&self.layout_a.to_le_bytes());
        b[80..88].copy_from_slice(&self.layout_b.to_le_bytes());
        let name = self.profile.as_bytes();
        let n = name.len().min(32);
        b[88..88 + n].copy_from_slice(&name[..n]);
        let crc = crc32c::crc32c(&b[..BLOCK_SIZE - 4]);
        b[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decodes a block that starts with [`SUPERBLOCK_MAGIC`].
    ///
    /// Errors: [`Error::Corrupt`] on a bad checksum or role; [`Error::Incompatible`] on a format
    /// version this build does not read.
    pub fn decode(device: &str, b: &[u8]) -> Result<Superblock> {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let corrupt = |detail: String| Error::Corrupt {
            device: device.to_string(),
            offset: 0,
            detail,
        };
        let stored = u32_at(BLOCK_SIZE - 4);
        let actual = crc32c::crc32c(&b[..BLOCK_SIZE - 4]);
        if stored != actual {
            return Err(corrupt(format!(
                "superblock checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            )));
        }
        let format_version = u32_at(8);
        if format_version != SUPERBLOCK_VERSION {
            return Err(Error::Incompatible {
                device: device.to_string(),
                detail: if format_version < SUPERBLOCK_VERSION {
                    format!("superblock format version {format_version}: formatted by an older build whose metadata layout (full index checkpoints) this build (format {SUPERBLOCK_VERSION}, LSM index) cannot read; open it with that build, or wipe and re-format")
                } else {
                    format!("superblock format version {format_version}; this build reads version {SUPERBLOCK_VERSION}")
                },
            });
        }
        let role = match b[12] {
            1 => Role::Meta,
            2 => Role::Data,
            other => return Err(corrupt(format!("unknown device role {other}"))),
        };
        let name_end = b[88..120].iter().position(|&c| c == 0).unwrap_or(32);
        Ok(Superblock {
            format_version,
            role,
            store_uuid: b[16..32].try_into().unwrap(),
            device_uuid: b[32..48].try_into().unwrap(),
            slot: u32_at(48),
            pool: u32_at(52),
            device_size_bytes: u64_at(56),
            created_unix_ms: u64_at(64),
            layout_a: u64_at(72),
            layout_b: u64_at(80),
            profile: String::from_utf8_lossy(&b[88..88 + name_end]).into_owned(),
        })
    }

    /// Writes this superblock durably at offset 0 of `device`.
    pub fn write(&self, device: &Device) -> Result<()> {
        device.write_at(self.encode(), 0, true)?;
        Ok(())
    }
}

/// Magic of a metadata epoch slot (`engine/FORMAT.md`, "Metadata epoch").
pub const EPOCH_MAGIC: &[u8; 8] = b"HEPOCH01";
/// Offsets of a data device's two metadata epoch slots, inside the reserved first MiB.
pub const EPOCH_SLOT_OFFSETS: [u64; 2] = [4096, 8192];

/// The metadata epoch a data device last recorded for `store_uuid`: the highest of its two
/// epoch slots that verifies (0 when neither does, as on a device formatted before epochs).
///
/// Errors: device errors.
pub fn read_meta_epoch(device: &Device, store_uuid: &[u8; 16]) -> Result<u64> {
    let mut best = 0;
    for offset in EPOCH_SLOT_OFFSETS {
        let b = device.read_at(AlignedBuf::new(BLOCK_SIZE), offset)?;
        let valid = &b[0..8] == EPOCH_MAGIC
            && &b[16..32] == store_uuid
            && u32::from_le_bytes(b[BLOCK_SIZE - 4..].try_into().expect("4 bytes"))
                == crc32c::crc32c(&b[..BLOCK_SIZE - 4]);
        if valid {
            best = best.max(u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")));
        }
    }
    Ok(best)
}

/// Records metadata epoch `epoch` durably in slot `epoch % 2`, so a torn write leaves the
/// other slot (the previous epoch) intact.
///
/// Errors: device errors.
pub fn write_meta_epoch(device: &Device, store_uuid: &[u8; 16], epoch: u64) -> Result<()> {
    let mut buf = AlignedBuf::new(BLOCK_SIZE);
    buf[0..8].copy_from_slice(EPOCH_MAGIC);
    buf[8..16].copy_from_slice(&epoch.to_le_bytes());
    buf[16..32].copy_from_slice(store_uuid);
    let crc = crc32c::crc32c(&buf[..BLOCK_SIZE - 4]);
    buf[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    device.write_at(buf, EPOCH_SLOT_OFFSETS[(epoch % 2) as usize], true)?;
    Ok(())
}

/// Magic of a metadata SSD's secrets-key block (`engine/FORMAT.md`, "Secrets key").
pub const SECRETS_KEY_MAGIC: &[u8; 8] = b"HKEYBLK1";
/// Offset of the secrets-key block on a metadata SSD, inside the reserved first MiB (outside
/// the mirrored metadata region, so no copy of the WAL or the tables carries it).
pub const SECRETS_KEY_OFFSET: u64 = 4096;

/// The secrets key a metadata SSD holds for `store_uuid`, if its block verifies.
///
/// Errors: device errors.
pub fn read_secrets_key(device: &Device, store_uuid: &[u8; 16]) -> Result<Option<[u8; 32]>> {
    let b = device.read_at(AlignedBuf::new(BLOCK_SIZE), SECRETS_KEY_OFFSET)?;
    let valid = &b[0..8] == SECRETS_KEY_MAGIC
        && &b[8..24] == store_uuid
        && u32::from_le_bytes(b[BLOCK_SIZE - 4..].try_into().expect("4 bytes"))
            == crc32c::crc32c(&b[..BLOCK_SIZE - 4]);
    Ok(valid.then(|| b[24..56].try_into().expect("32 bytes")))
}

/// Writes the secrets-key block durably.
///
/// Errors: device errors.
pub fn write_secrets_key(device: &Device, store_uuid: &[u8; 16], key: &[u8; 32]) -> Result<()> {
    let mut buf = AlignedBuf::new(BLOCK_SIZE);
    buf[0..8].copy_from_slice(SECRETS_KEY_MAGIC);
    buf[8..24].copy_from_slice(store_uuid);
    buf[24..56].copy_from_slice(key);
    let crc = crc32c::crc32c(&buf[..BLOCK_SIZE - 4]);
    buf[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    device.write_at(buf, SECRETS_KEY_OFFSET, true)?;
    Ok(())
}

/// Reads the start of `device` and says whether it is blank or Hoard's.
///
/// Errors: [`Error::NotBlank`] if the first MiB holds anything but zeros and no Hoard
/// superblock (a filesystem, a partition table, another program's data): such a device is never
/// formatted. [`Error::Corrupt`] / [`Error::Incompatible`] for a damaged or newer superblock.
pub fn probe(device: &Device) -> Result<Probe> {
    let len = BLANK_CHECK_BYTES.min(device.size_bytes()) as usize;
    let buf = device.read_at(AlignedBuf::new(len), 0)?;
    if &buf[..8] == SUPERBLOCK_MAGIC {
        return Superblock::decode(device.name(), &buf[..BLOCK_SIZE]).map(Probe::Hoard);
    }
    if buf.iter().all(|&b| b == 0) {
        Ok(Probe::Blank)
    } else {
        Err(Error::NotBlank {
            device: device.name().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::FaultBackend;

    fn sample() -> Superblock {
        Superblock {
            format_version: SUPERBLOCK_VERSION,
            role: Role::Data,
            store_uuid: [1; 16],
            device_uuid: [2; 16],
            slot: 3,
            pool: 0,
            device_size_bytes: 1 << 30,
            created_unix_ms: 1_700_000_000_000,
            layout_a: 256 << 20,
            layout_b: 3,
            profile: "dev".into(),
        }
    }

    #[test]
    fn roundtrip_and_probe() {
        let (backend, control) = FaultBackend::new(4 << 20);
        let dev = Device::with_backend("sb0", 4 << 20, Box::new(backend));
        assert!(matches!(probe(&dev).unwrap(), Probe::Blank));
        sample().write(&dev).unwrap();
        match probe(&dev).unwrap() {
            Probe::Hoard(sb) => assert_eq!(sb, sample()),
            other => panic!("{other:?}"),
        }
        control.flip_bit(100, 1);
        assert!(matches!(probe(&dev), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn foreign_bytes_are_not_blank() {
        let (backend, _control) = FaultBackend::new(4 << 20);
        let dev = Device::with_backend("ext4ish", 4 << 20, Box::new(backend));
        let mut buf = AlignedBuf::new(4096);
        buf[1080] = 0x53; // where ext4 keeps its magic
        dev.write_at(buf, 0, true).unwrap();
        let err = probe(&dev).unwrap_err();
        assert!(matches!(err, Error::NotBlank { .. }));
        assert!(err.to_string().contains("ext4ish"));
    }
}
