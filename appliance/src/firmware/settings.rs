//! The appliance's settings kept in the store (so mirrored on the metadata SSDs like all
//! metadata, and kept across reboots of an image with no other writable storage), each group
//! as JSON in a store setting:
//! - **time** ([`TIME_SETTING`]): the NTP servers and whether the RTC is trusted before a
//!   synchronisation; a change is in force at once.
//! - **network** ([`NETWORK_SETTING`]): DHCP or a static address with its gateway, the host
//!   name, whether the NICs are bonded; the host name changes at once, the addressing at the
//!   next boot (changing it under the admin's own connection would cut it).
//!
//! Precedence: the first boot (nothing kept yet) keeps the kernel command line's values
//! (`hoard.ntp=`, `hoard.trust_rtc=`, `hoard.ip=`, `hoard.gw=`, `hoard.hostname=`,
//! `hoard.bond=`) or the defaults; later boots apply what is kept, which `PUT
//! /_hoard/settings/<group>` and `hoard admin time|network` change for good; `hoard.override=1`
//! makes the command line win again and replaces what is kept (recovery from settings that
//! lock the box out).
//!
//! Must not import the S3 server: `host` hands it the requests' parameters.

use std::net::SocketAddr;

use hoard::Store;
use serde::{Deserialize, Serialize};

use super::cmdline::BootParams;
use super::net::Ipv4Config;

/// The store setting holding [`TimeSettings`] (JSON).
pub const TIME_SETTING: &str = "appliance/time";
/// The store setting holding [`NetworkSettings`] (JSON).
pub const NETWORK_SETTING: &str = "appliance/network";

/// The settings group kept in `store` under `name`, if any.
///
/// Errors: the store's read failed, or the kept JSON does not parse.
fn load<T: serde::de::DeserializeOwned>(store: &Store, name: &str) -> Result<Option<T>, String> {
    let Some(bytes) = store.setting(name).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("the kept setting {name}: {e}"))
}

/// Keeps a settings group in `store` under `name` (durable when it returns).
///
/// Errors: the store's write failed.
fn keep<T: Serialize>(store: &Store, name: &str, value: &T) -> Result<(), String> {
    let json = serde_json::to_vec(value).expect("settings serialize");
    store.put_setting(name, &json).map_err(|e| e.to_string())
}

/// The settings group kept under `name` that this boot applies (see the precedence above):
/// the kept one, or (`settings_override`, or nothing kept) the command line's over it or over
/// the defaults, which is then kept. Returns it and where it came from.
///
/// Errors: the store's read or write failed.
fn at_boot<T: Serialize + serde::de::DeserializeOwned + Default>(
    store: &Store,
    name: &str,
    settings_override: bool,
    from_cmdline: impl Fn(T) -> T,
) -> Result<(T, &'static str), String> {
    let (settings, source) = match load::<T>(store, name)? {
        Some(kept) if !settings_override => return Ok((kept, "kept in the store")),
        Some(kept) => (from_cmdline(kept), "the command line (hoard.override=1)"),
        None => (
            from_cmdline(T::default()),
            "the first boot's command line and defaults",
        ),
    };
    keep(store, name, &settings)?;
    Ok((settings, source))
}

/// The network's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// `dhcp`, or a static `A.B.C.D/N`.
    pub ip: String,
    /// The static address's default gateway (none with DHCP: the lease names it).
    pub gateway: Option<String>,
    /// The host name (sent to the DHCP server).
    pub hostname: String,
    /// Bond two or more NICs (active-backup).
    pub bond: bool,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            ip: "dhcp".into(),
            gateway: None,
            hostname: "hoard".into(),
            bond: true,
        }
    }
}

impl NetworkSettings {
    /// The static configuration, or `None` for DHCP.
    ///
    /// Errors: a kept value that does not parse (only a hand-edited store holds one).
    pub fn static_config(&self) -> Result<Option<Ipv4Config>, String> {
        if self.ip == "dhcp" {
            return Ok(None);
        }
        let gateway = match &self.gateway {
            None => None,
            Some(g) => Some(
                g.parse()
                    .map_err(|_| format!("gateway {g:?} is not an IPv4 address"))?,
            ),
        };
        Ipv4Config::parse_cidr(&self.ip, gateway).map(Some)
    }

    /// These settings changed by a request's query parameters: `ip` (`dhcp` or
    /// `A.B.C.D/N`), `gateway` (an IPv4 address, or empty for none), `hostname` (1 to 63
    /// letters, digits and hyphens, RFC 1123) and `bond` (`true`/`false`).
    ///
    /// Errors: an unknown parameter, a bad value, a gateway with DHCP, or no parameter.
    pub fn changed_by(&self, query: &[(String, String)]) -> Result<NetworkSettings, String> {
        if query.is_empty() {
            return Err(
                "give ip=dhcp|A.B.C.D/N, gateway=, hostname= and/or bond=true|false".into(),
            );
        }
        let mut out = self.clone();
        for (name, value) in query {
            match name.as_str() {
                "ip" => out.ip = value.clone(),
                "gateway" => out.gateway = Some(value.clone()).filter(|v| !v.is_empty()),
                "hostname" => {
                    let valid = (1..=63).contains(&value.len())
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !value.starts_with('-')
                        && !value.ends_with('-');
                    if !valid {
                        return Err(format!(
                            "hostname={value:?}: 1 to 63 letters, digits and hyphens (RFC 1123)"
                        ));
                    }
                    out.hostname = value.clone();
                }
                "bond" => {
                    out.bond = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("bond={other:?}: true or false")),
                    }
                }
                other => {
                    return Err(format!(
                        "{other:?} is not a network setting (ip, gateway, hostname, bond)"
                    ))
                }
            }
        }
        if out.ip == "dhcp" && out.gateway.is_some() {
            return Err(
                "gateway is for a static ip=A.B.C.D/N; DHCP's lease names the router".into(),
            );
        }
        out.static_config().map_err(|e| format!("ip: {e}"))?;
        Ok(out)
    }

    /// The settings kept in `store`, if any.
    ///
    /// Errors: the store's read failed, or the kept JSON does not parse.
    pub fn load(store: &Store) -> Result<Option<NetworkSettings>, String> {
        load(store, NETWORK_SETTING)
    }

    /// Keeps these settings in `store`.
    ///
    /// Errors: the store's write failed.
    pub fn keep(&self, store: &Store) -> Result<(), String> {
        keep(store, NETWORK_SETTING, self)
    }

    /// The settings this boot applies, by the precedence above (see [`TimeSettings::at_boot`]).
    ///
    /// Errors: the store's read or write failed.
    pub fn at_boot(
        store: &Store,
        params: &BootParams,
    ) -> Result<(NetworkSettings, &'static str), String> {
        let from_cmdline = |base: NetworkSettings| NetworkSettings {
            ip: match (&params.ip, params.ip_given) {
                (Some(c), _) => format!("{}/{}", c.address, c.prefix_len),
                (None, true) => "dhcp".into(),
                (None, false) => base.ip.clone(),
            },
            gateway: match (&params.ip, params.ip_given) {
                (Some(c), _) => c.gateway.map(|g| g.to_string()),
                (None, true) => None,
                (None, false) => base.gateway.clone(),
            },
            hostname: params.hostname.clone().unwrap_or(base.hostname.clone()),
            bond: params.bond.unwrap_or(base.bond),
        };
        at_boot(
            store,
            NETWORK_SETTING,
            params.settings_override,
            from_cmdline,
        )
    }
}

/// The clock's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSettings {
    /// NTP servers, `address:port` (none: the DHCP lease's).
    pub ntp_servers: Vec<String>,
    /// Trust the RTC before the first synchronisation.
    pub trust_rtc: bool,
}

impl TimeSettings {
    /// The servers as socket addresses.
    ///
    /// Errors: an entry that is not an address (kept settings are checked when changed, so
    /// only a hand-edited store can hold one).
    pub fn servers(&self) -> Result<Vec<SocketAddr>, String> {
        super::clock::parse_servers(&self.ntp_servers.join(","))
    }

    /// These settings changed by a request's query parameters: `ntp` (a comma-separated list
    /// of addresses with optional ports; empty: the DHCP lease's) and `trust_rtc` (`true` or
    /// `false`). Parameters left out keep their value.
    ///
    /// Errors: an unknown parameter, a bad address or boolean, or no parameter at all; each
    /// message names it.
    pub fn changed_by(&self, query: &[(String, String)]) -> Result<TimeSettings, String> {
        if query.is_empty() {
            return Err("give ntp=ADDR[:PORT],... and/or trust_rtc=true|false".into());
        }
        let mut out = self.clone();
        for (name, value) in query {
            match name.as_str() {
                "ntp" => {
                    out.ntp_servers = super::clock::parse_servers(value)?
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                }
                "trust_rtc" => {
                    out.trust_rtc = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("trust_rtc={other:?}: true or false")),
                    }
                }
                other => return Err(format!("{other:?} is not a time setting (ntp, trust_rtc)")),
            }
        }
        Ok(out)
    }

    /// The settings kept in `store`, if any.
    ///
    /// Errors: the store's read failed, or the kept JSON does not parse.
    pub fn load(store: &Store) -> Result<Option<TimeSettings>, String> {
        load(store, TIME_SETTING)
    }

    /// Keeps these settings in `store` (durable when it returns).
    ///
    /// Errors: the store's write failed.
    pub fn keep(&self, store: &Store) -> Result<(), String> {
        keep(store, TIME_SETTING, self)
    }

    /// The settings this boot applies, by the precedence above; keeps them when they came
    /// from the command line or the defaults. Returns them and where they came from.
    ///
    /// Errors: the store's read or write failed.
    pub fn at_boot(
        store: &Store,
        params: &BootParams,
    ) -> Result<(TimeSettings, &'static str), String> {
        let from_cmdline = |base: TimeSettings| TimeSettings {
            ntp_servers: params.ntp.as_ref().map_or(base.ntp_servers, |servers| {
                servers.iter().map(|s| s.to_string()).collect()
            }),
            trust_rtc: params.trust_rtc.unwrap_or(base.trust_rtc),
        };
        at_boot(store, TIME_SETTING, params.settings_override, from_cmdline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_request_changes_what_it_names_and_bad_parameters_are_named() {
        let base = TimeSettings::default();
        let s = base
            .changed_by(&q(&[("ntp", "10.0.2.2:11123, 192.0.2.1")]))
            .unwrap();
        assert_eq!(s.ntp_servers, ["10.0.2.2:11123", "192.0.2.1:123"]);
        assert!(!s.trust_rtc);
        let s = s.changed_by(&q(&[("trust_rtc", "true")])).unwrap();
        assert_eq!(s.ntp_servers.len(), 2, "ntp kept");
        assert!(s.trust_rtc);
        let cleared = s.changed_by(&q(&[("ntp", "")])).unwrap();
        assert!(cleared.ntp_servers.is_empty(), "back to the lease's");
        assert_eq!(cleared.servers().unwrap(), Vec::<SocketAddr>::new());
        for (query, needle) in [
            (q(&[("ntp", "pool.ntp.org")]), "pool.ntp.org"),
            (q(&[("trust_rtc", "yes")]), "trust_rtc"),
            (q(&[("timezone", "UTC")]), "timezone"),
            (q(&[]), "ntp="),
        ] {
            let err = base.changed_by(&query).unwrap_err();
            assert!(err.contains(needle), "{query:?}: {err}");
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<TimeSettings>(&json).unwrap(), s);
    }

    #[test]
    fn network_settings_are_checked_as_a_whole() {
        let base = NetworkSettings::default();
        assert_eq!(base.static_config().unwrap(), None, "DHCP by default");
        let s = base
            .changed_by(&q(&[("ip", "192.168.7.20/24"), ("gateway", "192.168.7.1")]))
            .unwrap();
        let c = s.static_config().unwrap().unwrap();
        assert_eq!(c.gateway, Some("192.168.7.1".parse().unwrap()));
        let s = s
            .changed_by(&q(&[("hostname", "vault-2"), ("bond", "false")]))
            .unwrap();
        assert_eq!((s.hostname.as_str(), s.bond), ("vault-2", false));
        let back = s
            .changed_by(&q(&[("ip", "dhcp"), ("gateway", "")]))
            .unwrap();
        assert_eq!(back.static_config().unwrap(), None);
        for (query, needle) in [
            (q(&[("ip", "dhcp"), ("gateway", "10.0.0.1")]), "static"),
            (q(&[("ip", "10.0.2.15")]), "10.0.2.15"),
            (q(&[("ip", "10.0.0.5/24"), ("gateway", "router")]), "router"),
            (q(&[("hostname", "-bad-")]), "RFC 1123"),
            (q(&[("hostname", "a.b")]), "RFC 1123"),
            (q(&[("bond", "1")]), "bond"),
            (q(&[("mtu", "9000")]), "mtu"),
            (q(&[]), "ip="),
        ] {
            let err = base.changed_by(&query).unwrap_err();
            assert!(err.contains(needle), "{query:?}: {err}");
        }
    }
}
