//! Listing objects in S3 order (UTF-8 byte order of keys) with prefix, delimiter, a start-after
//! marker and a page size (ListObjects / ListObjectsV2, Amazon S3 API Reference).
//!
//! With a delimiter, every key sharing a common prefix is skipped with one seek, so a page costs
//! O(page size) index steps however many keys each common prefix holds.
//!
//! Must not import `device`, or the store's write paths (`objects`, `multipart`, `copy`).

use super::Store;
use crate::error::{Error, Result};
use crate::meta::Scan;
use crate::schema::{self, ObjectRecord};

/// Largest page S3 returns.
pub const MAX_KEYS_LIMIT: usize = 1000;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by the first occurrence of this after the prefix into common prefixes.
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) strictly after this (marker, start-after, or a decoded
    /// continuation token).
    pub start_after: Option<String>,
    /// Entries per page (keys + common prefixes), capped at 1000.
    pub max_keys: usize,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, Unix milliseconds.
    pub last_modified_unix_ms: u64,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// The last key or common prefix returned (the next page's start-after) when truncated.
    pub next_marker: Option<String>,
}

/// Where a listing of `base` (a bucket's `o/` prefix) for `prefix` starts: at the prefix,
/// or past `marker` (at it when `inclusive`) if that is later.
pub(super) fn listing_start(
    base: &[u8],
    prefix: &[u8],
    marker: Option<&[u8]>,
    inclusive: bool,
) -> Vec<u8> {
    let from = [base, prefix].concat();
    match marker {
        Some(m) if m >= prefix => {
            // The marker itself, or the smallest key strictly greater than it.
            let start = match inclusive {
                true => [base, m].concat(),
                false => [base, m, b"\0"].concat(),
            };
            from.max(start)
        }
        _ => from,
    }
}

/// A non-empty delimiter as bytes.
pub(super) fn delimiter_of(delimiter: &Option<String>) -> Option<&[u8]> {
    delimiter
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(str::as_bytes)
}

/// The common prefix `key` rolls up into: `prefix` and what follows up to and including the
/// first `delimiter` after it; `None` without one.
pub(super) fn common_prefix<'k>(
    key: &'k [u8],
    prefix: &[u8],
    delimiter: Option<&[u8]>,
) -> Option<&'k [u8]> {
    let d = delimiter?;
    key[prefix.len()..]
        .windows(d.len())
        .position(|w| w == d)
        .map(|i| &key[..prefix.len() + i + d.len()])
}

impl Store {
    /// Lists one page of a bucket.
    ///
    /// Errors: [`Error::NoSuchBucket`]; a corrupt record as [`Error::MetadataUnavailable`].
    pub fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<ListPage> {
        self.bucket(bucket)?;
        let max_keys = query.max_keys.min(MAX_KEYS_LIMIT);
        let base = schema::object_prefix(bucket);
        let prefix = query.prefix.as_bytes();
        let delimiter = delimiter_of(&query.delimiter);
        let after = query.start_after.as_deref().map(str::as_bytes);
        let from = listing_start(&base, prefix, after, false);

        let mut page = ListPage::default();
        let mut count = 0usize;
        let mut error: Option<Error> = None;
        self.inner.meta.scan(&from, &mut |k, v| {
            let Some(key) = k.strip_prefix(base.as_slice()) else {
                return Scan::Stop;
            };
            if !key.starts_with(prefix) {
                return Scan::Stop;
            }
            // A key whose latest version is a delete marker is not listed, nor is a common
            // prefix until a key under it is.
            let rec = match ObjectRecord::decode(v) {
                Ok(rec) if rec.delete_marker => return Scan::Continue,
                Ok(rec) => rec,
                Err(e) => {
                    error = Some(e);
                    return Scan::Stop;
                }
            };
            // A key under a common prefix becomes that prefix.
            if let Some(cp) = common_prefix(key, prefix, delimiter) {
                let skip_to = schema::prefix_successor(cp).map(|s| [base.as_slice(), &s].concat());
                if after.is_some_and(|a| cp <= a) {
                    // Already returned on an earlier page: skip it whole.
                    return skip_to.map_or(Scan::Stop, Scan::SeekTo);
                }
                if count == max_keys {
                    page.is_truncated = true;
                    return Scan::Stop;
                }
                page.common_prefixes
                    .push(String::from_utf8_lossy(cp).into_owned());
                count += 1;
                return skip_to.map_or(Scan::Stop, Scan::SeekTo);
            }
            if count == max_keys {
                page.is_truncated = true;
                return Scan::Stop;
            }
            page.objects.push(ObjectSummary {
                key: String::from_utf8_lossy(key).into_owned(),
                size: rec.size,
                etag: rec.etag,
                last_modified_unix_ms: rec.last_modified_unix_ms,
            });
            count += 1;
            Scan::Continue
        })?;
        if let Some(e) = error {
            return Err(e);
        }
        if page.is_truncated {
            let last_key = page.objects.last().map(|o| o.key.clone());
            let last_cp = page.common_prefixes.last().cloned();
            page.next_marker = last_key.into_iter().chain(last_cp).max();
        }
        Ok(page)
    }
}
