//! The Hoard appliance: the `hoard` command line ([`cli`], with [`admin`], the admin client) and PID 1 of the firmware image
//! ([`firmware`]); both serve the engine through the S3 crate (`hoard-s3`, `appliance/s3/`).

pub mod admin;
pub mod cli;
pub mod firmware;
