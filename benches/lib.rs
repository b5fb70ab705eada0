//! This crate holds the criterion benchmarks (see `engine.rs`).
