//! The Hoard appliance: the engine behind an S3 API ([`s3`]), the `hoard` command line
//! ([`cli`]), and PID 1 of the firmware image ([`firmware`]).

pub mod cli;
pub mod firmware;
pub mod s3;
