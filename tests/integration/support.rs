//! Test support: start and stop the real `hoard` binary, build aws-sdk-s3 clients, make data.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "hoard-test-access";
pub const SECRET_KEY: &str = "hoard-test-secret-key-0123456789";

/// Path of the `hoard` binary: `HOARD_BIN`, else `target/<profile>/hoard` beside this test.
pub fn hoard_binary() -> PathBuf {
    if let Ok(p) = std::env::var("HOARD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("hoard");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p hoard-appliance)",
        bin.display()
    );
    bin
}

/// The optimized `hoard` for long runs: `HOARD_BIN`, else the appliance image's static release
/// build (`target/x86_64-unknown-linux-gnu/release/hoard`, from `appliance/scripts/build-image`)
/// when it is at least as new as the debug build beside this test (so never a stale one), else
/// the debug build.
pub fn optimized_binary() -> PathBuf {
    let debug = hoard_binary();
    if std::env::var_os("HOARD_BIN").is_some() {
        return debug;
    }
    let target = debug
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let release = target.join("x86_64-unknown-linux-gnu/release/hoard");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&release), modified(&debug)) {
        (Some(r), Some(d)) if r >= d => release,
        _ => debug,
    }
}

/// Scratch directory on a filesystem with O_DIRECT (not tmpfs): under the target directory.
pub fn scratch_dir() -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("test executable path");
    let base = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("test-scratch");
    std::fs::create_dir_all(&base).expect("create scratch base");
    tempfile::tempdir_in(base).expect("create scratch dir")
}

/// A running `hoard serve`.
pub struct Server {
    child: Option<Child>,
    stdout: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    pub endpoint: String,
    pub data: PathBuf,
    _scratch: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Server {
        let scratch = scratch_dir();
        let mut s = Server::start_in(scratch.path(), None);
        s._scratch = Some(scratch);
        s
    }

    /// Starts a server on `data` (reusing its devices), on `port` if given.
    pub fn start_in(data: &Path, port: Option<u16>) -> Server {
        Server::start_with_key(data, port, ACCESS_KEY, SECRET_KEY)
    }

    /// Starts a server on `data` whose configured key pair is `access`/`secret` (an empty
    /// `access` leaves the key pair to the server: kept in `data`, or generated).
    pub fn start_with_key(data: &Path, port: Option<u16>, access: &str, secret: &str) -> Server {
        Server::start_with(data, port, access, secret, None)
    }

    /// Starts a server on `data` with the profile file `profile`.
    pub fn start_with_profile(data: &Path, profile: &Path) -> Server {
        Server::start_with(data, None, ACCESS_KEY, SECRET_KEY, Some(profile))
    }

    /// [`Server::start_with_profile`] running the binary `bin`.
    pub fn start_binary_with_profile(bin: &Path, data: &Path, profile: &Path) -> Server {
        Server::start_bin(bin, data, None, ACCESS_KEY, SECRET_KEY, Some(profile))
    }

    fn start_with(
        data: &Path,
        port: Option<u16>,
        access: &str,
        secret: &str,
        profile: Option<&Path>,
    ) -> Server {
        Server::start_bin(&hoard_binary(), data, port, access, secret, profile)
    }

    fn start_bin(
        bin: &Path,
        data: &Path,
        port: Option<u16>,
        access: &str,
        secret: &str,
        profile: Option<&Path>,
    ) -> Server {
        let port = port.unwrap_or_else(free_port);
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--data"]).arg(data);
        if let Some(p) = profile {
            cmd.arg("--profile").arg(p);
        }
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("HOARD_ACCESS_KEY")
            .env_remove("HOARD_SECRET_KEY")
            .env("HOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !access.is_empty() {
            cmd.env("HOARD_ACCESS_KEY", access)
                .env("HOARD_SECRET_KEY", secret);
        }
        let mut child = cmd.spawn().expect("spawn hoard");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ready = line.contains("serving S3");
                kept.lock().push(line);
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("hoard exited before serving: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "hoard did not start serving within 60 s"
            );
        }
        Server {
            child: Some(child),
            stdout: lines,
            endpoint: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
            _scratch: None,
        }
    }

    /// The status document (`GET /_hoard/status`, signed with the test's admin key).
    pub fn status(&self) -> String {
        let (code, body) = curl(
            &format!("{}/_hoard/status", self.endpoint),
            "GET",
            Some((ACCESS_KEY, SECRET_KEY)),
        );
        assert_eq!(code, 200, "{body}");
        body
    }

    /// What the server printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().join("\n")
    }

    /// A client with aws-sdk-s3's defaults (checksums on), path-style addressing.
    pub fn client(&self) -> Client {
        client_with(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `timeout` for the server to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().ok()? {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().ok()?.code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn client_with(endpoint: &str, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access, secret, None, None, "hoard-tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// The S3 error code of an SDK error, if it carries one.
pub fn error_code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string)
}

/// HTTP status of an SDK error's raw response.
pub fn error_status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

pub async fn body_bytes(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("read body")
        .into_bytes()
        .to_vec()
}

/// A number in an XML document: the text of the first `<tag>`.
pub fn xml_number(doc: &str, tag: &str) -> u64 {
    let open = format!("<{tag}>");
    let start = doc
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {doc}"))
        + open.len();
    let end = doc[start..].find('<').expect("closing tag") + start;
    doc[start..end].parse().expect("a number")
}

/// Runs curl, signing with its own SigV4 implementation (`--aws-sigv4`) when `credentials` are
/// given; returns (HTTP status, body).
pub fn curl(url: &str, method: &str, credentials: Option<(&str, &str)>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-w", "\n%{http_code}", url]);
    if let Some((access, secret)) = credentials {
        cmd.args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{access}:{secret}")])
            // S3 requires the payload hash header; curl sends it only when told to.
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    (
        status.trim().parse().expect("an HTTP status"),
        body.to_string(),
    )
}

/// Fault-injecting devices for engine tests, kept as media images across opens: a metadata
/// image, then one image per data slot. Each open builds fresh devices from the images; a
/// crash (or a clean close) keeps what the devices hold durably.
pub struct Rig {
    /// Metadata image, then the data images.
    pub images: Vec<Vec<u8>>,
    /// Controls of the devices of the last open (same order as `images`).
    pub controls: Vec<hoard::device::fault::FaultControl>,
    /// The engine configuration stores open with.
    pub config: hoard::EngineConfig,
}

impl Rig {
    /// Blank media: `meta_bytes` of metadata and `hdds` data devices of `data_bytes`.
    pub fn blank(
        config: hoard::EngineConfig,
        meta_bytes: usize,
        data_bytes: usize,
        hdds: usize,
    ) -> Rig {
        let mut images = vec![vec![0u8; meta_bytes]];
        images.extend((0..hdds).map(|_| vec![0u8; data_bytes]));
        Rig {
            images,
            controls: Vec::new(),
            config,
        }
    }

    /// The same images under new controls (to mix images of several rigs).
    pub fn copy(&self) -> Rig {
        Rig {
            images: self.images.clone(),
            controls: Vec::new(),
            config: self.config.clone(),
        }
    }

    /// Opens a store on every device.
    pub fn open(&mut self, format: bool) -> hoard::Result<hoard::Store> {
        self.open_without(format, &[])
    }

    /// Opens with the data devices of `missing_data` (0-based data slots) left out.
    pub fn open_without(
        &mut self,
        format: bool,
        missing_data: &[usize],
    ) -> hoard::Result<hoard::Store> {
        use hoard::device::{fault::FaultBackend, Device};
        self.controls.clear();
        let mut devices = Vec::new();
        for (i, image) in self.images.iter().enumerate() {
            let size = image.len() as u64;
            let (backend, control) = FaultBackend::from_image(image.clone());
            self.controls.push(control);
            devices.push(std::sync::Arc::new(Device::with_backend(
                &format!("fault{i}"),
                size,
                Box::new(backend),
            )));
        }
        let meta = devices.remove(0);
        hoard::Store::open_devices(
            hoard::StoreDevices {
                meta: vec![Some(meta)],
                data: devices
                    .into_iter()
                    .enumerate()
                    .map(|(slot, d)| (!missing_data.contains(&slot)).then_some(d))
                    .collect(),
            },
            self.config.clone(),
            format,
        )
    }

    /// What the media hold after a power cut now.
    pub fn crash(&mut self) {
        self.images = self
            .controls
            .iter()
            .map(hoard::device::fault::FaultControl::durable_image)
            .collect();
    }

    /// Closes `store` cleanly and keeps what the media hold.
    pub fn close(&mut self, store: hoard::Store) {
        store.close().unwrap();
        drop(store);
        self.crash();
    }
}

/// Blank fault devices on the tiny profile: 8 MiB of metadata and `hdds` data devices of
/// 24 MiB.
pub fn fault_media(hdds: usize) -> Rig {
    Rig::blank(tiny_profile(hdds).derive(), 8 << 20, 24 << 20, hdds)
}

/// Object sizes around the tiny profile's inline threshold (4 KiB) and chunk size (64 KiB).
pub const TINY_SIZES: [usize; 7] = [0, 3_000, 5_000, 65_536, 65_537, 300_000, 1_000_003];

/// The whole object, read through the engine.
pub fn read_object(store: &hoard::Store, bucket: &str, key: &str) -> hoard::Result<Vec<u8>> {
    let mut reader = store.get_object(bucket, key, None)?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).map_err(hoard::Error::Body)?;
    Ok(out)
}

/// A profile of tiny devices with `hdds` data devices (64 KiB chunks, 1 MiB segments).
pub fn tiny_profile(hdds: usize) -> hoard::Profile {
    tiny_profile_with(hdds, "")
}

/// [`tiny_profile`] with `extra` TOML appended (a `[[pool]]`, say).
pub fn tiny_profile_with(hdds: usize, extra: &str) -> hoard::Profile {
    small_profile(hdds, 256 << 20, extra)
}

/// A tiny-device profile with `hdds` data devices of `hdd_bytes` and `extra` TOML appended
/// (`[engine]` keys may follow: it ends inside `[engine]`).
pub fn small_profile(hdds: usize, hdd_bytes: u64, extra: &str) -> hoard::Profile {
    hoard::Profile::parse(&small_profile_toml(hdds, hdd_bytes, extra)).unwrap()
}

/// The TOML of [`small_profile`].
pub fn small_profile_toml(hdds: usize, hdd_bytes: u64, extra: &str) -> String {
    let files: Vec<String> = (0..hdds).map(|i| format!("\"hdd{i}.img\"")).collect();
    format!(
        r#"
name = "tiny"
description = "tiny devices for engine tests"
[chassis]
cpu_cores = 2
memory_bytes = 1_073_741_824
[ssd]
count = 1
size_bytes = 67_108_864
seq_mb_s = 1000
random_read_iops = 10000
[hdd]
count = {hdds}
size_bytes = {hdd_bytes}
seq_mb_s = 1000
random_read_iops = 10000
[files]
ssd = ["ssd0.img"]
hdd = [{}]
[engine]
chunk_size_bytes = 65536
segment_size_bytes = 1048576
wal_size_bytes = 262144
{extra}
"#,
        files.join(", ")
    )
}
