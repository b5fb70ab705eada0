//! The appliance's settings kept in the store (so mirrored on the metadata SSDs like all
//! metadata, and kept across reboots of an image with no other writable storage): **time**,
//! the NTP servers and whether the RTC is trusted before a synchronisation, as JSON in the
//! store setting [`TIME_SETTING`].
//!
//! Precedence: the first boot (nothing kept yet) keeps the kernel command line's values
//! (`hoard.ntp=`, `hoard.trust_rtc=`) or the defaults (the DHCP lease's servers, an untrusted
//! RTC); later boots apply what is kept, which `PUT /_hoard/settings/time` and `hoard admin
//! time` change at once and for good; `hoard.override=1` makes the command line win again and
//! replaces what is kept (recovery from settings that lock the box out).
//!
//! Must not import the S3 server: `host` hands it the requests' parameters.

use std::net::SocketAddr;

use hoard::Store;
use serde::{Deserialize, Serialize};

use super::cmdline::BootParams;

/// The store setting holding [`TimeSettings`] (JSON).
pub const TIME_SETTING: &str = "appliance/time";

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
        let Some(bytes) = store.setting(TIME_SETTING).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("the kept setting {TIME_SETTING}: {e}"))
    }

    /// Keeps these settings in `store` (durable when it returns).
    ///
    /// Errors: the store's write failed.
    pub fn keep(&self, store: &Store) -> Result<(), String> {
        let json = serde_json::to_vec(self).expect("settings serialize");
        store
            .put_setting(TIME_SETTING, &json)
            .map_err(|e| e.to_string())
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
        let (settings, source) = match TimeSettings::load(store)? {
            Some(kept) if !params.settings_override => return Ok((kept, "kept in the store")),
            Some(kept) => (from_cmdline(kept), "the command line (hoard.override=1)"),
            None => (
                from_cmdline(TimeSettings::default()),
                "the first boot's command line and defaults",
            ),
        };
        settings.keep(store)?;
        Ok((settings, source))
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
}
