//! `hoard-s3`: the S3 API of Hoard, a minimal but real subset of Amazon S3 on top of
//! [`hoard::Store`].
//!
//! A request's path: [`server`] (listen, admission, shutdown) → [`ops::dispatch`] parses it
//! into a [`request::Ctx`], [`auth`] says who sent it and what they may do, [`body`] reads its
//! body, an operation of [`ops`] runs it on the engine (through [`engine`]) and [`response`]
//! writes the answer. Beside every request: [`qos`] (per-tenant rate limits), [`usage`]
//! (per-hour accounting), [`metrics`] (Prometheus); in the background the [`lifecycle`]
//! worker. [`run`] serves S3 for a store; `hoard serve` and the appliance both start it there.
//!
//! The layers, bottom first; each file imports only its own layer and those below it, and no
//! files import each other in a circle (`tests/integration/layers.rs` checks both on the code):
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | foundation | [`error`], [`xml`], [`engine`], [`tls`], [`host`] | S3 errors, the XML reader/writer, engine calls off the async threads, certificates, the machine's facts (clock, network) |
//! | protocol | [`protocol`] | S3 as data: the route table ([`protocol::Endpoint`]), header names, tag sets, dates, percent-encoding |
//! | response | [`response`] | errors and documents as HTTP responses |
//! | auth | [`auth`] | signatures, principals, ACLs, policies, the one authorization |
//! | services | [`qos`], [`usage`], [`metrics`], [`lifecycle`], the body readers ([`body::pump`], [`body::chunked`], [`body::checksum`]) | what runs beside requests |
//! | state | [`state`] | what every request shares |
//! | request | [`request`] | one request's context ([`request::Ctx`]) |
//! | body | [`body`] | a request's body, assembled from the readers |
//! | ops | [`ops`] | routing and every operation |
//! | server | [`server`] | connections, admission, shutdown |

#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod engine;
pub mod error;
pub mod host;
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
pub use host::{Host, StatusSection};
pub use server::{run, Bound, Endpoints};
pub use state::{AppState, S3Config, Shutdown};
