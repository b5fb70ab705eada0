//! Fault-injecting in-memory device for crash and error tests.
//!
//! It models what survives a power cut: writes land in a volatile image and are remembered as
//! unsynced until a sync (or a durable write) makes them durable. [`FaultControl`] can fail
//! writes, syncs or reads with EIO, flip bits, and "cut the power" after a number of writes:
//! from then on every I/O fails, and [`FaultControl::durable_image`] returns what the media
//! holds — unsynced writes dropped, and optionally the last one torn (half its blocks written).
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, IoDone, IoRequest, IoTicket, BLOCK_SIZE};

#[derive(Default)]
struct State {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Syncs (durable writes and Sync requests) so far.
    syncs: u64,
    unsynced: Vec<(u64, Vec<u8>)>,
    fail_writes: bool,
    fail_reads: bool,
    /// Added to every read (a slow or hanging drive).
    read_delay: Option<std::time::Duration>,
    writes_until_power_cut: Option<u64>,
    power_cut: bool,
    tear_last_unsynced: bool,
    writes: u64,
}

/// In-memory backend with fault injection; see the module doc.
pub struct FaultBackend {
    state: Arc<Mutex<State>>,
}

/// Handle that steers a [`FaultBackend`] from a test.
#[derive(Clone)]
pub struct FaultControl {
    state: Arc<Mutex<State>>,
}

impl FaultBackend {
    /// A zeroed device of `size_bytes`.
    pub fn new(size_bytes: u64) -> (FaultBackend, FaultControl) {
        Self::from_image(vec![0; size_bytes as usize])
    }

    /// A device whose media holds `image` (for example a previous [`FaultControl::durable_image`]).
    pub fn from_image(image: Vec<u8>) -> (FaultBackend, FaultControl) {
        let state = State {
            volatile: image.clone(),
            durable: image,
            ..State::default()
        };
        let state = Arc::new(Mutex::new(state));
        (
            FaultBackend {
                state: state.clone(),
            },
            FaultControl { state },
        )
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO on {what}"))
}

impl State {
    fn sync(&mut self) {
        for (offset, data) in self.unsynced.drain(..) {
            let o = offset as usize;
            self.durable[o..o + data.len()].copy_from_slice(&data);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8], durable: bool) -> io::Result<()> {
        if self.power_cut || self.fail_writes {
            return Err(eio("write"));
        }
        if let Some(left) = self.writes_until_power_cut.as_mut() {
            if *left == 0 {
                self.power_cut = true;
                // The write that meets the power cut may reach the media partly.
                self.unsynced.push((offset, data.to_vec()));
                return Err(eio("write (power cut)"));
            }
            *left -= 1;
        }
        self.writes += 1;
        let o = offset as usize;
        self.volatile[o..o + data.len()].copy_from_slice(data);
        self.unsynced.push((offset, data.to_vec()));
        if durable {
            self.sync();
        }
        Ok(())
    }
}

impl Backend for FaultBackend {
    fn submit(&self, req: IoRequest) -> IoTicket {
        let mut st = self.state.lock();
        let done = match req {
            IoRequest::Read { offset, mut buf } => {
                let result = if st.power_cut || st.fail_reads {
                    Err(eio("read"))
                } else {
                    let o = offset as usize;
                    let len = buf.len();
                    buf.copy_from_slice(&st.volatile[o..o + len]);
                    Ok(())
                };
                let done = IoDone {
                    completed_at: std::time::Instant::now(),
                    buf: Some(buf),
                    result,
                };
                if let Some(delay) = st.read_delay {
                    // A slow drive: the read completes `delay` later, the submitter free meanwhile.
                    let (tx, rx) = std::sync::mpsc::channel();
                    std::thread::spawn(move || {
                        std::thread::sleep(delay);
                        let done = IoDone {
                            completed_at: std::time::Instant::now(),
                            ..done
                        };
                        let _ = tx.send(done);
                    });
                    return IoTicket::pending(rx);
                }
                done
            }
            IoRequest::Write {
                offset,
                buf,
                durable,
            } => {
                let result = st.write(offset, &buf, durable);
                st.syncs += u64::from(durable);
                IoDone {
                    completed_at: std::time::Instant::now(),
                    buf: Some(buf),
                    result,
                }
            }
            IoRequest::Sync => {
                let result = if st.power_cut || st.fail_writes {
                    Err(eio("fsync"))
                } else {
                    st.sync();
                    Ok(())
                };
                st.syncs += 1;
                IoDone {
                    buf: None,
                    result,
                    completed_at: std::time::Instant::now(),
                }
            }
        };
        IoTicket::ready(done)
    }

    fn kind(&self) -> &'static str {
        "fault"
    }

    fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }
}

impl FaultControl {
    /// Makes every write and sync fail with EIO (or stop failing).
    pub fn fail_writes(&self, fail: bool) {
        self.state.lock().fail_writes = fail;
    }

    /// Makes every read fail with EIO (or stop failing).
    pub fn fail_reads(&self, fail: bool) {
        self.state.lock().fail_reads = fail;
    }

    /// Makes every read take `delay` more before it completes (a drive retrying or hanging);
    /// `None` stops it.
    pub fn slow_reads(&self, delay: Option<std::time::Duration>) {
        self.state.lock().read_delay = delay;
    }

    /// Cuts the power after `writes` more successful writes: the next one and everything after
    /// fail. With `tear`, the write that meets the cut and any unsynced ones reach the media
    /// only partly (their first half of blocks).
    pub fn power_cut_after(&self, writes: u64, tear: bool) {
        let mut st = self.state.lock();
        st.writes_until_power_cut = Some(writes);
        st.tear_last_unsynced = tear;
    }

    /// Whether the power has been cut.
    pub fn is_power_cut(&self) -> bool {
        self.state.lock().power_cut
    }

    /// Number of successful writes so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// Flips one bit of the media (both volatile and durable) at `offset`.
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut st = self.state.lock();
        st.volatile[offset as usize] ^= 1 << (bit % 8);
        st.durable[offset as usize] ^= 1 << (bit % 8);
    }

    /// What the media holds after a power cut now: durable bytes, plus (if tearing) the first
    /// half of the blocks of each unsynced write.
    pub fn durable_image(&self) -> Vec<u8> {
        let st = self.state.lock();
        let mut image = st.durable.clone();
        if st.tear_last_unsynced {
            for (offset, data) in &st.unsynced {
                let blocks = data.len() / BLOCK_SIZE;
                let keep = blocks.div_ceil(2) * BLOCK_SIZE;
                let o = *offset as usize;
                image[o..o + keep].copy_from_slice(&data[..keep]);
            }
        }
        image
    }
}
