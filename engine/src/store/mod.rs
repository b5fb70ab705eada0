//! The store: buckets, objects, multipart uploads and listing on top of placement, the data log
//! and metadata.
//!
//! Owns: opening and formatting a set of devices as one store, the schema of metadata keys
//! ([`schema`]), and every S3-shaped operation. Contracts (DESIGN.md): an operation returns only
//! after its data and metadata are durable (1); an object is visible wholly old or wholly new,
//! because its one metadata record is committed after all its chunks are durable (2); every
//! chunk read is verified (3); bad input gets a typed error and changes nothing (9).
//!
//! Must not import `device`: drives are the volume's (`crate::volume`), bytes on them the
//! segments'. Nothing in the crate imports `store` but the crate root.

mod copy;
mod drives;
mod gc;
mod list;
mod multipart;
mod objects;
mod open;
mod repair;
mod space;
mod versions;

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::meta::{Batch, MetaStore, Scan};
use crate::profile::{EngineConfig, Protection};
use crate::schema;
pub(crate) use crate::schema::now_unix_ms;
use crate::segment::{BufferPool, DataDevice, HeadState, SegmentClaims};

pub use crate::repair::{PassKind, PassStatus, RepairCounters, RepairStatus};
use crate::schema::BucketRecord;
pub use crate::schema::Versioning;
pub use crate::segment::memory_only;
pub use crate::space::{DriveSpace, SegmentSpace, SpaceCheck, SpaceStatus};
pub use copy::CopyOptions;
pub use drives::{DataSlotStatus, DriveState};
pub use gc::{GcRound, GcStatus};
pub use list::{ListPage, ListQuery, ObjectSummary};
pub use multipart::{
    ChecksumCombiner, CompletedPart, PartInfo, PartWriter, PartsPage, UploadInfo, UploadOptions,
    UploadsPage, MAX_PART_NUMBER, MIN_PART_BYTES, PART_CHECKSUMS_HEADER,
};
pub use objects::{
    ByteRange, ChecksumCell, ObjectInfo, ObjectReader, ObjectWriter, PutOptions, Staged, StagedPut,
    WriteCondition,
};
pub use open::StoreOptions;
pub use versions::{DeleteOutcome, VersionEntry, VersionId, VersionPage, VersionQuery};

/// Largest object, in bytes (S3: 5 TiB).
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;
/// Longest key, in bytes of UTF-8 (S3: 1024).
pub const MAX_KEY_BYTES: usize = 1024;

/// RAM the store holds, by use (see [`Store::memory`]); all in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Memtables plus the block indexes and bloom filters of every open table.
    pub index_bytes: u64,
    /// Decoded table blocks in the block cache (at most its budget).
    pub block_cache_bytes: u64,
    /// Chunk buffers allocated (they are kept for reuse once allocated).
    pub chunk_buffer_bytes: u64,
    /// The profile's `memory_budget_bytes` for the whole process.
    pub budget_bytes: u64,
}

/// A bucket as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Owner's access key ID.
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
    /// How its objects' chunks are protected.
    pub protection: Protection,
    /// Its versioning state.
    pub versioning: Versioning,
}

/// An open store. Cheap to clone; all methods are thread-safe and blocking (call them from
/// worker threads, not an async executor), except inside [`memory_only`], where a call that
/// would wait for a device fails with [`Error::WouldBlock`] instead, and the [`StagedPut`]
/// future of [`ObjectWriter::finish_staged`].
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// A held stripe of the key locks ([`Store::key_lock`]).
type KeyLock<'a> = parking_lot::MutexGuard<'a, KeyStripe>;

/// One stripe of the key locks. Its holder may read and commit the keys that hash to it.
#[derive(Default)]
struct KeyStripe {
    /// The last batch staged under this stripe and not yet seen settled: a writer that reads
    /// through the staged changes (`Store::commit_object`'s unversioned path) leaves it for
    /// the next holder, who waits for it unless it reads through them too.
    staged: Option<crate::meta::Ticket>,
}

struct Inner {
    config: EngineConfig,
    store_uuid: [u8; 16],
    /// Sealing key for secrets kept in metadata ([`Store::secrets_key`]).
    secrets_key: [u8; 32],
    meta: MetaStore,
    /// The lock on the data directory of a file-backed store ([`crate::device::lock_data_dir`]),
    /// held while the store is open.
    dir_lock: Mutex<Option<std::fs::File>>,
    /// The data devices by slot; `None` for a missing drive. A slot's device changes only when
    /// a blank drive is adopted into it ([`Store::adopt_data_drive`]).
    data: Vec<RwLock<Option<Arc<DataDevice>>>>,
    buffers: BufferPool,
    /// Held shared by object and upload writes, exclusively by bucket create/delete, so a bucket
    /// cannot be deleted between a put's bucket check and its commit.
    namespace: RwLock<()>,
    /// Striped by upload ID: serialises part commits, complete and abort of one upload.
    upload_locks: Vec<Mutex<()>>,
    /// Striped by bucket and key: serialises the commits of one key (see [`Store::key_lock`]).
    key_locks: Vec<Mutex<KeyStripe>>,
    /// Live space per segment, reader epochs, freeing ([`space`]).
    space: Arc<crate::space::SpaceState>,
    /// The garbage collector ([`gc`]).
    gc: gc::GcState,
    /// Metadata mirror failures the metadata epoch has been advanced for (see
    /// [`Store::commit`]).
    epoch_failures: Mutex<u64>,
    /// Rebuild and scrub ([`repair`]).
    repair: crate::repair::RepairState,
    /// Serialises drive adoptions ([`Store::adopt_data_drive`]).
    adopt: Mutex<()>,
    /// Bucket attributes read since they last changed ([`Store::bucket_attributes`]).
    attributes: RwLock<AttributeCache>,
    /// The last version sequence issued (`store/versions.rs`).
    version_clock: std::sync::atomic::AtomicU64,
}

/// Bucket attributes by bucket, as last read. Every change of a bucket's attributes goes
/// through this store, which drops the bucket's entry after its commit and bumps
/// `generation`; a reader caches what it scanned only if no change happened since it began, so
/// an entry never outlives a change.
#[derive(Default)]
struct AttributeCache {
    generation: u64,
    by_bucket: std::collections::HashMap<String, Vec<(String, Vec<u8>)>>,
}

/// Most buckets whose attributes are cached; past it the cache starts over.
const MAX_CACHED_BUCKETS: usize = 16_384;

impl SegmentClaims for MetaStore {
    fn claim(&self, slot: u32, next_unclaimed: u32) -> Result<()> {
        let mut batch = Batch::new();
        let head = HeadState {
            next_unclaimed,
            open: None,
        };
        batch.put(schema::segment_claim_key(slot), head.encode());
        self.commit(batch)
    }
}

/// Checks a bucket name against S3's rules (Bucket naming rules, Amazon S3 User Guide).
///
/// Errors: [`Error::InvalidBucketName`] with the rule it breaks.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidBucketName {
            name: name.to_string(),
            reason,
        })
    };
    if name.len() < 3 || name.len() > 63 {
        return fail("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return fail("may contain only lower-case letters, digits, dots and hyphens");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return fail("must not contain two adjacent dots or a dot next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return fail("must not use a reserved prefix or suffix");
    }
    Ok(())
}

/// Checks an object key: 1 to 1024 bytes of UTF-8.
///
/// Errors: [`Error::InvalidKey`].
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            len: 0,
            reason: "key must not be empty",
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey {
            len: key.len(),
            reason: "key is longer than 1024 bytes",
        });
    }
    Ok(())
}

impl Store {
    /// The configuration derived from the profile.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The store's UUID (as in every superblock).
    pub fn store_uuid(&self) -> String {
        crate::volume::uuid_string(&self.inner.store_uuid)
    }

    /// Metadata counters.
    pub fn meta_stats(&self) -> crate::meta::MetaStats {
        self.inner.meta.stats()
    }

    /// Commits a metadata batch. If a metadata SSD has failed since the metadata epoch was last
    /// advanced, advances it (`engine/FORMAT.md`, "Mirrored metadata SSDs") before returning, so
    /// the failed SSD, now behind, is never opened alone later.
    ///
    /// Errors: as [`MetaStore::commit`](crate::meta::MetaStore::commit).
    fn commit(&self, batch: Batch) -> Result<()> {
        let result = self.inner.meta.commit(batch);
        self.advance_epoch_after_failures();
        result
    }

    /// The namespace lock held exclusively, once every staged commit has settled: writers
    /// that stage a commit hold the lock shared only while they stage, so none is in flight
    /// when this returns.
    fn namespace_exclusive(&self) -> parking_lot::RwLockWriteGuard<'_, ()> {
        let guard = self.inner.namespace.write();
        self.inner.meta.barrier();
        guard
    }

    /// Starts the committer thread: it leads the metadata group commit for async waiters
    /// ([`StagedPut`]), who cannot lead it themselves. It waits holding the store only weakly
    /// and ends once the store is dropped.
    fn start_committer(&self) {
        let weak = Arc::downgrade(&self.inner);
        let signal = self.inner.meta.commit_signal();
        let spawned = std::thread::Builder::new()
            .name("meta-commit".into())
            .spawn(move || {
                while let Some(work) = signal.wait_for_work(std::time::Duration::from_secs(1)) {
                    // Held only while leading: a dropped store closes its devices at once.
                    match (work, weak.upgrade()) {
                        (true, Some(inner)) => inner.meta.serve_async_waiters(),
                        (_, None) => return,
                        (false, Some(_)) => {}
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the metadata committer thread did not start: async commits wait for the next synchronous one");
        }
    }

    /// Waits for a batch staged with [`Store::stage_with_space`], then as [`Store::commit`].
    fn wait_staged(&self, ticket: crate::meta::Ticket) -> Result<()> {
        let result = self.inner.meta.wait(ticket);
        self.advance_epoch_after_failures();
        result
    }

    /// After a commit: if a metadata SSD has failed since the metadata epoch was last
    /// advanced, advances it.
    pub(super) fn advance_epoch_after_failures(&self) {
        let failures = self.inner.meta.mirror_failures();
        if failures != *self.inner.epoch_failures.lock() {
            let mut seen = self.inner.epoch_failures.lock();
            if failures != *seen {
                let present = self.present_data_devices();
                match crate::volume::advance_meta_epoch_now(
                    &self.inner.meta,
                    &present,
                    &self.inner.store_uuid,
                ) {
                    Ok(epoch) => {
                        tracing::warn!(epoch, "a metadata SSD failed: metadata epoch advanced");
                        *seen = failures;
                    }
                    Err(e) => tracing::error!(error = %e, "advancing the metadata epoch failed"),
                }
            }
        }
    }

    /// What the store holds in RAM now, beside its budget.
    pub fn memory(&self) -> MemoryUse {
        let lsm = self.inner.meta.lsm();
        MemoryUse {
            index_bytes: lsm.resident_bytes() as u64,
            block_cache_bytes: lsm.cache_bytes() as u64,
            chunk_buffer_bytes: self.inner.buffers.allocated_bytes() as u64,
            budget_bytes: self.inner.config.memory_budget_bytes,
        }
    }

    /// The metadata SSDs (a mirror: each holds a full copy) and their states.
    pub fn metadata_mirror(&self) -> Vec<crate::meta::MemberStatus> {
        self.inner.meta.mirror_members()
    }

    /// A store-wide setting (`s/<name>` in metadata), if set. Settings are small values that
    /// belong to the store rather than to a bucket, such as the appliance's S3 credentials.
    ///
    /// Errors: metadata read errors.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta.get(&schema::setting_key(name))
    }

    /// A 256-bit key for sealing secrets the layers above keep in settings (the S3 layer's
    /// access keys). It lives in a block of every metadata SSD's reserved first MiB, outside
    /// the mirrored metadata region (`engine/FORMAT.md`, "Secrets key"), so the WAL, the
    /// SSTables and any copy or dump of them carry only sealed secrets. Made at the first
    /// open; a replacement SSD receives it at the open that adopts it.
    pub fn secrets_key(&self) -> [u8; 32] {
        self.inner.secrets_key
    }

    /// Sets a store-wide setting durably (one metadata commit).
    ///
    /// Errors: metadata device errors (a poisoned or failing SSD).
    pub fn put_setting(&self, name: &str, value: &[u8]) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(schema::setting_key(name), value.to_vec());
        self.commit(batch)
    }

    /// Every setting whose name starts with `prefix`, in name order: (name, value).
    ///
    /// Errors: metadata read errors.
    pub fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let from = schema::setting_key(prefix);
        let mut out = Vec::new();
        self.inner.meta.scan(&from, &mut |k, v| {
            if !k.starts_with(&from) {
                return crate::meta::Scan::Stop;
            }
            out.push((String::from_utf8_lossy(&k[2..]).into_owned(), v.to_vec()));
            crate::meta::Scan::Continue
        })?;
        Ok(out)
    }

    /// Sets (`Some`) and removes (`None`) settings in one durable metadata commit: all of
    /// them or none.
    ///
    /// Errors: metadata device errors.
    pub fn update_settings(&self, changes: &[(String, Option<Vec<u8>>)]) -> Result<()> {
        let mut batch = Batch::new();
        for (name, value) in changes {
            match value {
                Some(v) => batch.put(schema::setting_key(name), v.clone()),
                None => batch.delete(schema::setting_key(name)),
            };
        }
        self.commit(batch)
    }

    /// Clean shutdown: stops appends, records each data device's head (so the next open
    /// continues in its open segment) and writes a metadata checkpoint (so it replays nothing).
    /// Writes after this fail with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        self.stop_repair_worker();
        self.stop_gc_worker();
        if self.inner.meta.is_closed() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for device in self.present_data_devices() {
            batch.put(
                schema::segment_claim_key(device.slot()),
                device.seal().encode(),
            );
        }
        self.commit(batch)?;
        self.inner.meta.close()
    }

    /// Creates a bucket owned by `owner`, with the pool's default protection.
    ///
    /// Errors: [`Error::InvalidBucketName`]; [`Error::BucketAlreadyExists`] (with whether the
    /// caller owns it: S3's BucketAlreadyOwnedByYou vs BucketAlreadyExists).
    pub fn create_bucket(&self, name: &str, owner: &str) -> Result<()> {
        self.create_bucket_with(name, owner, None)
    }

    /// Creates a bucket owned by `owner` whose objects are stored with `protection` (the
    /// pool's default when `None`).
    ///
    /// Errors: as [`Store::create_bucket`]; [`Error::InvalidArgument`] naming the limit for a
    /// protection wider than the pool's HDDs.
    pub fn create_bucket_with(
        &self,
        name: &str,
        owner: &str,
        protection: Option<Protection>,
    ) -> Result<()> {
        validate_bucket_name(name)?;
        let protection = protection.unwrap_or(self.inner.config.default_protection);
        self.check_protection(protection)?;
        let _ns = self.namespace_exclusive();
        if let Some(existing) = self.inner.meta.get(&schema::bucket_key(name))? {
            let rec = BucketRecord::decode(&existing)?;
            return Err(Error::BucketAlreadyExists {
                name: name.to_string(),
                owned_by_caller: rec.owner == owner,
            });
        }
        let rec = BucketRecord {
            owner: owner.to_string(),
            created_unix_ms: now_unix_ms(),
            protection,
            versioning: schema::Versioning::Unversioned,
        };
        let mut batch = Batch::new();
        batch.put(schema::bucket_key(name), rec.encode());
        self.commit(batch)
    }

    /// Whether this pool can store chunks with `protection`: enough distinct HDDs, and
    /// enough failure groups at `max_per_failure_group` pieces each.
    fn check_protection(&self, protection: Protection) -> Result<()> {
        let hdds = self.inner.data.len() as u32;
        let width = protection.width();
        if width > hdds {
            return Err(Error::InvalidArgument(format!(
                "{protection} needs {width} distinct HDDs but the pool has {hdds}"
            )));
        }
        let fits = self.inner.config.failure_groups.capacity(
            &vec![true; hdds as usize],
            protection.max_per_failure_group(),
        );
        if width > fits {
            return Err(Error::InvalidArgument(format!(
                "{protection} puts at most {} pieces of a stripe in one failure group, and the pool's failure groups hold only {fits} of its {width}",
                protection.max_per_failure_group()
            )));
        }
        Ok(())
    }

    /// Deletes an empty bucket.
    ///
    /// Errors: [`Error::NoSuchBucket`]; [`Error::BucketNotEmpty`] if it holds objects, object
    /// versions (delete markers included) or multipart uploads.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let _ns = self.namespace_exclusive();
        self.bucket(name)?;
        let has_any = |prefix: Vec<u8>| -> Result<bool> {
            let mut found = false;
            self.inner.meta.scan(&prefix, &mut |k, _| {
                found = k.starts_with(&prefix);
                Scan::Stop
            })?;
            Ok(found)
        };
        if has_any(schema::object_prefix(name))?
            || has_any(schema::noncurrent_prefix(name))?
            || has_any(schema::upload_prefix(name))?
        {
            return Err(Error::BucketNotEmpty(name.to_string()));
        }
        let mut batch = Batch::new();
        batch.delete(schema::bucket_key(name));
        for (attribute, _) in self.scan_bucket_attributes(name)? {
            batch.delete(schema::bucket_attribute_key(name, &attribute));
        }
        let committed = self.commit(batch);
        self.attributes_changed(name);
        committed
    }

    fn scan_bucket_attributes(&self, bucket: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = schema::bucket_attribute_prefix(bucket);
        let mut out = Vec::new();
        self.inner.meta.scan(&prefix, &mut |k, v| {
            let Some(name) = k.strip_prefix(prefix.as_slice()) else {
                return Scan::Stop;
            };
            out.push((String::from_utf8_lossy(name).into_owned(), v.to_vec()));
            Scan::Continue
        })?;
        Ok(out)
    }

    /// The bucket's record and every attribute of it (name order), read at one moment:
    /// attributes are small values the layers above keep per bucket (the S3 layer's ACL,
    /// policy and public access block), deleted with the bucket.
    ///
    /// Errors: [`Error::NoSuchBucket`]; metadata read errors.
    pub fn bucket_attributes(&self, bucket: &str) -> Result<(BucketInfo, Vec<(String, Vec<u8>)>)> {
        let _ns = self.inner.namespace.read();
        let info = self.head_bucket(bucket)?;
        let generation = {
            let cache = self.inner.attributes.read();
            if let Some(a) = cache.by_bucket.get(bucket) {
                return Ok((info, a.clone()));
            }
            cache.generation
        };
        let attributes = self.scan_bucket_attributes(bucket)?;
        let mut cache = self.inner.attributes.write();
        if cache.generation == generation {
            if cache.by_bucket.len() >= MAX_CACHED_BUCKETS {
                cache.by_bucket.clear();
            }
            cache
                .by_bucket
                .insert(bucket.to_string(), attributes.clone());
        }
        Ok((info, attributes))
    }

    /// Drops the cached attributes of `bucket` (after a commit that changed them).
    fn attributes_changed(&self, bucket: &str) {
        let mut cache = self.inner.attributes.write();
        cache.generation += 1;
        cache.by_bucket.remove(bucket);
    }

    /// Sets (`Some`) or removes (`None`) attribute `name` of a bucket, durably.
    ///
    /// Errors: [`Error::NoSuchBucket`]; [`Error::InvalidArgument`] for an empty name or one
    /// with NUL; metadata errors.
    pub fn set_bucket_attribute(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&[u8]>,
    ) -> Result<()> {
        if name.is_empty() || name.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "bucket attribute name {name:?} must be non-empty and without NUL"
            )));
        }
        let _ns = self.inner.namespace.read();
        self.bucket(bucket)?;
        let mut batch = Batch::new();
        match value {
            Some(v) => batch.put(schema::bucket_attribute_key(bucket, name), v.to_vec()),
            None => batch.delete(schema::bucket_attribute_key(bucket, name)),
        };
        let committed = self.commit(batch);
        self.attributes_changed(bucket);
        committed
    }

    /// What a bucket holds now: (objects, bytes of their data), counted from its records:
    /// every version that is not a delete marker, noncurrent ones included, as they take room
    /// (one scan of the bucket's version records; a usage report's snapshot, not a hot path).
    ///
    /// Errors: [`Error::NoSuchBucket`]; metadata errors.
    pub fn bucket_usage(&self, bucket: &str) -> Result<(u64, u64)> {
        self.bucket(bucket)?;
        let (mut objects, mut bytes) = (0u64, 0u64);
        let mut err = None;
        for prefix in [
            schema::noncurrent_prefix(bucket),
            schema::object_prefix(bucket),
        ] {
            self.inner.meta.scan(&prefix, &mut |k, v| {
                if !k.starts_with(&prefix) {
                    return Scan::Stop;
                }
                match schema::ObjectRecord::decode(v) {
                    Ok(r) => {
                        objects += u64::from(!r.delete_marker);
                        bytes += r.size;
                        Scan::Continue
                    }
                    Err(e) => {
                        err = Some(e);
                        Scan::Stop
                    }
                }
            })?;
        }
        match err {
            Some(e) => Err(e),
            None => Ok((objects, bytes)),
        }
    }

    /// The bucket's record.
    ///
    /// Errors: [`Error::NoSuchBucket`].
    pub fn head_bucket(&self, name: &str) -> Result<BucketInfo> {
        let rec = self.bucket(name)?;
        Ok(BucketInfo {
            name: name.to_string(),
            owner: rec.owner,
            created_unix_ms: rec.created_unix_ms,
            protection: rec.protection,
            versioning: rec.versioning,
        })
    }

    /// Every bucket, in name order.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let mut out = Vec::new();
        let mut err = None;
        self.inner.meta.scan(schema::BUCKET_PREFIX, &mut |k, v| {
            let Some(name) = k.strip_prefix(schema::BUCKET_PREFIX) else {
                return Scan::Stop;
            };
            match BucketRecord::decode(v) {
                Ok(rec) => out.push(BucketInfo {
                    name: String::from_utf8_lossy(name).into_owned(),
                    owner: rec.owner,
                    created_unix_ms: rec.created_unix_ms,
                    protection: rec.protection,
                    versioning: rec.versioning,
                }),
                Err(e) => {
                    err = Some(e);
                    return Scan::Stop;
                }
            }
            Scan::Continue
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn bucket(&self, name: &str) -> Result<BucketRecord> {
        match self.inner.meta.get(&schema::bucket_key(name))? {
            Some(v) => BucketRecord::decode(&v),
            None => Err(Error::NoSuchBucket(name.to_string())),
        }
    }
}
