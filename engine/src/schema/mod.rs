//! The store's metadata schema: key layout and record encodings (`engine/FORMAT.md`, "Metadata
//! keys and records"). Keys sort so that one bucket's objects are contiguous and in S3 order
//! (UTF-8 byte order of the key).
//!
//! Must not import `volume` or `store`, nor `device` or `segment`: keys and records are bytes
//! in `meta`.

use crate::error::{Error, Result};
use crate::meta::codec::{DecodeError, Decoder, Encoder};
use crate::meta::Scan;
use crate::profile::Protection;

/// Record format version written by this build (first byte of every value). Version 2 added
/// the flags byte at the end of [`ObjectRecord`]; version 1 records are still read.
pub const RECORD_VERSION: u8 = 6;

/// [`ObjectRecord`] flag: the data is the value of the object's inline key.
const FLAG_INLINE: u8 = 1;
/// [`ObjectRecord`] flag: the version is a delete marker (record version 6).
const FLAG_DELETE_MARKER: u8 = 2;
/// [`ObjectRecord`] flag: the version is the key's `null` version (record version 6; every
/// record before it is).
const FLAG_NULL_VERSION: u8 = 4;

/// `b/<bucket>` -> [`BucketRecord`].
pub fn bucket_key(bucket: &str) -> Vec<u8> {
    [b"b/", bucket.as_bytes()].concat()
}

/// Prefix of every bucket key.
pub const BUCKET_PREFIX: &[u8] = b"b/";

/// `o/<bucket>\0` : prefix of the bucket's object keys.
pub fn object_prefix(bucket: &str) -> Vec<u8> {
    [b"o/", bucket.as_bytes(), b"\0"].concat()
}

/// `o/<bucket>\0<key>` -> [`ObjectRecord`].
pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    [object_prefix(bucket).as_slice(), key.as_bytes()].concat()
}

/// `i/<bucket>\0<key>` -> [`InlineData`] of an object whose record says
/// [`ObjectRecord::inline`]. Kept apart from the record so listings and HEAD never read the
/// data; the two are always written and deleted in one batch.
pub fn inline_key(bucket: &str, key: &str) -> Vec<u8> {
    [b"i/", bucket.as_bytes(), b"\0", key.as_bytes()].concat()
}

/// `n/<bucket>\0` : prefix of the bucket's noncurrent versions.
pub fn noncurrent_prefix(bucket: &str) -> Vec<u8> {
    [b"n/", bucket.as_bytes(), b"\0"].concat()
}

/// `n/<bucket>\0<escaped key>\0\0` : prefix of the noncurrent versions of one key, and of
/// no other key's. The key is escaped so that keys containing NUL still sort in key order:
/// each NUL byte becomes `00 FF`, and `00 00` ends the key.
pub fn noncurrent_key_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = noncurrent_prefix(bucket);
    escape_key_into(&mut out, key);
    out
}

fn escape_key_into(out: &mut Vec<u8>, key: &str) {
    for &b in key.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// `n/<bucket>\0<escaped key>\0\0<!version, u64 big-endian>` -> the [`ObjectRecord`] of a
/// noncurrent version: the version sequence is inverted so a key's newest version sorts first.
pub fn noncurrent_key(bucket: &str, key: &str, version: u64) -> Vec<u8> {
    let mut out = noncurrent_key_prefix(bucket, key);
    out.extend_from_slice(&(!version).to_be_bytes());
    out
}

/// `j/<bucket>\0<escaped key>\0\0<!version, u64 big-endian>` -> the [`InlineData`] of a
/// noncurrent version whose record says inline (moved from [`inline_key`] with its record).
pub fn noncurrent_inline_key(bucket: &str, key: &str, version: u64) -> Vec<u8> {
    let mut out = noncurrent_key(bucket, key, version);
    out[0] = b'j';
    out
}

/// The (key, version sequence) of a noncurrent record key with its `n/<bucket>\0` prefix
/// stripped; `None` for a malformed one.
pub fn parse_noncurrent_key(rest: &[u8]) -> Option<(String, u64)> {
    let split = rest.len().checked_sub(10)?;
    let (escaped, tail) = rest.split_at(split);
    if tail[..2] != [0, 0] {
        return None;
    }
    let version = !u64::from_be_bytes(tail[2..].try_into().ok()?);
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        key.push(b);
        if b == 0 && bytes.next() != Some(&0xFF) {
            return None;
        }
    }
    Some((String::from_utf8(key).ok()?, version))
}

/// `u/<bucket>\0` : prefix of the bucket's multipart uploads.
pub fn upload_prefix(bucket: &str) -> Vec<u8> {
    [b"u/", bucket.as_bytes(), b"\0"].concat()
}

/// Characters of an upload ID (hex).
pub const UPLOAD_ID_LEN: usize = 32;

/// `u/<bucket>\0<key>\0<upload id>` -> [`UploadRecord`]. The upload ID has a fixed length, so
/// keys containing NUL still parse (from the end).
pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    [
        upload_prefix(bucket).as_slice(),
        key.as_bytes(),
        b"\0",
        upload_id.as_bytes(),
    ]
    .concat()
}

/// `p/<upload id>` : prefix of an upload's parts.
pub fn part_prefix(upload_id: &str) -> Vec<u8> {
    [b"p/", upload_id.as_bytes()].concat()
}

/// `p/<upload id><part number, u32 big-endian>` -> [`PartRecord`] (big-endian so parts sort
/// numerically).
pub fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    [
        part_prefix(upload_id).as_slice(),
        &part_number.to_be_bytes(),
    ]
    .concat()
}

/// `d/<slot, u32 big-endian>` -> the append head of data device `slot` (`segment::HeadState`).
pub fn segment_claim_key(slot: u32) -> Vec<u8> {
    [b"d/".as_slice(), &slot.to_be_bytes()].concat()
}

/// `r/<slot, u32 big-endian>` -> u64 little-endian: the rebuild boundary of data slot `slot`,
/// whose drive was replaced by a blank one: locations on it at offsets below the boundary were
/// on the old drive and are lost until a rebuild rewrites them elsewhere; the key is deleted
/// when a rebuild pass completes.
pub fn rebuild_boundary_key(slot: u32) -> Vec<u8> {
    [b"r/".as_slice(), &slot.to_be_bytes()].concat()
}

/// `g/<slot, u32 BE><segment, u32 BE><sequence, u64 BE>` -> a live-space record of one data
/// segment (`store/space.rs`): sequence 0 holds the folded base, any other sequence a delta one
/// commit added. The segment's live bytes and needles are the sum of its records.
pub fn space_key(slot: u32, segment: u32, sequence: u64) -> Vec<u8> {
    [
        SPACE_PREFIX,
        &slot.to_be_bytes(),
        &segment.to_be_bytes(),
        &sequence.to_be_bytes(),
    ]
    .concat()
}

/// `c/<bucket>\0<name>` -> a bucket attribute (raw bytes chosen by the layer above: its
/// policy, ACL, public access block; see [`crate::Store::bucket_attributes`]).
pub fn bucket_attribute_key(bucket: &str, name: &str) -> Vec<u8> {
    [b"c/", bucket.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// Prefix of every attribute key of `bucket`.
pub fn bucket_attribute_prefix(bucket: &str) -> Vec<u8> {
    [b"c/", bucket.as_bytes(), b"\0"].concat()
}

/// Prefix of every live-space key.
pub const SPACE_PREFIX: &[u8] = b"g/";

/// Prefix of every rebuild boundary key.
pub const REBUILD_BOUNDARY_PREFIX: &[u8] = b"r/";

/// `s/<name>` -> a store-wide setting (raw bytes; see [`crate::Store::setting`]).
pub fn setting_key(name: &str) -> Vec<u8> {
    [b"s/", name.as_bytes()].concat()
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// if there is none (all 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRecord {
    /// The owning account (or, in stores written before accounts, the creating access key).
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
    /// How its objects' chunks are protected (record version 4; before, `replicas:1`: one
    /// copy is what was written).
    pub protection: Protection,
    /// Its versioning state (record version 6; before, unversioned).
    pub versioning: Versioning,
}

/// A bucket's versioning state (S3's `VersioningConfiguration` status). A bucket starts
/// unversioned and, once versioned, is only ever enabled or suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Versioning {
    /// Never versioned: a write replaces the key's only version.
    #[default]
    Unversioned,
    /// Every write and delete adds a version; older ones stay as noncurrent versions.
    Enabled,
    /// Writes and deletes replace the `null` version; other versions stay.
    Suspended,
}

impl Versioning {
    fn code(self) -> u8 {
        match self {
            Versioning::Unversioned => 0,
            Versioning::Enabled => 1,
            Versioning::Suspended => 2,
        }
    }
}

/// Where one copy of a chunk lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Data device slot in the pool.
    pub slot: u32,
    /// Byte offset of the needle on that device.
    pub offset: u64,
}

/// One chunk of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Data bytes in the chunk.
    pub len: u32,
    /// Its copies (one today; protection adds more).
    pub locations: Vec<Location>,
}

/// Consecutive chunks written by one object version or part (same needle object ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRun {
    /// Needle object ID the chunks carry.
    pub object_id: u128,
    /// Needle chunk index of the first chunk.
    pub first_index: u32,
    /// 0: each location of a chunk holds a whole copy (`replicas:N`). K > 0: the chunk is a
    /// Reed–Solomon stripe (`ec:K+M`): its locations are K data shards then M parity shards,
    /// each a needle of [`shard_bytes`] (record version 5; before, 0).
    pub data_shards: u8,
    /// The chunks in order.
    pub chunks: Vec<Chunk>,
}

impl ChunkRun {
    /// Data bytes in the run.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }

    /// Payload bytes of each location of chunk `c`: the chunk for a copy, a shard's size for
    /// a stripe.
    pub fn payload_bytes(&self, c: usize) -> usize {
        let len = self.chunks[c].len;
        if self.data_shards > 0 {
            shard_bytes(len, self.data_shards)
        } else {
            len as usize
        }
    }
}

/// An object version: what HeadObject returns plus where its data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Size in bytes.
    pub size: u64,
    /// S3 ETag without quotes: hex MD5, or for multipart hex MD5 of the part MD5s + `-N`.
    pub etag: String,
    /// Content-Type.
    pub content_type: String,
    /// Last-Modified, Unix milliseconds.
    pub last_modified_unix_ms: u64,
    /// `x-amz-meta-*` pairs (names lower-case, without the prefix).
    pub user_metadata: Vec<(String, String)>,
    /// Flexible checksums the client sent and we verified: (algorithm, base64 value).
    pub checksums: Vec<(String, String)>,
    /// Part sizes for multipart objects (empty for single PUT).
    pub part_sizes: Vec<u64>,
    /// The data on HDDs (empty when `inline`, or for an empty object).
    pub runs: Vec<ChunkRun>,
    /// The data is in the metadata index under [`inline_key`], not on HDDs.
    pub inline: bool,
    /// Standard response headers stored with the object, as (lower-case name, value):
    /// Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires, and
    /// `x-amz-checksum-type` of a multipart object (record version 3; empty before).
    pub headers: Vec<(String, String)>,
    /// The multipart upload that completed into this version, or empty (record version 3):
    /// a repeated CompleteMultipartUpload of it answers with this version.
    pub upload_id: String,
    /// The version's sequence: unique in the store and greater than every older version of
    /// the key (record version 6; 0 before, when every record was its key's null version).
    pub version: u64,
    /// The version is the key's `null` version (written while the bucket was unversioned or
    /// suspended); its version ID is `null`, not its sequence.
    pub null_version: bool,
    /// The version is a delete marker: no data, and the key reads as absent while it is
    /// the latest version.
    pub delete_marker: bool,
}

/// The bytes of a small object stored in the metadata index (see [`inline_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineData {
    /// The object's data.
    pub data: Vec<u8>,
}

/// A multipart upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    /// Initiated, Unix milliseconds.
    pub initiated_unix_ms: u64,
    /// Owner's access key ID.
    pub owner: String,
    /// Content-Type for the final object.
    pub content_type: String,
    /// User metadata for the final object.
    pub user_metadata: Vec<(String, String)>,
    /// Checksum algorithm named at creation (`CRC32`, ...), or empty.
    pub checksum_algorithm: String,
    /// Standard response headers for the final object (as [`ObjectRecord::headers`]; record
    /// version 3, empty before).
    pub headers: Vec<(String, String)>,
    /// `COMPOSITE` or `FULL_OBJECT` (`x-amz-checksum-type` at creation), or empty (record
    /// version 3).
    pub checksum_type: String,
}

/// One uploaded part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRecord {
    /// Size in bytes.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Uploaded, Unix milliseconds.
    pub last_modified_unix_ms: u64,
    /// Flexible checksums sent with the part: (algorithm, base64 value).
    pub checksums: Vec<(String, String)>,
    /// The part's data.
    pub run: ChunkRun,
}

fn corrupt(what: &str, e: DecodeError) -> Error {
    Error::MetadataUnavailable {
        detail: format!("undecodable {what} record: {e}"),
    }
}

fn pairs(e: &mut Encoder, v: &[(String, String)]) {
    e.u32(v.len() as u32);
    for (a, b) in v {
        e.str(a).str(b);
    }
}

fn read_pairs(d: &mut Decoder<'_>) -> Result<Vec<(String, String)>, DecodeError> {
    let n = d.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push((d.str()?, d.str()?));
    }
    Ok(out)
}

/// Reads the version byte; returns it if this build reads it (1 ..= [`RECORD_VERSION`]).
fn version(d: &mut Decoder<'_>) -> Result<u8, DecodeError> {
    match d.u8()? {
        v @ 1..=RECORD_VERSION => Ok(v),
        v => Err(DecodeError(format!(
            "record version {v}, this build reads 1 to {RECORD_VERSION}"
        ))),
    }
}

/// Bytes of each shard of a chunk of `len` bytes split into `data_shards` (even, at least 2,
/// as Reed–Solomon over GF(2^16) words needs; the last data shard is zero-padded).
pub fn shard_bytes(len: u32, data_shards: u8) -> usize {
    assert!(data_shards > 0, "only erasure-coded chunks have shards");
    ((len as usize).div_ceil(data_shards as usize).max(1) + 1) & !1
}

/// Chunks an erasure-coded run may have: [`shard_index`] keeps the chunk index in 24 bits.
pub const MAX_STRIPED_CHUNKS: u32 = 1 << 24;

/// The needle chunk index of shard `shard` of chunk `index` in an erasure-coded run: the shard
/// in the top 8 bits, so every shard's needle has an identity of its own (writers refuse a
/// chunk index of [`MAX_STRIPED_CHUNKS`] or more).
pub fn shard_index(index: u32, shard: usize) -> u32 {
    assert!(
        index < MAX_STRIPED_CHUNKS && shard < 256,
        "shard index out of range"
    );
    index | (shard as u32) << 24
}

fn encode_run(e: &mut Encoder, run: &ChunkRun) {
    e.u128(run.object_id)
        .u32(run.first_index)
        .u8(run.data_shards)
        .u32(run.chunks.len() as u32);
    for c in &run.chunks {
        e.u32(c.len).u8(c.locations.len() as u8);
        for l in &c.locations {
            e.u32(l.slot).u64(l.offset);
        }
    }
}

fn decode_run(d: &mut Decoder<'_>, version: u8) -> Result<ChunkRun, DecodeError> {
    let object_id = d.u128()?;
    let first_index = d.u32()?;
    let data_shards = if version >= 5 { d.u8()? } else { 0 };
    let n = d.u32()? as usize;
    if n > d.remaining() {
        return Err(DecodeError(format!("chunk count {n} exceeds record size")));
    }
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let len = d.u32()?;
        let copies = d.u8()? as usize;
        let mut locations = Vec::with_capacity(copies);
        for _ in 0..copies {
            locations.push(Location {
                slot: d.u32()?,
                offset: d.u64()?,
            });
        }
        chunks.push(Chunk { len, locations });
    }
    if data_shards > 0 {
        if let Some(c) = chunks
            .iter()
            .find(|c| c.locations.len() <= data_shards as usize)
        {
            return Err(DecodeError(format!(
                "an erasure-coded chunk of {data_shards} data shards has {} locations",
                c.locations.len()
            )));
        }
    }
    Ok(ChunkRun {
        object_id,
        first_index,
        data_shards,
        chunks,
    })
}

impl BucketRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(RECORD_VERSION)
            .str(&self.owner)
            .u64(self.created_unix_ms)
            .str(&self.protection.to_string())
            .u8(self.versioning.code());
        e.finish()
    }
    /// Decodes a record written by [`BucketRecord::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        (|| -> Result<Self, DecodeError> {
            let v = version(&mut d)?;
            let owner = d.str()?;
            let created_unix_ms = d.u64()?;
            let protection = if v >= 4 {
                let text = d.str()?;
                text.parse()
                    .map_err(|e: String| DecodeError(format!("bucket protection: {e}")))?
            } else {
                Protection::Replicas(1)
            };
            let versioning = if v >= 6 {
                match d.u8()? {
                    0 => Versioning::Unversioned,
                    1 => Versioning::Enabled,
                    2 => Versioning::Suspended,
                    c => return Err(DecodeError(format!("unknown versioning state {c}"))),
                }
            } else {
                Versioning::Unversioned
            };
            Ok(BucketRecord {
                owner,
                created_unix_ms,
                protection,
                versioning,
            })
        })()
        .map_err(|e| corrupt("bucket", e))
    }
}

impl ObjectRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(RECORD_VERSION)
            .u64(self.size)
            .str(&self.etag)
            .str(&self.content_type)
            .u64(self.last_modified_unix_ms);
        pairs(&mut e, &self.user_metadata);
        pairs(&mut e, &self.checksums);
        e.u32(self.part_sizes.len() as u32);
        for p in &self.part_sizes {
            e.u64(*p);
        }
        e.u32(self.runs.len() as u32);
        for run in &self.runs {
            encode_run(&mut e, run);
        }
        let flags = [
            (self.inline, FLAG_INLINE),
            (self.delete_marker, FLAG_DELETE_MARKER),
            (self.null_version, FLAG_NULL_VERSION),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .fold(0, |f, (_, bit)| f | bit);
        e.u8(flags);
        pairs(&mut e, &self.headers);
        e.str(&self.upload_id);
        e.u64(self.version);
        e.finish()
    }
    /// Decodes a record written by [`ObjectRecord::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        (|| -> Result<Self, DecodeError> {
            let v = version(&mut d)?;
            let size = d.u64()?;
            let etag = d.str()?;
            let content_type = d.str()?;
            let last_modified_unix_ms = d.u64()?;
            let user_metadata = read_pairs(&mut d)?;
            let checksums = read_pairs(&mut d)?;
            let n = d.u32()? as usize;
            let part_sizes = (0..n.min(d.remaining()))
                .map(|_| d.u64())
                .collect::<Result<_, _>>()?;
            let n = d.u32()? as usize;
            let runs: Vec<ChunkRun> = (0..n.min(d.remaining()))
                .map(|_| decode_run(&mut d, v))
                .collect::<Result<_, _>>()?;
            let flags = if v >= 2 { d.u8()? } else { 0 };
            let known = match v {
                ..=5 => FLAG_INLINE,
                _ => FLAG_INLINE | FLAG_DELETE_MARKER | FLAG_NULL_VERSION,
            };
            if flags & !known != 0 {
                return Err(DecodeError(format!("unknown object flags {flags:#04x}")));
            }
            let (headers, upload_id) = if v >= 3 {
                (read_pairs(&mut d)?, d.str()?)
            } else {
                (Vec::new(), String::new())
            };
            // Before version 6 every record was its key's null version.
            let (version, null_version) = if v >= 6 {
                (d.u64()?, flags & FLAG_NULL_VERSION != 0)
            } else {
                (0, true)
            };
            let delete_marker = flags & FLAG_DELETE_MARKER != 0;
            if delete_marker && (flags & FLAG_INLINE != 0 || !runs.is_empty()) {
                return Err(DecodeError("a delete marker with data".into()));
            }
            Ok(ObjectRecord {
                size,
                etag,
                content_type,
                last_modified_unix_ms,
                user_metadata,
                checksums,
                part_sizes,
                runs,
                inline: flags & FLAG_INLINE != 0,
                headers,
                upload_id,
                version,
                null_version,
                delete_marker,
            })
        })()
        .map_err(|e| corrupt("object", e))
    }
}

impl InlineData {
    /// Encodes the record: the version byte, then the data.
    pub fn encode(data: &[u8]) -> Vec<u8> {
        [&[RECORD_VERSION][..], data].concat()
    }
    /// Decodes a record written by [`InlineData::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        version(&mut d).map_err(|e| corrupt("inline data", e))?;
        Ok(InlineData {
            data: b[1..].to_vec(),
        })
    }
}

impl UploadRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(RECORD_VERSION)
            .u64(self.initiated_unix_ms)
            .str(&self.owner)
            .str(&self.content_type);
        pairs(&mut e, &self.user_metadata);
        e.str(&self.checksum_algorithm);
        pairs(&mut e, &self.headers);
        e.str(&self.checksum_type);
        e.finish()
    }
    /// Decodes a record written by [`UploadRecord::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        (|| -> Result<Self, DecodeError> {
            let v = version(&mut d)?;
            let mut record = UploadRecord {
                initiated_unix_ms: d.u64()?,
                owner: d.str()?,
                content_type: d.str()?,
                user_metadata: read_pairs(&mut d)?,
                checksum_algorithm: d.str()?,
                headers: Vec::new(),
                checksum_type: String::new(),
            };
            if v >= 3 {
                record.headers = read_pairs(&mut d)?;
                record.checksum_type = d.str()?;
            }
            Ok(record)
        })()
        .map_err(|e| corrupt("upload", e))
    }
}

impl PartRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(RECORD_VERSION)
            .u64(self.size)
            .str(&self.etag)
            .u64(self.last_modified_unix_ms);
        pairs(&mut e, &self.checksums);
        encode_run(&mut e, &self.run);
        e.finish()
    }
    /// Decodes a record written by [`PartRecord::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        (|| -> Result<Self, DecodeError> {
            let v = version(&mut d)?;
            Ok(PartRecord {
                size: d.u64()?,
                etag: d.str()?,
                last_modified_unix_ms: d.u64()?,
                checksums: read_pairs(&mut d)?,
                run: decode_run(&mut d, v)?,
            })
        })()
        .map_err(|e| corrupt("part", e))
    }
}

/// Unix milliseconds now, as records carry times.
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where the records that name chunk runs begin: noncurrent versions (`n/`), then latest
/// versions (`o/`), then parts (`p/`); no other key prefix sorts among them
/// (`engine/FORMAT.md`), so one scan from here visits them all.
pub const RECORDS_WITH_RUNS_START: &[u8] = b"n/";

/// Whether `key` is a record that may name chunk runs (`n/`, `o/` or `p/`).
pub fn has_runs(key: &[u8]) -> bool {
    key.starts_with(b"n/") || key.starts_with(b"o/") || key.starts_with(b"p/")
}

/// Visits every noncurrent version record (`n/`), every latest version record (`o/`), then
/// every part record (`p/`) at `snapshot` with its runs.
///
/// Errors: metadata errors; an undecodable record.
pub fn for_each_run_record(
    meta: &crate::meta::MetaStore,
    snapshot: &crate::meta::Snapshot,
    visit: &mut dyn FnMut(&[u8], &[ChunkRun]),
) -> Result<()> {
    let mut err = None;
    meta.scan_at(RECORDS_WITH_RUNS_START, snapshot, &mut |k, v| {
        if !has_runs(k) {
            return Scan::Stop;
        }
        match decode_runs(k, v) {
            Ok(runs) => {
                visit(k, &runs);
                Scan::Continue
            }
            Err(e) => {
                err = Some(e);
                Scan::Stop
            }
        }
    })?;
    err.map_or(Ok(()), Err)
}

/// The runs of the record at `key` (`n/`, `o/`: an object version's; `p/`: a part's one run).
pub fn decode_runs(key: &[u8], value: &[u8]) -> Result<Vec<ChunkRun>> {
    if key.starts_with(b"p/") {
        Ok(vec![PartRecord::decode(value)?.run])
    } else {
        let record = ObjectRecord::decode(value)?;
        Ok(if record.inline {
            Vec::new()
        } else {
            record.runs
        })
    }
}

/// The upload ID of a part record key (`p/<upload id><part number>`).
pub fn part_upload_id(key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(b"p/")?;
    let id = rest.get(..rest.len().checked_sub(4)?)?;
    Some(String::from_utf8_lossy(id).into_owned())
}

/// A record key for logs: `bucket/key`, `bucket/key version <id>`, or
/// `upload <id> part <n>`.
pub fn record_name(key: &[u8]) -> String {
    if let Some(rest) = key.strip_prefix(b"o/") {
        return String::from_utf8_lossy(rest).replacen('\0', "/", 1);
    }
    if let Some(rest) = key.strip_prefix(b"n/") {
        let bucket_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let bucket = String::from_utf8_lossy(&rest[..bucket_end]);
        return match parse_noncurrent_key(rest.get(bucket_end + 1..).unwrap_or(&[])) {
            Some((k, v)) => format!("{bucket}/{k} version {v:016x}"),
            None => String::from_utf8_lossy(key).into_owned(),
        };
    }
    match (
        part_upload_id(key),
        key.len().checked_sub(4).map(|at| &key[at..]),
    ) {
        (Some(id), Some(n)) => format!(
            "upload {id} part {}",
            u32::from_be_bytes(n.try_into().expect("4 bytes"))
        ),
        _ => String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length prefix of an encoded string.
    const STR_LEN_BYTES: usize = 4;

    #[test]
    fn records_roundtrip() {
        let run = ChunkRun {
            object_id: 99,
            first_index: 0,
            data_shards: 0,
            chunks: vec![Chunk {
                len: 5,
                locations: vec![Location {
                    slot: 2,
                    offset: 1 << 20,
                }],
            }],
        };
        let o = ObjectRecord {
            size: 5,
            etag: "abc".into(),
            content_type: "text/plain".into(),
            last_modified_unix_ms: 7,
            user_metadata: vec![("a".into(), "b".into())],
            checksums: vec![("CRC32".into(), "AAAAAA==".into())],
            part_sizes: vec![5],
            runs: vec![run.clone()],
            inline: false,
            headers: vec![("cache-control".into(), "no-cache".into())],
            upload_id: "u1".into(),
            version: 42,
            null_version: false,
            delete_marker: false,
        };
        assert_eq!(ObjectRecord::decode(&o.encode()).unwrap(), o);
        let marker = ObjectRecord {
            size: 0,
            runs: vec![],
            delete_marker: true,
            null_version: true,
            ..o.clone()
        };
        assert_eq!(ObjectRecord::decode(&marker.encode()).unwrap(), marker);
        let bad_marker = ObjectRecord {
            delete_marker: true,
            ..o.clone()
        };
        assert!(ObjectRecord::decode(&bad_marker.encode()).is_err());
        let p = PartRecord {
            size: 5,
            etag: "e".into(),
            last_modified_unix_ms: 1,
            checksums: vec![],
            run,
        };
        assert_eq!(PartRecord::decode(&p.encode()).unwrap(), p);
        assert!(ObjectRecord::decode(&o.encode()[..10]).is_err());
        let small = ObjectRecord {
            inline: true,
            runs: vec![],
            ..o.clone()
        };
        assert_eq!(ObjectRecord::decode(&small.encode()).unwrap(), small);
        // Version 2 records (no headers, no upload ID) and version 1 records (no flags byte
        // either) still read.
        // (No chunk runs: version 5 added a byte to each.)
        // Before version 6 every record was its key's null version, sequence 0.
        let legacy = ObjectRecord {
            headers: vec![],
            upload_id: String::new(),
            runs: vec![],
            version: 0,
            null_version: true,
            ..o.clone()
        };
        let mut v2 = legacy.encode();
        v2.truncate(v2.len() - 8 - 4 - STR_LEN_BYTES);
        v2[0] = 2;
        *v2.last_mut().unwrap() = 0;
        assert_eq!(ObjectRecord::decode(&v2).unwrap(), legacy);
        let mut v1 = v2.clone();
        v1[0] = 1;
        v1.pop();
        assert_eq!(ObjectRecord::decode(&v1).unwrap(), legacy);
        let u = UploadRecord {
            initiated_unix_ms: 3,
            owner: "000000000001".into(),
            content_type: "text/plain".into(),
            user_metadata: vec![],
            checksum_algorithm: "CRC32".into(),
            headers: vec![("content-language".into(), "fr".into())],
            checksum_type: "FULL_OBJECT".into(),
        };
        assert_eq!(UploadRecord::decode(&u.encode()).unwrap(), u);
        let legacy = UploadRecord {
            headers: vec![],
            checksum_type: String::new(),
            ..u
        };
        let mut v2 = legacy.encode();
        v2.truncate(v2.len() - 4 - STR_LEN_BYTES);
        v2[0] = 2;
        assert_eq!(UploadRecord::decode(&v2).unwrap(), legacy);
        let inline = InlineData::encode(b"tiny");
        assert_eq!(InlineData::decode(&inline).unwrap().data, b"tiny");
    }

    #[test]
    fn noncurrent_keys_sort_by_key_then_newest_first() {
        let keys = ["a", "a\0", "a\0x", "a\u{1}", "ab", "b"];
        let mut encoded = Vec::new();
        for k in keys {
            for v in [1u64, 7, u64::MAX - 1] {
                let nk = noncurrent_key("bkt", k, v);
                assert!(nk.starts_with(&noncurrent_key_prefix("bkt", k)));
                let rest = &nk[noncurrent_prefix("bkt").len()..];
                assert_eq!(parse_noncurrent_key(rest), Some((k.to_string(), v)));
                encoded.push(((k, std::cmp::Reverse(v)), nk));
            }
        }
        let mut by_bytes = encoded.clone();
        by_bytes.sort_by(|a, b| a.1.cmp(&b.1));
        encoded.sort();
        assert_eq!(by_bytes, encoded, "key order, then newest version first");
        // One key's prefix never covers another key's versions.
        assert!(!noncurrent_key("bkt", "a\0", 1).starts_with(&noncurrent_key_prefix("bkt", "a")));
        assert_eq!(&noncurrent_inline_key("bkt", "a", 1)[..2], b"j/");
    }

    #[test]
    fn keys_sort_in_s3_order_per_bucket() {
        assert!(object_key("b", "a") < object_key("b", "a/b"));
        assert!(object_key("b", "zzz") < object_key("b-2", ""));
        assert!(part_key("u", 2) < part_key("u", 10));
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(&[0x61, 0xFF]), Some(vec![0x62]));
        assert_eq!(prefix_successor(&[0xFF]), None);
    }
}
