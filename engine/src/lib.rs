//! Hoard: an embedded, log-structured object engine.
//!
//! Buckets and objects; metadata in a write-ahead-logged index on an SSD device; object data
//! appended as checksummed needles to segments on a pool of HDD devices; every device I/O through
//! io_uring (with a pread/pwrite fallback). Data flows one way:
//!
//! ```text
//! store (buckets, objects, versions, multipart, listing, copy; the GC, rebuild, scrub passes)
//!   -> volume (which drives are the store's: superblocks, format, adoption, assembly),
//!      space (live bytes per segment, reader epochs, freeing), repair (its state and queue)
//!   -> schema (metadata keys and records)
//!   -> profile (hwprofiles/*.toml -> EngineConfig, the settings of every layer below)
//!   -> segment (append-only data log per HDD)  +  meta (WAL + LSM index, mirrored on the SSDs)
//!   -> placement (which HDD holds each chunk), protection (the stripe arithmetic)
//!   -> device (io_uring / pread, O_DIRECT, aligned buffers, superblock bytes)
//! ```
//!
//! Each layer imports only those below it (`tests/integration/layers.rs` checks it).
//!
//! On-disk formats are specified in `engine/FORMAT.md`.
//!
//! # Example
//!
//! Open a store on files with the dev profile, create a bucket, put an object, read a range
//! of it, list, delete and close. This is `engine/examples/embed.rs`, run as this crate's
//! doctest (and shown in README, "Use the engine in your program"):
//!
#![doc = concat!("```\n", include_str!("../examples/embed.rs"), "```")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod device;
pub mod error;
pub mod meta;
pub mod placement;
pub mod profile;
pub mod protection;
pub mod repair;
pub mod schema;
pub mod segment;
pub mod space;
pub mod store;
pub mod volume;

pub use error::{Error, Result};
pub use profile::{EngineConfig, Profile, Protection};
pub use store::{Store, StoreOptions};
pub use volume::StoreDevices;

#[cfg(test)]
mod tests {
    /// README shows the example as it is.
    #[test]
    fn readme_shows_the_embed_example() {
        let readme = include_str!("../../README.md");
        let example = include_str!("../examples/embed.rs");
        assert!(
            readme.contains(&format!("```rust\n{example}```")),
            "README's \"Use the engine in your program\" must be engine/examples/embed.rs, as is"
        );
    }
}
