//! `hoard-s3`: the S3 API of Hoard, a minimal but real subset of Amazon S3 on top of
//! [`hoard::Store`].
//!
//! Files follow a request's path: [`server`] (listen, admission, shutdown) → [`request`]
//! (target, query, headers, context; what every request shares is in [`state`]) → [`auth`]
//! (SigV4, SigV2, principals and their directory, sealed secrets; then ACLs, bucket policies
//! and the one authorization of every request) → [`body`] (readers:
//! connection pump, aws-chunked, checksums, assembled in one place) → [`ops`] (routing, then
//! bucket, object, multipart and admin operations, which call the engine through [`engine`]) →
//! [`response`], [`xml`] and [`error`]; [`tls`] (rustls) on the connections that ask for it. Beside every request: [`qos`] (per-tenant rate
//! limits), [`usage`] (per-hour accounting), [`metrics`] (Prometheus) and the [`lifecycle`]
//! worker. [`run`] serves S3 for a store; `hoard serve` and the
//! appliance both start it there.

#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod engine;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod ops;
pub mod protocol;
pub mod qos;
pub mod request;
pub mod response;
pub mod server;
pub mod state;
pub mod tls;
pub mod usage;
pub mod xml;

pub use auth::Credentials;
pub use server::{run, Bound, Endpoints};
pub use state::{AppState, S3Config, Shutdown};
