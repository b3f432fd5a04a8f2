//! Server configuration: etcd's flags, their `ETCD_<NAME>` environment
//! variables, and etcd's YAML config file.
//!
//! Precedence follows etcd: when `--config-file` (or `ETCD_CONFIG_FILE`) is
//! given, the file alone configures the server and other flags and variables
//! are ignored (not even checked). Otherwise each flag falls back to its
//! environment variable and then to etcd's default. How the command line and
//! the variables are read (Go's flag syntax, conflicts, etcd's error texts)
//! is `cmdline`'s business; this module turns the values into a checked
//! [`Config`]. Defaults are etcd's, so a bare `./etcd` serves clients on
//! localhost:2379 with its data in `./default.etcd`.
//!
//! - Without `--initial-cluster`, a member named other than `default`
//!   bootstraps alone on its advertised peer URLs; one named `default` gets
//!   etcd's `default=http://localhost:2380`, which the member's advertised peer
//!   URLs must then match (etcd refuses the start otherwise, and so do we).
//! - Checks run in etcd's order: log level, heartbeat, election timeout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

/// The etcd API version this server reports to clients.
pub const ETCD_VERSION: &str = "3.5.17";
/// The cluster version reported beside it.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";
/// Extra bytes a gRPC message may carry beyond `--max-request-bytes` before
/// the transport itself refuses it (etcd allows the same slack).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Command-line flags, named and defaulted as etcd's.
#[derive(Debug, Parser)]
#[command(
    name = "etcd",
    disable_version_flag = true,
    about = "retcd: etcd, rewritten in Rust"
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (comma-separated).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Client URLs advertised to the rest of the cluster (comma-separated).
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic (comma-separated).
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// This member's peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: `name=url,...`.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token, mixed into member and cluster ids.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed entries between raft log compactions.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Raise an alarm when the backend exceeds this many bytes (0 = 2 GiB default, negative = no quota).
    #[arg(
        long,
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: u64,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u64,
    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Duration of periodic watch progress notifications (Go syntax: `10m`, `500ms`).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Path to the server configuration file (etcd's YAML keys).
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// etcd's YAML configuration file; keys are etcd's flag names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct FileConfig {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<String>,
    advertise_client_urls: Option<String>,
    listen_peer_urls: Option<String>,
    initial_advertise_peer_urls: Option<String>,
    initial_cluster: Option<String>,
    initial_cluster_state: Option<String>,
    initial_cluster_token: Option<String>,
    heartbeat_interval: Option<u64>,
    election_timeout: Option<u64>,
    snapshot_count: Option<u64>,
    quota_backend_bytes: Option<i64>,
    max_request_bytes: Option<u64>,
    max_txn_ops: Option<u64>,
    log_level: Option<String>,
    experimental_watch_progress_notify_interval: Option<String>,
}

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's name.
    pub name: String,
    /// The member's peer URLs.
    pub peer_urls: Vec<String>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Client listen URLs.
    pub listen_client_urls: Vec<String>,
    /// Advertised client URLs.
    pub advertise_client_urls: Vec<String>,
    /// Peer listen URLs.
    pub listen_peer_urls: Vec<String>,
    /// This member's advertised peer URLs.
    pub initial_advertise_peer_urls: Vec<String>,
    /// The members the cluster bootstraps with.
    pub initial_cluster: Vec<InitialMember>,
    /// `new` or `existing`.
    pub initial_cluster_state: String,
    /// Token mixed into member and cluster ids.
    pub initial_cluster_token: String,
    /// Raft tick.
    pub heartbeat_interval: Duration,
    /// Raft election timeout.
    pub election_timeout: Duration,
    /// Applied entries between raft log compactions.
    pub snapshot_count: u64,
    /// Backend size quota in bytes; negative: no quota.
    pub quota_backend_bytes: i64,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Most operations in one branch of a txn.
    pub max_txn_ops: usize,
    /// Log level.
    pub log_level: String,
    /// Interval of periodic watch progress notifications.
    pub watch_progress_notify_interval: Duration,
}

/// etcd's default backend quota: 2 GiB.
const DEFAULT_QUOTA_BACKEND_BYTES: i64 = 2 * 1024 * 1024 * 1024;

/// etcd's default member name; a member so named gets [`DEFAULT_INITIAL_CLUSTER_URL`].
const DEFAULT_NAME: &str = "default";

/// The peer URL of etcd's default `--initial-cluster` (`default=http://localhost:2380`).
const DEFAULT_INITIAL_CLUSTER_URL: &str = "http://localhost:2380";

/// The longest election timeout etcd accepts, in milliseconds.
const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;

/// Default interval of watch progress notifications, used when the flag is zero or negative.
const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Log levels etcd's logger knows (lower case only, as etcd).
const LOG_LEVELS: [&str; 7] = ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];

impl Flags {
    /// Parses `args` (program name first) as clap would, but never consulting
    /// the environment: the config-file path ignores `ETCD_*` variables, and
    /// `cmdline` applies them itself with etcd's rules.
    pub fn parse_without_env<I, T>(args: I) -> Result<Flags, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Flags::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(args)?;
        Flags::from_arg_matches(&matches)
    }

    /// Reads etcd's YAML config file; keys it leaves out take etcd's defaults.
    pub fn from_config_file(path: &std::path::Path) -> anyhow::Result<Flags> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("open {}: {}", path.display(), io_error_text(&e)))?;
        let file: FileConfig = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        merge_file(file)
    }
}

/// An I/O error as Go words it (`no such file or directory`), without Rust's `(os error N)`.
fn io_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Refuses a log level etcd's logger does not know, with etcd's words.
pub fn check_log_level(level: &str) -> Result<(), String> {
    if LOG_LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(format!("unknown level {level:?}"))
    }
}

/// `--initial-cluster` when none was given: see the module docs.
fn default_initial_cluster(
    name: &str,
    initial_advertise_peer_urls: &[String],
) -> Vec<InitialMember> {
    let peer_urls = if name == DEFAULT_NAME {
        vec![DEFAULT_INITIAL_CLUSTER_URL.to_string()]
    } else {
        initial_advertise_peer_urls.to_vec()
    };
    vec![InitialMember {
        name: name.to_string(),
        peer_urls,
    }]
}

/// The watch progress interval from its Go duration; zero or negative means the default.
fn watch_progress_notify_interval(text: &str) -> anyhow::Result<Duration> {
    let invalid =
        || anyhow::anyhow!("invalid --experimental-watch-progress-notify-interval {text:?}");
    if let Some(negative) = text.strip_prefix('-') {
        parse_go_duration(negative).ok_or_else(invalid)?;
        return Ok(DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL);
    }
    let interval = parse_go_duration(text.strip_prefix('+').unwrap_or(text)).ok_or_else(invalid)?;
    Ok(if interval.is_zero() {
        DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL
    } else {
        interval
    })
}

impl Config {
    /// Builds the configuration from parsed flags, reading the config file when one is named.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Config> {
        let flags = match &flags.config_file {
            Some(path) => Flags::from_config_file(path)?,
            None => flags,
        };
        check_log_level(&flags.log_level).map_err(anyhow::Error::msg)?;
        if flags.heartbeat_interval == 0 {
            bail!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                flags.heartbeat_interval
            );
        }
        if flags.election_timeout < 5 * flags.heartbeat_interval {
            bail!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                flags.election_timeout,
                flags.heartbeat_interval
            );
        }
        if flags.election_timeout > MAX_ELECTION_TIMEOUT_MS {
            bail!(
                "--election-timeout[{}ms] is too long, and should be set less than {MAX_ELECTION_TIMEOUT_MS}ms",
                flags.election_timeout
            );
        }
        if !matches!(flags.initial_cluster_state.as_str(), "new" | "existing") {
            bail!("unexpected clusterState {:?}", flags.initial_cluster_state);
        }
        let name = flags.name.clone();
        let data_dir = flags
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
        let initial_advertise_peer_urls = split_urls(&flags.initial_advertise_peer_urls);
        let initial_cluster = match &flags.initial_cluster {
            Some(spec) => parse_initial_cluster(spec)?,
            None => default_initial_cluster(&name, &initial_advertise_peer_urls),
        };
        Ok(Config {
            name,
            data_dir,
            listen_client_urls: split_urls(&flags.listen_client_urls),
            advertise_client_urls: split_urls(&flags.advertise_client_urls),
            listen_peer_urls: split_urls(&flags.listen_peer_urls),
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: flags.initial_cluster_state,
            initial_cluster_token: flags.initial_cluster_token,
            heartbeat_interval: Duration::from_millis(flags.heartbeat_interval),
            election_timeout: Duration::from_millis(flags.election_timeout),
            snapshot_count: flags.snapshot_count,
            quota_backend_bytes: if flags.quota_backend_bytes == 0 {
                DEFAULT_QUOTA_BACKEND_BYTES
            } else {
                flags.quota_backend_bytes
            },
            max_request_bytes: usize::try_from(flags.max_request_bytes)?,
            max_txn_ops: usize::try_from(flags.max_txn_ops)?,
            log_level: flags.log_level,
            watch_progress_notify_interval: watch_progress_notify_interval(
                &flags.experimental_watch_progress_notify_interval,
            )?,
        })
    }
}

/// Fills flags from the config file, defaulting what the file leaves out
/// (etcd's defaults, never the environment).
fn merge_file(file: FileConfig) -> anyhow::Result<Flags> {
    let defaults = Flags::parse_without_env(["etcd"])?;
    Ok(Flags {
        name: file.name.unwrap_or(defaults.name),
        data_dir: file.data_dir.or(defaults.data_dir),
        listen_client_urls: file
            .listen_client_urls
            .unwrap_or(defaults.listen_client_urls),
        advertise_client_urls: file
            .advertise_client_urls
            .unwrap_or(defaults.advertise_client_urls),
        listen_peer_urls: file.listen_peer_urls.unwrap_or(defaults.listen_peer_urls),
        initial_advertise_peer_urls: file
            .initial_advertise_peer_urls
            .unwrap_or(defaults.initial_advertise_peer_urls),
        initial_cluster: file.initial_cluster.or(defaults.initial_cluster),
        initial_cluster_state: file
            .initial_cluster_state
            .unwrap_or(defaults.initial_cluster_state),
        initial_cluster_token: file
            .initial_cluster_token
            .unwrap_or(defaults.initial_cluster_token),
        heartbeat_interval: file
            .heartbeat_interval
            .unwrap_or(defaults.heartbeat_interval),
        election_timeout: file.election_timeout.unwrap_or(defaults.election_timeout),
        snapshot_count: file.snapshot_count.unwrap_or(defaults.snapshot_count),
        quota_backend_bytes: file
            .quota_backend_bytes
            .unwrap_or(defaults.quota_backend_bytes),
        max_request_bytes: file.max_request_bytes.unwrap_or(defaults.max_request_bytes),
        max_txn_ops: file.max_txn_ops.unwrap_or(defaults.max_txn_ops),
        log_level: file.log_level.unwrap_or(defaults.log_level),
        experimental_watch_progress_notify_interval: file
            .experimental_watch_progress_notify_interval
            .unwrap_or(defaults.experimental_watch_progress_notify_interval),
        config_file: None,
        version: false,
    })
}

/// Parses a Go duration (`1h2m3.5s`, `500ms`, `10us`); None if malformed.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * secs;
        rest = &rest[unit_len..];
    }
    (!text.is_empty()).then(|| Duration::from_secs_f64(total))
}

/// Splits a comma-separated URL list, dropping empty items.
fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `name=url,name=url,...`; a name listed twice gathers all its URLs.
pub fn parse_initial_cluster(spec: &str) -> anyhow::Result<Vec<InitialMember>> {
    let mut members: Vec<InitialMember> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, url)) = item.split_once('=') else {
            bail!("--initial-cluster: {item:?} is not of the form name=url");
        };
        if !url.starts_with("http://") && !url.starts_with("https://") {
            bail!("--initial-cluster: URL scheme must be http or https in {url:?}");
        }
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    Ok(members)
}

/// Resolves `http://host:port` into socket addresses to bind.
pub fn listen_addrs(url: &str) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("unix://"))
        .with_context(|| format!("unsupported listen URL {url:?} (only http:// is served)"))?;
    let host_port = rest.trim_end_matches('/');
    let addrs: Vec<_> = host_port
        .to_socket_addrs()
        .with_context(|| format!("resolving listen URL {url:?}"))?
        .collect();
    // Like Go's listener, bind the first IPv4 address a name resolves to.
    let first = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("listen URL {url:?} resolves to no address"))?;
    Ok(vec![first])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("10m"), Some(ms(600_000)));
        assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_go_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "10", "m", "1x", "1s2"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_match_etcd() {
        let cfg = from_args(&[]).unwrap();
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(cfg.listen_client_urls, vec!["http://localhost:2379"]);
        assert_eq!(
            cfg.initial_cluster,
            vec![InitialMember {
                name: "default".into(),
                peer_urls: vec!["http://localhost:2380".into()]
            }]
        );
        assert_eq!(cfg.max_request_bytes, 1_572_864);
        assert_eq!(cfg.max_txn_ops, 128);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(cfg.election_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn data_dir_follows_name() {
        let cfg = from_args(&["--name", "infra1"]).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("infra1.etcd"));
    }

    #[test]
    fn initial_cluster_groups_urls_by_name() {
        let members = parse_initial_cluster(
            "a=http://1.1.1.1:2380,b=http://2.2.2.2:2380,a=http://1.1.1.1:2381",
        )
        .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].peer_urls.len(), 2);
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("a=ftp://x").is_err());
    }

    #[test]
    fn config_file_overrides_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(
            &path,
            "name: n1\ndata-dir: /tmp/x\nmax-txn-ops: 7\nlisten-client-urls: http://127.0.0.1:3000\n",
        )
        .unwrap();
        let flags = Flags::parse_without_env([
            "etcd",
            "--name",
            "ignored",
            "--config-file",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let cfg = Config::from_flags(flags).unwrap();
        assert_eq!(cfg.name, "n1");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.max_txn_ops, 7);
        assert_eq!(cfg.listen_client_urls, vec!["http://127.0.0.1:3000"]);
    }

    /// The configuration `args` give, the environment left out.
    fn from_args(args: &[&str]) -> anyhow::Result<Config> {
        let flags = Flags::parse_without_env(std::iter::once("etcd").chain(args.iter().copied()))?;
        Config::from_flags(flags)
    }

    #[test]
    fn checks_refuse_what_etcd_refuses() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &["--heartbeat-interval", "100", "--election-timeout", "500"],
                None,
            ),
            (&["--election-timeout", "50000"], None),
            (
                &["--heartbeat-interval", "100", "--election-timeout", "200"],
                Some(
                    "--election-timeout[200ms] should be at least as 5 times as --heartbeat-interval[100ms]",
                ),
            ),
            (
                &["--heartbeat-interval", "0", "--election-timeout", "60000"],
                Some("--heartbeat-interval must be >0 (set to 0ms)"),
            ),
            (
                &[
                    "--election-timeout",
                    "60000",
                    "--heartbeat-interval",
                    "20000",
                ],
                Some("--election-timeout[60000ms] should be at least as 5 times"),
            ),
            (
                &["--election-timeout", "60000"],
                Some(
                    "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
                ),
            ),
            (
                &["--log-level", "bogus", "--heartbeat-interval", "0"],
                Some("unknown level \"bogus\""),
            ),
            (&["--log-level", "DEBUG"], Some("unknown level \"DEBUG\"")),
            (&["--log-level", "dpanic"], None),
            (
                &["--initial-cluster-state", "weird"],
                Some("unexpected clusterState \"weird\""),
            ),
            (
                &["--experimental-watch-progress-notify-interval", "x"],
                Some("invalid --experimental-watch-progress-notify-interval"),
            ),
        ];
        for &(args, want) in cases {
            match (from_args(args), want) {
                (Ok(_), None) => {}
                (Err(e), Some(text)) => assert!(e.to_string().contains(text), "{args:?}: {e}"),
                (got, want) => panic!("{args:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn initial_cluster_defaults_as_etcds() {
        let apu = ["--initial-advertise-peer-urls", "http://127.0.0.1:9"];
        // (flags, expected name=urls of the one member; None: no member)
        type Case<'a> = (Vec<&'a str>, Option<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            (vec![], Some(("default", "http://localhost:2380"))),
            (apu.to_vec(), Some(("default", "http://localhost:2380"))),
            (
                [&["--name", "default"][..], &apu].concat(),
                Some(("default", "http://localhost:2380")),
            ),
            (
                [&["--name", "me"][..], &apu].concat(),
                Some(("me", "http://127.0.0.1:9")),
            ),
            (vec!["--name", "me"], Some(("me", "http://localhost:2380"))),
            (
                [&["--initial-cluster", "x=http://1.2.3.4:5"][..], &apu].concat(),
                Some(("x", "http://1.2.3.4:5")),
            ),
            (vec!["--initial-cluster", ""], None),
        ];
        for (args, want) in cases {
            let cfg = from_args(args).unwrap();
            let want: Vec<InitialMember> = want
                .iter()
                .map(|(name, url)| InitialMember {
                    name: name.to_string(),
                    peer_urls: vec![url.to_string()],
                })
                .collect();
            assert_eq!(cfg.initial_cluster, want, "{args:?}");
        }
    }

    #[test]
    fn a_config_file_without_initial_cluster_defaults_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "name: n1\ninitial-advertise-peer-urls: http://127.0.0.1:9\n",
                "n1",
                "http://127.0.0.1:9",
            ),
            (
                "initial-advertise-peer-urls: http://127.0.0.1:9\n",
                "default",
                "http://localhost:2380",
            ),
        ];
        for (yaml, name, url) in cases {
            let path = dir.path().join("etcd.yaml");
            std::fs::write(&path, yaml).unwrap();
            let cfg = Config::from_flags(Flags::from_config_file(&path).unwrap()).unwrap();
            assert_eq!(
                cfg.initial_cluster,
                vec![InitialMember {
                    name: name.into(),
                    peer_urls: vec![url.into()]
                }],
                "{yaml}"
            );
        }
        let missing = Flags::from_config_file(&dir.path().join("missing.yaml")).unwrap_err();
        assert!(
            missing
                .to_string()
                .ends_with("missing.yaml: no such file or directory"),
            "{missing}"
        );
    }

    #[test]
    fn watch_progress_interval_zero_or_negative_is_the_default() {
        for (text, secs) in [("5s", 5), ("0", 600), ("-1s", 600), ("+2s", 2)] {
            assert_eq!(
                watch_progress_notify_interval(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
    }
}
