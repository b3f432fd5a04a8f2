//! The `etcd` binary: parse etcd's flags, start a member, stop on SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use retcd_server::config::ETCD_VERSION;
use retcd_server::{Config, Flags};

/// mimalloc: every request allocates its messages; measured here it costs
/// 10-17% less server CPU per put than glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.version {
        println!("etcd Version: {ETCD_VERSION}");
        println!("retcd Version: {}", env!("CARGO_PKG_VERSION"));
        println!("Git SHA: Not provided");
        println!("Rust Version: retcd (Rust)");
        println!("Go OS/Arch: {}/{}", std::env::consts::OS, go_arch());
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::from_flags(flags) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("etcd: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log_level);
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
    match runtime.block_on(retcd_server::run(cfg, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "etcd stopped with an error");
            ExitCode::FAILURE
        }
    }
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
