//! The wall clock: an SNTP client (RFC 5905 client mode; the packets are the `sntpc` crate's)
//! that asks every configured server, keeps the answers that agree (a majority whose
//! correctness intervals intersect, Marzullo's algorithm as RFC 5905 §11.2.1 uses it; the
//! others are false-tickers), and sets the clock to the median of their offsets: a **step**
//! (`clock_settime`) on the first synchronisation or when it is more than [`STEP_THRESHOLD_US`]
//! off, a small **correction** after (also `clock_settime`, and only from [`MIN_CORRECTION_US`]
//! up: the kernel's slew, `adjtimex`, has no safe wrapper in nix or rustix, so corrections of a
//! few milliseconds are set, not slewed, and may move the clock back by that much). It
//! re-polls with backoff ([`MIN_POLL`] doubling to [`MAX_POLL`] while the clock holds; every
//! [`RETRY`] until the first synchronisation) and writes the hardware clock (RTC, UTC) at
//! shutdown so the next boot starts near the truth.
//!
//! Until the first synchronisation (or with `hoard.trust_rtc=1`) [`Clock::trusted`] is false:
//! lifecycle expiry waits for it (`hoard_s3::Host::clock_trusted`); requests are judged by the
//! clock as it is.
//!
//! Must not import the S3 server or the store: it owns the clock and its status only.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// An offset larger than this is a step (ntpd's and chrony's threshold: 128 ms); below it, a
/// correction.
pub const STEP_THRESHOLD_US: i64 = 128_000;
/// Offsets smaller than this are left alone (an NTP answer's own noise).
pub const MIN_CORRECTION_US: i64 = 1_000;
/// Shortest time between polls once synchronised.
pub const MIN_POLL: Duration = Duration::from_secs(16);
/// Longest time between polls (RFC 5905's default maximum poll exponent is 10: 1024 s).
pub const MAX_POLL: Duration = Duration::from_secs(1024);
/// Time between polls until the first synchronisation.
pub const RETRY: Duration = Duration::from_secs(2);
/// How long one server has to answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(800);
/// The least half-width of a correctness interval: a server's clock is taken as right to
/// within half the round trip plus its root dispersion plus this.
pub const MIN_HALF_WIDTH_US: i64 = 10_000;

/// One server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The server asked.
    pub server: SocketAddr,
    /// Server time minus our time, microseconds (RFC 5905's θ).
    pub offset_us: i64,
    /// Round trip minus the server's processing, microseconds (δ).
    pub roundtrip_us: u64,
    /// The server's stratum (1: attached to a reference clock).
    pub stratum: u8,
    /// The server's root dispersion, microseconds.
    pub root_dispersion_us: u64,
}

impl Sample {
    /// The interval the true offset lies in if the server is right: offset ± (δ/2 + root
    /// dispersion + [`MIN_HALF_WIDTH_US`]).
    pub fn interval_us(&self) -> (i64, i64) {
        let half = (self.roundtrip_us / 2 + self.root_dispersion_us) as i64 + MIN_HALF_WIDTH_US;
        (self.offset_us - half, self.offset_us + half)
    }
}

/// What [`select`] made of a poll's samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The median offset of the true-chimers, microseconds.
    pub offset_us: i64,
    /// The true-chimers' servers.
    pub truechimers: Vec<SocketAddr>,
    /// The servers whose interval misses the majority's: false-tickers.
    pub falsetickers: Vec<SocketAddr>,
    /// The lowest stratum among the true-chimers.
    pub stratum: u8,
}

/// Picks the clock's offset from one poll's samples: the largest set of samples whose
/// correctness intervals share a point (Marzullo's algorithm) must hold more than half of
/// them; its members are the true-chimers and the result is the median of their offsets.
/// `None` when there is no sample or no majority agrees (the clock is left alone).
pub fn select(samples: &[Sample]) -> Option<Selection> {
    if samples.is_empty() {
        return None;
    }
    // Endpoints: (position, +1 for a start, -1 for an end); starts sort before ends at the
    // same position so touching intervals intersect.
    let mut edges: Vec<(i64, i32)> = samples
        .iter()
        .flat_map(|s| {
            let (lo, hi) = s.interval_us();
            [(lo, 1), (hi, -1)]
        })
        .collect();
    edges.sort_by_key(|&(at, kind)| (at, -kind));
    let (mut count, mut best, mut best_at) = (0, 0, (0i64, 0i64));
    for (i, &(at, kind)) in edges.iter().enumerate() {
        count += kind;
        if kind == 1 && count > best {
            best = count;
            // The intersection runs from here to the next edge.
            best_at = (at, edges.get(i + 1).map_or(at, |e| e.0));
        }
    }
    if (best as usize) * 2 <= samples.len() {
        return None;
    }
    let (mut truechimers, mut falsetickers) = (Vec::new(), Vec::new());
    let mut offsets = Vec::new();
    let mut stratum = u8::MAX;
    for s in samples {
        let (lo, hi) = s.interval_us();
        if lo <= best_at.1 && hi >= best_at.0 {
            truechimers.push(s.server);
            offsets.push(s.offset_us);
            stratum = stratum.min(s.stratum);
        } else {
            falsetickers.push(s.server);
        }
    }
    offsets.sort_unstable();
    let n = offsets.len();
    let offset_us = if n % 2 == 1 {
        offsets[n / 2]
    } else {
        (offsets[n / 2 - 1] + offsets[n / 2]) / 2
    };
    Some(Selection {
        offset_us,
        truechimers,
        falsetickers,
        stratum,
    })
}

/// Asks one server once (`sntpc`, over a fresh UDP socket).
///
/// Errors: no answer within `timeout`, or an answer `sntpc` refuses (a kiss-of-death, stratum
/// 16, a wrong origin timestamp), as text naming the server.
pub fn ask(server: SocketAddr, timeout: Duration) -> Result<Sample, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("NTP {server}: {e}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("NTP {server}: {e}"))?;
    let socket = sntpc_net_std::UdpSocketWrapper::new(socket);
    let context = sntpc::NtpContext::new(sntpc::StdTimestampGen::default());
    let answer = sntpc::sync::get_time(server, &socket, context)
        .map_err(|e| format!("NTP {server}: {e:?}"))?;
    Ok(Sample {
        server,
        offset_us: answer.offset(),
        roundtrip_us: answer.roundtrip(),
        stratum: answer.stratum(),
        root_dispersion_us: short_format_us(answer.root_dispersion()),
    })
}

/// Parses a comma-separated list of NTP servers: IPv4 or IPv6 literals, with a port or
/// without (123). An empty text is an empty list.
///
/// Errors: a message naming the entry that is not an address.
pub fn parse_servers(list: &str) -> Result<Vec<SocketAddr>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|server| {
            server
                .parse::<SocketAddr>()
                .or_else(|_| {
                    server
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 123))
                })
                .map_err(|_| {
                    format!("NTP server {server:?} is not an IP address with an optional port")
                })
        })
        .collect()
}

/// NTP short format (16.16 seconds) in microseconds.
fn short_format_us(value: u32) -> u64 {
    (u64::from(value) * 1_000_000) >> 16
}

/// One server's last poll, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStatus {
    /// `address:port`.
    pub address: String,
    /// The last answer, if the last poll got one.
    pub last: Option<Sample>,
    /// Why the last poll got none, or why it was a false-ticker.
    pub error: Option<String>,
}

/// What the clock knows, for the status document and the console.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockStatus {
    /// The servers, as configured (command line, settings, DHCP).
    pub servers: Vec<ServerStatus>,
    /// Unix ms of the last synchronisation, if there was one.
    pub last_sync_unix_ms: Option<u64>,
    /// The offset measured at the last synchronisation (before it was corrected), µs.
    pub last_offset_us: Option<i64>,
    /// The true-chimers' lowest stratum at the last synchronisation.
    pub stratum: Option<u8>,
    /// Steps made so far.
    pub steps: u64,
    /// Polls that found the clock within the step threshold (corrected, or left alone under
    /// [`MIN_CORRECTION_US`]).
    pub corrections: u64,
    /// Time until the next poll, s.
    pub poll_interval_s: u64,
    /// The RTC is trusted by setting (`hoard.trust_rtc=1`) before any synchronisation.
    pub rtc_trusted: bool,
}

/// The clock and its synchronisation thread's state.
#[derive(Debug)]
pub struct Clock {
    status: Mutex<ClockStatus>,
    /// The servers the next poll asks: `explicit`, else `from_lease`.
    servers: Mutex<Vec<SocketAddr>>,
    explicit: Mutex<Vec<SocketAddr>>,
    from_lease: Mutex<Vec<SocketAddr>>,
    synchronised: parking_lot::Condvar,
}

impl Clock {
    /// A clock that will ask `servers` (none: a DHCP lease's); `rtc_trusted` lets time-based
    /// decisions run before the first synchronisation (a chassis without a reachable NTP
    /// server whose RTC the operator set).
    pub fn new(servers: Vec<SocketAddr>, rtc_trusted: bool) -> Arc<Clock> {
        let clock = Arc::new(Clock {
            status: Mutex::new(ClockStatus {
                rtc_trusted,
                ..ClockStatus::default()
            }),
            servers: Mutex::new(Vec::new()),
            explicit: Mutex::new(Vec::new()),
            from_lease: Mutex::new(Vec::new()),
            synchronised: parking_lot::Condvar::new(),
        });
        clock.configure(servers, rtc_trusted);
        clock
    }

    /// The servers a DHCP lease named: used while no server is configured explicitly.
    pub fn set_lease_servers(&self, servers: Vec<SocketAddr>) {
        *self.from_lease.lock() = servers.clone();
        if self.explicit.lock().is_empty() {
            self.set_servers(servers);
        }
    }

    /// Replaces the configured servers (settings or the command line; empty: the DHCP
    /// lease's) and whether the RTC is trusted before a synchronisation.
    pub fn configure(&self, explicit: Vec<SocketAddr>, rtc_trusted: bool) {
        *self.explicit.lock() = explicit.clone();
        self.status.lock().rtc_trusted = rtc_trusted;
        if explicit.is_empty() {
            let lease = self.from_lease.lock().clone();
            self.set_servers(lease);
        } else {
            self.set_servers(explicit);
        }
    }

    /// Replaces the servers the next poll asks.
    fn set_servers(&self, servers: Vec<SocketAddr>) {
        let mut status = self.status.lock();
        status.servers = servers
            .iter()
            .map(|s| ServerStatus {
                address: s.to_string(),
                ..ServerStatus::default()
            })
            .collect();
        *self.servers.lock() = servers;
    }

    /// Whether time-based decisions that cannot be undone may run: synchronised once, or the
    /// RTC trusted by setting.
    pub fn trusted(&self) -> bool {
        let status = self.status.lock();
        status.rtc_trusted || status.last_sync_unix_ms.is_some()
    }

    /// A copy of the status.
    pub fn status(&self) -> ClockStatus {
        self.status.lock().clone()
    }

    /// Waits until the first synchronisation, at most `timeout`; true if it happened.
    pub fn wait_synchronised(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut status = self.status.lock();
        while status.last_sync_unix_ms.is_none() {
            if self
                .synchronised
                .wait_until(&mut status, deadline)
                .timed_out()
            {
                break;
            }
        }
        status.last_sync_unix_ms.is_some()
    }

    /// Polls every server once, sets the clock from the selection (see [`select`]) with
    /// `adjust`, and returns the time until the next poll.
    pub fn poll_once(&self, adjust: &mut dyn FnMut(i64, bool) -> Result<(), String>) -> Duration {
        let servers = self.servers.lock().clone();
        let answers: Vec<(SocketAddr, Result<Sample, String>)> = servers
            .iter()
            .map(|&s| (s, ask(s, ANSWER_TIMEOUT)))
            .collect();
        let samples: Vec<Sample> = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok().copied())
            .collect();
        let selection = select(&samples);
        let mut status = self.status.lock();
        status.servers = answers
            .iter()
            .map(|(server, answer)| ServerStatus {
                address: server.to_string(),
                last: answer.as_ref().ok().copied(),
                error: match answer {
                    Err(e) => Some(e.clone()),
                    Ok(_)
                        if selection
                            .as_ref()
                            .is_some_and(|s| s.falsetickers.contains(server)) =>
                    {
                        Some("false-ticker: disagrees with the majority".into())
                    }
                    Ok(_) => None,
                },
            })
            .collect();
        let first = status.last_sync_unix_ms.is_none();
        let Some(selection) = selection else {
            if !samples.is_empty() {
                tracing::warn!(
                    answers = samples.len(),
                    "NTP servers disagree with no majority; the clock is left alone"
                );
            }
            status.poll_interval_s = RETRY.as_secs();
            return if first { RETRY } else { MIN_POLL };
        };
        let step = first || selection.offset_us.abs() > STEP_THRESHOLD_US;
        match adjust(selection.offset_us, step) {
            Ok(()) => {
                if step {
                    status.steps += 1;
                } else {
                    status.corrections += 1;
                }
                status.last_sync_unix_ms = Some(unix_ms());
                status.last_offset_us = Some(selection.offset_us);
                status.stratum = Some(selection.stratum);
                let next = if first || step {
                    MIN_POLL
                } else {
                    // The clock held: wait longer; a large correction shortens it again.
                    let held = selection.offset_us.abs() < STEP_THRESHOLD_US / 8;
                    let last = Duration::from_secs(status.poll_interval_s.max(1));
                    if held {
                        (last * 2).clamp(MIN_POLL, MAX_POLL)
                    } else {
                        MIN_POLL
                    }
                };
                status.poll_interval_s = next.as_secs();
                drop(status);
                if first {
                    self.synchronised.notify_all();
                }
                next
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot set the clock");
                status.poll_interval_s = RETRY.as_secs();
                RETRY
            }
        }
    }

    /// Starts the synchronisation thread, which sets the system clock.
    pub fn start(self: &Arc<Self>) {
        let clock = self.clone();
        std::thread::Builder::new()
            .name("clock".into())
            .spawn(move || loop {
                let wait = clock.poll_once(&mut |offset_us, step| {
                    if step {
                        step_clock(offset_us)?;
                        println!(
                            "hoard: clock stepped by {:+.3} s (NTP)",
                            offset_us as f64 / 1e6
                        );
                        Ok(())
                    } else {
                        if offset_us.abs() >= MIN_CORRECTION_US {
                            step_clock(offset_us)?;
                        }
                        Ok(())
                    }
                });
                std::thread::sleep(wait);
            })
            .expect("spawn the clock thread");
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Steps the system clock by `offset_us` (`clock_settime(CLOCK_REALTIME)`).
///
/// Errors: the kernel refused (not root).
pub fn step_clock(offset_us: i64) -> Result<(), String> {
    use nix::sys::time::TimeSpec;
    use nix::time::{clock_gettime, clock_settime, ClockId};
    let now = clock_gettime(ClockId::CLOCK_REALTIME).map_err(|e| e.to_string())?;
    let ns =
        now.tv_sec() as i128 * 1_000_000_000 + now.tv_nsec() as i128 + offset_us as i128 * 1000;
    let target = TimeSpec::new(
        ns.div_euclid(1_000_000_000) as i64,
        ns.rem_euclid(1_000_000_000) as i64,
    );
    clock_settime(ClockId::CLOCK_REALTIME, target).map_err(|e| format!("clock_settime: {e}"))
}

/// `struct rtc_time` of <linux/rtc.h> (the fields of `struct tm`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcTime {
    /// Seconds, 0-59.
    pub tm_sec: i32,
    /// Minutes, 0-59.
    pub tm_min: i32,
    /// Hours, 0-23.
    pub tm_hour: i32,
    /// Day of the month, 1-31.
    pub tm_mday: i32,
    /// Months since January, 0-11.
    pub tm_mon: i32,
    /// Years since 1900.
    pub tm_year: i32,
    /// Unused by the RTC.
    pub tm_wday: i32,
    /// Unused by the RTC.
    pub tm_yday: i32,
    /// Unused by the RTC.
    pub tm_isdst: i32,
}

impl RtcTime {
    /// The UTC calendar time of `unix_s` (proleptic Gregorian; the days-to-civil arithmetic of
    /// H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    pub fn from_unix(unix_s: i64) -> RtcTime {
        let (days, secs) = (unix_s.div_euclid(86_400), unix_s.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        RtcTime {
            tm_sec: (secs % 60) as i32,
            tm_min: (secs / 60 % 60) as i32,
            tm_hour: (secs / 3600) as i32,
            tm_mday: day as i32,
            tm_mon: (month - 1) as i32,
            tm_year: (year - 1900) as i32,
            tm_wday: (days + 4).rem_euclid(7) as i32,
            tm_yday: 0,
            tm_isdst: 0,
        }
    }
}

// RTC_SET_TIME = _IOW('p', 0x0a, struct rtc_time) (<linux/rtc.h>).
nix::ioctl_write_ptr!(rtc_set_time, b'p', 0x0a, RtcTime);

/// Writes the system time to the hardware clock (`/dev/rtc0`, UTC), so the next boot starts
/// near it. Done at shutdown when the clock was synchronised.
///
/// Errors: no RTC, or the ioctl failed.
pub fn write_rtc() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let rtc = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/rtc0")
        .map_err(|e| format!("/dev/rtc0: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let time = RtcTime::from_unix(now.as_secs() as i64);
    // SAFETY: `time` is a valid rtc_time and the fd is open.
    unsafe { rtc_set_time(rtc.as_raw_fd(), &time) }.map_err(|e| format!("RTC_SET_TIME: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(port: u16, offset_us: i64, roundtrip_us: u64) -> Sample {
        Sample {
            server: SocketAddr::from(([192, 0, 2, 1], port)),
            offset_us,
            roundtrip_us,
            stratum: 2,
            root_dispersion_us: 1000,
        }
    }

    #[test]
    fn the_median_of_the_agreeing_majority_is_chosen_and_false_tickers_are_named() {
        // Three servers agree within milliseconds; one is an hour off.
        let samples = [
            sample(1, 10_800_000_000, 2000),
            sample(2, 10_800_004_000, 3000),
            sample(3, 3_600_000_000, 1000),
            sample(4, 10_800_001_000, 2500),
        ];
        let s = select(&samples).unwrap();
        assert_eq!(s.offset_us, 10_800_001_000, "{s:?}");
        assert_eq!(s.falsetickers, vec![samples[2].server]);
        assert_eq!(s.truechimers.len(), 3);
        // Two agreeing of four is no majority; neither is one against one.
        assert_eq!(select(&[samples[0], samples[2]]), None);
        assert_eq!(
            select(&[
                samples[0],
                samples[1],
                samples[2],
                sample(5, -7_000_000, 100)
            ]),
            None
        );
        assert_eq!(select(&[]), None);
        // One server is its own majority.
        assert_eq!(select(&[samples[2]]).unwrap().offset_us, 3_600_000_000);
        // An even count of true-chimers averages the middle two.
        assert_eq!(
            select(&[samples[0], samples[1]]).unwrap().offset_us,
            10_800_002_000
        );
    }

    /// An NTP server on localhost that answers with a clock `offset_s` ahead, as RFC 5905's
    /// server mode does (version 4, mode 4, stratum 2, the client's transmit timestamp as
    /// origin).
    fn fake_server(offset_s: u64) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || loop {
            let mut buf = [0u8; 48];
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            assert_eq!(n, 48);
            assert_eq!(buf[0] & 0x7, 3, "client mode");
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
                + Duration::from_secs(offset_s);
            let secs = (now.as_secs() + 2_208_988_800) as u32;
            let frac = ((now.subsec_nanos() as u64) << 32) / 1_000_000_000;
            let mut reply = [0u8; 48];
            reply[0] = (4 << 3) | 4;
            reply[1] = 2;
            reply[2] = 6;
            reply[3] = 0xEC; // precision 2^-20
            reply[12..16].copy_from_slice(b"GPS\0");
            reply[24..32].copy_from_slice(&buf[40..48]); // origin = client's transmit
            for at in [16, 32, 40] {
                reply[at..at + 4].copy_from_slice(&secs.to_be_bytes());
                reply[at + 4..at + 8].copy_from_slice(&(frac as u32).to_be_bytes());
            }
            socket.send_to(&reply, from).unwrap();
        });
        addr
    }

    #[test]
    fn a_server_three_hours_ahead_is_measured_and_the_clock_is_stepped_then_corrected() {
        let ahead = fake_server(3 * 3600);
        let s = ask(ahead, Duration::from_secs(2)).unwrap();
        assert!(
            (s.offset_us - 10_800_000_000).abs() < 50_000,
            "offset {} µs",
            s.offset_us
        );
        assert_eq!(s.stratum, 2);

        let clock = Clock::new(vec![ahead, fake_server(3 * 3600)], false);
        assert!(!clock.trusted(), "not synchronised yet");
        let mut made = Vec::new();
        let wait = clock.poll_once(&mut |offset, step| {
            made.push((offset, step));
            Ok(())
        });
        assert_eq!(wait, MIN_POLL);
        assert_eq!(made.len(), 1);
        assert!(made[0].1, "the first synchronisation steps");
        assert!((made[0].0 - 10_800_000_000).abs() < 50_000, "{made:?}");
        assert!(clock.trusted());
        assert!(clock.wait_synchronised(Duration::ZERO));
        let status = clock.status();
        assert_eq!(status.steps, 1);
        assert_eq!(status.stratum, Some(2));
        assert!(status
            .servers
            .iter()
            .all(|s| s.last.is_some() && s.error.is_none()));

        // The adjustment is not made here, so the next poll measures 3 h again: a step.
        clock.poll_once(&mut |offset, step| {
            assert!(step && offset > STEP_THRESHOLD_US);
            Ok(())
        });
        // A server that is now right (the clock was corrected): a correction, a longer wait.
        clock.configure(vec![fake_server(0)], false);
        let mut slewed = false;
        let wait = clock.poll_once(&mut |offset, step| {
            assert!(!step && offset.abs() < STEP_THRESHOLD_US, "{offset}");
            slewed = true;
            Ok(())
        });
        assert!(slewed);
        assert!(wait >= MIN_POLL && wait <= MAX_POLL);
        assert_eq!(clock.status().corrections, 1);
    }

    #[test]
    fn no_answer_leaves_the_clock_alone_and_retries_soon() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let clock = Clock::new(vec![silent.local_addr().unwrap()], false);
        let wait = clock.poll_once(&mut |_, _| panic!("nothing to set"));
        assert_eq!(wait, RETRY);
        assert!(!clock.trusted());
        let status = clock.status();
        assert!(status.servers[0].error.is_some(), "{status:?}");
        assert!(!clock.wait_synchronised(Duration::from_millis(10)));
        assert!(Clock::new(Vec::new(), true).trusted(), "trusted by setting");
    }

    #[test]
    fn rtc_time_is_utc_calendar_time() {
        // 2026-12-02T01:02:03Z
        let t = RtcTime::from_unix(1_796_173_323);
        assert_eq!(
            (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec),
            (126, 11, 2, 1, 2, 3)
        );
        assert_eq!(t.tm_wday, 3, "a Wednesday");
        // The leap day of a year divisible by 400, and the epoch.
        let t = RtcTime::from_unix(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday), (100, 1, 29));
        let t = RtcTime::from_unix(0);
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday), (70, 0, 1, 4));
        assert_eq!(
            std::mem::size_of::<RtcTime>(),
            36,
            "struct rtc_time is 9 ints"
        );
    }
}
