//! The release `hoard serve` under test, for the S3 benchmarks (`#[path]`-included by each):
//! started on a data directory with fixed bench credentials, its resident memory read from
//! /proc, stopped cleanly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "HOARDBENCHACCESSKEY1";
pub const SECRET_KEY: &str = "hoard-bench-secret-key-0123456789abcdef";

/// `path` as given, or, when relative and not found there, from the workspace root (cargo
/// runs benchmarks in `benches/`).
pub fn from_workspace(path: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    }
    path.to_path_buf()
}

pub fn hoard_binary() -> PathBuf {
    let path = std::env::var_os("HOARD_BIN")
        .map(|p| from_workspace(Path::new(&p)))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/hoard"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p hoard-appliance` (or set HOARD_BIN)",
        path.display()
    );
    path
}

/// The number in environment variable `name`, or `default` when it is unset or no number.
#[allow(dead_code)] // not every benchmark that includes this file reads settings so
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of `pid` and its children's threads (nginx's workers), from
/// /proc.
#[allow(dead_code)] // not every benchmark that includes this file measures CPU
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ: /proc's unit on every Linux
    let mut pids = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let system: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (user + system) / ticks
        })
        .sum()
}

/// `hoard serve` on `data`, killed on drop.
pub struct Server {
    child: Child,
    #[allow(dead_code)] // not every benchmark that includes this file reads it
    pub endpoint: String,
}

impl Server {
    #[allow(dead_code)] // not every benchmark that includes this file starts it so
    pub fn start(data: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Server::start_with(&hoard_binary(), data, port)
    }

    /// `bin serve` on `data`, listening on 127.0.0.1:`port`.
    #[allow(dead_code)] // not every benchmark that includes this file starts it so
    pub fn start_with(bin: &Path, data: &Path, port: u16) -> Server {
        Server::start_args(bin, data, port, &[])
    }

    /// `bin serve ARGS` on `data`, listening on 127.0.0.1:`port`.
    pub fn start_args(bin: &Path, data: &Path, port: u16, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("HOARD_ACCESS_KEY", ACCESS_KEY)
            .env("HOARD_SECRET_KEY", SECRET_KEY)
            .env("HOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn hoard serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("serving S3") => break,
                Some(_) => {}
                None => panic!("hoard serve exited before serving"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The server's process ID.
    #[allow(dead_code)] // not every benchmark that includes this file reads it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) of the server in bytes.
    pub fn resident_bytes(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|r| r.trim().strip_suffix("kB"))
                .and_then(|k| k.trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM: a clean close, so the next start replays nothing.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "bench",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}
