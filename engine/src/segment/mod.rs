//! Data log: append-only segments of needles on each HDD.
//!
//! Owns: the HDD layout after the superblock (fixed-size segments), the needle format (a 64-byte
//! header with the chunk's identity, length and crc32c, then the data, padded to 4 KiB), the
//! append heads of each device (one for client writes, one for relocations: garbage collection
//! and rebuild, so cold copied data does not mix with hot new data), the set of free segments
//! the store hands back, reservations not yet committed, and verified chunk reads (one device
//! read per chunk). A never-used segment is claimed durably in metadata (through
//! [`SegmentClaims`]) before anything is written into it, so the claimed range only grows; a
//! freed segment is reused only once the store has proved no committed record and no reader
//! references it (`store/space.rs`). After a crash the heads restart in fresh or free segments
//! and never overwrite data that metadata might reference. Must not know about buckets or
//! objects beyond chunk identity. Layout in `engine/FORMAT.md` ("Data devices", "Needle").
//!
//! Must not import `meta`, `schema`, `volume` or `store`: a segment holds needles, not records.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::superblock::RESERVED_BYTES;
use crate::device::{align_up, Device, PendingIo};

/// The buffers, I/O tickets and counters of segment reads and writes: the device layer's, as
/// the layers above meet them through a [`DataDevice`].
pub use crate::device::{
    may_wait, memory_only, AlignedBuf, BufferPool, IoStats, IoTicket, PendingRead, PooledBuf,
};
/// Where the first segment of a data device starts, in bytes (below it: the superblock area,
/// `engine/FORMAT.md`).
pub const FIRST_SEGMENT_OFFSET_BYTES: u64 = RESERVED_BYTES;

/// Makes every write to `devices` durable: one sync per device, in parallel
/// ([`Device::sync_all`]).
///
/// Errors: the first device error.
pub fn sync_all(devices: &[Arc<DataDevice>]) -> crate::error::Result<()> {
    let devices: Vec<&Device> = devices.iter().map(|d| d.device()).collect();
    Device::sync_all(&devices)
}
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

    /// Byte offset of segment `segment`.
    pub fn segment_offset(&self, segment: u32) -> u64 {
        RESERVED_BYTES + segment as u64 * self.segment_size_bytes
    }

    /// The segment holding byte `offset` (which lies past the reserved first MiB).
    pub fn segment_of(&self, offset: u64) -> u32 {
        debug_assert!(
            offset >= RESERVED_BYTES,
            "offset {offset} in the reserved area"
        );
        ((offset - RESERVED_BYTES) / self.segment_size_bytes) as u32
    }
}

/// Which append head a reservation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Client writes (PUT, UploadPart): refused once taking a new segment would leave fewer
    /// free segments than the device's reserve.
    Client,
    /// Garbage collection and rebuild copies: may use the reserve, which exists for them.
    Relocation,
}

struct Head {
    /// Segment being filled by each stream ([`Stream::Client`], [`Stream::Relocation`]), and
    /// bytes used in it.
    open: [Option<(u32, u64)>; 2],
    /// First segment never claimed in metadata.
    next_unclaimed: u32,
    /// Segments below `next_unclaimed` that the store freed (no record, no reader references
    /// them): reused before a never-claimed one.
    free: BTreeSet<u32>,
    /// Reservations not yet released, by segment: needles written or being written that a
    /// commit may still reference. Such a segment is never freed.
    pending: HashMap<u32, u32>,
    /// Set by [`DataDevice::seal`]: no more appends.
    sealed: bool,
}

impl Head {
    fn free_count(&self, segment_count: u32) -> u32 {
        segment_count.saturating_sub(self.next_unclaimed) + self.free.len() as u32
    }
}

/// Room reserved for one needle: its offset, held until the record that references it is
/// committed (or the write is abandoned). While any reservation in a segment is held the
/// segment is never freed. Dropping it releases it.
pub struct Reservation {
    device: Arc<DataDevice>,
    segment: u32,
    /// Byte offset of the needle on the device.
    pub offset: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut head = self.device.head.lock();
        let n = head
            .pending
            .get_mut(&self.segment)
            .expect("a held reservation is counted");
        *n -= 1;
        if *n == 0 {
            head.pending.remove(&self.segment);
        }
    }
}

/// One HDD of the data log.
pub struct DataDevice {
    device: Arc<Device>,
    slot: u32,
    layout: DataLayout,
    /// Free segments kept back for relocations ([`Stream::Relocation`]).
    reserve_segments: u32,
    head: Mutex<Head>,
}

impl DataDevice {
    /// A data device in `slot` with the head recorded in metadata: client appends continue in
    /// the open segment of a clean close, else start in a free or the first unclaimed segment
    /// (the tail of a segment open at a crash is left for garbage collection). No segment is
    /// free until the store says so ([`DataDevice::free_segment`]); `reserve_segments` free
    /// segments are kept for relocations.
    pub fn new(
        device: Arc<Device>,
        slot: u32,
        layout: DataLayout,
        state: HeadState,
        reserve_segments: u32,
    ) -> Self {
        let open = state.open.filter(|&(segment, used)| {
            segment < state.next_unclaimed && used <= layout.segment_size_bytes
        });
        let head = Head {
            open: [open, None],
            next_unclaimed: state.next_unclaimed,
            free: BTreeSet::new(),
            pending: HashMap::new(),
            sealed: false,
        };
        DataDevice {
            device,
            slot,
            layout,
            // A device smaller than the profile's drives keeps at most an eighth back, but the
            // two collection needs (a store formatted by an older build may have few segments).
            reserve_segments: reserve_segments
                .min((layout.segment_count / 8).max(2))
                .min(layout.segment_count / 2),
            head: Mutex::new(head),
        }
    }

    /// Stops appends and returns the head to record at a clean close (the client stream's
    /// open segment; the relocation stream's is left to garbage collection). Reservations made
    /// before lie below it.
    pub fn seal(&self) -> HeadState {
        let mut head = self.head.lock();
        head.sealed = true;
        HeadState {
            next_unclaimed: head.next_unclaimed,
            open: head.open[0],
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

    /// Its segment geometry.
    pub fn layout(&self) -> DataLayout {
        self.layout
    }

    /// The segment holding byte `offset`.
    pub fn segment_of(&self, offset: u64) -> u32 {
        self.layout.segment_of(offset)
    }

    /// Free segments (never claimed, or freed by the store), including the reserve.
    pub fn free_segments(&self) -> u32 {
        self.head.lock().free_count(self.layout.segment_count)
    }

    /// Segments ever claimed (the claimed range: free ones below it included).
    pub fn claimed_segments(&self) -> u32 {
        self.head.lock().next_unclaimed
    }

    /// Free segments kept back for relocations.
    pub fn reserve_segments(&self) -> u32 {
        self.reserve_segments
    }

    /// Whether segment `segment` may be freed now: claimed, not free already, not open for
    /// appends and holding no reservation. The store frees it only if, checked after this,
    /// no committed record references it either (`store/space.rs`).
    pub fn segment_idle(&self, segment: u32) -> bool {
        let head = self.head.lock();
        segment < head.next_unclaimed
            && !head.free.contains(&segment)
            && !head.open.iter().flatten().any(|&(s, _)| s == segment)
            && !head.pending.contains_key(&segment)
    }

    /// Returns segment `segment` to the free list: the store has proved that no committed
    /// record and no reader references it. Its bytes are overwritten by later appends.
    pub fn free_segment(&self, segment: u32) {
        let mut head = self.head.lock();
        assert!(
            segment < head.next_unclaimed,
            "segment {segment} of {} is freed but was never claimed",
            self.device.name()
        );
        assert!(
            !head.open.iter().flatten().any(|&(s, _)| s == segment)
                && !head.pending.contains_key(&segment),
            "segment {segment} of {} is freed while open or reserved",
            self.device.name()
        );
        head.free.insert(segment);
    }

    /// Whether segment `segment` is free.
    pub fn is_free(&self, segment: u32) -> bool {
        self.head.lock().free.contains(&segment)
    }

    /// Reserves `bytes` (a needle) at the head of `stream`; takes a free segment, or claims a
    /// new one first, when needed. The reservation is held until the record referencing the
    /// needle is committed or the write abandoned.
    ///
    /// Errors: [`Error::NoSpace`] when no segment is free (for [`Stream::Client`]: when taking
    /// one would dip into the reserve); metadata errors from the claim.
    pub fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        stream: Stream,
        claims: &dyn SegmentClaims,
    ) -> Result<Reservation> {
        assert!(
            bytes <= self.layout.segment_size_bytes,
            "needle larger than a segment"
        );
        let s = stream as usize;
        let mut head = self.head.lock();
        if head.sealed {
            return Err(Error::Closed);
        }
        let (segment, offset) = match head.open[s] {
            Some((segment, used)) if used + bytes <= self.layout.segment_size_bytes => {
                head.open[s] = Some((segment, used + bytes));
                (segment, self.layout.segment_offset(segment) + used)
            }
            _ => {
                let free = head.free_count(self.layout.segment_count);
                let keep = match stream {
                    Stream::Client => self.reserve_segments,
                    Stream::Relocation => 0,
                };
                if free <= keep {
                    return Err(Error::NoSpace {
                        detail: format!(
                            "data device {} has {free} free segments and keeps {} for garbage collection and rebuild",
                            self.device.name(),
                            self.reserve_segments
                        ),
                    });
                }
                let segment = match head.free.pop_first() {
                    Some(segment) => segment,
                    None => {
                        let segment = head.next_unclaimed;
                        claims.claim(self.slot, segment + 1)?;
                        head.next_unclaimed = segment + 1;
                        segment
                    }
                };
                head.open[s] = Some((segment, bytes));
                (segment, self.layout.segment_offset(segment))
            }
        };
        *head.pending.entry(segment).or_default() += 1;
        Ok(Reservation {
            device: self.clone(),
            segment,
            offset,
        })
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
        let data = Arc::new(DataDevice::new(
            dev,
            0,
            DataLayout::new(size, 1 << 20),
            HeadState::default(),
            0,
        ));
        let claims = Claims(AtomicU32::new(0));
        let id = ChunkId {
            object_id: 0xabc,
            index: 3,
        };
        let mut buf = AlignedBuf::new(needle_bytes(10_000));
        buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + 10_000].fill(0x5a);
        seal_needle(&mut buf, id, 10_000);
        let offset = data
            .reserve(buf.len() as u64, Stream::Client, &claims)
            .unwrap()
            .offset;
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
        let data = Arc::new(DataDevice::new(
            dev,
            0,
            DataLayout::new(size, 64 << 10),
            HeadState::default(),
            0,
        ));
        let claims = Claims(AtomicU32::new(0));
        let reservations: Vec<Reservation> = (0..4)
            .map(|_| data.reserve(32 << 10, Stream::Client, &claims).unwrap())
            .collect();
        let offsets: Vec<u64> = reservations.iter().map(|r| r.offset).collect();
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
            data.reserve(4096, Stream::Client, &claims),
            Err(Error::NoSpace { .. })
        ));
        // A freed segment is reused, but only once idle: not open, no reservation held.
        assert!(!data.segment_idle(0), "reservations are held");
        drop(reservations);
        assert!(
            data.segment_idle(0) && !data.segment_idle(1),
            "segment 1 is open"
        );
        data.free_segment(0);
        assert_eq!(data.free_segments(), 1);
        let again = data.reserve(4096, Stream::Client, &claims).unwrap();
        assert_eq!(again.offset, 1 << 20);
    }

    #[test]
    fn a_clean_close_resumes_in_the_open_segment() {
        let size = 8 << 20;
        let (backend, _c) = FaultBackend::new(size);
        let dev = Arc::new(Device::with_backend("hdd0", size, Box::new(backend)));
        let claims = Claims(AtomicU32::new(0));
        let layout = DataLayout::new(size, 1 << 20);
        let data = Arc::new(DataDevice::new(
            dev.clone(),
            0,
            layout,
            HeadState::default(),
            0,
        ));
        let first = data.reserve(8192, Stream::Client, &claims).unwrap().offset;
        let state = data.seal();
        assert_eq!(
            state,
            HeadState {
                next_unclaimed: 1,
                open: Some((0, 8192))
            }
        );
        assert!(matches!(
            data.reserve(4096, Stream::Client, &claims),
            Err(Error::Closed)
        ));
        assert_eq!(HeadState::decode(&state.encode()), Some(state));
        let data = Arc::new(DataDevice::new(dev, 0, layout, state, 0));
        let next = data.reserve(4096, Stream::Client, &claims).unwrap();
        assert_eq!(next.offset, first + 8192);
    }
}
