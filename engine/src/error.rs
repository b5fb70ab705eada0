//! The engine's one error type. Every variant names the thing it is about (device, bucket, key,
//! upload) so a message read in a log or an S3 error body says what went wrong and where.
//!
//! Must not import anything of this crate: every layer reports through it.

use std::io;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the engine returns.
///
/// Storage errors (`Io`, `Poisoned`, `Corrupt`, ...) come from devices; namespace errors
/// (`NoSuchBucket`, `NoSuchKey`, ...) from the caller's request. The S3 layer maps each variant to
/// one S3 error code in a single place.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device read, write or sync failed.
    #[error("I/O error on device {device}: {source}")]
    Io {
        /// Path of the device.
        device: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync on this device failed; it accepts no more writes (its state on
    /// media is unknown, so guessing would risk acknowledged data).
    #[error(
        "device {device} is poisoned by an earlier failed write or sync; it accepts no more writes"
    )]
    Poisoned {
        /// Path of the device.
        device: String,
    },
    /// Bytes on a device failed verification (bad checksum, bad magic, wrong identity).
    #[error("corrupt data on device {device} at byte offset {offset}: {detail}")]
    Corrupt {
        /// Path of the device.
        device: String,
        /// Byte offset of the record that failed verification.
        offset: u64,
        /// What did not verify.
        detail: String,
    },
    /// An object's data could not be read from any of its locations.
    #[error("object {bucket}/{key} is unreadable: {detail}")]
    ObjectUnreadable {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Why each location failed.
        detail: String,
    },
    /// The device holds a superblock of another Hoard store.
    #[error(
        "device {device} belongs to another store (store UUID {found}); this store is {expected}"
    )]
    ForeignStore {
        /// Path of the device.
        device: String,
        /// Store UUID found on the device.
        found: String,
        /// Store UUID expected.
        expected: String,
    },
    /// The device is not blank and holds no Hoard superblock: it is never formatted.
    #[error("device {device} is not blank and holds no Hoard superblock; refusing to format it")]
    NotBlank {
        /// Path of the device.
        device: String,
    },
    /// The device holds a Hoard superblock this build cannot use.
    #[error("device {device}: {detail}")]
    Incompatible {
        /// Path of the device.
        device: String,
        /// Why it cannot be used (format version, role, slot).
        detail: String,
    },
    /// An I/O request broke the device layer's rules (alignment, bounds). A bug, reported clearly.
    #[error("invalid I/O on device {device}: {detail}")]
    InvalidIo {
        /// Path of the device.
        device: String,
        /// The rule that was broken.
        detail: String,
    },
    /// No device of the pool has room for more data.
    #[error("no space left: {detail}")]
    NoSpace {
        /// Which device or pool is full.
        detail: String,
    },
    /// A client write was refused because the pool's drives are down to the space kept for
    /// garbage collection and rebuild (or the metadata SSDs are nearly full). S3 answers
    /// `507 InsufficientStorage`; reads and deletes go on.
    #[error("{what} is full: {free_bytes} bytes free beyond the {reserve_bytes} bytes kept for garbage collection and rebuild; delete objects (or add drives) to write again")]
    InsufficientStorage {
        /// `pool <name>` or `the metadata SSDs`.
        what: String,
        /// Bytes client writes could still use.
        free_bytes: u64,
        /// Bytes kept back.
        reserve_bytes: u64,
    },
    /// The metadata store cannot accept writes.
    #[error("metadata unavailable: {detail}")]
    MetadataUnavailable {
        /// Why.
        detail: String,
    },
    /// The store was closed; it accepts no more writes.
    #[error("the store is closed")]
    Closed,
    /// A call made inside [`memory_only`](crate::store::memory_only) needed a device read or
    /// write (a metadata block not in the block cache, an object not inline): nothing was
    /// done that matters; make the call again where the thread may wait for a device.
    #[error("the call needs a device I/O, and this thread may not wait for one (memory_only)")]
    WouldBlock,
    /// A hardware profile or configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The bucket does not exist.
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    /// The bucket already exists (S3: BucketAlreadyOwnedByYou / BucketAlreadyExists).
    #[error("bucket {name} already exists")]
    BucketAlreadyExists {
        /// Bucket name.
        name: String,
        /// Whether the caller owns it.
        owned_by_caller: bool,
    },
    /// The bucket still holds objects or multipart uploads.
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The object key is empty or longer than 1024 bytes.
    #[error("invalid object key ({len} bytes): {reason}")]
    InvalidKey {
        /// Key length in bytes.
        len: usize,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The object does not exist.
    #[error("object {bucket}/{key} does not exist")]
    NoSuchKey {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The version asked for does not exist (never written, or permanently deleted).
    #[error("version {version_id} of object {bucket}/{key} does not exist")]
    NoSuchVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version ID asked for.
        version_id: String,
    },
    /// The version read is a delete marker: the key's latest version when `requested` is
    /// false (the key reads as absent), the very version asked for when true.
    #[error("{} of object {bucket}/{key} is a delete marker", if *requested { format!("version {version_id}") } else { "the latest version".to_string() })]
    DeleteMarker {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The delete marker's version ID.
        version_id: String,
        /// Whether the request named this version.
        requested: bool,
    },
    /// The multipart upload does not exist (never created, completed or aborted).
    #[error("multipart upload {upload_id} does not exist")]
    NoSuchUpload {
        /// Upload ID.
        upload_id: String,
    },
    /// A part named in CompleteMultipartUpload is missing or its ETag does not match.
    #[error("invalid part {part_number}: {reason}")]
    InvalidPart {
        /// Part number.
        part_number: u32,
        /// Why.
        reason: String,
    },
    /// Parts in CompleteMultipartUpload are not in ascending order.
    #[error("parts are not in ascending order of part number")]
    InvalidPartOrder,
    /// A part other than the last is under the minimum part size (5 MiB).
    #[error("part {part_number} is {size_bytes} bytes; every part but the last must be at least {min_bytes} bytes")]
    EntityTooSmall {
        /// Part number.
        part_number: u32,
        /// Its size.
        size_bytes: u64,
        /// The minimum.
        min_bytes: u64,
    },
    /// The object or part exceeds the maximum size.
    #[error("size {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    EntityTooLarge {
        /// Size seen so far.
        size_bytes: u64,
        /// The maximum.
        max_bytes: u64,
    },
    /// A byte range lies outside the object.
    #[error(
        "range starting at byte {start} is not satisfiable for an object of {size_bytes} bytes"
    )]
    InvalidRange {
        /// First byte requested.
        start: u64,
        /// Object size.
        size_bytes: u64,
    },
    /// A conditional write's condition does not hold on the version it would replace.
    #[error("the condition {condition} does not hold for key {key} of bucket {bucket}")]
    PreconditionFailed {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The condition (`If-None-Match: *`, `If-Match: "<etag>"`).
        condition: String,
    },
    /// A request argument is invalid (part number, max-keys, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The body's MD5 does not match the Content-MD5 the client sent.
    #[error("the Content-MD5 you specified did not match what was received")]
    BadDigest,
    /// Reading the caller's body stream failed (client went away, checksum mismatch detected by
    /// the caller's reader, ...). Nothing was committed.
    #[error("reading the request body failed: {0}")]
    Body(#[source] io::Error),
}

impl Error {
    /// Wraps an `io::Error` from the device at `device`.
    pub fn io(device: &str, source: io::Error) -> Self {
        Error::Io {
            device: device.to_string(),
            source,
        }
    }
}
