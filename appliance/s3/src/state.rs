//! What every request shares: the engine, who may call, the endpoint's limits and names
//! ([`S3Config`], from the profile), admission control ([`Admission`]), the body memory budget
//! and the shutdown signal. The server creates it; operations read it.

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
    /// Requests handled at once; beyond, `503 SlowDown`.
    pub max_requests: usize,
    /// Data streams at once (request bodies written to the HDDs, GETs read from them), each
    /// holding up to `chunks_in_flight_per_stream` chunk buffers; beyond, `503 SlowDown`.
    pub max_streams: usize,
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
}

impl S3Config {
    /// Takes the limits the profile derives (`hoard profile show` explains each): requests
    /// and data streams at once, body memory, the idle timeout.
    pub fn with_limits_of(mut self, engine: &hoard::EngineConfig) -> Self {
        self.max_streams = engine.max_data_streams as usize;
        self.max_requests = engine.max_requests as usize;
        self.request_buffer_bytes = engine.request_buffer_bytes;
        self.idle_timeout = Duration::from_millis(engine.request_idle_timeout_ms);
        self
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            domains: vec!["localhost".into()],
            region: "us-east-1".into(),
            idle_timeout: Duration::from_secs(20),
            max_requests: 256,
            max_streams: 16,
            request_buffer_bytes: 32 << 20,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            metrics_listen: None,
            lifecycle_day: Duration::from_secs(86_400),
            lifecycle_interval: Duration::from_secs(3600),
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

/// Admission control: a request or a data stream beyond the limits of [`S3Config`] is answered
/// at once with `503 SlowDown` (clients back off and retry), rather than queued behind
/// clients that may never finish.
#[derive(Debug)]
pub struct Admission {
    requests: Arc<tokio::sync::Semaphore>,
    streams: Arc<tokio::sync::Semaphore>,
    max_requests: usize,
    max_streams: usize,
}

/// Longest a request waits for a data-stream permit before `503 SlowDown`.
pub const STREAM_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Held while a request or stream runs.
pub type Permit = tokio::sync::OwnedSemaphorePermit;

impl Admission {
    fn new(config: &S3Config) -> Self {
        Admission {
            requests: Arc::new(tokio::sync::Semaphore::new(config.max_requests)),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
            max_requests: config.max_requests,
            max_streams: config.max_streams,
        }
    }

    /// A request permit.
    ///
    /// Errors: SlowDown (503) when `max_requests` are running.
    pub fn request(&self) -> S3Result<Permit> {
        self.requests.clone().try_acquire_owned().map_err(|_| {
            s3_error!(
                SlowDown,
                SERVICE_UNAVAILABLE,
                "please reduce your request rate: {} requests are in progress",
                self.requests_in_flight()
            )
        })
    }

    /// A data-stream permit (a body written to or an object read from the HDDs), waiting up to
    /// [`STREAM_QUEUE_WAIT`] for one to free.
    ///
    /// Errors: SlowDown (503) when `max_streams` stay busy that long.
    pub async fn stream(&self) -> S3Result<Permit> {
        let acquire = self.streams.clone().acquire_owned();
        match tokio::time::timeout(STREAM_QUEUE_WAIT, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(s3_error!(
                SlowDown,
                SERVICE_UNAVAILABLE,
                "please reduce your request rate: all {} data streams stayed busy for {STREAM_QUEUE_WAIT:?}",
                self.max_streams
            )),
        }
    }

    /// Requests running now.
    pub fn requests_in_flight(&self) -> usize {
        self.max_requests - self.requests.available_permits()
    }

    /// Data streams running now.
    pub fn streams_in_flight(&self) -> usize {
        self.max_streams - self.streams.available_permits()
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
