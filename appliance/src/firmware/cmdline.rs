//! The kernel command line (`/proc/cmdline`): the appliance's settings are its `hoard.*`
//! parameters, so one image serves every chassis.
//!
//! | parameter | meaning | default |
//! |---|---|---|
//! | `hoard.profile=NAME` | hardware profile shipped in the image | the one the drives match best |
//! | `hoard.ip=dhcp` or `hoard.ip=A.B.C.D/N` | the first NIC's IPv4 address: a DHCP lease, or static | `dhcp` |
//! | `hoard.gw=A.B.C.D` | default gateway of a static address (`none` for none) | none |
//! | `hoard.bond=0` | address the first NIC alone instead of an active-backup bond of all of them | bonded when there are two or more |
//! | `hoard.hostname=NAME` | host name (sent to the DHCP server) | `hoard` |
//! | `hoard.ntp=ADDR[:PORT],...` | NTP servers (IPv4 or IPv6 literals; port 123 unless given; empty: the DHCP lease's) | the DHCP lease's (option 42) |
//! | `hoard.trust_rtc=1` | trust the hardware clock before any NTP synchronisation (lifecycle expiry runs at once) | wait for NTP |
//! | `hoard.override=1` | the command line's time and network parameters win over the settings kept in the store, and replace them (recovery) | the store's win |
//!
//! Precedence of the time and network settings (`ntp`, `trust_rtc`, `ip`, `gw`, `hostname`,
//! `bond`): on the first boot (nothing kept yet) the command line's values, or the defaults,
//! are kept in the store; later the kept ones apply (changed by `PUT /_hoard/settings/time`
//! and `.../network`, `hoard admin time` and `hoard admin network`), unless
//! `hoard.override=1` (see `settings`).
//! | `hoard.port=N` | S3 port, HTTPS (the certificate is made on first boot and kept sealed in the store) | `9000` |
//! | `hoard.http_port=N` | also serve S3 in plain HTTP on this port | none: HTTPS only |
//! | `hoard.access_key=`, `hoard.secret_key=` | S3 credentials | generated on first boot, kept in the store |
//! | `hoard.io_backend=` | `auto`, `uring` or `portable` | the profile's |
//! | `hoard.domain=D` | virtual-host-style domain | none |
//! | `hoard.region=R` | region reported to clients | `us-east-1` |
//! | `hoard.metrics_port=N` | also serve plain `GET /metrics` (Prometheus) on this port | none (only the signed `/_hoard/metrics`) |

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use super::net::Ipv4Config;

/// The appliance's settings from the kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    /// Profile name to use instead of matching.
    pub profile: Option<String>,
    /// The NIC's static configuration; `None`: DHCP (a default for the kept network
    /// settings, as `ntp`).
    pub ip: Option<Ipv4Config>,
    /// Whether `hoard.ip=` was given at all (`hoard.ip=dhcp` asks for DHCP explicitly).
    pub ip_given: bool,
    /// Bond the NICs (active-backup) when there are two or more.
    pub bond: Option<bool>,
    /// Host name.
    pub hostname: Option<String>,
    /// NTP servers named on the command line (a default for the stored time settings).
    pub ntp: Option<Vec<SocketAddr>>,
    /// Trust the RTC before the first NTP synchronisation (a default, as `ntp`).
    pub trust_rtc: Option<bool>,
    /// `hoard.override=1`: the command line's settings win over the stored ones (recovery).
    pub settings_override: bool,
    /// S3 port (HTTPS).
    pub port: u16,
    /// Port for plain-HTTP S3 too, if any.
    pub http_port: Option<u16>,
    /// S3 credentials (both or neither).
    pub credentials: Option<(String, String)>,
    /// I/O backend override.
    pub io_backend: Option<String>,
    /// Virtual-host domain.
    pub domain: Option<String>,
    /// Region.
    pub region: String,
    /// Port for plain `GET /metrics`, if any.
    pub metrics_port: Option<u16>,
}

impl BootParams {
    /// Parses a kernel command line. Parameters that do not start with `hoard.` are the
    /// kernel's and are ignored.
    ///
    /// Errors: a message naming the bad or unknown `hoard.` parameter.
    pub fn parse(cmdline: &str) -> Result<BootParams, String> {
        let mut params = BTreeMap::new();
        for word in cmdline.split_whitespace() {
            if let Some(rest) = word.strip_prefix("hoard.") {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                params.insert(k.to_string(), v.to_string());
            }
        }
        let mut take = |k: &str| params.remove(k).filter(|v| !v.is_empty());
        let gateway = match take("gw").as_deref() {
            None | Some("none") => None,
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| format!("hoard.gw={g} is not an IPv4 address"))?,
            ),
        };
        let ip_text = take("ip");
        let ip_given = ip_text.is_some();
        let ip = match ip_text.as_deref() {
            None | Some("dhcp") => {
                if gateway.is_some() {
                    return Err("hoard.gw is for a static hoard.ip=A.B.C.D/N; DHCP's lease names the router".into());
                }
                None
            }
            Some(cidr) => {
                Some(Ipv4Config::parse_cidr(cidr, gateway).map_err(|e| format!("hoard.ip: {e}"))?)
            }
        };
        let ntp = match take("ntp") {
            None => None,
            Some(list) => {
                Some(super::clock::parse_servers(&list).map_err(|e| format!("hoard.ntp: {e}"))?)
            }
        };
        let trust_rtc = match take("trust_rtc").as_deref() {
            None => None,
            Some("0") => Some(false),
            Some("1") => Some(true),
            Some(other) => return Err(format!("hoard.trust_rtc={other}: 0 or 1")),
        };
        let bond = match take("bond").as_deref() {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(other) => return Err(format!("hoard.bond={other}: 0 or 1")),
        };
        let settings_override = match take("override").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(format!("hoard.override={other}: 0 or 1")),
        };
        let port = match take("port") {
            None => 9000,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("hoard.port={p} is not a port number"))?,
        };
        let metrics_port = match take("metrics_port") {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&m| m != 0 && m != port)
                    .ok_or_else(|| {
                        format!(
                            "hoard.metrics_port={p} is not a port number other than the S3 port"
                        )
                    })?,
            ),
        };
        let http_port = match take("http_port") {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&h| h != 0 && h != port && Some(h) != metrics_port)
                    .ok_or_else(|| {
                        format!(
                            "hoard.http_port={p} is not a port number other than the S3 and metrics ports"
                        )
                    })?,
            ),
        };
        let credentials = match (take("access_key"), take("secret_key")) {
            (Some(a), Some(s)) => Some((a, s)),
            (None, None) => None,
            _ => return Err("hoard.access_key and hoard.secret_key must be given together".into()),
        };
        let parsed = BootParams {
            profile: take("profile"),
            ip,
            ip_given,
            bond,
            hostname: take("hostname"),
            ntp,
            trust_rtc,
            settings_override,
            port,
            http_port,
            credentials,
            io_backend: take("io_backend"),
            domain: take("domain"),
            region: take("region").unwrap_or_else(|| "us-east-1".into()),
            metrics_port,
        };
        if let Some(unknown) = params.keys().next() {
            return Err(format!("unknown kernel parameter hoard.{unknown}"));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dhcp_and_https() {
        let p = BootParams::parse("console=ttyS0 panic=-1 quiet").unwrap();
        assert_eq!(p.ip, None, "DHCP");
        assert_eq!(p.hostname, None);
        assert!(!p.ip_given);
        assert_eq!(p.ntp, None);
        assert_eq!(p.trust_rtc, None);
        assert!(!p.settings_override);
        assert_eq!(p.bond, None);
        assert_eq!(p.port, 9000);
        assert_eq!(p.credentials, None);
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.metrics_port, None);
        assert_eq!(p.http_port, None, "HTTPS only unless asked");
    }

    #[test]
    fn every_parameter_is_read() {
        let p = BootParams::parse(
            "console=ttyS0 hoard.profile=4u-1.5pb hoard.ip=192.168.1.10/24 hoard.gw=none hoard.port=80 hoard.access_key=AK hoard.secret_key=SK hoard.domain=s3.lan hoard.metrics_port=9100 hoard.http_port=8080 hoard.ntp=10.0.2.2:11123,192.0.2.1,[2001:db8::1]:123 hoard.trust_rtc=1 hoard.hostname=vault",
        )
        .unwrap();
        let ip = p.ip.unwrap();
        assert_eq!(
            p.ntp.unwrap(),
            ["10.0.2.2:11123", "192.0.2.1:123", "[2001:db8::1]:123"]
                .map(|s| s.parse::<SocketAddr>().unwrap())
        );
        assert_eq!(p.trust_rtc, Some(true));
        assert_eq!(p.hostname.as_deref(), Some("vault"));
        assert!(p.ip_given);
        assert_eq!(p.http_port, Some(8080));
        assert_eq!(p.metrics_port, Some(9100));
        assert_eq!(p.profile.as_deref(), Some("4u-1.5pb"));
        assert_eq!(ip.address, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(ip.gateway, None);
        let gw = BootParams::parse("hoard.ip=192.168.1.10/24 hoard.gw=192.168.1.1").unwrap();
        assert_eq!(gw.ip.unwrap().gateway, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(p.port, 80);
        assert_eq!(p.credentials, Some(("AK".into(), "SK".into())));
        assert_eq!(p.domain.as_deref(), Some("s3.lan"));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (line, needle) in [
            ("hoard.ip=10.0.2.15", "hoard.ip"),
            ("hoard.gw=gateway", "hoard.gw=gateway"),
            ("hoard.gw=10.0.2.2", "static"),
            ("hoard.ntp=pool.ntp.org", "pool.ntp.org"),
            ("hoard.trust_rtc=yes", "hoard.trust_rtc=yes"),
            ("hoard.port=0", "hoard.port=0"),
            ("hoard.access_key=AK", "together"),
            ("hoard.metrics_port=9000", "hoard.metrics_port=9000"),
            ("hoard.http_port=9000", "hoard.http_port=9000"),
            ("hoard.colour=blue", "hoard.colour"),
        ] {
            let err = BootParams::parse(line).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
