//! Admin requests on the directory of accounts, users and access keys
//! ([`crate::auth::principals`]), under `/_hoard/` like the other admin requests (an admin
//! credential, signed in the `Authorization` header). A store admin may make all of them; an
//! account admin only those on its own account (it lists only its account and its keys, and
//! may not make or delete accounts). Inputs are query parameters (so the
//! request signature covers them); answers are JSON; errors are S3 error documents with IAM's
//! codes (`NoSuchEntity` 404, `EntityAlreadyExists` and `DeleteConflict` 409, `LimitExceeded`
//! 409, `InvalidArgument` 400). `hoard admin` calls them.
//!
//! | request | does | answers |
//! |---|---|---|
//! | `GET accounts` | lists accounts | 200 `{"accounts":[{id,name,created_unix_ms}]}` |
//! | `POST accounts?name=N` | makes an account | 201 the account |
//! | `DELETE accounts/ID` | deletes it, its users and keys (not while it owns buckets) | 204 |
//! | `GET accounts/ID/users` | lists its users | 200 `{"users":[{account_id,name,admin,created_unix_ms}]}` |
//! | `POST accounts/ID/users?name=N[&admin=true]` | makes a user | 201 the user |
//! | `DELETE accounts/ID/users/N` | deletes the user and its keys | 204 |
//! | `POST accounts/ID/users/N/keys` | makes an access key | 201 `{access_key,secret_key,...}`, the secret shown this once |
//! | `POST accounts/ID/users/N/temporary-credentials?seconds=S` | issues a temporary credential | 201 with `session_token` and `expires_unix_ms` |
//! | `GET keys[?account=ID]` | lists keys, never secrets | 200 `{"keys":[{access_key,account_id,user,status,...}]}` |
//! | `POST keys/AK?status=Active\|Inactive` | enables or disables a key | 200 the key |
//! | `POST keys/AK?rotate` | new key for the same user, the old one made Inactive | 201 the new key |
//! | `DELETE keys/AK` | deletes a key | 204 |
//!
//! Must not import `server`, the S3 operation files or `tenancy`.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::auth::principals::KeyStatus;
use crate::error::S3Result;
use crate::s3_error;
use crate::state::AppState;

/// The first path segments this module answers.
pub const ROOTS: &[&str] = &["accounts", "keys"];

fn json_response<T: Serialize>(status: StatusCode, v: &T) -> S3Result<Response> {
    let body = serde_json::to_vec_pretty(v)
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))?;
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
}

fn no_content() -> S3Result<Response> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(|e| s3_error!(InternalError, INTERNAL_SERVER_ERROR, "{e}"))
}

fn required<'a>(query: &'a [(String, String)], name: &str) -> S3Result<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| s3_error!(InvalidArgument, BAD_REQUEST, "the request needs ?{name}="))
}

fn flag(query: &[(String, String)], name: &str) -> S3Result<bool> {
    match query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => Ok(false),
        Some("" | "true") => Ok(true),
        Some(v) => Err(s3_error!(
            InvalidArgument,
            BAD_REQUEST,
            "?{name}= must be true or false, not {v:?}"
        )),
    }
}

/// Runs a directory request; `segments` is the path after `/_hoard/`, split on `/` and
/// percent-decoded.
///
/// Errors: as the module doc says; MethodNotAllowed for a known path with another method.
pub fn dispatch(
    state: &AppState,
    method: &Method,
    segments: &[String],
    query: &[(String, String)],
    caller: &str,
    scope: &super::Scope,
) -> S3Result<Response> {
    let creds = &state.credentials;
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let path = format!("/_hoard/{}", segments.join("/"));
    // An account admin acts on its own account only: the account a path names, or the one
    // an access key belongs to.
    let account_of_path = match s.as_slice() {
        ["accounts", id, ..] => Some(id.to_string()),
        ["keys", ak] => Some(
            creds
                .keys(None)
                .into_iter()
                .find(|k| k.access_key == *ak)
                .map(|k| k.account_id)
                .ok_or_else(|| s3_error!(NoSuchEntity, NOT_FOUND, "no access key {ak}"))?,
        ),
        _ => None,
    };
    match (scope, method, s.as_slice(), &account_of_path) {
        (super::Scope::Store, ..) => {}
        (_, &Method::POST, ["accounts"], _) | (_, &Method::DELETE, ["accounts", _], _) => {
            return Err(scope.store_only(&path))
        }
        (_, _, _, Some(account)) if !scope.covers(account) => return Err(scope.store_only(&path)),
        _ => {}
    }
    let own = match scope {
        super::Scope::Store => None,
        super::Scope::Account(a) => Some(a.as_str()),
    };
    #[derive(Serialize)]
    struct Accounts<T> {
        accounts: T,
    }
    #[derive(Serialize)]
    struct Users<T> {
        users: T,
    }
    #[derive(Serialize)]
    struct Keys<T> {
        keys: T,
    }
    let created = StatusCode::CREATED;
    match (method, s.as_slice()) {
        (&Method::GET, ["accounts"]) => json_response(
            StatusCode::OK,
            &Accounts {
                accounts: creds
                    .accounts()
                    .into_iter()
                    .filter(|a| own.is_none_or(|o| a.id == o))
                    .collect::<Vec<_>>(),
            },
        ),
        (&Method::POST, ["accounts"]) => {
            let account = creds.create_account(required(query, "name")?)?;
            tracing::info!(caller, account = %account.id, "admin: account created");
            json_response(created, &account)
        }
        (&Method::DELETE, ["accounts", id]) => {
            creds.delete_account(id)?;
            tracing::info!(caller, account = id, "admin: account deleted");
            no_content()
        }
        (&Method::GET, ["accounts", id, "users"]) => json_response(
            StatusCode::OK,
            &Users {
                users: creds.users(id)?,
            },
        ),
        (&Method::POST, ["accounts", id, "users"]) => {
            let user = creds.create_user(id, required(query, "name")?, flag(query, "admin")?)?;
            json_response(created, &user)
        }
        (&Method::DELETE, ["accounts", id, "users", name]) => {
            creds.delete_user(id, name)?;
            no_content()
        }
        (&Method::POST, ["accounts", id, "users", name, "keys"]) => {
            json_response(created, &creds.create_key(id, name)?)
        }
        (&Method::POST, ["accounts", id, "users", name, "temporary-credentials"]) => {
            let seconds = required(query, "seconds")?;
            let seconds: u64 = seconds.parse().map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    BAD_REQUEST,
                    "?seconds= must be a whole number of seconds, not {seconds:?}"
                )
            })?;
            json_response(created, &creds.issue_temporary(id, name, seconds)?)
        }
        (&Method::GET, ["keys"]) => {
            let account = own.or_else(|| {
                query
                    .iter()
                    .find(|(k, _)| k == "account")
                    .map(|(_, v)| v.as_str())
            });
            json_response(
                StatusCode::OK,
                &Keys {
                    keys: creds.keys(account),
                },
            )
        }
        (&Method::POST, ["keys", ak]) => {
            if flag(query, "rotate")? {
                return json_response(created, &creds.rotate_key(ak)?);
            }
            let status = match required(query, "status")? {
                "Active" => KeyStatus::Active,
                "Inactive" => KeyStatus::Inactive,
                other => {
                    return Err(s3_error!(
                        InvalidArgument,
                        BAD_REQUEST,
                        "?status= must be Active or Inactive, not {other:?}"
                    ))
                }
            };
            json_response(StatusCode::OK, &creds.set_key_status(ak, status)?)
        }
        (&Method::DELETE, ["keys", ak]) => {
            creds.delete_key(ak)?;
            no_content()
        }
        (
            _,
            ["accounts"]
            | ["accounts", _]
            | ["accounts", _, "users"]
            | ["accounts", _, "users", _]
            | ["accounts", _, "users", _, "keys" | "temporary-credentials"]
            | ["keys"]
            | ["keys", _],
        ) => Err(super::path_refusal(method, segments, true)),
        _ => Err(super::path_refusal(method, segments, false)),
    }
}
