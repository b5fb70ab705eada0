//! Drive membership: the pool's data slots (bays), the drive in each and its state, read
//! errors and timeouts that fail a drive, and adopting a blank drive into a bay while the store
//! runs.
//!
//! A slot holds a drive or is empty (missing). A present drive is healthy, failed (poisoned:
//! a write or sync failed, or `drive_read_errors_to_fail` reads failed or timed out; it takes
//! no new chunks and reads skip it), or rebuilding (a blank replacement whose predecessor's
//! pieces lie below the slot's rebuild boundary until a rebuild rewrites them). A slot's drive
//! changes only by [`Store::adopt_data_drive`]: a blank drive goes into an empty or failed slot,
//! formatted as at open (`open::format_data_device`), and a rebuild is due.
//!
//! Must not import `device`: probing and formatting a drive is the volume's
//! ([`crate::volume::adopt_blank_data_drive`]).

use std::sync::Arc;

use super::Store;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::schema;
use crate::segment::DataDevice;
use crate::volume::assembly::{BlockDevice, Class, Disposition};
use crate::volume::{uuid_string, Device};

/// The state of a data slot's drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveState {
    /// In service.
    Healthy,
    /// No drive in the slot.
    Missing,
    /// Out of service: takes no new chunks, reads skip it.
    Failed,
    /// A replacement whose predecessor's copies and shards are still being rebuilt.
    Rebuilding,
}

/// A data slot as the status document shows it.
#[derive(Clone, Debug)]
pub struct DataSlotStatus {
    /// The slot (bay) number.
    pub slot: u32,
    /// The drive's device path, if one is present.
    pub device: Option<String>,
    /// Its state.
    pub state: DriveState,
    /// Reads that failed or timed out on it.
    pub read_errors: u32,
    /// Segments free on it.
    pub free_segments: u32,
    /// I/O submitted to it since it was opened (zero for a missing drive).
    pub io: crate::segment::IoStats,
}

impl Store {
    /// Data device slots that were missing when the store opened (a degraded store).
    pub fn missing_data_slots(&self) -> Vec<u32> {
        (0..self.inner.data.len() as u32)
            .filter(|&slot| self.data_device(slot).is_none())
            .collect()
    }

    /// Data slots whose drive failed while serving (a failed write or sync, or
    /// `drive_read_errors_to_fail` failed reads): (slot, device). Such a drive takes no new
    /// chunks; its chunks are read from other copies or reconstructed from parity.
    pub fn failed_data_slots(&self) -> Vec<(u32, String)> {
        (0..self.inner.data.len() as u32)
            .filter_map(|slot| {
                let dev = self.data_device(slot)?;
                let dev = dev.device();
                dev.is_poisoned().then(|| (slot, dev.name().to_string()))
            })
            .collect()
    }

    /// Waits for a read of data slot `slot`. A read that fails, or takes longer than the
    /// profile's `drive_timeout_ms`, counts against the drive: at `drive_read_errors_to_fail`
    /// the drive is failed (it leaves placement at once, and the log names it). A slow read's
    /// bytes are still returned.
    ///
    /// Errors: the read's I/O error.
    pub(crate) fn wait_read(
        &self,
        slot: u32,
        io: crate::segment::PendingRead,
    ) -> Result<crate::segment::AlignedBuf> {
        let (result, took) = io.wait_timed();
        let timeout_ms = self.inner.config.drive_timeout_ms;
        match &result {
            Err(e) => self.note_read_error(slot, &e.to_string()),
            Ok(_) if took.as_millis() as u64 > timeout_ms => self.note_read_error(
                slot,
                &format!(
                    "a read took {} ms, over the {timeout_ms} ms drive timeout",
                    took.as_millis()
                ),
            ),
            Ok(_) => {}
        }
        result
    }

    /// Counts a failed (or timed-out) read on data slot `slot`, saying `why` in the log; at
    /// the profile's threshold the drive is failed.
    fn note_read_error(&self, slot: u32, why: &str) {
        let Some(dev) = self.data_device(slot) else {
            return;
        };
        let device = dev.device();
        let errors = device.note_read_error();
        tracing::warn!(slot, device = %device.name(), errors, "read error on data drive hdd{slot}: {why}");
        if errors == self.inner.config.drive_read_errors_to_fail {
            tracing::error!(
                slot,
                device = %device.name(),
                errors,
                "data drive hdd{slot} failed: {errors} reads failed or timed out; it takes no new chunks, and its chunks are read from other copies or reconstructed from parity (rebuild re-protects them)"
            );
            device.fail(&format!("{errors} reads failed or timed out"));
        }
    }

    /// The data device in `slot`, if it is present.
    pub(crate) fn data_device(&self, slot: u32) -> Option<Arc<DataDevice>> {
        self.inner.data.get(slot as usize)?.read().clone()
    }

    /// Every data device present now, in slot order.
    pub(crate) fn present_data_devices(&self) -> Vec<Arc<DataDevice>> {
        self.inner
            .data
            .iter()
            .filter_map(|d| d.read().clone())
            .collect()
    }

    /// The data device to read `loc` from: present, not failed by read errors (reads go
    /// straight to the other copies or to parity rather than wait on a dying drive), and
    /// holding the location (not below the slot's rebuild boundary: a replacement drive does
    /// not hold what its predecessor did).
    pub(crate) fn readable_location(&self, loc: schema::Location) -> Option<Arc<DataDevice>> {
        self.data_device(loc.slot)
            .filter(|d| d.device().read_errors() < self.inner.config.drive_read_errors_to_fail)
            .filter(|_| self.location_present(loc))
    }

    /// Whether `loc` is on a drive that is present and holds it (see
    /// [`Store::readable_location`]).
    pub(crate) fn location_present(&self, loc: schema::Location) -> bool {
        self.data_device(loc.slot).is_some() && loc.offset >= self.rebuild_boundary(loc.slot)
    }

    /// Every data slot and the state of its drive.
    pub fn data_slots(&self) -> Vec<DataSlotStatus> {
        (0..self.inner.data.len() as u32)
            .map(|slot| match self.data_device(slot) {
                None => DataSlotStatus {
                    slot,
                    device: None,
                    state: DriveState::Missing,
                    read_errors: 0,
                    free_segments: 0,
                    io: Default::default(),
                },
                Some(d) => DataSlotStatus {
                    slot,
                    device: Some(d.device().name().to_string()),
                    state: if d.device().is_poisoned() {
                        DriveState::Failed
                    } else if self.rebuild_boundary(slot) > 0 {
                        DriveState::Rebuilding
                    } else {
                        DriveState::Healthy
                    },
                    read_errors: d.device().read_errors(),
                    free_segments: d.free_segments(),
                    io: d.device().io_stats(),
                },
            })
            .collect()
    }

    /// Adopts blank `device` into data slot `slot`, which must be empty or hold a failed drive,
    /// while the store runs: it is formatted into the slot (with a rebuild boundary if the slot
    /// held data), takes new chunks at once, and the repair worker rebuilds onto it what the
    /// slot's old drive held.
    ///
    /// Errors: [`Error::InvalidArgument`] for a slot out of range or holding a healthy drive;
    /// [`Error::Incompatible`] for a device that is not blank (never formatted over); device and
    /// metadata errors.
    pub fn adopt_data_drive(&self, slot: u32, device: Arc<Device>) -> Result<()> {
        let Some(cell) = self.inner.data.get(slot as usize) else {
            return Err(Error::InvalidArgument(format!(
                "data slot {slot} does not exist: the pool has {}",
                self.inner.data.len()
            )));
        };
        let _one_at_a_time = self.inner.adopt.lock();
        if let Some(current) = cell.read().as_ref() {
            if !current.device().is_poisoned() {
                return Err(Error::InvalidArgument(format!(
                    "data slot {slot} holds a healthy drive ({})",
                    current.device().name()
                )));
            }
        }
        let data_device = crate::volume::adopt_blank_data_drive(
            &self.inner.meta,
            &self.inner.config,
            &self.inner.store_uuid,
            slot,
            device,
            self.inner.space.segment_size_bytes(),
        )?;
        let boundary = match self.inner.meta.get(&schema::rebuild_boundary_key(slot))? {
            Some(v) => u64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                Error::MetadataUnavailable {
                    detail: format!("the rebuild boundary of slot {slot} is malformed"),
                }
            })?),
            None => 0,
        };
        self.set_rebuild_boundary(slot, boundary);
        *cell.write() = Some(Arc::new(data_device));
        tracing::warn!(
            slot,
            boundary,
            "a blank drive joined data slot {slot} while serving: rebuilding onto it"
        );
        self.rebuild_due();
        Ok(())
    }
}

impl Store {
    /// A drive that appeared while the store runs (hot-plugged): if it is a blank HDD of
    /// `profile`'s class and a data slot is empty or holds a failed drive, it is adopted into
    /// the lowest such slot ([`Store::adopt_data_drive`]: formatted, then rebuilt onto).
    /// Returns the slot.
    ///
    /// Errors: [`Error::Incompatible`] saying why the drive is not adopted (not an HDD of the
    /// profile, not blank, no slot needs it); device and metadata errors.
    pub fn adopt_discovered(&self, profile: &Profile, device: BlockDevice) -> crate::Result<u32> {
        let name = device.path.display().to_string();
        let refuse = |detail: String| Error::Incompatible {
            device: name.clone(),
            detail,
        };
        let drive = crate::volume::assembly::classify(profile, self.config(), device);
        match (
            &drive.disposition,
            drive.class,
            &drive.superblock,
            drive.handle,
        ) {
            (Disposition::Undecided, Some(Class::Hdd), None, Some(handle)) => {
                // The slot of the drive's own bay if that one needs a drive, else the first
                // that does.
                let open: Vec<u32> = self
                    .data_slots()
                    .into_iter()
                    .filter(|s| matches!(s.state, DriveState::Missing | DriveState::Failed))
                    .map(|s| s.slot)
                    .collect();
                let slot = drive
                    .device
                    .bay_number
                    .filter(|b| open.contains(b))
                    .or_else(|| open.first().copied())
                    .ok_or_else(|| {
                        refuse("every HDD slot holds a working drive; left unused".into())
                    })?;
                self.adopt_data_drive(slot, handle)?;
                Ok(slot)
            }
            (Disposition::Refused(why) | Disposition::Unused(why), ..) => Err(refuse(why.clone())),
            (_, Some(Class::Ssd), ..) => Err(refuse(
                "an SSD: only HDDs are adopted while serving (a metadata SSD joins at boot)".into(),
            )),
            (_, _, Some(sb), _) => Err(refuse(format!(
                "holds the superblock of store {} ({:?} slot {}): only a blank drive is adopted",
                uuid_string(&sb.store_uuid),
                sb.role,
                sb.slot
            ))),
            _ => Err(refuse(format!("not an HDD of profile {}", profile.name))),
        }
    }
}
