//! Data log: append-only segments of needles on each HDD.
//!
//! Owns: the HDD layout after the superblock (fixed-size segments), the needle format (a 64-byte
//! header with the chunk's identity, length and crc32c, then the data, padded to 4 KiB), the
//! append head of each device, and verified chunk reads (one device read per chunk). A segment
//! is claimed durably in metadata (through [`SegmentClaims`]) before anything is written into it,
//! so after a crash the head restarts at the first unclaimed segment and never overwrites data
//! that metadata might reference. Must not know about buckets or objects beyond chunk identity.
//! Layout in `engine/FORMAT.md` ("Data devices", "Needle").

use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::superblock::RESERVED_BYTES;
use crate::device::{align_up, AlignedBuf, Device, PendingIo, PendingRead};
use crate::error::{Error, Result};

/// Magic at the start of every needle ("NDL1").
pub const NEEDLE_MAGIC: u32 = u32::from_le_bytes(*b"NDL1");
/// Bytes of a needle header.
pub const NEEDLE_HEADER_BYTES: usize = 64;

/// Bytes a needle of `data_bytes` occupies on the device (header + data, padded to 4 KiB).
pub fn needle_bytes(data_bytes: usize) -> usize {
    align_up(NEEDLE_HEADER_BYTES + data_bytes)
}

/// Identity of a chunk: which object version wrote it and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkId {
    /// Random 128-bit ID of the object version (or multipart part) that wrote the chunk.
    pub object_id: u128,
    /// Index of the chunk within that object version.
    pub index: u32,
}

/// Writes the needle header into `buf[..64]` for data already placed at `buf[64..64 + len]`,
/// and sets the buffer's transfer length to the needle's size.
pub fn seal_needle(buf: &mut AlignedBuf, id: ChunkId, data_bytes: usize) {
    buf.set_len(needle_bytes(data_bytes));
    let data_crc = crc32c::crc32c(&buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + data_bytes]);
    let h = &mut buf[..NEEDLE_HEADER_BYTES];
    h.fill(0);
    h[0..4].copy_from_slice(&NEEDLE_MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&1u16.to_le_bytes());
    h[8..24].copy_from_slice(&id.object_id.to_le_bytes());
    h[24..28].copy_from_slice(&id.index.to_le_bytes());
    h[28..32].copy_from_slice(&(data_bytes as u32).to_le_bytes());
    h[32..36].copy_from_slice(&data_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&header_crc.to_le_bytes());
    // Zero the padding so the device never holds stale bytes from an earlier use of the buffer.
    let end = buf.len();
    buf[NEEDLE_HEADER_BYTES + data_bytes..end].fill(0);
}

/// Checks a needle read back from `offset`: magic, header crc, identity, length and data crc.
///
/// Errors: [`Error::Corrupt`] naming the device, offset and what did not match.
pub fn verify_needle(
    device: &str,
    offset: u64,
    buf: &[u8],
    id: ChunkId,
    data_bytes: usize,
) -> Result<()> {
    let corrupt = |detail: String| {
        Err(Error::Corrupt {
            device: device.to_string(),
            offset,
            detail,
        })
    };
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
    if u32_at(0) != NEEDLE_MAGIC {
        return corrupt("needle magic missing".into());
    }
    if u32_at(60) != crc32c::crc32c(&buf[..60]) {
        return corrupt("needle header checksum mismatch".into());
    }
    let found = ChunkId {
        object_id: u128::from_le_bytes(buf[8..24].try_into().unwrap()),
        index: u32_at(24),
    };
    if found != id {
        return corrupt(format!(
            "needle belongs to object {:032x} chunk {}, expected {:032x} chunk {}",
            found.object_id, found.index, id.object_id, id.index
        ));
    }
    if u32_at(28) as usize != data_bytes {
        return corrupt(format!(
            "needle length {} but metadata says {data_bytes}",
            u32_at(28)
        ));
    }
    let data = &buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + data_bytes];
    if crc32c::crc32c(data) != u32_at(32) {
        return corrupt("needle data checksum mismatch".into());
    }
    Ok(())
}

/// Records segment claims durably (implemented by the store on top of metadata).
pub trait SegmentClaims: Send + Sync {
    /// Makes durable that segments below `next_unclaimed` of data device `slot` may hold data.
    fn claim(&self, slot: u32, next_unclaimed: u32) -> Result<()>;
}

/// The append head of a data device as kept in metadata (`engine/FORMAT.md`, key `d/`).
///
/// While the store runs only `next_unclaimed` is recorded. A clean close also records the open
/// segment and the bytes used in it, so the next open continues there instead of abandoning the
/// segment's tail; that open clears it again before any write, so after a later crash the head
/// restarts at the first unclaimed segment and never overwrites acknowledged data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadState {
    /// First segment not yet claimed.
    pub next_unclaimed: u32,
    /// Segment being filled at a clean close, and bytes used in it.
    pub open: Option<(u32, u64)>,
}

impl HeadState {
    /// 4 bytes (`next_unclaimed`), or 16 with the open segment (u32) and bytes used (u64).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.next_unclaimed.to_le_bytes().to_vec();
        if let Some((segment, used)) = self.open {
            v.extend_from_slice(&segment.to_le_bytes());
            v.extend_from_slice(&used.to_le_bytes());
        }
        v
    }

    /// Decodes [`HeadState::encode`]; `None` for any other length.
    pub fn decode(b: &[u8]) -> Option<HeadState> {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        match b.len() {
            4 => Some(HeadState {
                next_unclaimed: u32_at(0),
                open: None,
            }),
            16 => Some(HeadState {
                next_unclaimed: u32_at(0),
                open: Some((u32_at(4), u64::from_le_bytes(b[8..16].try_into().unwrap()))),
            }),
            _ => None,
        }
    }
}

/// Segment geometry of a data device.
#[derive(Clone, Copy, Debug)]
pub struct DataLayout {
    /// Size of a segment in bytes.
    pub segment_size_bytes: u64,
    /// Number of segments on the device.
    pub segment_count: u32,
}

impl DataLayout {
    /// Geometry for a device of `device_bytes` with segments of `segment_size_bytes`.
    pub fn new(device_bytes: u64, segment_size_bytes: u64) -> DataLayout {
        let count = device_bytes.saturating_sub(RESERVED_BYTES) / segment_size_bytes;
        DataLayout {
            segment_size_bytes,
            segment_count: count.min(u32::MAX as u64) as u32,
        }
    }

    fn segment_offset(&self, segment: u32) -> u64 {
        RESERVED_BYTES + segment as u64 * self.segment_size_bytes
    }
}

struct Head {
    /// Segment being filled, and bytes used in it.
    open: Option<(u32, u64)>,
    /// First segment not yet claimed in metadata.
    next_unclaimed: u32,
    /// Set by [`DataDevice::seal`]: no more appends.
    sealed: bool,
}

/// One HDD of the data log.
pub struct DataDevice {
    device: Arc<Device>,
    slot: u32,
    layout: DataLayout,
    head: Mutex<Head>,
}

impl DataDevice {
    /// A data device in `slot` with the head recorded in metadata: appends continue in the open
    /// segment of a clean close, else start in the first unclaimed segment (the tail of a segment
    /// open at a crash is left for garbage collection).
    pub fn new(device: Arc<Device>, slot: u32, layout: DataLayout, state: HeadState) -> Self {
        let open = state.open.filter(|&(segment, used)| {
            segment < state.next_unclaimed && used <= layout.segment_size_bytes
        });
        let head = Head {
            open,
            next_unclaimed: state.next_unclaimed,
            sealed: false,
        };
        DataDevice {
            device,
            slot,
            layout,
            head: Mutex::new(head),
        }
    }

    /// Stops appends and returns the head to record at a clean close. Reservations made before
    /// lie below it.
    pub fn seal(&self) -> HeadState {
        let mut head = self.head.lock();
        head.sealed = true;
        HeadState {
            next_unclaimed: head.next_unclaimed,
            open: head.open,
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Its slot in the pool.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Free segments left (unclaimed).
    pub fn free_segments(&self) -> u32 {
        self.layout
            .segment_count
            .saturating_sub(self.head.lock().next_unclaimed)
    }

    /// Reserves `bytes` (a needle) at the head; claims a new segment first when needed.
    ///
    /// Errors: [`Error::NoSpace`] when every segment is claimed; metadata errors from the claim.
    pub fn reserve(&self, bytes: u64, claims: &dyn SegmentClaims) -> Result<u64> {
        assert!(
            bytes <= self.layout.segment_size_bytes,
            "needle larger than a segment"
        );
        let mut head = self.head.lock();
        if head.sealed {
            return Err(Error::Closed);
        }
        if let Some((segment, used)) = head.open {
            if used + bytes <= self.layout.segment_size_bytes {
                head.open = Some((segment, used + bytes));
                return Ok(self.layout.segment_offset(segment) + used);
            }
        }
        let segment = head.next_unclaimed;
        if segment >= self.layout.segment_count {
            return Err(Error::NoSpace {
                detail: format!("data device {} has no free segment", self.device.name()),
            });
        }
        claims.claim(self.slot, segment + 1)?;
        head.next_unclaimed = segment + 1;
        head.open = Some((segment, bytes));
        Ok(self.layout.segment_offset(segment))
    }

    /// Starts writing a sealed needle at a reserved offset, durably.
    pub fn submit_write(&self, needle: AlignedBuf, offset: u64) -> Result<PendingIo<'_>> {
        self.device.submit_write(needle, offset, true)
    }

    /// Starts writing a sealed needle at a reserved offset, not durably: the caller makes a
    /// batch of them durable with one sync per device ([`Device::sync_all`]) before anything
    /// references them.
    pub fn submit_write_batched(&self, needle: AlignedBuf, offset: u64) -> Result<PendingIo<'_>> {
        self.device.submit_write(needle, offset, false)
    }

    /// Starts reading the needle of `data_bytes` at `offset` into `buf`.
    pub fn submit_read(
        &self,
        mut buf: AlignedBuf,
        offset: u64,
        data_bytes: usize,
    ) -> Result<PendingRead> {
        buf.set_len(needle_bytes(data_bytes));
        self.device.submit_read(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::FaultBackend;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Claims(AtomicU32);
    impl SegmentClaims for Claims {
        fn claim(&self, _slot: u32, next: u32) -> Result<()> {
            self.0.store(next, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn needles_roundtrip_and_detect_corruption() {
        let size = 8 << 20;
        let (backend, control) = FaultBackend::new(size);
        let dev = Arc::new(Device::with_backend("hdd0", size, Box::new(backend)));
        let data = DataDevice::new(dev, 0, DataLayout::new(size, 1 << 20), HeadState::default());
        let claims = Claims(AtomicU32::new(0));
        let id = ChunkId {
            object_id: 0xabc,
            index: 3,
        };
        let mut buf = AlignedBuf::new(needle_bytes(10_000));
        buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + 10_000].fill(0x5a);
        seal_needle(&mut buf, id, 10_000);
        let offset = data.reserve(buf.len() as u64, &claims).unwrap();
        assert_eq!(claims.0.load(Ordering::SeqCst), 1);
        data.submit_write(buf, offset).unwrap().wait().unwrap();
        let back = data
            .submit_read(AlignedBuf::new(1 << 20), offset, 10_000)
            .unwrap()
            .wait()
            .unwrap();
        verify_needle("hdd0", offset, &back, id, 10_000).unwrap();
        let wrong = ChunkId {
            object_id: 0xabc,
            index: 4,
        };
        assert!(verify_needle("hdd0", offset, &back, wrong, 10_000).is_err());
        control.flip_bit(offset + 5000, 3);
        let back = data
            .submit_read(AlignedBuf::new(1 << 20), offset, 10_000)
            .unwrap()
            .wait()
            .unwrap();
        let err = verify_needle("hdd0", offset, &back, id, 10_000).unwrap_err();
        assert!(err.to_string().contains("data checksum"), "{err}");
    }

    #[test]
    fn reservations_fill_segments_then_report_no_space() {
        let size = (1 << 20) + 2 * (64 << 10);
        let (backend, _c) = FaultBackend::new(size);
        let dev = Arc::new(Device::with_backend("hdd0", size, Box::new(backend)));
        let data = DataDevice::new(
            dev,
            0,
            DataLayout::new(size, 64 << 10),
            HeadState::default(),
        );
        let claims = Claims(AtomicU32::new(0));
        let offsets: Vec<u64> = (0..4)
            .map(|_| data.reserve(32 << 10, &claims).unwrap())
            .collect();
        assert_eq!(
            offsets,
            vec![
                1 << 20,
                (1 << 20) + (32 << 10),
                (1 << 20) + (64 << 10),
                (1 << 20) + (96 << 10)
            ]
        );
        assert!(matches!(
            data.reserve(4096, &claims),
            Err(Error::NoSpace { .. })
        ));
    }

    #[test]
    fn a_clean_close_resumes_in_the_open_segment() {
        let size = 8 << 20;
        let (backend, _c) = FaultBackend::new(size);
        let dev = Arc::new(Device::with_backend("hdd0", size, Box::new(backend)));
        let claims = Claims(AtomicU32::new(0));
        let layout = DataLayout::new(size, 1 << 20);
        let data = DataDevice::new(dev.clone(), 0, layout, HeadState::default());
        let first = data.reserve(8192, &claims).unwrap();
        let state = data.seal();
        assert_eq!(
            state,
            HeadState {
                next_unclaimed: 1,
                open: Some((0, 8192))
            }
        );
        assert!(matches!(data.reserve(4096, &claims), Err(Error::Closed)));
        assert_eq!(HeadState::decode(&state.encode()), Some(state));
        let data = DataDevice::new(dev, 0, layout, state);
        assert_eq!(data.reserve(4096, &claims).unwrap(), first + 8192);
    }
}
