//! Shared helpers for the raft driver's integration tests: configs, an apply-side
//! recorder, an in-memory transport, and polling with generous deadlines (tests
//! wait for outcomes, never for a fixed time).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use retcd_raft::{
    Apply, ConfState, Entry, EntryType, Message, MessageType, NodeConfig, RaftHandle,
    SnapshotSource, Transport,
};

/// How long any awaited outcome may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Raft tick in tests: short so elections are quick, irrelevant for correctness.
pub const TICK: Duration = Duration::from_millis(10);

/// A config for member `id` with `voters`, storing its log in `dir`.
pub fn config(id: u64, voters: &[u64], dir: &Path, applied: u64) -> NodeConfig {
    NodeConfig {
        id,
        voters: voters.to_vec(),
        dir: dir.to_path_buf(),
        tick_interval: TICK,
        election_tick: 10,
        heartbeat_tick: 1,
        applied,
        snapshot_count: 100_000,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: true,
    }
}

/// A backend with nothing to snapshot, always exactly at the index asked for.
pub struct NoData;

impl SnapshotSource for NoData {
    fn snapshot_data(&self, min_index: u64) -> Option<(u64, bytes::Bytes)> {
        Some((min_index, bytes::Bytes::new()))
    }
}

/// Polls `cond` until it holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Plays the apply side on its own thread: records every entry, applies conf
/// changes to raft, and reports each batch durable at once.
#[derive(Clone, Default)]
pub struct Applied {
    /// Every delivered entry, in delivery order.
    pub entries: Arc<Mutex<Vec<Entry>>>,
    /// The conf state raft returned for each applied conf change.
    pub conf_states: Arc<Mutex<Vec<ConfState>>>,
    /// Snapshots installed: (entries delivered before it, snapshot index).
    pub snapshots: Arc<Mutex<Vec<(usize, u64)>>>,
}

impl Applied {
    /// Starts recording `rx` for `raft`.
    pub fn spawn(raft: RaftHandle, rx: retcd_raft::ApplyReceiver) -> Applied {
        let applied = Applied::default();
        let entries = applied.entries.clone();
        let conf_states = applied.conf_states.clone();
        let snapshots = applied.snapshots.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for apply in rx {
                let batch = match apply {
                    Apply::Entries(batch) => batch,
                    Apply::Snapshot(snap) => {
                        // Installing = taking the snapshot point as the new state.
                        let index = snap.get_metadata().index;
                        snapshots.lock().push((entries.lock().len(), index));
                        raft.report_durable_applied(index);
                        continue;
                    }
                };
                let last = batch.last().map_or(0, |e| e.index);
                for entry in &batch {
                    if entry.get_entry_type() != EntryType::EntryNormal {
                        let cc = retcd_raft::decode_conf_change(entry).unwrap();
                        let cs = runtime.block_on(raft.apply_conf_change(cc)).unwrap();
                        conf_states.lock().push(cs);
                    }
                }
                entries.lock().extend(batch);
                raft.report_durable_applied(last);
            }
        });
        applied
    }

    /// The data of every non-empty normal entry, in order.
    pub fn data(&self) -> Vec<Vec<u8>> {
        self.entries
            .lock()
            .iter()
            .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| e.data.to_vec())
            .collect()
    }

    /// Index of the last delivered entry (0 if none).
    pub fn last_index(&self) -> u64 {
        self.entries.lock().last().map_or(0, |e| e.index)
    }

    /// Index of the entry carrying `data`.
    pub fn index_of(&self, data: &[u8]) -> Option<u64> {
        self.entries
            .lock()
            .iter()
            .find(|e| &e.data[..] == data)
            .map(|e| e.index)
    }

    /// Waits until an entry carrying `data` was delivered.
    pub fn wait_for(&self, data: &[u8]) -> u64 {
        let mut index = None;
        wait_until(
            &format!("{:?} applied", String::from_utf8_lossy(data)),
            || {
                index = self.index_of(data);
                index.is_some()
            },
        );
        index.unwrap()
    }

    /// Asserts delivered indices are contiguous and increasing from `first`.
    pub fn assert_contiguous_from(&self, first: u64) {
        let entries = self.entries.lock();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, first + i as u64, "entries delivered out of order");
        }
    }
}

/// An in-memory network: delivers each message to the recipient's handle and
/// reports delivered snapshots to their sender.
#[derive(Default)]
pub struct Network {
    members: RwLock<HashMap<u64, RaftHandle>>,
}

impl Network {
    /// Connects member `id`.
    pub fn join(&self, id: u64, raft: RaftHandle) {
        self.members.write().insert(id, raft);
    }

    /// Disconnects member `id` (messages to it are lost).
    pub fn leave(&self, id: u64) {
        self.members.write().remove(&id);
    }
}

impl Transport for Network {
    fn send(&self, msgs: Vec<Message>) {
        let members = self.members.read();
        for msg in msgs {
            let (from, to) = (msg.from, msg.to);
            let snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            match members.get(&to) {
                Some(peer) => peer.step(msg),
                None => continue,
            }
            if snapshot && let Some(sender) = members.get(&from) {
                sender.report_snapshot(to, true);
            }
        }
    }
}

/// Runs `fut` to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}
