//! Objects: streaming put (chunks written durably across the pool, then one metadata commit),
//! verified streaming get with read-ahead and byte ranges, head and delete.
//!
//! Small objects (at most `inline_threshold_bytes`) are stored inline: their bytes go into the
//! metadata index with the record, in the same commit, and never touch an HDD.
//!
//! Memory: a put or get holds at most `chunks_in_flight_per_stream` chunk buffers, so memory is
//! bounded by chunk size x in-flight chunks, whatever the object size.
//!
//! Must not import `device`, `copy` or `multipart` (they build on it).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;

use md5::{Digest, Md5};

use super::versions::{delete_marker_record, DeleteOutcome, VersionId};
use super::{validate_key, Store, MAX_OBJECT_BYTES};
use crate::error::{Error, Result};
use crate::meta::Batch;
use crate::placement::StripePlacer;
use crate::profile::Protection;
use crate::schema::{self, Chunk, ChunkRun, InlineData, Location, ObjectRecord, Versioning};
use crate::segment::{
    needle_bytes, seal_needle, verify_needle, AlignedBuf, ChunkId, DataDevice, IoTicket,
    PendingRead, PooledBuf, Reservation, Stream, NEEDLE_HEADER_BYTES,
};

/// A condition on the version a write replaces, checked under the key's lock in the same
/// critical section as the commit, so two writers cannot both see it hold (S3's conditional
/// writes: `If-None-Match: *`, `If-Match`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// Only if the key has no object.
    IfNoneMatch,
    /// Only if the key has no object with this ETag (without quotes): no object, or another.
    IfNoneMatchEtag(String),
    /// Only if the key's object has this ETag (without quotes).
    IfMatch(String),
    /// Only if the key's object is this very version: this ETag and Last-Modified (Unix ms).
    /// (Lifecycle expiration: an object rewritten since it was judged is not deleted.)
    IfVersion(String, u64),
}

impl WriteCondition {
    /// Checks the condition against the key's current record (`None`: no object).
    ///
    /// Errors: [`Error::PreconditionFailed`] naming the condition.
    pub(super) fn check(
        &self,
        bucket: &str,
        key: &str,
        current: Option<&ObjectRecord>,
    ) -> Result<()> {
        let holds = match (self, current) {
            (WriteCondition::IfNoneMatch, current) => current.is_none(),
            (WriteCondition::IfNoneMatchEtag(etag), current) => {
                current.is_none_or(|r| r.etag != *etag)
            }
            (WriteCondition::IfMatch(etag), Some(r)) => r.etag == *etag,
            (WriteCondition::IfVersion(etag, ms), Some(r)) => {
                r.etag == *etag && r.last_modified_unix_ms == *ms
            }
            (WriteCondition::IfMatch(_) | WriteCondition::IfVersion(..), None) => false,
        };
        if holds {
            return Ok(());
        }
        Err(Error::PreconditionFailed {
            bucket: bucket.to_string(),
            key: key.to_string(),
            condition: match self {
                WriteCondition::IfNoneMatch => "If-None-Match: *".to_string(),
                WriteCondition::IfNoneMatchEtag(e) => format!("If-None-Match: \"{e}\""),
                WriteCondition::IfMatch(e) => format!("If-Match: \"{e}\""),
                WriteCondition::IfVersion(e, ms) => {
                    format!("the version with ETag \"{e}\" last modified at {ms} ms")
                }
            },
        })
    }
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Content-Type to store (default `binary/octet-stream`, as S3).
    pub content_type: Option<String>,
    /// `x-amz-meta-*` pairs (name without the prefix).
    pub user_metadata: Vec<(String, String)>,
    /// A flexible checksum the caller's body reader verifies: it holds (algorithm, base64 value)
    /// once the body has ended (a trailer may carry it), and is stored with the object.
    pub verified_checksum: Option<ChecksumCell>,
    /// The Content-MD5 the client sent: the put fails with [`Error::BadDigest`] on mismatch.
    pub content_md5: Option<[u8; 16]>,
    /// Standard response headers to store and return with the object: (lower-case name,
    /// value), e.g. `cache-control` (see [`ObjectRecord::headers`]).
    pub headers: Vec<(String, String)>,
    /// Commit only if this holds on the version replaced (checked atomically with the commit).
    pub condition: Option<WriteCondition>,
}

/// Filled by a body reader with a verified (algorithm, base64 value) when the body ends.
pub type ChecksumCell = std::sync::Arc<parking_lot::Mutex<Option<(String, String)>>>;

fn take_checksums(cell: &Option<ChecksumCell>) -> Vec<(String, String)> {
    cell.as_ref()
        .and_then(|c| c.lock().clone())
        .into_iter()
        .collect()
}

/// An object as HeadObject describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Content-Type.
    pub content_type: String,
    /// Last-Modified, Unix milliseconds.
    pub last_modified_unix_ms: u64,
    /// User metadata.
    pub user_metadata: Vec<(String, String)>,
    /// Stored flexible checksums: (algorithm, base64 value).
    pub checksums: Vec<(String, String)>,
    /// Number of parts for a multipart object.
    pub parts_count: Option<u32>,
    /// Sizes of the parts, in order, for a multipart object (empty otherwise).
    pub part_sizes: Vec<u64>,
    /// Stored standard response headers: (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// Its version ID (`null` in a bucket never versioned).
    pub version: VersionId,
}

impl ObjectInfo {
    pub(super) fn from_record(key: &str, r: &ObjectRecord) -> Self {
        ObjectInfo {
            key: key.to_string(),
            size: r.size,
            etag: r.etag.clone(),
            content_type: r.content_type.clone(),
            last_modified_unix_ms: r.last_modified_unix_ms,
            user_metadata: r.user_metadata.clone(),
            checksums: r.checksums.clone(),
            parts_count: (!r.part_sizes.is_empty()).then_some(r.part_sizes.len() as u32),
            part_sizes: r.part_sizes.clone(),
            headers: r.headers.clone(),
            version: VersionId::of(r),
        }
    }
}

/// A byte range of a GET (RFC 9110 section 14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive; `last` is clamped to the object's end).
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// Resolves against an object of `size` bytes to `[start, end)`.
    ///
    /// Errors: [`Error::InvalidRange`] when no byte of the range lies in the object.
    pub fn resolve(self, size: u64) -> Result<(u64, u64)> {
        let (start, end) = match self {
            ByteRange::FromTo(a, b) if a <= b => (a, b.saturating_add(1).min(size)),
            ByteRange::FromTo(a, _) => (a, a),
            ByteRange::From(a) => (a, size),
            ByteRange::Last(n) => (size.saturating_sub(n), size),
        };
        if start >= size || start >= end {
            return Err(Error::InvalidRange {
                start,
                size_bytes: size,
            });
        }
        Ok((start, end))
    }
}

pub(super) fn checksums_of(cell: &Option<ChecksumCell>) -> Vec<(String, String)> {
    take_checksums(cell)
}

pub(super) struct Written {
    pub run: ChunkRun,
    pub size: u64,
    pub md5: [u8; 16],
    /// The run's reservations: held until its record is committed (or the write abandoned).
    pub reservations: Vec<Reservation>,
}

/// Reads from `body` until `buf` is full or the body ends; returns bytes read.
fn fill(body: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Body(e)),
        }
    }
    Ok(n)
}

/// The chunks of one object version (or part) being written. The caller fills them (pushing
/// buffers with [`ChunkWriter::write`], or letting it read a body with
/// [`ChunkWriter::fill_from`]); each full chunk is sealed as a needle and written durably to
/// `copies` distinct HDDs (the bucket's `replicas:N`), with up to
/// `chunks_in_flight_per_stream` writes in flight. Every chunk is full but the last. Nothing is
/// committed to metadata here.
pub(super) struct ChunkWriter {
    object_id: u128,
    max_bytes: u64,
    protection: Protection,
    md5: Md5,
    chunks: Vec<Chunk>,
    size: u64,
    /// The chunk being filled: its buffer and the data bytes in it.
    current: Option<(PooledBuf, usize)>,
    /// Writes in flight: the pool buffer (the first copy's; extra copies own theirs), the data
    /// device written, ticket.
    pending: VecDeque<(Option<PooledBuf>, Arc<DataDevice>, IoTicket)>,
    /// Room reserved for every needle written: released (dropped) only after the record is
    /// committed or the write abandoned, so no segment holding them is freed meanwhile.
    reservations: Vec<Reservation>,
}

impl Drop for ChunkWriter {
    /// An abandoned write (a client gone, a failed body) waits for its writes in flight
    /// before its reservations are released: a freed segment is never written by a straggler.
    fn drop(&mut self) {
        while let Some((_, device, ticket)) = self.pending.pop_front() {
            let _ = device.device().complete_write(ticket);
        }
    }
}

impl ChunkWriter {
    pub(super) fn new(object_id: u128, max_bytes: u64, protection: Protection) -> Self {
        assert!(protection.width() >= 1, "a chunk is stored at least once");
        ChunkWriter {
            object_id,
            max_bytes,
            protection,
            md5: Md5::new(),
            chunks: Vec::new(),
            size: 0,
            current: None,
            pending: VecDeque::new(),
            reservations: Vec::new(),
        }
    }

    /// The chunk being filled, taking a buffer for a new one. While the pool is exhausted it
    /// completes this stream's own oldest write instead of waiting on other streams (see
    /// `BufferPool::try_get`).
    fn current(&mut self, store: &Store) -> Result<&mut (PooledBuf, usize)> {
        if self.current.is_none() {
            let mut pbuf = store.inner.buffers.try_get();
            while pbuf.is_none() && !self.pending.is_empty() {
                pbuf = self.complete_oldest()?;
            }
            let mut pbuf = pbuf.unwrap_or_else(|| store.inner.buffers.get());
            pbuf.set_len(needle_bytes(store.inner.config.chunk_size_bytes as usize));
            self.current = Some((pbuf, 0));
        }
        Ok(self.current.as_mut().expect("just set"))
    }

    /// Counts `n` more data bytes.
    ///
    /// Errors: [`Error::EntityTooLarge`] past `max_bytes`.
    fn grow(&mut self, n: usize) -> Result<()> {
        self.size += n as u64;
        if self.size > self.max_bytes {
            return Err(Error::EntityTooLarge {
                size_bytes: self.size,
                max_bytes: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Appends `data` to the object, writing each chunk it fills.
    pub(super) fn write(&mut self, store: &Store, mut data: &[u8]) -> Result<()> {
        let chunk_bytes = store.inner.config.chunk_size_bytes as usize;
        while !data.is_empty() {
            let (pbuf, filled) = self.current(store)?;
            let n = data.len().min(chunk_bytes - *filled);
            let at = NEEDLE_HEADER_BYTES + *filled;
            pbuf[at..at + n].copy_from_slice(&data[..n]);
            *filled += n;
            let full = *filled == chunk_bytes;
            data = &data[n..];
            self.grow(n)?;
            if full {
                self.submit(store)?;
            }
        }
        Ok(())
    }

    /// Reads `body` to its end straight into chunk buffers, writing each chunk it fills.
    pub(super) fn fill_from(&mut self, store: &Store, body: &mut dyn Read) -> Result<()> {
        let chunk_bytes = store.inner.config.chunk_size_bytes as usize;
        loop {
            let (pbuf, filled) = self.current(store)?;
            let start = NEEDLE_HEADER_BYTES + *filled;
            let n = fill(body, &mut pbuf[start..NEEDLE_HEADER_BYTES + chunk_bytes])?;
            *filled += n;
            let full = *filled == chunk_bytes;
            self.grow(n)?;
            if !full {
                return Ok(());
            }
            self.submit(store)?;
        }
    }

    /// Seals the chunk being filled (if it holds data) and starts its durable write.
    fn submit(&mut self, store: &Store) -> Result<()> {
        let Some((mut pbuf, n)) = self.current.take() else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        let index = self.chunks.len() as u32;
        self.md5
            .update(&pbuf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + n]);
        if let Protection::ErasureCoded { data, parity } = self.protection {
            return self.submit_stripe(store, pbuf, index, n, data as usize, parity as usize);
        }
        let copies = self.protection.width();
        seal_needle(
            &mut pbuf,
            ChunkId {
                object_id: self.object_id,
                index,
            },
            n,
        );
        let places =
            store.reserve_copies(self.object_id, index, pbuf.len() as u64, self.protection)?;
        debug_assert_eq!(places.len(), copies as usize);
        // Extra copies are written from buffers of their own; the first from the pool's.
        let mut locations = Vec::with_capacity(places.len());
        let places = self.hold(places);
        for (i, &(slot, offset)) in places.iter().enumerate().rev() {
            let device = store
                .data_device(slot)
                .expect("placement picks present devices");
            let buf = if i == 0 {
                pbuf.take()
            } else {
                let mut copy = AlignedBuf::new(pbuf.len());
                copy.copy_from_slice(&pbuf);
                copy
            };
            let ticket = device.submit_write(buf, offset)?.into_ticket();
            self.pending.push_back((None, device, ticket));
            locations.push(Location { slot, offset });
        }
        locations.reverse();
        self.pending
            .back_mut()
            .expect("the first copy was just submitted")
            .0 = Some(pbuf);
        self.chunks.push(Chunk {
            len: n as u32,
            locations,
        });
        self.limit_in_flight(store)
    }

    /// Waits for the oldest writes while more than `chunks_in_flight_per_stream` chunks' worth
    /// are in flight.
    fn limit_in_flight(&mut self, store: &Store) -> Result<()> {
        let per_chunk = self.protection.width() as usize;
        while self.pending.len()
            >= store.inner.config.chunks_in_flight_per_stream as usize * per_chunk
        {
            drop(self.complete_oldest()?);
        }
        Ok(())
    }

    /// Writes chunk `index` (`n` bytes in `pbuf`) as a Reed–Solomon stripe: `k` data shards
    /// (the chunk cut in `k`, the last zero-padded) and `m` parity shards computed from them,
    /// each sealed as its own needle and written to its own HDD, all at once. The chunk's
    /// buffer goes back to the pool; the shards own theirs until written.
    fn submit_stripe(
        &mut self,
        store: &Store,
        pbuf: PooledBuf,
        index: u32,
        n: usize,
        k: usize,
        m: usize,
    ) -> Result<()> {
        // A shard's needle index keeps the chunk index in 24 bits: an erasure-coded object
        // has at most 2^24 chunks (16 TiB at the smallest derived chunk of 1 MiB).
        if index >= schema::MAX_STRIPED_CHUNKS {
            let chunk_bytes = store.inner.config.chunk_size_bytes;
            return Err(Error::EntityTooLarge {
                size_bytes: self.size,
                max_bytes: schema::MAX_STRIPED_CHUNKS as u64 * chunk_bytes,
            });
        }
        let shard_len = schema::shard_bytes(n as u32, k as u8);
        let mut shards = crate::protection::split_stripe(
            &pbuf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + n],
            k,
            shard_len,
        );
        // The chunk buffer goes back to the pool before the parity is computed.
        drop(pbuf);
        crate::protection::add_parity(&mut shards, m);
        let needle_len = needle_bytes(shard_len);
        let places =
            store.reserve_copies(self.object_id, index, needle_len as u64, self.protection)?;
        let places = self.hold(places);
        let mut locations = Vec::with_capacity(k + m);
        for (s, (&(slot, offset), shard)) in places.iter().zip(&shards).enumerate() {
            let mut needle = AlignedBuf::new(needle_len);
            needle.set_len(needle_len);
            needle[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + shard_len].copy_from_slice(shard);
            let id = ChunkId {
                object_id: self.object_id,
                index: schema::shard_index(index, s),
            };
            seal_needle(&mut needle, id, shard_len);
            let device = store
                .data_device(slot)
                .expect("placement picks present devices");
            let ticket = device.submit_write(needle, offset)?.into_ticket();
            self.pending.push_back((None, device, ticket));
            locations.push(Location { slot, offset });
        }
        self.chunks.push(Chunk {
            len: n as u32,
            locations,
        });
        self.limit_in_flight(store)
    }

    /// Keeps reservations until the record is committed; returns their (slot, offset).
    fn hold(&mut self, places: Vec<(u32, Reservation)>) -> Vec<(u32, u64)> {
        places
            .into_iter()
            .map(|(slot, r)| {
                let offset = r.offset;
                self.reservations.push(r);
                (slot, offset)
            })
            .collect()
    }

    /// Waits for the oldest write in flight; returns its pool buffer, if it has one.
    fn complete_oldest(&mut self) -> Result<Option<PooledBuf>> {
        let (pbuf, device, ticket) = self.pending.pop_front().expect("a write in flight");
        let buf = device.device().complete_write(ticket)?;
        Ok(pbuf.map(|mut p| {
            p.restore(buf);
            p
        }))
    }

    /// Writes the last chunk and waits until every chunk is durable.
    ///
    /// Hybrid protection: an erasure-coded object of one chunk smaller than the profile's
    /// `replicate_below_bytes` is stored as M + 1 copies instead (the same drive failures
    /// survived): its K shards would each be a short read costing a whole access, K accesses
    /// per GET for nothing.
    pub(super) fn finish(mut self, store: &Store) -> Result<Written> {
        if let Protection::ErasureCoded { parity, .. } = self.protection {
            let pending_bytes = self.current.as_ref().map_or(0, |(_, n)| *n as u64);
            if self.chunks.is_empty() && pending_bytes < store.inner.config.replicate_below_bytes {
                self.protection = Protection::Replicas(parity + 1);
            }
        }
        self.submit(store)?;
        while !self.pending.is_empty() {
            drop(self.complete_oldest()?);
        }
        debug_assert_eq!(
            self.chunks.iter().map(|c| c.len as u64).sum::<u64>(),
            self.size
        );
        Ok(Written {
            run: ChunkRun {
                object_id: self.object_id,
                first_index: 0,
                data_shards: match self.protection {
                    Protection::ErasureCoded { data, .. } => data as u8,
                    Protection::Replicas(_) => 0,
                },
                chunks: std::mem::take(&mut self.chunks),
            },
            size: self.size,
            md5: std::mem::take(&mut self.md5).finalize().into(),
            reservations: std::mem::take(&mut self.reservations),
        })
    }
}

/// A random object ID for a new object version or part (needles carry it).
pub(super) fn new_object_id() -> u128 {
    u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// A put fed one buffer at a time ([`Store::begin_put`]), for callers that read the body
/// elsewhere (the S3 server reads the network in async code and hands over whole frames, so no
/// engine thread waits on a client). A body that ends within the inline threshold is kept in
/// memory and committed into the index; a longer one is written as chunks as it arrives.
/// Dropping the writer before [`ObjectWriter::finish`] commits nothing: the previous object,
/// if any, is untouched.
pub struct ObjectWriter {
    store: Store,
    bucket: String,
    key: String,
    opts: PutOptions,
    threshold: u64,
    protection: Protection,
    head: Vec<u8>,
    chunks: Option<ChunkWriter>,
}

impl ObjectWriter {
    /// Appends `data` to the object. Blocks only on devices (chunk writes), never on the caller.
    ///
    /// Errors: [`Error::EntityTooLarge`] past 5 TiB; device errors.
    ///
    /// Inside [`memory_only`](crate::store::memory_only), a write that stays within the
    /// inline threshold is buffered; one that would write chunks fails with
    /// [`Error::WouldBlock`] and changes nothing.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(chunks) = &mut self.chunks {
            crate::segment::may_wait()?;
            return chunks.write(&self.store, data);
        }
        if (self.head.len() + data.len()) as u64 <= self.threshold {
            self.head.extend_from_slice(data);
            return Ok(());
        }
        crate::segment::may_wait()?;
        let mut chunks = ChunkWriter::new(new_object_id(), MAX_OBJECT_BYTES, self.protection);
        chunks.write(&self.store, &std::mem::take(&mut self.head))?;
        chunks.write(&self.store, data)?;
        self.chunks = Some(chunks);
        Ok(())
    }

    /// Sets the flexible checksum the caller verified (stored with the object).
    pub fn set_verified_checksum(&mut self, algorithm: &str, base64: &str) {
        let cell = self
            .opts
            .verified_checksum
            .get_or_insert_with(Default::default);
        *cell.lock() = Some((algorithm.to_string(), base64.to_string()));
    }

    /// Commits the object, replacing any under its key atomically, once every chunk is
    /// durable; returns what HeadObject will.
    ///
    /// Errors: [`Error::BadDigest`] on a Content-MD5 mismatch; [`Error::NoSuchBucket`] if the
    /// bucket went away; device and metadata errors.
    pub fn finish(self) -> Result<ObjectInfo> {
        let (store, info, ticket) = self.commit(false)?;
        debug_assert!(ticket.is_none(), "finish waits for its commit");
        drop(store);
        Ok(info)
    }

    /// Whether [`ObjectWriter::finish_staged`] commits without waiting for a device on the
    /// calling thread: the object is inline (or empty), its bucket unversioned, and the
    /// record it replaces (if any) readable now. Run it inside
    /// [`memory_only`](crate::store::memory_only) to learn whether that record is in memory.
    ///
    /// Errors: [`Error::NoSuchBucket`]; metadata errors ([`Error::WouldBlock`] inside
    /// `memory_only` when the bucket's or the key's record is not in memory).
    pub fn finishes_in_memory(&self) -> Result<bool> {
        if self.chunks.is_some()
            || self.store.bucket(&self.bucket)?.versioning != Versioning::Unversioned
        {
            return Ok(false);
        }
        self.store.latest_record(&self.bucket, &self.key)?;
        Ok(true)
    }

    /// Commits as [`ObjectWriter::finish`] does, but stages the commit and returns a future
    /// that resolves once it is durable, so async code need not hand a small object's put
    /// to a blocking thread (the metadata committer thread leads the group commit). For a
    /// writer [`ObjectWriter::finishes_in_memory`] says yes to; any other commits here,
    /// waiting for its devices on this thread, and returns a ready future.
    ///
    /// Errors: as [`ObjectWriter::finish`], here or from the future.
    pub fn finish_staged(self) -> Result<StagedPut> {
        let (store, info, ticket) = self.commit(true)?;
        Ok(StagedPut {
            store,
            ticket,
            info: Some(info),
        })
    }

    /// Builds the record and commits it: with `stage`, returns the ticket of a commit it
    /// staged rather than waiting for it (see [`Store::stage_object`]).
    fn commit(self, stage: bool) -> Result<(Store, ObjectInfo, Option<crate::meta::Ticket>)> {
        let ObjectWriter {
            store,
            bucket,
            key,
            opts,
            head,
            chunks,
            ..
        } = self;
        let inline = chunks.is_none() && !head.is_empty();
        // Held until the commit below has applied its live space.
        let mut _reservations = Vec::new();
        let (size, md5, runs) = match chunks {
            None => (head.len() as u64, Md5::digest(&head).into(), Vec::new()),
            Some(chunks) => {
                let written = chunks.finish(&store)?;
                _reservations = written.reservations;
                let runs = if written.run.chunks.is_empty() {
                    Vec::new()
                } else {
                    vec![written.run]
                };
                (written.size, written.md5, runs)
            }
        };
        if opts.content_md5.is_some_and(|m| m != md5) {
            return Err(Error::BadDigest);
        }
        let mut record = ObjectRecord {
            size,
            etag: hex::encode(md5),
            content_type: opts
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".into()),
            last_modified_unix_ms: super::now_unix_ms(),
            user_metadata: opts.user_metadata,
            checksums: take_checksums(&opts.verified_checksum),
            part_sizes: Vec::new(),
            runs,
            inline,
            headers: opts.headers,
            upload_id: String::new(),
            version: 0,
            null_version: false,
            delete_marker: false,
        };
        let inline_data = inline.then_some(&head[..]);
        let mut delta = store.space_delta();
        delta.add_runs(&record.runs, 1);
        let condition = opts.condition.as_ref();
        let ticket = match stage && _reservations.is_empty() {
            true => store.stage_object(
                &bucket,
                &key,
                &mut record,
                inline_data,
                Batch::new(),
                delta,
                condition,
            )?,
            false => {
                store.commit_object(
                    &bucket,
                    &key,
                    &mut record,
                    inline_data,
                    Batch::new(),
                    delta,
                    condition,
                )?;
                None
            }
        };
        let info = ObjectInfo::from_record(&key, &record);
        Ok((store, info, ticket))
    }
}

impl Store {
    /// Picks `copies` distinct devices for a chunk and reserves room on each, skipping
    /// missing, failed and full devices, and never putting more than `protection` allows in
    /// one failure group; returns (slot, offset) per copy.
    ///
    /// A write that finds the pool at its reserve while the garbage collector holds
    /// reclaimable space stalls for it (see [`Store::wait_for_room`]) instead of failing.
    ///
    /// Errors: [`Error::InsufficientStorage`] when drives were skipped for want of room beyond
    /// their reserve; [`Error::NoSpace`] when fewer than `copies` devices are usable at all.
    fn reserve_copies(
        &self,
        object_id: u128,
        index: u32,
        bytes: u64,
        protection: Protection,
    ) -> Result<Vec<(u32, Reservation)>> {
        match self.try_reserve_copies(object_id, index, bytes, protection) {
            Err(Error::InsufficientStorage { .. }) if self.wait_for_room(protection.width()) => {
                self.try_reserve_copies(object_id, index, bytes, protection)
            }
            r => r,
        }
    }

    fn try_reserve_copies(
        &self,
        object_id: u128,
        index: u32,
        bytes: u64,
        protection: Protection,
    ) -> Result<Vec<(u32, Reservation)>> {
        let copies = protection.width();
        let usable: Vec<bool> = (0..self.inner.data.len() as u32)
            .map(|s| {
                self.data_device(s)
                    .is_some_and(|d| !d.device().is_poisoned())
            })
            .collect();
        let mut places = Vec::with_capacity(copies as usize);
        let mut full = false;
        let mut placer = StripePlacer::new(
            object_id,
            index,
            usable,
            &self.inner.config.failure_groups,
            protection.max_per_failure_group(),
        );
        while places.len() < copies as usize {
            let Some(slot) = placer.next_slot() else {
                if full {
                    return Err(self.insufficient_storage());
                }
                return Err(Error::NoSpace {
                    detail: format!(
                        "{copies} distinct data devices ({} at most per failure group) must take a chunk, and only {} of the pool's {} can",
                        protection.max_per_failure_group(),
                        places.len(),
                        self.inner.data.len()
                    ),
                });
            };
            let device = self.data_device(slot).expect("usable devices are present");
            match device.reserve(bytes, Stream::Client, &self.inner.meta) {
                Ok(r) => places.push((slot, r)),
                Err(Error::NoSpace { .. }) => {
                    full = true;
                    placer.skip(slot)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(places)
    }

    /// Stores an object from a stream, replacing any object under the same key atomically.
    ///
    /// Returns once the data and the metadata record are durable. Memory use is bounded by the
    /// chunk size x chunks in flight, not by the object size.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::InvalidKey`], [`Error::EntityTooLarge`] past 5 TiB,
    /// [`Error::BadDigest`] on a Content-MD5 mismatch, [`Error::Body`] if `body` fails (for
    /// example a checksum mismatch the caller's reader detects at the end): in every error case
    /// the previous object, if any, is untouched.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: &mut dyn Read,
        opts: PutOptions,
    ) -> Result<ObjectInfo> {
        let mut writer = self.begin_put(bucket, key, opts)?;
        // Read up to one byte past the inline threshold: a body that ends within it is stored
        // in the index; a longer one streams to the HDDs, starting with the bytes read here.
        let threshold = writer.threshold;
        let mut head = vec![0u8; threshold.min(crate::profile::MAX_INLINE_BYTES) as usize + 1];
        let head_len = fill(body, &mut head)?;
        writer.write(&head[..head_len])?;
        if let Some(chunks) = writer.chunks.as_mut() {
            chunks.fill_from(self, body)?;
        }
        writer.finish()
    }

    /// Starts a put fed one buffer at a time (see [`ObjectWriter`]).
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::InvalidKey`], [`Error::InsufficientStorage`]
    /// when the pool is down to its reserve.
    pub fn begin_put(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<ObjectWriter> {
        validate_key(key)?;
        self.note_client_request();
        let protection = self.bucket(bucket)?.protection;
        self.check_capacity(protection)?;
        Ok(ObjectWriter {
            store: self.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            opts,
            threshold: self.inline_threshold_bytes(),
            protection,
            head: Vec::new(),
            chunks: None,
        })
    }

    /// The size up to which a put is stored inline now: the profile's threshold while the
    /// index's tables fill under half of the SSD's table area, else 0 (small objects go to
    /// HDDs rather than crowd out the index).
    fn inline_threshold_bytes(&self) -> u64 {
        let lsm = self.inner.meta.lsm();
        if lsm.table_bytes() < lsm.table_area_bytes() / 2 {
            self.inner.config.inline_threshold_bytes
        } else {
            0
        }
    }

    /// Commits an object record as the key's new latest version, with its inline data (`Some`
    /// exactly when `record.inline`), `extra` changes and the live-space changes `delta`, in
    /// one batch while the bucket is known to exist; the version it replaces is retired as the
    /// bucket's versioning says (`store/versions.rs`). Assigns the record's version. With a
    /// `condition`, nothing is committed unless it holds on the object replaced.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        record: &mut ObjectRecord,
        inline_data: Option<&[u8]>,
        extra: Batch,
        delta: crate::space::SpaceDelta,
        condition: Option<&WriteCondition>,
    ) -> Result<()> {
        let staged =
            self.stage_object(bucket, key, record, inline_data, extra, delta, condition)?;
        match staged {
            Some(ticket) => self.wait_staged(ticket),
            None => Ok(()),
        }
    }

    /// As [`Store::commit_object`], but returns without waiting for a commit it could stage
    /// (an unversioned key's, with no `extra`): its ticket, to wait for; `None` when it
    /// committed (and waited) itself.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stage_object(
        &self,
        bucket: &str,
        key: &str,
        record: &mut ObjectRecord,
        inline_data: Option<&[u8]>,
        extra: Batch,
        delta: crate::space::SpaceDelta,
        condition: Option<&WriteCondition>,
    ) -> Result<Option<crate::meta::Ticket>> {
        let _ns = self.inner.namespace.read();
        let versioning = self.bucket(bucket)?.versioning;
        if versioning != Versioning::Unversioned || !extra.ops.is_empty() {
            let _key = self.key_lock(bucket, key);
            return self
                .commit_version_locked(
                    bucket,
                    key,
                    versioning,
                    record,
                    inline_data,
                    extra,
                    delta,
                    condition,
                )
                .map(|()| None);
        }
        // An unversioned key's new object replaces just its record and inline data: it is
        // staged under the key's lock, reading the key through the batches staged before it
        // (the condition is checked on the latest of them), and waited for outside it, so
        // writers of one key share a durable write as writers of many do. Outside the
        // namespace lock too: who takes it exclusively (bucket create and delete, repair
        // commits) waits for the staged commits first (`Store::namespace_exclusive`).
        let ticket = {
            let stripe = self.key_lock_stripe(bucket, key);
            let mut held = self.inner.key_locks[stripe].lock();
            let prepared = self.version_batch_locked(
                bucket,
                key,
                versioning,
                record,
                inline_data,
                delta,
                condition,
            );
            let (batch, delta) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    // A failed condition may have been read from staged batches: answered
                    // only once they are durable.
                    self.release_settled(held);
                    return Err(e);
                }
            };
            let ticket = self.stage_with_space(batch, delta)?;
            held.staged = Some(ticket);
            ticket
        };
        Ok(Some(ticket))
    }

    /// The object's metadata.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::DeleteMarker`].
    pub fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        self.head_object_version(bucket, key, None)
    }

    /// The metadata of one version of an object (the latest when `version` is `None`).
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`].
    pub fn head_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<ObjectInfo> {
        let found = self.version_at(bucket, key, version, &self.inner.meta.snapshot())?;
        Ok(ObjectInfo::from_record(key, &found.record))
    }

    /// Opens the object (or a range of it) for reading. The first chunk is read and verified
    /// before this returns, and every chunk of the range is checked to have a present drive, so
    /// a missing drive, or a corrupt chunk at the start, is reported here rather than
    /// mid-stream.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::DeleteMarker`],
    /// [`Error::InvalidRange`], [`Error::ObjectUnreadable`].
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectReader> {
        self.get_object_version(bucket, key, None, range)
    }

    /// Opens one version of an object (the latest when `version` is `None`) for reading, as
    /// [`Store::get_object`].
    ///
    /// Errors: as [`Store::get_object`]; [`Error::NoSuchVersion`].
    pub fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        range: Option<ByteRange>,
    ) -> Result<ObjectReader> {
        self.note_client_request();
        // Taken before the record is read: no segment it points into is freed until the
        // reader is dropped, even if the object is overwritten or moved meanwhile.
        let epoch = self.begin_read();
        // The record and its inline data are read at one snapshot: a concurrent overwrite
        // can never pair one version's record with another's bytes.
        let snapshot = self.inner.meta.snapshot();
        let found = self.version_at(bucket, key, version, &snapshot)?;
        let record = found.record;
        let (start, end) = match range {
            Some(r) => r.resolve(record.size)?,
            None => (0, record.size),
        };
        if record.inline {
            let data = match self.inner.meta.get_at(&found.inline_key, &snapshot)? {
                Some(v) => InlineData::decode(&v)?.data,
                None => Vec::new(),
            };
            if data.len() as u64 != record.size {
                return Err(Error::ObjectUnreadable {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    detail: format!(
                        "its inline data holds {} bytes, its record says {}",
                        data.len(),
                        record.size
                    ),
                });
            }
            return Ok(ObjectReader {
                store: self.clone(),
                bucket: bucket.to_string(),
                info: ObjectInfo::from_record(key, &record),
                chunks: Vec::new(),
                pos: start,
                start,
                end,
                next_fetch: 0,
                pending: VecDeque::new(),
                current: None,
                inline: Some(data),
                _epoch: epoch,
            });
        }
        // Chunks are read from the HDDs: not inside `memory_only`.
        crate::segment::may_wait()?;
        let mut chunks = Vec::new();
        let mut logical = 0u64;
        for run in &record.runs {
            for (i, c) in run.chunks.iter().enumerate() {
                let id = ChunkId {
                    object_id: run.object_id,
                    index: run.first_index + i as u32,
                };
                chunks.push((logical, id, c.clone(), run.data_shards));
                logical += c.len as u64;
            }
        }
        let next_fetch = chunks.partition_point(|(off, _, c, _)| off + c.len as u64 <= start);
        // A chunk with no copy (or fewer than K shards) on present drives fails the whole read
        // now, with the slots named, rather than cutting the stream off partway.
        for (index, (off, _, chunk, data_shards)) in chunks.iter().enumerate().skip(next_fetch) {
            if *off >= end {
                break;
            }
            let present = chunk
                .locations
                .iter()
                .filter(|l| self.location_present(**l))
                .count();
            if present < (*data_shards).max(1) as usize {
                let slots: Vec<String> = chunk
                    .locations
                    .iter()
                    .map(|l| format!("hdd{}", l.slot))
                    .collect();
                return Err(Error::ObjectUnreadable {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    detail: format!(
                        "chunk {index} is only on data drive {}, which is missing or was replaced: the store is degraded",
                        slots.join(", ")
                    ),
                });
            }
        }
        let mut reader = ObjectReader {
            store: self.clone(),
            bucket: bucket.to_string(),
            info: ObjectInfo::from_record(key, &record),
            chunks,
            pos: start,
            start,
            end,
            next_fetch,
            pending: VecDeque::new(),
            current: None,
            inline: None,
            _epoch: epoch,
        };
        if start < end {
            reader.advance().map_err(|e| match e.into_inner() {
                Some(inner) => match inner.downcast::<Error>() {
                    Ok(err) => *err,
                    Err(other) => Error::Body(io::Error::other(other)),
                },
                None => Error::ObjectUnreadable {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    detail: "read failed".into(),
                },
            })?;
        }
        Ok(reader)
    }

    /// Deletes an object (DeleteObject without a version ID). In an unversioned bucket the
    /// key's one version is gone; in a versioned one a delete marker becomes the latest
    /// version (the `null` one while suspended) and the data stays as noncurrent versions.
    /// Deleting a key that does not exist succeeds (S3 semantics).
    ///
    /// Errors: [`Error::NoSuchBucket`].
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<DeleteOutcome> {
        self.delete_object_if(bucket, key, None)
    }

    /// Deletes an object if `condition` holds on it (checked under the key's lock, with the
    /// commit); with no condition, as [`Store::delete_object`].
    ///
    /// Errors: [`Error::NoSuchBucket`]; [`Error::PreconditionFailed`].
    pub fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        condition: Option<&WriteCondition>,
    ) -> Result<DeleteOutcome> {
        let (outcome, ticket) = self.stage_delete(bucket, key, condition)?;
        if let Some(ticket) = ticket {
            self.wait_staged(ticket)?;
        }
        Ok(outcome)
    }

    /// Whether [`Store::delete_object_staged`] commits without waiting for a device on the
    /// calling thread: the bucket is unversioned and the key's record readable now (run it
    /// inside [`memory_only`](crate::store::memory_only) to learn whether it is in memory).
    ///
    /// Errors: [`Error::NoSuchBucket`]; metadata errors ([`Error::WouldBlock`] inside
    /// `memory_only`).
    pub fn delete_finishes_in_memory(&self, bucket: &str, key: &str) -> Result<bool> {
        if self.bucket(bucket)?.versioning != Versioning::Unversioned {
            return Ok(false);
        }
        self.latest_record(bucket, key)?;
        Ok(true)
    }

    /// Deletes an object as [`Store::delete_object`], but stages the commit and returns a
    /// future that resolves once it is durable (see [`ObjectWriter::finish_staged`]): for a
    /// key [`Store::delete_finishes_in_memory`] says yes to; any other commits here, waiting
    /// on this thread, and returns a ready future.
    ///
    /// Errors: as [`Store::delete_object`], here or from the future.
    pub fn delete_object_staged(&self, bucket: &str, key: &str) -> Result<Staged<DeleteOutcome>> {
        let (outcome, ticket) = self.stage_delete(bucket, key, None)?;
        Ok(Staged {
            store: self.clone(),
            ticket,
            info: Some(outcome),
        })
    }

    /// As [`Store::delete_object_if`], but an unversioned key's delete is staged under the
    /// key's lock (as [`Store::stage_object`] stages a put) and its ticket returned, to wait
    /// for; versioned deletes commit (and wait) here.
    fn stage_delete(
        &self,
        bucket: &str,
        key: &str,
        condition: Option<&WriteCondition>,
    ) -> Result<(DeleteOutcome, Option<crate::meta::Ticket>)> {
        let _ns = self.inner.namespace.read();
        let versioning = self.bucket(bucket)?.versioning;
        if versioning != Versioning::Unversioned {
            let _key = self.key_lock(bucket, key);
            let mut marker = delete_marker_record();
            self.commit_version_locked(
                bucket,
                key,
                versioning,
                &mut marker,
                None,
                Batch::new(),
                self.space_delta(),
                condition,
            )?;
            let outcome = DeleteOutcome {
                version: Some(VersionId::of(&marker)),
                delete_marker: true,
            };
            return Ok((outcome, None));
        }
        let stripe = self.key_lock_stripe(bucket, key);
        let mut held = self.inner.key_locks[stripe].lock();
        let record = self.latest_record(bucket, key)?;
        // An answer read from staged batches (no object, or a failed condition) is given
        // only once they are durable.
        if let Some(c) = condition {
            if let Err(e) = c.check(bucket, key, record.as_ref()) {
                self.release_settled(held);
                return Err(e);
            }
        }
        let Some(record) = record else {
            self.release_settled(held);
            return Ok((DeleteOutcome::default(), None));
        };
        let mut batch = Batch::new();
        batch.delete(schema::object_key(bucket, key));
        if record.inline {
            batch.delete(schema::inline_key(bucket, key));
        }
        // One metadata commit: the HDDs are not touched; the space is reclaimed later.
        let mut delta = self.space_delta();
        delta.add_runs(&record.runs, -1);
        let ticket = self.stage_with_space(batch, delta)?;
        held.staged = Some(ticket);
        Ok((DeleteOutcome::default(), Some(ticket)))
    }

    /// Sets (`Some`) or removes (`None`) stored headers of one version of an object (the
    /// latest when `version` is `None`), in place: its data, ETag, Last-Modified and version
    /// ID stay. Names are lower-case; the layers above keep their own per-object attributes
    /// here under `x-hoard-` names (the S3 layer's ACL and tags), so they are replaced and
    /// deleted with the version.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`]; metadata errors.
    pub fn update_object_headers(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        changes: &[(String, Option<String>)],
    ) -> Result<ObjectInfo> {
        let _ns = self.inner.namespace.read();
        self.bucket(bucket)?;
        let _key = self.key_lock(bucket, key);
        let found = self.version_at(bucket, key, version, &self.inner.meta.snapshot())?;
        let mut record = found.record;
        apply_header_changes(&mut record.headers, changes);
        let mut batch = Batch::new();
        batch.put(found.record_key, record.encode());
        // The same locations stay referenced: no live-space change.
        self.commit(batch)?;
        Ok(ObjectInfo::from_record(key, &record))
    }

    /// The lock serialising commits to one key (striped by a hash of bucket and key): held
    /// from reading the record a commit replaces to the commit, so its space is dropped once.
    /// Every batch staged under the stripe has settled when it is granted, so its holder reads
    /// what readers see.
    pub(super) fn key_lock(&self, bucket: &str, key: &str) -> super::KeyLock<'_> {
        self.lock_stripe(self.key_lock_stripe(bucket, key))
    }

    /// Releases a held stripe, then waits for the batches staged under it to settle: for an
    /// answer read through them that commits nothing of its own.
    fn release_settled(&self, held: super::KeyLock<'_>) {
        let pending = held.staged;
        drop(held);
        if let Some(ticket) = pending {
            self.inner.meta.wait_settled(ticket);
        }
    }

    /// Stripe `stripe` of the key locks, once every batch staged under it has settled.
    pub(super) fn lock_stripe(&self, stripe: usize) -> super::KeyLock<'_> {
        let mut held = self.inner.key_locks[stripe].lock();
        if let Some(ticket) = held.staged.take() {
            self.inner.meta.wait_settled(ticket);
        }
        held
    }

    /// The stripe of [`Store::key_lock`] that serialises `key` of `bucket`.
    pub(super) fn key_lock_stripe(&self, bucket: &str, key: &str) -> usize {
        let h = xxhash_rust::xxh3::xxh3_64(&schema::object_key(bucket, key)) as usize;
        h % self.inner.key_locks.len()
    }
}

/// A commit that is staged ([`ObjectWriter::finish_staged`],
/// [`Store::delete_object_staged`]): resolves to its outcome once the commit is durable and
/// visible. Dropped before that, the commit still happens; only its outcome is not waited
/// for.
pub struct Staged<T> {
    store: Store,
    ticket: Option<crate::meta::Ticket>,
    info: Option<T>,
}

/// A put whose commit is staged: resolves to what HeadObject will answer.
pub type StagedPut = Staged<ObjectInfo>;

impl<T: Unpin> std::future::Future for Staged<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if let Some(ticket) = self.ticket {
            match self.store.inner.meta.poll_settled(ticket, cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(result) => {
                    self.ticket = None;
                    self.store.advance_epoch_after_failures();
                    result?;
                }
            }
        }
        std::task::Poll::Ready(Ok(self.info.take().expect("a staged commit resolves once")))
    }
}

impl<T> Drop for Staged<T> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.store.inner.meta.abandon(ticket);
        }
    }
}

/// Reads in flight for one chunk.
enum FetchIo {
    /// The read of one copy (`replicas:N`).
    Copy(PendingRead),
    /// The reads of the K data shards of a stripe (`ec:K+M`), and why any could not start.
    Stripe(Vec<(usize, PendingRead)>, Vec<String>),
}

/// A chunk being fetched: its index, its buffer, its reads in flight and where the copy read
/// is (the first shard's location for a stripe).
type Fetch = std::result::Result<(usize, PooledBuf, FetchIo, Location), Error>;

/// A streaming reader of an object or range ([`std::io::Read`]). Each chunk is one device read,
/// verified (crc32c, identity, length) before any byte of it is returned; up to
/// `chunks_in_flight_per_stream` chunks are read ahead.
pub struct ObjectReader {
    store: Store,
    bucket: String,
    info: ObjectInfo,
    /// (logical offset, identity, chunk, data shards: 0 for copies, K for a stripe).
    chunks: Vec<(u64, ChunkId, Chunk, u8)>,
    pos: u64,
    start: u64,
    end: u64,
    next_fetch: usize,
    pending: VecDeque<Fetch>,
    current: Option<(PooledBuf, usize, usize)>,
    /// The whole object, when it is stored inline.
    inline: Option<Vec<u8>>,
    /// Keeps the segments the record points into from being freed while it reads.
    _epoch: crate::space::ReadEpoch,
}

impl ObjectReader {
    /// The object's metadata.
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// The byte range being read, `[start, end)`.
    pub fn range(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    /// Whether the object is stored inline in the metadata index (its reads touch no HDD and
    /// hold no chunk buffer).
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Whether the rest of the range is in memory (the object is inline, or the rest lies in
    /// the chunk already read): reading it then waits for no device.
    pub fn rest_in_memory(&self) -> bool {
        if self.inline.is_some() || self.pos >= self.end {
            return true;
        }
        self.current
            .as_ref()
            .is_some_and(|(_, at, to)| (to - at) as u64 >= self.end - self.pos)
    }

    fn unreadable(&self, detail: String) -> io::Error {
        io::Error::other(Error::ObjectUnreadable {
            bucket: self.bucket.clone(),
            key: self.info.key.clone(),
            detail,
        })
    }

    /// Submits reads ahead while buffers are free; blocks for a buffer only when nothing of this
    /// stream is in flight or held.
    fn fetch_ahead(&mut self) {
        let limit = self.store.inner.config.chunks_in_flight_per_stream as usize;
        while self.pending.len() < limit
            && self.next_fetch < self.chunks.len()
            && self.chunks[self.next_fetch].0 < self.end
        {
            let holding = !self.pending.is_empty() || self.current.is_some();
            let mut pbuf = match self.store.inner.buffers.try_get() {
                Some(b) => b,
                None if holding => return,
                None => self.store.inner.buffers.get(),
            };
            let index = self.next_fetch;
            self.next_fetch += 1;
            let (_, _, chunk, data_shards) = &self.chunks[index];
            if *data_shards > 0 {
                let first = chunk.locations[0];
                let mut failures = Vec::new();
                let reads = self.submit_shards(index, 0..*data_shards as usize, &mut failures);
                self.pending
                    .push_back(Ok((index, pbuf, FetchIo::Stripe(reads, failures), first)));
                continue;
            }
            // The first copy on a present drive; the others are read only if it fails.
            let fetch = chunk
                .locations
                .iter()
                .find_map(|loc| {
                    let dev = self.store.readable_location(*loc)?;
                    let io = dev.submit_read(pbuf.take(), loc.offset, chunk.len as usize);
                    Some(io.map(|io| (index, loc, io)))
                })
                .unwrap_or_else(|| {
                    Err(Error::ObjectUnreadable {
                        bucket: self.bucket.clone(),
                        key: self.info.key.clone(),
                        detail: format!(
                            "chunk {index}: no present device holds it (slots {:?})",
                            chunk.locations.iter().map(|l| l.slot).collect::<Vec<_>>()
                        ),
                    })
                });
            self.pending
                .push_back(fetch.map(|(index, loc, io)| (index, pbuf, FetchIo::Copy(io), *loc)));
        }
    }

    /// Starts reading shards `shards` of erasure-coded chunk `index`, each into a buffer of
    /// its own; a shard whose drive is absent or refuses the read goes to `failures`.
    fn submit_shards(
        &self,
        index: usize,
        shards: std::ops::Range<usize>,
        failures: &mut Vec<String>,
    ) -> Vec<(usize, PendingRead)> {
        let (_, _, chunk, data_shards) = &self.chunks[index];
        let shard_len = schema::shard_bytes(chunk.len, *data_shards);
        let mut in_flight = Vec::new();
        for s in shards {
            let loc = chunk.locations[s];
            let Some(dev) = self.store.readable_location(loc) else {
                failures.push(format!(
                    "shard {s} on slot {}: drive absent or failed",
                    loc.slot
                ));
                continue;
            };
            match dev.submit_read(
                AlignedBuf::new(needle_bytes(shard_len)),
                loc.offset,
                shard_len,
            ) {
                Ok(io) => in_flight.push((s, io)),
                Err(e) => failures.push(format!("shard {s} on slot {}: {e}", loc.slot)),
            }
        }
        in_flight
    }

    /// Waits for shard reads of chunk `index`; keeps each good (verified) shard's bytes in
    /// `good`, and says why of the others in `failures`.
    fn collect_shards(
        &self,
        index: usize,
        in_flight: Vec<(usize, PendingRead)>,
        good: &mut [Option<Vec<u8>>],
        failures: &mut Vec<String>,
    ) {
        let (_, id, chunk, data_shards) = &self.chunks[index];
        let shard_len = schema::shard_bytes(chunk.len, *data_shards);
        for (s, io) in in_flight {
            let loc = chunk.locations[s];
            let shard_id = ChunkId {
                object_id: id.object_id,
                index: schema::shard_index(id.index, s),
            };
            let device = self
                .store
                .data_device(loc.slot)
                .map_or(String::new(), |d| d.device().name().to_string());
            let read = self.store.wait_read(loc.slot, io);
            let checked = read.and_then(|buf| {
                verify_needle(&device, loc.offset, &buf, shard_id, shard_len).map(|()| buf)
            });
            match checked {
                Ok(buf) => {
                    good[s] =
                        Some(buf[NEEDLE_HEADER_BYTES..NEEDLE_HEADER_BYTES + shard_len].to_vec())
                }
                Err(e) => failures.push(format!("shard {s} on slot {}: {e}", loc.slot)),
            }
        }
    }

    /// Completes erasure-coded chunk `index` into `out` (its bytes after a needle header's
    /// room) from the data shards read ahead (`in_flight`; failures so far in `failures`):
    /// with all K data shards good nothing is decoded (the healthy path); for each one absent,
    /// failed or corrupt a parity shard is read and the missing data reconstructed
    /// (Reed–Solomon, `reed-solomon-simd`). Bad shards are logged by drive (repair comes with
    /// rebuild).
    ///
    /// Errors: [`Error::ObjectUnreadable`] when fewer than K shards are good, naming each.
    fn read_stripe(
        &self,
        index: usize,
        in_flight: Vec<(usize, PendingRead)>,
        mut failures: Vec<String>,
        mut out: AlignedBuf,
    ) -> io::Result<AlignedBuf> {
        let (_, _, chunk, data_shards) = &self.chunks[index];
        let k = *data_shards as usize;
        let m = chunk.locations.len() - k;
        let len = chunk.len as usize;
        let shard_len = schema::shard_bytes(chunk.len, *data_shards);
        let mut good: Vec<Option<Vec<u8>>> = vec![None; k + m];
        self.collect_shards(index, in_flight, &mut good, &mut failures);
        let mut have = good.iter().filter(|g| g.is_some()).count();
        let mut next_parity = k;
        while have < k && next_parity < k + m {
            let take = (k - have).min(k + m - next_parity);
            let parity = self.submit_shards(index, next_parity..next_parity + take, &mut failures);
            self.collect_shards(index, parity, &mut good, &mut failures);
            next_parity += take;
            have = good.iter().filter(|g| g.is_some()).count();
        }
        if have < k {
            return Err(self.unreadable(format!(
                "chunk {index}: {have} of its {} shards are good and it needs {k} ({})",
                k + m,
                failures.join("; ")
            )));
        }
        if good[..k].iter().any(Option::is_none) {
            crate::protection::restore_data_shards(k, m, &mut good).map_err(|e| {
                self.unreadable(format!("chunk {index}: reconstruction failed: {e}"))
            })?;
            tracing::warn!(
                bucket = %self.bucket,
                key = %self.info.key,
                chunk = index,
                "reconstructed a chunk from parity: {}",
                failures.join("; ")
            );
        }
        if !failures.is_empty() {
            self.store.queue_repair(&self.bucket, &self.info.key);
        }
        out.set_len(NEEDLE_HEADER_BYTES + len);
        for (s, shard) in good[..k].iter().enumerate() {
            let shard = shard
                .as_ref()
                .expect("every data shard is good or restored");
            let from = (s * shard_len).min(len);
            let to = (from + shard_len).min(len);
            out[NEEDLE_HEADER_BYTES + from..NEEDLE_HEADER_BYTES + to]
                .copy_from_slice(&shard[..to - from]);
        }
        Ok(out)
    }

    /// Checks a copy of chunk `index` read from `loc` (crc32c, identity, length).
    fn verify_copy(
        &self,
        index: usize,
        loc: Location,
        buf: &[u8],
    ) -> std::result::Result<(), String> {
        let (_, id, chunk, _) = &self.chunks[index];
        let device = self
            .store
            .data_device(loc.slot)
            .map_or(String::new(), |d| d.device().name().to_string());
        verify_needle(&device, loc.offset, buf, *id, chunk.len as usize).map_err(|e| e.to_string())
    }

    /// Chunk `index` from its other copies, after the copy at `failed` could not be read or
    /// verified (`why`); `spare` is a buffer to read into, if one survived. The first good
    /// copy is returned; the reader never sees the bad one.
    ///
    /// Errors: [`Error::ObjectUnreadable`] naming every copy and why it failed.
    fn read_other_copies(
        &self,
        index: usize,
        failed: Location,
        why: String,
        spare: Option<AlignedBuf>,
    ) -> io::Result<AlignedBuf> {
        let chunk = &self.chunks[index].2;
        let buffer_bytes = needle_bytes(self.store.inner.config.chunk_size_bytes as usize);
        let mut spare = spare.unwrap_or_else(|| AlignedBuf::new(buffer_bytes));
        let mut failures = vec![format!("slot {}: {why}", failed.slot)];
        for &other in chunk.locations.iter().filter(|l| **l != failed) {
            let Some(dev) = self.store.readable_location(other) else {
                failures.push(format!("slot {}: drive absent or failed", other.slot));
                continue;
            };
            let read = dev
                .submit_read(spare, other.offset, chunk.len as usize)
                .and_then(|io| self.store.wait_read(other.slot, io));
            match read {
                Ok(buf) => match self.verify_copy(index, other, &buf) {
                    Ok(()) => {
                        tracing::warn!(
                            bucket = %self.bucket,
                            key = %self.info.key,
                            chunk = index,
                            failed_slot = failed.slot,
                            served_slot = other.slot,
                            "read a chunk from another copy: {why}"
                        );
                        self.store.queue_repair(&self.bucket, &self.info.key);
                        return Ok(buf);
                    }
                    Err(e) => {
                        failures.push(format!("slot {}: {e}", other.slot));
                        spare = buf;
                    }
                },
                Err(e) => {
                    failures.push(format!("slot {}: {e}", other.slot));
                    spare = AlignedBuf::new(buffer_bytes);
                }
            }
        }
        Err(self.unreadable(format!(
            "chunk {index}: no copy could be read ({})",
            failures.join("; ")
        )))
    }

    /// Makes `current` hold the next chunk's bytes within the range.
    fn advance(&mut self) -> io::Result<()> {
        self.current = None;
        self.fetch_ahead();
        let Some(fetch) = self.pending.pop_front() else {
            return Err(self.unreadable("no chunk covers the requested bytes".into()));
        };
        let (index, mut pbuf, io, loc) = fetch.map_err(io::Error::other)?;
        let io = match io {
            FetchIo::Copy(io) => io,
            FetchIo::Stripe(reads, failures) => {
                let buf = self.read_stripe(index, reads, failures, pbuf.take())?;
                return self.hold(index, pbuf, buf);
            }
        };
        let first = match self.store.wait_read(loc.slot, io) {
            Ok(buf) => match self.verify_copy(index, loc, &buf) {
                Ok(()) => Ok(buf),
                Err(why) => Err((why, Some(buf))),
            },
            Err(e) => Err((e.to_string(), None)),
        };
        let buf = match first {
            Ok(buf) => buf,
            Err((why, spare)) => self.read_other_copies(index, loc, why, spare)?,
        };
        self.hold(index, pbuf, buf)
    }

    /// Makes chunk `index`, whose bytes `buf` holds after a needle header's room, the current
    /// one, and reads ahead.
    fn hold(&mut self, index: usize, mut pbuf: PooledBuf, buf: AlignedBuf) -> io::Result<()> {
        pbuf.restore(buf);
        let (logical, _, chunk, _) = &self.chunks[index];
        let from = self.pos.max(*logical) - logical;
        let to = self.end.min(logical + chunk.len as u64) - logical;
        self.current = Some((
            pbuf,
            NEEDLE_HEADER_BYTES + from as usize,
            NEEDLE_HEADER_BYTES + to as usize,
        ));
        self.fetch_ahead();
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.pos >= self.end {
            return Ok(0);
        }
        if let Some(data) = &self.inline {
            let n = out.len().min((self.end - self.pos) as usize);
            let at = self.pos as usize;
            out[..n].copy_from_slice(&data[at..at + n]);
            self.pos += n as u64;
            return Ok(n);
        }
        loop {
            if let Some((buf, at, to)) = self.current.as_mut() {
                if *at < *to {
                    let n = out.len().min(*to - *at);
                    out[..n].copy_from_slice(&buf[*at..*at + n]);
                    *at += n;
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            self.advance()?;
        }
    }
}

/// Sets (`Some`) or removes (`None`) stored headers by name.
pub(super) fn apply_header_changes(
    headers: &mut Vec<(String, String)>,
    changes: &[(String, Option<String>)],
) {
    for (name, value) in changes {
        headers.retain(|(n, _)| n != name);
        if let Some(v) = value {
            headers.push((name.clone(), v.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Scan;
    use crate::{Profile, StoreOptions};

    /// Every inline key belongs to an object whose record says inline, and the other way round,
    /// through puts, overwrites of either kind and deletes.
    #[test]
    fn inline_data_exists_exactly_for_inline_records() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::parse(
            r#"
name = "inline"
description = "inline test"
[chassis]
cpu_cores = 2
memory_bytes = 1_073_741_824
[ssd]
count = 1
size_bytes = 67_108_864
seq_mb_s = 250
random_read_iops = 170
[hdd]
count = 2
size_bytes = 134_217_728
seq_mb_s = 250
random_read_iops = 170
[files]
ssd = ["ssd0.img"]
hdd = ["hdd0.img", "hdd1.img"]
[engine]
chunk_size_bytes = 1048576
segment_size_bytes = 2097152
"#,
        )
        .unwrap();
        let store = Store::open(&StoreOptions {
            profile,
            data_dir: dir.path().to_path_buf(),
            format_blank: true,
            io_backend: None,
        })
        .unwrap();
        let threshold = store.config().inline_threshold_bytes as usize;
        assert_eq!(threshold, 16 << 10, "250 MB/s x 5.9 ms / 64 -> 16 KiB");
        store.create_bucket("bkt", "o").unwrap();
        let put = |key: &str, len: usize| {
            store
                .put_object("bkt", key, &mut &vec![7u8; len][..], PutOptions::default())
                .unwrap();
        };
        put("a", 10);
        put("a", threshold + 1);
        put("b", threshold + 1);
        put("b", threshold);
        put("c", 0);
        put("d", 5);
        put("e", 5);
        store.delete_object("bkt", "e").unwrap();
        let mut inline_records = Vec::new();
        let mut inline_keys = Vec::new();
        store
            .inner
            .meta
            .scan(b"", &mut |k, v| {
                if let Some(rest) = k.strip_prefix(b"o/bkt\0") {
                    if ObjectRecord::decode(v).unwrap().inline {
                        inline_records.push(rest.to_vec());
                    }
                } else if let Some(rest) = k.strip_prefix(b"i/bkt\0") {
                    inline_keys.push(rest.to_vec());
                }
                Scan::Continue
            })
            .unwrap();
        assert_eq!(inline_records, [b"b".to_vec(), b"d".to_vec()]);
        assert_eq!(inline_keys, inline_records);
    }
}
