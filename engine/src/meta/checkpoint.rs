//! Checkpoints of the index and the anchor that points at the newest one.
//!
//! A checkpoint is the whole index serialised into one of two slots on the SSD; the anchor (two
//! alternating 4 KiB blocks, highest valid generation wins) names the slot, its length and crc32c,
//! and the WAL position replay starts from. Writing the new checkpoint into the slot the anchor
//! does not name, syncing, then writing the anchor, makes the switch atomic: a crash at any point
//! leaves the old anchor and old checkpoint intact. Layout in `engine/FORMAT.md`.

use crate::device::{align_up, AlignedBuf, BLOCK_SIZE};
use crate::error::{Error, Result};

use super::codec::{Decoder, Encoder};
use super::index::{Index, MemIndex};
use super::mirror::{MetaIo, PIECE_BYTES};

/// Magic of an anchor block.
pub const ANCHOR_MAGIC: &[u8; 8] = b"HANCHOR1";
/// Magic at the start of a checkpoint payload.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"HCKPT001";
/// Byte offsets of the two anchor blocks.
pub const ANCHOR_OFFSETS: [u64; 2] = [4096, 8192];

/// The anchor: which checkpoint is current and where WAL replay starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Increases by one per checkpoint; the block with the highest valid generation wins.
    pub generation: u64,
    /// Checkpoint slot (0 or 1) holding the index.
    pub slot: u32,
    /// Bytes of checkpoint payload (0: empty index).
    pub checkpoint_bytes: u64,
    /// crc32c of the payload.
    pub checkpoint_crc: u32,
    /// WAL logical position replay starts from.
    pub replay_lsn: u64,
}

impl Anchor {
    fn encode(&self) -> AlignedBuf {
        let mut buf = AlignedBuf::new(BLOCK_SIZE);
        let b = &mut buf[..];
        b[0..8].copy_from_slice(ANCHOR_MAGIC);
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..20].copy_from_slice(&self.slot.to_le_bytes());
        b[24..32].copy_from_slice(&self.checkpoint_bytes.to_le_bytes());
        b[32..36].copy_from_slice(&self.checkpoint_crc.to_le_bytes());
        b[40..48].copy_from_slice(&self.replay_lsn.to_le_bytes());
        let crc = crc32c::crc32c(&b[..BLOCK_SIZE - 4]);
        b[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    fn decode(b: &[u8]) -> Option<Anchor> {
        let crc = u32::from_le_bytes(b[BLOCK_SIZE - 4..].try_into().unwrap());
        if &b[0..8] != ANCHOR_MAGIC || crc != crc32c::crc32c(&b[..BLOCK_SIZE - 4]) {
            return None;
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        Some(Anchor {
            generation: u64_at(8),
            slot: u32::from_le_bytes(b[16..20].try_into().unwrap()),
            checkpoint_bytes: u64_at(24),
            checkpoint_crc: u32::from_le_bytes(b[32..36].try_into().unwrap()),
            replay_lsn: u64_at(40),
        })
    }

    /// Writes the anchor into the block for its generation, durably.
    pub fn write(&self, device: &dyn MetaIo) -> Result<()> {
        device.write_durable(vec![(
            self.encode(),
            ANCHOR_OFFSETS[(self.generation % 2) as usize],
        )])
    }

    /// Reads both anchor blocks and returns the valid one with the highest generation.
    ///
    /// Errors: [`Error::Corrupt`] if neither is valid (the metadata cannot be trusted).
    pub fn read(device: &dyn MetaIo) -> Result<Anchor> {
        let mut best: Option<Anchor> = None;
        for offset in ANCHOR_OFFSETS {
            let buf = device.read_at(AlignedBuf::new(BLOCK_SIZE), offset)?;
            if let Some(a) = Anchor::decode(&buf) {
                if best.is_none_or(|b| a.generation > b.generation) {
                    best = Some(a);
                }
            }
        }
        best.ok_or_else(|| Error::Corrupt {
            device: device.name().to_string(),
            offset: ANCHOR_OFFSETS[0],
            detail: "no valid metadata anchor block".into(),
        })
    }
}

/// Where the two checkpoint slots live.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointSlots {
    /// Byte offset of slot 0; slot 1 follows it.
    pub offset: u64,
    /// Size of each slot in bytes.
    pub slot_bytes: u64,
}

impl CheckpointSlots {
    /// Byte offset of `slot` on the device.
    pub fn slot_offset(&self, slot: u32) -> u64 {
        self.offset + slot as u64 * self.slot_bytes
    }

    /// Serialises `index` into `slot`, durably; returns (bytes, crc32c).
    ///
    /// Errors: [`Error::NoSpace`] if the index no longer fits a slot.
    pub fn write(&self, device: &dyn MetaIo, slot: u32, index: &MemIndex) -> Result<(u64, u32)> {
        let mut enc = Encoder::new();
        enc.buf.extend_from_slice(CHECKPOINT_MAGIC);
        enc.u64(index.len() as u64);
        index.for_each(|k, v| {
            enc.bytes(k).bytes(v);
        });
        let payload = enc.finish();
        if align_up(payload.len()) as u64 > self.slot_bytes {
            return Err(Error::NoSpace {
                detail: format!(
                    "metadata checkpoint of {} bytes exceeds the slot size of {} bytes on {}",
                    payload.len(),
                    self.slot_bytes,
                    device.name()
                ),
            });
        }
        let crc = crc32c::crc32c(&payload);
        let base = self.slot_offset(slot);
        let pieces = payload
            .chunks(PIECE_BYTES)
            .enumerate()
            .map(|(i, piece)| {
                let mut buf = AlignedBuf::new(piece.len());
                buf[..piece.len()].copy_from_slice(piece);
                (buf, base + (i * PIECE_BYTES) as u64)
            })
            .collect();
        device.write_durable(pieces)?;
        Ok((payload.len() as u64, crc))
    }

    /// Loads the checkpoint the anchor names into a fresh index.
    ///
    /// Errors: [`Error::Corrupt`] on a checksum mismatch or a malformed payload.
    pub fn read(&self, device: &dyn MetaIo, anchor: &Anchor) -> Result<MemIndex> {
        let mut index = MemIndex::new();
        if anchor.checkpoint_bytes == 0 {
            return Ok(index);
        }
        let base = self.slot_offset(anchor.slot);
        let corrupt = |detail: String| Error::Corrupt {
            device: device.name().to_string(),
            offset: base,
            detail,
        };
        if anchor.checkpoint_bytes > self.slot_bytes {
            return Err(corrupt(format!(
                "checkpoint length {} exceeds its slot",
                anchor.checkpoint_bytes
            )));
        }
        let len = anchor.checkpoint_bytes as usize;
        let mut payload = Vec::with_capacity(len);
        let mut done = 0usize;
        while done < len {
            let piece = (len - done).min(PIECE_BYTES);
            let buf = device.read_at(AlignedBuf::new(piece), base + done as u64)?;
            payload.extend_from_slice(&buf[..piece]);
            done += piece;
        }
        if crc32c::crc32c(&payload) != anchor.checkpoint_crc {
            return Err(corrupt("checkpoint checksum mismatch".into()));
        }
        if &payload[..8] != CHECKPOINT_MAGIC {
            return Err(corrupt("checkpoint magic missing".into()));
        }
        let mut d = Decoder::new(&payload[8..]);
        let count = d.u64().map_err(|e| corrupt(e.0))?;
        for _ in 0..count {
            let k = d.bytes().map_err(|e| corrupt(e.0))?.to_vec();
            let v = d.bytes().map_err(|e| corrupt(e.0))?.to_vec();
            index.insert(k, v);
        }
        Ok(index)
    }
}
