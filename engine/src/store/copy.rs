//! Copying objects inside the store (S3's CopyObject) by sharing their chunks: the copy's
//! record names the source's chunk runs (same object ID, same needles), so copying any object
//! is one metadata commit and writes nothing to the HDDs.
//!
//! Sharing and space: live space is the sum over records of the locations they name
//! (`store/space.rs`), so a needle named by two records counts twice and its segment is freed
//! only when no record names it; a shared needle is therefore a reference-counted one, and
//! garbage collection and repair, which rewrite one record at a time, keep each record
//! readable (a needle they move for one record is copied for the other too, which ends the
//! sharing, never the data).
//!
//! Safety of the commit: the source record is read and the copy committed under the
//! namespace lock (shared: garbage collection and repair, which take it exclusively, cannot
//! move the source's needles meanwhile) and the key locks of both keys (the source cannot be
//! overwritten or deleted meanwhile), so every location the copy names is live when the copy
//! commits, and never in a segment waiting to be freed.
//!
//! A copy into a bucket of another protection cannot share (the stripes would not be the
//! destination's): its bytes are read and written as a new object.
//!
//! Must not import `device`; of the store's files only `objects`, `versions` and the store
//! itself.

use super::objects::{apply_header_changes, ObjectInfo, PutOptions, WriteCondition};
use super::versions::{Located, VersionId};
use super::{validate_key, Store};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::meta::Batch;
use crate::schema::{InlineData, Versioning};

/// What a copy keeps and changes.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// `None`: the source's Content-Type and user metadata (S3's `COPY` directive);
    /// `Some((content type, user metadata))`: these instead (`REPLACE`).
    pub metadata: Option<(Option<String>, Vec<(String, String)>)>,
    /// Changes to the stored headers copied from the source (see
    /// [`Store::update_object_headers`]): `Some` sets, `None` removes.
    pub header_changes: Vec<(String, Option<String>)>,
    /// Commit only if this holds on the destination's current version.
    pub condition: Option<WriteCondition>,
    /// The source's version to copy (`x-amz-copy-source` with `?versionId=`); its latest
    /// when `None`.
    pub source_version: Option<VersionId>,
}

impl Store {
    /// Copies object `src_key` of `src_bucket` to `dst_key` of `dst_bucket` (which may be the
    /// same key: a metadata rewrite). `check_source` sees the source as it is copied (S3's
    /// `x-amz-copy-source-if-*` conditions) and may refuse it. The copy has a new
    /// Last-Modified and the source's ETag, size, parts and checksums.
    ///
    /// Errors: [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`] and
    /// [`Error::DeleteMarker`] (the source), [`Error::InvalidKey`],
    /// [`Error::PreconditionFailed`] (the destination's condition), what `check_source`
    /// returns; device errors for a copy that cannot share.
    pub fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        opts: CopyOptions,
        check_source: &dyn Fn(&ObjectInfo) -> Result<()>,
    ) -> Result<ObjectInfo> {
        validate_key(dst_key)?;
        {
            let _ns = self.inner.namespace.read();
            let src_protection = self.bucket(src_bucket)?.protection;
            let dst = self.bucket(dst_bucket)?;
            let _keys = self.key_locks_of(&[(src_bucket, src_key), (dst_bucket, dst_key)]);
            let src = self.version_at(
                src_bucket,
                src_key,
                opts.source_version,
                &self.inner.meta.snapshot(),
            )?;
            check_source(&ObjectInfo::from_record(src_key, &src.record))?;
            if src_protection == dst.protection || src.record.runs.is_empty() {
                return self.commit_copy(src, dst.versioning, dst_bucket, dst_key, &opts);
            }
        }
        // Another protection: the bytes are read and written anew.
        let mut reader = self.get_object_version(src_bucket, src_key, opts.source_version, None)?;
        let info = reader.info().clone();
        check_source(&info)?;
        let mut headers = info.headers.clone();
        apply_header_changes(&mut headers, &opts.header_changes);
        let (content_type, user_metadata) = match opts.metadata {
            Some(m) => m,
            None => (Some(info.content_type.clone()), info.user_metadata.clone()),
        };
        let put = PutOptions {
            content_type,
            user_metadata,
            headers,
            condition: opts.condition,
            ..PutOptions::default()
        };
        self.put_object(dst_bucket, dst_key, &mut reader, put)
    }

    /// Commits the copy's record naming the source's runs (locks held by the caller).
    fn commit_copy(
        &self,
        src: Located,
        versioning: Versioning,
        dst_bucket: &str,
        dst_key: &str,
        opts: &CopyOptions,
    ) -> Result<ObjectInfo> {
        let inline_data = match src.record.inline {
            true => Some(InlineData::decode(&self.inline_value(&src.inline_key)?)?.data),
            false => None,
        };
        let mut record = src.record;
        record.last_modified_unix_ms = super::now_unix_ms();
        record.upload_id = String::new();
        if let Some((content_type, user_metadata)) = &opts.metadata {
            record.content_type = content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into());
            record.user_metadata = user_metadata.clone();
        }
        apply_header_changes(&mut record.headers, &opts.header_changes);
        let mut delta = self.space_delta();
        // The copy names every location of the source once more; the version it replaces
        // (which may be the source itself) is retired as the bucket's versioning says.
        delta.add_runs(&record.runs, 1);
        self.commit_version_locked(
            dst_bucket,
            dst_key,
            versioning,
            &mut record,
            inline_data.as_deref(),
            Batch::new(),
            delta,
            opts.condition.as_ref(),
        )?;
        Ok(ObjectInfo::from_record(dst_key, &record))
    }

    /// The key locks of several keys, taken in stripe order (each stripe once), so two
    /// callers locking overlapping keys cannot deadlock.
    fn key_locks_of(&self, keys: &[(&str, &str)]) -> Vec<super::KeyLock<'_>> {
        let mut stripes: Vec<usize> = keys
            .iter()
            .map(|(b, k)| self.key_lock_stripe(b, k))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes.into_iter().map(|s| self.lock_stripe(s)).collect()
    }
}
