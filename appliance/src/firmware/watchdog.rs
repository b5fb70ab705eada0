//! The hardware watchdog (`/dev/watchdog`; the kernel's Documentation/watchdog/watchdog-api.rst):
//! PID 1 arms it with the profile's timeout (`WDIOC_SETTIMEOUT`) and pets it every second
//! (a write to the device) while the machine is healthy ([`Health::verdict`]):
//! - the store completes a durable metadata write (a probe every second, on a thread of its
//!   own) within half the timeout, and
//! - the S3 server's runtime beats (`hoard_s3::Host::serving`, every second) within half the
//!   timeout.
//!
//! Once either has been silent for half the timeout the machine is **wedged**: PID 1 says why on
//! the console and never pets again, so the watchdog resets it at most a timeout later and it
//! boots afresh (the store recovers from its WAL as after a power cut). A clean shutdown ends the
//! heartbeat on purpose; the watchdog is petted through it for at most [`SHUTDOWN_GRACE`].
//!
//! Must not import the S3 server: it is told of the server through [`Health`].

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a clean shutdown may take before the watchdog stops being petted through it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// Time between pets, and between store probes.
pub const PET_INTERVAL: Duration = Duration::from_secs(1);

// <linux/watchdog.h>: WDIOC_SETTIMEOUT = _IOWR('W', 6, int).
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

/// What the watchdog thread watches, as milliseconds since `start`.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// When the last store probe completed.
    probe_done_ms: AtomicU64,
    /// When the last probe that completed had started (so a hung probe shows as its age).
    probe_started_ms: AtomicU64,
    /// When the server last beat.
    heartbeat_ms: AtomicU64,
    /// When a clean shutdown began (0: none).
    shutdown_ms: AtomicU64,
    server_started: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            start: Instant::now(),
            probe_done_ms: AtomicU64::new(0),
            probe_started_ms: AtomicU64::new(0),
            heartbeat_ms: AtomicU64::new(0),
            shutdown_ms: AtomicU64::new(0),
            server_started: AtomicBool::new(false),
        }
    }
}

/// The watchdog's judgement at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pet it.
    Healthy,
    /// A clean shutdown is under way: pet it, for at most [`SHUTDOWN_GRACE`].
    ShuttingDown,
    /// Stop petting for good: the reason.
    Wedged(String),
}

impl Health {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A store probe is starting.
    pub fn probe_started(&self) -> u64 {
        self.now_ms()
    }

    /// The store probe begun at `started_ms` completed.
    pub fn probe_done(&self, started_ms: u64) {
        self.probe_started_ms.store(started_ms, Ordering::Relaxed);
        self.probe_done_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The server beat.
    pub fn beat(&self) {
        self.server_started.store(true, Ordering::Relaxed);
        self.heartbeat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A clean shutdown began.
    pub fn shutting_down(&self) {
        self.shutdown_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }

    /// The verdict at this moment for a watchdog of `timeout`.
    pub fn verdict(&self, timeout: Duration) -> Verdict {
        self.verdict_at(self.now_ms(), timeout)
    }

    /// The verdict at `now_ms` (since `start`): wedged when the store's last completed probe
    /// or the server's last beat (once it started serving) is older than half the timeout;
    /// during a clean shutdown only its length counts.
    pub fn verdict_at(&self, now_ms: u64, timeout: Duration) -> Verdict {
        let limit_ms = timeout.as_millis() as u64 / 2;
        let shutdown = self.shutdown_ms.load(Ordering::Relaxed);
        if shutdown != 0 {
            let grace_ms = SHUTDOWN_GRACE.as_millis() as u64;
            return if now_ms.saturating_sub(shutdown) <= grace_ms {
                Verdict::ShuttingDown
            } else {
                Verdict::Wedged(format!(
                    "the shutdown has taken more than {} s",
                    SHUTDOWN_GRACE.as_secs()
                ))
            };
        }
        let probe_age = now_ms.saturating_sub(self.probe_done_ms.load(Ordering::Relaxed));
        if probe_age > limit_ms {
            return Verdict::Wedged(format!(
                "no durable metadata write completed for {:.1} s",
                probe_age as f64 / 1000.0
            ));
        }
        if self.server_started.load(Ordering::Relaxed) {
            let beat_age = now_ms.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
            if beat_age > limit_ms {
                return Verdict::Wedged(format!(
                    "the S3 server's runtime has not run for {:.1} s",
                    beat_age as f64 / 1000.0
                ));
            }
        }
        Verdict::Healthy
    }
}

/// Arms the watchdog at `device` with `timeout` and starts the thread that pets it while
/// `health` says so, and the thread that probes the store with `probe` (a durable metadata
/// write) every [`PET_INTERVAL`]. Returns the timeout the driver took.
///
/// Errors: the device cannot be opened or refuses the timeout.
pub fn start(
    device: &std::path::Path,
    timeout: Duration,
    health: Arc<Health>,
    probe: Box<dyn Fn() -> Result<(), String> + Send>,
) -> Result<Duration, String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .map_err(|e| format!("{}: {e}", device.display()))?;
    let mut seconds = timeout.as_secs() as libc::c_int;
    // SAFETY: the fd is open and `seconds` is a valid int the driver reads and writes.
    unsafe { wdioc_settimeout(file.as_raw_fd(), &mut seconds) }.map_err(|e| {
        format!(
            "{}: WDIOC_SETTIMEOUT {}: {e}",
            device.display(),
            timeout.as_secs()
        )
    })?;
    let taken = Duration::from_secs(seconds.max(1) as u64);

    let prober = health.clone();
    std::thread::Builder::new()
        .name("watchdog-probe".into())
        .spawn(move || loop {
            let started = prober.probe_started();
            match probe() {
                Ok(()) => prober.probe_done(started),
                Err(e) => tracing::warn!(error = %e, "watchdog probe failed"),
            }
            std::thread::sleep(PET_INTERVAL);
        })
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut said_shutdown = false;
            loop {
                match health.verdict(taken) {
                    Verdict::Healthy => {}
                    Verdict::ShuttingDown => {
                        if !said_shutdown {
                            said_shutdown = true;
                            println!("hoard: watchdog: shutting down; petted for at most {} s", SHUTDOWN_GRACE.as_secs());
                        }
                    }
                    Verdict::Wedged(why) => {
                        println!(
                            "hoard: watchdog: wedged ({why}); no longer petting it: the machine resets within {} s",
                            taken.as_secs()
                        );
                        // Keep the device open: closing it without the magic 'V' leaves it
                        // armed, but some drivers stop on close.
                        loop {
                            std::thread::sleep(Duration::from_secs(3600));
                            let _ = &file;
                        }
                    }
                }
                // Any write pets it (watchdog-api.rst); a NUL is never the magic close 'V'.
                if let Err(e) = (&file).write_all(b"\0") {
                    tracing::warn!(error = %e, "watchdog keepalive failed");
                }
                std::thread::sleep(PET_INTERVAL);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_store_or_server_is_wedged_after_half_the_timeout_and_a_shutdown_is_bounded() {
        let timeout = Duration::from_secs(10);
        let h = Health::default();
        h.probe_done(0);
        assert_eq!(
            h.verdict_at(4_000, timeout),
            Verdict::Healthy,
            "the server has not started"
        );
        let Verdict::Wedged(why) = h.verdict_at(5_001, timeout) else {
            panic!()
        };
        assert!(why.contains("metadata write"), "{why}");

        h.probe_done_ms.store(10_000, Ordering::Relaxed);
        h.heartbeat_ms.store(9_000, Ordering::Relaxed);
        h.server_started.store(true, Ordering::Relaxed);
        assert_eq!(h.verdict_at(12_000, timeout), Verdict::Healthy);
        let Verdict::Wedged(why) = h.verdict_at(14_500, timeout) else {
            panic!()
        };
        assert!(why.contains("S3 server"), "{why}");

        // A clean shutdown ends the heartbeat and the probes; it is petted through, bounded.
        h.shutdown_ms.store(15_000, Ordering::Relaxed);
        assert_eq!(h.verdict_at(40_000, timeout), Verdict::ShuttingDown);
        let Verdict::Wedged(why) = h.verdict_at(15_000 + 60_001, timeout) else {
            panic!()
        };
        assert!(why.contains("shutdown"), "{why}");
    }

    #[test]
    fn a_device_that_is_not_a_watchdog_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let err = start(
            &path,
            Duration::from_secs(15),
            Arc::new(Health::default()),
            Box::new(|| Ok(())),
        )
        .unwrap_err();
        assert!(
            err.contains("WDIOC_SETTIMEOUT") && err.contains("watchdog"),
            "{err}"
        );
    }
}
