//! The server: the runtime, the listening socket and its limits (header size and read time),
//! the entry of every request (admission, then `ops`), and shutdown (signals, the admin
//! request, the power button) with a bounded drain. [`run`] is the one way to serve S3, for
//! `hoard serve` and the appliance.
//!
//! Must not import: no rule, it is the top layer and may import every other; nothing imports
//! it but the crate root.

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
use crate::ops;
use crate::response::error_response;
use crate::state::{AppState, S3Config, Shutdown};
use crate::tls::Tls;

/// Most headers a request may carry (hyper's default is 100).
pub const MAX_HEADERS: usize = 256;

/// The axum router: every request goes to `handle`, which dispatches on method, path and
/// query as S3 does (routes cannot express virtual-host addressing or sub-resources).
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// A socket to serve S3 on: plain HTTP, or HTTPS with [`Tls`].
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// TLS for every connection it accepts; `None`: plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

/// Longest a client may take over its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves S3 on `listeners` until `shutdown` resolves, then lets in-flight requests finish (at
/// most `drain` long).
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // One accept loop per socket, all feeding this one.
    let (tx, mut accepted) = tokio::sync::mpsc::channel(64);
    let mut loops = Vec::new();
    for l in listeners {
        let tx = tx.clone();
        loops.push(tokio::spawn(async move {
            loop {
                match l.tcp.accept().await {
                    Ok((stream, peer)) => {
                        if tx.send((stream, peer, l.tls.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    drop(tx);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, tls): (tokio::net::TcpStream, SocketAddr, Option<Arc<Tls>>) = tokio::select! {
            a = accepted.recv() => match a {
                Some(a) => a,
                None => break,
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request carries its client's address and whether (and by which TLS version)
        // it came over TLS: policy conditions on aws:SourceIp, aws:SecureTransport and
        // s3:TlsVersion.
        let app = app.clone();
        let service_for = move |tls_version: Option<&'static str>| {
            TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(crate::request::PeerAddr(peer));
                    req.extensions_mut()
                        .insert(crate::request::SecureTransport(tls_version));
                    req
                },
            ))
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_read_timeout)
            .max_buf_size(state.config.max_header_bytes.max(8192))
            // S3 requests may carry many headers (2 KB of x-amz-meta-* can be ~100 of
            // them, beside the standard ones); the head's size stays bounded by the buffer.
            .max_headers(MAX_HEADERS);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let done = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service_for(None));
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let version = match stream.get_ref().1.protocol_version() {
                        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
                        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
                        _ => "1.0",
                    };
                    let service = service_for(Some(version));
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    for l in loops {
        l.abort();
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
    let started = std::time::Instant::now();
    // A request refused before its body was read leaves the body's bytes on the connection
    // (or still on their way): the connection is closed after the answer, so they are never
    // taken for the next request's head.
    let has_body = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map_or(req.headers().contains_key("transfer-encoding"), |v| {
            v.trim() != "0"
        });
    let mut note = crate::request::RequestNote::default();
    // The request permit is taken once the caller is known (`ops::dispatch`), from its
    // account's share.
    let result = crate::engine::timed(ops::dispatch(state.clone(), req, &mut note)).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e, &resource, &request_id, method == Method::HEAD),
    };
    // What the server records of it: metrics, usage, bytes sent against QoS limits.
    let bytes_out = match method == Method::HEAD {
        true => 0,
        false => response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0),
    };
    let operation = if note.operation.is_empty() {
        "Unknown"
    } else {
        note.operation
    };
    let bytes_in = if response.status().is_success() {
        note.bytes_in
    } else {
        0
    };
    state.metrics.observe(
        operation,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        bytes_in,
        bytes_out,
    );
    if operation != "Admin" {
        state.usage.count(
            &note.account,
            note.bucket.as_deref(),
            crate::usage::Class::of(operation),
            bytes_in,
            bytes_out,
        );
        if response
            .extensions()
            .get::<crate::qos::BytesCharged>()
            .is_none()
        {
            let (qos_account, qos_bucket) = note.qos_scope();
            state.qos.charge_out(qos_account, qos_bucket, bytes_out);
        }
    }
    let refused_with_body = has_body && !response.status().is_success();
    let headers = response.headers_mut();
    if refused_with_body {
        headers.insert("connection", HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-request-id", v);
    }
    headers.insert("server", HeaderValue::from_static("Hoard"));
    note.stages.lap(crate::metrics::Stage::Record);
    state.metrics.observe_stages(&note.stages);
    response
}

/// Serves S3 for `store` on `endpoints` (with the store's repair worker: rebuild, scrub) until a
/// shutdown is asked for (SIGINT, SIGTERM, SIGPWR or `POST /_hoard/shutdown`), then stops accepting connections, lets in-flight requests
/// finish (at most 30 s) and closes the store cleanly. `on_ready` runs once the port is bound.
/// Returns why it stopped.
///
/// Errors: binding the port; closing the store (the data heads or the checkpoint could not be
/// written).
pub fn run(
    store: Store,
    credentials: Credentials,
    s3: S3Config,
    endpoints: Endpoints,
    on_ready: impl FnOnce(&Store, Bound),
) -> Result<String, Box<dyn std::error::Error>> {
    let config = store.config().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.blocking_threads as usize)
        .thread_name("hoard-s3")
        .build()?;
    let shutdown = Shutdown::default();
    let mut s3 = s3.with_limits_of(&config);
    s3.tls = endpoints.tls.as_ref().map(|(_, tls)| tls.clone());
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
    )?);
    let reason = runtime.block_on(async {
        let mut listeners = Vec::new();
        let mut bound = Bound::default();
        if let Some(addr) = endpoints.plain {
            let tcp = tokio::net::TcpListener::bind(addr).await?;
            bound.plain = Some(tcp.local_addr()?);
            listeners.push(Listener { tcp, tls: None });
        }
        if let Some((addr, tls)) = endpoints.tls {
            let tcp = tokio::net::TcpListener::bind(addr).await?;
            bound.tls = Some(tcp.local_addr()?);
            tokio::spawn(reload_on_sighup(tls.clone()));
            listeners.push(Listener {
                tcp,
                tls: Some(tls),
            });
        }
        // Handlers first: once ready is announced, a SIGTERM must mean a clean shutdown.
        tokio::spawn(forward_signals(signal_streams(), shutdown.clone()));
        // Rebuild, scrub, queued repairs and garbage collection run beside the requests from
        // here on.
        store.start_repair_worker();
        store.start_gc_worker();
        tokio::spawn(keep_usage(state.clone()));
        tokio::spawn(run_lifecycle(state.clone()));
        if let Some(host) = state.config.host.clone() {
            tokio::spawn(async move {
                loop {
                    host.serving();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        if let Some(addr) = state.config.metrics_listen {
            let metrics = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            tokio::spawn(serve_metrics(metrics, state.clone()));
        }
        on_ready(&store, bound);
        use std::io::Write;
        std::io::stdout().flush()?;
        let stopped = shutdown.clone();
        let stopped_host = state.config.host.clone();
        serve(
            listeners,
            state.clone(),
            async move {
                let reason = stopped.requested().await;
                tracing::info!("shutting down: {reason}");
                if let Some(host) = &stopped_host {
                    host.shutting_down();
                }
            },
            Duration::from_secs(30),
        )
        .await?;
        // The last minute of usage counts.
        let s = state.clone();
        if let Err(e) =
            crate::engine::blocking(move || s.usage.flush(&s.store, &s.credentials, false)).await
        {
            tracing::warn!(error = %e, "usage counts could not be kept at shutdown");
        }
        Ok::<_, std::io::Error>(shutdown.reason().unwrap_or_default())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    store.close()?;
    tracing::info!("store closed cleanly");
    Ok(reason)
}

/// Where to serve S3: plain HTTP, HTTPS, or both.
#[derive(Debug, Default)]
pub struct Endpoints {
    /// Plain HTTP.
    pub plain: Option<SocketAddr>,
    /// HTTPS, with its certificate.
    pub tls: Option<(SocketAddr, Arc<Tls>)>,
}

/// The addresses bound (port 0 resolved).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bound {
    /// Plain HTTP.
    pub plain: Option<SocketAddr>,
    /// HTTPS.
    pub tls: Option<SocketAddr>,
}

/// Reloads the certificate on every SIGHUP (a bad one is logged and the one in force stays).
async fn reload_on_sighup(tls: Arc<Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            "cannot install a SIGHUP handler: reload certificates with the admin request"
        );
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded (SIGHUP)"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the one in force stays")
            }
        }
    }
}

/// Keeps usage counts every minute (see [`crate::usage`]).
async fn keep_usage(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = state.clone();
        let kept =
            crate::engine::blocking(move || s.usage.flush(&s.store, &s.credentials, false)).await;
        if let Err(e) = kept {
            tracing::warn!(error = %e, "usage counts could not be kept; retrying in a minute");
        }
    }
}

/// Serves plain `GET /metrics` (no signature: a management address) for Prometheus.
async fn serve_metrics(listener: TcpListener, state: Arc<AppState>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                let text = tokio::task::spawn_blocking(move || {
                    state.metrics.render(&state.store, state.server_gauges())
                })
                .await
                .unwrap_or_default();
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

/// The installed signal handlers, if the OS allowed them.
type SignalStreams = Option<[tokio::signal::unix::Signal; 3]>;

/// Installs the handlers of SIGINT, SIGTERM and SIGPWR (`None` if the OS refuses).
fn signal_streams() -> SignalStreams {
    use tokio::signal::unix::{signal, SignalKind};
    let installed = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::from_raw(libc::SIGPWR)),
    );
    match installed {
        (Ok(int), Ok(term), Ok(pwr)) => Some([int, term, pwr]),
        _ => None,
    }
}

/// Turns SIGINT (also ctrl-alt-del for PID 1), SIGTERM and SIGPWR into a shutdown request.
async fn forward_signals(streams: SignalStreams, shutdown: Shutdown) {
    let Some([mut int, mut term, mut pwr]) = streams else {
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

/// Runs lifecycle passes every `interval` until the server stops. While the host does not
/// trust its clock (the appliance before its first time synchronisation), no pass runs: an
/// expiry judged by a clock hours ahead could not be undone.
async fn run_lifecycle(state: Arc<AppState>) {
    let mut waited = false;
    loop {
        if let Some(host) = &state.config.host {
            if !host.clock_trusted() {
                if !waited {
                    tracing::info!("lifecycle waits until the clock is synchronised");
                    waited = true;
                }
                tokio::time::sleep(state.lifecycle.interval.min(Duration::from_secs(1))).await;
                continue;
            }
        }
        let s = state.clone();
        match crate::engine::blocking(move || s.lifecycle.pass(&s.store)).await {
            Ok((0, 0)) => {}
            Ok((expired, aborted)) => {
                tracing::info!(expired, aborted, "lifecycle pass done")
            }
            Err(e) => tracing::warn!(error = %e, "lifecycle pass failed; retrying at the next"),
        }
        tokio::time::sleep(state.lifecycle.interval).await;
    }
}
