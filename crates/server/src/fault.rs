//! Peer fault injection: a test hook that cuts this member off from chosen
//! peers, so cluster tests can partition the network without root or network
//! namespaces.
//!
//! **A test hook, never for production.** When the environment variable
//! [`FAULTS_ENV`] (`RETCD_UNSAFE_PEER_FAULTS`) names a file, the member reads
//! that file at its first peer message and then re-reads it every
//! [`POLL_INTERVAL`] on a background thread. The file lists the member ids
//! (hexadecimal, as etcd prints them, with or without `0x`) this member must
//! be cut off from, separated by commas, spaces or newlines; a line starting
//! with `#` is a comment. A missing or empty file blocks nobody.
//!
//! The peer transport (`peer.rs`) asks [`blocks`] once per message on the
//! send path (a message to a blocked peer is dropped, as a black-holing
//! network would; a snapshot is also reported failed to raft, as a broken
//! snapshot connection would be, so raft retries it after the heal) and once
//! per message on the receive path, in the step function of every peer
//! connection (a message or received snapshot from a blocked peer is dropped
//! before raft sees it). Writing B's id into A's file
//! therefore cuts both directions between A and B from A's side alone;
//! writing each side's file as well makes the cut take effect on both members
//! within one poll.
//!
//! Invariants:
//! - Without the variable, [`blocks`] is one load of an initialised
//!   `OnceLock` and returns `false`: no thread, no lock, no file access.
//! - The blocked set only changes as a whole (a fresh set replaces the old one
//!   under a write lock), and every change is logged once, at `warn`.
//! - A file that cannot be parsed leaves the previous set in force (logged),
//!   so a test that writes the file non-atomically sees no spurious heal.
//!
//! Caveats:
//! - Connections stay open: a partition drops messages, it does not reset
//!   TCP, so the transport never logs a lost connection for it.
//! - Resolution is the poll interval: a change takes effect up to
//!   [`POLL_INTERVAL`] after the file is written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::RwLock;

/// The environment variable naming the fault file.
pub const FAULTS_ENV: &str = "RETCD_UNSAFE_PEER_FAULTS";

/// How often the fault file is re-read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The hook's state: `None` when [`FAULTS_ENV`] is not set.
static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();

/// The fault file and the peers it currently blocks.
struct Faults {
    /// The file named by [`FAULTS_ENV`].
    path: PathBuf,
    /// Member ids whose traffic is dropped, both directions.
    blocked: RwLock<BTreeSet<u64>>,
}

/// Whether traffic to and from member `peer` must be dropped.
///
/// The first call reads [`FAULTS_ENV`]; if it is set, it loads the file and
/// starts the thread that follows it.
pub fn blocks(peer: u64) -> bool {
    match FAULTS.get_or_init(from_env) {
        None => false,
        Some(faults) => faults.blocked.read().contains(&peer),
    }
}

/// Reads [`FAULTS_ENV`] and, when it is set, loads the file and starts the
/// polling thread.
fn from_env() -> Option<Faults> {
    let path = PathBuf::from(std::env::var_os(FAULTS_ENV)?);
    tracing::warn!(
        file = %path.display(),
        "{FAULTS_ENV} is set: peer fault injection is enabled (a test hook, never for production)"
    );
    let faults = Faults {
        path,
        blocked: RwLock::new(BTreeSet::new()),
    };
    faults.reload();
    let spawned = std::thread::Builder::new()
        .name("peer-faults".to_string())
        .spawn(|| {
            loop {
                std::thread::sleep(POLL_INTERVAL);
                if let Some(Some(faults)) = FAULTS.get() {
                    faults.reload();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the peer fault poller; the initial set stays");
    }
    Some(faults)
}

impl Faults {
    /// Re-reads the file and installs its set if it differs from the current one.
    fn reload(&self) {
        let set = match read_set(&self.path) {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "ignoring an unreadable peer fault file");
                return;
            }
        };
        if *self.blocked.read() == set {
            return;
        }
        let listed = set
            .iter()
            .map(|id| format!("{id:x}"))
            .collect::<Vec<_>>()
            .join(",");
        *self.blocked.write() = set;
        tracing::warn!(blocked = %listed, "peer fault injection: traffic to and from these members is dropped");
    }
}

/// The set a fault file lists; a missing file lists nobody.
fn read_set(path: &Path) -> Result<BTreeSet<u64>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses hexadecimal member ids separated by commas or whitespace; lines
/// starting with `#` are comments.
fn parse(text: &str) -> Result<BTreeSet<u64>, String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|word| !word.is_empty())
        .map(|word| {
            let digits = word
                .strip_prefix("0x")
                .or_else(|| word.strip_prefix("0X"))
                .unwrap_or(word);
            u64::from_str_radix(digits, 16).map_err(|e| format!("member id {word:?}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_separated_by_commas_spaces_and_lines() {
        let set =
            parse("# cut off\n8e9e05c52164694d, 0x91bc3c398fb3c146\n\nfd422379fda50e48\n").unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![0x8e9e05c52164694d, 0x91bc3c398fb3c146, 0xfd422379fda50e48]
        );
    }

    #[test]
    fn an_empty_file_blocks_nobody() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" \n# nobody\n").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_id_is_an_error() {
        assert!(parse("8e9e05c52164694d,zz").is_err());
    }

    #[test]
    fn a_missing_file_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_set(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn reload_replaces_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults");
        let faults = Faults {
            path: path.clone(),
            blocked: RwLock::new(BTreeSet::new()),
        };
        std::fs::write(&path, "a,b").unwrap();
        faults.reload();
        assert_eq!(*faults.blocked.read(), BTreeSet::from([0xa, 0xb]));
        std::fs::write(&path, "not hex").unwrap();
        faults.reload();
        assert_eq!(*faults.blocked.read(), BTreeSet::from([0xa, 0xb]));
        std::fs::write(&path, "").unwrap();
        faults.reload();
        assert!(faults.blocked.read().is_empty());
    }
}
