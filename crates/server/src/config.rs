//! Server configuration: etcd's flags, their `ETCD_<NAME>` environment
//! variables, and etcd's YAML config file.
//!
//! Precedence follows etcd: when `--config-file` (or `ETCD_CONFIG_FILE`) is
//! given, the file alone configures the server and other flags and variables
//! are ignored. Otherwise each flag falls back to its environment variable and
//! then to etcd's default. Defaults are etcd's, so a bare `./etcd` serves
//! clients on localhost:2379 with its data in `./default.etcd`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
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

impl Config {
    /// Builds the configuration from parsed flags, reading the config file when one is named.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Config> {
        let flags = match &flags.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let file: FileConfig = serde_yaml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?;
                merge_file(file)
            }
            None => flags,
        };
        let name = flags.name.clone();
        let data_dir = flags
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
        let initial_advertise_peer_urls = split_urls(&flags.initial_advertise_peer_urls);
        let initial_cluster = match &flags.initial_cluster {
            Some(spec) if !spec.is_empty() => parse_initial_cluster(spec)?,
            _ => vec![InitialMember {
                name: name.clone(),
                peer_urls: initial_advertise_peer_urls.clone(),
            }],
        };
        if flags.heartbeat_interval == 0 || flags.election_timeout < 5 * flags.heartbeat_interval {
            bail!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                flags.election_timeout,
                flags.heartbeat_interval
            );
        }
        if !matches!(flags.initial_cluster_state.as_str(), "new" | "existing") {
            bail!(
                "invalid value {:?} for --initial-cluster-state: valid values are \"new\", \"existing\"",
                flags.initial_cluster_state
            );
        }
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
            watch_progress_notify_interval: parse_go_duration(
                &flags.experimental_watch_progress_notify_interval,
            )
            .filter(|d| !d.is_zero())
            .with_context(|| {
                format!(
                    "invalid --experimental-watch-progress-notify-interval {:?}",
                    flags.experimental_watch_progress_notify_interval
                )
            })?,
        })
    }
}

/// Fills flags from the config file, defaulting what the file leaves out.
fn merge_file(file: FileConfig) -> Flags {
    let defaults = Flags::parse_from(["etcd"]);
    Flags {
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
    }
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
        let cfg = Config::from_flags(Flags::parse_from(["etcd"])).unwrap();
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
        let cfg = Config::from_flags(Flags::parse_from(["etcd", "--name", "infra1"])).unwrap();
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
        let flags = Flags::parse_from([
            "etcd",
            "--name",
            "ignored",
            "--config-file",
            path.to_str().unwrap(),
        ]);
        let cfg = Config::from_flags(flags).unwrap();
        assert_eq!(cfg.name, "n1");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.max_txn_ops, 7);
        assert_eq!(cfg.listen_client_urls, vec!["http://127.0.0.1:3000"]);
    }

    #[test]
    fn election_timeout_must_cover_heartbeats() {
        let flags = Flags::parse_from([
            "etcd",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "200",
        ]);
        assert!(Config::from_flags(flags).is_err());
    }
}
