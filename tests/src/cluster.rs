//! A guard around a multi-member etcd cluster: N server processes bootstrapped
//! together with one shared `--initial-cluster`.
//!
//! `Cluster::start` picks free loopback ports for every member's client and
//! peer URLs, starts all members at once (a new cluster needs a quorum before
//! any member has a leader), and waits until each reports `/health` true.
//! Members can be killed with SIGKILL and restarted on the same data
//! directory and flags; every process is killed when the cluster is dropped,
//! also while a failing test unwinds.
//!
//! - Each member's output goes to `<member dir>/etcd.<start>.log`; a failed
//!   start panics with the tail of every member's log.
//! - Who leads is read from `/metrics` (`etcd_server_is_leader`), which etcd
//!   and retcd both export, so the helper works for either flavour.
//! - Caveat: unlike `Server`, a start that loses a port race to another
//!   process is not retried.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::http;
use crate::ports::free_port;
use crate::server::{Flavour, tail};

/// How long a member may take to report a healthy cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between probes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The metric a leader reports as 1.
const IS_LEADER_METRIC: &str = "etcd_server_is_leader";

/// One member process of a [`Cluster`].
pub struct Member {
    /// Member name (`--name`).
    name: String,
    /// Holds `data/` and the log files; removed on drop.
    dir: TempDir,
    /// Client port.
    client_port: u16,
    /// Peer port.
    peer_port: u16,
    /// The process while it runs.
    child: Option<Child>,
    /// Number of starts so far; names the log file.
    starts: usize,
}

impl Member {
    /// The member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The log of the most recent start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Whether `/health` answers `"health":"true"` (a leader is known).
    pub fn healthy(&self) -> bool {
        http::get(self.client_port, "/health")
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .is_some_and(|body| body["health"] == "true")
    }

    /// Whether the member's `/metrics` says it leads.
    pub fn is_leader(&self) -> bool {
        let Ok(response) = http::get(self.client_port, "/metrics") else {
            return false;
        };
        String::from_utf8_lossy(&response.body)
            .lines()
            .any(|line| line.starts_with(IS_LEADER_METRIC) && line.trim_end().ends_with(" 1"))
    }

    /// The log file of the current start.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("etcd.{}.log", self.starts))
    }

    /// The data directory.
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the process with SIGKILL and reaps it; a no-op when not running.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running cluster of etcd processes; every member is killed on drop.
pub struct Cluster {
    /// Which implementation every member runs.
    flavour: Flavour,
    /// The executable.
    binary: PathBuf,
    /// `--initial-cluster`, shared by all members.
    initial_cluster: String,
    /// `--initial-cluster-token`.
    token: String,
    /// The members, in `--initial-cluster` order.
    members: Vec<Member>,
}

impl Cluster {
    /// Starts `size` members of our etcd and waits until all are healthy.
    pub fn ours(size: usize) -> Cluster {
        Cluster::start(Flavour::Ours, size)
    }

    /// Starts `size` members of `flavour` and waits until all are healthy;
    /// panics with the members' logs if they do not become healthy.
    pub fn start(flavour: Flavour, size: usize) -> Cluster {
        let binary = flavour.binary();
        assert!(
            binary.exists(),
            "{} does not exist: run `cargo build --workspace --bins`",
            binary.display()
        );
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                dir: tempfile::Builder::new()
                    .prefix("retcd-cluster-")
                    .tempdir()
                    .expect("temporary directory"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
                starts: 0,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            flavour,
            binary,
            initial_cluster,
            token: format!("retcd-test-{}-{}", std::process::id(), free_port()),
            members,
        };
        for i in 0..size {
            if let Err(e) = cluster.spawn(i) {
                panic!("{e:#}");
            }
        }
        let all: Vec<usize> = (0..size).collect();
        if let Err(e) = cluster.wait_healthy(&all) {
            panic!("{e:#}\n{}", cluster.logs());
        }
        cluster
    }

    /// The members, in `--initial-cluster` order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Every member's client URL.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The index of the member that leads, if exactly one running member does.
    pub fn leader(&mut self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].is_running() && self.members[i].is_leader())
            .collect();
        match leaders.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Waits up to `timeout` until exactly one running member leads and every
    /// running member is healthy; returns the leader's index.
    pub fn wait_leader(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                let running: Vec<usize> = (0..self.members.len())
                    .filter(|&i| self.members[i].is_running())
                    .collect();
                if running.iter().all(|&i| self.members[i].healthy()) {
                    return Ok(leader);
                }
            }
            if Instant::now() >= deadline {
                bail!("no single leader after {timeout:?}\n{}", self.logs());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        self.members[i].kill9();
    }

    /// Starts member `i` again on its data directory and flags and waits
    /// until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.members[i].kill9();
        let started = self.spawn(i).and_then(|()| self.wait_healthy(&[i]));
        if let Err(e) = started {
            panic!(
                "restarting {}: {e:#}\n{}",
                self.members[i].name,
                self.logs()
            );
        }
    }

    /// The tail of every member's current log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- {} ({}):\n{}",
                    m.name,
                    self.flavour.label(),
                    tail(&m.log())
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Spawns member `i`'s process.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let member = &mut self.members[i];
        member.starts += 1;
        let log = File::create(member.log_path())?;
        let client = member.client_url();
        let peer = member.peer_url();
        let data_dir = member.data_dir().display().to_string();
        let args = [
            "--name",
            &member.name,
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            "new",
        ];
        let child = Command::new(&self.binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        member.child = Some(child);
        Ok(())
    }

    /// Waits until every member in `which` is healthy; fails if one exits.
    fn wait_healthy(&mut self, which: &[usize]) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut all = true;
            for &i in which {
                let member = &mut self.members[i];
                if !member.is_running() {
                    bail!("{} exited before it was healthy", member.name);
                }
                all &= member.healthy();
            }
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("cluster not healthy after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill9();
        }
    }
}
