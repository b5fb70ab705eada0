//! S3 as data, below every layer that acts on it: the route table that names each request's
//! operation ([`route`]), the request headers Hoard refuses and its own header names
//! ([`headers`]), tag sets ([`tags`]), dates and the clock ([`dates`]) and percent-encoding
//! ([`uri`]).
//!
//! Must not import anything of this crate but `error` and `xml`: authentication, the
//! operations, the workers and the server all read it, so it knows none of them.

pub mod dates;
pub mod headers;
pub mod route;
pub mod tags;
pub mod uri;

pub use route::{Endpoint, Target};
