//! Integration tests: the real `hoard serve` driven by aws-sdk-s3 (default checksum settings),
//! crash tests with `kill -9`, and the engine's contracts on fault-injecting devices.
//!
//! One test crate with modules, so the heavy client links once.

mod admin;
mod appliance_assembly;
mod appliance_qemu;
mod crash;
mod engine_contracts;
mod engine_listing;
mod engine_mirror;
mod engine_protection;
mod engine_repair;
mod engine_space;
mod engine_versions;
mod layers;
mod s3_auth;
mod s3_churn;
mod s3_hardening;
mod s3_list;
mod s3_multipart;
mod s3_objects;
mod s3_protection;
mod s3_space;
mod support;
