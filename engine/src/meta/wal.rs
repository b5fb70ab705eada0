//! The metadata write-ahead log: a ring of 4 KiB-aligned frames on the SSD.
//!
//! A frame holds one or more batches (group commit) and is written with one durable write (two
//! when it wraps around the ring's end). Each frame header carries its logical sequence number
//! (LSN: the byte position in the endless log) and two checksums seeded with the store's salt, so
//! replay stops at the first frame that is torn, stale (from an earlier lap of the ring) or from
//! another store. Layout in `engine/FORMAT.md` ("Write-ahead log").
//!
//! Must not import `schema`, `volume`, `store` or `segment`.

use crate::device::{align_up, AlignedBuf, BLOCK_SIZE};
use crate::error::{Error, Result};

use super::codec::{Decoder, Encoder};
use super::index::{Batch, Op};
use super::mirror::MetaIo;

/// Magic at the start of every frame ("HWAL", little-endian).
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"HWAL");
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 64;

/// Where the ring lives on its device.
#[derive(Clone, Copy, Debug)]
pub struct WalRegion {
    /// Byte offset of the ring on the device (4 KiB-aligned).
    pub offset: u64,
    /// Ring size in bytes (a multiple of 4 KiB).
    pub size_bytes: u64,
    /// Checksum seed (derived from the store UUID).
    pub salt: u32,
}

impl WalRegion {
    /// Largest frame accepted: a quarter of the ring, so a frame always fits beside the live part.
    pub fn max_frame_bytes(&self) -> u64 {
        self.size_bytes / 4
    }

    /// Writes `buf` at logical position `lsn`, splitting at the ring's end; durable on return.
    fn write(&self, device: &dyn MetaIo, lsn: u64, buf: AlignedBuf) -> Result<()> {
        let pos = lsn % self.size_bytes;
        let len = buf.len() as u64;
        if pos + len <= self.size_bytes {
            return device.write_durable(vec![(buf, self.offset + pos)]);
        }
        let first = (self.size_bytes - pos) as usize;
        let mut head = AlignedBuf::new(first);
        head.copy_from_slice(&buf[..first]);
        let mut tail = AlignedBuf::new(buf.len() - first);
        tail.copy_from_slice(&buf[first..]);
        device.write_durable(vec![(head, self.offset + pos), (tail, self.offset)])
    }

    /// Reads `len` bytes (4 KiB multiple) at logical position `lsn`.
    fn read(&self, device: &dyn MetaIo, lsn: u64, len: usize) -> Result<AlignedBuf> {
        let pos = lsn % self.size_bytes;
        if pos + len as u64 <= self.size_bytes {
            return device.read_at(AlignedBuf::new(len), self.offset + pos);
        }
        let first = (self.size_bytes - pos) as usize;
        let head = device.read_at(AlignedBuf::new(first), self.offset + pos)?;
        let tail = device.read_at(AlignedBuf::new(len - first), self.offset)?;
        let mut out = AlignedBuf::new(len);
        out[..first].copy_from_slice(&head);
        out[first..].copy_from_slice(&tail);
        Ok(out)
    }
}

/// Bytes of the ring replay reads per device read: frames are mostly one 4 KiB block each, and
/// one read per frame would make replaying a large log take minutes.
const REPLAY_READ_AHEAD_BYTES: usize = 4 << 20;

/// The part of the ring replay last read: `buf` holds the bytes from logical position `lsn`
/// (nothing before the first read).
struct ReadWindow {
    lsn: u64,
    buf: Option<AlignedBuf>,
}

impl ReadWindow {
    /// `len` bytes (4 KiB multiple) at `lsn`, read ahead [`REPLAY_READ_AHEAD_BYTES`] at a time.
    fn get(
        &mut self,
        device: &dyn MetaIo,
        region: &WalRegion,
        lsn: u64,
        len: usize,
    ) -> Result<&[u8]> {
        let end = self.lsn + self.buf.as_ref().map_or(0, |b| b.len() as u64);
        if self.buf.is_none() || lsn < self.lsn || lsn + len as u64 > end {
            let n = len
                .max(REPLAY_READ_AHEAD_BYTES)
                .min(region.size_bytes as usize);
            self.buf = Some(region.read(device, lsn, n)?);
            self.lsn = lsn;
        }
        let at = (lsn - self.lsn) as usize;
        let buf = self.buf.as_ref().expect("read above");
        Ok(&buf[at..at + len])
    }
}

/// Encodes batches into one frame at `lsn`; returns the 4 KiB-padded buffer.
pub fn encode_frame(region: &WalRegion, lsn: u64, batches: &[&Batch]) -> AlignedBuf {
    let payload: usize = batches.iter().map(|b| b.encoded_len()).sum();
    encode_frame_into(
        region,
        lsn,
        batches,
        AlignedBuf::new(frame_bytes(payload) as usize),
    )
}

/// As [`encode_frame`], into `buf` (zeroed, of the frame's size).
pub fn encode_frame_into(
    region: &WalRegion,
    lsn: u64,
    batches: &[&Batch],
    mut buf: AlignedBuf,
) -> AlignedBuf {
    let mut payload = Encoder::new();
    for batch in batches {
        payload.u32(batch.ops.len() as u32);
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    payload.u8(1).bytes(k).bytes(v);
                }
                Op::Delete(k) => {
                    payload.u8(2).bytes(k);
                }
            }
        }
    }
    let payload = payload.finish();
    debug_assert_eq!(buf.len(), align_up(FRAME_HEADER_BYTES + payload.len()));
    let h = &mut buf[..];
    h[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&lsn.to_le_bytes());
    h[16..20].copy_from_slice(&(batches.len() as u32).to_le_bytes());
    let payload_crc = crc32c::crc32c_append(region.salt, &payload);
    h[20..24].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c_append(region.salt, &h[..60]);
    h[60..64].copy_from_slice(&header_crc.to_le_bytes());
    h[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload.len()].copy_from_slice(&payload);
    buf
}

/// Bytes a frame with `payload_bytes` of batches occupies in the ring.
pub fn frame_bytes(payload_bytes: usize) -> u64 {
    align_up(FRAME_HEADER_BYTES + payload_bytes) as u64
}

/// Appends frames to the ring. Not thread-safe: the group-commit leader owns it.
pub struct WalWriter {
    region: WalRegion,
    /// Next logical position to write.
    pub tail_lsn: u64,
    /// Replay starts here (the last checkpoint's position); the ring must never overwrite it.
    pub checkpoint_lsn: u64,
}

impl WalWriter {
    /// A writer continuing at `tail_lsn`, with the live log starting at `checkpoint_lsn`.
    pub fn new(region: WalRegion, checkpoint_lsn: u64, tail_lsn: u64) -> Self {
        WalWriter {
            region,
            tail_lsn,
            checkpoint_lsn,
        }
    }

    /// Bytes of log written since the last checkpoint.
    pub fn live_bytes(&self) -> u64 {
        self.tail_lsn - self.checkpoint_lsn
    }

    /// Whether a frame of `bytes` fits without overwriting the live log.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.live_bytes() + bytes <= self.region.size_bytes
    }

    /// Writes one frame of `batches` durably and advances the tail.
    ///
    /// Errors: [`Error::MetadataUnavailable`] if the frame is larger than a quarter of the ring
    /// or the ring is full (the caller checkpoints first); device errors as they come.
    pub fn append(&mut self, device: &dyn MetaIo, batches: &[&Batch]) -> Result<()> {
        let payload: usize = batches.iter().map(|b| b.encoded_len()).sum();
        let bytes = frame_bytes(payload);
        if bytes > self.region.max_frame_bytes() {
            return Err(Error::MetadataUnavailable {
                detail: format!(
                    "a metadata record of {bytes} bytes exceeds the WAL frame limit of {} bytes",
                    self.region.max_frame_bytes()
                ),
            });
        }
        if !self.has_room(bytes) {
            return Err(Error::MetadataUnavailable {
                detail: "write-ahead log is full; checkpoint first".into(),
            });
        }
        let frame = encode_frame_into(
            &self.region,
            self.tail_lsn,
            batches,
            device.buffer(bytes as usize),
        );
        debug_assert_eq!(frame.len() as u64, bytes);
        self.region.write(device, self.tail_lsn, frame)?;
        self.tail_lsn += bytes;
        Ok(())
    }
}

/// Replays frames from `from_lsn`, calling `apply` for each batch in order; returns the LSN
/// after the last valid frame (where the writer continues).
///
/// Stops silently at the first frame that is absent, torn, stale or foreign: that frame was never
/// acknowledged. Errors only on device read errors or an undecodable payload whose checksum
/// matched (a bug or a collision, reported as [`Error::Corrupt`]).
pub fn replay(
    device: &dyn MetaIo,
    region: &WalRegion,
    from_lsn: u64,
    mut apply: impl FnMut(Batch),
) -> Result<u64> {
    let mut window = ReadWindow {
        lsn: from_lsn,
        buf: None,
    };
    let mut lsn = from_lsn;
    loop {
        if lsn - from_lsn + BLOCK_SIZE as u64 > region.size_bytes {
            return Ok(lsn);
        }
        let first = window.get(device, region, lsn, BLOCK_SIZE)?;
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        if u32_at(first, 0) != FRAME_MAGIC
            || u32_at(first, 60) != crc32c::crc32c_append(region.salt, &first[..60])
            || u64::from_le_bytes(first[8..16].try_into().unwrap()) != lsn
        {
            return Ok(lsn);
        }
        let payload_len = u32_at(first, 4) as usize;
        let bytes = frame_bytes(payload_len);
        if bytes > region.max_frame_bytes() || lsn - from_lsn + bytes > region.size_bytes {
            return Ok(lsn);
        }
        let frame = window.get(device, region, lsn, bytes as usize)?;
        let payload = &frame[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_len];
        if crc32c::crc32c_append(region.salt, payload) != u32_at(frame, 20) {
            return Ok(lsn);
        }
        let corrupt = |detail: String| Error::Corrupt {
            device: device.name().to_string(),
            offset: region.offset + lsn % region.size_bytes,
            detail,
        };
        let batch_count = u32_at(frame, 16);
        let mut d = Decoder::new(payload);
        for _ in 0..batch_count {
            let batch = decode_batch(&mut d)
                .map_err(|e| corrupt(format!("WAL frame at LSN {lsn}: {e}")))?;
            apply(batch);
        }
        lsn += bytes;
    }
}

fn decode_batch(d: &mut Decoder<'_>) -> Result<Batch, super::codec::DecodeError> {
    let n = d.u32()?;
    let mut batch = Batch::new();
    for _ in 0..n {
        match d.u8()? {
            1 => {
                let k = d.bytes()?.to_vec();
                let v = d.bytes()?.to_vec();
                batch.put(k, v);
            }
            2 => {
                let k = d.bytes()?.to_vec();
                batch.delete(k);
            }
            other => {
                return Err(super::codec::DecodeError(format!(
                    "unknown op kind {other}"
                )))
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::FaultBackend;
    use crate::device::Device;

    fn batch(i: u32) -> Batch {
        let mut b = Batch::new();
        b.put(
            format!("key{i:05}").into_bytes(),
            vec![i as u8; (i as usize * 37) % 3000],
        );
        if i.is_multiple_of(3) {
            b.delete(format!("key{:05}", i / 2).into_bytes());
        }
        b
    }

    #[test]
    fn frames_wrap_and_replay_in_order() {
        let (backend, _c) = FaultBackend::new(2 << 20);
        let dev = Device::with_backend("wal", 2 << 20, Box::new(backend));
        let region = WalRegion {
            offset: 1 << 20,
            size_bytes: 64 * 1024,
            salt: 7,
        };
        let mut w = WalWriter::new(region, 0, 0);
        let mut all = Vec::new();
        for i in 0..200u32 {
            let b = batch(i);
            if !w.has_room(frame_bytes(b.encoded_len())) {
                // Pretend a checkpoint captured everything so far.
                w.checkpoint_lsn = w.tail_lsn;
                all.clear();
            }
            w.append(&dev, &[&b]).unwrap();
            all.push(b);
        }
        let mut seen = Vec::new();
        let end = replay(&dev, &region, w.checkpoint_lsn, |b| seen.push(b)).unwrap();
        assert_eq!(end, w.tail_lsn);
        assert_eq!(seen, all);
        // Another store's salt sees nothing.
        let other = WalRegion { salt: 8, ..region };
        assert_eq!(
            replay(&dev, &other, w.checkpoint_lsn, |_| panic!("foreign frame")).unwrap(),
            w.checkpoint_lsn
        );
    }

    #[test]
    fn torn_frame_ends_replay() {
        let (backend, control) = FaultBackend::new(2 << 20);
        let dev = Device::with_backend("wal", 2 << 20, Box::new(backend));
        let region = WalRegion {
            offset: 1 << 20,
            size_bytes: 256 * 1024,
            salt: 1,
        };
        let mut w = WalWriter::new(region, 0, 0);
        let mut big = Batch::new();
        big.put(b"big".to_vec(), vec![9; 20_000]);
        w.append(&dev, &[&batch(1)]).unwrap();
        control.power_cut_after(0, true);
        assert!(w.append(&dev, &[&big]).is_err());
        let (backend, _c) = FaultBackend::from_image(control.durable_image());
        let dev = Device::with_backend("wal", 2 << 20, Box::new(backend));
        let mut seen = Vec::new();
        replay(&dev, &region, 0, |b| seen.push(b)).unwrap();
        assert_eq!(seen, vec![batch(1)]);
    }
}
