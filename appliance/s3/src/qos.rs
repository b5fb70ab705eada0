//! Quality of service: per-account and per-bucket limits on requests per second and bytes per
//! second, so one tenant cannot starve the others. Each limit is a token bucket holding up to
//! one second of its rate. A request takes one request token from its account's bucket and
//! from its bucket's; its bytes (the body's declared length as it starts, a GET's object
//! size as it is answered) are charged to the byte buckets, which may go into debt. A
//! request that finds a bucket empty or in debt is answered `503 SlowDown` with
//! `Retry-After` (whole seconds until it refills), which SDKs honour and retry.
//!
//! Limits are set by admin requests and kept in store settings (`qos/a/<account ID>`,
//! `qos/b/<bucket>`, JSON), so they survive restarts. Anonymous requests draw on a share of
//! their own, the account [`ANONYMOUS`] (its limit is set like any account's), and on no
//! tenant's account or bucket: refused or not, they never spend a tenant's budget.
//!
//! Must not import `state`, `request`, `ops`, `body` or `server`: `state` holds the limiter and
//! the request asks it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hoard::Store;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{S3Error, S3Result};
use crate::s3_error;

const PREFIX: &str = "qos/";

/// The account name under which anonymous callers' requests are limited (`hoard admin
/// set-limits account anonymous ...`); no account ID is ever this word.
pub const ANONYMOUS: &str = "anonymous";

/// The most of `capacity` shared units (request permits, data streams, body buffer room) one
/// account may hold: half, and a quarter for anonymous callers together (at least 1). See
/// `state::FairShare` for the reserve kept beside it.
pub fn share_cap(capacity: usize, account: &str) -> usize {
    match account == ANONYMOUS {
        true => (capacity / 4).max(1),
        false => (capacity / 2).max(1),
    }
}

/// Marks an answer whose body bytes were charged already ([`Qos::take_bytes`]).
#[derive(Clone, Copy, Debug)]
pub struct BytesCharged;

/// The (account, bucket) whose limits a caller draws on: its account and the bucket; for an
/// anonymous caller, [`ANONYMOUS`] alone.
pub fn scope_of<'a>(
    auth: &'a crate::auth::Auth,
    bucket: Option<&'a str>,
) -> (&'a str, Option<&'a str>) {
    match auth.anonymous {
        true => (ANONYMOUS, None),
        false => (&auth.account_id, bucket),
    }
}

/// A tenant's or bucket's limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per second.
    pub requests_per_s: Option<f64>,
    /// Bytes per second, in and out together.
    pub bytes_per_s: Option<f64>,
}

/// What a limit applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Scope {
    /// An account, by ID.
    Account(String),
    /// A bucket, by name.
    Bucket(String),
}

impl Scope {
    fn setting(&self) -> String {
        match self {
            Scope::Account(a) => format!("{PREFIX}a/{a}"),
            Scope::Bucket(b) => format!("{PREFIX}b/{b}"),
        }
    }
}

/// A token bucket: `tokens` refill at `rate` per second up to `rate` (one second's worth).
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
    }

    /// Takes `n` tokens if the bucket is not empty or in debt (it may go into debt by the
    /// last take); else the seconds until it is usable again.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), f64> {
        self.refill(now);
        if self.tokens <= 0.0 || (n <= self.rate && self.tokens < n) {
            let missing = n.min(self.rate) - self.tokens;
            return Err(missing / self.rate);
        }
        self.tokens -= n;
        Ok(())
    }

    /// Charges `n` tokens whatever the balance (bytes already moved).
    fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n;
    }
}

#[derive(Debug)]
struct Limiter {
    limits: Limits,
    requests: Option<Mutex<TokenBucket>>,
    bytes: Option<Mutex<TokenBucket>>,
}

impl Limiter {
    fn new(limits: Limits) -> Self {
        Limiter {
            limits,
            requests: limits
                .requests_per_s
                .map(|r| Mutex::new(TokenBucket::new(r))),
            bytes: limits.bytes_per_s.map(|r| Mutex::new(TokenBucket::new(r))),
        }
    }
}

/// The limits in force and their token buckets.
#[derive(Default)]
pub struct Qos {
    store: Option<Store>,
    limiters: RwLock<HashMap<Scope, Arc<Limiter>>>,
    change: Mutex<()>,
}

fn slow_down(scope: &Scope, what: &str, wait_s: f64) -> S3Error {
    let retry = wait_s.ceil().max(1.0) as u64;
    let who = match scope {
        Scope::Account(a) => format!("account {a}"),
        Scope::Bucket(b) => format!("bucket {b}"),
    };
    s3_error!(
        SlowDown,
        SERVICE_UNAVAILABLE,
        "please reduce your request rate: {who} is over its {what} limit; retry in {retry} s"
    )
    .with_headers(&[("retry-after".to_string(), retry.to_string())])
}

impl Qos {
    /// The limits kept in `store`.
    ///
    /// Errors: metadata errors; a stored limit that does not parse (named).
    pub fn load(store: &Store) -> hoard::Result<Qos> {
        let mut limiters = HashMap::new();
        for (name, value) in store.settings_with_prefix(PREFIX)? {
            let rest = &name[PREFIX.len()..];
            let scope = match (rest.get(..2), rest.get(2..)) {
                (Some("a/"), Some(id)) => Scope::Account(id.to_string()),
                (Some("b/"), Some(b)) => Scope::Bucket(b.to_string()),
                _ => continue,
            };
            let limits: Limits =
                serde_json::from_slice(&value).map_err(|e| hoard::Error::MetadataUnavailable {
                    detail: format!("QoS limit {name} does not parse: {e}"),
                })?;
            limiters.insert(scope, Arc::new(Limiter::new(limits)));
        }
        Ok(Qos {
            store: Some(store.clone()),
            limiters: RwLock::new(limiters),
            change: Mutex::new(()),
        })
    }

    /// Every limit set, in scope order.
    pub fn limits(&self) -> Vec<(Scope, Limits)> {
        let mut out: Vec<(Scope, Limits)> = self
            .limiters
            .read()
            .iter()
            .map(|(s, l)| (s.clone(), l.limits))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Sets (or, with both `None`, removes) the limits of `scope`, durably.
    ///
    /// Errors: InvalidArgument for a rate that is not positive; metadata errors.
    pub fn set(&self, scope: Scope, limits: Limits) -> S3Result<()> {
        for rate in [limits.requests_per_s, limits.bytes_per_s]
            .into_iter()
            .flatten()
        {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "a rate limit must be a positive number, not {rate}"
                ));
            }
        }
        let _one = self.change.lock();
        let store = self.store.as_ref().ok_or_else(|| {
            s3_error!(
                NotImplemented,
                NOT_IMPLEMENTED,
                "this server keeps no limits"
            )
        })?;
        let unlimited = limits == Limits::default();
        let value = (!unlimited).then(|| serde_json::to_vec(&limits).expect("limits serialise"));
        store.update_settings(&[(scope.setting(), value)])?;
        let mut l = self.limiters.write();
        if unlimited {
            l.remove(&scope);
        } else {
            l.insert(scope.clone(), Arc::new(Limiter::new(limits)));
        }
        tracing::info!(?scope, ?limits, "QoS limits set");
        Ok(())
    }

    fn limiter(&self, scope: &Scope) -> Option<Arc<Limiter>> {
        let l = self.limiters.read();
        if l.is_empty() {
            return None;
        }
        l.get(scope).cloned()
    }

    /// Admits one request of `account` on `bucket` carrying `body_bytes` (its declared body
    /// length): takes a request token and charges the bytes, in each scope that has limits.
    ///
    /// Errors: SlowDown (503) with `Retry-After`.
    pub fn admit(&self, account: &str, bucket: Option<&str>, body_bytes: u64) -> S3Result<()> {
        let now = Instant::now();
        let scopes = [
            Some(Scope::Account(account.to_string())),
            bucket.map(|b| Scope::Bucket(b.to_string())),
        ];
        for scope in scopes.iter().flatten() {
            let Some(l) = self.limiter(scope) else {
                continue;
            };
            if let Some(r) = &l.requests {
                r.lock()
                    .take(1.0, now)
                    .map_err(|wait| slow_down(scope, "requests/s", wait))?;
            }
            if let Some(b) = &l.bytes {
                b.lock()
                    .take(body_bytes as f64, now)
                    .map_err(|wait| slow_down(scope, "bytes/s", wait))?;
            }
        }
        Ok(())
    }

    /// Takes `bytes` (a GET's body, about to be sent) from the byte buckets of `account` and
    /// `bucket`: refused while one is in debt, else charged whatever the balance.
    ///
    /// Errors: SlowDown (503) with `Retry-After`.
    pub fn take_bytes(&self, account: &str, bucket: Option<&str>, bytes: u64) -> S3Result<()> {
        let now = Instant::now();
        let scopes = [
            Some(Scope::Account(account.to_string())),
            bucket.map(|b| Scope::Bucket(b.to_string())),
        ];
        let limited: Vec<(Scope, Arc<Limiter>)> = scopes
            .into_iter()
            .flatten()
            .filter_map(|s| self.limiter(&s).map(|l| (s, l)))
            .collect();
        // Every scope is checked before any is charged: a refusal charges nothing.
        for (scope, l) in &limited {
            if let Some(b) = &l.bytes {
                b.lock()
                    .take(0.0, now)
                    .map_err(|wait| slow_down(scope, "bytes/s", wait))?;
            }
        }
        for (_, l) in &limited {
            if let Some(b) = &l.bytes {
                b.lock().charge(bytes as f64, now);
            }
        }
        Ok(())
    }

    /// Charges bytes sent (a GET's body) to the byte buckets of `account` and `bucket`.
    pub fn charge_out(&self, account: &str, bucket: Option<&str>, bytes: u64) {
        let now = Instant::now();
        let scopes = [
            Some(Scope::Account(account.to_string())),
            bucket.map(|b| Scope::Bucket(b.to_string())),
        ];
        for scope in scopes.iter().flatten() {
            if let Some(l) = self.limiter(scope) {
                if let Some(b) = &l.bytes {
                    b.lock().charge(bytes as f64, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_buckets_refill_at_their_rate_and_carry_debt() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10.0);
        for _ in 0..10 {
            b.take(1.0, start).unwrap();
        }
        let wait = b.take(1.0, start).unwrap_err();
        assert!((wait - 0.1).abs() < 1e-9, "{wait}");
        b.take(1.0, start + Duration::from_millis(100)).unwrap();
        // Bytes: a charge past the balance is debt that must refill first.
        let mut bytes = TokenBucket::new(1000.0);
        bytes.charge(3000.0, start);
        let wait = bytes.take(1.0, start).unwrap_err();
        assert!((wait - 2.001).abs() < 1e-9, "{wait}");
        assert!(bytes.take(1.0, start + Duration::from_millis(2100)).is_ok());
        // One take larger than a second's worth is allowed from a full bucket (into debt).
        let mut big = TokenBucket::new(100.0);
        big.take(500.0, start).unwrap();
        assert!(big.take(1.0, start + Duration::from_secs(1)).is_err());
    }
}
