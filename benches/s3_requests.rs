//! Request rates of the S3 front door for small objects, with nginx serving the same bytes in
//! the same run as the limit and older builds as baselines: wrk (2 threads, 32 connections)
//! against presigned SigV4 URLs (query auth, so every request is authenticated and
//! authorized), the release `hoard serve` on the dev profile.
//!
//! ```text
//! cargo build --release -p hoard-appliance       # the server under test
//! cargo bench -p hoard-benches --bench s3_requests
//! HOARD_BIN="target/hoard-old target/release/hoard" cargo bench -p hoard-benches --bench s3_requests
//! ```
//!
//! Settings (environment): `HOARD_BIN` (one or more builds, side by side; default
//! `target/release/hoard`), `S3_REQUESTS_SECONDS` (per test, default 8),
//! `S3_REQUESTS_CONNECTIONS` (default 32), `S3_REQUESTS_ONLY` (run only tests whose name
//! contains it), `S3_REQUESTS_BUSY_LOOP=1` (two niced busy loops keep the vCPUs awake: an idle
//! vCPU's wake-up latency otherwise dominates servers that hand requests between threads).
//! Needs wrk and nginx (`apt-get install --no-install-recommends wrk nginx-light`).
//!
//! Tests: GET and PUT of 4 KiB (inline in the index) and 64 KiB (in segments, ec:2+1 on
//! the dev profile) objects, PUT to one key and to a new key each, ListObjectsV2 of 1000 keys,
//! DeleteObject (HEAD is not among them: wrk 4.1 waits for
//! a HEAD answer's body); the 4 KiB GET and PUT again in a bucket with a policy, an ACL grant, CORS
//! rules (each request sends an `Origin`) and a lifecycle rule (answers carry
//! `x-amz-expiration`). Each line prints req/s, latency p50/p99/p99.9 (wrk's, corrected for
//! coordinated omission it is not: a closed loop of 32 connections), server CPU per request
//! (/proc/PID/stat), the ratio to nginx's rate for the same test, and the server's time per
//! request by stage (the `hoard_request_stage_seconds_total` counters of `/_hoard/metrics`,
//! when the build has them: wall time, waits included, so a PUT's `engine` stage is mostly its
//! group commit's fdatasync and a 64 KiB GET's `handler` its wait for a data stream permit).
//! Not a timed test: developers run it and report the table.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{client, cpu_seconds, env_number, Server};

const PORT: u16 = 19180;
const NGINX_PORT: u16 = 18180;
const SMALL_BYTES: usize = 4 << 10;
const MEDIUM_BYTES: usize = 64 << 10;
const LISTED_KEYS: usize = 1000;
const ORIGIN: &str = "https://app.example.com";

/// One wrk run: the method, the file of request paths (cycled), the body size, whether an
/// `Origin` header goes with it.
struct Load {
    name: &'static str,
    method: &'static str,
    paths: PathBuf,
    body_bytes: usize,
    origin: bool,
    /// Headers sent with every request (`name: value`): a header-signed request's.
    headers: Vec<String>,
}

/// What wrk measured.
struct Outcome {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    cpu_us_per_request: f64,
    stages_us: BTreeMap<String, f64>,
}

const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  method = args[1]
  paths = {}
  for line in io.lines(args[2]) do paths[#paths + 1] = line end
  step = tonumber(args[3])
  local size = tonumber(args[4])
  if size > 0 then body = string.rep("x", size) end
  if args[5] ~= "" then wrk.headers["Origin"] = args[5] end
  for k = 6, #args do
    local name, value = args[k]:match("^([^:]+): (.*)$")
    wrk.headers[name] = value
  end
  i = id
end
function request()
  local path = paths[(i % #paths) + 1]
  i = i + step
  return wrk.format(method, path, nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9)))
end
"#;

fn seconds() -> u64 {
    env_number("S3_REQUESTS_SECONDS", 8)
}

fn connections() -> u64 {
    env_number("S3_REQUESTS_CONNECTIONS", 32)
}

/// The server's stage counters (`hoard_request_stage_seconds_total{stage="..."}`), seconds.
fn stage_seconds(metrics_url: Option<&str>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(url) = metrics_url else { return out };
    // An admin request, signed in the Authorization header (curl signs it).
    let user = format!("{}:{}", s3_server::ACCESS_KEY, s3_server::SECRET_KEY);
    let empty_sha256 =
        "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let signed = [
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        &user,
        "-H",
        empty_sha256,
    ];
    let Ok(o) = Command::new("curl")
        .arg("-sf")
        .args(signed)
        .arg(url)
        .output()
    else {
        return out;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let Some(rest) = line.strip_prefix("hoard_request_stage_seconds_total{stage=\"") else {
            continue;
        };
        if let Some((stage, value)) = rest.split_once("\"} ") {
            if let Ok(v) = value.trim().parse::<f64>() {
                out.insert(stage.to_string(), v);
            }
        }
    }
    out
}

fn run_wrk(
    base: &str,
    load: &Load,
    server_pid: u32,
    metrics_url: Option<&str>,
    work: &Path,
) -> Outcome {
    let script = work.join("load.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let threads = 2;
    let cpu0 = cpu_seconds(server_pid);
    let stages0 = stage_seconds(metrics_url);
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections().to_string()])
        .args(["-d", &format!("{}s", seconds())])
        .arg("-s")
        .arg(&script)
        .arg(base)
        .arg("--")
        .arg(load.method)
        .arg(&load.paths)
        .arg(threads.to_string())
        .arg(load.body_bytes.to_string())
        .arg(if load.origin { ORIGIN } else { "" })
        .args(&load.headers)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let cpu1 = cpu_seconds(server_pid);
    let stages1 = stage_seconds(metrics_url);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("wrk printed no result: {text}"));
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (requests, status_errors, socket_errors, duration_us) = (v[0], v[1], v[2], v[3]);
    assert!(
        status_errors == 0.0,
        "{}: {status_errors} of {requests} answers were not 2xx",
        load.name
    );
    if socket_errors > 0.0 {
        eprintln!("{}: {socket_errors} socket errors", load.name);
    }
    let n = requests.max(1.0);
    let stages_us = stages1
        .iter()
        .map(|(k, v)| {
            let before = stages0.get(k).copied().unwrap_or(0.0);
            (k.clone(), (v - before) * 1e6 / n)
        })
        .collect();
    Outcome {
        rate: requests / (duration_us / 1e6),
        p50_ms: v[4] / 1e3,
        p99_ms: v[5] / 1e3,
        p999_ms: v[6] / 1e3,
        cpu_us_per_request: (cpu1 - cpu0) * 1e6 / n,
        stages_us,
    }
}

fn write_paths(work: &Path, name: &str, urls: &[String]) -> PathBuf {
    let path = work.join(format!("{name}.paths"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for url in urls {
        // wrk takes the host from its base URL; the file holds path and query.
        let at = url.find("://").map_or(0, |i| i + 3);
        let path_and_query = &url[at + url[at..].find('/').unwrap_or(url.len() - at)..];
        writeln!(f, "{path_and_query}").unwrap();
    }
    path
}

/// Presigned URLs (valid an hour) for every test, the same for every build (same port).
async fn presign_all(s3: &Client, work: &Path) -> Vec<Load> {
    let config = || PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap();
    let mut loads = Vec::new();
    let new_keys = |rate: u64| (seconds() * rate) as usize;
    macro_rules! presign {
        ($req:expr) => {
            $req.presigned(config()).await.unwrap().uri().to_string()
        };
    }
    for (bucket, tag, origin) in [("plain", "", false), ("configured", " (configured)", true)] {
        let get = presign!(s3.get_object().bucket(bucket).key("small"));
        loads.push(Load {
            name: leak(format!("GET 4 KiB{tag}")),
            method: "GET",
            paths: write_paths(work, &format!("get-small-{bucket}"), &[get]),
            body_bytes: 0,
            origin,
            headers: Vec::new(),
        });
        let mut urls = Vec::new();
        for i in 0..new_keys(20_000) {
            urls.push(presign!(s3
                .put_object()
                .bucket(bucket)
                .key(format!("new/{i:07}"))));
        }
        loads.push(Load {
            name: leak(format!("PUT 4 KiB, a new key each{tag}")),
            method: "PUT",
            paths: write_paths(work, &format!("put-small-new-{bucket}"), &urls),
            body_bytes: SMALL_BYTES,
            origin,
            headers: Vec::new(),
        });
        if !origin {
            let mut deletes = Vec::new();
            for i in 0..new_keys(20_000) {
                deletes.push(presign!(s3
                    .delete_object()
                    .bucket(bucket)
                    .key(format!("new/{i:07}"))));
            }
            loads.push(Load {
                name: "DeleteObject (the keys PUT above)",
                method: "DELETE",
                paths: write_paths(work, "delete-new", &deletes),
                body_bytes: 0,
                origin,
                headers: Vec::new(),
            });
        }
    }
    let b = "plain";
    let one = |name: &'static str, method, file: &str, url: String, body_bytes| Load {
        name,
        method,
        paths: write_paths(work, file, &[url]),
        body_bytes,
        origin: false,
        headers: Vec::new(),
    };
    loads.push(one(
        "GET 64 KiB",
        "GET",
        "get-medium",
        presign!(s3.get_object().bucket(b).key("medium")),
        0,
    ));
    loads.push(one(
        "PUT 4 KiB, one key",
        "PUT",
        "put-small-one",
        presign!(s3.put_object().bucket(b).key("one-small")),
        SMALL_BYTES,
    ));
    loads.push(one(
        "PUT 64 KiB, one key",
        "PUT",
        "put-medium-one",
        presign!(s3.put_object().bucket(b).key("one-medium")),
        MEDIUM_BYTES,
    ));
    let mut urls = Vec::new();
    for i in 0..new_keys(8_000) {
        urls.push(presign!(s3
            .put_object()
            .bucket(b)
            .key(format!("medium-new/{i:07}"))));
    }
    loads.push(Load {
        name: "PUT 64 KiB, a new key each",
        method: "PUT",
        paths: write_paths(work, "put-medium-new", &urls),
        body_bytes: MEDIUM_BYTES,
        origin: false,
        headers: Vec::new(),
    });
    // The SDK presigns no listing: signed in the header, valid 15 minutes from now.
    let query: Vec<(String, String)> = [
        ("list-type", "2"),
        ("prefix", "list/"),
        ("max-keys", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let amz_date = hoard_s3::protocol::dates::amz_date(hoard_s3::protocol::dates::now_secs());
    let headers = hoard_s3::auth::sigv4::sign_empty_request(
        "GET",
        &format!("127.0.0.1:{PORT}"),
        &format!("/{b}"),
        &query,
        "us-east-1",
        s3_server::ACCESS_KEY,
        s3_server::SECRET_KEY,
        &amz_date,
    );
    loads.push(Load {
        name: "ListObjectsV2 of 1000",
        method: "GET",
        paths: write_paths(
            work,
            "list",
            &[format!(
                "http://h/{b}?list-type=2&prefix=list%2F&max-keys=1000"
            )],
        ),
        body_bytes: 0,
        origin: false,
        headers: headers
            .into_iter()
            .filter(|(name, _)| name != "host")
            .map(|(name, value)| format!("{name}: {value}"))
            .collect(),
    });
    // In the order run: reads, then writes, then the deletes of what was written.
    let order = |l: &Load| match l.method {
        "GET" | "HEAD" => 0,
        "PUT" => 1,
        _ => 2,
    };
    loads.sort_by_key(order);
    loads
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The buckets and objects every build is measured on.
async fn populate(s3: &Client) {
    let small = vec![7u8; SMALL_BYTES];
    let medium = vec![9u8; MEDIUM_BYTES];
    for bucket in ["plain", "configured"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
        for (key, data) in [("small", &small), ("medium", &medium)] {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
        }
    }
    for i in 0..LISTED_KEYS {
        s3.put_object()
            .bucket("plain")
            .key(format!("list/{i:04}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    use aws_sdk_s3::types::*;
    let c = "configured";
    // A policy evaluated on every request (a Deny whose condition does not match loopback).
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyLoopback","Effect":"Deny",
        "Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::configured","arn:aws:s3:::configured/*"],
        "Condition":{"NotIpAddress":{"aws:SourceIp":["127.0.0.0/8"]}}}]}"#;
    s3.put_bucket_policy()
        .bucket(c)
        .policy(policy)
        .send()
        .await
        .unwrap();
    s3.put_bucket_acl()
        .bucket(c)
        .acl(BucketCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap();
    let cors = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins(ORIGIN)
                .allowed_methods("GET")
                .allowed_methods("PUT")
                .allowed_headers("*")
                .expose_headers("ETag")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket(c)
        .cors_configuration(cors)
        .send()
        .await
        .unwrap();
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("expire-new")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(LifecycleExpiration::builder().days(365).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket(c)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .unwrap();
}

/// nginx serving the same objects as static files (PUT through its DAV module), killed on
/// drop.
struct Nginx {
    prefix: PathBuf,
    pid: u32,
}

impl Nginx {
    fn start(work: &Path) -> Option<Nginx> {
        if Command::new("nginx").arg("-v").output().is_err() {
            eprintln!("s3_requests: nginx is missing (apt-get install nginx-light): no reference");
            return None;
        }
        let prefix = work.join("nginx");
        let www = prefix.join("www");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("small"), vec![7u8; SMALL_BYTES]).unwrap();
        std::fs::write(www.join("medium"), vec![9u8; MEDIUM_BYTES]).unwrap();
        let conf = format!(
            "worker_processes auto;\npid nginx.pid;\nerror_log logs/error.log;\nuser root;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {p}/body; client_max_body_size 1m;\n\
             server {{ listen 127.0.0.1:{NGINX_PORT}; root {p}/www;\n\
             location / {{ dav_methods PUT DELETE; }} }} }}\n",
            p = prefix.display()
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let status = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .args(["-c", "nginx.conf"])
            .status()
            .unwrap();
        assert!(status.success(), "nginx did not start");
        std::thread::sleep(Duration::from_millis(300));
        let pid = std::fs::read_to_string(prefix.join("nginx.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Some(Nginx { prefix, pid })
    }

    /// Its version of a test, where nginx has one (static GET/HEAD/PUT).
    fn load(&self, work: &Path, load: &Load) -> Option<Load> {
        let (path, body_bytes) = match load.name {
            "GET 4 KiB" => ("/small", 0),
            "GET 64 KiB" => ("/medium", 0),
            "PUT 4 KiB, one key" => ("/put-small", SMALL_BYTES),
            "PUT 64 KiB, one key" => ("/put-medium", MEDIUM_BYTES),
            _ => return None,
        };
        let file = work.join(format!("nginx{}.paths", path.replace('/', "-")));
        std::fs::write(&file, format!("{path}\n")).unwrap();
        Some(Load {
            name: load.name,
            method: load.method,
            paths: file,
            body_bytes,
            origin: false,
            headers: Vec::new(),
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .args(["-c", "nginx.conf", "-s", "stop"])
            .status();
    }
}

/// Two niced busy loops (`S3_REQUESTS_BUSY_LOOP=1`), killed on drop.
struct BusyLoops(Vec<Child>);

impl BusyLoops {
    fn start() -> BusyLoops {
        if std::env::var("S3_REQUESTS_BUSY_LOOP").as_deref() != Ok("1") {
            return BusyLoops(Vec::new());
        }
        BusyLoops(
            (0..2)
                .map(|_| {
                    Command::new("nice")
                        .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn print_row(test: &str, server: &str, o: &Outcome, reference: Option<f64>) {
    let ratio = reference.map_or("".to_string(), |r| format!("{:.2}x", o.rate / r));
    let stages: Vec<String> = o
        .stages_us
        .iter()
        .filter(|(_, us)| **us > 0.05)
        .map(|(k, us)| format!("{k} {us:.1}"))
        .collect();
    println!(
        "{test:<40} {server:<24} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>8.1} {:>7} {}",
        o.rate,
        o.p50_ms,
        o.p99_ms,
        o.p999_ms,
        o.cpu_us_per_request,
        ratio,
        stages.join(", ")
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored (use S3_REQUESTS_ONLY).
    let only = std::env::var("S3_REQUESTS_ONLY").unwrap_or_default();
    let bins: Vec<PathBuf> = match std::env::var("HOARD_BIN") {
        Ok(v) => v
            .split_whitespace()
            .map(|p| s3_server::from_workspace(Path::new(p)))
            .collect(),
        Err(_) => vec![s3_server::hoard_binary()],
    };
    for bin in &bins {
        assert!(bin.exists(), "{} is missing", bin.display());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let work = tempfile::Builder::new()
        .prefix("s3-requests.")
        .tempdir_in(&root)
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let endpoint = format!("http://127.0.0.1:{PORT}");
    let s3 = client(&endpoint);
    let started = std::time::Instant::now();
    let loads: Vec<Load> = runtime
        .block_on(presign_all(&s3, work.path()))
        .into_iter()
        .filter(|l| l.name.contains(only.as_str()))
        .collect();
    eprintln!(
        "s3_requests: {} tests presigned in {:.1} s; {} s each, {} connections, wrk -t2{}",
        loads.len(),
        started.elapsed().as_secs_f64(),
        seconds(),
        connections(),
        if std::env::var("S3_REQUESTS_BUSY_LOOP").as_deref() == Ok("1") {
            ", with busy loops"
        } else {
            ""
        }
    );
    let _busy = BusyLoops::start();
    println!(
        "{:<40} {:<24} {:>8} {:>7} {:>7} {:>8} {:>8} {:>7} stage wall µs/req",
        "test", "server", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU µs", "÷nginx"
    );
    let mut reference: BTreeMap<&str, f64> = BTreeMap::new();
    if let Some(nginx) = Nginx::start(work.path()) {
        let base = format!("http://127.0.0.1:{NGINX_PORT}");
        for load in &loads {
            if let Some(l) = nginx.load(work.path(), load) {
                let o = run_wrk(&base, &l, nginx.pid, None, work.path());
                print_row(load.name, "nginx", &o, None);
                reference.insert(load.name, o.rate);
            }
        }
    }
    for (i, bin) in bins.iter().enumerate() {
        let data = work.path().join(format!("hoard{i}"));
        let server = Server::start_with(bin, &data, PORT);
        runtime.block_on(populate(&s3));
        let metrics_url = Some(format!("{endpoint}/_hoard/metrics"));
        let label = format!(
            "{} {}",
            i + 1,
            bin.file_name().unwrap_or_default().to_string_lossy()
        );
        for load in &loads {
            let o = run_wrk(
                &endpoint,
                load,
                server.pid(),
                metrics_url.as_deref(),
                work.path(),
            );
            print_row(load.name, &label, &o, reference.get(load.name).copied());
        }
        let (_, peak) = server.resident_bytes();
        println!(
            "{:<40} {label:<24} peak RSS {} MiB",
            "(after the run)",
            peak >> 20
        );
        server.stop();
    }
}
