//! The `hoard` command line: `hoard serve` and `hoard profile show`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hoard::device::IoBackend;
use hoard::{Profile, Store, StoreOptions};

use crate::s3::auth::Credentials;
use crate::s3::{AppState, S3Config, Shutdown};

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
    /// Address to serve S3 on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// I/O backend: auto, uring or portable (overrides the profile).
    #[arg(long)]
    pub io_backend: Option<String>,
    /// Domain for virtual-host-style addressing (`<bucket>.<domain>`); repeatable.
    #[arg(long = "domain", default_value = "localhost")]
    pub domains: Vec<String>,
    /// Region reported to clients.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
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
        Command::Firmware {
            action: FirmwareAction::PackModules { tree, out, modules },
        } => match crate::firmware::kmod::pack(&tree, &modules, &out) {
            Ok(order) => {
                println!("{}", order.join("\n"));
                0
            }
            Err(e) => {
                eprintln!("hoard: {e}");
                2
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

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
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
    let (credentials, access_key, secret_key, source) = Credentials::load_or_create(&args.data)?;
    let data_dir = args.data.clone();
    let s3 = S3Config {
        domains: args.domains,
        region: args.region,
        ..S3Config::default()
    };
    run_s3(store, credentials, s3, args.listen, move |store, addr| {
        println!(
            "Hoard {} serving S3 on http://{addr}",
            env!("CARGO_PKG_VERSION")
        );
        println!(
            "  store {} (profile {}, data {})",
            store.store_uuid(),
            store.config().profile_name,
            data_dir.display()
        );
        println!("  credentials ({source}): access key {access_key}  secret key {secret_key}");
    })?;
    Ok(())
}

/// Serves S3 for `store` on `listen` until a shutdown is asked for (SIGINT, SIGTERM, SIGPWR
/// or `POST /_hoard/shutdown`), then stops accepting connections, lets in-flight requests
/// finish (at most 30 s) and closes the store cleanly. `on_ready` runs once the port is bound.
/// Returns why it stopped.
///
/// Errors: binding the port; closing the store (the data heads or the checkpoint could not be
/// written).
pub fn run_s3(
    store: Store,
    credentials: Credentials,
    s3: S3Config,
    listen: SocketAddr,
    on_ready: impl FnOnce(&Store, SocketAddr),
) -> Result<String, Box<dyn std::error::Error>> {
    let config = store.config().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((config.writer_threads as usize * 16).max(64))
        .thread_name("hoard-s3")
        .build()?;
    let shutdown = Shutdown::default();
    let state = Arc::new(AppState {
        store: store.clone(),
        credentials,
        config: s3,
        shutdown: shutdown.clone(),
    });
    let reason = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        on_ready(&store, listener.local_addr()?);
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::spawn(forward_signals(shutdown.clone()));
        let stopped = shutdown.clone();
        crate::s3::serve(
            listener,
            state,
            async move {
                let reason = stopped.requested().await;
                tracing::info!("shutting down: {reason}");
            },
            Duration::from_secs(30),
        )
        .await?;
        Ok::<_, std::io::Error>(shutdown.reason().unwrap_or_default())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    store.close()?;
    tracing::info!("store closed cleanly");
    Ok(reason)
}

/// Turns SIGINT (also ctrl-alt-del for PID 1), SIGTERM and SIGPWR into a shutdown request.
async fn forward_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut pwr)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::from_raw(libc::SIGPWR)),
    ) else {
        tracing::error!(
            "cannot install signal handlers: only the admin request can stop the server"
        );
        return;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = pwr.recv() => "SIGPWR",
    };
    shutdown.request(name);
}
