//! The server: the runtime, the listening socket and its limits (header size and read time),
//! the entry of every request, and shutdown (signals, the admin request, the power button)
//! with a bounded drain. [`run`] is the one way to serve S3, for `hoard serve` and the appliance.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use hoard::Store;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::auth::Credentials;
use crate::body::pump::BufferBudget;
use crate::error::S3Result;
use crate::ops;
use crate::response::error_response;
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
}

impl AppState {
    /// State for serving `store`.
    pub fn new(
        store: Store,
        credentials: Credentials,
        config: S3Config,
        shutdown: Shutdown,
    ) -> Self {
        let admission = Admission::new(&config);
        let buffers = BufferBudget::new(config.request_buffer_bytes);
        AppState {
            store,
            credentials,
            config,
            shutdown,
            admission,
            buffers,
        }
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

/// The axum router: every request goes to [`handle`], which dispatches on method, path and
/// query as S3 does (routes cannot express virtual-host addressing or sub-resources).
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// Serves S3 on `listener` until `shutdown` resolves, then lets in-flight requests finish (at
/// most `drain` long).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_read_timeout)
            .max_buf_size(state.config.max_header_bytes.max(8192));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("connections still open after {drain:?}; closing"),
    }
    Ok(())
}

/// Entry point of every request.
async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase();
    let method = req.method().clone();
    let resource = req.uri().path().to_string();
    let admitted = state.admission.request();
    let result = match admitted {
        Ok(_permit) => ops::dispatch(state, req).await,
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e, &resource, &request_id, method == Method::HEAD),
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-request-id", v);
    }
    headers.insert("server", HeaderValue::from_static("Hoard"));
    response
}

/// Serves S3 for `store` on `listen` until a shutdown is asked for (SIGINT, SIGTERM, SIGPWR
/// or `POST /_hoard/shutdown`), then stops accepting connections, lets in-flight requests
/// finish (at most 30 s) and closes the store cleanly. `on_ready` runs once the port is bound.
/// Returns why it stopped.
///
/// Errors: binding the port; closing the store (the data heads or the checkpoint could not be
/// written).
pub fn run(
    store: Store,
    credentials: Credentials,
    s3: S3Config,
    listen: SocketAddr,
    on_ready: impl FnOnce(&Store, SocketAddr),
) -> Result<String, Box<dyn std::error::Error>> {
    let config = store.config().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((config.writer_threads as usize * 16).max(64))
        .thread_name("hoard-s3")
        .build()?;
    let shutdown = Shutdown::default();
    let s3 = s3.with_limits_of(&config);
    tracing::info!(
        max_requests = s3.max_requests,
        max_streams = s3.max_streams,
        request_buffer_bytes = s3.request_buffer_bytes,
        idle_timeout_s = s3.idle_timeout.as_secs(),
        "S3 admission limits"
    );
    let state = Arc::new(AppState::new(
        store.clone(),
        credentials,
        s3,
        shutdown.clone(),
    ));
    let reason = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        on_ready(&store, listener.local_addr()?);
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::spawn(forward_signals(shutdown.clone()));
        let stopped = shutdown.clone();
        serve(
            listener,
            state,
            async move {
                let reason = stopped.requested().await;
                tracing::info!("shutting down: {reason}");
            },
            Duration::from_secs(30),
        )
        .await?;
        Ok::<_, std::io::Error>(shutdown.reason().unwrap_or_default())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    store.close()?;
    tracing::info!("store closed cleanly");
    Ok(reason)
}

/// Turns SIGINT (also ctrl-alt-del for PID 1), SIGTERM and SIGPWR into a shutdown request.
async fn forward_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut pwr)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::from_raw(libc::SIGPWR)),
    ) else {
        tracing::error!(
            "cannot install signal handlers: only the admin request can stop the server"
        );
        return;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = pwr.recv() => "SIGPWR",
    };
    shutdown.request(name);
}
