//! The NICs: bringing up loopback, bonding two or more ports (the bonding driver's sysfs), and
//! giving the interface an IPv4 address (static, or a DHCP lease that `dhcp` got) and default
//! route with the classic ioctls (`SIOCSIFADDR`, `SIOCSIFNETMASK`, `SIOCSIFFLAGS`,
//! `SIOCADDRT`; netdevice(7), route(8)), so the image needs no other program.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// A static IPv4 configuration (`hoard.ip=10.0.2.15/24`, `hoard.gw=10.0.2.2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    /// The interface's address.
    pub address: Ipv4Addr,
    /// Prefix length (24 for a /24).
    pub prefix_len: u8,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

impl Ipv4Config {
    /// Parses `A.B.C.D/N`.
    ///
    /// Errors: a message naming the text.
    pub fn parse_cidr(text: &str, gateway: Option<Ipv4Addr>) -> Result<Ipv4Config, String> {
        let bad = || format!("{text:?} is not an IPv4 address with a prefix length (10.0.2.15/24)");
        let (addr, len) = text.split_once('/').ok_or_else(bad)?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if prefix_len > 32 {
            return Err(bad());
        }
        Ok(Ipv4Config {
            address: addr.parse().map_err(|_| bad())?,
            prefix_len,
            gateway,
        })
    }

    /// The netmask of the prefix.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - self.prefix_len as u32)
                .unwrap_or(0),
        )
    }
}

/// Waits until at least `count` non-loopback interfaces appear (at most `timeout`); returns
/// those present, sorted.
pub fn wait_for_interfaces(count: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lo" && !n.starts_with("bond"))
            .collect();
        names.sort();
        if names.len() >= count || Instant::now() >= deadline {
            return names;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes `bond` an active-backup bond of `ports` (the bonding driver's sysfs interface under
/// `sys_class_net`, normally `/sys/class/net`; the kernel's
/// Documentation/networking/bonding.rst, "Configuring Bonding Manually via Sysfs"): created if
/// missing, mode `active-backup`, MII link monitoring every `miimon_ms`, the first port
/// primary (traffic returns to it when its link comes back), `fail_over_mac=active` (the
/// bond's MAC address is the active port's own, announced by gratuitous ARP when it
/// changes), then each port enslaved. The ports must be down (never configured).
///
/// Errors: a sysfs write the kernel refused, naming the file and the value.
pub fn bond_active_backup(
    sys_class_net: &Path,
    bond: &str,
    ports: &[String],
    miimon_ms: u32,
) -> io::Result<()> {
    let write = |file: &Path, value: &str| {
        std::fs::write(file, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing {value:?} to {}: {e}", file.display()),
            )
        })
    };
    if !sys_class_net.join(bond).exists() {
        write(&sys_class_net.join("bonding_masters"), &format!("+{bond}"))?;
    }
    let settings = sys_class_net.join(bond).join("bonding");
    write(&settings.join("mode"), "active-backup")?;
    // Each port keeps its own MAC address and the bond takes the active one's, announcing
    // it by gratuitous ARP on a failover: no switch or NIC has to reprogram a filter.
    write(&settings.join("fail_over_mac"), "active")?;
    write(&settings.join("miimon"), &miimon_ms.to_string())?;
    for port in ports {
        write(&settings.join("slaves"), &format!("+{port}"))?;
    }
    if let Some(first) = ports.first() {
        write(&settings.join("primary"), first)?;
    }
    Ok(())
}

/// Switches `bond` from MII link monitoring to ARP monitoring of `target` (its gateway) every
/// `interval_ms`: a port is up while ARP traffic arrives on it, so a failover also happens
/// when a port keeps its carrier but stops passing frames (a dead switch port, a cut beyond
/// the first hop, or a NIC that does not report its link). The kernel turns MII monitoring
/// off when ARP monitoring starts.
///
/// Errors: a sysfs write the kernel refused, naming the file and the value.
pub fn bond_arp_monitor(
    sys_class_net: &Path,
    bond: &str,
    target: Ipv4Addr,
    interval_ms: u32,
) -> io::Result<()> {
    let settings = sys_class_net.join(bond).join("bonding");
    let write = |name: &str, value: &str| {
        let file = settings.join(name);
        std::fs::write(&file, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing {value:?} to {}: {e}", file.display()),
            )
        })
    };
    let targets = std::fs::read_to_string(settings.join("arp_ip_target")).unwrap_or_default();
    if !targets.split_whitespace().any(|t| t == target.to_string()) {
        write("arp_ip_target", &format!("+{target}"))?;
    }
    write("arp_interval", &interval_ms.to_string())
}

/// The port a bond sends on now (`bonding/active_slave`), if any.
pub fn active_port(sys_class_net: &Path, bond: &str) -> Option<String> {
    let text =
        std::fs::read_to_string(sys_class_net.join(bond).join("bonding/active_slave")).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// One port's counters (`statistics/rx_bytes`, `tx_bytes`, `rx_errors`, `tx_errors`).
pub fn counters(interface: &str) -> [(&'static str, u64); 4] {
    let read = |name: &str| {
        std::fs::read_to_string(
            Path::new("/sys/class/net")
                .join(interface)
                .join("statistics")
                .join(name),
        )
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
    };
    [
        ("RxBytes", read("rx_bytes")),
        ("TxBytes", read("tx_bytes")),
        ("RxErrors", read("rx_errors")),
        ("TxErrors", read("tx_errors")),
    ]
}

/// Link speed in Mb/s as the driver reports it (`/sys/class/net/<if>/speed`), if known.
pub fn link_speed_mbps(interface: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(interface).join("speed"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `interface` has carrier (`/sys/class/net/<if>/carrier`), if known.
pub fn carrier(interface: &str) -> Option<bool> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(interface).join("carrier"));
    match text.ok()?.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// Brings `interface` up without an address (for DHCP).
///
/// Errors: the ioctl that failed, naming the interface.
pub fn bring_up(interface: &str) -> io::Result<()> {
    set_up(&socket()?, interface)
        .map_err(|e| io::Error::new(e.kind(), format!("{interface}: bringing it up: {e}")))
}

/// Removes `interface`'s IPv4 address (a lost lease): `SIOCSIFADDR` with 0.0.0.0.
///
/// Errors: the ioctl that failed, naming the interface.
pub fn clear_address(interface: &str) -> io::Result<()> {
    set_addr(
        &socket()?,
        interface,
        libc::SIOCSIFADDR,
        Ipv4Addr::UNSPECIFIED,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("{interface}: removing the address: {e}")))
}

/// Brings `lo` up (127.0.0.1/8).
pub fn bring_up_loopback() -> io::Result<()> {
    let sock = socket()?;
    set_addr(&sock, "lo", libc::SIOCSIFADDR, Ipv4Addr::LOCALHOST)?;
    set_addr(
        &sock,
        "lo",
        libc::SIOCSIFNETMASK,
        Ipv4Addr::new(255, 0, 0, 0),
    )?;
    set_up(&sock, "lo")
}

/// Configures `interface` with `config` and brings it up.
///
/// Errors: the ioctl that failed, naming the interface.
pub fn configure(interface: &str, config: &Ipv4Config) -> io::Result<()> {
    let named = |what: &str| {
        let what = what.to_string();
        let interface = interface.to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{interface}: {what}: {e}"))
    };
    let sock = socket()?;
    set_addr(&sock, interface, libc::SIOCSIFADDR, config.address)
        .map_err(named("setting the address"))?;
    set_addr(&sock, interface, libc::SIOCSIFNETMASK, config.netmask())
        .map_err(named("setting the netmask"))?;
    set_up(&sock, interface).map_err(named("bringing it up"))?;
    if let Some(gw) = config.gateway {
        add_default_route(&sock, gw).map_err(named("adding the default route"))?;
    }
    Ok(())
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(interface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {interface:?} is too long"),
        ));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and sockaddr is plain
    // data; this is how the ioctls expect an IPv4 address.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn set_addr(
    sock: &OwnedFd,
    interface: &str,
    request: libc::c_ulong,
    addr: Ipv4Addr,
) -> io::Result<()> {
    let mut req = ifreq(interface)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    // SAFETY: req is a valid ifreq for this request; the kernel reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_up(sock: &OwnedFd, interface: &str) -> io::Result<()> {
    let mut req = ifreq(interface)?;
    // SAFETY: valid ifreq; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifru_flags was just written by the kernel.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: valid ifreq with flags set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct rtentry` from <net/route.h> (glibc, x86_64 and other LP64 targets); the libc crate
/// has it only for musl.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn add_default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr_in(gateway),
        rt_genmask: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_flags: (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: std::ptr::null_mut(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: rt is a valid rtentry; the kernel only reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &mut rt) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_with_its_netmask() {
        let c = Ipv4Config::parse_cidr("192.168.7.20/22", None).unwrap();
        assert_eq!(c.address, Ipv4Addr::new(192, 168, 7, 20));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 252, 0));
        let qemu = Ipv4Config::parse_cidr("10.0.2.15/24", None).unwrap();
        assert_eq!(qemu.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        let zero = Ipv4Config::parse_cidr("10.0.0.1/0", None).unwrap();
        assert_eq!(zero.netmask(), Ipv4Addr::UNSPECIFIED);
        for bad in ["10.0.2.15", "10.0.2.15/33", "10.0.2/24", "x/24"] {
            assert!(Ipv4Config::parse_cidr(bad, None).unwrap_err().contains(bad));
        }
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
    }

    #[test]
    fn a_bond_is_configured_through_sysfs_as_the_kernel_documents() {
        // The files of the bonding driver's sysfs interface, as a directory.
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path();
        std::fs::write(net.join("bonding_masters"), "").unwrap();
        let settings = net.join("bond0/bonding");
        std::fs::create_dir_all(&settings).unwrap();
        bond_active_backup(net, "bond0", &["eth0".into(), "eth1".into()], 100).unwrap();
        let read = |f: &str| std::fs::read_to_string(settings.join(f)).unwrap();
        assert_eq!(read("mode"), "active-backup");
        assert_eq!(read("fail_over_mac"), "active");
        assert_eq!(read("miimon"), "100");
        // Each write is one command; the file holds the last (eth1), as the kernel takes both.
        assert_eq!(read("slaves"), "+eth1");
        assert_eq!(read("primary"), "eth0");
        assert_eq!(
            std::fs::read_to_string(net.join("bonding_masters")).unwrap(),
            "",
            "bond0 existed: not created again"
        );
        std::fs::write(settings.join("arp_ip_target"), "").unwrap();
        bond_arp_monitor(net, "bond0", Ipv4Addr::new(10, 0, 2, 2), 200).unwrap();
        assert_eq!(read("arp_ip_target"), "+10.0.2.2");
        assert_eq!(read("arp_interval"), "200");
        std::fs::write(settings.join("active_slave"), "eth1\n").unwrap();
        assert_eq!(active_port(net, "bond0").as_deref(), Some("eth1"));
        // A bond that does not exist is created; a refused write names its file.
        let err = bond_active_backup(net, "bond1", &["eth2".into()], 100).unwrap_err();
        assert!(err.to_string().contains("bond1/bonding/mode"), "{err}");
        assert_eq!(
            std::fs::read_to_string(net.join("bonding_masters")).unwrap(),
            "+bond1"
        );
    }
}
