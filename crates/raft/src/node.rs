//! The raft loop: one OS thread drives raft-rs's `RawNode` over raft-engine.
//!
//! Each turn of the loop:
//!
//! 1. Waits for a request or control message, at most until the next tick is due.
//! 2. Drains everything queued, up to [`MAX_REQUESTS_PER_BATCH`]: peer messages
//!    are stepped, proposals are stepped together as ONE `MsgPropose` (so they
//!    share one Ready, one log write and one fsync), and all new `read_index`
//!    callers share one ReadIndex request.
//! 3. Ticks if due (which also re-sends unanswered ReadIndex requests).
//! 4. Compacts the log if the backend has durably applied `snapshot_count`
//!    entries past the snapshot point.
//! 5. Handles the Ready, in this order:
//!    - messages raft may send before persisting (a leader's appends and
//!      heartbeats): replication overlaps the leader's own fsync (raft thesis
//!      10.2.1);
//!    - read states resolve their `read_index` callers;
//!    - committed entries go to the apply side. They are already durable here (raft
//!      only commits persisted entries), so applying overlaps this Ready's fsync;
//!    - the snapshot (if any), new entries and hard state are written as ONE
//!      raft-engine batch, synced when raft requires it. This write is the
//!      durability point: nothing a peer or client learns from the messages below
//!      may be lost;
//!    - a received snapshot goes to the apply side only after it is durable and
//!      before any entry that follows it;
//!    - messages that must follow persistence (votes, a follower's append
//!      responses) are sent;
//!    - `advance`, then the light ready: its commit index is cached for the next
//!      write, its messages are sent and its committed entries applied.
//!
//! Caveats:
//! - The apply channel is unbounded so the loop never blocks on the apply side
//!   (which itself waits on the loop in `apply_conf_change`); instead proposals
//!   fail with `TooManyRequests` while [`MAX_APPLY_BACKLOG_BATCHES`] batches wait.
//! - A proposal forwarded by a follower resolves `Ok` once forwarded; the leader
//!   may still drop it, which the caller learns only by never seeing it applied.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};
use raft_engine::LogBatch;

use crate::apply_queue::ApplySender;
use crate::conf::DeliveredConfChanges;
use crate::handle::{Control, Progress, Published, Request, Status, Verdict};
use crate::metrics::metrics;
use crate::reads::ReadIndexQueue;
use crate::storage::LogStorage;
use crate::{Apply, Error, Result, Transport};

/// Most client-driven requests handled per turn of the loop.
pub(crate) const MAX_REQUESTS_PER_BATCH: usize = 4096;
/// Most control requests handled per turn of the loop.
const MAX_CONTROLS_PER_BATCH: usize = 64;
/// Apply batches waiting on the apply side before proposals are refused.
pub(crate) const MAX_APPLY_BACKLOG_BATCHES: usize = 1024;
/// Entries kept below the snapshot point when compacting, so followers slightly
/// behind catch up from the log instead of a full snapshot (etcd keeps 5000);
/// never more than `snapshot_count`.
const COMPACTION_MARGIN_ENTRIES: u64 = 5000;

/// A proposal waiting for raft's verdict.
type Proposal = (Vec<u8>, Verdict);

/// The loop's state; owned by the loop's thread.
pub(crate) struct Node {
    /// This member's id.
    pub(crate) id: u64,
    /// raft-rs, owning the storage.
    pub(crate) raw: RawNode<LogStorage>,
    /// Time between ticks.
    pub(crate) tick_interval: Duration,
    /// When the next tick is due.
    pub(crate) next_tick: Instant,
    /// Entries durably applied past the snapshot point that trigger a compaction.
    pub(crate) snapshot_count: u64,
    /// Client-driven requests.
    pub(crate) requests: Receiver<Request>,
    /// Control requests.
    pub(crate) control: Receiver<Control>,
    /// State shared with the handles.
    pub(crate) published: Arc<Published>,
    /// Sends raft messages to peers.
    pub(crate) transport: Arc<dyn Transport>,
    /// Committed entries and snapshots, in order, to the apply side.
    pub(crate) apply_tx: ApplySender,
    /// ReadIndex requests in flight.
    pub(crate) reads: ReadIndexQueue,
    /// Conf-change entries handed to the apply side.
    pub(crate) conf_changes: DeliveredConfChanges,
    /// The last leader id published.
    pub(crate) leader_id: u64,
    /// Readies handled.
    pub(crate) readies: u64,
    /// Synced log writes.
    pub(crate) log_syncs: u64,
}

impl Node {
    /// Runs the loop until shutdown, a dropped handle, or a fatal error.
    pub(crate) fn run(mut self) {
        self.publish_status();
        match self.run_loop() {
            Ok(()) => tracing::info!(member = self.id, "raft loop stopped"),
            Err(Error::Stopped) => {
                tracing::info!(member = self.id, "apply side gone; raft loop stopped")
            }
            Err(e) => tracing::error!(member = self.id, "raft loop failed: {e}"),
        }
        self.finish();
    }

    /// The loop proper; `Ok` on an orderly stop.
    fn run_loop(&mut self) -> Result<()> {
        while !self.published.stopped.load(Ordering::Acquire) {
            if !self.wait_and_drain()? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick(now);
            }
            self.maybe_compact()?;
            if self.raw.has_ready() {
                self.handle_ready()?;
            }
        }
        Ok(())
    }

    /// Waits for work or the next tick, then handles everything queued. Returns
    /// false when the loop must stop.
    fn wait_and_drain(&mut self) -> Result<bool> {
        let timeout = self.next_tick.saturating_duration_since(Instant::now());
        let mut requests = Vec::new();
        let mut controls = Vec::new();
        crossbeam_channel::select! {
            recv(self.requests) -> req => match req {
                Ok(req) => requests.push(req),
                Err(_) => return Ok(false),
            },
            recv(self.control) -> ctl => match ctl {
                Ok(ctl) => controls.push(ctl),
                Err(_) => return Ok(false),
            },
            default(timeout) => {}
        }
        while controls.len() < MAX_CONTROLS_PER_BATCH {
            let Ok(ctl) = self.control.try_recv() else {
                break;
            };
            controls.push(ctl);
        }
        while requests.len() < MAX_REQUESTS_PER_BATCH {
            let Ok(req) = self.requests.try_recv() else {
                break;
            };
            requests.push(req);
        }
        for ctl in controls {
            if !self.handle_control(ctl)? {
                return Ok(false);
            }
        }
        self.handle_requests(requests);
        Ok(true)
    }

    /// Handles one control request; false means stop.
    fn handle_control(&mut self, ctl: Control) -> Result<bool> {
        match ctl {
            Control::ApplyConfChange(cc, done) => {
                let index = self
                    .conf_changes
                    .take_index(&cc)
                    .unwrap_or(self.raw.raft.raft_log.applied);
                let result = match self.raw.apply_conf_change(&cc) {
                    Ok(cs) => {
                        self.raw.mut_store().record_conf_state(index, cs.clone())?;
                        tracing::info!(member = self.id, index, ?cs, "applied conf change");
                        Ok(cs)
                    }
                    Err(e) => Err(Error::Raft(e)),
                };
                let _ = done.send(result);
            }
            Control::TransferLeader(to) => self.raw.transfer_leader(to),
            Control::Progress(done) => {
                let raft = &self.raw.raft;
                let progress = (raft.state == StateRole::Leader).then(|| {
                    let learners = raft.prs().conf().learners();
                    raft.prs()
                        .iter()
                        .map(|(&id, pr)| Progress {
                            id,
                            matched: pr.matched,
                            is_learner: learners.contains(&id),
                        })
                        .collect()
                });
                let _ = done.send(progress);
            }
            Control::Shutdown => return Ok(false),
        }
        Ok(true)
    }

    /// Steps peer messages, proposes, and issues one ReadIndex for new readers.
    fn handle_requests(&mut self, requests: Vec<Request>) {
        let mut proposals = Vec::new();
        let mut readers = Vec::new();
        for req in requests {
            match req {
                Request::Propose(data, done) => proposals.push((data, done)),
                Request::ProposeConfChange(cc, done) => {
                    let result = self.raw.propose_conf_change(Vec::new(), cc);
                    let _ = done.send(result.map_err(|e| self.refusal(&e)));
                }
                Request::ReadIndex(waiter) => readers.push(waiter),
                Request::Step(msg) => {
                    if let Err(e) = self.raw.step(msg) {
                        tracing::debug!(member = self.id, "ignored peer message: {e}");
                    }
                }
                Request::ReportUnreachable(id) => self.raw.report_unreachable(id),
                Request::ReportSnapshot { to, ok } => {
                    let status = if ok {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    self.raw.report_snapshot(to, status);
                }
            }
        }
        self.propose_batch(proposals);
        self.reads.issue(&mut self.raw, readers, Instant::now());
    }

    /// Steps all `proposals` as one `MsgPropose` and resolves them with its verdict.
    fn propose_batch(&mut self, proposals: Vec<Proposal>) {
        if proposals.is_empty() {
            return;
        }
        if self.apply_tx.len() >= MAX_APPLY_BACKLOG_BATCHES {
            for (_, verdict) in proposals {
                verdict.send(Err(Error::TooManyRequests));
            }
            return;
        }
        let (entries, waiters): (Vec<Entry>, Vec<_>) = proposals
            .into_iter()
            .map(|(data, done)| {
                let entry = Entry {
                    data: data.into(),
                    ..Default::default()
                };
                (entry, done)
            })
            .unzip();
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgPropose);
        msg.from = self.id;
        msg.set_entries(entries.into());
        let refused = self.raw.step(msg).err();
        if let Some(e) = &refused {
            tracing::debug!(
                member = self.id,
                count = waiters.len(),
                "proposals refused: {e}"
            );
        }
        for verdict in waiters {
            verdict.send(match &refused {
                None => Ok(()),
                Some(e) => Err(self.refusal(e)),
            });
        }
    }

    /// The error a caller sees when raft refuses its proposal.
    fn refusal(&self, e: &raft::Error) -> Error {
        if !matches!(e, raft::Error::ProposalDropped) {
            tracing::warn!(member = self.id, "proposal failed: {e}");
        }
        if self.raw.raft.leader_id == raft::INVALID_ID {
            Error::NoLeader
        } else {
            Error::ProposalDropped
        }
    }

    /// Advances raft's clock by one tick.
    fn tick(&mut self, now: Instant) {
        self.raw.tick();
        self.reads.on_tick(&mut self.raw, now);
        self.next_tick += self.tick_interval;
        if self.next_tick <= now {
            self.next_tick = now + self.tick_interval;
        }
    }

    /// Compacts the log once the backend durably holds `snapshot_count` entries past
    /// the snapshot point (never past what was handed to the apply side).
    fn maybe_compact(&mut self) -> Result<()> {
        let durable = self.published.durable_applied.load(Ordering::Acquire);
        let target = durable.min(self.raw.raft.raft_log.applied);
        let point = self.raw.store().snapshot_point().index;
        if target < point.saturating_add(self.snapshot_count) {
            return Ok(());
        }
        let margin = COMPACTION_MARGIN_ENTRIES.min(self.snapshot_count);
        if self.raw.mut_store().compact(target, margin)? {
            tracing::info!(
                member = self.id,
                snapshot_index = target,
                first_index = self.raw.store().first_index_inner(),
                "compacted raft log"
            );
            self.publish_status();
        }
        Ok(())
    }

    /// Handles one Ready in the order the module documentation gives.
    fn handle_ready(&mut self) -> Result<()> {
        let mut rd = self.raw.ready();
        self.readies += 1;
        if let Some(ss) = rd.ss() {
            let (leader_id, role) = (ss.leader_id, ss.raft_state);
            self.on_soft_state(leader_id, role);
        }
        if !rd.messages().is_empty() {
            self.transport.send(rd.take_messages());
        }
        for rs in rd.read_states() {
            self.reads.on_read_state(rs);
        }

        let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
        let mut batch = LogBatch::default();
        if let Some(snap) = &snapshot {
            self.raw.mut_store().stage_snapshot(&mut batch, snap)?;
            self.conf_changes.clear();
        } else {
            self.deliver(rd.take_committed_entries())?;
        }
        let store = self.raw.mut_store();
        store.stage_entries(&mut batch, rd.entries())?;
        if let Some(hs) = rd.hs() {
            store.set_hard_state(hs.clone());
        }
        store.stage_hard_state(&mut batch)?;
        self.persist(&mut batch, rd.must_sync())?;
        if let Some(snap) = snapshot {
            tracing::info!(
                member = self.id,
                index = snap.get_metadata().index,
                "installed raft snapshot"
            );
            self.send_apply(Apply::Snapshot(snap))?;
            self.deliver(rd.take_committed_entries())?;
        }
        if !rd.persisted_messages().is_empty() {
            self.transport.send(rd.take_persisted_messages());
        }

        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        if !light.messages().is_empty() {
            self.transport.send(light.take_messages());
        }
        self.deliver(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.publish_status();
        Ok(())
    }

    /// Writes `batch`; with `sync` this is the Ready's one fsync.
    fn persist(&mut self, batch: &mut LogBatch, sync: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        self.raw.store().write(batch, sync)?;
        if sync {
            self.log_syncs += 1;
            metrics()
                .wal_fsync_seconds
                .observe(start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Hands committed entries to the apply side, noting conf changes among them.
    fn deliver(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in &entries {
            if matches!(
                entry.get_entry_type(),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2
            ) {
                self.conf_changes.delivered(entry);
            }
        }
        self.send_apply(Apply::Entries(entries))
    }

    /// Queues `apply` for the apply side.
    fn send_apply(&self, apply: Apply) -> Result<()> {
        self.apply_tx.send(apply).map_err(|_| Error::Stopped)
    }

    /// Publishes a leader change.
    fn on_soft_state(&mut self, leader_id: u64, role: StateRole) {
        let m = metrics();
        m.is_leader.set(i64::from(role == StateRole::Leader));
        if leader_id == self.leader_id {
            return;
        }
        if leader_id != raft::INVALID_ID {
            m.leader_changes.inc();
        }
        m.has_leader.set(i64::from(leader_id != raft::INVALID_ID));
        tracing::info!(
            member = self.id,
            leader = leader_id,
            term = self.raw.raft.term,
            "raft leader changed"
        );
        self.leader_id = leader_id;
        // The status first: whoever sees the new leader through the watch
        // (e.g. `/health`) must find the same leader in `status()`, even
        // while this Ready's log write is still under way.
        self.publish_status();
        self.published.leader.send_replace(leader_id);
    }

    /// Refreshes the published status and the commit metric.
    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let status = Status {
            id: self.id,
            // The leader published through the watch, so both views agree.
            leader_id: self.leader_id,
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: raft.raft_log.applied,
            last_index: raft.raft_log.last_index(),
            first_index: raft.raft_log.store.first_index_inner(),
            snapshot_index: raft.raft_log.store.snapshot_point().index,
            is_learner: raft.prs().conf().learners().contains(&self.id),
            readies: self.readies,
            log_syncs: self.log_syncs,
        };
        *self.published.status.lock() = status;
        metrics()
            .proposals_committed
            .set(i64::try_from(status.commit_index).unwrap_or(i64::MAX));
    }

    /// Fails waiting readers and queued requests, flushes the log and publishes
    /// "no leader".
    fn finish(&mut self) {
        self.published.stopped.store(true, Ordering::Release);
        self.reads.stop();
        // Nothing queued will be handled now. Dropping a request answers its
        // caller with `Stopped`; the handles queue no more once `stopped` is set
        // (bar a race), so this drains at most one queue's worth.
        self.requests
            .try_iter()
            .take(crate::REQUEST_QUEUE_CAPACITY)
            .for_each(drop);
        if let Err(e) = self.raw.mut_store().sync() {
            tracing::error!(member = self.id, "flushing raft log at stop: {e}");
        }
        if self.raw.raft.state == StateRole::Leader {
            metrics().is_leader.set(0);
        }
        self.leader_id = raft::INVALID_ID;
        self.published.leader.send_replace(raft::INVALID_ID);
        let mut status = self.published.status.lock();
        status.leader_id = raft::INVALID_ID;
    }
}
