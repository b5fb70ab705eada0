//! What every request shares: the engine, who may call, the endpoint's limits and names
//! ([`S3Config`], from the profile), admission control ([`Admission`]), the body memory budget
//! and the shutdown signal. The server creates it; operations read it.
//!
//! Must not import `request`, `ops` or `server`: it holds the services (`auth`, `qos`, `usage`,
//! `metrics`, `lifecycle`, the body budget) and knows no request.

use std::sync::Arc;
use std::time::Duration;

use hoard::Store;

use crate::auth::Credentials;
use crate::body::pump::BufferBudget;
use crate::error::S3Result;
use crate::s3_error;

/// Limits and names of the S3 endpoint.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Domains under which `<bucket>.<domain>` means virtual-host-style addressing.
    pub domains: Vec<String>,
    /// Region reported by GetBucketLocation (`us-east-1` reports an empty constraint).
    pub region: String,
    /// A client that sends nothing of its body, or reads nothing of a response, for this long
    /// is cut (RequestTimeout for a body).
    pub idle_timeout: Duration,
    /// The least a client must move per second, after a grace of `idle_timeout`, while a
    /// body or a GET waits for it (see `body::pump::RateFloor`).
    pub min_rate_bytes_per_s: u64,
    /// Requests handled at once; beyond, `503 SlowDown`.
    pub max_requests: usize,
    /// Data streams at once (request bodies written to the HDDs, GETs read from them), each
    /// holding up to `chunks_per_stream` chunk buffers; beyond, `503 SlowDown`. A stream of
    /// fewer bytes than that many chunks counts as the chunks it needs (at least one), so
    /// small objects are admitted that many times more often ([`Admission::stream`]).
    pub max_streams: usize,
    /// Chunk writes (or read-aheads) one stream keeps in flight: the units of a stream permit.
    pub chunks_per_stream: usize,
    /// Bytes of one chunk.
    pub chunk_bytes: u64,
    /// Memory for the body frames the server holds (see `body::pump::BufferBudget`).
    pub request_buffer_bytes: u64,
    /// Time allowed to send the request line and headers.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers), in bytes.
    pub max_header_bytes: usize,
    /// Where to serve plain `GET /metrics` for a Prometheus scraper (a management address);
    /// `None`: only the signed `GET /_hoard/metrics`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a lifecycle day lasts (shortened for tests; see `lifecycle`).
    pub lifecycle_day: Duration,
    /// Time between lifecycle passes.
    pub lifecycle_interval: Duration,
    /// The HTTPS endpoint's certificate, reloaded by admin requests (set by `server::run`).
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The machine around the store (the appliance's clock and network), if any: its facts
    /// are in the status, and lifecycle expiry waits until it trusts the clock.
    pub host: Option<Arc<dyn crate::host::Host>>,
}

impl S3Config {
    /// Takes the limits the profile derives (`hoard profile show` explains each): requests
    /// and data streams at once, body memory, the idle timeout.
    pub fn with_limits_of(mut self, engine: &hoard::EngineConfig) -> Self {
        self.max_streams = engine.max_data_streams as usize;
        self.chunks_per_stream = engine.chunks_in_flight_per_stream as usize;
        self.chunk_bytes = engine.chunk_size_bytes;
        self.max_requests = engine.max_requests as usize;
        self.request_buffer_bytes = engine.request_buffer_bytes;
        self.idle_timeout = Duration::from_millis(engine.request_idle_timeout_ms);
        self.min_rate_bytes_per_s = engine.min_transfer_rate_bytes_per_s;
        self
    }

    /// The deadlines of one transfer with a client.
    pub fn rate_floor(&self) -> crate::body::pump::RateFloor {
        crate::body::pump::RateFloor::new(self.idle_timeout, self.min_rate_bytes_per_s)
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            domains: vec!["localhost".into()],
            region: "us-east-1".into(),
            idle_timeout: Duration::from_secs(20),
            min_rate_bytes_per_s: 4096,
            max_requests: 256,
            max_streams: 16,
            chunks_per_stream: 4,
            chunk_bytes: 1 << 20,
            request_buffer_bytes: 32 << 20,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            metrics_listen: None,
            lifecycle_day: Duration::from_secs(86_400),
            lifecycle_interval: Duration::from_secs(3600),
            tls: None,
            host: None,
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    /// The engine.
    pub store: Store,
    /// Who may call.
    pub credentials: Credentials,
    /// Limits and names.
    pub config: S3Config,
    /// Asks the server (and, on the appliance, the machine) to stop.
    pub shutdown: Shutdown,
    /// Request and stream permits.
    pub admission: Admission,
    /// Memory for the body frames the S3 layer holds (request bodies in flight, GET frames
    /// not yet sent).
    pub buffers: BufferBudget,
    /// Per-account and per-bucket rate limits.
    pub qos: crate::qos::Qos,
    /// Per-hour usage accounting.
    pub usage: crate::usage::UsageLog,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Buckets' parsed ACLs and policies.
    pub access_cache: crate::auth::access::AccessCache,
    /// The lifecycle worker's settings and counters.
    pub lifecycle: crate::lifecycle::LifecycleWorker,
}

impl AppState {
    /// The server's gauges for a metrics scrape.
    pub fn server_gauges(&self) -> crate::metrics::ServerGauges {
        crate::metrics::ServerGauges {
            requests_in_flight: self.admission.requests_in_flight() as u64,
            streams_in_flight: self.admission.streams_in_flight() as u64,
            request_body_bytes: self.buffers.held_bytes(),
        }
    }

    /// State for serving `store` (its QoS limits read from it).
    ///
    /// Errors: metadata errors; a stored limit that does not parse.
    pub fn new(
        store: Store,
        credentials: Credentials,
        config: S3Config,
        shutdown: Shutdown,
    ) -> hoard::Result<Self> {
        let admission = Admission::new(&config);
        let buffers = BufferBudget::new(config.request_buffer_bytes);
        let qos = crate::qos::Qos::load(&store)?;
        let lifecycle =
            crate::lifecycle::LifecycleWorker::new(config.lifecycle_day, config.lifecycle_interval);
        Ok(AppState {
            store,
            credentials,
            config,
            shutdown,
            admission,
            buffers,
            qos,
            usage: Default::default(),
            metrics: Default::default(),
            access_cache: Default::default(),
            lifecycle,
        })
    }
}

/// Admission control: a request or a data stream beyond the limits of [`S3Config`], or beyond
/// its account's share of them ([`FairShare`]), is answered at once with `503 SlowDown`
/// (clients back off and retry), rather than queued behind clients that may never finish.
#[derive(Debug)]
pub struct Admission {
    requests: Arc<FairShare>,
    /// In chunk buffers: `max_streams x chunks_per_stream` of them.
    streams: Arc<FairShare>,
    chunks_per_stream: usize,
    chunk_bytes: u64,
}

/// Longest a request waits for a data-stream permit before `503 SlowDown`.
pub const STREAM_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Held while a request or stream runs.
pub type Permit = SharePermit;

impl Admission {
    fn new(config: &S3Config) -> Self {
        let chunks_per_stream = config.chunks_per_stream.max(1);
        Admission {
            requests: Arc::new(FairShare::new("requests", config.max_requests)),
            streams: Arc::new(FairShare::new(
                "data stream chunk buffers",
                config.max_streams.max(1) * chunks_per_stream,
            )),
            chunks_per_stream,
            chunk_bytes: config.chunk_bytes.max(1),
        }
    }

    /// A request permit for `account` (an account ID, or [`crate::qos::ANONYMOUS`]).
    ///
    /// Errors: SlowDown (503) when `max_requests` are running, or the account holds its share.
    pub fn request(&self, account: &str) -> S3Result<Permit> {
        self.requests.try_take(account, 1)
    }

    /// A data-stream permit (a body written to or an object read from the HDDs) for
    /// `account`, waiting up to [`STREAM_QUEUE_WAIT`] for one to free. `bytes` is the
    /// stream's length where known: a stream holds the chunk buffers it can use, one per
    /// chunk of `bytes` up to `chunks_per_stream` (all of them when the length is unknown),
    /// so 64 KiB PUTs and GETs are admitted `chunks_per_stream` times as often as large ones
    /// while the chunk buffers large streams may hold stay as bounded as before.
    ///
    /// Errors: SlowDown (503) when none frees that long.
    pub async fn stream(&self, account: &str, bytes: Option<u64>) -> S3Result<Permit> {
        let units = match bytes {
            Some(n) => (n.div_ceil(self.chunk_bytes) as usize).clamp(1, self.chunks_per_stream),
            None => self.chunks_per_stream,
        };
        let deadline = tokio::time::Instant::now() + STREAM_QUEUE_WAIT;
        loop {
            // Registered before trying, so a permit freed in between wakes this waiter.
            let freed = self.streams.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.streams.try_take(account, units) {
                Ok(p) => return Ok(p),
                Err(e) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Requests running now.
    pub fn requests_in_flight(&self) -> usize {
        self.requests.held()
    }

    /// Data streams running now.
    pub fn streams_in_flight(&self) -> usize {
        self.streams.permits()
    }
}

/// `capacity` units shared among accounts, anonymous callers being one more account, so
/// that no account, and no crowd of anonymous clients, can take them all. A permit holds one
/// or more units (a request one; a data stream the chunk buffers it may use) and every rule
/// counts units:
///
/// - an account holds at most half of them (anonymous callers together a quarter);
/// - the last quarter (the reserve) goes only to accounts that would then hold at most a
///   sixteenth (at least one unit), so an account that holds little always finds a permit
///   while anyone who holds much is refused first.
///
/// Work-conserving otherwise: one busy tenant alone may use half the capacity. With
/// `capacity` 256 requests: 128 per account, 64 anonymous, 64 in reserve for accounts holding
/// fewer than 16.
#[derive(Debug)]
pub struct FairShare {
    what: &'static str,
    capacity: usize,
    held: parking_lot::Mutex<ShareState>,
    freed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct ShareState {
    /// Units held.
    total: usize,
    /// Permits held (each of one or more units).
    permits: usize,
    by_account: std::collections::HashMap<String, usize>,
}

impl FairShare {
    /// `capacity` permits (at least 1) of `what` (named in refusals).
    pub fn new(what: &'static str, capacity: usize) -> Self {
        FairShare {
            what,
            capacity: capacity.max(1),
            held: Default::default(),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Most permits `account` may hold.
    pub fn cap(&self, account: &str) -> usize {
        crate::qos::share_cap(self.capacity, account)
    }

    fn reserve(&self) -> usize {
        self.capacity / 4
    }

    fn floor(&self) -> usize {
        (self.capacity / 16).max(1)
    }

    /// Units held now.
    pub fn held(&self) -> usize {
        self.held.lock().total
    }

    /// Permits held now.
    pub fn permits(&self) -> usize {
        self.held.lock().permits
    }

    /// A permit of `units` (at least 1, at most the account's cap) for `account`, if the
    /// rules of [`FairShare`] allow one now; the rules count units.
    ///
    /// Errors: SlowDown (503) naming what ran out.
    pub fn try_take(self: &Arc<Self>, account: &str, units: usize) -> S3Result<SharePermit> {
        let units = units.clamp(1, self.cap(account));
        let mut s = self.held.lock();
        let mine = s.by_account.get(account).copied().unwrap_or(0);
        let free = self.capacity - s.total;
        let refusal = if free < units {
            Some(format!(
                "{} of the {} {} are in use",
                s.total, self.capacity, self.what
            ))
        } else if mine + units > self.cap(account) {
            Some(format!(
                "this account holds {mine} of the {} {}, its most",
                self.capacity, self.what
            ))
        } else if free < self.reserve() + units && mine + units > self.floor() {
            Some(format!(
                "{free} of the {} {} are left, kept for callers holding fewer than {}",
                self.capacity,
                self.what,
                self.floor()
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(s3_error!(
                SlowDown,
                SERVICE_UNAVAILABLE,
                "please reduce your request rate: {why}"
            ));
        }
        s.total += units;
        s.permits += 1;
        *s.by_account.entry(account.to_string()).or_default() += units;
        debug_assert!(s.total <= self.capacity);
        Ok(SharePermit {
            share: self.clone(),
            account: account.to_string(),
            units,
        })
    }
}

/// One permit of a [`FairShare`], returned when dropped.
#[derive(Debug)]
pub struct SharePermit {
    share: Arc<FairShare>,
    account: String,
    units: usize,
}

impl Drop for SharePermit {
    fn drop(&mut self) {
        let mut s = self.share.held.lock();
        s.total -= self.units;
        s.permits -= 1;
        if let Some(n) = s.by_account.get_mut(&self.account) {
            *n -= self.units;
            if *n == 0 {
                s.by_account.remove(&self.account);
            }
        }
        drop(s);
        self.share.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_account_takes_every_permit() {
        let share = Arc::new(FairShare::new("requests", 16));
        let anon: Vec<_> = (0..4)
            .map(|_| share.try_take(crate::qos::ANONYMOUS, 1).unwrap())
            .collect();
        assert!(
            share.try_take(crate::qos::ANONYMOUS, 1).is_err(),
            "a quarter"
        );
        let big: Vec<_> = (0..8).map(|_| share.try_take("big", 1).unwrap()).collect();
        assert!(share.try_take("big", 1).is_err(), "half");
        // 12 held, 4 left = the reserve: only an account holding less than 1 gets one.
        let small = share.try_take("small", 1).unwrap();
        assert!(share.try_take("small", 1).is_err());
        let others: Vec<_> = ["c", "d", "e"]
            .iter()
            .map(|a| share.try_take(a, 1).unwrap())
            .collect();
        assert!(share.try_take("f", 1).is_err(), "all 16 in use");
        drop(big);
        assert_eq!(share.held(), 8);
        drop((anon, small, others));
        assert_eq!(share.held(), 0);
        assert!(share.held.lock().by_account.is_empty());
    }

    /// A permit of several units counts them against every rule; small ones fit where a
    /// large one does not.
    #[test]
    fn permits_count_their_units() {
        let share = Arc::new(FairShare::new("chunk buffers", 16));
        let large = share.try_take("a", 4).unwrap();
        let _large2 = share.try_take("a", 4).unwrap();
        assert!(share.try_take("a", 4).is_err(), "8 of 8 units: a's half");
        assert!(share.try_take("a", 1).is_err());
        drop(large);
        let small: Vec<_> = (0..4).map(|_| share.try_take("a", 1).unwrap()).collect();
        assert_eq!((share.held(), share.permits()), (8, 5));
        // More units than the cap are clamped to it: an anonymous stream takes at most 4.
        let anon = share.try_take(crate::qos::ANONYMOUS, 100).unwrap();
        assert_eq!(share.held(), 12);
        // 4 left, the reserve: a 1-unit permit for an account holding none.
        assert!(
            share.try_take("b", 2).is_err(),
            "the reserve is for small holders"
        );
        let _b = share.try_take("b", 1).unwrap();
        drop((small, anon));
        assert_eq!(share.held(), 5);
    }

    #[tokio::test]
    async fn stream_permits_weigh_their_chunks() {
        let config = S3Config {
            max_streams: 4,
            chunks_per_stream: 4,
            chunk_bytes: 1 << 20,
            ..S3Config::default()
        };
        let admission = Admission::new(&config);
        let small = admission.stream("a", Some(64 << 10)).await.unwrap();
        let two = admission.stream("a", Some((1 << 20) + 1)).await.unwrap();
        let unknown = admission.stream("a", None).await.unwrap();
        assert_eq!(admission.streams.held(), 1 + 2 + 4);
        assert_eq!(admission.streams_in_flight(), 3);
        drop((small, two, unknown));
        assert_eq!(admission.streams.held(), 0);
    }
}

/// A request to stop serving: from a signal, the power button or the admin request. The first
/// reason given wins; the server stops accepting connections and drains the rest.
#[derive(Clone, Debug)]
pub struct Shutdown(tokio::sync::watch::Sender<Option<String>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(tokio::sync::watch::channel(None).0)
    }
}

impl Shutdown {
    /// Asks for shutdown, saying why (kept only if nobody asked before).
    pub fn request(&self, reason: &str) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    /// Why shutdown was asked for, if it was.
    pub fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Resolves, with the reason, once shutdown is asked for.
    pub async fn requested(&self) -> String {
        let mut rx = self.0.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            Err(_) => String::new(),
        };
        reason
    }
}
