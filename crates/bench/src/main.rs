//! `etcd-bench`: a load generator for etcd v3 servers, retcd's twin of etcd's
//! `tools/benchmark`.
//!
//! It speaks plain etcd v3 gRPC, so it measures real etcd and retcd alike, and
//! `scripts/bench.sh` uses it to compare the two on the same machine.
//!
//! Shape of a run:
//! 1. open `--conns` HTTP/2 connections to `--endpoints` (round-robin), each
//!    a bare h2 connection rather than a tonic `Channel` (see [`conn`]);
//! 2. start `--clients` closed-loop clients sharing the connections
//!    round-robin; together they issue exactly `--total` requests of the
//!    chosen workload (`put`, `range`, `txn-put`);
//! 3. time every request with a monotonic clock, from just before it is sent
//!    to the decoded response, and report throughput and the latency
//!    distribution (see [`report`]), plus the client's own CPU time per
//!    request (see [`cpu`]), as text or, with `--json`, as one JSON object
//!    for scripts.
//!
//! Invariants:
//! - request construction is outside the timed region; the timed region holds
//!   only the gRPC call;
//! - connections are established before the clock starts, so dial time never
//!   counts as request latency or lowers Requests/sec;
//! - every latency is kept (no sampling), so percentiles are exact;
//! - the whole client runs on one thread (a current-thread runtime), so a
//!   request never wakes another thread; its CPU per request is reported so
//!   a run can show the client is not what limits it.
//!
//! Exit status: 0 when every request succeeded, 1 when any failed (the report
//! is still printed), 2 on bad arguments or when no connection can be made.
//!
//! Caveats: TLS and authentication are not supported; a request that never
//! completes stalls its client (bound the run externally, as `bench.sh` does).

mod conn;
mod cpu;
mod report;
mod runner;
mod watch;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::{Report, Setup};
use crate::workload::{KeySpec, MAX_TXN_OPS, Rng, Workload};

/// mimalloc: every request allocates its message, HTTP/2 stream state and
/// buffers; the allocator is part of the client's CPU cost per request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line of `etcd-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "etcd-bench",
    version,
    about = "A load generator for etcd v3 servers"
)]
struct Cli {
    /// Comma-separated gRPC endpoints; connections are spread over them.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    endpoints: Vec<String>,

    /// Number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,

    /// Number of concurrent clients, sharing the connections round-robin.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,

    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10_000)]
    total: u64,

    /// Print the report as one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Time allowed to establish each connection, in seconds.
    #[arg(long, global = true, default_value_t = 2.0)]
    dial_timeout_secs: f64,

    /// The workload to run.
    #[command(subcommand)]
    command: Command,
}

/// The workloads.
#[derive(Debug, Subcommand)]
enum Command {
    /// Write keys with single puts.
    Put(KeyArgs),
    /// Read a key or a range `[key, end)` repeatedly.
    Range(RangeArgs),
    /// Write keys with transactions of several puts each.
    TxnPut {
        /// Which keys to write and how big.
        #[command(flatten)]
        keys: KeyArgs,
        /// Puts per transaction.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_TXN_OPS as i64))]
        txn_ops: u16,
    },
    /// Put-to-event latency and delivery rate to many watchers of one key
    /// (`--total` puts).
    WatchLatency {
        /// Watchers, all on one key.
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// gRPC streams the watchers are spread over.
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// Pause between puts, in milliseconds.
        #[arg(long, default_value_t = 5)]
        put_interval_ms: u64,
    },
}

/// Key and value options of the write workloads.
#[derive(Debug, Args)]
struct KeyArgs {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Number of distinct keys to write to.
    #[arg(long, default_value_t = 1)]
    key_space_size: u64,
    /// Write keys in order (request i writes key i mod key-space-size)
    /// instead of at random.
    #[arg(long)]
    sequential_keys: bool,
}

/// Options of the range workload.
#[derive(Debug, Args)]
struct RangeArgs {
    /// The key, or the start of the range.
    key: String,
    /// The end of the range (exclusive); just `key` when omitted.
    end: Option<String>,
    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    consistency: Consistency,
    /// Maximum number of keys returned per request (0: no limit).
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Return only the count of keys, not the keys.
    #[arg(long)]
    count_only: bool,
}

/// Read consistency of range requests, named as in etcd's benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consistency {
    /// Linearizable: the server confirms its leadership (ReadIndex) per read.
    L,
    /// Serializable: served from the member's local state.
    S,
}

/// Parses arguments, runs the workload, prints the report.
fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the clients, the connections' tasks and the timer share it,
    // so a request never wakes another thread (no futex, no work stealing).
    // Measured against the multi-threaded runtime it costs a third less CPU
    // per request, and the client still needs less CPU per request than
    // either server, so it is not what limits a run on a shared machine.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("etcd-bench: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::WatchLatency { .. }) {
        return match runtime.block_on(watch_bench(cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("etcd-bench: {error:#}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(bench(cli)) {
        Ok(report) if report.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("etcd-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark `cli` describes and prints its report.
async fn bench(cli: Cli) -> Result<Report> {
    if cli.conns == 0 || cli.clients == 0 {
        bail!("--conns and --clients must be at least 1");
    }
    if !(cli.dial_timeout_secs.is_finite() && cli.dial_timeout_secs > 0.0) {
        bail!("--dial-timeout-secs must be a positive number");
    }
    let mut rng = Rng::new(0x5eed);
    let workload = match cli.command {
        Command::Put(keys) => Workload::put(key_spec(&keys)?, keys.val_size, &mut rng),
        Command::Range(range) => Workload::range(
            range.key.into_bytes(),
            range.end.map(String::into_bytes).unwrap_or_default(),
            range.consistency == Consistency::S,
            range.limit,
            range.count_only,
        ),
        Command::TxnPut { keys, txn_ops } => Workload::txn_put(
            key_spec(&keys)?,
            keys.val_size,
            usize::from(txn_ops),
            &mut rng,
        )?,
        Command::WatchLatency { .. } => bail!("watch-latency runs on its own"),
    };
    let setup = Setup {
        workload: workload.name().to_string(),
        endpoints: cli.endpoints.clone(),
        conns: cli.conns,
        clients: cli.clients,
        total: cli.total,
    };

    let connections = runner::connect(
        &cli.endpoints,
        cli.conns,
        Duration::from_secs_f64(cli.dial_timeout_secs),
    )
    .await?;
    if !cli.json {
        eprintln!(
            "etcd-bench: {} x{} over {} clients, {} connections",
            setup.workload, setup.total, setup.clients, setup.conns
        );
    }
    let outcome = runner::run(connections, cli.clients, cli.total, workload).await?;
    let report = Report::new(setup, outcome);
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(report)
}

/// Runs the `watch-latency` benchmark and prints its report.
async fn watch_bench(cli: Cli) -> Result<()> {
    let Command::WatchLatency {
        watchers,
        streams,
        put_interval_ms,
    } = cli.command
    else {
        bail!("not a watch benchmark");
    };
    let connections = runner::connect(
        &cli.endpoints,
        cli.conns,
        Duration::from_secs_f64(cli.dial_timeout_secs),
    )
    .await?;
    let report = watch::run(
        connections,
        watchers,
        streams,
        cli.total,
        Duration::from_millis(put_interval_ms),
    )
    .await?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", watch::to_text(&report));
    }
    Ok(())
}

/// The key spec of a write workload's options.
fn key_spec(keys: &KeyArgs) -> Result<KeySpec> {
    KeySpec::new(keys.key_size, keys.key_space_size, keys.sequential_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_workload() {
        let cli = Cli::try_parse_from([
            "etcd-bench",
            "--clients",
            "100",
            "put",
            "--conns",
            "10",
            "--key-space-size",
            "5",
        ])
        .unwrap();
        assert_eq!((cli.clients, cli.conns), (100, 10));
        assert!(matches!(
            cli.command,
            Command::Put(KeyArgs {
                key_space_size: 5,
                ..
            })
        ));
    }

    #[test]
    fn range_defaults_to_linearizable() {
        let cli = Cli::try_parse_from(["etcd-bench", "range", "foo"]).unwrap();
        let Command::Range(range) = cli.command else {
            panic!("not a range");
        };
        assert_eq!(range.consistency, Consistency::L);
        assert_eq!(range.end, None);
    }
}
