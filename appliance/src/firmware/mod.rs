//! The firmware image's PID 1: `hoard` started by the kernel as `/init` from the initramfs.
//!
//! Owns the boot sequence, in order: mount proc, sys, devtmpfs and a tmpfs on /run; load the
//! kernel modules shipped in `/lib/modules` ([`kmod`]); read the `hoard.*` kernel parameters
//! ([`cmdline`]); discover block devices and their bays ([`discover`]); pick the hardware
//! profile and match drives to its slots (the engine's `hoard::volume::assembly`), formatting
//! blank drives on first boot only and adopting a blank HDD into an empty bay; open the store
//! (degraded when a data drive is missing); watch for drives hot-plugged later ([`hotplug`]);
//! read the settings kept in the store ([`settings`]); bring up the NICs ([`net`]: a bond of
//! two or more, a static address or a lease kept by [`dhcp`]); set the clock by NTP
//! ([`clock`], waiting up to [`FIRST_SYNC_WAIT`] so that the first signed requests meet a
//! right clock); arm the watchdog ([`watchdog`]); serve S3 over HTTPS (a certificate made on
//! first boot and kept sealed in the store; plain HTTP only where `hoard.http_port` asks),
//! with the machine's facts for the S3 layer ([`host`]) and a status screen on the console
//! ([`console`]), until the power button, ctrl-alt-del, SIGTERM, SIGPWR or the admin request
//! asks to stop ([`power`]); then close the store cleanly, write the hardware clock and power
//! off. PID 1 never exits: a fatal error is printed on the console and the machine reboots.

pub mod clock;
pub mod cmdline;
pub mod console;
pub mod dhcp;
pub mod discover;
pub mod host;
pub mod hotplug;
pub mod kmod;
pub mod net;
pub mod power;
pub mod settings;
pub mod watchdog;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoard::{Profile, Store};
use nix::mount::{mount, MsFlags};

use cmdline::BootParams;
use hoard::volume::assembly::Assembly;
use hoard_s3::{Credentials, S3Config};

/// Where the image keeps its kernel modules (flat `<name>.ko` files).
pub const MODULES_DIR: &str = "/lib/modules";
/// The kernel's SES enclosure class (backplane slots and their LEDs).
pub const ENCLOSURES_DIR: &str = "/sys/class/enclosure";
/// Where the image keeps its hardware profiles.
pub const PROFILES_DIR: &str = "/etc/hoard/profiles";
/// The store setting holding generated S3 credentials (`access key\nsecret key`, sealed).
pub const CREDENTIALS_SETTING: &str = "s3-credentials";

type BoxError = Box<dyn std::error::Error>;

/// Runs the appliance as PID 1. Never returns: it ends in power-off or reboot.
pub fn pid1() -> ! {
    match std::panic::catch_unwind(boot_and_serve) {
        Ok(Ok(reason)) => {
            println!("hoard: stopped ({reason}); store closed cleanly");
            power::power_off()
        }
        Ok(Err(e)) => power::fatal(&e.to_string(), Duration::from_secs(10)),
        Err(_) => power::fatal("panic (message above)", Duration::from_secs(10)),
    }
}

fn boot_and_serve() -> Result<String, BoxError> {
    mount_pseudo_filesystems()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    println!(
        "hoard: firmware {} (git {}) on Linux {release}, uptime {:.2} s",
        env!("CARGO_PKG_VERSION"),
        option_env!("HOARD_GIT_REVISION").unwrap_or("unknown"),
        uptime_s()
    );
    power::route_ctrl_alt_del_to_init();

    let cmdline = std::fs::read_to_string("/proc/cmdline")?;
    let params = BootParams::parse(&cmdline)?;

    let start = Instant::now();
    let (loaded, failures) = kmod::load_all(Path::new(MODULES_DIR))?;
    println!(
        "hoard: loaded {loaded} kernel modules in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    for (name, error) in failures {
        println!("hoard: module {name} failed to load: {error}");
    }

    let profiles = load_profiles(Path::new(PROFILES_DIR))?;
    let named = match &params.profile {
        Some(name) => Some(
            profiles
                .iter()
                .find(|p| &p.name == name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
                    format!("hoard.profile={name}: the image has profiles {names:?}")
                })?,
        ),
        None => None,
    };
    let devices = wait_for_drives(named.as_ref(), Duration::from_secs(30));
    let profile = match named {
        Some(p) => p,
        None => best_profile(&profiles, &devices)?,
    };
    println!(
        "hoard: {} block device(s); profile {}: {}",
        devices.len(),
        profile.name,
        profile.description
    );

    let mut config = profile.derive();
    if let Some(backend) = &params.io_backend {
        config.io_backend = backend.parse()?;
    }
    let mut devices = devices;
    discover::assign_bays(&profile, &mut devices, Path::new(ENCLOSURES_DIR));
    let at_boot = devices.clone();
    let assembly = Assembly::plan(&profile, &config, devices)?;
    print!("{}", assembly.report());
    let (devices, format_blank) = assembly.store_devices();
    let store = Store::open_devices(devices, config, format_blank)?;
    hotplug::watch(
        store.clone(),
        profile.clone(),
        &at_boot,
        Duration::from_secs(2),
    );
    let missing = store.missing_data_slots();
    if missing.is_empty() {
        println!("hoard: store {} open", store.store_uuid());
    } else {
        println!(
            "hoard: store {} open DEGRADED: data slot(s) {missing:?} missing",
            store.store_uuid()
        );
    }
    for member in store.metadata_mirror() {
        println!(
            "hoard: metadata ssd{} {}: {:?}",
            member.slot, member.device, member.state
        );
    }
    let (credentials, source) = credentials(&store, &params)?;

    net::bring_up_loopback()?;
    let nic_ports = profile.nic.as_ref().map_or(1, |n| n.count.max(1) as usize);
    let ports = net::wait_for_interfaces(nic_ports, Duration::from_secs(10));
    if ports.is_empty() {
        return Err(
            "no network interface appeared within 10 s (is its driver module shipped?)".into(),
        );
    }
    let (network_settings, network_source) = settings::NetworkSettings::at_boot(&store, &params)?;
    println!(
        "hoard: network settings ({network_source}): {}{}, hostname {}, bond {}",
        network_settings.ip,
        network_settings
            .gateway
            .as_ref()
            .map_or(String::new(), |g| format!(" gateway {g}")),
        network_settings.hostname,
        network_settings.bond
    );
    set_hostname(&network_settings.hostname);
    let (interface, bonded) = bring_up_ports(&ports, network_settings.bond);
    let (time, time_source) = settings::TimeSettings::at_boot(&store, &params)?;
    println!(
        "hoard: time settings ({time_source}): NTP servers {:?}, RTC trusted {}",
        time.ntp_servers, time.trust_rtc
    );
    let clock = clock::Clock::new(time.servers()?, time.trust_rtc);
    let lease_clock = clock.clone();
    let network = host::Network::start(
        &interface,
        bonded,
        network_settings.static_config()?,
        &network_settings.hostname,
        Box::new(move |lease| lease_clock.set_lease_servers(host::lease_ntp_servers(lease))),
    )?;
    let address = network.wait_address(Duration::from_secs(10));
    match address {
        Some(a) => println!(
            "hoard: {interface} {}/{} gateway {} link {}",
            a.address,
            a.prefix_len,
            a.gateway.map_or("none".to_string(), |g| g.to_string()),
            net::link_speed_mbps(&interface).map_or("unknown".to_string(), |s| format!("{s} Mb/s"))
        ),
        None => println!("hoard: {interface} has no address yet (DHCP keeps asking)"),
    }
    clock.start();
    if clock.status().servers.is_empty() {
        println!("hoard: no NTP server (hoard.ntp= or DHCP option 42): the clock is the RTC's");
    } else if clock.wait_synchronised(FIRST_SYNC_WAIT) {
        let c = clock.status();
        println!(
            "hoard: clock synchronised by NTP (offset {:+.3} s, stratum {}) after {:.2} s of uptime",
            c.last_offset_us.unwrap_or(0) as f64 / 1e6,
            c.stratum.unwrap_or(0),
            uptime_s()
        );
    } else {
        println!(
            "hoard: clock not synchronised within {} s; NTP keeps trying",
            FIRST_SYNC_WAIT.as_secs()
        );
    }
    let health = Arc::new(watchdog::Health::default());
    let armed = arm_watchdog(&profile, &store, &health);
    let appliance = Arc::new(host::Appliance {
        store: store.clone(),
        profile: profile.clone(),
        clock: clock.clone(),
        network: network.clone(),
        watchdog: (health, armed),
    });
    let address = address.map(|a| a.address);

    let s3 = S3Config {
        domains: params.domain.iter().cloned().collect(),
        region: params.region.clone(),
        metrics_listen: params
            .metrics_port
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        host: Some(appliance.clone()),
        ..S3Config::default()
    };
    let (tls, tls_source) = https_certificate(&store, address)?;
    println!(
        "hoard: TLS certificate ({tls_source}) SHA-256 fingerprint {}",
        tls.fingerprint()
    );
    let endpoints = hoard_s3::Endpoints {
        plain: params
            .http_port
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        tls: Some((SocketAddr::from(([0, 0, 0, 0], params.port)), tls)),
    };
    let address = address.map_or("0.0.0.0".to_string(), |a| a.to_string());
    let clock_at_stop = clock.clone();
    let fingerprint = endpoints
        .tls
        .as_ref()
        .map_or(String::new(), |(_, tls)| tls.fingerprint());
    let reason = hoard_s3::run(store, credentials, s3, endpoints, move |store, bound| {
        let endpoint = format!("https://{address}:{}", bound.tls.map_or(0, |a| a.port()));
        let screen_store = store.clone();
        console::start(Arc::new(move || {
            console::gather(&screen_store, &appliance, &endpoint, &fingerprint)
        }));
        let plain = bound.plain.map_or(String::new(), |a| {
            format!(" and http://{address}:{}", a.port())
        });
        println!(
            "hoard: S3 ready on https://{address}:{}{plain} after {:.2} s of uptime (credentials {source})",
            bound.tls.map_or(0, |a| a.port()),
            uptime_s()
        );
        // The power button raises SIGPWR in this process, so every power-off path is one.
        power::watch_power_button(
            Arc::new(|| {
                println!("hoard: power button pressed");
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGPWR);
            }),
            Duration::from_secs(10),
        );
    })?;
    if clock_at_stop.status().last_sync_unix_ms.is_some() {
        match clock::write_rtc() {
            Ok(()) => println!("hoard: hardware clock set from the synchronised clock"),
            Err(e) => println!("hoard: hardware clock not set: {e}"),
        }
    }
    Ok(reason)
}

/// The interface to address: with two ports or more (and `hoard.bond` not 0), an
/// active-backup bond `bond0` of them all, so traffic moves to a live port when one loses its
/// link; else the first port. Returns it and the bond's ports (none: not bonded).
fn bring_up_ports(ports: &[String], bond: bool) -> (String, Vec<String>) {
    if ports.len() < 2 || !bond {
        return (ports[0].clone(), Vec::new());
    }
    match net::bond_active_backup(Path::new("/sys/class/net"), "bond0", ports, BOND_MIIMON_MS) {
        Ok(()) => {
            println!(
                "hoard: bond0 active-backup of {} (link checked every {BOND_MIIMON_MS} ms)",
                ports.join(", ")
            );
            ("bond0".to_string(), ports.to_vec())
        }
        Err(e) => {
            println!("hoard: no bond ({e}); using {} alone", ports[0]);
            (ports[0].clone(), Vec::new())
        }
    }
}

/// Sets the kernel's host name (`sethostname(2)`); a failure is printed, not fatal.
pub fn set_hostname(name: &str) {
    if let Err(e) = nix::unistd::sethostname(name) {
        println!("hoard: cannot set the host name {name:?}: {e}");
    }
}

/// How often the bond checks its ports' links (MII monitoring).
pub const BOND_MIIMON_MS: u32 = 100;

/// The store setting the watchdog's probe rewrites every second (a durable metadata write).
pub const WATCHDOG_PROBE_SETTING: &str = "watchdog-probe";

/// Arms the profile's watchdog, if it names one and its device appeared; returns the timeout
/// the driver took. The probe is a durable write of [`WATCHDOG_PROBE_SETTING`].
fn arm_watchdog(
    profile: &Profile,
    store: &Store,
    health: &Arc<watchdog::Health>,
) -> Option<Duration> {
    let spec = profile.watchdog.as_ref()?;
    let device = Path::new("/dev/watchdog");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !device.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let store = store.clone();
    let probe = Box::new(move || {
        store
            .put_setting(WATCHDOG_PROBE_SETTING, &uptime_s().to_le_bytes())
            .map_err(|e| e.to_string())
    });
    match watchdog::start(
        device,
        Duration::from_secs(spec.timeout_s.into()),
        health.clone(),
        probe,
    ) {
        Ok(taken) => {
            println!(
                "hoard: watchdog {} armed: {} s without a durable metadata write or a running server resets the machine",
                spec.driver,
                taken.as_secs()
            );
            Some(taken)
        }
        Err(e) => {
            println!("hoard: watchdog {} not armed: {e}", spec.driver);
            None
        }
    }
}

/// How long boot waits for the first NTP synchronisation before serving.
pub const FIRST_SYNC_WAIT: Duration = Duration::from_secs(5);

fn mount_pseudo_filesystems() -> Result<(), BoxError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/run", "tmpfs"),
    ] {
        std::fs::create_dir_all(target)?;
        match mount(Some(source), target, Some(fstype), flags, None::<&str>) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => return Err(format!("mounting {fstype} on {target}: {e}").into()),
        }
    }
    Ok(())
}

fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Every `*.toml` profile in `dir` that describes discovered drives (file-backed ones are for
/// development and are skipped).
///
/// Errors: the directory cannot be read, a profile is invalid, or none is left.
pub fn load_profiles(dir: &Path) -> Result<Vec<Profile>, BoxError> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading profiles in {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let profile = Profile::load(&path)?;
        if profile.files.is_none() {
            out.push(profile);
        }
    }
    if out.is_empty() {
        return Err(format!("no hardware profile for real drives in {}", dir.display()).into());
    }
    Ok(out)
}

/// Polls `/sys/block` until the profile's drive count is present, or (without a profile, or
/// when a drive is missing) until the list has not changed for 3 s, at most `timeout`.
fn wait_for_drives(profile: Option<&Profile>, timeout: Duration) -> Vec<discover::BlockDevice> {
    let start = Instant::now();
    let mut last: Vec<discover::BlockDevice> = Vec::new();
    let mut last_change = start;
    loop {
        let now = discover::scan(Path::new("/sys/block"), Path::new("/dev")).unwrap_or_default();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        let expected_found = profile.is_some_and(|p| {
            let ssd = last
                .iter()
                .filter(|d| !d.rotational && p.ssd.accepts(d.size_bytes))
                .count();
            let hdd = last
                .iter()
                .filter(|d| d.rotational && p.hdd.accepts(d.size_bytes))
                .count();
            ssd >= p.ssd.count as usize && hdd >= p.hdd.count as usize
        });
        let settled = !last.is_empty() && last_change.elapsed() >= Duration::from_secs(3);
        if expected_found || settled || start.elapsed() >= timeout {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The profile that the most drives fit (at most its slot count per class); ties go to the
/// profile with fewer slots, the closer fit.
///
/// Errors: no profile has at least one SSD and one HDD present.
pub fn best_profile(
    profiles: &[Profile],
    devices: &[discover::BlockDevice],
) -> Result<Profile, BoxError> {
    let score = |p: &Profile| {
        let ssd = devices
            .iter()
            .filter(|d| !d.rotational && p.ssd.accepts(d.size_bytes))
            .count()
            .min(p.ssd.count as usize);
        let hdd = devices
            .iter()
            .filter(|d| d.rotational && p.hdd.accepts(d.size_bytes))
            .count()
            .min(p.hdd.count as usize);
        (ssd.min(1) * hdd.min(1), ssd + hdd)
    };
    profiles
        .iter()
        .filter(|p| score(p).0 == 1)
        .max_by_key(|p| (score(p).1, std::cmp::Reverse(p.ssd.count + p.hdd.count)))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            format!(
                "no profile ({}) fits these drives: none has a matching SSD and HDD; set hoard.profile=NAME to see why",
                names.join(", ")
            )
            .into()
        })
}

/// The store setting holding the HTTPS certificate chain and key (one PEM bundle, sealed).
pub const TLS_SETTING: &str = "tls-certificate";

/// The HTTPS certificate: kept in the store (sealed under the store's secrets key, as the
/// credentials are), else made now (rcgen: a P-256 key, self-signed, naming `hoard`,
/// `localhost`, the NIC's `address` and 127.0.0.1) and kept. `PUT /_hoard/tls` replaces it,
/// sealed in the same setting, so the next boot serves the new one.
fn https_certificate(
    store: &Store,
    address: Option<std::net::Ipv4Addr>,
) -> Result<(Arc<hoard_s3::tls::Tls>, &'static str), BoxError> {
    let sealer = hoard_s3::auth::seal::Sealer::new(&store.secrets_key());
    let stored = store
        .setting(TLS_SETTING)?
        .and_then(|v| sealer.open(&String::from_utf8_lossy(&v), TLS_SETTING).ok());
    let keep = {
        let store = store.clone();
        move |cert: &[u8], key: &[u8]| -> Result<(), String> {
            let sealer = hoard_s3::auth::seal::Sealer::new(&store.secrets_key());
            let bundle = [cert, key].concat();
            let sealed = sealer.seal(&String::from_utf8_lossy(&bundle), TLS_SETTING);
            store
                .put_setting(TLS_SETTING, sealed.as_bytes())
                .map_err(|e| e.to_string())
        }
    };
    let (bundle, source) = match stored {
        Some(bundle) => (bundle.into_bytes(), "kept in the store"),
        None => {
            let mut names = vec![
                "hoard".to_string(),
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ];
            names.extend(address.map(|a| a.to_string()));
            let made = rcgen::generate_simple_self_signed(names)?;
            let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
            keep(cert.as_bytes(), key.as_bytes())?;
            ([cert, key].concat().into_bytes(), "made on this boot")
        }
    };
    let tls = hoard_s3::tls::Tls::new(hoard_s3::tls::CertSource::Memory {
        cert_pem: bundle.clone(),
        key_pem: bundle,
        persist: Arc::new(keep),
    })?;
    Ok((Arc::new(tls), source))
}

/// S3 credentials: from the kernel command line, else kept in the store (sealed under the
/// store's secrets key, see `hoard_s3::auth::seal`), else generated now, kept in the store and
/// printed on the console once. The directory of other accounts, users and keys is opened
/// with them.
fn credentials(
    store: &Store,
    params: &BootParams,
) -> Result<(Credentials, &'static str), BoxError> {
    let (access, secret, source) = root_key(store, params)?;
    Ok((Credentials::open(store, &access, &secret)?, source))
}

/// Prefix of the sealed form of [`CREDENTIALS_SETTING`] (older stores kept it in plain text;
/// it is sealed at their next boot).
const SEALED_PREFIX: &str = "sealed:";

fn root_key(
    store: &Store,
    params: &BootParams,
) -> Result<(String, String, &'static str), BoxError> {
    if let Some((access, secret)) = &params.credentials {
        return Ok((
            access.clone(),
            secret.clone(),
            "from the kernel command line",
        ));
    }
    let sealer = hoard_s3::auth::seal::Sealer::new(&store.secrets_key());
    let keep = |access: &str, secret: &str| -> Result<(), BoxError> {
        let sealed = sealer.seal(&format!("{access}\n{secret}"), CREDENTIALS_SETTING);
        store.put_setting(
            CREDENTIALS_SETTING,
            format!("{SEALED_PREFIX}{sealed}").as_bytes(),
        )?;
        Ok(())
    };
    if let Some(stored) = store.setting(CREDENTIALS_SETTING)? {
        let text = String::from_utf8_lossy(&stored).into_owned();
        let plain = match text.strip_prefix(SEALED_PREFIX) {
            Some(sealed) => sealer.open(sealed, CREDENTIALS_SETTING).ok(),
            None => {
                // Kept in plain text by an older build: seal it now.
                if let Some((access, secret)) = text.split_once('\n') {
                    keep(access, secret)?;
                }
                Some(text)
            }
        };
        if let Some((access, secret)) = plain.as_deref().and_then(|t| t.split_once('\n')) {
            return Ok((access.to_string(), secret.to_string(), "kept in the store"));
        }
        println!("hoard: the stored S3 credentials are unreadable; generating new ones");
    }
    let (access, secret) = Credentials::generate();
    keep(&access, &secret)?;
    // Shown in full this once; later boots print only where they came from.
    println!("hoard: generated S3 credentials: access key {access}  secret key {secret}");
    Ok((access, secret, "generated on this first boot"))
}

#[cfg(test)]
mod tests {
    use super::discover::BlockDevice;
    use super::*;

    fn disk(name: &str, size_bytes: u64, rotational: bool) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: Path::new("/dev").join(name),
            size_bytes,
            rotational,
            model: String::new(),
            serial: String::new(),
            removable: false,
            read_only: false,
            bay: name.into(),
            bay_number: None,
        }
    }

    #[test]
    fn the_profile_most_drives_fit_is_chosen() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hwprofiles");
        let profiles = load_profiles(&dir).unwrap();
        let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        assert!(
            names.contains(&"qemu") && names.contains(&"4u-1.5pb"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"dev"),
            "file-backed profiles are not for real drives"
        );

        let mut qemu = vec![disk("nvme0n1", 2 << 30, false)];
        qemu.extend((0..7).map(|i| disk(&format!("sd{i}"), 8 << 30, true)));
        assert_eq!(best_profile(&profiles, &qemu).unwrap().name, "qemu");

        let mut chassis = vec![
            disk("nvme0n1", 1_920_383_410_176, false),
            disk("nvme1n1", 1_920_383_410_176, false),
        ];
        chassis.extend((0..58).map(|i| disk(&format!("sd{i}"), 24_000_277_250_048, true)));
        assert_eq!(best_profile(&profiles, &chassis).unwrap().name, "4u-1.5pb");

        let hdds_only: Vec<BlockDevice> = (0..8)
            .map(|i| disk(&format!("sd{i}"), 8 << 30, true))
            .collect();
        let err = best_profile(&profiles, &hdds_only).unwrap_err().to_string();
        assert!(err.contains("hoard.profile"), "{err}");
    }
}
