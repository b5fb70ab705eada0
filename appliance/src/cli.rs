//! The `hoard` command line: `hoard serve` and `hoard profile show`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hoard::device::IoBackend;
use hoard::{Profile, Store, StoreOptions};

use hoard_s3::{Credentials, S3Config};

/// The dev profile, built in so `hoard serve` works with no arguments.
pub const DEV_PROFILE: &str = include_str!("../../hwprofiles/dev.toml");

/// Hoard: an object store for one high-capacity chassis.
#[derive(Parser, Debug)]
#[command(name = "hoard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve S3 from a store on the profile's devices (formatting blank devices on first start).
    Serve(ServeArgs),
    /// Print the space of a stopped store: per drive and for the pool, raw, used, live, free
    /// and reclaimable bytes and the reserve (a running server shows the same in
    /// `GET /_hoard/status`).
    Space {
        /// Hardware profile (TOML); default: the built-in dev profile.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Directory of the device files.
        #[arg(long, default_value = "./hoard-data")]
        data: PathBuf,
        /// Recount live space from every record and compare (exit 1 on a mismatch).
        #[arg(long)]
        check: bool,
    },
    /// Call a running server's admin requests: accounts, users, access keys, temporary
    /// credentials, status, scrub.
    Admin(crate::admin::AdminArgs),
    /// Hardware profiles.
    Profile {
        /// What to do with a profile.
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Firmware image tools (used by appliance/scripts/build-image).
    Firmware {
        /// What to do.
        #[command(subcommand)]
        action: FirmwareAction,
    },
}

/// `hoard firmware ...`
#[derive(Subcommand, Debug)]
pub enum FirmwareAction {
    /// Copy kernel modules and everything they depend on (read from each module's .modinfo)
    /// into one flat folder, and print them in load order.
    PackModules {
        /// A kernel's module tree (`lib/modules/<version>`).
        #[arg(long)]
        tree: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Module names (`virtio_scsi`).
        #[arg(required = true)]
        modules: Vec<String>,
    },
}

/// `hoard profile ...`
#[derive(Subcommand, Debug)]
pub enum ProfileAction {
    /// Print the engine configuration derived from a profile, and why.
    Show {
        /// Profile file (TOML).
        file: PathBuf,
    },
    /// Print the kernel modules the profiles' controllers and NICs need, one per line, sorted,
    /// without repeats (the firmware image packs them; `appliance/scripts/build-image`).
    Drivers {
        /// Profile files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `hoard serve` options.
#[derive(Parser, Debug)]
pub struct ServeArgs {
    /// Hardware profile (TOML); default: the built-in dev profile.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Directory for device files and credentials.
    #[arg(long, default_value = "./hoard-data")]
    pub data: PathBuf,
    /// Address to serve S3 on in plain HTTP (default 127.0.0.1:9000 unless --listen-tls is
    /// given alone).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address to serve S3 on over HTTPS (needs --tls-cert and --tls-key).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Option<SocketAddr>,
    /// The HTTPS certificate chain, PEM, leaf first (reloaded on SIGHUP).
    #[arg(long, requires = "listen_tls")]
    pub tls_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "listen_tls")]
    pub tls_key: Option<PathBuf>,
    /// The root key pair: a file holding the access key and the secret key, one a line,
    /// readable by its owner only (instead of HOARD_ACCESS_KEY/HOARD_SECRET_KEY, which leave
    /// the secret in the process environment).
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// I/O backend: auto, uring or portable (overrides the profile).
    #[arg(long)]
    pub io_backend: Option<String>,
    /// Domain for virtual-host-style addressing (`<bucket>.<domain>`); repeatable.
    #[arg(long = "domain", default_value = "localhost")]
    pub domains: Vec<String>,
    /// Region reported to clients.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Also serve plain `GET /metrics` (Prometheus, no signature) on this management address.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// How many seconds a lifecycle day lasts (86400; shorter only to test lifecycle rules).
    #[arg(long, default_value_t = 86_400)]
    pub lifecycle_day_seconds: u64,
    /// Seconds between lifecycle passes.
    #[arg(long, default_value_t = 3600)]
    pub lifecycle_interval_seconds: u64,
}

fn load_profile(path: Option<&PathBuf>) -> hoard::Result<Profile> {
    match path {
        Some(p) => Profile::load(p),
        None => Profile::parse(DEV_PROFILE),
    }
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Admin(args) => match crate::admin::run(args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hoard admin: {e}");
                1
            }
        },
        Command::Profile {
            action: ProfileAction::Show { file },
        } => match Profile::load(&file) {
            Ok(p) => {
                println!("{}: {}", p.name, p.description);
                print!("{}", p.derive().report());
                0
            }
            Err(e) => {
                eprintln!("hoard: {e}");
                2
            }
        },
        Command::Profile {
            action: ProfileAction::Drivers { files },
        } => {
            let mut drivers = std::collections::BTreeSet::new();
            for file in &files {
                match Profile::load(file) {
                    Ok(p) => drivers.extend(p.drivers()),
                    Err(e) => {
                        eprintln!("hoard: {e}");
                        return 2;
                    }
                }
            }
            for d in drivers {
                println!("{d}");
            }
            0
        }
        Command::Firmware {
            action: FirmwareAction::PackModules { tree, out, modules },
        } => match crate::firmware::kmod::pack(&tree, &modules, &out) {
            Ok(order) => {
                // The load order on stdout (modules.order); on stderr the firmware files the
                // packed drivers may ask for, none of which the image carries: Debian ships
                // them only in its non-free-firmware packages.
                for m in &order {
                    println!("{}", m.name);
                    for f in &m.firmware {
                        eprintln!(
                            "hoard: {} declares firmware {f}: left out (Debian ships it in non-free-firmware, which the image does not carry)",
                            m.name
                        );
                    }
                }
                0
            }
            Err(e) => {
                eprintln!("hoard: {e}");
                2
            }
        },
        Command::Space {
            profile,
            data,
            check,
        } => match space(profile.as_ref(), data, check) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("hoard: {e}");
                1
            }
        },
        Command::Serve(args) => match serve(args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hoard: {e}");
                1
            }
        },
    }
}

/// `hoard space`: opens the store (never formatting), prints its space, closes it cleanly.
fn space(profile: Option<&PathBuf>, data: PathBuf, check: bool) -> hoard::Result<i32> {
    let store = Store::open(&StoreOptions {
        profile: load_profile(profile)?,
        data_dir: data,
        format_blank: false,
        io_backend: None,
    })?;
    print!("{}", store.space_status().report());
    let mut code = 0;
    if check {
        let found = store.check_space()?;
        println!(
            "check: {} segments with {} live bytes recounted from the index; {} mismatches",
            found.segments,
            found.live_bytes,
            found.mismatches.len()
        );
        for m in &found.mismatches {
            println!("  {m}");
        }
        code = i32::from(!found.mismatches.is_empty());
    }
    store.close()?;
    Ok(code)
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // TLS first: a certificate that does not load stops the start before the store opens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(hoard_s3::tls::Tls::new(
            hoard_s3::tls::CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
        )?)),
        _ => None,
    };
    let fingerprint = tls.as_ref().map(|t| t.fingerprint());
    let endpoints = hoard_s3::Endpoints {
        plain: match (args.listen, args.listen_tls) {
            (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            (plain, _) => plain,
        },
        tls: args.listen_tls.zip(tls),
    };
    let profile = load_profile(args.profile.as_ref())?;
    let io_backend = args
        .io_backend
        .as_deref()
        .map(str::parse::<IoBackend>)
        .transpose()?;
    let store = Store::open(&StoreOptions {
        profile,
        data_dir: args.data.clone(),
        format_blank: true,
        io_backend,
    })?;
    let (access_key, secret_key, source) =
        Credentials::load_or_create(&args.data, args.credentials.as_deref())?;
    if source == "environment" {
        eprintln!(
            "hoard: the root secret key came from HOARD_SECRET_KEY, so it stays readable in this process's environment (/proc/{}/environ); prefer --credentials FILE",
            std::process::id()
        );
    }
    let credentials = Credentials::open(&store, &access_key, &secret_key)?;
    let account_id = credentials.root_account().to_string();
    // The secret is shown in full once, when it is generated; later it is in the credentials
    // file (or the environment) and only its ends are shown.
    let secret_shown = match source {
        "generated" => secret_key,
        _ => hoard_s3::auth::principals::masked(&secret_key),
    };
    let credentials_file = args.data.join("credentials");
    let data_dir = args.data.clone();
    let s3 = S3Config {
        domains: args.domains,
        region: args.region,
        metrics_listen: args.metrics_listen,
        lifecycle_day: std::time::Duration::from_secs(args.lifecycle_day_seconds.max(1)),
        lifecycle_interval: std::time::Duration::from_secs(args.lifecycle_interval_seconds.max(1)),
        ..S3Config::default()
    };
    hoard_s3::run(store, credentials, s3, endpoints, move |store, bound| {
        for (scheme, addr) in [("http", bound.plain), ("https", bound.tls)] {
            if let Some(addr) = addr {
                println!(
                    "Hoard {} serving S3 on {scheme}://{addr}",
                    env!("CARGO_PKG_VERSION")
                );
            }
        }
        if let Some(f) = &fingerprint {
            println!("  TLS certificate SHA-256 fingerprint {f}");
        }
        println!(
            "  store {} (profile {}, data {})",
            store.store_uuid(),
            store.config().profile_name,
            data_dir.display()
        );
        println!(
            "  credentials ({source}): access key {access_key}  secret key {secret_shown}  account {account_id}"
        );
        if source == "generated" {
            println!("  (kept in {}, mode 0600)", credentials_file.display());
        }
    })?;
    Ok(())
}
