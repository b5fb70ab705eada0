//! The appliance as the S3 layer's [`hoard_s3::Host`]: its clock ([`super::clock`]), its network
//! (a static address or a DHCP lease kept by a thread of its own, [`Network`]) and its
//! watchdog's view of the server (the heartbeat), reported in `GET /_hoard/status` as `Time`,
//! `Network` and `Watchdog`.
//!
//! Keeps the appliance's settings in the store ([`super::settings`]); must not read or write
//! anything else of it: it reports the machine, not the data.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hoard_s3::StatusSection;
use parking_lot::{Condvar, Mutex};

use super::clock::Clock;
use super::dhcp::{self, Event, Lease};
use super::net::{self, Ipv4Config};
use super::settings::{NetworkSettings, TimeSettings};
use super::watchdog::{Health, Verdict};

/// How often a bond's ports are checked by ARP to the gateway once there is one.
pub const BOND_ARP_INTERVAL_MS: u32 = 100;

/// The first NIC's (or the bond's) addressing and its state.
#[derive(Debug)]
pub struct Network {
    interface: String,
    /// The bond's ports, when `interface` is an active-backup bond.
    ports: Vec<String>,
    mac: String,
    dhcp: bool,
    state: Mutex<NetworkState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct NetworkState {
    config: Option<Ipv4Config>,
    lease: Option<Lease>,
    dhcp_state: &'static str,
    error: Option<String>,
}

impl Network {
    /// Configures `interface` (a NIC, or a bond of `ports`): the static address `fixed` at
    /// once, or (`None`) by DHCP on a thread that keeps the lease for as long as the appliance
    /// runs, calling `on_lease` for every lease granted (first, renewed, rebound).
    ///
    /// Errors: a static address could not be set, or the DHCP socket could not be made.
    pub fn start(
        interface: &str,
        ports: Vec<String>,
        fixed: Option<Ipv4Config>,
        hostname: &str,
        on_lease: Box<dyn Fn(&Lease) + Send>,
    ) -> std::io::Result<Arc<Network>> {
        let mac = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let network = Arc::new(Network {
            interface: interface.to_string(),
            ports,
            mac: mac.clone(),
            dhcp: fixed.is_none(),
            state: Mutex::new(NetworkState::default()),
            changed: Condvar::new(),
        });
        if let Some(config) = fixed {
            net::configure(interface, &config)?;
            network.state.lock().config = Some(config);
            network.watch_gateway(config.gateway);
            return Ok(network);
        }
        let mac = dhcp::parse_mac(&mac).ok_or_else(|| {
            std::io::Error::other(format!("{interface}: no MAC address for DHCP ({mac:?})"))
        })?;
        net::bring_up(interface)?;
        let socket = dhcp::socket(interface)?;
        let mut client = dhcp::Client::new(mac, Some(hostname.to_string()), Instant::now());
        network.state.lock().dhcp_state = "selecting";
        let n = network.clone();
        std::thread::Builder::new()
            .name("dhcp".into())
            .spawn(move || loop {
                let until = Instant::now() + Duration::from_secs(60);
                let events = match dhcp::exchange(&mut client, &socket, until) {
                    Ok(events) => events,
                    Err(e) => {
                        n.state.lock().error = Some(format!("DHCP: {e}"));
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                for event in events {
                    n.apply(&event, &on_lease);
                }
                n.state.lock().dhcp_state = match client.state() {
                    dhcp::State::Selecting => "selecting",
                    dhcp::State::Requesting { .. } => "requesting",
                    dhcp::State::Bound(_) => "bound",
                    dhcp::State::Renewing(_) => "renewing",
                    dhcp::State::Rebinding(_) => "rebinding",
                };
            })
            .expect("spawn the DHCP thread");
        Ok(network)
    }

    fn apply(&self, event: &Event, on_lease: &dyn Fn(&Lease)) {
        match event {
            Event::Bound(lease) => {
                let config = Ipv4Config {
                    address: lease.address,
                    prefix_len: lease.prefix_len,
                    gateway: lease.gateway,
                };
                let mut state = self.state.lock();
                if state.config != Some(config) {
                    match net::configure(&self.interface, &config) {
                        Ok(()) => {
                            println!(
                                "hoard: {} {}/{} by DHCP from {} (lease {} s)",
                                self.interface,
                                config.address,
                                config.prefix_len,
                                lease.server,
                                lease.lease.as_secs()
                            );
                            state.config = Some(config);
                            state.error = None;
                        }
                        Err(e) => state.error = Some(e.to_string()),
                    }
                }
                state.lease = Some(lease.clone());
                drop(state);
                self.watch_gateway(lease.gateway);
                self.changed.notify_all();
                on_lease(lease);
            }
            Event::Refused => {
                let mut state = self.state.lock();
                if let Some(old) = state.config.take() {
                    println!(
                        "hoard: {}: DHCP lease of {} lost; discovering again",
                        self.interface, old.address
                    );
                    if let Err(e) = net::clear_address(&self.interface) {
                        state.error = Some(e.to_string());
                    }
                }
                state.lease = None;
            }
            Event::Offered(_) | Event::Ignored => {}
        }
    }

    /// On a bond, judges each port by ARP replies from `gateway` (see
    /// [`net::bond_arp_monitor`]) rather than by its carrier alone.
    fn watch_gateway(&self, gateway: Option<Ipv4Addr>) {
        let (Some(gateway), false) = (gateway, self.ports.is_empty()) else {
            return;
        };
        let sys = std::path::Path::new("/sys/class/net");
        match net::bond_arp_monitor(sys, &self.interface, gateway, BOND_ARP_INTERVAL_MS) {
            Ok(()) => println!(
                "hoard: {} checks its ports by ARP to {gateway} every {BOND_ARP_INTERVAL_MS} ms",
                self.interface
            ),
            Err(e) => self.state.lock().error = Some(e.to_string()),
        }
    }

    /// The interface's name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Waits until the interface has an address (at once for a static one), at most
    /// `timeout`.
    pub fn wait_address(&self, timeout: Duration) -> Option<Ipv4Config> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.config.is_none() {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.config
    }

    /// The `Network` status section.
    pub fn status(&self) -> StatusSection {
        let state = self.state.lock();
        let mut s = StatusSection::new("Network")
            .field("Interface", &self.interface)
            .field("MacAddress", &self.mac)
            .field("Mode", if self.dhcp { "dhcp" } else { "static" })
            .field(
                "Carrier",
                net::carrier(&self.interface).map_or(
                    "unknown",
                    |up| {
                        if up {
                            "up"
                        } else {
                            "down"
                        }
                    },
                ),
            )
            .field(
                "LinkSpeedMbps",
                net::link_speed_mbps(&self.interface).map_or(String::new(), |s| s.to_string()),
            );
        if let Some(c) = state.config {
            s = s
                .field("Address", format!("{}/{}", c.address, c.prefix_len))
                .field(
                    "Gateway",
                    c.gateway.map_or(String::new(), |g| g.to_string()),
                );
        }
        if self.dhcp {
            s = s.field("DhcpState", state.dhcp_state);
        }
        if let Some(lease) = &state.lease {
            let mut l = StatusSection::new("Lease")
                .field("Server", lease.server)
                .field("LeaseSeconds", lease.lease.as_secs())
                .field(
                    "RemainingSeconds",
                    lease.remaining(Instant::now()).as_secs(),
                )
                .field("RenewAfterSeconds", lease.t1.as_secs())
                .field("RebindAfterSeconds", lease.t2.as_secs());
            for dns in &lease.dns {
                l = l.field("DnsServer", dns);
            }
            for ntp in &lease.ntp {
                l = l.field("NtpServer", ntp);
            }
            s = s.child(l);
        }
        if let Some(e) = &state.error {
            s = s.field("Error", e);
        }
        if !self.ports.is_empty() {
            let sys = std::path::Path::new("/sys/class/net");
            let active = net::active_port(sys, &self.interface);
            s = s.field("BondMode", "active-backup");
            s = s.field("ActivePort", active.clone().unwrap_or_default());
            for port in &self.ports {
                let mut p = StatusSection::new("Port")
                    .field("Name", port)
                    .field("Active", active.as_deref() == Some(port.as_str()))
                    .field(
                        "Carrier",
                        net::carrier(port).map_or("unknown", |up| if up { "up" } else { "down" }),
                    )
                    .field(
                        "LinkSpeedMbps",
                        net::link_speed_mbps(port).map_or(String::new(), |s| s.to_string()),
                    );
                for (name, value) in net::counters(port) {
                    p = p.field(name, value);
                }
                s = s.child(p);
            }
        }
        s
    }
}

/// The NTP servers a lease names (port 123).
pub fn lease_ntp_servers(lease: &Lease) -> Vec<SocketAddr> {
    lease
        .ntp
        .iter()
        .map(|&ip: &Ipv4Addr| SocketAddr::from((ip, 123)))
        .collect()
}

/// The appliance's clock, network and watchdog, as the S3 layer sees them.
pub struct Appliance {
    /// Where its settings are kept.
    pub store: hoard::Store,
    /// The hardware profile (its bays).
    pub profile: hoard::Profile,
    /// The clock and its NTP client.
    pub clock: Arc<Clock>,
    /// The first NIC.
    pub network: Arc<Network>,
    /// What the watchdog watches, and the timeout it was armed with (none: no watchdog).
    pub watchdog: (Arc<Health>, Option<Duration>),
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appliance")
            .field("store", &self.store.store_uuid())
            .field("clock", &self.clock)
            .field("network", &self.network)
            .finish()
    }
}

impl hoard_s3::Host for Appliance {
    fn clock_trusted(&self) -> bool {
        self.clock.trusted()
    }

    fn status(&self) -> Vec<StatusSection> {
        let (health, timeout) = &self.watchdog;
        let watchdog = match timeout {
            None => StatusSection::new("Watchdog").field("Armed", false),
            Some(t) => StatusSection::new("Watchdog")
                .field("Armed", true)
                .field("TimeoutSeconds", t.as_secs())
                .field(
                    "Verdict",
                    match health.verdict(*t) {
                        Verdict::Healthy => "healthy".to_string(),
                        Verdict::ShuttingDown => "shutting down".to_string(),
                        Verdict::Wedged(why) => format!("wedged: {why}"),
                    },
                ),
        };
        vec![time_status(&self.clock), self.network.status(), watchdog]
    }

    fn settings(&self, name: &str) -> Option<String> {
        let json = match name {
            "time" => serde_json::to_string(
                &TimeSettings::load(&self.store)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            ),
            "network" => serde_json::to_string(
                &NetworkSettings::load(&self.store)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            ),
            _ => return None,
        };
        Some(json.expect("settings serialize"))
    }

    fn change_settings(
        &self,
        name: &str,
        query: &[(String, String)],
    ) -> Result<String, Option<String>> {
        if name == "network" {
            let current = NetworkSettings::load(&self.store)
                .map_err(Some)?
                .unwrap_or_default();
            let changed = current.changed_by(query).map_err(Some)?;
            changed.keep(&self.store).map_err(Some)?;
            super::set_hostname(&changed.hostname);
            println!(
                "hoard: network settings changed: {} {:?}, hostname {} (now), bond {}; the addressing applies at the next boot",
                changed.ip, changed.gateway, changed.hostname, changed.bond
            );
            let mut answer = serde_json::to_value(&changed).expect("settings serialize");
            answer["applies"] = "hostname now; ip, gateway and bond at the next boot".into();
            return Ok(answer.to_string());
        }
        if name != "time" {
            return Err(None);
        }
        let current = TimeSettings::load(&self.store)
            .map_err(Some)?
            .unwrap_or_default();
        let changed = current.changed_by(query).map_err(Some)?;
        let servers = changed.servers().map_err(Some)?;
        changed.keep(&self.store).map_err(Some)?;
        self.clock.configure(servers, changed.trust_rtc);
        println!(
            "hoard: time settings changed: NTP servers {:?}, RTC trusted {}",
            changed.ntp_servers, changed.trust_rtc
        );
        Ok(serde_json::to_string(&changed).expect("settings serialize"))
    }

    fn locate(&self, bay: u32, on: bool) -> Result<(), Option<String>> {
        let enclosures = std::path::Path::new(super::ENCLOSURES_DIR);
        if !enclosures.exists() {
            return Err(None);
        }
        let slot = super::discover::enclosure_slot_of_bay(&self.profile, bay).ok_or_else(|| {
            Some(format!(
                "profile {}: no HDD controller numbers its bays by enclosure slot, so bay {bay} has no locate LED",
                self.profile.name
            ))
        })?;
        let file = super::discover::set_locate_led(enclosures, slot, on).map_err(Some)?;
        println!(
            "hoard: bay {bay} locate LED {} ({})",
            if on { "on" } else { "off" },
            file.display()
        );
        Ok(())
    }

    fn serving(&self) {
        self.watchdog.0.beat();
    }

    fn shutting_down(&self) {
        self.watchdog.0.shutting_down();
    }
}

/// The `Time` status section.
pub fn time_status(clock: &Clock) -> StatusSection {
    let c = clock.status();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let source = if c.last_sync_unix_ms.is_some() {
        "ntp"
    } else if c.rtc_trusted {
        "rtc (trusted by setting)"
    } else {
        "rtc (not synchronised: lifecycle expiry waits)"
    };
    let mut s = StatusSection::new("Time")
        .field("Synchronized", c.last_sync_unix_ms.is_some())
        .field("Trusted", c.rtc_trusted || c.last_sync_unix_ms.is_some())
        .field("Source", source)
        .field("NowUnixMs", now_ms)
        .field(
            "LastSyncUnixMs",
            c.last_sync_unix_ms.map_or(String::new(), |t| t.to_string()),
        )
        .field(
            "LastOffsetUs",
            c.last_offset_us.map_or(String::new(), |o| o.to_string()),
        )
        .field(
            "Stratum",
            c.stratum.map_or(String::new(), |s| s.to_string()),
        )
        .field("PollIntervalSeconds", c.poll_interval_s)
        .field("Steps", c.steps)
        .field("Corrections", c.corrections);
    for server in &c.servers {
        let mut e = StatusSection::new("Server").field("Address", &server.address);
        if let Some(last) = &server.last {
            e = e
                .field("OffsetUs", last.offset_us)
                .field("RoundTripUs", last.roundtrip_us)
                .field("Stratum", last.stratum);
        }
        if let Some(err) = &server.error {
            e = e.field("Error", err);
        }
        s = s.child(e);
    }
    s
}
