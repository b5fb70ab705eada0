//! The Hoard appliance: the engine behind an S3 API ([`s3`]) and the `hoard` command line
//! ([`cli`]).

pub mod cli;
pub mod s3;
