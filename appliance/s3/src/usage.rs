//! Usage reporting: per account and per bucket, per UTC hour, the requests by class, bytes in
//! and out, and the objects and bytes stored.
//!
//! - **Counting**: every S3 request is counted in memory against (hour, account, bucket) —
//!   the caller's account, or the bucket owner's for an anonymous caller — and its class:
//!   `read` (GET, HEAD), `write` (PUT, POST, copy), `list`, `delete`, `other` (S3's billing
//!   classes, with lists apart from writes).
//! - **Keeping**: counts are added to store settings `usage/<YYYYMMDDHH>/<account>/<bucket>`
//!   (JSON; bucket `-` for requests on no bucket) every minute, at shutdown and before a report
//!   is read, in one metadata commit each time; a crash loses at most a minute of counts.
//! - **Stored**: every hour (and for the current hour when a report is read) each bucket's
//!   objects and bytes are counted from its records and kept in that hour's record.
//! - **Reports**: `GET /_hoard/usage` (admin) as JSON, or CSV with `format=csv`, filtered by
//!   `account`, `bucket`, `from` and `to` (hours, `YYYYMMDDHH`, inclusive).
//!
//! Must not import `state`, `request`, `ops`, `body` or `server`.

use std::collections::BTreeMap;

use hoard::Store;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::auth::Credentials;

const PREFIX: &str = "usage/";

/// Request classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// GET and HEAD of objects, ACLs, policies, settings.
    Read,
    /// PUT and POST: objects, parts, settings.
    Write,
    /// Listings.
    List,
    /// Deletes and aborts.
    Delete,
    /// Anything else (preflights).
    Other,
}

impl Class {
    /// The class of an operation (see `ops::dispatch`'s names).
    pub fn of(operation: &str) -> Class {
        match operation {
            o if o.starts_with("List") => Class::List,
            o if o.starts_with("Delete") || o == "AbortMultipartUpload" => Class::Delete,
            o if o.starts_with("Get") || o == "HeadObject" => Class::Read,
            o if o.starts_with("Put") || o.starts_with("Post") => Class::Write,
            "CreateBucket"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload" => Class::Write,
            _ => Class::Other,
        }
    }
}

/// One hour of one bucket of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Requests by class.
    pub requests_read: u64,
    /// See `requests_read`.
    pub requests_write: u64,
    /// See `requests_read`.
    pub requests_list: u64,
    /// See `requests_read`.
    pub requests_delete: u64,
    /// See `requests_read`.
    pub requests_other: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Objects stored at the hour's snapshot.
    pub objects: u64,
    /// Bytes of object data stored at the hour's snapshot.
    pub bytes_stored: u64,
}

impl Usage {
    fn add(&mut self, o: &Usage) {
        self.requests_read += o.requests_read;
        self.requests_write += o.requests_write;
        self.requests_list += o.requests_list;
        self.requests_delete += o.requests_delete;
        self.requests_other += o.requests_other;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// A report row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The hour, `YYYYMMDDHH` (UTC).
    pub hour: String,
    /// The account.
    pub account: String,
    /// The bucket (`-`: requests on no bucket).
    pub bucket: String,
    /// The figures.
    #[serde(flatten)]
    pub usage: Usage,
}

/// (hour, account, bucket).
type Slot = (String, String, String);

/// Counts not yet kept, and the hour of the last stored snapshot.
#[derive(Default)]
pub struct UsageLog {
    pending: Mutex<BTreeMap<Slot, Usage>>,
    /// Serialises flushes and snapshots.
    keep: Mutex<Option<String>>,
}

/// The UTC hour of Unix milliseconds `ms`, `YYYYMMDDHH`.
pub fn hour_of(ms: u64) -> String {
    let iso = crate::protocol::dates::iso8601(ms); // 2026-11-26T07:00:00.000Z
    format!(
        "{}{}{}{}",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13]
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn record_name((hour, account, bucket): &Slot) -> String {
    format!("{PREFIX}{hour}/{account}/{bucket}")
}

fn parse_record_name(name: &str) -> Option<Slot> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut it = rest.splitn(3, '/');
    Some((
        it.next()?.to_string(),
        it.next()?.to_string(),
        it.next()?.to_string(),
    ))
}

impl UsageLog {
    /// Counts one request.
    pub fn count(
        &self,
        account: &str,
        bucket: Option<&str>,
        class: Class,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        if account.is_empty() {
            return; // refused before anyone was known
        }
        let slot = (
            hour_of(now_ms()),
            account.to_string(),
            bucket.unwrap_or("-").to_string(),
        );
        let mut p = self.pending.lock();
        let u = p.entry(slot).or_default();
        match class {
            Class::Read => u.requests_read += 1,
            Class::Write => u.requests_write += 1,
            Class::List => u.requests_list += 1,
            Class::Delete => u.requests_delete += 1,
            Class::Other => u.requests_other += 1,
        }
        u.bytes_in += bytes_in;
        u.bytes_out += bytes_out;
    }

    /// Adds the pending counts to their records (one commit), and takes this hour's
    /// snapshot of stored objects if none was taken (or `snapshot` asks).
    ///
    /// Errors: metadata errors (the counts stay pending for the next flush).
    pub fn flush(
        &self,
        store: &Store,
        credentials: &Credentials,
        snapshot: bool,
    ) -> hoard::Result<()> {
        let mut last_snapshot = self.keep.lock();
        let pending = std::mem::take(&mut *self.pending.lock());
        let hour = hour_of(now_ms());
        let take_snapshot = snapshot || last_snapshot.as_deref() != Some(hour.as_str());
        let mut records: BTreeMap<Slot, Usage> = BTreeMap::new();
        let result = (|| {
            for (slot, add) in &pending {
                let mut u = match store.setting(&record_name(slot))? {
                    Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
                    None => Usage::default(),
                };
                u.add(add);
                records.insert(slot.clone(), u);
            }
            if take_snapshot {
                for b in store.list_buckets()? {
                    let account = credentials.owning_account(&b.owner).to_string();
                    let slot = (hour.clone(), account, b.name.clone());
                    let (objects, bytes) = match store.bucket_usage(&b.name) {
                        Ok(x) => x,
                        Err(hoard::Error::NoSuchBucket(_)) => continue,
                        Err(e) => return Err(e),
                    };
                    let u = match records.get_mut(&slot) {
                        Some(u) => u,
                        None => {
                            let stored = match store.setting(&record_name(&slot))? {
                                Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
                                None => Usage::default(),
                            };
                            records.entry(slot).or_insert(stored)
                        }
                    };
                    u.objects = objects;
                    u.bytes_stored = bytes;
                }
            }
            let changes: Vec<(String, Option<Vec<u8>>)> = records
                .iter()
                .map(|(slot, u)| {
                    (
                        record_name(slot),
                        Some(serde_json::to_vec(u).expect("usage serialises")),
                    )
                })
                .collect();
            store.update_settings(&changes)
        })();
        match result {
            Ok(()) => {
                if take_snapshot {
                    *last_snapshot = Some(hour);
                }
                Ok(())
            }
            Err(e) => {
                // Put the counts back for the next flush.
                let mut p = self.pending.lock();
                for (slot, u) in pending {
                    p.entry(slot).or_default().add(&u);
                }
                Err(e)
            }
        }
    }

    /// The kept usage (after a flush with a fresh snapshot of this hour), filtered.
    ///
    /// Errors: metadata errors.
    pub fn report(
        &self,
        store: &Store,
        credentials: &Credentials,
        account: Option<&str>,
        bucket: Option<&str>,
        from_hour: Option<&str>,
        to_hour: Option<&str>,
    ) -> hoard::Result<Vec<Row>> {
        self.flush(store, credentials, true)?;
        let mut rows = Vec::new();
        for (name, value) in store.settings_with_prefix(PREFIX)? {
            let Some((hour, acc, b)) = parse_record_name(&name) else {
                continue;
            };
            if account.is_some_and(|a| a != acc)
                || bucket.is_some_and(|x| x != b)
                || from_hour.is_some_and(|f| hour.as_str() < f)
                || to_hour.is_some_and(|t| hour.as_str() > t)
            {
                continue;
            }
            rows.push(Row {
                hour,
                account: acc,
                bucket: b,
                usage: serde_json::from_slice(&value).unwrap_or_default(),
            });
        }
        Ok(rows)
    }
}

/// Rows as CSV, with a header line.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "hour,account,bucket,objects,bytes_stored,requests_read,requests_write,requests_list,requests_delete,requests_other,bytes_in,bytes_out\n",
    );
    for r in rows {
        let u = &r.usage;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.hour,
            r.account,
            r.bucket,
            u.objects,
            u.bytes_stored,
            u.requests_read,
            u.requests_write,
            u.requests_list,
            u.requests_delete,
            u.requests_other,
            u.bytes_in,
            u.bytes_out
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_classes() {
        assert_eq!(hour_of(1_795_700_000_000), "2026112613");
        assert_eq!(Class::of("GetObject"), Class::Read);
        assert_eq!(Class::of("ListBucket"), Class::List);
        assert_eq!(Class::of("PutObject"), Class::Write);
        assert_eq!(Class::of("PostObject"), Class::Write);
        assert_eq!(Class::of("DeleteObject"), Class::Delete);
        assert_eq!(Class::of("PreflightCORS"), Class::Other);
        // The route table's names of operations S3 bills as GETs and PUTs.
        assert_eq!(Class::of("HeadObject"), Class::Read);
        for write in [
            "CopyObject",
            "UploadPart",
            "UploadPartCopy",
            "CompleteMultipartUpload",
        ] {
            assert_eq!(Class::of(write), Class::Write, "{write}");
        }
        assert_eq!(Class::of("ListParts"), Class::List);
        assert_eq!(
            parse_record_name("usage/2026112612/123456789012/photos"),
            Some(("2026112612".into(), "123456789012".into(), "photos".into()))
        );
    }
}
