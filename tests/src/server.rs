//! A guard around one etcd server process.
//!
//! `Server` spawns an etcd binary (Debian's reference etcd, or ours) as a
//! single-member cluster on free loopback ports with a fresh temporary data
//! directory, waits until it serves clients, and kills it when dropped, also
//! while a failing test unwinds. It can be killed with SIGKILL and restarted
//! on the same data directory and ports, which is what crash tests need.
//!
//! - Readiness: `GET /health` answers `"health":"true"`, or the log contains
//!   `ready to serve client requests` and the client port accepts connections.
//! - The process's stdout and stderr go to a log file per start inside the
//!   server's temporary directory; a failed start panics with the log's tail.
//! - A start that fails because a port was taken (by another process between
//!   our probe and etcd's bind) is retried on fresh ports; any other failure
//!   fails at once.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::etcdctl::{self, CtlOutput};
use crate::http;
use crate::ports::free_port;

/// Debian's etcd 3.4.23, the behaviour we must match.
pub const REFERENCE_ETCD: &str = "/usr/bin/etcd";

/// Environment variable naming the binary `Server::ours` runs.
pub const OURS_ENV: &str = "RETCD_ETCD";

/// How long a start may take until the server serves clients.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Starts attempted on fresh ports before a first start gives up.
const MAX_START_ATTEMPTS: usize = 3;

/// Bytes of log shown when a start fails.
const LOG_TAIL_BYTES: usize = 4000;

/// Lower-cased log text of a failed bind, in Go's and Rust's wording alike.
const PORT_TAKEN_LOG: &str = "address already in use";

/// The log line etcd writes once it serves clients.
const READY_LOG_LINE: &str = "ready to serve client requests";

/// Which etcd implementation a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Debian's etcd at [`REFERENCE_ETCD`].
    Reference,
    /// retcd's `etcd`: `$RETCD_ETCD`, else the workspace's build.
    Ours,
}

impl Flavour {
    /// The binary this flavour runs.
    pub fn binary(self) -> PathBuf {
        match self {
            Flavour::Reference => PathBuf::from(REFERENCE_ETCD),
            Flavour::Ours => ours_binary(),
        }
    }

    /// A short label for messages.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::Reference => "reference",
            Flavour::Ours => "ours",
        }
    }
}

/// Our `etcd` binary: `$RETCD_ETCD` if set, else `<target>/debug/etcd` (or
/// `release` when only that exists), honouring `CARGO_TARGET_DIR`.
pub fn ours_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(OURS_ENV) {
        return PathBuf::from(path);
    }
    let workspace = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_relative() {
                workspace.join(dir)
            } else {
                dir
            }
        }
        None => workspace.join("target"),
    };
    let debug = target.join("debug").join("etcd");
    let release = target.join("release").join("etcd");
    if !debug.exists() && release.exists() {
        release
    } else {
        debug
    }
}

/// The Cargo workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A running (or killed, awaiting restart) etcd server; killed on drop.
pub struct Server {
    /// Which implementation runs.
    flavour: Flavour,
    /// The executable.
    binary: PathBuf,
    /// Member name (`--name`).
    name: String,
    /// Holds `data/` and the log files; removed on drop.
    dir: TempDir,
    /// Client port: gRPC, gateway, /health, /metrics.
    client_port: u16,
    /// Peer port.
    peer_port: u16,
    /// Flags appended after the standard ones.
    extra_args: Vec<String>,
    /// The process while it runs.
    child: Option<Child>,
    /// Number of starts so far; names the log file.
    starts: usize,
}

impl Server {
    /// Starts the reference etcd with the standard flags.
    pub fn reference() -> Server {
        Server::start(Flavour::Reference, &[])
    }

    /// Starts our etcd with the standard flags.
    pub fn ours() -> Server {
        Server::start(Flavour::Ours, &[])
    }

    /// Starts the given flavour with `extra_args` after the standard flags;
    /// panics (with the log's tail) if it does not become ready.
    pub fn start(flavour: Flavour, extra_args: &[&str]) -> Server {
        Server::try_start(flavour, extra_args)
            .unwrap_or_else(|e| panic!("starting {} etcd failed: {e:#}", flavour.label()))
    }

    /// Starts the reference and our server at the same time, each with
    /// `extra_args`; returns `(reference, ours)`.
    pub fn pair(extra_args: &[&str]) -> (Server, Server) {
        std::thread::scope(|s| {
            let reference = s.spawn(|| Server::start(Flavour::Reference, extra_args));
            let ours = Server::start(Flavour::Ours, extra_args);
            let reference = reference
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (reference, ours)
        })
    }

    /// Like [`Server::start`], returning the failure instead of panicking.
    pub fn try_start(flavour: Flavour, extra_args: &[&str]) -> Result<Server> {
        let binary = flavour.binary();
        if !binary.exists() {
            bail!(
                "{} does not exist: run `cargo build --workspace --bins` or set {OURS_ENV}",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("retcd-test-").tempdir()?;
        let mut server = Server {
            flavour,
            binary,
            name: format!("{}-{}", flavour.label(), std::process::id()),
            dir,
            client_port: 0,
            peer_port: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            starts: 0,
        };
        let mut last_error = anyhow!("never started");
        for _ in 0..MAX_START_ATTEMPTS {
            server.client_port = free_port();
            server.peer_port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.kill9();
                    if !server.log().to_ascii_lowercase().contains(PORT_TAKEN_LOG) {
                        return Err(e);
                    }
                    // A port race leaves the data dir half-made; start afresh.
                    let _ = std::fs::remove_dir_all(server.data_dir());
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    /// The member's name (`--name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which implementation this server runs.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer port on 127.0.0.1.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The member's data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The log of the most recent start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    /// Runs Debian's etcdctl against this server.
    pub fn etcdctl(&self, args: &[&str]) -> CtlOutput {
        etcdctl::run(self.client_port, args, None)
    }

    /// Runs Debian's etcdctl against this server with `stdin` piped in.
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &[u8]) -> CtlOutput {
        etcdctl::run(self.client_port, args, Some(stdin))
    }

    /// `GET path` on the client port.
    pub fn http_get(&self, path: &str) -> http::Response {
        http::get(self.client_port, path)
            .unwrap_or_else(|e| panic!("{} GET {path}: {e:#}", self.flavour.label()))
    }

    /// `POST path` with a JSON body on the client port.
    pub fn http_post(&self, path: &str, body: &str) -> http::Response {
        http::post(self.client_port, path, body.as_bytes())
            .unwrap_or_else(|e| panic!("{} POST {path}: {e:#}", self.flavour.label()))
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process with SIGKILL and reaps it; a no-op when not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit;
    /// returns its exit status, or `None` (after a SIGKILL) if it did not stop.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts the process again on the same data dir, ports and flags, and
    /// waits until it is ready; kills a running process first.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(e) = self.spawn_and_wait() {
            self.kill9();
            panic!("restarting {} etcd failed: {e:#}", self.flavour.label());
        }
    }

    /// The log file of start number `n`.
    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("etcd.{n}.log"))
    }

    /// The full command line after the binary.
    fn args(&self) -> Vec<String> {
        let client = self.client_url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec![
            "--name".to_string(),
            self.name.clone(),
            "--data-dir".to_string(),
            self.data_dir().display().to_string(),
            "--listen-client-urls".to_string(),
            client.clone(),
            "--advertise-client-urls".to_string(),
            client,
            "--listen-peer-urls".to_string(),
            peer.clone(),
            "--initial-advertise-peer-urls".to_string(),
            peer.clone(),
            "--initial-cluster".to_string(),
            format!("{}={peer}", self.name),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawns the process and waits for readiness.
    fn spawn_and_wait(&mut self) -> Result<()> {
        self.starts += 1;
        let log_path = self.log_path(self.starts);
        let log = File::create(&log_path)?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_ready()
            .with_context(|| format!("log {}:\n{}", log_path.display(), tail(&self.log())))
    }

    /// Polls until the server is ready, has exited, or the timeout passes.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("etcd exited before it was ready: {status}");
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("not ready after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
    }

    /// One readiness probe.
    fn healthy(&self) -> bool {
        if let Ok(response) = http::get(self.client_port, "/health")
            && response.status == 200
            && let Ok(body) = serde_json::from_slice::<serde_json::Value>(&response.body)
            && body["health"] == "true"
        {
            return true;
        }
        self.log().contains(READY_LOG_LINE)
            && TcpStream::connect(("127.0.0.1", self.client_port)).is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last [`LOG_TAIL_BYTES`] of a log.
pub(crate) fn tail(log: &str) -> &str {
    let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}
