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
//! - Members can join at runtime: `add_member` allocates one for a
//!   `member add`, `start_joining` starts it with
//!   `--initial-cluster-state existing`.
//! - Caveat: unlike `Server`, a start that loses a port race to another
//!   process is not retried.
//! - Peer partitions: every member starts with `RETCD_UNSAFE_PEER_FAULTS`
//!   naming `<member dir>/peer-faults`, the list of member ids (hex) whose
//!   raft traffic it drops (`crates/server/src/fault.rs`). `partition`,
//!   `isolate` and `heal` rewrite those files; a cut survives a restart of
//!   the member until `heal`. Member ids are learnt once from Debian
//!   etcdctl's `member list -w json`. Real etcd ignores the variable.

use std::collections::BTreeSet;
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
/// The server's peer fault injection variable (`crates/server/src/fault.rs`).
const PEER_FAULTS_ENV: &str = "RETCD_UNSAFE_PEER_FAULTS";
/// How long after a fault file is written every member has read it (members
/// poll it every 50 ms).
const PEER_FAULTS_SETTLE: Duration = Duration::from_millis(250);

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
    /// For a member added at runtime: the `--initial-cluster` it joins with
    /// (`--initial-cluster-state existing`).
    joins_with: Option<String>,
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

    /// The file listing the member ids this member is cut off from.
    fn peer_faults_path(&self) -> PathBuf {
        self.dir.path().join("peer-faults")
    }

    /// The member ids the fault file currently lists.
    fn blocked_ids(&self) -> BTreeSet<u64> {
        std::fs::read_to_string(self.peer_faults_path())
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|word| u64::from_str_radix(word, 16).ok())
            .collect()
    }

    /// Replaces the fault file atomically (write, then rename), so the
    /// member never reads half a list.
    fn write_blocked_ids(&self, ids: &BTreeSet<u64>) -> Result<()> {
        let text: String = ids.iter().map(|id| format!("{id:x}\n")).collect();
        let temporary = self.dir.path().join("peer-faults.tmp");
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, self.peer_faults_path())?;
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit on its own; returns its
    /// exit code (-1 for a signal), or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
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
    /// Member ids in `members` order, once learnt.
    member_ids: Option<Vec<u64>>,
    /// Flags every member starts with after the cluster flags (`start_with`).
    extra_args: Vec<String>,
}

impl Cluster {
    /// Starts `size` members of our etcd and waits until all are healthy.
    pub fn ours(size: usize) -> Cluster {
        Cluster::start(Flavour::Ours, size)
    }

    /// Starts `size` members of `flavour` and waits until all are healthy;
    /// panics with the members' logs if they do not become healthy.
    pub fn start(flavour: Flavour, size: usize) -> Cluster {
        Cluster::start_with(flavour, size, &[])
    }

    /// Like [`Cluster::start`], every member (at every start) also getting
    /// `extra_args`, e.g. `["--snapshot-count", "100"]`.
    pub fn start_with(flavour: Flavour, size: usize, extra_args: &[&str]) -> Cluster {
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
                joins_with: None,
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
            member_ids: None,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
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

    /// Member `i`, to wait for its exit.
    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
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

    /// Every member's id, in `members` order, asked of the first running
    /// member that answers `member list`.
    pub fn member_ids(&mut self) -> Result<Vec<u64>> {
        if let Some(ids) = &self.member_ids {
            return Ok(ids.clone());
        }
        let mut errors = Vec::new();
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                continue;
            }
            let output = crate::etcdctl::run(
                self.members[i].client_port,
                &["member", "list", "-w", "json"],
                None,
            );
            let listed = serde_json::from_str::<serde_json::Value>(&output.stdout)
                .ok()
                .and_then(|json| {
                    self.members
                        .iter()
                        .map(|m| {
                            json["members"]
                                .as_array()?
                                .iter()
                                .find(|listed| listed["name"] == m.name.as_str())?["ID"]
                                .as_u64()
                        })
                        .collect::<Option<Vec<u64>>>()
                });
            match listed {
                Some(ids) => {
                    self.member_ids = Some(ids.clone());
                    return Ok(ids);
                }
                None => errors.push(format!("{}: {output:?}", self.members[i].name)),
            }
        }
        bail!("no member listed every member: {errors:?}")
    }

    /// Cuts raft traffic between every member of `side_a` and every member
    /// of `side_b`, both directions, on top of any cut already in force;
    /// returns once the members have read their fault files.
    pub fn partition(&mut self, side_a: &[usize], side_b: &[usize]) -> Result<()> {
        let ids = self.member_ids()?;
        for (from, to) in [(side_a, side_b), (side_b, side_a)] {
            for &i in from {
                let mut blocked = self.members[i].blocked_ids();
                blocked.extend(to.iter().map(|&j| ids[j]));
                self.members[i].write_blocked_ids(&blocked)?;
            }
        }
        std::thread::sleep(PEER_FAULTS_SETTLE);
        Ok(())
    }

    /// Cuts member `i` off from every other member.
    pub fn isolate(&mut self, i: usize) -> Result<()> {
        let others: Vec<usize> = (0..self.members.len()).filter(|&j| j != i).collect();
        self.partition(&[i], &others)
    }

    /// Removes every cut; returns once the members have read their files.
    pub fn heal(&mut self) -> Result<()> {
        for member in &self.members {
            member.write_blocked_ids(&BTreeSet::new())?;
        }
        std::thread::sleep(PEER_FAULTS_SETTLE);
        Ok(())
    }

    /// Starts member `i` again on its data directory and flags without
    /// waiting for it to become healthy (e.g. to watch it refuse to run).
    pub fn start_detached(&mut self, i: usize) {
        self.members[i].kill9();
        if let Err(e) = self.spawn(i) {
            panic!("starting {}: {e:#}", self.members[i].name);
        }
    }

    /// Allocates member `name` (ports and a data directory) without starting
    /// it, for a `member add`; returns its index.
    pub fn add_member(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.to_string(),
            dir: tempfile::Builder::new()
                .prefix("retcd-cluster-")
                .tempdir()
                .expect("temporary directory"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
            starts: 0,
            joins_with: None,
        });
        self.member_ids = None;
        self.members.len() - 1
    }

    /// Starts member `i`, added with `add_member` and `member add`, to join
    /// the running cluster with `--initial-cluster-state existing` and
    /// `initial_cluster` (every member's `name=peer URL`, itself included),
    /// and waits until it is healthy.
    pub fn start_joining(&mut self, i: usize, initial_cluster: &str) {
        self.members[i].joins_with = Some(initial_cluster.to_string());
        let started = self.spawn(i).and_then(|()| self.wait_healthy(&[i]));
        if let Err(e) = started {
            panic!("joining {}: {e:#}\n{}", self.members[i].name, self.logs());
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
        let peer_faults = member.peer_faults_path();
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
            member
                .joins_with
                .as_deref()
                .unwrap_or(&self.initial_cluster),
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            if member.joins_with.is_some() {
                "existing"
            } else {
                "new"
            },
        ];
        let child = Command::new(&self.binary)
            .args(args)
            .args(&self.extra_args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(PEER_FAULTS_ENV, peer_faults)
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
