//! Opening a store: its volume first ([`crate::volume`]: device files, superblocks, members,
//! the metadata mirror and the data logs), then the store's own state on top (rebuild
//! boundaries, live space per segment, garbage collection, repair).
//!
//! Must not import `device`: drives are the volume's.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{Inner, Store};
use crate::error::{Error, Result};
use crate::meta::MetaStore;
use crate::profile::{EngineConfig, Profile};
use crate::schema;
use crate::segment::{BufferPool, DataDevice};
use crate::volume::{IoBackend, StoreDevices};

/// How to open a file-backed store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The hardware profile (must have a `[files]` section).
    pub profile: Profile,
    /// Directory holding the device files; created if missing.
    pub data_dir: PathBuf,
    /// Format blank devices (first start). Devices holding anything else are never formatted.
    pub format_blank: bool,
    /// Override the profile's I/O backend.
    pub io_backend: Option<IoBackend>,
}

impl Store {
    /// Opens (and on first start formats) the file-backed store the profile describes.
    ///
    /// Errors: [`Error::Config`] for a profile without `[files]`; device errors naming the file;
    /// [`Error::NotBlank`] / [`Error::ForeignStore`] for a device that is not this store's.
    pub fn open(opts: &StoreOptions) -> Result<Store> {
        let mut config = opts.profile.derive();
        if let Some(backend) = opts.io_backend {
            config.io_backend = backend;
        }
        let (devices, dir_lock) =
            crate::volume::open_files(&opts.profile, &opts.data_dir, &config)?;
        let store = Self::open_devices(devices, config, opts.format_blank)?;
        *store.inner.dir_lock.lock() = Some(dir_lock);
        Ok(store)
    }

    /// Opens a store on already-open devices; formats blank ones if `format_blank`.
    ///
    /// Errors: as [`Store::open`]; also [`Error::Incompatible`] when the metadata device is blank
    /// but data devices belong to a store (the metadata was lost: formatting would orphan data).
    pub fn open_devices(
        devices: StoreDevices,
        config: EngineConfig,
        format_blank: bool,
    ) -> Result<Store> {
        let members = crate::volume::assemble(devices, &config, format_blank)?;
        let crate::volume::Members {
            store_uuid,
            meta,
            data,
            secrets_key,
            segment_size_bytes,
        } = members;
        let data: Vec<RwLock<Option<Arc<DataDevice>>>> =
            data.into_iter().map(RwLock::new).collect();
        let meta_failures = meta.mirror_failures();
        let repair = crate::repair::RepairState::new(rebuild_boundaries(&meta, data.len())?);
        let space = Arc::new(crate::space::SpaceState::load(
            &meta,
            data.len(),
            segment_size_bytes,
        )?);
        let buffers = BufferPool::new(
            crate::segment::needle_bytes(config.chunk_size_bytes as usize),
            config.max_chunk_buffers as usize,
        );
        let store = Store {
            inner: Arc::new(Inner {
                config,
                store_uuid,
                secrets_key,
                meta,
                dir_lock: Mutex::new(None),
                data,
                buffers,
                namespace: RwLock::new(()),
                upload_locks: (0..64).map(|_| Mutex::new(())).collect(),
                key_locks: (0..256).map(|_| Mutex::new(Default::default())).collect(),
                space,
                gc: super::gc::GcState::default(),
                epoch_failures: Mutex::new(meta_failures),
                repair,
                adopt: Mutex::new(()),
                attributes: Default::default(),
                version_clock: Default::default(),
            }),
        };
        // Segments nothing references (tails of writes a crash cut off, space freed before a
        // restart) are free at once: no reader exists yet.
        let freed = store.reclaim_segments();
        if freed > 0 {
            tracing::info!(segments = freed, "freed data segments no record references");
        }
        store.start_committer();
        Ok(store)
    }
}

/// Every data slot's rebuild boundary (`r/<slot>`; 0 for none), by slot.
///
/// Errors: metadata errors; a record of the wrong size.
fn rebuild_boundaries(meta: &MetaStore, slots: usize) -> Result<Vec<u64>> {
    let mut out = vec![0u64; slots];
    let mut bad = None;
    meta.scan(schema::REBUILD_BOUNDARY_PREFIX, &mut |k, v| {
        let Some(slot) = k.strip_prefix(schema::REBUILD_BOUNDARY_PREFIX) else {
            return crate::meta::Scan::Stop;
        };
        match (<[u8; 4]>::try_from(slot), <[u8; 8]>::try_from(v)) {
            (Ok(slot), Ok(boundary)) => {
                if let Some(b) = out.get_mut(u32::from_be_bytes(slot) as usize) {
                    *b = u64::from_le_bytes(boundary);
                }
            }
            _ => bad = Some(k.len()),
        }
        crate::meta::Scan::Continue
    })?;
    match bad {
        Some(len) => Err(Error::MetadataUnavailable {
            detail: format!("a rebuild boundary record is malformed (key of {len} bytes)"),
        }),
        None => Ok(out),
    }
}
