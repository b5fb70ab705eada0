//! Object versions (S3 versioning: "Using versioning in S3 buckets", Amazon S3 User Guide).
//!
//! Owns: a bucket's versioning state, version IDs, delete markers, the `null` version, where
//! noncurrent versions live, permanent deletes of one version, and ListObjectVersions.
//!
//! Layout (`engine/FORMAT.md`, "Metadata keys and records"): a key's latest version, object or
//! delete marker, is its record under `o/`, exactly where an unversioned bucket keeps its one
//! version, so listing current objects reads no more records than before versioning. Older
//! versions live under `n/<bucket>\0<escaped key>\0\0<!version>`: one bucket's noncurrent
//! versions sort by key, then newest first, so a key's history is one short range and a
//! version listing is one merge of the `o/` and `n/` ranges. Invariants: a key with
//! noncurrent versions has a latest version (a permanent delete of the latest version
//! promotes the newest noncurrent one), and the latest version's sequence is greater than
//! every noncurrent one's (asserted where versions are retired and promoted).
//!
//! Version sequences come from a store clock (`Unix ms << 16`, advanced past the last one
//! issued and past the key's latest version), so they are unique, grow with time, and a key's
//! newer version always has the greater sequence. A version ID is the sequence as 16 hex
//! digits, or `null` for the version unversioned and suspended writes replace.
//!
//! Must not import `device`, `objects`, `multipart` or `copy`.

use std::fmt;
use std::sync::atomic::Ordering;

use super::list;
use super::{now_unix_ms, Store};
use crate::error::{Error, Result};
use crate::meta::{Batch, Scan, Snapshot};
use crate::schema::{self, InlineData, ObjectRecord, Versioning};
use crate::space::SpaceDelta;

/// A version ID as S3 clients see it (`x-amz-version-id`, `versionId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionId {
    /// The `null` version: written while the bucket was unversioned or suspended.
    Null,
    /// A version written while versioning was enabled: its sequence (never 0).
    Id(u64),
}

impl VersionId {
    /// The ID of a record's version.
    pub fn of(record: &ObjectRecord) -> Self {
        if record.null_version {
            VersionId::Null
        } else {
            VersionId::Id(record.version)
        }
    }

    /// Parses a client's version ID: `null` or 16 hex digits.
    ///
    /// Errors: [`Error::InvalidArgument`] naming the ID (S3: "Invalid version id specified").
    pub fn parse(text: &str) -> Result<Self> {
        if text == "null" {
            return Ok(VersionId::Null);
        }
        match u64::from_str_radix(text, 16) {
            Ok(v) if v != 0 && text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(VersionId::Id(v))
            }
            _ => Err(Error::InvalidArgument(format!(
                "invalid version ID {text:?}: a version ID is \"null\" or 16 hex digits"
            ))),
        }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionId::Null => f.write_str("null"),
            VersionId::Id(v) => write!(f, "{v:016x}"),
        }
    }
}

/// What a delete did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version the delete created (a delete marker) or removed; `None` in an unversioned
    /// bucket.
    pub version: Option<VersionId>,
    /// Whether that version is a delete marker.
    pub delete_marker: bool,
}

/// A version found: its record and where it and its inline data are kept.
pub(super) struct Located {
    pub record: ObjectRecord,
    pub record_key: Vec<u8>,
    pub inline_key: Vec<u8>,
}

/// What ListObjectVersions asks for.
#[derive(Clone, Debug, Default)]
pub struct VersionQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by the first occurrence of this after the prefix into common prefixes.
    pub delimiter: Option<String>,
    /// Start after this key (`key-marker`), or within it after `version_id_marker`.
    pub key_marker: Option<String>,
    /// With `key_marker`: start after this version of it (`version-id-marker`).
    pub version_id_marker: Option<VersionId>,
    /// Entries per page (versions + common prefixes), capped at 1000.
    pub max_keys: usize,
}

/// One version as ListObjectVersions lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    /// Key.
    pub key: String,
    /// Version ID.
    pub version: VersionId,
    /// Whether it is the key's latest version.
    pub is_latest: bool,
    /// Whether it is a delete marker (no size, no ETag).
    pub delete_marker: bool,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, Unix milliseconds (for a noncurrent version, when it was written).
    pub last_modified_unix_ms: u64,
    /// For a noncurrent version: when it became noncurrent (its successor's Last-Modified).
    pub noncurrent_since_unix_ms: Option<u64>,
    /// Stored headers (the layers above keep per-version attributes here, e.g. tags).
    pub headers: Vec<(String, String)>,
}

/// One page of a version listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Versions: key order, newest first within a key.
    pub versions: Vec<VersionEntry>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: the next page's `key_marker` ...
    pub next_key_marker: Option<String>,
    /// ... and `version_id_marker` (none when the page ended on a common prefix).
    pub next_version_id_marker: Option<VersionId>,
}

fn decode_record(v: &[u8]) -> Result<ObjectRecord> {
    ObjectRecord::decode(v)
}

impl Store {
    /// The bucket's versioning state.
    ///
    /// Errors: [`Error::NoSuchBucket`].
    pub fn bucket_versioning(&self, bucket: &str) -> Result<Versioning> {
        Ok(self.bucket(bucket)?.versioning)
    }

    /// Enables or suspends versioning of a bucket (PutBucketVersioning). Atomic with every
    /// object write: a write commits wholly under the state before or after.
    ///
    /// Errors: [`Error::NoSuchBucket`]; [`Error::InvalidArgument`] for
    /// [`Versioning::Unversioned`] (a bucket never returns to it).
    pub fn set_bucket_versioning(&self, bucket: &str, state: Versioning) -> Result<()> {
        if state == Versioning::Unversioned {
            return Err(Error::InvalidArgument(format!(
                "bucket {bucket}: versioning can be Enabled or Suspended, and a bucket never returns to unversioned"
            )));
        }
        let _ns = self.namespace_exclusive();
        let mut record = self.bucket(bucket)?;
        if record.versioning == state {
            return Ok(());
        }
        record.versioning = state;
        let mut batch = Batch::new();
        batch.put(schema::bucket_key(bucket), record.encode());
        self.commit(batch)
    }

    /// A new version sequence, greater than every one issued by this process, than `floor`
    /// (the key's latest version) and than `Unix ms << 16` of now.
    fn next_version(&self, floor: u64) -> u64 {
        let now = now_unix_ms() << 16;
        let clock = &self.inner.version_clock;
        let mut last = clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1).max(floor + 1);
            match clock.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The key's latest version (`o/`), read now through the batches staged under its lock
    /// (callers hold the key's lock).
    pub(super) fn latest_record(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        match self
            .inner
            .meta
            .get_staged(&schema::object_key(bucket, key))?
        {
            Some(v) => Ok(Some(decode_record(&v)?)),
            None => Ok(None),
        }
    }

    /// Commits `record` as the key's new latest version, with its inline data (`Some` exactly
    /// when `record.inline`), `extra` changes and the live-space changes `delta`, in one
    /// batch. The caller holds the namespace (shared) and the key's lock, and read
    /// `versioning` under them. Assigns `record.version` and `record.null_version`. The
    /// version it replaces is retired as `versioning` says (see [`Store::retire_latest`]).
    /// With a `condition`, nothing is committed unless it holds on the latest version that is
    /// not a delete marker (a key whose latest version is a delete marker has no object).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_version_locked(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
        record: &mut ObjectRecord,
        inline_data: Option<&[u8]>,
        mut extra: Batch,
        delta: SpaceDelta,
        condition: Option<&super::WriteCondition>,
    ) -> Result<()> {
        let (mut batch, delta) = self.version_batch_locked(
            bucket,
            key,
            versioning,
            record,
            inline_data,
            delta,
            condition,
        )?;
        batch.ops.append(&mut extra.ops);
        self.commit_with_space(batch, &delta)
    }

    /// The batch and live-space changes that make `record` the key's new latest version, as
    /// [`Store::commit_version_locked`] commits them (without its `extra`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn version_batch_locked(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
        record: &mut ObjectRecord,
        inline_data: Option<&[u8]>,
        mut delta: SpaceDelta,
        condition: Option<&super::WriteCondition>,
    ) -> Result<(Batch, SpaceDelta)> {
        debug_assert_eq!(record.inline, inline_data.is_some());
        let old = self.latest_record(bucket, key)?;
        if let Some(c) = condition {
            c.check(bucket, key, old.as_ref().filter(|o| !o.delete_marker))?;
        }
        record.version = self.next_version(old.as_ref().map_or(0, |o| o.version));
        record.null_version = versioning != Versioning::Enabled;
        assert!(
            old.as_ref().map_or(true, |o| record.version > o.version),
            "a new version of {bucket}/{key} must sort after the one it retires"
        );
        let mut batch = Batch::new();
        self.retire_latest(
            &mut batch,
            &mut delta,
            bucket,
            key,
            old.as_ref(),
            versioning,
        )?;
        batch.put(schema::object_key(bucket, key), record.encode());
        match inline_data {
            Some(data) => batch.put(schema::inline_key(bucket, key), InlineData::encode(data)),
            None => batch.delete(schema::inline_key(bucket, key)),
        };
        Ok((batch, delta))
    }

    /// Adds to `batch` and `delta` what a new latest version does to the one it replaces
    /// (`old`) and to the key's `null` version:
    /// - unversioned: `old` is dropped;
    /// - enabled: `old` becomes noncurrent (its record and inline data move to `n/`, `j/`);
    /// - suspended: the new version is the `null` one, so the existing `null` version is
    ///   dropped wherever it is, and a non-null `old` becomes noncurrent.
    ///
    /// The caller overwrites or deletes the `o/` and `i/` keys.
    fn retire_latest(
        &self,
        batch: &mut Batch,
        delta: &mut SpaceDelta,
        bucket: &str,
        key: &str,
        old: Option<&ObjectRecord>,
        versioning: Versioning,
    ) -> Result<()> {
        if versioning == Versioning::Suspended {
            if let Some(null) = self.noncurrent_null(bucket, key, &self.inner.meta.snapshot())? {
                delta.add_runs(&null.record.runs, -1);
                batch.delete(null.record_key);
                batch.delete(null.inline_key);
            }
        }
        let Some(old) = old else {
            return Ok(());
        };
        if versioning == Versioning::Unversioned
            || (versioning == Versioning::Suspended && old.null_version)
        {
            delta.add_runs(&old.runs, -1);
            return Ok(());
        }
        self.note_record_moved(&old.runs);
        let record_key = schema::noncurrent_key(bucket, key, old.version);
        debug_assert!(
            self.inner.meta.get(&record_key).ok().flatten().is_none(),
            "version {} of {bucket}/{key} is already noncurrent",
            old.version
        );
        batch.put(record_key, old.encode());
        if old.inline {
            let data = self.inline_value(&schema::inline_key(bucket, key))?;
            batch.put(
                schema::noncurrent_inline_key(bucket, key, old.version),
                data,
            );
        }
        Ok(())
    }

    /// The key's `null` version among its noncurrent ones, at `snapshot`.
    fn noncurrent_null(
        &self,
        bucket: &str,
        key: &str,
        snapshot: &Snapshot,
    ) -> Result<Option<Located>> {
        let prefix = schema::noncurrent_key_prefix(bucket, key);
        let mut found = None;
        let mut err = None;
        self.inner.meta.scan_at(&prefix, snapshot, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return Scan::Stop;
            }
            match decode_record(v) {
                Ok(r) if r.null_version => {
                    found = Some(Located {
                        record_key: k.to_vec(),
                        inline_key: schema::noncurrent_inline_key(bucket, key, r.version),
                        record: r,
                    });
                    Scan::Stop
                }
                Ok(_) => Scan::Continue,
                Err(e) => {
                    err = Some(e);
                    Scan::Stop
                }
            }
        })?;
        err.map_or(Ok(found), Err)
    }

    /// The key's newest noncurrent version, read now.
    fn newest_noncurrent(&self, bucket: &str, key: &str) -> Result<Option<Located>> {
        let prefix = schema::noncurrent_key_prefix(bucket, key);
        let mut found = None;
        self.inner.meta.scan(&prefix, &mut |k, v| {
            if k.starts_with(&prefix) {
                found = Some((k.to_vec(), v.to_vec()));
            }
            Scan::Stop
        })?;
        let Some((record_key, raw)) = found else {
            return Ok(None);
        };
        let record = decode_record(&raw)?;
        Ok(Some(Located {
            inline_key: schema::noncurrent_inline_key(bucket, key, record.version),
            record_key,
            record,
        }))
    }

    /// Version `version` of `key` (its latest when `None`) at `snapshot`, delete markers
    /// included, with where it is kept; `None` if there is no such version.
    ///
    /// Errors: metadata errors.
    fn locate(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        snapshot: &Snapshot,
    ) -> Result<Option<Located>> {
        let latest_key = schema::object_key(bucket, key);
        let latest = match self.inner.meta.get_at(&latest_key, snapshot)? {
            Some(v) => Some(Located {
                record: decode_record(&v)?,
                record_key: latest_key,
                inline_key: schema::inline_key(bucket, key),
            }),
            None => None,
        };
        Ok(match version {
            None => latest,
            Some(v)
                if latest
                    .as_ref()
                    .is_some_and(|l| VersionId::of(&l.record) == v) =>
            {
                latest
            }
            Some(VersionId::Null) => self.noncurrent_null(bucket, key, snapshot)?,
            Some(VersionId::Id(seq)) => {
                let record_key = schema::noncurrent_key(bucket, key, seq);
                match self.inner.meta.get_at(&record_key, snapshot)? {
                    // A null version's sequence is not its ID.
                    Some(raw) => {
                        Some(decode_record(&raw)?)
                            .filter(|r| !r.null_version)
                            .map(|record| Located {
                                inline_key: schema::noncurrent_inline_key(bucket, key, seq),
                                record_key,
                                record,
                            })
                    }
                    None => None,
                }
            }
        })
    }

    /// Version `version` of `key` (its latest when `None`) at `snapshot`, with where it is
    /// kept. Delete markers are refused: a key whose latest version is one reads as absent.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`].
    pub(super) fn version_at(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        snapshot: &Snapshot,
    ) -> Result<Located> {
        match self.locate(bucket, key, version, snapshot)? {
            Some(l) if l.record.delete_marker => Err(Error::DeleteMarker {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version_id: VersionId::of(&l.record).to_string(),
                requested: version.is_some(),
            }),
            Some(l) => Ok(l),
            None => {
                self.bucket(bucket)?;
                Err(match version {
                    None => Error::NoSuchKey {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                    },
                    Some(v) => Error::NoSuchVersion {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                        version_id: v.to_string(),
                    },
                })
            }
        }
    }

    /// The value of inline data key `inline_key` of a version whose record says inline.
    ///
    /// Errors: [`Error::MetadataUnavailable`] when it is missing (the two are always written
    /// in one batch); metadata errors.
    pub(super) fn inline_value(&self, inline_key: &[u8]) -> Result<Vec<u8>> {
        self.inner
            .meta
            .get(inline_key)?
            .ok_or_else(|| Error::MetadataUnavailable {
                detail: format!(
                    "a version's record says inline but its data record {:?} is missing",
                    String::from_utf8_lossy(inline_key)
                ),
            })
    }

    /// Permanently deletes one version of a key (DeleteObject with `versionId`). Deleting
    /// the latest version makes the newest noncurrent one the latest. A version that does not
    /// exist is not an error (S3 answers 204 as well).
    ///
    /// Errors: [`Error::NoSuchBucket`]; metadata errors.
    pub fn delete_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
    ) -> Result<DeleteOutcome> {
        let _ns = self.inner.namespace.read();
        self.bucket(bucket)?;
        let _key = self.key_lock(bucket, key);
        let snapshot = self.inner.meta.snapshot();
        let Some(target) = self.locate(bucket, key, Some(version), &snapshot)? else {
            return Ok(DeleteOutcome {
                version: Some(version),
                delete_marker: false,
            });
        };
        let mut batch = Batch::new();
        let mut delta = self.space_delta();
        delta.add_runs(&target.record.runs, -1);
        let latest_key = schema::object_key(bucket, key);
        if target.record_key == latest_key {
            match self.newest_noncurrent(bucket, key)? {
                Some(next) => {
                    assert!(
                        next.record.version < target.record.version,
                        "noncurrent version {} of {bucket}/{key} is newer than its latest {}",
                        next.record.version,
                        target.record.version
                    );
                    self.note_record_moved(&next.record.runs);
                    batch.delete(next.record_key);
                    if next.record.inline {
                        let data = self.inline_value(&next.inline_key)?;
                        batch.delete(next.inline_key);
                        batch.put(target.inline_key, data);
                    } else {
                        batch.delete(target.inline_key);
                    }
                    batch.put(latest_key, next.record.encode());
                }
                None => {
                    batch.delete(latest_key);
                    batch.delete(target.inline_key);
                }
            }
        } else {
            batch.delete(target.record_key);
            batch.delete(target.inline_key);
        }
        self.commit_with_space(batch, &delta)?;
        Ok(DeleteOutcome {
            version: Some(version),
            delete_marker: target.record.delete_marker,
        })
    }

    /// Lists one page of a bucket's versions (ListObjectVersions): keys in order, each
    /// key's versions newest first, delete markers included.
    ///
    /// Cost: one scan of the latest versions from the marker and one of the noncurrent ones
    /// over the same keys, so O(page size) index steps.
    ///
    /// Errors: [`Error::NoSuchBucket`]; a corrupt record as [`Error::MetadataUnavailable`].
    pub fn list_object_versions(&self, bucket: &str, query: &VersionQuery) -> Result<VersionPage> {
        self.bucket(bucket)?;
        let max_keys = query.max_keys.min(list::MAX_KEYS_LIMIT);
        let snapshot = self.inner.meta.snapshot();
        let marker = query.key_marker.as_deref();
        // Within the marker key only with a version marker; else strictly after it.
        let inclusive = query.version_id_marker.is_some();
        // Each key yields at least one entry, so max_keys + 1 items fill a page and tell
        // whether more follow; the marker key, whose versions may all be skipped, is extra.
        let limit = max_keys + 1 + usize::from(inclusive);
        let items = self.scan_latest(bucket, query, marker, inclusive, limit, &snapshot)?;

        // The noncurrent versions of the keys listed, one scan over the same key range.
        let keys: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Key(k, _) => Some(k.as_str()),
                Item::Prefix(_) => None,
            })
            .collect();
        let mut older: Vec<(String, ObjectRecord)> = Vec::new();
        if let (Some(first), Some(last)) = (keys.first(), keys.last()) {
            let base = schema::noncurrent_prefix(bucket);
            let wanted: std::collections::HashSet<&str> = keys.iter().copied().collect();
            let mut counted = 0usize;
            let mut err = None;
            self.inner.meta.scan_at(
                &schema::noncurrent_key_prefix(bucket, first),
                &snapshot,
                &mut |k, v| {
                    let Some((key, _)) = k
                        .strip_prefix(base.as_slice())
                        .and_then(schema::parse_noncurrent_key)
                    else {
                        return Scan::Stop;
                    };
                    if key.as_str() > *last || counted > max_keys {
                        return Scan::Stop;
                    }
                    if !wanted.contains(key.as_str()) {
                        // Under a common prefix: skip the key's versions with one seek.
                        let prefix = schema::noncurrent_key_prefix(bucket, &key);
                        return schema::prefix_successor(&prefix).map_or(Scan::Stop, Scan::SeekTo);
                    }
                    match decode_record(v) {
                        Ok(r) => {
                            if Some(key.as_str()) != marker {
                                counted += 1;
                            }
                            older.push((key, r));
                            Scan::Continue
                        }
                        Err(e) => {
                            err = Some(e);
                            Scan::Stop
                        }
                    }
                },
            )?;
            if let Some(e) = err {
                return Err(e);
            }
        }

        let mut page = VersionPage::default();
        // Whether the last entry of the page is a version (else a common prefix).
        let mut ended_on_version = false;
        let mut older = older.into_iter().peekable();
        'items: for item in items {
            match item {
                Item::Prefix(cp) => {
                    if page.versions.len() + page.common_prefixes.len() == max_keys {
                        page.is_truncated = true;
                        break;
                    }
                    page.common_prefixes.push(cp);
                    ended_on_version = false;
                }
                Item::Key(key, latest) => {
                    let mut history = vec![latest];
                    while let Some((_, r)) = older.next_if(|(k, _)| *k == key) {
                        history.push(r);
                    }
                    let mut skip = 0;
                    if let (true, Some(v)) = (Some(key.as_str()) == marker, query.version_id_marker)
                    {
                        skip = match v {
                            VersionId::Id(seq) => {
                                history.iter().take_while(|r| r.version >= seq).count()
                            }
                            VersionId::Null => history
                                .iter()
                                .position(|r| r.null_version)
                                .map_or(history.len(), |i| i + 1),
                        };
                    }
                    let mut successor_modified = None;
                    for (i, r) in history.into_iter().enumerate() {
                        let modified = r.last_modified_unix_ms;
                        if i >= skip {
                            if page.versions.len() + page.common_prefixes.len() == max_keys {
                                page.is_truncated = true;
                                break 'items;
                            }
                            page.versions.push(VersionEntry {
                                key: key.clone(),
                                version: VersionId::of(&r),
                                is_latest: i == 0,
                                delete_marker: r.delete_marker,
                                size: r.size,
                                etag: r.etag,
                                last_modified_unix_ms: modified,
                                noncurrent_since_unix_ms: successor_modified,
                                headers: r.headers,
                            });
                            ended_on_version = true;
                        }
                        successor_modified = Some(modified);
                    }
                }
            }
        }
        if page.is_truncated {
            if ended_on_version {
                let last = page.versions.last().expect("a version ended the page");
                page.next_key_marker = Some(last.key.clone());
                page.next_version_id_marker = Some(last.version);
            } else {
                page.next_key_marker = page.common_prefixes.last().cloned();
            }
        }
        Ok(page)
    }

    /// The latest versions (and common prefixes) of a version listing, in order, up to
    /// `limit` items: each key has at least one version, so `limit` items fill a page.
    fn scan_latest(
        &self,
        bucket: &str,
        query: &VersionQuery,
        marker: Option<&str>,
        inclusive: bool,
        limit: usize,
        snapshot: &Snapshot,
    ) -> Result<Vec<Item>> {
        let base = schema::object_prefix(bucket);
        let prefix = query.prefix.as_bytes();
        let delimiter = list::delimiter_of(&query.delimiter);
        let from = list::listing_start(&base, prefix, marker.map(str::as_bytes), inclusive);
        let mut items = Vec::new();
        let mut err = None;
        self.inner.meta.scan_at(&from, snapshot, &mut |k, v| {
            let Some(key) = k.strip_prefix(base.as_slice()) else {
                return Scan::Stop;
            };
            if !key.starts_with(prefix) || items.len() >= limit {
                return Scan::Stop;
            }
            if let Some(cp) = list::common_prefix(key, prefix, delimiter) {
                let skip_to = schema::prefix_successor(cp).map(|s| [base.as_slice(), &s].concat());
                if !marker.is_some_and(|m| cp <= m.as_bytes()) {
                    items.push(Item::Prefix(String::from_utf8_lossy(cp).into_owned()));
                }
                return skip_to.map_or(Scan::Stop, Scan::SeekTo);
            }
            match decode_record(v) {
                Ok(r) => {
                    items.push(Item::Key(String::from_utf8_lossy(key).into_owned(), r));
                    Scan::Continue
                }
                Err(e) => {
                    err = Some(e);
                    Scan::Stop
                }
            }
        })?;
        err.map_or(Ok(items), Err)
    }
}

/// A latest version or a common prefix, as a version listing meets them.
enum Item {
    Key(String, ObjectRecord),
    Prefix(String),
}

/// A new delete marker record, written now.
pub(super) fn delete_marker_record() -> ObjectRecord {
    ObjectRecord {
        size: 0,
        etag: String::new(),
        content_type: String::new(),
        last_modified_unix_ms: now_unix_ms(),
        user_metadata: Vec::new(),
        checksums: Vec::new(),
        part_sizes: Vec::new(),
        runs: Vec::new(),
        inline: false,
        headers: Vec::new(),
        upload_id: String::new(),
        version: 0,
        null_version: false,
        delete_marker: true,
    }
}
