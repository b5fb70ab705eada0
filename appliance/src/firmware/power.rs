//! Power: the ACPI power button (KEY_POWER from an evdev device), ctrl-alt-del, and the final
//! power-off or reboot. PID 1 must never exit, so both end in `reboot(2)`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::reboot::{reboot, set_cad_enabled, RebootMode};

/// `EV_KEY` and `KEY_POWER` from <linux/input-event-codes.h>.
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit Linux: a 16-byte timeval, type (u16), code (u16), value (i32).
const INPUT_EVENT_BYTES: usize = 24;

/// Makes ctrl-alt-del send SIGINT to PID 1 instead of rebooting at once, so it shuts down
/// cleanly like the other power-off paths.
pub fn route_ctrl_alt_del_to_init() {
    if let Err(e) = set_cad_enabled(false) {
        tracing::warn!(error = %e, "cannot route ctrl-alt-del to init");
    }
}

/// Watches every `/dev/input/event*` device (new ones too, for `watch_new_for`) and calls
/// `on_press` when one reports a KEY_POWER press. Needs the `button` and `evdev` modules.
pub fn watch_power_button(on_press: Arc<dyn Fn() + Send + Sync>, watch_new_for: Duration) {
    std::thread::Builder::new()
        .name("power-button".into())
        .spawn(move || {
            let deadline = Instant::now() + watch_new_for;
            let mut watched: Vec<PathBuf> = Vec::new();
            loop {
                for path in event_devices() {
                    if watched.contains(&path) {
                        continue;
                    }
                    watched.push(path.clone());
                    let on_press = on_press.clone();
                    let _ = std::thread::Builder::new()
                        .name("input-event".into())
                        .spawn(move || read_events(path, on_press));
                }
                if Instant::now() >= deadline {
                    if watched.is_empty() {
                        tracing::warn!("no input event device: the power button will not work (are the button and evdev modules shipped?)");
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
        .expect("spawn the power-button thread");
}

fn event_devices() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("/dev/input")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"))
        })
        .collect();
    out.sort();
    out
}

fn read_events(path: PathBuf, on_press: Arc<dyn Fn() + Send + Sync>) {
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(device = %path.display(), error = %e, "cannot open input device");
            return;
        }
    };
    tracing::debug!(device = %path.display(), "watching for the power button");
    let mut event = [0u8; INPUT_EVENT_BYTES];
    while file.read_exact(&mut event).is_ok() {
        if is_power_press(&event) {
            on_press();
        }
    }
}

/// Whether a raw `input_event` is a KEY_POWER press (value 1; 0 is release, 2 repeat).
pub fn is_power_press(event: &[u8; INPUT_EVENT_BYTES]) -> bool {
    let kind = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

/// Flushes the page cache and powers the machine off. Never returns.
pub fn power_off() -> ! {
    nix::unistd::sync();
    eprintln!("hoard: powering off");
    let _ = reboot(RebootMode::RB_POWER_OFF);
    halt_forever()
}

/// Logs a fatal error on the console, waits so it can be read, and reboots. Never returns.
pub fn fatal(message: &str, wait: Duration) -> ! {
    eprintln!("\nhoard: FATAL: {message}");
    eprintln!("hoard: rebooting in {} s", wait.as_secs());
    std::thread::sleep(wait);
    nix::unistd::sync();
    let _ = reboot(RebootMode::RB_AUTOBOOT);
    halt_forever()
}

fn halt_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_power_key_press_counts() {
        let event = |kind: u16, code: u16, value: i32| {
            let mut e = [0u8; INPUT_EVENT_BYTES];
            e[16..18].copy_from_slice(&kind.to_ne_bytes());
            e[18..20].copy_from_slice(&code.to_ne_bytes());
            e[20..24].copy_from_slice(&value.to_ne_bytes());
            e
        };
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)));
        assert!(!is_power_press(&event(EV_KEY, 28, 1)));
        assert!(!is_power_press(&event(0, 0, 0)));
    }
}
