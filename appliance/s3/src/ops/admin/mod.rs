//! Hoard's own administrative requests, under `/_hoard/` (outside the bucket namespace: bucket
//! names cannot contain `_`), recognised on path-style requests only (in virtual-host style the
//! path is a key). An admin user of the root account is a **store admin** and may make every
//! one of them; an admin user of another account is an **account admin**, who may manage only
//! its own account's users and keys and read only its own usage ([`Scope`]). They need an
//! admin credential and a signature in the `Authorization` header
//! (SigV4 or SigV2; never a presigned URL, which leaks through logs and browser history), so
//! any client that signs arbitrary requests can call them, e.g.
//! `curl --aws-sigv4 aws:amz:us-east-1:s3 --user KEY:SECRET -X POST http://HOST:9000/_hoard/shutdown`.
//!
//! - `GET /_hoard/status`: the store's state as XML (store UUID, profile, missing data drives
//!   and drives failed while serving, every data slot's drive and state (healthy, missing,
//!   failed, rebuilding) with its read errors and free segments,
//!   each metadata SSD's state: in-sync, resilvering or failed; memory: the budget, the
//!   process's resident and peak resident size, the store's own uses and the body bytes the
//!   S3 layer holds; requests and data streams in flight against their limits; repair: the
//!   lost slots and why, whether a rebuild is pending, the running pass and the last rebuild
//!   and scrub with their counts, rate and ETA, objects found unrecoverable; space: per drive
//!   and for the pool, raw, used, live, free, reclaimable and reserved bytes, and the metadata
//!   SSDs' table area; garbage collection: passes, needles moved, segments freed, uploads
//!   expired; whether a shutdown is under way; on the appliance, the host's sections after
//!   these: `Time` (synchronised or not, offset, servers) and `Network`).
//! - `POST /_hoard/scrub`: start a scrub pass now (202 Accepted; progress in the status).
//!   A scheduled scrub runs at the profile's pace; one asked for runs at the rebuild's.
//! - `/_hoard/accounts...` and `/_hoard/keys...`: the directory of accounts, users and access
//!   keys (see [`directory`]).
//! - `/_hoard/qos...`, `/_hoard/usage`, `/_hoard/metrics`: tenants' limits, usage reports
//!   and Prometheus metrics (see [`tenancy`]).
//! - `GET /_hoard/tls`: the HTTPS certificate's SHA-256 fingerprint; `POST /_hoard/tls/reload`
//!   reads the certificate and key again (as SIGHUP does); `PUT /_hoard/tls` with a PEM bundle
//!   (certificate chain, leaf first, and its private key) checks it, keeps it in place of the
//!   old pair and puts it in force. New connections get the new certificate; open ones keep
//!   theirs. A bundle that does not parse or fit is refused and the old one stays.
//! - `GET /_hoard/settings/time`: the appliance's time settings as JSON (`ntp_servers`,
//!   `trust_rtc`); `PUT /_hoard/settings/time?ntp=ADDR[:PORT],...&trust_rtc=true|false`
//!   changes what it names, keeps it in the store and puts it in force at once (the next NTP
//!   poll asks the new servers); answered with the settings now in force.
//!   `GET`/`PUT /_hoard/settings/network?ip=dhcp|A.B.C.D/N&gateway=&hostname=&bond=`: the
//!   network's (the host name changes at once, the addressing at the next boot, which the
//!   answer's `applies` says). 501 on `hoard serve`, which keeps the operating system's
//!   clock and network.
//! - `PUT /_hoard/bays/<bay>/locate?on=true|false`: the locate LED of an HDD bay (its SES
//!   enclosure slot's `locate`), so a technician finds the drive; 400 for a bay without one,
//!   501 without an enclosure or on `hoard serve`.
//! - `POST /_hoard/shutdown`: stop accepting connections, drain, close the store cleanly; on the
//!   appliance, then power off. Answers 202 Accepted before it starts.
//!
//! Must not import `server` or the S3 operation files (`bucket`, `object`, ...): admin requests
//! reach the engine and the directory directly.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;

pub mod directory;
pub mod tenancy;
use crate::auth::{Auth, SignedIn};
use crate::engine::blocking_s3;
use crate::error::S3Result;
use crate::response::xml_response;
use crate::s3_error;
use crate::state::AppState;
use crate::xml::XmlBuilder;

/// Path prefix of the admin requests.
pub const PREFIX: &str = "/_hoard/";

/// Runs one admin request (already authenticated).
///
/// Errors: MethodNotAllowed for a known path with the wrong method; NotImplemented for an
/// unknown path.
pub async fn dispatch(
    state: &Arc<AppState>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    auth: &Auth,
    body: Body,
) -> S3Result<Response> {
    if auth.anonymous {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "{path} needs an admin credential; sign the request"
        ));
    }
    if !auth.admin {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "{path} needs an admin credential; access key {} is not one",
            auth.access_key
        ));
    }
    if auth.signed_in != SignedIn::Header {
        return Err(s3_error!(
            AccessDenied,
            FORBIDDEN,
            "{path} must be signed in the Authorization header, not by a presigned URL"
        ));
    }
    let action = &path[PREFIX.len()..];
    let segments = action
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        BAD_REQUEST,
                        "{path} does not decode as UTF-8"
                    )
                })
        })
        .collect::<S3Result<Vec<String>>>()?;
    // A store admin (an admin user of the root account) manages the store and every
    // account; an account admin (an admin user of any other account) only its own account's
    // users, keys and usage.
    let scope = match auth.account_id == state.credentials.root_account() {
        true => Scope::Store,
        false => Scope::Account(auth.account_id.clone()),
    };
    if directory::ROOTS.contains(&segments[0].as_str()) {
        let (state, method, query) = (state.clone(), method.clone(), query.to_vec());
        let caller = auth.access_key.clone();
        return blocking_s3(move || {
            directory::dispatch(&state, &method, &segments, &query, &caller, &scope)
        })
        .await;
    }
    if tenancy::ROOTS.contains(&segments[0].as_str()) {
        let (state, method, mut query) = (state.clone(), method.clone(), query.to_vec());
        match (&scope, segments.as_slice()) {
            (Scope::Store, _) => {}
            // An account admin's usage report is its own account's, whatever it asks.
            (Scope::Account(own), [usage]) if usage == "usage" => {
                query.retain(|(k, _)| k != "account");
                query.push(("account".into(), own.clone()));
            }
            (Scope::Account(_), _) => return Err(scope.store_only(path)),
        }
        return blocking_s3(move || tenancy::dispatch(&state, &method, &segments, &query)).await;
    }
    if let Scope::Account(_) = scope {
        return Err(scope.store_only(path));
    }
    match (action, method) {
        ("status", &Method::GET) => status(state),
        ("shutdown", &Method::POST) => {
            tracing::warn!(access_key = %auth.access_key, "shutdown requested over S3");
            state
                .shutdown
                .request(&format!("admin request from {}", auth.access_key));
            Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("content-type", "text/plain")
                .body(Body::from("shutting down\n"))
                .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
        }
        ("scrub", &Method::POST) => {
            tracing::info!(access_key = %auth.access_key, "scrub requested over S3");
            state.store.request_scrub();
            Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("content-type", "text/plain")
                .body(Body::from("scrub requested\n"))
                .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
        }
        ("tls/reload", &Method::POST) => {
            let tls = https_of(state)?;
            let fingerprint = tls.reload().map_err(bad_certificate)?;
            tracing::info!(access_key = %auth.access_key, %fingerprint, "TLS certificate reloaded");
            certificate_answer(&fingerprint)
        }
        ("tls", &Method::PUT) => {
            let tls = https_of(state)?;
            // Read only now: the caller is an admin, and the bundle is bounded.
            let bundle = axum::body::to_bytes(body, MAX_CERTIFICATE_BUNDLE_BYTES)
                .await
                .map_err(|e| {
                    s3_error!(
                        InvalidRequest,
                        BAD_REQUEST,
                        "a certificate bundle is at most {MAX_CERTIFICATE_BUNDLE_BYTES} bytes of PEM: {e}"
                    )
                })?;
            let fingerprint = blocking_s3(move || tls.install(&bundle).map_err(bad_certificate))
                .await?;
            tracing::warn!(access_key = %auth.access_key, %fingerprint, "TLS certificate replaced");
            certificate_answer(&fingerprint)
        }
        ("tls", &Method::GET) => certificate_answer(&https_of(state)?.fingerprint()),
        (bay, &Method::PUT) if bay.starts_with("bays/") && bay.ends_with("/locate") => {
            let number = &bay["bays/".len()..bay.len() - "/locate".len()];
            let bay: u32 = number.parse().map_err(|_| {
                s3_error!(InvalidArgument, BAD_REQUEST, "{path}: {number:?} is not a bay number")
            })?;
            let on = match query.iter().find(|(k, _)| k == "on").map(|(_, v)| v.as_str()) {
                Some("true") => true,
                Some("false") => false,
                other => {
                    return Err(s3_error!(
                        InvalidArgument,
                        BAD_REQUEST,
                        "{path} needs on=true or on=false (got {other:?})"
                    ))
                }
            };
            let Some(host) = state.config.host.clone() else {
                return Err(s3_error!(
                    NotImplemented,
                    NOT_IMPLEMENTED,
                    "{path}: bays and their LEDs are the appliance firmware's; this server (hoard serve) has none"
                ));
            };
            blocking_s3(move || {
                host.locate(bay, on).map_err(|e| match e {
                    Some(message) => s3_error!(InvalidArgument, BAD_REQUEST, "{message}"),
                    None => s3_error!(
                        NotImplemented,
                        NOT_IMPLEMENTED,
                        "this appliance has no locate LEDs (no SES enclosure)"
                    ),
                })
            })
            .await?;
            tracing::info!(access_key = %auth.access_key, bay, on, "locate LED set");
            json_answer(format!("{{\"bay\": {bay}, \"locate\": {on}}}"))
        }
        (settings, &Method::GET) if settings.starts_with("settings/") => {
            let name = &settings["settings/".len()..];
            match state.config.host.as_ref().and_then(|h| h.settings(name)) {
                Some(json) => json_answer(json),
                None => Err(no_settings(path, state)),
            }
        }
        (settings, &Method::PUT) if settings.starts_with("settings/") => {
            let name = settings["settings/".len()..].to_string();
            let Some(host) = state.config.host.clone() else {
                return Err(no_settings(path, state));
            };
            let query = query.to_vec();
            let caller = auth.access_key.clone();
            let changed = blocking_s3(move || {
                host.change_settings(&name, &query).map_err(|e| match e {
                    Some(message) => s3_error!(InvalidArgument, BAD_REQUEST, "{message}"),
                    None => s3_error!(
                        NotImplemented,
                        NOT_IMPLEMENTED,
                        "the appliance has no settings group {name:?} (time, network)"
                    ),
                })
            })
            .await?;
            tracing::warn!(access_key = %caller, settings = %changed, "appliance settings changed");
            json_answer(changed)
        }
        ("status" | "shutdown" | "scrub" | "tls" | "tls/reload", m) => Err(s3_error!(
            MethodNotAllowed,
            METHOD_NOT_ALLOWED,
            "{m} is not allowed on {path}"
        )),
        _ => Err(s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "{path} is not an admin request this server knows (status, shutdown, scrub, tls, settings, bays, accounts, keys, qos, usage, metrics)"
        )),
    }
}

/// A JSON document as a 200 answer.
fn json_answer(json: String) -> S3Result<Response> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(json))
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
}

/// The refusal of `/_hoard/settings/...` where the host has no such group (or there is no
/// host: `hoard serve` keeps the operating system's clock and network).
fn no_settings(path: &str, state: &AppState) -> crate::error::S3Error {
    match state.config.host {
        Some(_) => s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "{path}: the appliance has no such settings group (time, network)"
        ),
        None => s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "{path}: settings are the appliance firmware's; this server (hoard serve) keeps the operating system's clock and network"
        ),
    }
}

/// Whom an admin request may act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The store and every account (an admin user of the root account).
    Store,
    /// One account's users, keys and usage (an admin user of that account).
    Account(String),
}

impl Scope {
    /// Whether the caller may act on `account`.
    pub fn covers(&self, account: &str) -> bool {
        match self {
            Scope::Store => true,
            Scope::Account(own) => own == account,
        }
    }

    /// The refusal of a request outside an account admin's account.
    pub fn store_only(&self, what: &str) -> crate::error::S3Error {
        match self {
            Scope::Store => unreachable!("a store admin may do everything"),
            Scope::Account(own) => s3_error!(
                AccessDenied,
                FORBIDDEN,
                "{what} needs a store admin (an admin user of the root account); this caller is an admin of account {own} only"
            ),
        }
    }
}

/// Largest PEM bundle `PUT /_hoard/tls` takes.
pub const MAX_CERTIFICATE_BUNDLE_BYTES: usize = 64 * 1024;

/// The HTTPS endpoint's certificate.
///
/// Errors: InvalidRequest when the server serves no HTTPS.
fn https_of(state: &AppState) -> S3Result<Arc<crate::tls::Tls>> {
    state.config.tls.clone().ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            BAD_REQUEST,
            "this server serves no HTTPS (start it with --listen-tls)"
        )
    })
}

fn bad_certificate(why: String) -> crate::error::S3Error {
    s3_error!(
        InvalidRequest,
        BAD_REQUEST,
        "the certificate was not put in force ({why}); the one in force stays"
    )
}

/// `{"fingerprint_sha256": "AB:CD:..."}`.
fn certificate_answer(fingerprint: &str) -> S3Result<Response> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({ "fingerprint_sha256": fingerprint }).to_string(),
        ))
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
}

/// The refusal of an admin path: MethodNotAllowed when it is `known` (another method would
/// be answered), else NotImplemented.
pub(super) fn path_refusal(
    method: &Method,
    segments: &[String],
    known: bool,
) -> crate::error::S3Error {
    if known {
        s3_error!(
            MethodNotAllowed,
            METHOD_NOT_ALLOWED,
            "{method} is not allowed on /_hoard/{}",
            segments.join("/")
        )
    } else {
        s3_error!(
            NotImplemented,
            NOT_IMPLEMENTED,
            "/_hoard/{} is not an admin request this server knows",
            segments.join("/")
        )
    }
}

/// The `<Repair>` element of the status document.
fn repair_status(store: &hoard::Store, x: &mut XmlBuilder) -> S3Result<()> {
    let repair = store.repair_status()?;
    x.open("Repair");
    for (slot, why) in &repair.lost_slots {
        x.open("LostDataSlot")
            .elem("Slot", slot.to_string())
            .elem("Reason", why)
            .close("LostDataSlot");
    }
    x.elem("RebuildPending", repair.rebuild_pending.to_string())
        .elem("LostBytesEstimate", repair.lost_bytes_estimate.to_string())
        .elem("ScrubRequested", repair.scrub_requested.to_string())
        .elem("QueuedRecords", repair.queued_records.to_string());
    let pass = |x: &mut XmlBuilder, tag: &str, p: &hoard::store::PassStatus| {
        let c = &p.counters;
        x.open(tag)
            .elem("Kind", p.kind.name())
            .elem("StartedUnixMs", p.started_unix_ms.to_string())
            .elem("FinishedUnixMs", p.finished_unix_ms.to_string())
            .elem("ActiveMs", p.active_ms.to_string())
            .elem("ChunksChecked", c.chunks_checked.to_string())
            .elem("ShardsRepaired", c.shards_repaired.to_string())
            .elem("RecordsRepaired", c.records_repaired.to_string())
            .elem("Unrecoverable", c.unrecoverable.to_string())
            .elem("BytesRead", c.bytes_read.to_string())
            .elem("BytesWritten", c.bytes_written.to_string())
            .elem("RateBytesPerSecond", p.rate_bytes_per_s().to_string());
        if p.finished_unix_ms == 0 {
            x.elem("Cursor", p.cursor_text());
            if p.kind == hoard::store::PassKind::Rebuild {
                let left = repair.lost_bytes_estimate.saturating_sub(c.bytes_written);
                let eta_s = left / p.rate_bytes_per_s().max(1);
                x.elem("EtaSeconds", eta_s.to_string());
            }
        }
        x.close(tag);
    };
    if let Some(p) = &repair.running {
        pass(x, "RunningPass", p);
    }
    if let Some(p) = &repair.last_rebuild {
        pass(x, "LastRebuild", p);
    }
    if let Some(p) = &repair.last_scrub {
        pass(x, "LastScrub", p);
    }
    for name in &repair.unrecoverable_objects {
        x.elem("UnrecoverableObject", name);
    }
    x.close("Repair");
    Ok(())
}

/// The `<Space>` and `<GarbageCollection>` elements of the status document.
fn space_status(store: &hoard::Store, x: &mut XmlBuilder) {
    let space = store.space_status();
    let bytes = |x: &mut XmlBuilder, d: &hoard::store::DriveSpace| {
        x.elem("RawBytes", d.raw_bytes.to_string())
            .elem("UsedBytes", d.used_bytes.to_string())
            .elem("LiveBytes", d.live_bytes.to_string())
            .elem("FreeBytes", d.free_bytes.to_string())
            .elem("ReclaimableBytes", d.reclaimable_bytes.to_string())
            .elem("ReserveBytes", d.reserve_bytes.to_string());
    };
    x.open("Space");
    x.open("Pool").elem("Name", &space.pool);
    bytes(x, &space.total);
    x.close("Pool");
    for d in &space.drives {
        x.open("Drive")
            .elem("Slot", d.slot.to_string())
            .elem("Device", &d.device);
        bytes(x, d);
        x.close("Drive");
    }
    x.open("Metadata")
        .elem("TableBytes", space.metadata_used_bytes.to_string())
        .elem("TableAreaBytes", space.metadata_capacity_bytes.to_string())
        .close("Metadata");
    x.close("Space");
    let gc = store.gc_status();
    x.open("GarbageCollection")
        .elem(
            "Running",
            if gc.running.is_some() {
                "true"
            } else {
                "false"
            },
        )
        .elem("Passes", gc.passes.to_string())
        .elem("NeedlesMoved", gc.needles_moved.to_string())
        .elem("BytesRead", gc.bytes_read.to_string())
        .elem("BytesWritten", gc.bytes_written.to_string())
        .elem("SegmentsFreed", space.segments_freed.to_string())
        .elem(
            "SegmentsWaitingForReaders",
            space.segments_waiting.to_string(),
        )
        .elem("UploadsExpired", gc.uploads_expired.to_string())
        .close("GarbageCollection");
}

fn status(state: &AppState) -> S3Result<Response> {
    let store = &state.store;
    let config = store.config();
    let mut x = XmlBuilder::new("HoardStatus");
    x.elem("Version", env!("CARGO_PKG_VERSION"))
        .elem("StoreId", store.store_uuid())
        .elem("Profile", &config.profile_name);
    let missing = store.missing_data_slots();
    let failed = store.failed_data_slots();
    x.elem(
        "Degraded",
        if missing.is_empty() && failed.is_empty() {
            "false"
        } else {
            "true"
        },
    );
    for slot in missing {
        x.elem("MissingDataSlot", slot.to_string());
    }
    for (slot, device) in failed {
        x.open("FailedDataDrive")
            .elem("Slot", slot.to_string())
            .elem("Device", &device)
            .close("FailedDataDrive");
    }
    for drive in store.data_slots() {
        x.open("DataDrive")
            .elem("Slot", drive.slot.to_string())
            .elem("Device", drive.device.as_deref().unwrap_or(""))
            .elem(
                "State",
                match drive.state {
                    hoard::store::DriveState::Healthy => "healthy",
                    hoard::store::DriveState::Missing => "missing",
                    hoard::store::DriveState::Failed => "failed",
                    hoard::store::DriveState::Rebuilding => "rebuilding",
                },
            )
            .elem("ReadErrors", drive.read_errors.to_string())
            .elem("FreeSegments", drive.free_segments.to_string())
            .close("DataDrive");
    }
    for member in store.metadata_mirror() {
        let state = match &member.state {
            hoard::meta::MemberState::InSync => "in-sync".to_string(),
            hoard::meta::MemberState::Resilvering => "resilvering".to_string(),
            hoard::meta::MemberState::Failed(why) => format!("failed: {why}"),
        };
        x.open("MetadataSsd")
            .elem("Slot", member.slot.to_string())
            .elem("Device", &member.device)
            .elem("State", state)
            .close("MetadataSsd");
    }
    let memory = store.memory();
    let (resident, peak) = crate::metrics::process_resident_bytes();
    x.open("Memory")
        .elem("BudgetBytes", memory.budget_bytes.to_string())
        .elem("ResidentBytes", resident.to_string())
        .elem("PeakResidentBytes", peak.to_string())
        .elem("IndexBytes", memory.index_bytes.to_string())
        .elem("BlockCacheBytes", memory.block_cache_bytes.to_string())
        .elem("ChunkBufferBytes", memory.chunk_buffer_bytes.to_string())
        .elem("RequestBufferBytes", state.buffers.held_bytes().to_string())
        .elem(
            "RequestBufferBudgetBytes",
            state.buffers.capacity_bytes().to_string(),
        )
        .close("Memory");
    repair_status(store, &mut x)?;
    space_status(store, &mut x);
    let l = state.lifecycle.status();
    x.open("Lifecycle")
        .elem("Passes", l.passes.to_string())
        .elem("ObjectsExpired", l.objects_expired.to_string())
        .elem("VersionsExpired", l.versions_expired.to_string())
        .elem("UploadsAborted", l.uploads_aborted.to_string())
        .elem("LastPassUnixMs", l.last_pass_unix_ms.to_string())
        .elem(
            "WaitingForClock",
            match &state.config.host {
                Some(host) if !host.clock_trusted() => "true",
                _ => "false",
            },
        )
        .close("Lifecycle");
    let admission = &state.admission;
    x.open("Requests")
        .elem("InFlight", admission.requests_in_flight().to_string())
        .elem("Max", state.config.max_requests.to_string())
        .elem("StreamsInFlight", admission.streams_in_flight().to_string())
        .elem("MaxStreams", state.config.max_streams.to_string())
        .elem(
            "IdleTimeoutSeconds",
            state.config.idle_timeout.as_secs().to_string(),
        )
        .close("Requests");
    x.elem(
        "ShuttingDown",
        if state.shutdown.reason().is_some() {
            "true"
        } else {
            "false"
        },
    );
    if let Some(host) = &state.config.host {
        for section in host.status() {
            write_section(&mut x, &section);
        }
    }
    xml_response(x.finish("HoardStatus"))
}

/// Writes one of the host's status sections (see `crate::host`).
fn write_section(x: &mut XmlBuilder, section: &crate::host::StatusSection) {
    x.open(section.name);
    for (name, value) in &section.fields {
        x.elem(name, value);
    }
    for child in &section.children {
        write_section(x, child);
    }
    x.close(section.name);
}
