//! Lifecycle (S3 User Guide, "Managing your storage lifecycle"; API Reference,
//! PutBucketLifecycleConfiguration): per-bucket rules, kept as the bucket attribute
//! `lifecycle` (JSON), applied by a background worker.
//!
//! - **Rules**: `ID`, `Status` (`Enabled`/`Disabled`), a filter (`Prefix`, `Tag`,
//!   `ObjectSizeGreaterThan`, `ObjectSizeLessThan`, or several under `And`; or the legacy
//!   top-level `Prefix`), and actions: `Expiration` (`Days` after Last-Modified, or a `Date`),
//!   `AbortIncompleteMultipartUpload` (`DaysAfterInitiation`), and for versioned buckets
//!   `NoncurrentVersionExpiration` (`NoncurrentDays` after a version became noncurrent, and
//!   `NewerNoncurrentVersions`: keep that many newer noncurrent versions) and
//!   `ExpiredObjectDeleteMarker` (a delete marker with no other version left is removed).
//!   Expiring the current version of a versioned bucket adds a delete marker, as S3 does.
//!   Transitions are refused: there is one storage class.
//! - **When**: as S3 does, an object expires at the first UTC midnight at least `Days` days
//!   after it was last modified (or at the rule's `Date`); an upload is aborted the same way,
//!   counted from its initiation.
//! - **The worker** visits every bucket with rules every `interval` (and at start), deletes
//!   what is due at most `deletes_per_s` per second, each deletion conditioned on the very
//!   version it judged (an object rewritten meanwhile is kept), and counts what it did
//!   ([`LifecycleStatus`], in the status document and the log). Its state is the buckets'
//!   rules and objects, so it survives restarts by construction.
//! - `x-amz-expiration` (`expiry-date="...", rule-id="..."`) on GET, HEAD and PUT names when
//!   an object will expire.
//! - **A shortened clock** for tests: `day` (default 86,400 s) is how long a lifecycle day
//!   lasts (`hoard serve --lifecycle-day-seconds`), and its "midnights" are multiples of it
//!   since the epoch; a `Date` is always a real date.
//!
//! Must not import `state`, `request`, `ops` or `server`: the server runs its passes on the
//! store it hands over; it reads tags through `protocol::tags`.

use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{S3Error, S3Result};
use crate::s3_error;
use crate::xml::{walk, Node};

/// The bucket attribute holding a bucket's lifecycle rules.
pub const LIFECYCLE_ATTRIBUTE: &str = "lifecycle";
/// Most rules in one configuration (S3: 1,000).
pub const MAX_RULES: usize = 1000;

/// Which objects a rule applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Key prefix ("" for all).
    pub prefix: String,
    /// Written as the legacy rule-level `<Prefix>` (no `<Filter>`): answered in that form.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rule_level_prefix: bool,
    /// Tags the object must all carry.
    pub tags: Vec<(String, String)>,
    /// Only objects larger than this (bytes).
    pub size_greater_than: Option<u64>,
    /// Only objects smaller than this (bytes).
    pub size_less_than: Option<u64>,
}

/// One rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `ID` (made up when absent).
    pub id: String,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// The filter.
    pub filter: Filter,
    /// `Expiration/Days`.
    pub expiration_days: Option<u64>,
    /// `Expiration/Date`, Unix seconds (a midnight).
    pub expiration_date_secs: Option<u64>,
    /// `Expiration/ExpiredObjectDeleteMarker`: remove a delete marker that is the only
    /// version of its key.
    pub expired_object_delete_marker: bool,
    /// `NoncurrentVersionExpiration/NoncurrentDays`: days after a version became noncurrent.
    pub noncurrent_days: Option<u64>,
    /// `NoncurrentVersionExpiration/NewerNoncurrentVersions`: how many newer noncurrent
    /// versions are kept whatever their age.
    pub newer_noncurrent_versions: Option<u64>,
    /// `AbortIncompleteMultipartUpload/DaysAfterInitiation`.
    pub abort_upload_days: Option<u64>,
}

/// A bucket's rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

/// What the worker did since the server started.
#[derive(Clone, Debug, Default)]
pub struct LifecycleStatus {
    /// Passes over the buckets with rules.
    pub passes: u64,
    /// Objects expired (deleted; in a versioned bucket, hidden by a delete marker).
    pub objects_expired: u64,
    /// Noncurrent versions and expired delete markers removed for good.
    pub versions_expired: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// When the last pass ended (Unix ms; 0 before the first).
    pub last_pass_unix_ms: u64,
}

/// The worker's settings and counters.
pub struct LifecycleWorker {
    /// How long a lifecycle day lasts.
    pub day: Duration,
    /// Time between passes.
    pub interval: Duration,
    /// Most deletions per second.
    pub deletes_per_s: u64,
    status: Mutex<LifecycleStatus>,
}

impl LifecycleWorker {
    /// A worker whose days last `day` and whose passes come every `interval`, deleting at
    /// most 1,000 objects a second.
    pub fn new(day: Duration, interval: Duration) -> Self {
        LifecycleWorker {
            day,
            interval,
            deletes_per_s: 1000,
            status: Mutex::new(LifecycleStatus::default()),
        }
    }
}

fn malformed(detail: impl std::fmt::Display) -> S3Error {
    s3_error!(MalformedXML, BAD_REQUEST, "{detail}")
}

impl Filter {
    /// Whether an object matches (its tags are read only when the filter names some).
    pub fn matches(
        &self,
        key: &str,
        size: u64,
        tags: impl FnOnce() -> Vec<(String, String)>,
    ) -> bool {
        key.starts_with(&self.prefix)
            && self.size_greater_than.map_or(true, |g| size > g)
            && self.size_less_than.map_or(true, |l| size < l)
            && (self.tags.is_empty() || {
                let have = tags();
                self.tags.iter().all(|t| have.contains(t))
            })
    }
}

impl Lifecycle {
    /// Parses and validates a `LifecycleConfiguration` document.
    ///
    /// Errors: MalformedXML; InvalidArgument naming the rule and what is wrong (no action, a
    /// duplicate ID, a zero or missing day count, a date not at midnight, tags with
    /// AbortIncompleteMultipartUpload, a transition).
    pub fn from_xml(body: &[u8]) -> S3Result<Lifecycle> {
        let rules = parse_lifecycle(body)?;
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(malformed(format!(
                "a lifecycle configuration holds 1 to {MAX_RULES} rules, not {}",
                rules.len()
            )));
        }
        let invalid = |rule: &Rule, what: &str| {
            s3_error!(
                InvalidArgument,
                BAD_REQUEST,
                "lifecycle rule {:?}: {what}",
                rule.id
            )
        };
        for (i, r) in rules.iter().enumerate() {
            if r.id.len() > 255 {
                return Err(invalid(r, "an ID is at most 255 characters"));
            }
            if rules[..i].iter().any(|o| o.id == r.id) {
                return Err(invalid(r, "IDs must be unique"));
            }
            if r.expiration_days.is_none()
                && r.expiration_date_secs.is_none()
                && !r.expired_object_delete_marker
                && r.noncurrent_days.is_none()
                && r.abort_upload_days.is_none()
            {
                return Err(invalid(r, "a rule needs at least one action"));
            }
            if [r.expiration_days, r.noncurrent_days, r.abort_upload_days].contains(&Some(0)) {
                return Err(invalid(r, "a number of days must be positive"));
            }
            if r.expiration_days.is_some() && r.expiration_date_secs.is_some() {
                return Err(invalid(r, "Expiration takes Days or Date, not both"));
            }
            if !r.filter.tags.is_empty()
                && (r.abort_upload_days.is_some() || r.expired_object_delete_marker)
            {
                return Err(invalid(
                    r,
                    "AbortIncompleteMultipartUpload and ExpiredObjectDeleteMarker cannot be used with a tag filter",
                ));
            }
        }
        Ok(Lifecycle { rules })
    }

    /// The `LifecycleConfiguration` document.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut x = crate::xml::XmlBuilder::new("LifecycleConfiguration");
        for r in &self.rules {
            x.open("Rule").elem("ID", &r.id);
            let f = &r.filter;
            let parts = usize::from(!f.prefix.is_empty())
                + f.tags.len()
                + usize::from(f.size_greater_than.is_some())
                + usize::from(f.size_less_than.is_some());
            if f.rule_level_prefix {
                // The legacy form (a prefix only), answered as it was written.
                x.elem("Prefix", &f.prefix);
            } else {
                x.open("Filter");
                if parts > 1 {
                    x.open("And");
                }
                if !f.prefix.is_empty() || parts == 0 {
                    x.elem("Prefix", &f.prefix);
                }
                for (k, v) in &f.tags {
                    x.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
                }
                x.opt(
                    "ObjectSizeGreaterThan",
                    f.size_greater_than.map(|n| n.to_string()),
                );
                x.opt(
                    "ObjectSizeLessThan",
                    f.size_less_than.map(|n| n.to_string()),
                );
                if parts > 1 {
                    x.close("And");
                }
                x.close("Filter");
            }
            x.elem("Status", if r.enabled { "Enabled" } else { "Disabled" });
            if r.expiration_days.is_some()
                || r.expiration_date_secs.is_some()
                || r.expired_object_delete_marker
            {
                x.open("Expiration");
                x.opt("Days", r.expiration_days.map(|d| d.to_string()));
                x.opt(
                    "Date",
                    r.expiration_date_secs
                        .map(|s| crate::protocol::dates::iso8601(s * 1000)),
                );
                if r.expired_object_delete_marker {
                    x.elem("ExpiredObjectDeleteMarker", "true");
                }
                x.close("Expiration");
            }
            if r.noncurrent_days.is_some() {
                x.open("NoncurrentVersionExpiration");
                x.opt("NoncurrentDays", r.noncurrent_days.map(|d| d.to_string()));
                x.opt(
                    "NewerNoncurrentVersions",
                    r.newer_noncurrent_versions.map(|d| d.to_string()),
                );
                x.close("NoncurrentVersionExpiration");
            }
            if let Some(d) = r.abort_upload_days {
                x.open("AbortIncompleteMultipartUpload")
                    .elem("DaysAfterInitiation", d.to_string())
                    .close("AbortIncompleteMultipartUpload");
            }
            x.close("Rule");
        }
        x.finish("LifecycleConfiguration")
    }

    /// From the bucket's attributes, if it has rules.
    ///
    /// Errors: InternalError for stored rules that do not parse.
    pub fn of(attributes: &[(String, Vec<u8>)]) -> S3Result<Option<Lifecycle>> {
        attributes
            .iter()
            .find(|(n, _)| n == LIFECYCLE_ATTRIBUTE)
            .map(|(_, v)| {
                serde_json::from_slice(v).map_err(|e| {
                    s3_error!(
                        InternalError,
                        INTERNAL_SERVER_ERROR,
                        "stored lifecycle rules do not parse: {e}"
                    )
                })
            })
            .transpose()
    }

    /// When an object expires and by which rule: the earliest of the enabled rules that
    /// match it (Unix seconds, rule ID).
    pub fn expiry(
        &self,
        key: &str,
        size: u64,
        last_modified_ms: u64,
        tags: &dyn Fn() -> Vec<(String, String)>,
        day: Duration,
    ) -> Option<(u64, &str)> {
        self.rules
            .iter()
            .filter(|r| r.enabled && r.filter.matches(key, size, tags))
            .filter_map(|r| {
                let at = match (r.expiration_days, r.expiration_date_secs) {
                    (Some(d), _) => due_after(last_modified_ms, d, day),
                    (None, Some(date)) => date,
                    (None, None) => return None,
                };
                Some((at, r.id.as_str()))
            })
            .min()
    }

    /// When noncurrent version `v` expires and by which rule (Unix seconds, rule ID):
    /// `newer` noncurrent versions of its key are newer than it.
    pub fn noncurrent_expiry(
        &self,
        v: &hoard::store::VersionEntry,
        newer: u64,
        day: Duration,
    ) -> Option<(u64, &str)> {
        let since = v.noncurrent_since_unix_ms?;
        let tags = || crate::protocol::tags::stored(&v.headers);
        self.rules
            .iter()
            .filter(|r| r.enabled && r.filter.matches(&v.key, v.size, tags))
            .filter(|r| r.newer_noncurrent_versions.map_or(true, |n| newer >= n))
            .filter_map(|r| Some((due_after(since, r.noncurrent_days?, day), r.id.as_str())))
            .min()
    }

    /// Whether a delete marker left alone on key `key` is removed, and by which rule.
    pub fn removes_expired_marker(&self, key: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| {
                r.enabled && r.expired_object_delete_marker && key.starts_with(&r.filter.prefix)
            })
            .map(|r| r.id.as_str())
    }

    /// Whether any rule acts on versions (noncurrent ones or delete markers).
    fn acts_on_versions(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && (r.noncurrent_days.is_some() || r.expired_object_delete_marker))
    }

    /// When an upload initiated at `initiated_ms` with key `key` is aborted (Unix seconds).
    pub fn upload_abort(&self, key: &str, initiated_ms: u64, day: Duration) -> Option<u64> {
        self.rules
            .iter()
            .filter(|r| r.enabled && r.filter.tags.is_empty() && key.starts_with(&r.filter.prefix))
            .filter_map(|r| r.abort_upload_days.map(|d| due_after(initiated_ms, d, day)))
            .min()
    }
}

/// The first lifecycle midnight at least `days` days after `from_ms` (Unix seconds).
pub fn due_after(from_ms: u64, days: u64, day: Duration) -> u64 {
    let day_ms = day.as_millis().max(1) as u64;
    let at = from_ms + days * day_ms;
    at.div_ceil(day_ms) * day_ms / 1000
}

/// The `x-amz-expiration` value for an object, if a rule expires it.
pub fn expiration_header(
    attributes: &[(String, Vec<u8>)],
    info: &hoard::store::ObjectInfo,
    day: Duration,
) -> Option<String> {
    let rules = Lifecycle::of(attributes).ok()??;
    let headers = info.headers.clone();
    let tags = move || crate::protocol::tags::stored(&headers);
    let (at, rule) = rules.expiry(&info.key, info.size, info.last_modified_unix_ms, &tags, day)?;
    Some(format!(
        "expiry-date=\"{}\", rule-id=\"{}\"",
        crate::protocol::dates::http_date(at * 1000),
        rule
    ))
}

impl LifecycleWorker {
    /// The counters.
    pub fn status(&self) -> LifecycleStatus {
        self.status.lock().clone()
    }

    /// One pass over every bucket with rules (blocking: metadata scans and deletes).
    ///
    /// Errors: metadata errors.
    pub fn pass(&self, store: &hoard::Store) -> hoard::Result<(u64, u64)> {
        let now_ms = crate::protocol::dates::now_secs() * 1000;
        let (mut expired, mut aborted, mut versions) = (0u64, 0u64, 0u64);
        let pace = Duration::from_secs_f64(1.0 / self.deletes_per_s.max(1) as f64);
        for bucket in store.list_buckets()? {
            let (_, attributes) = match store.bucket_attributes(&bucket.name) {
                Ok(x) => x,
                Err(hoard::Error::NoSuchBucket(_)) => continue,
                Err(e) => return Err(e),
            };
            let Ok(Some(rules)) = Lifecycle::of(&attributes) else {
                continue;
            };
            let mut after: Option<String> = None;
            loop {
                let page = store.list_objects(
                    &bucket.name,
                    &hoard::store::ListQuery {
                        prefix: String::new(),
                        delimiter: None,
                        start_after: after.clone(),
                        max_keys: 1000,
                    },
                )?;
                for o in &page.objects {
                    let (name, key) = (&bucket.name, &o.key);
                    let tags = || {
                        store
                            .head_object(name, key)
                            .map(|i| crate::protocol::tags::stored(&i.headers))
                            .unwrap_or_default()
                    };
                    let Some((at, rule)) =
                        rules.expiry(key, o.size, o.last_modified_unix_ms, &tags, self.day)
                    else {
                        continue;
                    };
                    if at * 1000 > now_ms {
                        continue;
                    }
                    let this = hoard::store::WriteCondition::IfVersion(
                        o.etag.clone(),
                        o.last_modified_unix_ms,
                    );
                    match store.delete_object_if(name, key, Some(&this)) {
                        Ok(_) => {
                            expired += 1;
                            tracing::info!(bucket = %name, key = %key, rule, "lifecycle: object expired");
                            std::thread::sleep(pace);
                        }
                        Err(
                            hoard::Error::PreconditionFailed { .. } | hoard::Error::NoSuchBucket(_),
                        ) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.next_marker {
                    Some(m) if page.is_truncated => after = Some(m),
                    _ => break,
                }
            }
            if bucket.versioning != hoard::store::Versioning::Unversioned
                && rules.acts_on_versions()
            {
                versions += self.expire_versions(store, &bucket.name, &rules, now_ms, pace)?;
            }
            let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
            loop {
                let page = store.list_multipart_uploads(
                    &bucket.name,
                    "",
                    key_marker.as_deref(),
                    id_marker.as_deref(),
                    1000,
                )?;
                for u in &page.uploads {
                    let Some(at) = rules.upload_abort(&u.key, u.initiated_unix_ms, self.day) else {
                        continue;
                    };
                    if at * 1000 > now_ms {
                        continue;
                    }
                    match store.abort_multipart_upload(&bucket.name, &u.key, &u.upload_id) {
                        Ok(()) => {
                            aborted += 1;
                            tracing::info!(bucket = %bucket.name, key = %u.key, upload_id = %u.upload_id, "lifecycle: incomplete upload aborted");
                            std::thread::sleep(pace);
                        }
                        Err(hoard::Error::NoSuchUpload { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match (&page.next_marker, page.is_truncated) {
                    (Some((k, i)), true) => {
                        key_marker = Some(k.clone());
                        id_marker = Some(i.clone());
                    }
                    _ => break,
                }
            }
        }
        let mut s = self.status.lock();
        s.passes += 1;
        s.objects_expired += expired;
        s.versions_expired += versions;
        s.uploads_aborted += aborted;
        s.last_pass_unix_ms = crate::protocol::dates::now_secs() * 1000;
        Ok((expired + versions, aborted))
    }

    /// Walks a versioned bucket's versions: removes noncurrent versions that are due and
    /// delete markers left alone (each a permanent delete of that very version). Returns how
    /// many it removed.
    ///
    /// Errors: metadata errors.
    fn expire_versions(
        &self,
        store: &hoard::Store,
        bucket: &str,
        rules: &Lifecycle,
        now_ms: u64,
        pace: Duration,
    ) -> hoard::Result<u64> {
        let mut removed = 0u64;
        let mut query = hoard::store::VersionQuery {
            max_keys: 1000,
            ..Default::default()
        };
        // The key being walked: how many of its noncurrent versions were seen, and its latest
        // version if that is a delete marker with nothing after it so far.
        let mut current_key: Option<String> = None;
        let mut noncurrent_seen = 0u64;
        let mut lone_marker: Option<hoard::store::VersionEntry> = None;
        let mut remove = |key: &str,
                          version: hoard::store::VersionId,
                          why: &str|
         -> hoard::Result<()> {
            match store.delete_object_version(bucket, key, version) {
                Ok(_) => {
                    removed += 1;
                    tracing::info!(bucket, key, version = %version, rule = why, "lifecycle: version removed");
                    std::thread::sleep(pace);
                    Ok(())
                }
                Err(hoard::Error::NoSuchBucket(_)) => Ok(()),
                Err(e) => Err(e),
            }
        };
        loop {
            let page = store.list_object_versions(bucket, &query)?;
            for v in &page.versions {
                if current_key.as_deref() != Some(v.key.as_str()) {
                    remove_lone_marker(rules, lone_marker.take(), &mut remove)?;
                    current_key = Some(v.key.clone());
                    noncurrent_seen = 0;
                }
                if v.is_latest {
                    lone_marker = v.delete_marker.then(|| v.clone());
                    continue;
                }
                lone_marker = None;
                let newer = noncurrent_seen;
                noncurrent_seen += 1;
                if let Some((at, rule)) = rules.noncurrent_expiry(v, newer, self.day) {
                    if at * 1000 <= now_ms {
                        remove(&v.key, v.version, rule)?;
                    }
                }
            }
            if !page.is_truncated {
                break;
            }
            query.key_marker = page.next_key_marker;
            query.version_id_marker = page.next_version_id_marker;
        }
        remove_lone_marker(rules, lone_marker.take(), &mut remove)?;
        Ok(removed)
    }
}

/// Removes, with `remove`, a delete marker found to be the only version of its key, if a
/// rule removes expired delete markers there.
fn remove_lone_marker(
    rules: &Lifecycle,
    marker: Option<hoard::store::VersionEntry>,
    remove: &mut dyn FnMut(&str, hoard::store::VersionId, &str) -> hoard::Result<()>,
) -> hoard::Result<()> {
    match marker {
        Some(m) => match rules.removes_expired_marker(&m.key) {
            Some(rule) => remove(&m.key, m.version, rule),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// Parses `<LifecycleConfiguration><Rule>...` into rules, as written (validated by
/// `Lifecycle::from_xml`).
pub fn parse_lifecycle(body: &[u8]) -> S3Result<Vec<crate::lifecycle::Rule>> {
    let mut rules = Vec::new();
    let mut rule = crate::lifecycle::Rule::default();
    let mut status: Option<String> = None;
    let mut tag: (Option<String>, Option<String>) = (None, None);
    let mut seen_root = false;
    let mut saw_filter = false;
    let number = |t: &str, what: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| crate::xml::malformed(format!("{what} {t:?} is not a whole number")))
    };
    walk(body, |node| {
        const R: &str = "LifecycleConfiguration/Rule/";
        match node {
            Node::Text(path, text) if path.starts_with(R) => {
                let p = &path[R.len()..];
                if p == "Prefix" {
                    rule.filter.rule_level_prefix = true;
                }
                let p = p
                    .strip_prefix("Filter/And/")
                    .or_else(|| p.strip_prefix("Filter/"))
                    .unwrap_or(p);
                match p {
                    "ID" => rule.id = text,
                    "Status" => status = Some(text),
                    "Prefix" => rule.filter.prefix = text,
                    "Tag/Key" => tag.0 = Some(text),
                    "Tag/Value" => tag.1 = Some(text),
                    "ObjectSizeGreaterThan" => {
                        rule.filter.size_greater_than = Some(number(&text, p)?)
                    }
                    "ObjectSizeLessThan" => rule.filter.size_less_than = Some(number(&text, p)?),
                    "Expiration/Days" => rule.expiration_days = Some(number(&text, p)?),
                    "Expiration/Date" => {
                        let secs = crate::protocol::dates::parse_amz_date(&format!(
                            "{}T000000Z",
                            text.get(..10).unwrap_or("").replace('-', "")
                        ))
                        .ok_or_else(|| crate::xml::malformed(format!("Date {text:?} is not an ISO 8601 date")))?;
                        if text.len() > 10 && !text[10..].starts_with("T00:00:00") {
                            return Err(s3_error!(
                                InvalidArgument,
                                BAD_REQUEST,
                                "an expiration Date must be at midnight UTC, not {text}"
                            ));
                        }
                        rule.expiration_date_secs = Some(secs);
                    }
                    "Expiration/ExpiredObjectDeleteMarker" => {
                        rule.expired_object_delete_marker = text.eq_ignore_ascii_case("true")
                    }
                    "NoncurrentVersionExpiration/NoncurrentDays" => {
                        rule.noncurrent_days = Some(number(&text, p)?)
                    }
                    "NoncurrentVersionExpiration/NewerNoncurrentVersions" => {
                        rule.newer_noncurrent_versions = Some(number(&text, p)?)
                    }
                    "AbortIncompleteMultipartUpload/DaysAfterInitiation" => {
                        rule.abort_upload_days = Some(number(&text, p)?)
                    }
                    t if t.starts_with("Transition") || t.starts_with("NoncurrentVersionTransition") => {
                        return Err(s3_error!(
                            InvalidArgument,
                            BAD_REQUEST,
                            "lifecycle transitions are not supported: this server has one storage class"
                        ))
                    }
                    other => return Err(crate::xml::malformed(format!("unknown element {other} in a lifecycle Rule"))),
                }
            }
            Node::End(p)
                if p.ends_with("/Tag") && p.starts_with("LifecycleConfiguration/Rule/") =>
            {
                match (tag.0.take(), tag.1.take()) {
                    (Some(k), v) => rule.filter.tags.push((k, v.unwrap_or_default())),
                    _ => return Err(crate::xml::malformed("each Tag needs a Key")),
                }
            }
            Node::End("LifecycleConfiguration/Rule/Prefix") => rule.filter.rule_level_prefix = true,
            Node::End("LifecycleConfiguration/Rule/Filter") => saw_filter = true,
            Node::End("LifecycleConfiguration/Rule") => {
                if std::mem::take(&mut saw_filter) && rule.filter.rule_level_prefix {
                    return Err(crate::xml::malformed(
                        "a lifecycle Rule takes a Prefix or a Filter, not both",
                    ));
                }
                let mut r = std::mem::take(&mut rule);
                match status.take().as_deref() {
                    Some("Enabled") => r.enabled = true,
                    Some("Disabled") => r.enabled = false,
                    _ => {
                        return Err(crate::xml::malformed(
                            "each Rule needs Status Enabled or Disabled",
                        ))
                    }
                }
                if r.id.is_empty() {
                    r.id = format!("rule-{}", rules.len() + 1);
                }
                rules.push(r);
            }
            Node::End("LifecycleConfiguration") => seen_root = true,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_root {
        return Err(crate::xml::malformed(
            "the body is not a LifecycleConfiguration document",
        ));
    }
    Ok(rules)
}
