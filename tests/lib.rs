//! Shared helpers live in `integration/`; this crate exists to hold the integration test target.
