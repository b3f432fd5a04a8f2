//! The raft driver: raft-rs's `RawNode` over a raft-engine log, run by one loop.
//!
//! A member's consensus lives here and nothing else does: the server proposes
//! serialized requests, receives committed entries in log order through the
//! [`Apply`] channel, applies them to its backend, and reports back how far the
//! backend is durable. The pieces:
//!
//! - [`start`] opens (or bootstraps) the log in `NodeConfig::dir` and spawns the
//!   loop on its own OS thread (raft-engine I/O is blocking).
//! - [`RaftHandle`] is the cloneable way in: proposals, read barriers, peer
//!   messages, conf changes, status, shutdown.
//! - `node` is the loop and documents the durability order of a Ready.
//! - `storage` implements `raft::Storage` on raft-engine and documents the on-disk
//!   layout, log compaction and the conf-state history.
//! - `reads` batches and retries ReadIndex requests.
//!
//! Invariants:
//! - The raft-engine write of a Ready (entries + hard state, one batch, one fsync)
//!   is the durability point. The backend may lag behind it; on restart raft
//!   replays committed entries after `NodeConfig::applied`, and the apply side skips
//!   what it already holds.
//! - Entries reach the apply side exactly in log order, a snapshot before the
//!   entries that follow it; entries at or below `applied` are not redelivered on
//!   restart.
//! - The log is compacted only up to an index the backend reported durable.
//!
//! Contract with the apply side: call [`RaftHandle::apply_conf_change`] for every
//! conf-change entry it applies, in log order, and [`RaftHandle::report_durable_applied`]
//! after each durable backend commit.
//!
//! Snapshots to a lagging (or joining) follower are made at the index the
//! backend copy from [`SnapshotSource`] holds, not at the log's compaction
//! point, with the conf state as of that index: the copy never lags the
//! metadata, and a member added after the last compaction finds itself in
//! the conf state it receives (raft refuses a snapshot that leaves it out).
//!
//! Caveat: a snapshot received from a leader is handed over once, after its
//! metadata is durable; its data is not kept in the log. If the member crashes
//! before the backend has installed it, the backend restarts behind the snapshot
//! point (logged as a warning) and needs a fresh snapshot from the leader.

mod apply_queue;
mod conf;
mod entry_cache;
mod error;
mod handle;
mod log_fs;
mod logger;
mod metrics;
mod node;
mod reads;
mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use raft::RawNode;
use tokio::sync::watch;

pub use apply_queue::{ApplyReceiver, RecvTimeoutError, TryRecvError};
pub use conf::decode_conf_change;
pub use error::{Error, Result};
pub use handle::{OnRefused, Progress, RaftHandle, Status};
pub use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType, Snapshot,
};

use crate::conf::DeliveredConfChanges;
use crate::handle::Published;
use crate::node::{MAX_REQUESTS_PER_BATCH, Node};
use crate::reads::ReadIndexQueue;
use crate::storage::LogStorage;

/// Capacity of the client-driven request queue of the loop.
const REQUEST_QUEUE_CAPACITY: usize = 4 * MAX_REQUESTS_PER_BATCH;
/// Shortest time a `read_index` call waits for raft before timing out.
const MIN_READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);
/// Most committed-entry bytes in one Ready, bounding one apply batch.
const MAX_COMMITTED_BYTES_PER_READY: u64 = 16 << 20;

/// How to start a member's raft.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id (non-zero).
    pub id: u64,
    /// Initial voters when bootstrapping a fresh log (ignored on restart).
    /// Empty means the member joins an existing cluster: its log starts empty,
    /// at snapshot point (0, 0) with no conf state, it never campaigns on its
    /// own, and the leader brings it up to date with a snapshot (carrying the
    /// conf state that includes it) once a conf change has added it.
    pub voters: Vec<u64>,
    /// The raft-engine directory (`<data-dir>/member/wal`).
    pub dir: PathBuf,
    /// Time between raft ticks (`--heartbeat-interval`).
    pub tick_interval: Duration,
    /// Ticks without a leader before campaigning (election timeout / heartbeat interval).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// The consistent index the backend durably holds; replay starts after it.
    pub applied: u64,
    /// Compact the log after this many durably applied entries past the last compaction.
    pub snapshot_count: u64,
    /// Most bytes of entries in one append message.
    pub max_size_per_msg: u64,
    /// Most append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Whether candidates run a pre-vote first.
    pub pre_vote: bool,
    /// Whether a leader steps down when it loses contact with a quorum.
    pub check_quorum: bool,
}

/// Sends raft messages to peers; must never block.
pub trait Transport: Send + Sync + 'static {
    /// Sends `msgs` (each names its recipient in `to`).
    fn send(&self, msgs: Vec<Message>);
}

/// A transport for a member without peers: drops everything.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::debug!(count = msgs.len(), "no peers; dropping raft messages");
        }
    }
}

/// Supplies the backend's data when raft sends a snapshot to a lagging follower.
pub trait SnapshotSource: Send + Sync + 'static {
    /// A consistent copy of the backend holding every entry up to at least
    /// `min_index`, with the raft index it holds exactly (its consistent
    /// index); the snapshot sent is made at that index. `None` while no such
    /// copy is ready: raft then tries again on a later heartbeat, so a source
    /// may build the copy in the background instead of holding the raft loop.
    fn snapshot_data(&self, min_index: u64) -> Option<(u64, Bytes)>;
}

/// What the apply side receives, strictly in log order.
#[derive(Debug)]
pub enum Apply {
    /// Committed entries, normal and conf-change.
    Entries(Vec<Entry>),
    /// A snapshot from the leader, to install before any later entry.
    Snapshot(Snapshot),
}

/// Opens the log in `cfg.dir` (bootstrapping it if new) and starts the raft loop.
/// Returns the handle and the channel of committed entries for the apply side.
pub fn start(
    cfg: NodeConfig,
    transport: Arc<dyn Transport>,
    snapshots: Arc<dyn SnapshotSource>,
) -> Result<(RaftHandle, ApplyReceiver)> {
    if cfg.id == 0 {
        return Err(Error::Config("member id must not be 0".into()));
    }
    if cfg.tick_interval.is_zero() {
        return Err(Error::Config("tick interval must be positive".into()));
    }
    let mut storage = LogStorage::open(&cfg.dir, &cfg.voters, snapshots)?;
    let applied = replay_start(&cfg, &storage);
    storage.rewind_conf_history(applied)?;
    let sole_voter = storage.conf_state().voters == [cfg.id];

    let raft_cfg = raft::Config {
        id: cfg.id,
        election_tick: cfg.election_tick,
        heartbeat_tick: cfg.heartbeat_tick,
        applied,
        max_size_per_msg: cfg.max_size_per_msg,
        max_inflight_msgs: cfg.max_inflight_msgs,
        pre_vote: cfg.pre_vote,
        check_quorum: cfg.check_quorum,
        max_committed_size_per_ready: MAX_COMMITTED_BYTES_PER_READY,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let mut raw = RawNode::new(&raft_cfg, storage, &logger::raft_logger(cfg.id))?;
    if sole_voter {
        // Nobody else can win: skip the election timeout.
        raw.campaign()?;
    }

    let (requests_tx, requests) = crossbeam_channel::bounded(REQUEST_QUEUE_CAPACITY);
    let (control_tx, control) = crossbeam_channel::unbounded();
    let (apply_tx, apply_rx) = apply_queue::apply_queue();
    let published = Arc::new(Published {
        status: Mutex::new(Status::default()),
        leader: watch::Sender::new(raft::INVALID_ID),
        durable_applied: AtomicU64::new(applied),
        stopped: AtomicBool::new(false),
    });
    let election_timeout = cfg.tick_interval * u32::try_from(cfg.election_tick).unwrap_or(u32::MAX);
    let node = Node {
        id: cfg.id,
        raw,
        tick_interval: cfg.tick_interval,
        next_tick: Instant::now() + cfg.tick_interval,
        snapshot_count: cfg.snapshot_count.max(1),
        requests,
        control,
        published: published.clone(),
        transport,
        apply_tx,
        reads: ReadIndexQueue::new(cfg.id, MIN_READ_INDEX_TIMEOUT.max(2 * election_timeout)),
        conf_changes: DeliveredConfChanges::default(),
        leader_id: raft::INVALID_ID,
        readies: 0,
        log_syncs: 0,
    };
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", cfg.id))
        .spawn(move || node.run())
        .map_err(|e| Error::Config(format!("spawning the raft thread: {e}")))?;
    Ok((
        RaftHandle::new(requests_tx, control_tx, published, thread),
        apply_rx,
    ))
}

/// The index raft treats as applied at start: the backend's durable index, but
/// not below the snapshot point (those entries are gone) nor above the stored
/// commit index (raft may only apply what it knows committed; the rest is
/// redelivered once committed again and skipped by the apply side).
fn replay_start(cfg: &NodeConfig, storage: &LogStorage) -> u64 {
    let snapshot_index = storage.snapshot_point().index;
    let commit = storage.hard_state().commit;
    // Index 1 is the bootstrap point of a fresh log, which holds no entries to miss.
    if cfg.applied < snapshot_index && snapshot_index > 1 {
        tracing::warn!(
            applied = cfg.applied,
            snapshot_index,
            "backend is behind the raft snapshot point; entries up to it are not replayed"
        );
    }
    cfg.applied.max(snapshot_index).min(commit)
}
