//! The kernel command line (`/proc/cmdline`): the appliance's settings are its `hoard.*`
//! parameters, so one image serves every chassis.
//!
//! | parameter | meaning | default |
//! |---|---|---|
//! | `hoard.profile=NAME` | hardware profile shipped in the image | the one the drives match best |
//! | `hoard.ip=A.B.C.D/N` | address of the first NIC | `10.0.2.15/24` (QEMU user network) |
//! | `hoard.gw=A.B.C.D` | default gateway (`none` for none) | `10.0.2.2` |
//! | `hoard.port=N` | S3 port, HTTPS (the certificate is made on first boot and kept sealed in the store) | `9000` |
//! | `hoard.http_port=N` | also serve S3 in plain HTTP on this port | none: HTTPS only |
//! | `hoard.access_key=`, `hoard.secret_key=` | S3 credentials | generated on first boot, kept in the store |
//! | `hoard.io_backend=` | `auto`, `uring` or `portable` | the profile's |
//! | `hoard.domain=D` | virtual-host-style domain | none |
//! | `hoard.region=R` | region reported to clients | `us-east-1` |
//! | `hoard.metrics_port=N` | also serve plain `GET /metrics` (Prometheus) on this port | none (only the signed `/_hoard/metrics`) |

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::net::Ipv4Config;

/// The appliance's settings from the kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    /// Profile name to use instead of matching.
    pub profile: Option<String>,
    /// NIC configuration.
    pub ip: Ipv4Config,
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
            None => Ipv4Config::QEMU_USER.gateway,
            Some("none") => None,
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| format!("hoard.gw={g} is not an IPv4 address"))?,
            ),
        };
        let ip = match take("ip") {
            None => Ipv4Config {
                gateway,
                ..Ipv4Config::QEMU_USER
            },
            Some(cidr) => {
                Ipv4Config::parse_cidr(&cidr, gateway).map_err(|e| format!("hoard.ip: {e}"))?
            }
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
    fn defaults_suit_qemu_user_networking() {
        let p = BootParams::parse("console=ttyS0 panic=-1 quiet").unwrap();
        assert_eq!(p.ip, Ipv4Config::QEMU_USER);
        assert_eq!(p.port, 9000);
        assert_eq!(p.credentials, None);
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.metrics_port, None);
        assert_eq!(p.http_port, None, "HTTPS only unless asked");
    }

    #[test]
    fn every_parameter_is_read() {
        let p = BootParams::parse(
            "console=ttyS0 hoard.profile=4u-1.5pb hoard.ip=192.168.1.10/24 hoard.gw=none hoard.port=80 hoard.access_key=AK hoard.secret_key=SK hoard.domain=s3.lan hoard.metrics_port=9100 hoard.http_port=8080",
        )
        .unwrap();
        assert_eq!(p.http_port, Some(8080));
        assert_eq!(p.metrics_port, Some(9100));
        assert_eq!(p.profile.as_deref(), Some("4u-1.5pb"));
        assert_eq!(p.ip.address, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.ip.gateway, None);
        assert_eq!(p.port, 80);
        assert_eq!(p.credentials, Some(("AK".into(), "SK".into())));
        assert_eq!(p.domain.as_deref(), Some("s3.lan"));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (line, needle) in [
            ("hoard.ip=10.0.2.15", "hoard.ip"),
            ("hoard.gw=gateway", "hoard.gw=gateway"),
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
