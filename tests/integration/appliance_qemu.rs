//! The firmware image booted in QEMU under TCG with the qemu profile (appliance/scripts/
//! boot-qemu), driven from the host by aws-sdk-s3 through the forwarded port: first boot formats
//! the drives (both SSDs as a metadata mirror) and generates S3 credentials, printed on the console and kept in the store;
//! objects (one of 50 MiB, multipart) go in; the power button (`system_powerdown` on
//! the monitor) shuts the guest down cleanly; a second boot from the same disk images reads every
//! object back byte-identical; a third boot without one HDD opens degraded, says so on the
//! console, serves every object (the bucket is `ec:4+2`, the qemu profile's default: lost shards
//! are reconstructed from parity) and serves the metadata from its mirror SSD; a fourth boot, with
//! hdd3 replaced by a blank disk, finds the stale SSD and resilvers it online, adopts the blank
//! HDD and rebuilds onto it, and reads every object back; then hdd5 is hot-removed (QEMU
//! `device_del`) while objects are read, is failed and re-protected, and a blank disk hot-added
//! (`device_add`) is adopted into its bay and rebuilt; a fifth boot without any metadata SSD formats nothing,
//! says why and reboots. On emulated server hardware (the qemu-hba profile: a MegaRAID SAS HBA,
//! AHCI and e1000e, no virtio) every drive is found, formatted, served and kept across a reboot;
//! that guest takes its address from QEMU's DHCP server and, with its hardware clock 3 h behind,
//! sets it from an NTP server on the host (chronyd) before S3 serves, to within 50 ms; with its
//! metadata SSDs stalled, its watchdog resets it and it comes back serving every object; its two
//! NICs are bonded, and a GET and PUTs go on while the active port's link goes down.
//!
//! Needs the image: `appliance/scripts/build-image` (which `scripts/test` runs first) and
//! `qemu-system-x86_64`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use parking_lot::Mutex;

use crate::support::{body_bytes, curl, md5_hex, pattern, scratch_dir};

const BUCKET: &str = "appliance";
const MIB: usize = 1 << 20;
/// PID 1's first console line.
const FIRMWARE_BANNER: &str = "hoard: firmware ";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn firmware_dir() -> PathBuf {
    std::env::var_os("HOARD_FIRMWARE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/firmware"))
}

/// A guest booted by boot-qemu, its console collected as it runs.
struct Guest {
    child: Option<Child>,
    console: Arc<Mutex<String>>,
    monitor: PathBuf,
    /// The plain-HTTP S3 endpoint the SDK uses (asked for with hoard.http_port).
    endpoint: String,
    /// The host port of the guest's HTTPS S3 port (its default, and only one unless asked).
    https_port: u16,
    credentials: (String, String),
}

impl Guest {
    /// Starts boot-qemu on the images in `disks`, leaving out the drives in `omit`. No
    /// credentials go on the kernel command line.
    fn spawn(disks: &Path, omit: &[&str]) -> Guest {
        Guest::spawn_profile(disks, omit, None, &[])
    }

    /// [`Guest::spawn`] with a profile other than the qemu one, and more boot-qemu arguments.
    fn spawn_profile(
        disks: &Path,
        omit: &[&str],
        profile: Option<&Path>,
        extra: &[String],
    ) -> Guest {
        let manifest = firmware_dir().join("manifest.json");
        assert!(
            manifest.exists(),
            "{} is missing: run appliance/scripts/build-image first",
            manifest.display()
        );
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, https_port) = (free_port(), free_port());
        let monitor = disks.join("monitor.sock");
        let mut cmd = Command::new(repo_root().join("appliance/scripts/boot-qemu"));
        cmd.arg("--disks")
            .arg(disks)
            .arg("--image")
            .arg(firmware_dir())
            .arg("--monitor")
            .arg(&monitor)
            .args(["--s3-port", &https_port.to_string()])
            .args(["--http-port", &port.to_string()]);
        for name in omit {
            cmd.args(["--omit-disk", name]);
        }
        if let Some(profile) = profile {
            cmd.arg("--profile").arg(profile);
        }
        cmd.args(extra);
        let mut child = cmd
            .env_remove("HOARD_ACCESS_KEY")
            .env_remove("HOARD_SECRET_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run appliance/scripts/boot-qemu");
        let console = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut c = console.lock();
                    c.push_str(&line);
                    c.push('\n');
                }
            });
        }
        Guest {
            child: Some(child),
            console,
            monitor,
            endpoint: format!("http://127.0.0.1:{port}"),
            https_port,
            credentials: Default::default(),
        }
    }

    /// Checks the HTTPS S3 port: the certificate it serves is the one whose fingerprint the
    /// console printed, and with it as the CA, curl reaches S3 over verified TLS by the name
    /// `hoard` the certificate carries. Returns the fingerprint.
    fn check_https(&self) -> String {
        let line = self.console_line("TLS certificate (");
        let printed = line.trim().rsplit(' ').next().unwrap().to_string();
        let port = self.https_port;
        let shown = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "hoard"])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        let text = String::from_utf8_lossy(&shown.stdout);
        let begin = text
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a certificate");
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        let pem = self.monitor.with_file_name("served.pem");
        std::fs::write(&pem, &text[begin..end]).unwrap();
        let fp = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&pem)
            .output()
            .unwrap();
        let fp = String::from_utf8_lossy(&fp.stdout);
        assert_eq!(fp.trim().rsplit('=').next().unwrap(), printed, "{line}");
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&pem)
            .args(["--connect-to", &format!("hoard:{port}:127.0.0.1:{port}")])
            .arg(format!("https://hoard:{port}/"))
            .output()
            .unwrap();
        // Anonymous ListBuckets over a verified TLS connection.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "403", "{out:?}");
        printed
    }

    /// Boots (see [`Guest::spawn`]) and waits for S3. On first boot (`known_credentials` is
    /// `None`) the guest generates credentials and prints them on the console; later it must
    /// use the ones it kept in the store.
    fn boot(disks: &Path, omit: &[&str], known_credentials: Option<&(String, String)>) -> Guest {
        Guest::boot_profile(disks, omit, known_credentials, None, &[])
    }

    /// [`Guest::boot`] with a profile other than the qemu one, and more boot-qemu arguments.
    fn boot_profile(
        disks: &Path,
        omit: &[&str],
        known_credentials: Option<&(String, String)>,
        profile: Option<&Path>,
        extra: &[String],
    ) -> Guest {
        let mut guest = Guest::spawn_profile(disks, omit, profile, extra);
        // The emulated kernel reaches PID 1 in 2-10 s. If it has not within 120 s, TCG wedged
        // the guest kernel before any of our code ran (nothing was read or written), so one
        // more boot is a fair test; a hang inside hoard is never retried.
        let init_deadline = Instant::now() + Duration::from_secs(120);
        let mut exited = false;
        while !guest.console().contains(FIRMWARE_BANNER) && Instant::now() < init_deadline {
            exited = guest.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if !exited && !guest.console().contains(FIRMWARE_BANNER) {
            eprintln!(
                "appliance_qemu: the guest kernel did not start PID 1 within 120 s; \
                 booting once more. Its console:\n{}",
                guest.console()
            );
            drop(guest);
            guest = Guest::spawn_profile(disks, omit, profile, extra);
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        // The console (QEMU's stdout) and boot-qemu's own lines (stderr) arrive on two pipes:
        // wait for both the guest's "S3 ready" and boot-qemu's "first S3 answer".
        while !(guest.console().contains("first S3 answer") && guest.console().contains("S3 ready"))
        {
            if let Some(status) = guest.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the guest stopped before serving S3 ({status}):\n{}",
                    guest.console()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no S3 answer within 300 s:\n{}",
                guest.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(known) = known_credentials {
            assert!(
                guest
                    .console_line("S3 ready")
                    .contains("credentials kept in the store"),
                "{}",
                guest.console()
            );
            guest.credentials = known.clone();
        } else {
            let line = guest.console_line("generated S3 credentials:");
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |w: &str| {
                let i = words.iter().position(|x| *x == w).unwrap_or_else(|| {
                    panic!(
                        "no generated credentials on the console:\n{}",
                        guest.console()
                    )
                });
                words[i + 2].to_string()
            };
            guest.credentials = (after("access"), after("secret"));
        }
        guest
    }

    fn console(&self) -> String {
        self.console.lock().clone()
    }

    /// Types `text` on the guest's serial console (boot-qemu `--serial-input`).
    fn type_on_serial(&mut self, text: &str) {
        let stdin = self.child.as_mut().unwrap().stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The line of the console that contains `needle`.
    fn console_line(&self, needle: &str) -> String {
        self.console()
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    }

    /// Reads every object back and compares it (`when` names the moment in a failure, which
    /// also shows the console).
    async fn read_all(&self, objects: &[(String, Vec<u8>)], when: &str, retries: bool) {
        let s3 = self.client(retries);
        for (key, data) in objects {
            let out = s3
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("{key} is unreadable {when}: {e:?}\n{}", self.console())
                });
            let body = out.body.collect().await.unwrap_or_else(|e| {
                panic!(
                    "{key}: the body broke off {when}: {e:?}\n{}",
                    self.console()
                )
            });
            assert!(
                body.into_bytes() == data[..],
                "{key} read back differently {when}"
            );
        }
    }

    /// Sends one command to QEMU's human monitor; returns what it answered within 2 s.
    fn monitor(&self, command: &str) -> String {
        monitor_command(&self.monitor, command)
    }

    /// Polls the status document (at most 240 s) until `done` holds.
    async fn wait_for_status(
        &self,
        credentials: &(String, String),
        what: &str,
        done: impl Fn(&str) -> bool,
    ) {
        let status_url = format!("{}/_hoard/status", self.endpoint);
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let (code, body) = curl(&status_url, "GET", Some((&credentials.0, &credentials.1)));
            assert_eq!(code, 200, "{body}");
            if done(&body) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within 240 s: {body}\n{}",
                self.console()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Presses the power button (`system_powerdown` on QEMU's monitor) and waits for QEMU to
    /// exit.
    fn press_power_button(self) -> (ExitStatus, String) {
        let mut monitor = UnixStream::connect(&self.monitor).expect("connect to QEMU's monitor");
        monitor.write_all(b"system_powerdown\n").unwrap();
        self.wait_exit()
    }

    /// Waits (at most 180 s) for QEMU to exit; returns its status and the whole console.
    fn wait_exit(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the readers drain the last lines.
                std::thread::sleep(Duration::from_millis(300));
                return (status, self.console());
            }
            assert!(
                Instant::now() < deadline,
                "the guest did not stop within 180 s:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn client(&self, retries: bool) -> Client {
        let retry = if retries {
            RetryConfig::standard()
        } else {
            RetryConfig::disabled()
        };
        Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.endpoint)
                .credentials_provider(Credentials::new(
                    &self.credentials.0,
                    &self.credentials.1,
                    None,
                    None,
                    "qemu-test",
                ))
                .force_path_style(true)
                .retry_config(retry)
                .build(),
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // boot-qemu terminates QEMU on SIGTERM.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- guest console ---\n{}", self.console());
            }
        }
    }
}

async fn put_multipart(s3: &Client, key: &str, data: &[u8], part_bytes: usize) {
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, part) in data.chunks(part_bytes).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(part.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The `<State>` of data slot `slot` in a status document (empty if absent).
fn drive_state(doc: &str, slot: u32) -> String {
    let marker = format!("<DataDrive><Slot>{slot}</Slot>");
    doc.find(&marker)
        .and_then(|at| {
            let rest = &doc[at..];
            let from = rest.find("<State>")? + "<State>".len();
            let to = rest[from..].find("</State>")? + from;
            Some(rest[from..to].to_string())
        })
        .unwrap_or_default()
}

/// Sends one command to the QEMU human monitor at `socket`; returns what it answered within
/// 2 s.
fn monitor_command(socket: &Path, command: &str) -> String {
    use std::io::Read;
    let mut monitor = UnixStream::connect(socket).expect("connect to QEMU's monitor");
    monitor
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    monitor
        .write_all(format!("{command}\n").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match monitor.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    eprintln!("qemu monitor: {command} -> {answer:?}");
    answer
}

/// The two e1000e ports are bonded active-backup: while a 48 MiB GET streams and 1 MiB PUTs
/// go in, the active port's link goes down (QEMU `set_link nic0 off`); nothing fails, the
/// bond moves to eth1, and back to eth0 (its primary) when the link returns. Prints the
/// longest stall the GET saw.
async fn check_failover(guest: &Guest, s3: &Client, credentials: &(String, String)) {
    let console = guest.console();
    assert!(
        console.contains("bond0 active-backup of eth0, eth1"),
        "{console}"
    );
    let key = Some((credentials.0.as_str(), credentials.1.as_str()));
    let status_url = format!("{}/_hoard/status", guest.endpoint);
    let active = || element(&curl(&status_url, "GET", key).1, "ActivePort").map(str::to_string);
    assert_eq!(active().as_deref(), Some("eth0"));
    let big = pattern(77, 48 * MIB);
    s3.put_object()
        .bucket(BUCKET)
        .key("failover/big")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    let monitor = guest.monitor.clone();
    let cut = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let at = Instant::now();
        monitor_command(&monitor, "set_link nic0 off");
        at
    });
    let get = async {
        let mut body = s3
            .get_object()
            .bucket(BUCKET)
            .key("failover/big")
            .send()
            .await
            .expect("the GET starts")
            .body;
        let (mut got, mut last, mut stall) = (Vec::new(), Instant::now(), Duration::ZERO);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("the GET streams through the failover");
            stall = stall.max(last.elapsed());
            last = Instant::now();
            got.extend_from_slice(&chunk);
        }
        assert!(
            got == big,
            "the GET read back differently across the failover"
        );
        stall
    };
    let puts = async {
        for i in 0..12 {
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("failover/put{i}"))
                .body(ByteStream::from(pattern(i, MIB)))
                .send()
                .await
                .expect("PUTs go through the failover");
        }
    };
    let (stall, ()) = tokio::join!(get, puts);
    cut.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while active().as_deref() != Some("eth1") {
        assert!(Instant::now() < deadline, "the bond did not move to eth1");
        std::thread::sleep(Duration::from_millis(200));
    }
    // (QEMU's e1000e does not tell the guest's driver that its link went down: the carrier
    // stays up, and it is the ARP monitor that finds the port passing nothing.)
    let (_, status) = curl(&status_url, "GET", key);
    assert!(
        status.contains("<Name>eth0</Name><Active>false</Active>"),
        "{status}"
    );
    guest.monitor("set_link nic0 on");
    while active().as_deref() != Some("eth0") {
        assert!(Instant::now() < deadline, "the bond did not return to eth0");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "appliance_qemu: failover: the 48 MiB GET's longest stall was {} ms (with 12 PUTs of 1 MiB beside it)",
        stall.as_millis()
    );
}

/// Enter on the serial console prints the status screen: every bay with its drive, the
/// metadata SSDs, the bond, the certificate's fingerprint as the boot printed it.
fn check_status_screen(guest: &mut Guest) {
    guest.type_on_serial("\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !guest.console().contains("problems  none") {
        assert!(
            Instant::now() < deadline,
            "no status screen:\n{}",
            guest.console()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = guest.console();
    let screen = &console[console.rfind("HOARD STATUS").unwrap()..];
    let fingerprint = guest.console_line("TLS certificate (");
    let fingerprint = fingerprint.trim().rsplit(' ').next().unwrap();
    assert!(
        screen.contains(&format!("SHA-256 {fingerprint}")),
        "{screen}"
    );
    assert!(
        screen.contains("network   bond0 10.0.2.15/24 (dhcp)"),
        "{screen}"
    );
    for bay in 0..12 {
        assert!(
            screen
                .lines()
                .any(|l| l.starts_with(&format!("{bay:<4} /dev/sd")) && l.contains("healthy")),
            "bay {bay}: {screen}"
        );
    }
    assert_eq!(screen.matches("metadata  ssd").count(), 2, "{screen}");
    eprintln!("appliance_qemu: the status screen:\n{}", screen.trim_end());
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The text of the first `<name>` element of `doc`.
fn element<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find('<')?;
    Some(&doc[start..end])
}

/// chronyd on the host as an NTP server (stratum 8 from its own clock, which it does not
/// touch: `-x`), on a free UDP port of 127.0.0.1, which the guest reaches as 10.0.2.2.
struct NtpServer {
    child: Child,
    port: u16,
}

impl NtpServer {
    fn start(dir: &Path) -> NtpServer {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n\
                 cmdport 0\npidfile {}\n",
                dir.join("chronyd.pid").display()
            ),
        )
        .unwrap();
        let chronyd = ["/usr/sbin/chronyd", "chronyd"]
            .into_iter()
            .find(|c| Command::new(c).arg("-v").output().is_ok())
            .expect("chronyd (Debian's chrony; scripts/test installs it)");
        let child = Command::new(chronyd)
            .args(["-x", "-d", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it answers an NTP client-mode packet.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut request = [0u8; 48];
        request[0] = (4 << 3) | 3;
        for _ in 0..50 {
            socket.send_to(&request, ("127.0.0.1", port)).unwrap();
            let mut reply = [0u8; 48];
            if socket.recv_from(&mut reply).is_ok() {
                return NtpServer { child, port };
            }
        }
        panic!("chronyd did not answer on 127.0.0.1:{port}");
    }
}

impl Drop for NtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest's clock after its NTP step: its own next measurement (a correction, 16 s after the
/// step) is within 50 ms, and its time as the status reports it is within 50 ms of the host's
/// plus half the request's round trip.
fn check_clock(guest: &Guest, credentials: &(String, String)) {
    let url = format!("{}/_hoard/status", guest.endpoint);
    let key = Some((credentials.0.as_str(), credentials.1.as_str()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (_, status) = curl(&url, "GET", key);
        if element(&status, "Corrections").is_some_and(|n| n != "0") {
            break status;
        }
        assert!(Instant::now() < deadline, "no second NTP poll: {status}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let measured: i64 = element(&status, "LastOffsetUs").unwrap().parse().unwrap();
    assert!(
        measured.abs() < 50_000,
        "offset after the step: {measured} µs: {status}"
    );
    let mut best = i64::MAX;
    for _ in 0..5 {
        let before = unix_ms();
        let (_, status) = curl(&url, "GET", key);
        let after = unix_ms();
        let guest_ms: u64 = element(&status, "NowUnixMs").unwrap().parse().unwrap();
        let off = guest_ms as i64 - ((before + after) / 2) as i64;
        let slack = ((after - before) / 2) as i64 + 50;
        best = best.min(off.abs() - slack);
        eprintln!(
            "appliance_qemu: clock: guest - host = {off} ms (round trip {} ms); the guest's own NTP offset {} ms",
            after - before,
            measured as f64 / 1000.0
        );
    }
    assert!(
        best <= 0,
        "the guest's clock is more than 50 ms off the host's"
    );
}

fn mib_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_boots_serves_powers_off_and_survives_a_missing_drive() {
    let scratch = scratch_dir();
    let disks = scratch.path();

    // Objects: 40 small ones (up to 64 KiB: those at most the qemu profile's 16 KiB inline
    // threshold live in the metadata index, the others are one chunk each, spread over the
    // HDDs), one of 3 MiB, and one of 50 MiB uploaded in 5 parts (7 chunks of 8 MiB).
    let mut objects: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("small/{i:02}"),
                pattern(1000 + i, 1 + (i as usize * 1637) % (64 * 1024)),
            )
        })
        .collect();
    objects.push(("medium".into(), pattern(7, 3 * MIB)));
    let big = pattern(50, 50 * MIB);

    // First boot: blank drives are formatted.
    let guest = Guest::boot(disks, &[], None);
    let credentials = guest.credentials.clone();
    let boot_line = guest.console_line("first S3 answer");
    assert!(
        guest.console().contains("metadata: blank, formatting"),
        "{}",
        guest.console()
    );
    // Slots follow bays, not the order the kernel probed the drives in: QEMU's drive hddN
    // sits at SCSI target N, so it becomes slot hddN.
    for i in 0..8 {
        let name = format!("hdd{i}");
        assert!(
            guest.console().lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words
                    .windows(2)
                    .any(|w| w == [name.as_str(), name.as_str()])
            }),
            "drive {name} did not get slot {name}:\n{}",
            guest.console()
        );
    }
    // HTTPS by default, with a certificate made on this first boot.
    assert!(
        guest
            .console_line("TLS certificate (")
            .contains("made on this boot"),
        "{}",
        guest.console()
    );
    let fingerprint = guest.check_https();
    // No NTP server is named here (QEMU's DHCP offers none): the clock is the RTC's, and
    // lifecycle expiry waits for a synchronisation it will not get.
    assert!(
        guest.console().contains("no NTP server"),
        "{}",
        guest.console()
    );
    let (code, status) = curl(
        &format!("{}/_hoard/status", guest.endpoint),
        "GET",
        Some((&credentials.0, &credentials.1)),
    );
    assert_eq!(code, 200, "{status}");
    assert!(status.contains("<Trusted>false</Trusted>"), "{status}");
    assert!(
        status.contains("<WaitingForClock>true</WaitingForClock>"),
        "{status}"
    );
    // An admin names an NTP server (the host's chronyd): kept in the store, in force at once.
    let ntp = NtpServer::start(disks);
    let key = Some((credentials.0.as_str(), credentials.1.as_str()));
    let settings_url = format!("{}/_hoard/settings/time", guest.endpoint);
    let (code, body) = curl(
        &format!("{settings_url}?ntp=10.0.2.2%3A{}", ntp.port),
        "PUT",
        key,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("10.0.2.2:{}", ntp.port)), "{body}");
    let (code, body) = curl(&format!("{settings_url}?ntp=ntp.example"), "PUT", key);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("ntp.example"), "{body}");
    // And the network, with `hoard admin network` (a static address, the one DHCP gave, and
    // a host name): kept for the next boot; the host name is in force at once.
    let admin = |args: &[&str]| {
        Command::new(crate::support::hoard_binary())
            .args(["admin", "--endpoint", &guest.endpoint])
            .args([
                "--access-key",
                &credentials.0,
                "--secret-key",
                &credentials.1,
            ])
            .arg("network")
            .args(args)
            .output()
            .expect("run hoard admin")
    };
    let out = admin(&[
        "--ip",
        "10.0.2.15/24",
        "--gateway",
        "10.0.2.2",
        "--hostname",
        "vault",
    ]);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && answer.contains("next boot"),
        "{out:?}"
    );
    let out = admin(&["--ip", "dhcp", "--gateway", "10.0.2.2"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("static"),
        "{out:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = curl(&format!("{}/_hoard/status", guest.endpoint), "GET", key);
        if status.contains("<WaitingForClock>false</WaitingForClock>") {
            assert!(
                status.contains("<Synchronized>true</Synchronized>"),
                "{status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no NTP synchronisation: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let s3 = guest.client(true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    for (key, data) in &objects {
        let out = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.e_tag().unwrap().trim_matches('"'), md5_hex(data));
    }
    let start = Instant::now();
    put_multipart(&s3, "big", &big, 10 * MIB).await;
    let put_elapsed = start.elapsed();
    let start = Instant::now();
    let back = body_bytes(
        s3.get_object()
            .bucket(BUCKET)
            .key("big")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let get_elapsed = start.elapsed();
    assert!(back == big, "the 50 MiB object read back differently");
    objects.push(("big".into(), big));
    eprintln!(
        "qemu (TCG): {boot_line}; 50 MiB multipart PUT {:.1} MiB/s, GET {:.1} MiB/s",
        mib_s(50 * MIB, put_elapsed),
        mib_s(50 * MIB, get_elapsed)
    );

    let (status, console) = guest.press_power_button();
    assert!(status.success(), "QEMU exited with {status}:\n{console}");
    for expected in ["power button pressed", "store closed cleanly", "Power down"] {
        assert!(
            console.contains(expected),
            "no {expected:?} on the console:\n{console}"
        );
    }

    // Second boot from the same disk images: nothing is formatted, everything reads back.
    let guest = Guest::boot(disks, &[], Some(&credentials));
    let console = guest.console();
    assert!(!console.contains("formatting"), "{console}");
    // The time settings were kept: the clock is set by the same NTP server at boot.
    assert!(
        guest
            .console_line("time settings (kept in the store)")
            .contains(&format!("10.0.2.2:{}", ntp.port)),
        "{console}"
    );
    assert!(console.contains("clock synchronised by NTP"), "{console}");
    assert!(
        guest
            .console_line("network settings (kept in the store)")
            .contains("10.0.2.15/24 gateway 10.0.2.2, hostname vault"),
        "{console}"
    );
    let (_, status) = curl(
        &format!("{}/_hoard/status", guest.endpoint),
        "GET",
        Some((&credentials.0, &credentials.1)),
    );
    assert!(status.contains("<Mode>static</Mode>"), "{status}");
    assert!(console.contains("metadata: member"), "{console}");
    // The same certificate, kept sealed in the store.
    assert!(
        guest
            .console_line("TLS certificate (")
            .contains("kept in the store"),
        "{console}"
    );
    assert_eq!(guest.check_https(), fingerprint);
    let s3 = guest.client(true);
    for (key, data) in &objects {
        let got = body_bytes(
            s3.get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}")),
        )
        .await;
        assert!(&got == data, "{key} read back differently after a reboot");
    }
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap()
        .key_count();
    assert_eq!(listed, Some(objects.len() as i32));
    let (status, console) = guest.press_power_button();
    assert!(status.success(), "QEMU exited with {status}:\n{console}");

    // Third boot without hdd3 and without ssd0: data degraded, the metadata served from the
    // mirror copy on ssd1, and the console says both.
    let guest = Guest::boot(disks, &["hdd3", "ssd0"], Some(&credentials));
    let console = guest.console();
    assert!(console.contains("DEGRADED: no drive for hdd3"), "{console}");
    assert!(console.contains("open DEGRADED"), "{console}");
    assert!(
        console.contains("METADATA MIRROR DEGRADED: no drive for ssd0"),
        "{console}"
    );
    // The qemu profile's buckets are ec:4+2: with one of eight HDDs gone every object reads
    // back, its lost shards reconstructed from parity.
    guest.read_all(&objects, "without hdd3", false).await;
    eprintln!(
        "qemu degraded boot: all {} objects read back without hdd3",
        objects.len()
    );
    let (status, console) = guest.press_power_button();
    assert!(status.success(), "QEMU exited with {status}:\n{console}");

    // Fourth boot with every drive, hdd3 replaced by a blank disk: ssd0 missed the third
    // boot's writes, so it is found behind its mirror and resilvered online from ssd1, and the
    // blank HDD is adopted into bay hdd3 and rebuilt, while S3 serves.
    std::fs::remove_file(disks.join("hdd3.img")).unwrap();
    let guest = Guest::boot(disks, &[], Some(&credentials));
    assert!(
        guest.console().contains("behind its mirror: resilvering"),
        "{}",
        guest.console()
    );
    assert!(
        guest
            .console()
            .contains("blank replacement, adopting (rebuild)"),
        "{}",
        guest.console()
    );
    guest
        .wait_for_status(&credentials, "ssd0 resilvered and hdd3 rebuilt", |doc| {
            doc.matches("<State>in-sync</State>").count() == 2
                && doc.contains("<LastRebuild>")
                && !doc.contains("<LostDataSlot>")
        })
        .await;
    guest
        .read_all(&objects, "after the resilver and rebuild", true)
        .await;

    // Hot-remove hdd5 while S3 serves: reads go on (its shards reconstructed from parity), the
    // store fails the drive and re-protects its shards onto the survivors.
    guest.monitor("device_del hdd5-dev");
    guest
        .read_all(&objects, "with hdd5 hot-removed", true)
        .await;
    guest
        .wait_for_status(
            &credentials,
            "hdd5 failed and its shards re-protected",
            |doc| {
                drive_state(doc, 5) == "failed"
                    && doc.contains("<RebuildPending>false</RebuildPending>")
            },
        )
        .await;

    // Hot-add a blank disk: the firmware adopts it into bay hdd5 and the store rebuilds onto it.
    let spare = disks.join("hdd5-spare.img");
    let size = std::fs::metadata(disks.join("hdd5.img")).unwrap().len();
    std::fs::File::create(&spare)
        .unwrap()
        .set_len(size)
        .unwrap();
    guest.monitor(&format!(
        "drive_add 0 if=none,id=spare5,file={},format=raw,cache=none,aio=threads",
        spare.display()
    ));
    guest.monitor("device_add scsi-hd,bus=scsi0.0,drive=spare5,id=spare5-dev,rotation_rate=7200,serial=spare5");
    guest
        .wait_for_status(
            &credentials,
            "the hot-added disk adopted into hdd5 and rebuilt",
            |doc| {
                drive_state(doc, 5) == "healthy"
                    && doc.contains("<RebuildPending>false</RebuildPending>")
            },
        )
        .await;
    assert!(
        guest.console().contains("adopted into hdd5"),
        "{}",
        guest.console()
    );
    guest
        .read_all(&objects, "after the hot-added disk was rebuilt", true)
        .await;
    let (status, console) = guest.press_power_button();
    assert!(status.success(), "QEMU exited with {status}:\n{console}");

    // Fifth boot without either metadata SSD. The HDDs belong to a store whose metadata is not
    // there, so nothing may be formatted: PID 1 says why on the console and reboots (QEMU runs
    // with -no-reboot, so it exits).
    let (status, console) = Guest::spawn(disks, &["ssd0", "ssd1"]).wait_exit();
    assert!(status.success(), "QEMU exited with {status}:\n{console}");
    for expected in ["FATAL", "metadata cannot be trusted", "rebooting"] {
        assert!(
            console.contains(expected),
            "no {expected:?} on the console:\n{console}"
        );
    }
}

/// The image on emulated server hardware (the qemu-hba profile): 12 HDDs behind an LSI
/// MegaRAID SAS 2108 (`megasas-gen2`, driven by `megaraid_sas`), 2 SSDs on AHCI (`ide-hd`
/// disks, `ahci`) and two e1000e NICs, none of it virtio. Every drive is found, matched to the
/// profile, formatted on first boot and served; objects written go through every HDD; a second
/// boot reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_finds_drives_behind_a_sas_hba_and_ahci_and_serves_over_e1000e() {
    let scratch = scratch_dir();
    let disks = scratch.path();
    let profile = repo_root().join("hwprofiles/qemu-hba.toml");
    // 8 objects of 3 MiB (one chunk each: ec:4+2 stripes spread over the 12 HDDs) and one
    // inline object.
    let objects: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("hba/{i}"), pattern(i, 3 * MIB)))
        .chain(std::iter::once((
            "hba/small".to_string(),
            pattern(99, 4096),
        )))
        .collect();
    // The guest's hardware clock starts 3 h behind; an NTP server on the host (chronyd,
    // reached at QEMU's 10.0.2.2) must set it before S3 serves, or every signed request of
    // the SDK (the host's time) would be refused as RequestTimeTooSkewed.
    let ntp = NtpServer::start(disks);
    let behind = unix_ms() / 1000 - 3 * 3600;
    let rtc_base = Command::new("date")
        .args(["-u", "-d", &format!("@{behind}"), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    let rtc_base = String::from_utf8(rtc_base.stdout)
        .unwrap()
        .trim()
        .to_string();
    let extra = [
        "--serial-input".to_string(),
        "--rtc-base".to_string(),
        rtc_base,
        "--append".to_string(),
        format!("hoard.ntp=10.0.2.2:{}", ntp.port),
    ];
    let mut guest = Guest::boot_profile(disks, &[], None, Some(&profile), &extra);
    let console = guest.console();
    assert!(
        console.contains("14 block device(s); profile qemu-hba"),
        "{console}"
    );
    // The address came from QEMU's DHCP server; the clock was stepped by ~3 h.
    assert!(
        console.contains("10.0.2.15/24 by DHCP from 10.0.2.2"),
        "{console}"
    );
    let synced = guest.console_line("clock synchronised by NTP");
    let step_s: f64 = synced
        .split("offset ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{synced}"));
    assert!((step_s - 10_800.0).abs() < 5.0, "{synced}");
    eprintln!(
        "appliance_qemu: {}\nappliance_qemu: {}",
        guest.console_line("by DHCP from").trim(),
        synced.trim()
    );
    let credentials = guest.credentials.clone();
    let status_url = format!("{}/_hoard/status", guest.endpoint);
    let (code, status) = curl(&status_url, "GET", Some((&credentials.0, &credentials.1)));
    assert_eq!(code, 200, "{status}");
    assert!(status.contains("<Mode>dhcp</Mode>"), "{status}");
    assert!(
        status.contains("<Server>10.0.2.2</Server>"),
        "the lease: {status}"
    );
    assert!(
        status.contains("<Synchronized>true</Synchronized>"),
        "{status}"
    );
    assert!(
        status.contains("<WaitingForClock>false</WaitingForClock>"),
        "{status}"
    );
    check_clock(&guest, &credentials);
    check_status_screen(&mut guest);
    for slot in 0..12 {
        assert_eq!(
            drive_state(&status, slot),
            "healthy",
            "HDD {slot}: {status}"
        );
    }
    assert_eq!(
        status.matches("<MetadataSsd>").count(),
        2,
        "both AHCI SSDs hold the metadata mirror: {status}"
    );
    let s3 = guest.client(true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    for (key, data) in &objects {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    guest.read_all(&objects, "after the first boot", true).await;
    check_failover(&guest, &s3, &credentials).await;
    let (status, console) = guest.press_power_button();
    assert!(status.success(), "{console}");

    // The second boot may reboot: its watchdog (QEMU's i6300esb, 15 s in this profile) must
    // reset a machine whose store is wedged. Both metadata SSDs are throttled to 1 byte/s, so
    // no durable metadata write completes; once PID 1 says it stopped petting, the throttle is
    // lifted (the machine stays condemned) and the reset and a clean second boot must follow.
    let reboot = ["--allow-reboot".to_string()];
    let guest = Guest::boot_profile(disks, &[], Some(&credentials), Some(&profile), &reboot);
    assert!(
        guest.console().contains("watchdog i6300esb armed: 15 s"),
        "{}",
        guest.console()
    );
    guest.read_all(&objects, "after a reboot", true).await;
    let wedged_at = Instant::now();
    for ssd in ["ssd0", "ssd1"] {
        guest.monitor(&format!("block_set_io_throttle {ssd} 1 0 0 0 0 0"));
    }
    let wait_for = |what: &str, count: usize, within: Duration| {
        let deadline = Instant::now() + within;
        while guest.console().matches(what).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {what:?} (x{count}) within {within:?}:\n{}",
                guest.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Instant::now()
    };
    let stopped = wait_for("watchdog: wedged", 1, Duration::from_secs(60));
    for ssd in ["ssd0", "ssd1"] {
        guest.monitor(&format!("block_set_io_throttle {ssd} 0 0 0 0 0 0"));
    }
    // The i6300esb fires in two stages of the timeout each: up to 30 s after the last pet.
    let reset = wait_for(FIRMWARE_BANNER, 2, Duration::from_secs(120));
    wait_for("S3 ready", 2, Duration::from_secs(300));
    eprintln!(
        "appliance_qemu: watchdog: wedged {:.1} s after the SSDs stalled, reset {:.1} s after that",
        (stopped - wedged_at).as_secs_f64(),
        (reset - stopped).as_secs_f64()
    );
    guest
        .read_all(&objects, "after the watchdog's reset", true)
        .await;
    let (status, console) = guest.press_power_button();
    assert!(status.success(), "{console}");
}
