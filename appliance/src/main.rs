//! `hoard`: the S3 server and, in the firmware image, PID 1 (when the kernel starts it as
//! `/init`, it boots the appliance instead of reading a command line).

use clap::Parser;

/// mimalloc instead of glibc's malloc: glibc raises its mmap threshold after the first large
/// block is freed, so the S3 layer's short-lived body frames, batches and stripe shards then
/// come from per-thread arenas that keep what they freed. Under rclone's mixed loads that
/// grew the server's resident size by hundreds of MiB beyond anything the memory budget
/// counts; mimalloc returns freed pages to the system and keeps resident memory near use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let pid1 = std::process::id() == 1;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A serial console is a terminal, but its log is read as text.
        .with_ansi(!pid1 && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if pid1 {
        hoard_appliance::firmware::pid1();
    }
    std::process::exit(hoard_appliance::cli::run(hoard_appliance::cli::Cli::parse()));
}
