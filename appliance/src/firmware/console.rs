//! The console's status screen: what an operator standing at the chassis needs without logging
//! in — the firmware, the store, its addresses, the TLS certificate's fingerprint (to check
//! before trusting it), the time, the drives by bay with their state, the metadata mirror, the
//! running or last rebuild and scrub, and what is wrong now. Redrawn on the VGA console
//! (`/dev/tty1`) every [`REFRESH`]; printed on the serial console when Enter is pressed there
//! (the serial console is also the log, so it is not redrawn unasked).
//!
//! [`render`] is pure (tested on its own); [`gather`] reads the store and the host.
//!
//! Must not import the S3 server: it is handed the certificate's fingerprint and ports.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use hoard::Store;
use hoard_s3::{Host, StatusSection};

use super::host::Appliance;

/// How often the VGA console is redrawn.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The first line of the screen.
pub const TITLE: &str = "HOARD STATUS";

/// One data drive's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveLine {
    /// Its slot (the bay the profile numbers).
    pub slot: u32,
    /// Its device, or empty when missing.
    pub device: String,
    /// healthy, missing, failed, rebuilding.
    pub state: String,
    /// Read errors seen.
    pub read_errors: u64,
}

/// Everything the screen shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `0.1.0 (git abc123)`.
    pub firmware: String,
    /// The store's UUID and profile.
    pub store: String,
    /// `bond0 10.0.2.15/24 (dhcp) gateway 10.0.2.2`.
    pub network: String,
    /// `https://10.0.2.15:9000`.
    pub endpoint: String,
    /// The certificate's SHA-256 fingerprint.
    pub tls_fingerprint: String,
    /// `synchronised by NTP, offset -0.4 ms` or why not.
    pub time: String,
    /// The data drives, by slot.
    pub drives: Vec<DriveLine>,
    /// `ssd0 /dev/sdm in-sync` lines.
    pub metadata: Vec<String>,
    /// The running pass and the last rebuild and scrub.
    pub repair: Vec<String>,
    /// What is wrong now (empty: nothing).
    pub problems: Vec<String>,
}

/// The screen as text: one line per drive, every line within 120 columns (the TLS line holds
/// the 95-character fingerprint; the rest fit 80).
pub fn render(f: &Facts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{TITLE}  firmware {}", f.firmware);
    let _ = writeln!(out, "store     {}", f.store);
    let _ = writeln!(out, "network   {}", f.network);
    let _ = writeln!(out, "S3        {}", f.endpoint);
    let _ = writeln!(out, "TLS       SHA-256 {}", f.tls_fingerprint);
    let _ = writeln!(out, "time      {}", f.time);
    let _ = writeln!(out, "bay  device        state        read errors");
    for d in &f.drives {
        let _ = writeln!(
            out,
            "{:<4} {:<13} {:<12} {}",
            d.slot,
            if d.device.is_empty() { "-" } else { &d.device },
            d.state,
            d.read_errors
        );
    }
    for m in &f.metadata {
        let _ = writeln!(out, "metadata  {m}");
    }
    for r in &f.repair {
        let _ = writeln!(out, "repair    {r}");
    }
    if f.problems.is_empty() {
        let _ = writeln!(out, "problems  none");
    }
    for p in &f.problems {
        let _ = writeln!(out, "PROBLEM   {p}");
    }
    out
}

fn field<'a>(section: &'a StatusSection, name: &str) -> &'a str {
    section
        .fields
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Reads the facts from the store and the appliance.
pub fn gather(store: &Store, appliance: &Appliance, endpoint: &str, fingerprint: &str) -> Facts {
    let mut problems = Vec::new();
    let sections = appliance.status();
    let section = |name: &str| sections.iter().find(|s| s.name == name);
    let network = section("Network").map_or(String::new(), |n| {
        let mut line = format!(
            "{} {} ({})",
            field(n, "Interface"),
            field(n, "Address"),
            field(n, "Mode")
        );
        if !field(n, "Gateway").is_empty() {
            let _ = write!(line, " gateway {}", field(n, "Gateway"));
        }
        if !field(n, "ActivePort").is_empty() {
            let _ = write!(line, " via {}", field(n, "ActivePort"));
        }
        for port in n.children.iter().filter(|c| c.name == "Port") {
            if field(port, "Active") == "false" && field(port, "Carrier") == "down" {
                problems.push(format!("port {} has no link", field(port, "Name")));
            }
        }
        if !field(n, "Error").is_empty() {
            problems.push(format!("network: {}", field(n, "Error")));
        }
        line
    });
    let time = section("Time").map_or(String::new(), |t| {
        if field(t, "Synchronized") == "true" {
            format!(
                "synchronised by NTP (stratum {}, last offset {} us)",
                field(t, "Stratum"),
                field(t, "LastOffsetUs")
            )
        } else {
            field(t, "Source").to_string()
        }
    });
    if let Some(w) = section("Watchdog") {
        if field(w, "Verdict").starts_with("wedged") {
            problems.push(format!("watchdog: {}", field(w, "Verdict")));
        }
    }
    let drives: Vec<DriveLine> = store
        .data_slots()
        .into_iter()
        .map(|d| DriveLine {
            slot: d.slot,
            device: d.device.unwrap_or_default(),
            state: format!("{:?}", d.state).to_lowercase(),
            read_errors: d.read_errors.into(),
        })
        .collect();
    for d in &drives {
        if d.state != "healthy" {
            problems.push(format!("bay {}: {}", d.slot, d.state));
        }
    }
    let metadata = store
        .metadata_mirror()
        .into_iter()
        .map(|m| {
            let state = match &m.state {
                hoard::meta::MemberState::InSync => "in-sync".to_string(),
                hoard::meta::MemberState::Resilvering => "resilvering".to_string(),
                hoard::meta::MemberState::Failed(why) => {
                    problems.push(format!("metadata ssd{} failed: {why}", m.slot));
                    "failed".to_string()
                }
            };
            format!("ssd{} {} {state}", m.slot, m.device)
        })
        .collect();
    let mut repair = Vec::new();
    if let Ok(r) = store.repair_status() {
        let pass = |p: &hoard::store::PassStatus| {
            format!(
                "{} {} chunks checked, {} shards repaired, {} unrecoverable",
                p.kind.name(),
                p.counters.chunks_checked,
                p.counters.shards_repaired,
                p.counters.unrecoverable
            )
        };
        if let Some(p) = &r.running {
            repair.push(format!("running: {}", pass(p)));
        }
        if let Some(p) = &r.last_rebuild {
            repair.push(format!("last: {}", pass(p)));
        }
        if let Some(p) = &r.last_scrub {
            repair.push(format!("last: {}", pass(p)));
        }
        for (slot, why) in &r.lost_slots {
            problems.push(format!("bay {slot} lost: {why}"));
        }
        if !r.unrecoverable_objects.is_empty() {
            problems.push(format!(
                "{} object(s) unrecoverable",
                r.unrecoverable_objects.len()
            ));
        }
    }
    Facts {
        firmware: format!(
            "{} (git {})",
            env!("CARGO_PKG_VERSION"),
            option_env!("HOARD_GIT_REVISION").unwrap_or("unknown")
        ),
        store: format!(
            "{} (profile {})",
            store.store_uuid(),
            store.config().profile_name
        ),
        network,
        endpoint: endpoint.to_string(),
        tls_fingerprint: fingerprint.to_string(),
        time,
        drives,
        metadata,
        repair,
        problems,
    }
}

/// Starts the screen: a thread redrawing `/dev/tty1` (where there is a VGA console) and one
/// printing it on the serial console (standard output) for every line typed there.
pub fn start(facts: Arc<dyn Fn() -> Facts + Send + Sync>) {
    let vga = facts.clone();
    let _ = std::thread::Builder::new()
        .name("console-vga".into())
        .spawn(move || {
            let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty1") else {
                return;
            };
            loop {
                // Home, clear, then the screen.
                if tty
                    .write_all(format!("\x1b[H\x1b[2J{}", render(&vga())).as_bytes())
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(REFRESH);
            }
        });
    let _ = std::thread::Builder::new()
        .name("console-serial".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    return;
                }
                print!("{}", render(&facts()));
                let _ = std::io::stdout().flush();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_names_every_bay_and_what_is_wrong() {
        let mut f = Facts {
            firmware: "0.1.0 (git abc)".into(),
            store: "u (profile qemu-hba)".into(),
            network: "bond0 10.0.2.15/24 (dhcp) gateway 10.0.2.2 via eth0".into(),
            endpoint: "https://10.0.2.15:9000".into(),
            tls_fingerprint: ["AB"; 32].join(":"),
            time: "synchronised by NTP (stratum 8, last offset 12 us)".into(),
            drives: (0..12)
                .map(|slot| DriveLine {
                    slot,
                    device: format!("/dev/sd{}", (b'a' + slot as u8) as char),
                    state: if slot == 5 { "missing" } else { "healthy" }.into(),
                    read_errors: 0,
                })
                .collect(),
            metadata: vec!["ssd0 /dev/sdm in-sync".into()],
            repair: vec![],
            problems: vec![],
        };
        let screen = render(&f);
        assert!(screen.starts_with(TITLE), "{screen}");
        assert!(screen.contains("SHA-256 AB:AB:"), "{screen}");
        assert!(screen.contains("problems  none"), "{screen}");
        for slot in 0..12 {
            assert!(
                screen
                    .lines()
                    .any(|l| l.starts_with(&format!("{slot:<4} /dev/sd"))),
                "bay {slot}: {screen}"
            );
        }
        assert!(screen.lines().all(|l| l.len() <= 120), "{screen}");
        assert!(
            screen
                .lines()
                .filter(|l| !l.starts_with("TLS"))
                .all(|l| l.len() <= 80),
            "{screen}"
        );
        f.problems.push("bay 5: missing".into());
        let screen = render(&f);
        assert!(screen.contains("PROBLEM   bay 5: missing"), "{screen}");
        assert!(!screen.contains("problems  none"), "{screen}");
    }
}
