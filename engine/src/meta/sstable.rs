//! Sorted string tables (SSTables): the immutable, sorted files of the log-structured index,
//! written once into an extent of the metadata SSDs and then only read.
//!
//! Owns the table format (`engine/FORMAT.md`, "SSTable"): data blocks of key-prefix-compressed
//! entries with restart points, each with its crc32c; a block index (last key, offset, length of
//! every block); a bloom filter hashed with xxh3; a footer with the format version. An entry is
//! a key, a sequence number and either a value or a tombstone; within a table entries sort by key
//! ascending, then sequence number descending, so the newest version of a key comes first and a
//! read at a snapshot takes the first version at or below the snapshot's sequence number.
//!
//! Reads go through the device layer ([`MetaIo`]), not memmap2: the SSDs are raw block devices
//! read with O_DIRECT, every block is verified when read from the device, and a read error can
//! then fail over to a mirror copy. A table keeps its block index and bloom filter in memory;
//! data blocks are read on demand into a shared [`BlockCache`] with a RAM budget, and scans read
//! ahead [`READ_AHEAD_BYTES`] per device read.
//!
//! Must not import `schema`, `volume`, `store` or `segment`.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::{align_up, AlignedBuf, BLOCK_SIZE};
use crate::error::{Error, Result};

use super::mirror::MetaIo;

/// Magic at the start of a table footer.
pub const TABLE_MAGIC: &[u8; 8] = b"HSST0001";
/// Table format version written by this build.
pub const TABLE_VERSION: u32 = 1;
/// Bytes of the footer, the last bytes of the table's 4 KiB-padded extent.
pub const FOOTER_BYTES: usize = 64;
/// Entries between restart points in a data block.
const RESTART_INTERVAL: usize = 16;
/// Entry kinds.
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// One version of a key: `None` value is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Sequence number of the write (higher is newer).
    pub seq: u64,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A bloom filter over keys: `k` probes by double hashing of xxh3-64 (Kirsch–Mitzenmacher).
#[derive(Clone, Debug)]
struct Bloom {
    probes: u8,
    bits: Vec<u8>,
}

impl Bloom {
    fn build(hashes: &[u64], bits_per_key: u32) -> Bloom {
        let nbits = (hashes.len() as u64 * bits_per_key as u64).max(64);
        let nbytes = nbits.div_ceil(8) as usize;
        let nbits = nbytes as u64 * 8;
        // k = bits_per_key * ln 2 minimises false positives (~1% at 10 bits per key).
        let probes = ((bits_per_key as f64 * 0.69) as u8).clamp(1, 30);
        let mut bits = vec![0u8; nbytes];
        for &h in hashes {
            let (mut x, delta) = (h as u32 as u64, h >> 32 | 1);
            for _ in 0..probes {
                let bit = x % nbits;
                bits[(bit / 8) as usize] |= 1 << (bit % 8);
                x = x.wrapping_add(delta);
            }
        }
        Bloom { probes, bits }
    }

    fn may_contain(&self, key: &[u8]) -> bool {
        let nbits = self.bits.len() as u64 * 8;
        if nbits == 0 {
            return true;
        }
        let h = xxhash_rust::xxh3::xxh3_64(key);
        let (mut x, delta) = (h as u32 as u64, h >> 32 | 1);
        for _ in 0..self.probes {
            let bit = x % nbits;
            if self.bits[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
                return false;
            }
            x = x.wrapping_add(delta);
        }
        true
    }
}

/// Builds a table in memory from entries added in order.
pub struct TableBuilder {
    block_target_bytes: usize,
    bits_per_key: u32,
    out: Vec<u8>,
    block: Vec<u8>,
    restarts: Vec<u32>,
    in_block: usize,
    last_key: Vec<u8>,
    last_seq: u64,
    first_key: Option<Vec<u8>>,
    index: Vec<(Vec<u8>, u64, u32)>,
    hashes: Vec<u64>,
    entries: u64,
    max_seq: u64,
}

impl TableBuilder {
    /// A builder cutting data blocks at about `block_target_bytes`, with a bloom filter of
    /// `bits_per_key` bits per distinct key (10 gives ~1% false positives).
    pub fn new(block_target_bytes: usize, bits_per_key: u32) -> TableBuilder {
        TableBuilder {
            block_target_bytes: block_target_bytes.max(256),
            bits_per_key,
            out: Vec::new(),
            block: Vec::new(),
            restarts: Vec::new(),
            in_block: 0,
            last_key: Vec::new(),
            last_seq: 0,
            first_key: None,
            index: Vec::new(),
            hashes: Vec::new(),
            entries: 0,
            max_seq: 0,
        }
    }

    /// Appends one entry. Entries must come in (key ascending, seq descending) order.
    ///
    /// Errors: [`Error::InvalidArgument`] for an entry out of order (a bug in the caller).
    pub fn add(&mut self, key: &[u8], seq: u64, value: Option<&[u8]>) -> Result<()> {
        if self.first_key.is_some() {
            let ordered = match key.cmp(&self.last_key) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => seq < self.last_seq,
                std::cmp::Ordering::Less => false,
            };
            if !ordered {
                return Err(Error::InvalidArgument(format!(
                    "SSTable entry (key {:?}, seq {seq}) is out of order",
                    String::from_utf8_lossy(key)
                )));
            }
        }
        if self.first_key.is_none() {
            self.first_key = Some(key.to_vec());
        }
        if self.last_key.as_slice() != key || self.entries == 0 {
            self.hashes.push(xxhash_rust::xxh3::xxh3_64(key));
        }
        let shared = if self.in_block.is_multiple_of(RESTART_INTERVAL) {
            self.restarts.push(self.block.len() as u32);
            0
        } else {
            key.iter()
                .zip(&self.last_key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (key.len() - shared) as u64);
        put_varint(&mut self.block, value.map_or(0, |v| v.len()) as u64);
        self.block.push(if value.is_some() {
            KIND_PUT
        } else {
            KIND_DELETE
        });
        put_varint(&mut self.block, seq);
        self.block.extend_from_slice(&key[shared..]);
        if let Some(v) = value {
            self.block.extend_from_slice(v);
        }
        self.in_block += 1;
        self.entries += 1;
        self.max_seq = self.max_seq.max(seq);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.last_seq = seq;
        if self.block.len() >= self.block_target_bytes {
            self.finish_block();
        }
        Ok(())
    }

    fn finish_block(&mut self) {
        if self.in_block == 0 {
            return;
        }
        for r in &self.restarts {
            self.block.extend_from_slice(&r.to_le_bytes());
        }
        self.block
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c(&self.block);
        self.block.extend_from_slice(&crc.to_le_bytes());
        self.index.push((
            self.last_key.clone(),
            self.out.len() as u64,
            self.block.len() as u32,
        ));
        self.out.append(&mut self.block);
        self.restarts.clear();
        self.in_block = 0;
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Finishes the table: the bytes to write, padded to a multiple of 4 KiB, footer last.
    pub fn finish(mut self) -> Vec<u8> {
        self.finish_block();
        let index_offset = self.out.len() as u64;
        let mut index = Vec::new();
        let first = self.first_key.take().unwrap_or_default();
        put_varint(&mut index, first.len() as u64);
        index.extend_from_slice(&first);
        put_varint(&mut index, self.index.len() as u64);
        for (key, offset, len) in &self.index {
            put_varint(&mut index, key.len() as u64);
            index.extend_from_slice(key);
            put_varint(&mut index, *offset);
            put_varint(&mut index, *len as u64);
        }
        let crc = crc32c::crc32c(&index);
        index.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&index);

        let bloom_offset = self.out.len() as u64;
        let bloom = Bloom::build(&self.hashes, self.bits_per_key);
        let mut filter = vec![bloom.probes];
        filter.extend_from_slice(&bloom.bits);
        let crc = crc32c::crc32c(&filter);
        filter.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&filter);

        let total = align_up(self.out.len() + FOOTER_BYTES);
        self.out.resize(total - FOOTER_BYTES, 0);
        let mut footer = [0u8; FOOTER_BYTES];
        footer[0..8].copy_from_slice(TABLE_MAGIC);
        footer[8..12].copy_from_slice(&TABLE_VERSION.to_le_bytes());
        footer[16..24].copy_from_slice(&index_offset.to_le_bytes());
        footer[24..28].copy_from_slice(&(index.len() as u32).to_le_bytes());
        footer[28..32].copy_from_slice(&(filter.len() as u32).to_le_bytes());
        footer[32..40].copy_from_slice(&bloom_offset.to_le_bytes());
        footer[40..48].copy_from_slice(&self.entries.to_le_bytes());
        footer[48..56].copy_from_slice(&self.max_seq.to_le_bytes());
        let crc = crc32c::crc32c(&footer[..60]);
        footer[60..64].copy_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&footer);
        debug_assert_eq!(self.out.len() % BLOCK_SIZE, 0);
        self.out
    }
}

struct IndexEntry {
    last_key: Vec<u8>,
    offset: u64,
    len: u32,
}

/// An open table: its block index and bloom filter in memory, data blocks read on demand.
pub struct Table {
    io: Arc<dyn MetaIo>,
    /// Unique table ID (never reused), the block cache's key; with `cache`.
    cached: Option<(u64, Arc<BlockCache>)>,
    /// Byte offset of the table's extent on the metadata device.
    offset: u64,
    first_key: Vec<u8>,
    index: Vec<IndexEntry>,
    bloom: Bloom,
    entries: u64,
    max_seq: u64,
    len_bytes: u64,
}

impl Table {
    /// Opens the table stored in `[offset, offset + len_bytes)` of `io`: reads and verifies the
    /// footer, the block index and the bloom filter.
    ///
    /// Errors: [`Error::Corrupt`] naming the device and offset for any checksum, magic or bound
    /// that does not verify; [`Error::Incompatible`] for a newer format version; device errors.
    pub fn open(io: Arc<dyn MetaIo>, offset: u64, len_bytes: u64) -> Result<Table> {
        let corrupt = |at: u64, detail: String| Error::Corrupt {
            device: io.name().to_string(),
            offset: at,
            detail,
        };
        if len_bytes < BLOCK_SIZE as u64 || !len_bytes.is_multiple_of(BLOCK_SIZE as u64) {
            return Err(corrupt(
                offset,
                format!("table length {len_bytes} is not a positive multiple of 4 KiB"),
            ));
        }
        let tail = io.read_at(
            AlignedBuf::new(BLOCK_SIZE),
            offset + len_bytes - BLOCK_SIZE as u64,
        )?;
        let f = &tail[BLOCK_SIZE - FOOTER_BYTES..];
        let footer_at = offset + len_bytes - FOOTER_BYTES as u64;
        if &f[0..8] != TABLE_MAGIC
            || u32::from_le_bytes(f[60..64].try_into().unwrap()) != crc32c::crc32c(&f[..60])
        {
            return Err(corrupt(footer_at, "SSTable footer does not verify".into()));
        }
        let version = u32::from_le_bytes(f[8..12].try_into().unwrap());
        if version != TABLE_VERSION {
            return Err(Error::Incompatible {
                device: io.name().to_string(),
                detail: format!("SSTable at offset {offset} has format version {version}; this build reads {TABLE_VERSION}"),
            });
        }
        let u64_at = |o: usize| u64::from_le_bytes(f[o..o + 8].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
        let (index_offset, index_len) = (u64_at(16), u32_at(24) as u64);
        let (bloom_offset, bloom_len) = (u64_at(32), u32_at(28) as u64);
        let body = len_bytes - FOOTER_BYTES as u64;
        if index_offset + index_len > body
            || bloom_offset + bloom_len > body
            || index_len < 4
            || bloom_len < 5
        {
            return Err(corrupt(
                footer_at,
                "SSTable footer points outside the table".into(),
            ));
        }
        let meta = read_span(
            &*io,
            offset + index_offset,
            (bloom_offset + bloom_len - index_offset) as usize,
        )?;
        let index_bytes = &meta[..index_len as usize];
        let bloom_bytes = &meta[(bloom_offset - index_offset) as usize..];
        let index_body = verified(index_bytes).ok_or_else(|| {
            corrupt(
                offset + index_offset,
                "SSTable block index checksum mismatch".into(),
            )
        })?;
        let bloom_body = verified(bloom_bytes).ok_or_else(|| {
            corrupt(
                offset + bloom_offset,
                "SSTable bloom filter checksum mismatch".into(),
            )
        })?;
        let bad_index = || {
            corrupt(
                offset + index_offset,
                "SSTable block index is malformed".into(),
            )
        };
        let mut pos = 0;
        let first_len = get_varint(index_body, &mut pos).ok_or_else(bad_index)? as usize;
        let first_key = index_body
            .get(pos..pos + first_len)
            .ok_or_else(bad_index)?
            .to_vec();
        pos += first_len;
        let blocks = get_varint(index_body, &mut pos).ok_or_else(bad_index)?;
        let mut index = Vec::with_capacity(blocks.min(1 << 20) as usize);
        for _ in 0..blocks {
            let klen = get_varint(index_body, &mut pos).ok_or_else(bad_index)? as usize;
            let last_key = index_body
                .get(pos..pos + klen)
                .ok_or_else(bad_index)?
                .to_vec();
            pos += klen;
            let block_offset = get_varint(index_body, &mut pos).ok_or_else(bad_index)?;
            let len = get_varint(index_body, &mut pos).ok_or_else(bad_index)?;
            if block_offset + len > index_offset || len < 8 {
                return Err(bad_index());
            }
            index.push(IndexEntry {
                last_key,
                offset: block_offset,
                len: len as u32,
            });
        }
        Ok(Table {
            cached: None,
            offset,
            first_key,
            index,
            bloom: Bloom {
                probes: bloom_body[0],
                bits: bloom_body[1..].to_vec(),
            },
            entries: u64_at(40),
            max_seq: u64_at(48),
            len_bytes,
            io,
        })
    }

    /// Keeps this table's decoded blocks in `cache` under `id` (unique: table IDs are never
    /// reused, so a cached block never goes stale).
    pub fn with_cache(mut self, id: u64, cache: Arc<BlockCache>) -> Table {
        self.cached = Some((id, cache));
        self
    }

    /// Entries (versions and tombstones) in the table.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Highest sequence number in the table.
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// Bytes the table occupies on the device.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Smallest and largest key.
    pub fn key_range(&self) -> (&[u8], &[u8]) {
        let last = self.index.last().map_or(&[][..], |e| e.last_key.as_slice());
        (&self.first_key, last)
    }

    /// RAM this table holds (block index and bloom filter), in bytes.
    pub fn resident_bytes(&self) -> usize {
        self.bloom.bits.len()
            + self.first_key.len()
            + self
                .index
                .iter()
                .map(|e| e.last_key.len() + 24)
                .sum::<usize>()
    }

    /// The newest version of `key` with a sequence number at or below `snapshot`: `Some` entry
    /// (whose value is `None` for a tombstone), or `None` if the table has no such version.
    ///
    /// Errors: [`Error::Corrupt`] when a block fails verification; device errors.
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>> {
        if !self.bloom.may_contain(key) {
            return Ok(None);
        }
        let mut block = self.index.partition_point(|e| e.last_key.as_slice() < key);
        while block < self.index.len() {
            let entries = self.read_blocks(block, 1)?.remove(0);
            // The first entry of the key at or below the snapshot (entries sort by key, then
            // newest first).
            let start = entries.partition_point(|e| e.key.as_slice() < key);
            for e in &entries[start..] {
                match e.key.as_slice().cmp(key) {
                    std::cmp::Ordering::Greater => return Ok(None),
                    _ if e.seq <= snapshot => return Ok(Some(e.clone())),
                    _ => continue,
                }
            }
            // Versions of one key may continue in the next block.
            block += 1;
        }
        Ok(None)
    }

    /// Every entry with key >= `start`, in table order (key ascending, newest version first).
    pub fn iter_from(&self, start: &[u8]) -> TableIter<'_> {
        TableIter {
            table: self,
            block: self
                .index
                .partition_point(|e| e.last_key.as_slice() < start),
            pending: Vec::new(),
            next: 0,
            start: start.to_vec(),
        }
    }

    /// Blocks `first..` (at most `count`, and at most [`READ_AHEAD_BYTES`] of them beyond
    /// the first), decoded and verified: from the cache where it has them, the rest in one
    /// device read of the span that covers them.
    fn read_blocks(&self, first: usize, count: usize) -> Result<Vec<Arc<Vec<Entry>>>> {
        let mut out = Vec::new();
        if let Some((id, cache)) = &self.cached {
            if let Some(b) = cache.get(*id, first) {
                out.push(b);
                return Ok(out);
            }
        }
        let mut last = first;
        while last + 1 < self.index.len()
            && last + 1 - first < count
            && self.index[last + 1].offset + self.index[last + 1].len as u64
                - self.index[first].offset
                <= READ_AHEAD_BYTES
        {
            last += 1;
        }
        let base = self.index[first].offset;
        let span = (self.index[last].offset + self.index[last].len as u64 - base) as usize;
        let raw = read_span(&*self.io, self.offset + base, span)?;
        for i in first..=last {
            let e = &self.index[i];
            let at = self.offset + e.offset;
            let corrupt = |detail: &str| Error::Corrupt {
                device: self.io.name().to_string(),
                offset: at,
                detail: format!("SSTable data block {i}: {detail}"),
            };
            let rel = (e.offset - base) as usize;
            let body = verified(&raw[rel..rel + e.len as usize])
                .ok_or_else(|| corrupt("checksum mismatch"))?;
            let block = Arc::new(decode_block(body).ok_or_else(|| corrupt("malformed entries"))?);
            if let Some((id, cache)) = &self.cached {
                cache.insert(*id, i, block.clone(), e.len as usize);
            }
            out.push(block);
        }
        Ok(out)
    }
}

/// Bytes a scan reads ahead in one device read.
pub const READ_AHEAD_BYTES: u64 = 256 << 10;

/// A cache of decoded data blocks, least recently used evicted first, with a budget in bytes
/// (charged twice a block's stored size: decoded entries take more room). Sharded so
/// concurrent readers rarely meet on a lock.
pub struct BlockCache {
    shards: Vec<Mutex<CacheShard>>,
    shard_budget_bytes: usize,
}

/// A cached block: its entries, its charge in bytes, its last use (tick).
type Cached = (Arc<Vec<Entry>>, usize, u64);

#[derive(Default)]
struct CacheShard {
    /// (table ID, block index) -> the block.
    blocks: std::collections::HashMap<(u64, usize), Cached>,
    by_age: std::collections::BTreeMap<u64, (u64, usize)>,
    tick: u64,
    bytes: usize,
}

impl BlockCache {
    /// A cache of about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> BlockCache {
        // Up to 16 shards, each of at least 1 MiB, so a small cache still holds whole blocks.
        let shards = (budget_bytes >> 20).clamp(1, 16);
        BlockCache {
            shards: (0..shards)
                .map(|_| Mutex::new(CacheShard::default()))
                .collect(),
            shard_budget_bytes: budget_bytes / shards,
        }
    }

    fn shard(&self, table: u64, block: usize) -> &Mutex<CacheShard> {
        let h = xxhash_rust::xxh3::xxh3_64(
            &[table.to_le_bytes(), (block as u64).to_le_bytes()].concat(),
        );
        &self.shards[h as usize % self.shards.len()]
    }

    fn get(&self, table: u64, block: usize) -> Option<Arc<Vec<Entry>>> {
        let mut s = self.shard(table, block).lock();
        let tick = s.tick + 1;
        s.tick = tick;
        let (entries, _, age) = s.blocks.get_mut(&(table, block))?;
        let (entries, old) = (entries.clone(), std::mem::replace(age, tick));
        s.by_age.remove(&old);
        s.by_age.insert(tick, (table, block));
        Some(entries)
    }

    fn insert(&self, table: u64, block: usize, entries: Arc<Vec<Entry>>, stored_bytes: usize) {
        let charge = stored_bytes * 2;
        if charge > self.shard_budget_bytes {
            return;
        }
        let mut s = self.shard(table, block).lock();
        let tick = s.tick + 1;
        s.tick = tick;
        if let Some((_, old_charge, old_age)) =
            s.blocks.insert((table, block), (entries, charge, tick))
        {
            s.by_age.remove(&old_age);
            s.bytes -= old_charge;
        }
        s.by_age.insert(tick, (table, block));
        s.bytes += charge;
        while s.bytes > self.shard_budget_bytes {
            let Some((_, victim)) = s.by_age.pop_first() else {
                break;
            };
            if let Some((_, c, _)) = s.blocks.remove(&victim) {
                s.bytes -= c;
            }
        }
    }

    /// Bytes charged now.
    pub fn used_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

/// Iterator over a table's entries from a start key; see [`Table::iter_from`]. Reads ahead
/// up to [`READ_AHEAD_BYTES`] of blocks per device read.
pub struct TableIter<'a> {
    table: &'a Table,
    block: usize,
    /// Decoded blocks not yet consumed, and the position in the first.
    pending: Vec<Arc<Vec<Entry>>>,
    next: usize,
    start: Vec<u8>,
}

impl Iterator for TableIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(first) = self.pending.first() {
                if let Some(e) = first.get(self.next) {
                    self.next += 1;
                    if e.key < self.start {
                        continue;
                    }
                    return Some(Ok(e.clone()));
                }
                self.pending.remove(0);
                self.next = 0;
                continue;
            }
            if self.block >= self.table.index.len() {
                return None;
            }
            match self.table.read_blocks(self.block, usize::MAX) {
                Ok(blocks) => {
                    self.block += blocks.len();
                    self.pending = blocks;
                }
                Err(e) => {
                    self.block = self.table.index.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The body of a `[body][crc32c]` record if the checksum matches.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let split = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(split);
    (u32::from_le_bytes(crc.try_into().ok()?) == crc32c::crc32c(body)).then_some(body)
}

/// Reads `len` bytes at an unaligned `offset` through aligned reads.
fn read_span(io: &dyn MetaIo, offset: u64, len: usize) -> Result<Vec<u8>> {
    crate::device::may_wait()?;
    let start = offset & !(BLOCK_SIZE as u64 - 1);
    let end = align_up((offset + len as u64) as usize) as u64;
    let buf = io.read_at(AlignedBuf::new((end - start) as usize), start)?;
    let skip = (offset - start) as usize;
    Ok(buf[skip..skip + len].to_vec())
}

fn decode_block(body: &[u8]) -> Option<Vec<Entry>> {
    let n_at = body.len().checked_sub(4)?;
    let restarts = u32::from_le_bytes(body[n_at..].try_into().ok()?) as usize;
    let entries_end = n_at.checked_sub(restarts.checked_mul(4)?)?;
    let data = &body[..entries_end];
    let mut out = Vec::new();
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    while pos < data.len() {
        let shared = get_varint(data, &mut pos)? as usize;
        let unshared = get_varint(data, &mut pos)? as usize;
        let value_len = get_varint(data, &mut pos)? as usize;
        let kind = *data.get(pos)?;
        pos += 1;
        let seq = get_varint(data, &mut pos)?;
        if shared > key.len() {
            return None;
        }
        key.truncate(shared);
        key.extend_from_slice(data.get(pos..pos + unshared)?);
        pos += unshared;
        let value = match kind {
            KIND_PUT => {
                let v = data.get(pos..pos + value_len)?.to_vec();
                pos += value_len;
                Some(v)
            }
            KIND_DELETE if value_len == 0 => None,
            _ => return None,
        };
        out.push(Entry {
            key: key.clone(),
            seq,
            value,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::{FaultBackend, FaultControl};
    use crate::device::Device;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const DEV_BYTES: u64 = 16 << 20;
    const BASE: u64 = 1 << 20;

    fn store(table: &[u8]) -> (Arc<dyn MetaIo>, FaultControl) {
        let (backend, control) = FaultBackend::new(DEV_BYTES);
        let dev = Device::with_backend("ssd", DEV_BYTES, Box::new(backend));
        let mut buf = AlignedBuf::new(table.len());
        buf.copy_from_slice(table);
        dev.write_at(buf, BASE, true).unwrap();
        (Arc::new(dev), control)
    }

    /// Model: (key, Reverse(seq)) -> value, the table's own order.
    type Model = BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), Option<Vec<u8>>>;

    fn build(model: &Model, block_bytes: usize) -> Vec<u8> {
        let mut b = TableBuilder::new(block_bytes, 10);
        for ((k, seq), v) in model {
            b.add(k, seq.0, v.as_deref()).unwrap();
        }
        b.finish()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("logs/2026/11/22/host-{:04}/part-{:06}.gz", i % 97, i).into_bytes()
    }

    #[test]
    fn realistic_keys_roundtrip_and_compress() {
        let mut model = Model::new();
        for i in 0..5000u32 {
            model.insert((key(i), std::cmp::Reverse(7)), Some(vec![i as u8; 40]));
        }
        let bytes = build(&model, 4096);
        let raw: usize = model.keys().map(|(k, _)| k.len() + 40).sum();
        assert!(
            bytes.len() < raw,
            "prefix compression: {} >= {raw}",
            bytes.len()
        );
        let (io, _) = store(&bytes);
        let t = Table::open(io, BASE, bytes.len() as u64).unwrap();
        assert_eq!(t.entries(), 5000);
        for i in (0..5000).step_by(7) {
            let e = t.get(&key(i), u64::MAX).unwrap().unwrap();
            assert_eq!(e.value, Some(vec![i as u8; 40]));
        }
        assert_eq!(
            t.get(b"logs/2026/11/22/host-0000/part-999999.gz", u64::MAX)
                .unwrap(),
            None
        );
        let all: Vec<Entry> = t.iter_from(b"").map(Result::unwrap).collect();
        assert_eq!(all.len(), 5000);
        assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    }

    #[test]
    fn the_bloom_filter_skips_absent_keys() {
        let hashes: Vec<u64> = (0..10_000u32)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&key(i)))
            .collect();
        let bloom = Bloom::build(&hashes, 10);
        assert!(
            (0..10_000).all(|i| bloom.may_contain(&key(i))),
            "no false negatives"
        );
        let false_positives = (10_000..30_000u32)
            .filter(|&i| bloom.may_contain(&key(i)))
            .count();
        // ~1% expected at 10 bits per key.
        assert!(
            false_positives < 600,
            "{false_positives} false positives in 20,000"
        );
    }

    #[test]
    fn the_block_cache_serves_hot_blocks_within_its_budget() {
        let mut model = Model::new();
        for i in 0..2000u32 {
            model.insert((key(i), std::cmp::Reverse(3)), Some(vec![i as u8; 50]));
        }
        let bytes = build(&model, 4096);
        let (io, control) = store(&bytes);
        let cache = Arc::new(BlockCache::new(128 << 10));
        let t = Table::open(io, BASE, bytes.len() as u64)
            .unwrap()
            .with_cache(7, cache.clone());
        assert!(t.get(&key(5), 9).unwrap().is_some());
        control.fail_reads(true);
        assert_eq!(
            t.get(&key(5), 9).unwrap().unwrap().value,
            Some(vec![5; 50]),
            "a hot block comes from the cache, not the device"
        );
        control.fail_reads(false);
        let all: Vec<Entry> = t.iter_from(b"").map(Result::unwrap).collect();
        assert_eq!(all.len(), 2000);
        assert!(cache.used_bytes() <= 128 << 10, "{}", cache.used_bytes());
        assert!(cache.used_bytes() > 0);
    }

    #[test]
    fn out_of_order_entries_are_refused() {
        let mut b = TableBuilder::new(4096, 10);
        b.add(b"b", 5, Some(b"x")).unwrap();
        assert!(b.add(b"a", 6, Some(b"x")).is_err());
        assert!(
            b.add(b"b", 5, Some(b"x")).is_err(),
            "same key needs a lower seq"
        );
        b.add(b"b", 4, None).unwrap();
    }

    #[test]
    fn a_flipped_bit_is_reported_never_returned() {
        let mut model = Model::new();
        for i in 0..500u32 {
            model.insert((key(i), std::cmp::Reverse(1)), Some(vec![1; 100]));
        }
        let bytes = build(&model, 4096);
        let (io, control) = store(&bytes);
        control.flip_bit(BASE + 100, 3);
        let t = Table::open(io, BASE, bytes.len() as u64).unwrap();
        let results: Vec<Result<Option<Entry>>> = (0..500).map(|i| t.get(&key(i), 9)).collect();
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(Error::Corrupt { .. }))));
        assert!(results.iter().all(|r| match r {
            Ok(Some(e)) => e.value == Some(vec![1; 100]),
            Ok(None) => false,
            Err(_) => true,
        }));
        let (io, control) = store(&bytes);
        control.flip_bit(BASE + bytes.len() as u64 - 10, 0);
        assert!(matches!(
            Table::open(io, BASE, bytes.len() as u64),
            Err(Error::Corrupt { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tables_match_a_model_at_every_snapshot(
            ops in prop::collection::vec(
                (0u8..40, 1u64..50, prop::option::of(prop::collection::vec(any::<u8>(), 0..300))),
                1..400,
            ),
            block_bytes in 256usize..8192,
            probes in prop::collection::vec((0u8..45, 0u64..60), 1..40),
        ) {
            let mut model = Model::new();
            for (k, seq, v) in ops {
                let key = format!("bucket/prefix-{}/{k:03}", k % 5).into_bytes();
                model.insert((key, std::cmp::Reverse(seq)), v);
            }
            let bytes = build(&model, block_bytes);
            let (io, _) = store(&bytes);
            let t = Table::open(io, BASE, bytes.len() as u64).unwrap();
            prop_assert_eq!(t.entries(), model.len() as u64);
            for (k, snapshot) in probes {
                let key = format!("bucket/prefix-{}/{k:03}", k % 5).into_bytes();
                let expect = model
                    .range((key.clone(), std::cmp::Reverse(snapshot))..)
                    .next()
                    .filter(|((mk, _), _)| *mk == key)
                    .map(|((mk, s), v)| Entry { key: mk.clone(), seq: s.0, value: v.clone() });
                prop_assert_eq!(t.get(&key, snapshot).unwrap(), expect);
                let from: Vec<Entry> = t.iter_from(&key).map(Result::unwrap).collect();
                let want: Vec<Entry> = model
                    .range((key.clone(), std::cmp::Reverse(u64::MAX))..)
                    .map(|((mk, s), v)| Entry { key: mk.clone(), seq: s.0, value: v.clone() })
                    .collect();
                prop_assert_eq!(from, want);
            }
        }
    }
}
