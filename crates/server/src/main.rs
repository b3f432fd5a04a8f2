//! The `etcd` binary: read etcd's command line (`cmdline`), start a member,
//! stop on SIGINT/SIGTERM.
//!
//! Exit codes are etcd's: 2 for a command line Go's flag parser refuses
//! (message, then usage, on stderr), 1 for one etcd refuses after parsing
//! (`etcdmain: error verifying flags, ...`) or a failed start, and death by
//! the signal itself after a clean stop on SIGINT/SIGTERM (the shell sees
//! 130/143), like a Go program that re-raises the signal it caught.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::CommandFactory;
use retcd_server::Flags;
use retcd_server::cmdline::{self, Invocation, Note};
use retcd_server::config::ETCD_VERSION;

/// mimalloc: every request allocates its messages; measured here it costs
/// 10-17% less server CPU per put than glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of a shell whose child died of signal `n` is 128 + n.
const SIGNAL_EXIT_BASE: i32 = 128;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let (cfg, notes) = match cmdline::load(&args, &env) {
        Ok(Invocation::Run { config, notes }) => (*config, notes),
        Ok(Invocation::Help { long }) => {
            // clap renders the help exactly as its own `-h`/`--help` would.
            let flag = if long { "--help" } else { "-h" };
            let printed = match Flags::command().try_get_matches_from(["etcd", flag]) {
                Err(help) => help.print(),
                Ok(_) => Ok(()),
            };
            return if printed.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Ok(Invocation::Version) => {
            println!("etcd Version: {ETCD_VERSION}");
            println!("retcd Version: {}", env!("CARGO_PKG_VERSION"));
            println!("Git SHA: Not provided");
            println!("Rust Version: retcd (Rust)");
            println!("Go OS/Arch: {}/{}", std::env::consts::OS, go_arch());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            if e.shows_usage() {
                eprintln!("{}", Flags::command().render_usage());
            }
            return ExitCode::from(e.exit_code());
        }
    };
    init_logging(&cfg.log_level);
    for note in notes {
        match note {
            Note::Info(text) => tracing::info!("{text}"),
            Note::Warn(text) => tracing::warn!("{text}"),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let caught = Arc::new(AtomicI32::new(0));
    let result = runtime.block_on(retcd_server::run(cfg, shutdown_signal(caught.clone())));
    // Every task is done and the data is flushed before the process dies.
    drop(runtime);
    match result {
        Ok(()) => match caught.load(Ordering::SeqCst) {
            0 => ExitCode::SUCCESS,
            signal => die_of(signal),
        },
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "etcd stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Ends the process by `signal`'s default action, as etcd does after its
/// clean stop; falls back to the shell's exit code for it.
fn die_of(signal: i32) -> ExitCode {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    ExitCode::from(u8::try_from(SIGNAL_EXIT_BASE + signal).unwrap_or(u8::MAX))
}

/// Go's name for this machine's architecture, as `etcd --version` prints it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// JSON logs on stderr, like etcd's zap logger, at `--log-level`.
fn init_logging(level: &str) {
    let level = match level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETCD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGINT or SIGTERM, recording which one in `caught`.
async fn shutdown_signal(caught: Arc<AtomicI32>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    let number = tokio::select! {
        _ = int.recv() => SIGINT,
        _ = term.recv() => SIGTERM,
    };
    caught.store(number, Ordering::SeqCst);
}
