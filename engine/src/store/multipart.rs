//! Multipart uploads (CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads; Amazon S3 API Reference).
//!
//! A part is written like an object (its own chunk run, durable) and committed as a part record.
//! Complete validates the named parts and commits, in one batch, the object record (the parts'
//! chunk runs concatenated, ETag = MD5 of the part MD5s + `-N`) and the removal of the upload
//! and all its part records: the object appears whole or not at all.
//!
//! Must not import `device`; of the store's files only `objects` and the store itself.

use std::io::Read;

use md5::{Digest, Md5};

use super::objects::{new_object_id, ChecksumCell, ChunkWriter, ObjectInfo, WriteCondition};
use super::{validate_key, Store, MAX_OBJECT_BYTES};
use crate::error::{Error, Result};
use crate::meta::{Batch, Scan};
use crate::schema::{self, ObjectRecord, PartRecord, UploadRecord};

/// Smallest part but the last, in bytes (S3: 5 MiB).
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// Largest part, in bytes (S3: 5 GiB).
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// Highest part number (S3: 10,000).
pub const MAX_PART_NUMBER: u32 = 10_000;

/// The stored header of a completed multipart object with flexible checksums: its parts'
/// checksums (base64, of the upload's algorithm) in part order, comma-separated
/// (`engine/FORMAT.md`, "Object headers"); never sent as a response header.
pub const PART_CHECKSUMS_HEADER: &str = "x-hoard-part-checksums";

/// A part named in CompleteMultipartUpload.
#[derive(Clone, Debug)]
pub struct CompletedPart {
    /// Part number.
    pub part_number: u32,
    /// ETag the client got for it (quotes optional).
    pub etag: String,
    /// Flexible checksums the client names for it, (algorithm, base64 value): each must match
    /// the part's stored checksum.
    pub checksums: Vec<(String, String)>,
}

/// One part fed one buffer at a time ([`Store::begin_part`]); see
/// [`ObjectWriter`](super::ObjectWriter). Dropping it before [`PartWriter::finish`] commits
/// nothing.
pub struct PartWriter {
    store: Store,
    bucket: String,
    key: String,
    upload_id: String,
    part_number: u32,
    content_md5: Option<[u8; 16]>,
    checksum: Option<ChecksumCell>,
    chunks: ChunkWriter,
}

impl PartWriter {
    /// Appends `data` to the part. Blocks only on devices, never on the caller.
    ///
    /// Errors: [`Error::EntityTooLarge`] past 5 GiB; device errors.
    ///
    /// Inside [`memory_only`](crate::store::memory_only) it fails with
    /// [`Error::WouldBlock`] and changes nothing.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        crate::segment::may_wait()?;
        self.chunks.write(&self.store, data)
    }

    /// Sets the flexible checksum the caller verified (stored with the part).
    pub fn set_verified_checksum(&mut self, algorithm: &str, base64: &str) {
        let cell = self.checksum.get_or_insert_with(Default::default);
        *cell.lock() = Some((algorithm.to_string(), base64.to_string()));
    }

    /// Commits the part (replacing one of the same number) once its chunks are durable.
    ///
    /// Errors: [`Error::BadDigest`] on a Content-MD5 mismatch; [`Error::NoSuchUpload`] if the
    /// upload completed or was aborted meanwhile; device and metadata errors.
    pub fn finish(self) -> Result<PartInfo> {
        let PartWriter {
            store,
            bucket,
            key,
            upload_id,
            part_number,
            content_md5,
            checksum,
            chunks,
        } = self;
        let written = chunks.finish(&store)?;
        if content_md5.is_some_and(|m| m != written.md5) {
            return Err(Error::BadDigest);
        }
        let record = PartRecord {
            size: written.size,
            etag: hex::encode(written.md5),
            last_modified_unix_ms: super::now_unix_ms(),
            checksums: super::objects::checksums_of(&checksum),
            run: written.run,
        };
        let _guard = store.upload_lock(&upload_id);
        // The upload may have been completed or aborted while the data was written.
        store.upload(&bucket, &key, &upload_id)?;
        let part_key = schema::part_key(&upload_id, part_number);
        let mut delta = store.space_delta();
        delta.add_runs(std::slice::from_ref(&record.run), 1);
        if let Some(old) = store.inner.meta.get(&part_key)? {
            delta.add_runs(std::slice::from_ref(&PartRecord::decode(&old)?.run), -1);
        }
        let mut batch = Batch::new();
        batch.put(part_key, record.encode());
        store.commit_with_space(batch, &delta)?;
        drop(written.reservations);
        Ok(PartInfo {
            part_number,
            size: record.size,
            etag: record.etag,
            last_modified_unix_ms: record.last_modified_unix_ms,
            checksums: record.checksums,
        })
    }
}

/// What a multipart upload fixes at creation (CreateMultipartUpload) for the final object.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Content-Type (default `binary/octet-stream`).
    pub content_type: Option<String>,
    /// `x-amz-meta-*` pairs (name without the prefix).
    pub user_metadata: Vec<(String, String)>,
    /// Standard response headers (see [`PutOptions::headers`](super::PutOptions::headers)).
    pub headers: Vec<(String, String)>,
    /// Checksum algorithm every part carries (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`,
    /// `SHA256`), if any.
    pub checksum_algorithm: Option<String>,
    /// `COMPOSITE` or `FULL_OBJECT`, with `checksum_algorithm`.
    pub checksum_type: Option<String>,
}

/// Computes a multipart object's checksum from its parts' (Amazon S3 User Guide, "Checking
/// object integrity": composite and full-object checksums): called with the upload's algorithm,
/// its checksum type and each part's (size in bytes, base64 checksum) in order; returns the
/// object's base64 value. The maths belongs to the caller (the S3 layer owns the algorithms).
pub type ChecksumCombiner = dyn Fn(&str, &str, &[(u64, String)]) -> Result<String> + Sync;

/// An uploaded part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// Part number.
    pub part_number: u32,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes (hex MD5).
    pub etag: String,
    /// Uploaded, Unix milliseconds.
    pub last_modified_unix_ms: u64,
    /// Flexible checksums: (algorithm, base64 value).
    pub checksums: Vec<(String, String)>,
}

/// A page of ListParts.
#[derive(Clone, Debug, Default)]
pub struct PartsPage {
    /// Parts after the marker, in order.
    pub parts: Vec<PartInfo>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// Last part number returned, when truncated.
    pub next_part_number_marker: Option<u32>,
}

/// An upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    /// Object key.
    pub key: String,
    /// Upload ID.
    pub upload_id: String,
    /// Initiated, Unix milliseconds.
    pub initiated_unix_ms: u64,
    /// Owner's access key ID.
    pub owner: String,
}

/// A page of ListMultipartUploads.
#[derive(Clone, Debug, Default)]
pub struct UploadsPage {
    /// Uploads in (key, upload ID) order.
    pub uploads: Vec<UploadInfo>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// (key, upload ID) to continue after, when truncated.
    pub next_marker: Option<(String, String)>,
}

use schema::UPLOAD_ID_LEN;

fn strip_quotes(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

impl Store {
    pub(super) fn upload_lock(&self, upload_id: &str) -> parking_lot::MutexGuard<'_, ()> {
        self.inner.upload_locks[self.upload_lock_stripe(upload_id)].lock()
    }

    /// Which of `upload_locks` guards `upload_id`.
    pub(super) fn upload_lock_stripe(&self, upload_id: &str) -> usize {
        let h = xxhash_rust::xxh3::xxh3_64(upload_id.as_bytes()) as usize;
        h % self.inner.upload_locks.len()
    }

    fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
        let no_such = || Error::NoSuchUpload {
            upload_id: upload_id.to_string(),
        };
        if upload_id.len() != UPLOAD_ID_LEN || !upload_id.bytes().all(|c| c.is_ascii_hexdigit()) {
            self.bucket(bucket)?;
            return Err(no_such());
        }
        match self
            .inner
            .meta
            .get(&schema::upload_key(bucket, key, upload_id))?
        {
            Some(v) => UploadRecord::decode(&v),
            None => {
                self.bucket(bucket)?;
                Err(no_such())
            }
        }
    }

    fn parts(&self, upload_id: &str, after: u32) -> Result<Vec<(u32, PartRecord)>> {
        let prefix = schema::part_prefix(upload_id);
        let mut out = Vec::new();
        let mut error = None;
        self.inner.meta.scan(
            &schema::part_key(upload_id, after.saturating_add(1)),
            &mut |k, v| {
                let Some(num) = k.strip_prefix(prefix.as_slice()) else {
                    return Scan::Stop;
                };
                let Ok(num) = <[u8; 4]>::try_from(num) else {
                    return Scan::Stop;
                };
                match PartRecord::decode(v) {
                    Ok(p) => out.push((u32::from_be_bytes(num), p)),
                    Err(e) => {
                        error = Some(e);
                        return Scan::Stop;
                    }
                }
                Scan::Continue
            },
        )?;
        match error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Starts a multipart upload owned by `owner`; returns its upload ID.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::InvalidKey`], [`Error::InsufficientStorage`]
    /// when the pool is down to its reserve.
    pub fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        owner: &str,
        opts: UploadOptions,
    ) -> Result<String> {
        validate_key(key)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let record = UploadRecord {
            initiated_unix_ms: super::now_unix_ms(),
            owner: owner.to_string(),
            content_type: opts
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".into()),
            user_metadata: opts.user_metadata,
            checksum_algorithm: opts.checksum_algorithm.unwrap_or_default(),
            headers: opts.headers,
            checksum_type: opts.checksum_type.unwrap_or_default(),
        };
        let protection = self.bucket(bucket)?.protection;
        self.check_capacity(protection)?;
        let _ns = self.inner.namespace.read();
        self.bucket(bucket)?;
        let mut batch = Batch::new();
        batch.put(schema::upload_key(bucket, key, &upload_id), record.encode());
        self.commit(batch)?;
        Ok(upload_id)
    }

    /// Uploads (or replaces) one part, durably.
    ///
    /// Errors: [`Error::NoSuchUpload`], [`Error::InvalidArgument`] for a part number outside
    /// 1..=10000, [`Error::EntityTooLarge`] over 5 GiB, [`Error::BadDigest`], [`Error::Body`].
    #[allow(clippy::too_many_arguments)]
    pub fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &mut dyn Read,
        content_md5: Option<[u8; 16]>,
        checksum: Option<ChecksumCell>,
    ) -> Result<PartInfo> {
        let mut writer = self.begin_part(bucket, key, upload_id, part_number, content_md5)?;
        writer.checksum = checksum;
        writer.chunks.fill_from(self, body)?;
        writer.finish()
    }

    /// Starts a part fed one buffer at a time (see [`PartWriter`]).
    ///
    /// Errors: [`Error::NoSuchUpload`], [`Error::InvalidArgument`] for a part number outside
    /// 1..=10000.
    pub fn begin_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        content_md5: Option<[u8; 16]>,
    ) -> Result<PartWriter> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::InvalidArgument(format!(
                "part number {part_number} must be between 1 and {MAX_PART_NUMBER}"
            )));
        }
        self.note_client_request();
        self.upload(bucket, key, upload_id)?;
        let protection = self.bucket(bucket)?.protection;
        self.check_capacity(protection)?;
        Ok(PartWriter {
            store: self.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            part_number,
            content_md5,
            checksum: None,
            chunks: ChunkWriter::new(new_object_id(), MAX_PART_BYTES, protection),
        })
    }

    /// Completes an upload from the named parts. Idempotent: repeating it for an upload that
    /// completed into the key's current version (an SDK retry after a timeout) returns that
    /// version. When the upload named a checksum algorithm, every part must carry that
    /// checksum, and `combine` (if given) computes the object's from them.
    ///
    /// Errors: [`Error::NoSuchUpload`]; [`Error::InvalidPartOrder`] unless part numbers strictly
    /// ascend; [`Error::InvalidPart`] for a missing part, an ETag or checksum mismatch, or a
    /// part without the upload's checksum; [`Error::EntityTooSmall`] for a part under 5 MiB
    /// that is not the last; [`Error::InvalidArgument`] for an empty list; what `combine`
    /// returns; [`Error::PreconditionFailed`] when `condition` does not hold on the version it
    /// would replace (the upload stays, for another try).
    pub fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        combine: Option<&ChecksumCombiner>,
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectInfo> {
        let _guard = self.upload_lock(upload_id);
        let upload = match self.upload(bucket, key, upload_id) {
            Ok(upload) => upload,
            Err(e @ Error::NoSuchUpload { .. }) => {
                return match self.latest_record(bucket, key) {
                    Ok(Some(current)) if current.upload_id == upload_id => {
                        Ok(ObjectInfo::from_record(key, &current))
                    }
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if parts.is_empty() {
            return Err(Error::InvalidArgument(
                "CompleteMultipartUpload must name at least one part".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let stored = self.parts(upload_id, 0)?;
        let mut record = ObjectRecord {
            size: 0,
            etag: String::new(),
            content_type: upload.content_type,
            last_modified_unix_ms: super::now_unix_ms(),
            user_metadata: upload.user_metadata,
            checksums: Vec::new(),
            part_sizes: Vec::with_capacity(parts.len()),
            runs: Vec::with_capacity(parts.len()),
            inline: false,
            headers: upload.headers,
            upload_id: upload_id.to_string(),
            version: 0,
            null_version: false,
            delete_marker: false,
        };
        // Every named part must exist with its ETag before sizes are judged (S3 reports
        // InvalidPart before EntityTooSmall).
        let mut chosen = Vec::with_capacity(parts.len());
        for want in parts {
            let Some((_, part)) = stored.iter().find(|(n, _)| *n == want.part_number) else {
                return Err(Error::InvalidPart {
                    part_number: want.part_number,
                    reason: "the part was not uploaded".into(),
                });
            };
            if strip_quotes(&want.etag) != part.etag {
                return Err(Error::InvalidPart {
                    part_number: want.part_number,
                    reason: format!(
                        "ETag {} does not match the uploaded part's {}",
                        want.etag, part.etag
                    ),
                });
            }
            for (algorithm, value) in &want.checksums {
                let stored = part
                    .checksums
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(algorithm));
                if stored.map(|(_, v)| v.as_str()) != Some(value.as_str()) {
                    return Err(Error::InvalidPart {
                        part_number: want.part_number,
                        reason: format!(
                            "Checksum{algorithm} {value} does not match the uploaded part's {}",
                            stored.map_or("(none)", |(_, v)| v.as_str())
                        ),
                    });
                }
            }
            chosen.push((want.part_number, part));
        }
        let algorithm = upload.checksum_algorithm;
        let mut part_checksums = Vec::new();
        if !algorithm.is_empty() {
            for (part_number, part) in &chosen {
                let Some((_, value)) = part
                    .checksums
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(&algorithm))
                else {
                    return Err(Error::InvalidPart {
                        part_number: *part_number,
                        reason: format!(
                            "the upload asks for {algorithm} checksums; this part was uploaded without one"
                        ),
                    });
                };
                part_checksums.push((part.size, value.clone()));
            }
        }
        let mut md5_of_md5s = Md5::new();
        for (i, (part_number, part)) in chosen.iter().enumerate() {
            if i + 1 < chosen.len() && part.size < MIN_PART_BYTES {
                return Err(Error::EntityTooSmall {
                    part_number: *part_number,
                    size_bytes: part.size,
                    min_bytes: MIN_PART_BYTES,
                });
            }
            let raw = hex::decode(&part.etag).map_err(|_| Error::MetadataUnavailable {
                detail: format!("part {part_number} has a malformed ETag"),
            })?;
            md5_of_md5s.update(&raw);
            record.size += part.size;
            record.part_sizes.push(part.size);
            if !part.run.chunks.is_empty() {
                record.runs.push(part.run.clone());
            }
        }
        if record.size > MAX_OBJECT_BYTES {
            return Err(Error::EntityTooLarge {
                size_bytes: record.size,
                max_bytes: MAX_OBJECT_BYTES,
            });
        }
        record.etag = format!("{}-{}", hex::encode(md5_of_md5s.finalize()), parts.len());
        if let (Some(combine), false) = (combine, algorithm.is_empty()) {
            let checksum_type = match upload.checksum_type.as_str() {
                "" => "COMPOSITE",
                t => t,
            };
            let value = combine(&algorithm, checksum_type, &part_checksums)?;
            record.checksums = vec![(algorithm.clone(), value)];
            record
                .headers
                .push(("x-amz-checksum-type".into(), checksum_type.into()));
            // Each part's checksum, for GetObjectAttributes' ObjectParts.
            let values: Vec<&str> = part_checksums.iter().map(|(_, v)| v.as_str()).collect();
            record
                .headers
                .push((PART_CHECKSUMS_HEADER.into(), values.join(",")));
        }
        // The chosen parts' runs move into the object record (their space stays live); the
        // others' space is dropped.
        let mut cleanup = Batch::new();
        let mut delta = self.space_delta();
        cleanup.delete(schema::upload_key(bucket, key, upload_id));
        for (n, part) in &stored {
            cleanup.delete(schema::part_key(upload_id, *n));
            if !parts.iter().any(|p| p.part_number == *n) {
                delta.add_runs(std::slice::from_ref(&part.run), -1);
            }
        }
        // The parts' runs move from `p/` records to an `o/` one.
        self.note_record_moved(&record.runs);
        self.commit_object(bucket, key, &mut record, None, cleanup, delta, condition)?;
        Ok(ObjectInfo::from_record(key, &record))
    }

    /// Aborts an upload: its parts are forgotten (their space is garbage).
    ///
    /// Errors: [`Error::NoSuchUpload`].
    pub fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let _guard = self.upload_lock(upload_id);
        self.upload(bucket, key, upload_id)?;
        let mut batch = Batch::new();
        let mut delta = self.space_delta();
        batch.delete(schema::upload_key(bucket, key, upload_id));
        for (n, part) in self.parts(upload_id, 0)? {
            batch.delete(schema::part_key(upload_id, n));
            delta.add_runs(std::slice::from_ref(&part.run), -1);
        }
        self.commit_with_space(batch, &delta)
    }

    /// Lists parts after `part_number_marker`, at most `max_parts` (capped at 1000).
    ///
    /// Errors: [`Error::NoSuchUpload`].
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<PartsPage> {
        self.upload(bucket, key, upload_id)?;
        let max_parts = max_parts.min(1000);
        let mut all = self.parts(upload_id, part_number_marker)?;
        let is_truncated = all.len() > max_parts;
        all.truncate(max_parts);
        let parts: Vec<PartInfo> = all
            .into_iter()
            .map(|(n, p)| PartInfo {
                part_number: n,
                size: p.size,
                etag: p.etag,
                last_modified_unix_ms: p.last_modified_unix_ms,
                checksums: p.checksums,
            })
            .collect();
        let next_part_number_marker = if is_truncated {
            parts.last().map(|p| p.part_number)
        } else {
            None
        };
        Ok(PartsPage {
            parts,
            is_truncated,
            next_part_number_marker,
        })
    }

    /// Lists uploads in progress whose key starts with `prefix`, after (`key_marker`,
    /// `upload_id_marker`), at most `max_uploads` (capped at 1000).
    ///
    /// Errors: [`Error::NoSuchBucket`].
    pub fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadsPage> {
        self.bucket(bucket)?;
        let max_uploads = max_uploads.min(1000);
        let base = schema::upload_prefix(bucket);
        let mut from = [base.as_slice(), prefix.as_bytes()].concat();
        if let Some(km) = key_marker {
            // S3: with an upload-id-marker, uploads of key_marker after that ID; without one,
            // only keys after key_marker.
            let next = match upload_id_marker {
                Some(id) => [schema::upload_key(bucket, km, id).as_slice(), b"\0"].concat(),
                None => [schema::upload_key(bucket, km, "").as_slice(), &[0xFF]].concat(),
            };
            from = from.max(next);
        }
        let mut page = UploadsPage::default();
        let mut error = None;
        self.inner.meta.scan(&from, &mut |k, v| {
            let Some(rest) = k.strip_prefix(base.as_slice()) else {
                return Scan::Stop;
            };
            if rest.len() < UPLOAD_ID_LEN + 1 {
                return Scan::Continue;
            }
            let (key, id) = rest.split_at(rest.len() - UPLOAD_ID_LEN - 1);
            if !key.starts_with(prefix.as_bytes()) {
                return Scan::Stop;
            }
            if page.uploads.len() == max_uploads {
                page.is_truncated = true;
                return Scan::Stop;
            }
            match UploadRecord::decode(v) {
                Ok(rec) => page.uploads.push(UploadInfo {
                    key: String::from_utf8_lossy(key).into_owned(),
                    upload_id: String::from_utf8_lossy(&id[1..]).into_owned(),
                    initiated_unix_ms: rec.initiated_unix_ms,
                    owner: rec.owner,
                }),
                Err(e) => {
                    error = Some(e);
                    return Scan::Stop;
                }
            }
            Scan::Continue
        })?;
        if let Some(e) = error {
            return Err(e);
        }
        if page.is_truncated {
            page.next_marker = page
                .uploads
                .last()
                .map(|u| (u.key.clone(), u.upload_id.clone()));
        }
        Ok(page)
    }
}
