//! The volume: which devices are members of one store, and in which slot. It is the only
//! layer that reads or writes superblocks and opens devices: it creates the dev profile's
//! device files, probes every superblock, formats blank devices (never foreign or unknown
//! ones), checks that each drive is this store's and sits in its own slot, opens the mirrored
//! metadata and each data device's log at its head, keeps the metadata epoch (which outruns a
//! metadata SSD that missed writes) and the secrets key block; [`assembly`] matches the
//! drives discovery found to the profile's slots, and a blank drive adopted while the store
//! runs is formatted here ([`adopt_blank_data_drive`]).
//!
//! Owns: the superblock protocol of a store (`engine/FORMAT.md`, "Superblock"), the per-slot
//! head and rebuild-boundary records written at format.
//!
//! Must not import `store`, `protection`, `space` or `repair`: the store opens its volume,
//! never the reverse. Below it: `device`, `segment`, `meta`, `schema`, `profile`.

pub mod assembly;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::device::create_device_file;
use crate::device::superblock::{self, Probe, Role, Superblock, SUPERBLOCK_VERSION};
use crate::error::{Error, Result};
use crate::meta::{Batch, MetaLayout, MetaMember, MetaStore};
use crate::profile::{EngineConfig, Profile};
use crate::schema;
use crate::segment::{DataDevice, DataLayout, HeadState};

pub use crate::device::superblock::uuid_string;
/// A drive as the volume takes it: an open block device or device file (see
/// [`crate::device::Device`]).
pub use crate::device::{Device, IoBackend};

/// Already-open devices to build a store from (block devices, or fault-injecting ones in tests).
pub struct StoreDevices {
    /// The metadata devices (SSDs) by slot; `None` for a missing drive. Every present one holds
    /// a full copy of the metadata (a mirror).
    pub meta: Vec<Option<Arc<Device>>>,
    /// Data devices (HDDs) by slot; `None` for a missing drive.
    pub data: Vec<Option<Arc<Device>>>,
}

fn salt(store_uuid: &[u8; 16]) -> u32 {
    crc32c::crc32c(store_uuid)
}

/// What a store is opened on: its metadata (mirrored on the SSDs present) and its data
/// devices, checked to be members of one store.
pub struct Members {
    /// The store's UUID (from the superblocks, or new at the first format).
    pub store_uuid: [u8; 16],
    /// The metadata mirror, open.
    pub meta: MetaStore,
    /// The data devices by slot, at their heads; `None` for a missing drive.
    pub data: Vec<Option<Arc<DataDevice>>>,
    /// The store's secrets key (from the metadata SSDs' key blocks).
    pub secrets_key: [u8; 32],
    /// The pool's segment size, which every data device shares, in bytes.
    pub segment_size_bytes: u64,
}

/// Creates the device files of a file-backed store the profile describes (missing ones:
/// first start or a replaced drive), takes the data directory's lock, then opens them all.
///
/// Errors: [`Error::Config`] for a profile without `[files]`; device errors naming the file
/// (another process holding the directory among them).
pub fn open_files(
    profile: &Profile,
    data_dir: &Path,
    config: &EngineConfig,
) -> Result<(StoreDevices, std::fs::File)> {
    let (ssd_paths, hdd_paths) = profile.device_files(data_dir).ok_or_else(|| {
        Error::Config(format!(
            "profile {} has no [files] section: its devices are discovered, not files",
            profile.name
        ))
    })?;
    // The directory's lock first: nothing of a store another process serves is read.
    let dir_lock = crate::device::lock_data_dir(
        data_dir,
        &[ssd_paths.as_slice(), hdd_paths.as_slice()].concat(),
    )?;
    let open_all = |paths: &[PathBuf], size: u64, preallocate: u64, queue_depth: u32| {
        paths
            .iter()
            .map(|path| {
                if !path.exists() {
                    create_device_file(path, size, preallocate)?;
                }
                Device::open(path, config.io_backend, queue_depth).map(|d| Some(Arc::new(d)))
            })
            .collect::<Result<Vec<_>>>()
    };
    let meta = open_all(
        &ssd_paths,
        profile.ssd.size_bytes,
        config.meta_preallocate_bytes,
        config.meta_queue_depth,
    )?;
    let data = open_all(
        &hdd_paths,
        profile.hdd.size_bytes,
        0,
        config.data_queue_depth,
    )?;
    Ok((StoreDevices { meta, data }, dir_lock))
}

/// Checks that `devices` are the members of one store, each in its own slot, and opens them:
/// formats blank ones if `format_blank` (never a foreign or unknown device).
///
/// Errors: [`Error::NotBlank`] / [`Error::ForeignStore`] for a device that is not this
/// store's; [`Error::Incompatible`] when the metadata device is blank but data devices belong
/// to a store (the metadata was lost: formatting would orphan data), or when layouts differ;
/// [`Error::Config`] when no metadata or no data device is present; device and metadata
/// errors.
pub fn assemble(
    devices: StoreDevices,
    config: &EngineConfig,
    format_blank: bool,
) -> Result<Members> {
    let probe_all = |devices: &[Option<Arc<Device>>]| {
        devices
            .iter()
            .map(|d| d.as_deref().map(superblock::probe).transpose())
            .collect::<Result<Vec<_>>>()
    };
    let meta_probes = probe_all(&devices.meta)?;
    let meta_slot_missing = devices.meta.iter().any(Option::is_none);
    let data_probes = probe_all(&devices.data)?;
    let blank_refusal = |dev: &Device| Error::Incompatible {
        device: dev.name().to_string(),
        detail: "device is blank and formatting was not requested".into(),
    };
    let present: Vec<(u32, &Arc<Device>, &Probe)> = devices
        .meta
        .iter()
        .zip(&meta_probes)
        .enumerate()
        .filter_map(|(slot, (d, p))| Some((slot as u32, d.as_ref()?, p.as_ref()?)))
        .collect();
    let Some(&(_, first_meta, _)) = present.first() else {
        return Err(Error::Config("no metadata device is present".into()));
    };
    let existing: Vec<(u32, &Arc<Device>, &Superblock)> = present
        .iter()
        .filter_map(|&(slot, d, p)| match p {
            Probe::Hoard(sb) => Some((slot, d, sb)),
            Probe::Blank => None,
        })
        .collect();
    let (store_uuid, meta) = match existing.first() {
        None => {
            for (d, p) in devices.data.iter().zip(&data_probes) {
                if let (Some(dev), Some(Probe::Hoard(sb))) = (d, p) {
                    return Err(Error::Incompatible {
                            device: first_meta.name().to_string(),
                            detail: format!(
                                "metadata device is blank but data device {} belongs to store {}; refusing to format over lost metadata",
                                dev.name(),
                                uuid_string(&sb.store_uuid)
                            ),
                        });
                }
            }
            if !format_blank {
                return Err(blank_refusal(first_meta));
            }
            let store_uuid = *uuid::Uuid::new_v4().as_bytes();
            let smallest = present.iter().map(|(_, d, _)| d.size_bytes()).min();
            let layout = MetaLayout::new(
                smallest.unwrap_or_default(),
                config.wal_size_bytes,
                salt(&store_uuid),
            )?;
            for &(slot, dev, _) in &present {
                let sb = meta_superblock(
                    config,
                    dev,
                    store_uuid,
                    slot,
                    (layout.wal.size_bytes, layout.lsm.manifest_slot_bytes),
                    smallest.unwrap_or_default(),
                );
                sb.write(dev)?;
                tracing::info!(device = %dev.name(), slot, store = %uuid_string(&store_uuid), "formatted metadata device");
            }
            let members = present
                .iter()
                .map(|&(slot, d, _)| (slot, d.clone()))
                .collect();
            (
                store_uuid,
                MetaStore::format_mirrored(members, layout, config.lsm.clone())?,
            )
        }
        Some(&(_, _, first_sb)) => {
            let store_uuid = first_sb.store_uuid;
            let layout = MetaLayout::new(
                first_sb.device_size_bytes,
                first_sb.layout_a,
                salt(&store_uuid),
            )?;
            let mut members = Vec::with_capacity(present.len());
            for &(slot, dev, probe) in &present {
                match probe {
                    Probe::Hoard(sb) => {
                        check_member(dev, sb, Some(&store_uuid), Role::Meta, slot)?;
                        if sb.layout_a != first_sb.layout_a || sb.layout_b != first_sb.layout_b {
                            return Err(Error::Incompatible {
                                    device: dev.name().to_string(),
                                    detail: format!(
                                        "its metadata layout (WAL {} B, checkpoint slots {} B) differs from its mirror's ({} B, {} B)",
                                        sb.layout_a, sb.layout_b, first_sb.layout_a, first_sb.layout_b
                                    ),
                                });
                        }
                        members.push(MetaMember {
                            slot,
                            device: dev.clone(),
                            new: false,
                        });
                    }
                    Probe::Blank => {
                        // A replacement SSD for a mirror slot: it gets a copy by resilver.
                        if dev.size_bytes() < first_sb.device_size_bytes {
                            return Err(Error::Incompatible {
                                device: dev.name().to_string(),
                                detail: format!(
                                    "a replacement metadata SSD needs at least {} bytes, it has {}",
                                    first_sb.device_size_bytes,
                                    dev.size_bytes()
                                ),
                            });
                        }
                        let sb = meta_superblock(
                            config,
                            dev,
                            store_uuid,
                            slot,
                            (first_sb.layout_a, first_sb.layout_b),
                            first_sb.device_size_bytes,
                        );
                        sb.write(dev)?;
                        tracing::info!(device = %dev.name(), slot, "adopted a blank SSD into the metadata mirror");
                        members.push(MetaMember {
                            slot,
                            device: dev.clone(),
                            new: true,
                        });
                    }
                }
            }
            if layout.lsm.manifest_slot_bytes != first_sb.layout_b {
                return Err(Error::Incompatible {
                    device: first_meta.name().to_string(),
                    detail: format!(
                        "manifest slot size {} does not match the superblock's {}",
                        layout.lsm.manifest_slot_bytes, first_sb.layout_b
                    ),
                });
            }
            (
                store_uuid,
                MetaStore::open_mirrored(members, layout, config.lsm.clone())?,
            )
        }
    };

    // Before anything is written: refuse metadata SSDs that an absent mirror member outran.
    let epochs = check_meta_epoch(&meta, &devices.data, &store_uuid)?;
    let mut data = Vec::with_capacity(devices.data.len());
    // A blank drive joining a formatted pool takes the pool's segment size, which a
    // profile of a later build may derive differently.
    let pool_segment_bytes = data_probes
        .iter()
        .find_map(|p| match p {
            Some(Probe::Hoard(sb)) => Some(sb.layout_a),
            _ => None,
        })
        .unwrap_or(config.segment_size_bytes);
    for (slot, (dev, probe)) in devices.data.into_iter().zip(data_probes).enumerate() {
        let slot = slot as u32;
        let Some(dev) = dev else {
            tracing::warn!(slot, "data device missing: store is degraded");
            data.push(None);
            continue;
        };
        let layout = match probe.expect("probed with its device") {
            Probe::Hoard(sb) => {
                check_member(&dev, &sb, Some(&store_uuid), Role::Data, slot)?;
                DataLayout {
                    segment_size_bytes: sb.layout_a,
                    segment_count: sb.layout_b as u32,
                }
            }
            Probe::Blank if format_blank => {
                format_data_device(&meta, config, &store_uuid, slot, &dev, pool_segment_bytes)?.0
            }
            Probe::Blank => return Err(blank_refusal(&dev)),
        };
        let head = match meta.get(&schema::segment_claim_key(slot))? {
            None => HeadState::default(),
            Some(v) => HeadState::decode(&v).ok_or_else(|| Error::MetadataUnavailable {
                detail: format!(
                    "the head record of data device {} has {} bytes",
                    dev.name(),
                    v.len()
                ),
            })?,
        };
        if head.open.is_some() {
            // Resume in the open segment, but forget it durably before any write: after a
            // crash from here on, appends restart in a fresh segment.
            let mut batch = Batch::new();
            batch.put(
                schema::segment_claim_key(slot),
                HeadState { open: None, ..head }.encode(),
            );
            meta.commit(batch)?;
        }
        data.push(Some(Arc::new(DataDevice::new(
            dev,
            slot,
            layout,
            head,
            config.space_reserve_segments,
        ))));
    }
    if data.iter().all(Option::is_none) {
        return Err(Error::Config("no data device is present".into()));
    }
    advance_meta_epoch(&meta, &data, &store_uuid, epochs, meta_slot_missing)?;
    let meta_devices: Vec<&Arc<Device>> = present.iter().map(|&(_, d, _)| d).collect();
    let secrets_key = load_secrets_key(&meta_devices, &store_uuid)?;

    // Every data device of a store shares one segment size (set at format from the
    // profile); live space is kept per segment of it.
    let mut segment_size_bytes = config.segment_size_bytes;
    for (i, d) in data.iter().flatten().enumerate() {
        let size = d.layout().segment_size_bytes;
        if i > 0 && size != segment_size_bytes {
            return Err(Error::Config(format!(
                    "data device {} has segments of {size} bytes and the pool's others of {segment_size_bytes}",
                    d.device().name()
                )));
        }
        segment_size_bytes = size;
    }
    if crate::segment::needle_bytes(config.chunk_size_bytes as usize) as u64 > segment_size_bytes {
        return Err(Error::Config(format!(
                "the profile's chunks ({} bytes) do not fit the pool's segments of {segment_size_bytes} bytes; set [engine] chunk_size_bytes to a quarter of a segment or less",
                config.chunk_size_bytes
            )));
    }
    Ok(Members {
        store_uuid,
        meta,
        data,
        secrets_key,
        segment_size_bytes,
    })
}

/// Formats blank `device` into data slot `slot` of a running store (see
/// [`format_data_device`]) and opens it at its head, with `reserve_segments` from the config.
///
/// Errors: [`Error::Incompatible`] for a device that is not blank (never formatted over);
/// device and metadata errors.
pub fn adopt_blank_data_drive(
    meta: &MetaStore,
    config: &EngineConfig,
    store_uuid: &[u8; 16],
    slot: u32,
    device: Arc<Device>,
    segment_size_bytes: u64,
) -> Result<DataDevice> {
    match superblock::probe(&device)? {
        Probe::Blank => {}
        Probe::Hoard(sb) => {
            return Err(Error::Incompatible {
                device: device.name().to_string(),
                detail: format!(
                    "holds a superblock (store {}, slot {}): only a blank drive is adopted",
                    uuid_string(&sb.store_uuid),
                    sb.slot
                ),
            })
        }
    }
    let (layout, head) =
        format_data_device(meta, config, store_uuid, slot, &device, segment_size_bytes)?;
    Ok(DataDevice::new(
        device,
        slot,
        layout,
        head,
        config.space_reserve_segments,
    ))
}

/// Formats blank `dev` as data device `slot` of the store; returns its layout and the head
/// its appends start from. A blank drive in a slot whose old drive held segments is a
/// replacement: before its superblock is written, the slot's rebuild boundary and a head
/// without an open segment are committed in one batch, so everything the old drive held lies
/// below the boundary (and is rebuilt from redundancy) and the new drive's appends start above
/// it (`engine/FORMAT.md`, "Rebuild and scrub").
///
/// Segments are `segment_size_bytes` (the pool's: every data device of a store shares one).
///
/// Errors: metadata and device errors.
pub fn format_data_device(
    meta: &MetaStore,
    config: &EngineConfig,
    store_uuid: &[u8; 16],
    slot: u32,
    dev: &Device,
    segment_size_bytes: u64,
) -> Result<(DataLayout, HeadState)> {
    let layout = DataLayout::new(dev.size_bytes(), segment_size_bytes);
    let old = meta
        .get(&schema::segment_claim_key(slot))?
        .and_then(|v| HeadState::decode(&v))
        .unwrap_or_default();
    let head = HeadState { open: None, ..old };
    if old.next_unclaimed > 0 {
        let boundary =
            superblock::RESERVED_BYTES + old.next_unclaimed as u64 * layout.segment_size_bytes;
        let mut batch = Batch::new();
        batch.put(
            schema::rebuild_boundary_key(slot),
            boundary.to_le_bytes().to_vec(),
        );
        batch.put(schema::segment_claim_key(slot), head.encode());
        meta.commit(batch)?;
        tracing::warn!(device = %dev.name(), slot, boundary, "adopted a blank drive into data slot {slot}: what its predecessor held is rebuilt from redundancy");
    }
    new_superblock(
        config,
        dev,
        *store_uuid,
        Role::Data,
        slot,
        layout.segment_size_bytes,
        layout.segment_count as u64,
    )
    .write(dev)?;
    tracing::info!(device = %dev.name(), slot, segments = layout.segment_count, "formatted data device");
    Ok((layout, head))
}

/// The store's secrets key (see [`Store::secrets_key`]): read from the first metadata SSD whose
/// key block verifies, else made now (256 bits from the OS random source); then written to
/// every present metadata SSD that lacks it (a replacement, or a store formatted before the
/// key existed).
///
/// Errors: [`Error::MetadataUnavailable`] when no metadata SSD holds it or takes it.
fn load_secrets_key(devices: &[&Arc<Device>], store_uuid: &[u8; 16]) -> Result<[u8; 32]> {
    let held: Vec<Option<[u8; 32]>> = devices
        .iter()
        .map(|d| {
            superblock::read_secrets_key(d, store_uuid).unwrap_or_else(|e| {
                tracing::warn!(device = %d.name(), error = %e, "secrets key block unreadable");
                None
            })
        })
        .collect();
    let key = match held.iter().flatten().next() {
        Some(k) => *k,
        None => {
            let mut k = [0u8; 32];
            k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            k
        }
    };
    let mut holders = held.iter().filter(|h| h.as_ref() == Some(&key)).count();
    for (d, h) in devices.iter().zip(&held) {
        if h.as_ref() == Some(&key) {
            continue;
        }
        match superblock::write_secrets_key(d, store_uuid, &key) {
            Ok(()) => holders += 1,
            Err(e) => {
                tracing::warn!(device = %d.name(), error = %e, "could not write the secrets key block")
            }
        }
    }
    if holders == 0 {
        return Err(Error::MetadataUnavailable {
            detail: "no metadata SSD holds or takes the secrets key".into(),
        });
    }
    Ok(key)
}

/// The store setting holding the metadata epoch (u64 little-endian).
pub const META_EPOCH_SETTING: &str = "metadata-epoch";

/// Guards against serving stale metadata from an SSD that was absent while its mirror went on
/// without it (`engine/FORMAT.md`, "Metadata epoch"): the metadata and every data device
/// record an epoch. A data device recording a later epoch than the metadata present means
/// these SSDs miss commits the data drives saw: refused. Returns (metadata epoch, highest data
/// device epoch) for [`advance_meta_epoch`].
///
/// Errors: [`Error::Incompatible`] naming the metadata SSDs when they are stale; metadata and
/// device errors.
fn check_meta_epoch(
    meta: &MetaStore,
    data: &[Option<Arc<Device>>],
    store_uuid: &[u8; 16],
) -> Result<(u64, u64)> {
    let meta_epoch = meta_epoch(meta)?;
    let mut data_epoch = (0, String::new());
    for device in data.iter().flatten() {
        let epoch = superblock::read_meta_epoch(device, store_uuid)?;
        if epoch > data_epoch.0 {
            data_epoch = (epoch, device.name().to_string());
        }
    }
    if data_epoch.0 > meta_epoch {
        let members = meta.mirror_members();
        let names: Vec<&str> = members.iter().map(|m| m.device.as_str()).collect();
        return Err(Error::Incompatible {
            device: names.join(", "),
            detail: format!(
                "these metadata SSDs are stale: they reach metadata epoch {meta_epoch}, but data drive {} was written at epoch {}, while the mirror ran without them; the SSD holding the newer metadata is missing, and serving these would lose acknowledged writes",
                data_epoch.1, data_epoch.0
            ),
        });
    }
    Ok((meta_epoch, data_epoch.0))
}

/// When the mirror opens degraded (an SSD slot empty, or a member stale or new), advances the
/// metadata epoch past `epochs` (from [`check_meta_epoch`]): first in the metadata, then on
/// every present data device, so an SSD left behind can never be served alone later.
///
/// Errors: metadata and device errors.
fn advance_meta_epoch(
    meta: &MetaStore,
    data: &[Option<Arc<DataDevice>>],
    store_uuid: &[u8; 16],
    (meta_epoch, data_epoch): (u64, u64),
    meta_slot_missing: bool,
) -> Result<()> {
    let members = meta.mirror_members();
    let degraded = meta_slot_missing
        || members
            .iter()
            .any(|m| m.state != crate::meta::MemberState::InSync);
    if degraded {
        let next = meta_epoch.max(data_epoch) + 1;
        let devices: Vec<&Device> = data.iter().flatten().map(|d| d.device()).collect();
        set_meta_epoch(meta, &devices, store_uuid, next)?;
        tracing::warn!(
            epoch = next,
            "metadata mirror opened degraded: metadata epoch advanced, so an SSD left behind is never served alone"
        );
    }
    Ok(())
}

/// The metadata epoch the metadata holds (0 before the first advance).
///
/// Errors: metadata errors; a record of the wrong size.
fn meta_epoch(meta: &MetaStore) -> Result<u64> {
    match meta.get(&schema::setting_key(META_EPOCH_SETTING))? {
        None => Ok(0),
        Some(v) => Ok(u64::from_le_bytes(v.as_slice().try_into().map_err(
            |_| Error::MetadataUnavailable {
                detail: format!("the metadata epoch record has {} bytes, not 8", v.len()),
            },
        )?)),
    }
}

/// Records `epoch` first in the metadata, then on every device of `data`.
fn set_meta_epoch(
    meta: &MetaStore,
    data: &[&Device],
    store_uuid: &[u8; 16],
    epoch: u64,
) -> Result<()> {
    let mut batch = Batch::new();
    batch.put(
        schema::setting_key(META_EPOCH_SETTING),
        epoch.to_le_bytes().to_vec(),
    );
    meta.commit(batch)?;
    for device in data {
        superblock::write_meta_epoch(device, store_uuid, epoch)?;
    }
    Ok(())
}

/// Advances the metadata epoch by one while the store runs (a mirror member failed); returns
/// the new epoch. Data devices never hold a later epoch than the metadata of a running store.
///
/// Errors: metadata and device errors.
pub fn advance_meta_epoch_now(
    meta: &MetaStore,
    data: &[Arc<DataDevice>],
    store_uuid: &[u8; 16],
) -> Result<u64> {
    let next = meta_epoch(meta)? + 1;
    let devices: Vec<&Device> = data.iter().map(|d| d.device()).collect();
    set_meta_epoch(meta, &devices, store_uuid, next)?;
    Ok(next)
}

fn new_superblock(
    config: &EngineConfig,
    dev: &Device,
    store_uuid: [u8; 16],
    role: Role,
    slot: u32,
    a: u64,
    b: u64,
) -> Superblock {
    Superblock {
        format_version: SUPERBLOCK_VERSION,
        role,
        store_uuid,
        device_uuid: *uuid::Uuid::new_v4().as_bytes(),
        slot,
        pool: 0,
        device_size_bytes: dev.size_bytes(),
        created_unix_ms: crate::schema::now_unix_ms(),
        layout_a: a,
        layout_b: b,
        profile: config.profile_name.clone(),
    }
}

/// A metadata superblock whose device size field is `basis_bytes`: every mirror member derives
/// the same layout from it (the smallest member's size at format time).
fn meta_superblock(
    config: &EngineConfig,
    dev: &Device,
    store_uuid: [u8; 16],
    slot: u32,
    (wal_bytes, manifest_slot_bytes): (u64, u64),
    basis_bytes: u64,
) -> Superblock {
    let mut sb = new_superblock(
        config,
        dev,
        store_uuid,
        Role::Meta,
        slot,
        wal_bytes,
        manifest_slot_bytes,
    );
    sb.device_size_bytes = basis_bytes;
    sb
}

fn check_member(
    dev: &Device,
    sb: &Superblock,
    store: Option<&[u8; 16]>,
    role: Role,
    slot: u32,
) -> Result<()> {
    if let Some(expected) = store {
        if &sb.store_uuid != expected {
            return Err(Error::ForeignStore {
                device: dev.name().to_string(),
                found: uuid_string(&sb.store_uuid),
                expected: uuid_string(expected),
            });
        }
    }
    let incompatible = |detail: String| {
        Err(Error::Incompatible {
            device: dev.name().to_string(),
            detail,
        })
    };
    if sb.role != role {
        return incompatible(format!(
            "holds a {:?} superblock where a {role:?} device is expected",
            sb.role
        ));
    }
    if sb.slot != slot {
        return incompatible(format!(
            "was formatted for slot {} but sits in slot {slot}",
            sb.slot
        ));
    }
    if sb.device_size_bytes > dev.size_bytes() {
        return incompatible(format!(
            "was formatted with {} bytes but now has {}",
            sb.device_size_bytes,
            dev.size_bytes()
        ));
    }
    Ok(())
}
