//! Admin requests on what tenants may use and did use, under `/_hoard/` like the other admin
//! requests (an admin credential, signed in the `Authorization` header):
//!
//! | request | does | answers |
//! |---|---|---|
//! | `GET qos` | lists the limits set | 200 `{"limits":[{"scope":{"kind":"account","name":ID},"requests_per_s":..,"bytes_per_s":..}]}` |
//! | `PUT qos/accounts/ID?requests_per_s=R&bytes_per_s=B` | sets an account's limits (either may be left out: unlimited) | 200 |
//! | `PUT qos/accounts/anonymous?...` | sets the share of every anonymous caller together | 200 |
//! | `PUT qos/buckets/NAME?...` | sets a bucket's limits | 200 |
//! | `DELETE qos/accounts/ID`, `DELETE qos/buckets/NAME` | removes the limits | 204 |
//! | `GET usage[?account=ID][&bucket=B][&from=YYYYMMDDHH][&to=YYYYMMDDHH][&format=csv]` | usage per hour, account and bucket ([`crate::usage`]) | 200 JSON `{"usage":[...]}` or CSV |
//! | `GET metrics` | the Prometheus exposition ([`crate::metrics`]) | 200 `application/openmetrics-text; version=1.0.0` |
//!
//! Must not import `server`, the S3 operation files or `directory`.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::error::S3Result;
use crate::qos::{Limits, Scope};
use crate::s3_error;
use crate::state::AppState;

/// The first path segments this module answers.
pub const ROOTS: &[&str] = &["qos", "usage", "metrics"];

fn respond(status: StatusCode, content_type: &str, body: impl Into<Body>) -> S3Result<Response> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
}

fn json<T: Serialize>(v: &T) -> S3Result<Response> {
    let body = serde_json::to_vec_pretty(v)
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))?;
    respond(StatusCode::OK, "application/json", body)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn rate(query: &[(String, String)], name: &str) -> S3Result<Option<f64>> {
    param(query, name)
        .map(|v| {
            v.parse::<f64>().map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "?{name}= must be a number, not {v:?}"
                )
            })
        })
        .transpose()
}

fn hour(query: &[(String, String)], name: &str) -> S3Result<Option<String>> {
    match param(query, name) {
        Some(h) if h.len() == 10 && h.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(h.into())),
        Some(h) => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "?{name}= must be an hour YYYYMMDDHH, not {h:?}"
        )),
        None => Ok(None),
    }
}

/// Runs a request on limits, usage or metrics (blocking: metadata reads and commits).
///
/// Errors: as the module doc says; MethodNotAllowed; NotImplemented for an unknown path.
pub fn dispatch(
    state: &AppState,
    method: &Method,
    segments: &[String],
    query: &[(String, String)],
) -> S3Result<Response> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let scope_of = |kind: &str, name: &str| -> S3Result<Scope> {
        match kind {
            "accounts" => {
                if name != crate::qos::ANONYMOUS && !state.credentials.account_exists(name) {
                    return Err(s3_error!(NoSuchEntity, NOT_FOUND, "no account {name}"));
                }
                Ok(Scope::Account(name.to_string()))
            }
            _ => {
                state.store.head_bucket(name)?;
                Ok(Scope::Bucket(name.to_string()))
            }
        }
    };
    match (method, s.as_slice()) {
        (&Method::GET, ["qos"]) => {
            #[derive(Serialize)]
            struct Entry {
                scope: Scope,
                #[serde(flatten)]
                limits: Limits,
            }
            #[derive(Serialize)]
            struct All {
                limits: Vec<Entry>,
            }
            let limits = state
                .qos
                .limits()
                .into_iter()
                .map(|(scope, limits)| Entry { scope, limits })
                .collect();
            json(&All { limits })
        }
        (&Method::PUT, ["qos", kind @ ("accounts" | "buckets"), name]) => {
            let limits = Limits {
                requests_per_s: rate(query, "requests_per_s")?,
                bytes_per_s: rate(query, "bytes_per_s")?,
            };
            state.qos.set(scope_of(kind, name)?, limits)?;
            respond(StatusCode::OK, "text/plain", "limits set\n")
        }
        (&Method::DELETE, ["qos", kind @ ("accounts" | "buckets"), name]) => {
            state.qos.set(scope_of(kind, name)?, Limits::default())?;
            respond(StatusCode::NO_CONTENT, "text/plain", "")
        }
        (&Method::GET, ["usage"]) => {
            let rows = state.usage.report(
                &state.store,
                &state.credentials,
                param(query, "account"),
                param(query, "bucket"),
                hour(query, "from")?.as_deref(),
                hour(query, "to")?.as_deref(),
            )?;
            match param(query, "format") {
                Some("csv") => respond(StatusCode::OK, "text/csv", crate::usage::to_csv(&rows)),
                None | Some("json") => {
                    #[derive(Serialize)]
                    struct Report {
                        usage: Vec<crate::usage::Row>,
                    }
                    json(&Report { usage: rows })
                }
                Some(f) => Err(s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "?format= is json or csv, not {f:?}"
                )),
            }
        }
        (&Method::GET, ["metrics"]) => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.render(&state.store, state.server_gauges()),
        ),
        (_, ["qos"] | ["qos", _, _] | ["usage"] | ["metrics"]) => {
            Err(super::path_refusal(method, segments, true))
        }
        _ => Err(super::path_refusal(method, segments, false)),
    }
}
