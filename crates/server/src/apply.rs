//! The apply thread: executes committed raft entries against the MVCC store,
//! strictly in log order, and wakes the proposers waiting for them.
//!
//! Entries arrive in batches; one write batch covers everything that is
//! queued when the thread wakes (bounded by `MAX_BATCH_ENTRIES`). Commits are
//! non-durable (they land in the store's in-memory overlay: the raft log
//! already holds the entries). Every `DURABLE_INTERVAL` or
//! `DURABLE_ENTRIES`, and after an idle interval, the backend flusher
//! (`crate::backend_flush`) writes everything to redb and fsyncs, on its own
//! thread; only then is raft told it may compact its log up to that index.
//! A batch that changes the member list is committed durably right here.
//!
//! Invariants:
//! - An entry at or below the store's `consistent_index` was applied before a
//!   restart and is skipped: replay is idempotent.
//! - Proposers are woken only after the batch is committed, so a reader that
//!   follows the response sees its effects.
//! - A non-deterministic failure (disk) stops the member; it is never turned
//!   into a per-request error that would make replicas diverge.
//! - Active alarms (`crate::alarm`) refuse requests here, from applied state
//!   only, so every member refuses the same entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use retcd_api::etcdserverpb::{InternalRaftRequest, internal_raft_request::Request};
use retcd_api::mvccpb::Event;
use retcd_lease::{Lessor, LessorConfig};
use retcd_mvcc::watch::EventPublisher;
use retcd_mvcc::{Store, WriteBatch};
use retcd_raft::{Apply, ApplyReceiver, Entry, EntryType, RaftHandle, RecvTimeoutError};
use tokio::sync::watch;

use crate::alarm::AlarmStore;
use crate::backend_flush::BackendFlusher;
use crate::lease::{self, SharedLessor};
use crate::membership::RaftCluster;
use crate::metrics;
use crate::mvcc_metrics::Tally;
use crate::server::{Applied, ApplyResult, Waiters};

/// Most entries applied in one backend transaction.
const MAX_BATCH_ENTRIES: usize = 4096;
/// Longest time between durable backend commits while writes flow.
const DURABLE_INTERVAL: Duration = Duration::from_millis(100);
/// Most entries between durable backend commits.
const DURABLE_ENTRIES: u64 = 10_000;

/// Everything the apply thread owns.
pub struct Applier {
    /// The MVCC store entries are applied to.
    pub store: Arc<Store>,
    /// The raft loop, for conf changes and log-compaction reports.
    pub raft: RaftHandle,
    /// Proposers to wake.
    pub waiters: Arc<Waiters>,
    /// Publishes the applied raft index.
    pub applied: watch::Sender<u64>,
    /// Runtime to drive raft's async calls from this thread.
    pub runtime: tokio::runtime::Handle,
    /// Hands committed events to the watch hub; never blocks.
    pub watch: EventPublisher,
    /// The leases entries grant, revoke, checkpoint and attach keys to.
    pub lessor: SharedLessor,
    /// How the lessor is configured, to rebuild it after a raft snapshot.
    pub lessor_config: LessorConfig,
    /// The member list conf changes and membership requests update.
    pub cluster: Arc<RaftCluster>,
    /// The alarms alarm entries change and that refuse writes while active.
    pub alarms: Arc<AlarmStore>,
}

impl Applier {
    /// Runs the apply loop on its own thread until raft's channel closes.
    pub fn spawn(self, entries: ApplyReceiver) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || {
                if let Err(e) = self.run(entries) {
                    tracing::error!(error = %e, "apply failed; stopping the member");
                    std::process::exit(1);
                }
            })
            .expect("spawning the apply thread")
    }

    /// The loop: wait for entries, apply a batch, commit, wake proposers.
    fn run(self, entries: ApplyReceiver) -> anyhow::Result<()> {
        let flusher = BackendFlusher::spawn(self.store.clone(), self.raft.clone())?;
        let mut last_durable = Instant::now();
        let mut since_durable: u64 = 0;
        // A snapshot that arrived behind a batch's entries: installed next.
        let mut pending = None;
        loop {
            let first = match pending.take() {
                Some(apply) => Some(apply),
                None => match entries.recv_timeout(DURABLE_INTERVAL) {
                    Ok(apply) => Some(apply),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            if let Some(Apply::Snapshot(snapshot)) = &first {
                // Installs with no batch open; its commit is durable.
                crate::snapshot::install(&self, snapshot)?;
                last_durable = Instant::now();
                since_durable = 0;
                continue;
            }
            let mut batch = self.store.write()?;
            let mut out = BatchOutput::default();
            let mut applied = 0usize;
            if let Some(first) = first {
                applied += self.apply(&mut batch, first, &mut out)?;
                while applied < MAX_BATCH_ENTRIES {
                    match entries.try_recv() {
                        Ok(snapshot @ Apply::Snapshot(_)) => {
                            pending = Some(snapshot);
                            break;
                        }
                        Ok(more) => applied += self.apply(&mut batch, more, &mut out)?,
                        Err(_) => break,
                    }
                }
            }
            since_durable += applied as u64;
            let flush = since_durable > 0
                && (last_durable.elapsed() >= DURABLE_INTERVAL || since_durable >= DURABLE_ENTRIES);
            if applied == 0 && !flush {
                continue;
            }
            // A membership change is durable before anyone hears of it; the
            // periodic flush runs on the flusher thread, off this one.
            batch.commit(out.membership_changed)?;
            let index = self.store.consistent_index();
            if out.membership_changed {
                self.raft.report_durable_applied(index);
            }
            if flush {
                last_durable = Instant::now();
                since_durable = 0;
                flusher.request();
            }
            metrics::PROPOSALS_APPLIED.set(index as i64);
            self.applied.send_replace(index);
            self.publish(out);
        }
        drop(flusher);
        let batch = self.store.write()?;
        batch.commit(true)?;
        self.raft
            .report_durable_applied(self.store.consistent_index());
        Ok(())
    }

    /// Applies one delivery from raft; returns how many entries it held.
    fn apply(
        &self,
        batch: &mut WriteBatch<'_>,
        apply: Apply,
        out: &mut BatchOutput,
    ) -> anyhow::Result<usize> {
        match apply {
            Apply::Entries(entries) => {
                let n = entries.len();
                for entry in entries {
                    self.apply_entry(batch, &entry, out)?;
                }
                Ok(n)
            }
            Apply::Snapshot(snapshot) => anyhow::bail!(
                "the raft snapshot at index {} reached an open write batch; snapshots are \
                 installed between batches",
                snapshot.get_metadata().get_index()
            ),
        }
    }

    /// Applies one committed entry unless the store already has it.
    fn apply_entry(
        &self,
        batch: &mut WriteBatch<'_>,
        entry: &Entry,
        out: &mut BatchOutput,
    ) -> anyhow::Result<()> {
        if entry.index <= self.store.consistent_index() {
            return Ok(());
        }
        match entry.get_entry_type() {
            EntryType::EntryNormal if !entry.data.is_empty() => {
                let request = InternalRaftRequest::decode(entry.data.as_ref())?;
                if let Some(req) = request.request {
                    if let Some(result) = self.cluster.apply_request(batch, &req) {
                        out.results
                            .push((request.id, result.map(Applied::Members).map_err(Into::into)));
                        out.membership_changed = true;
                        batch.set_consistent_index(entry.index, entry.term);
                        return Ok(());
                    }
                    let started = Instant::now();
                    let mut lessor = self.lessor.lock();
                    let result = match req {
                        Request::Alarm(alarm) => {
                            Ok(Applied::Alarm(self.alarms.apply(batch, &alarm)))
                        }
                        req => self
                            .alarms
                            .gate(&req)
                            .and_then(|()| execute(batch, &mut lessor, req)),
                    };
                    if let Err(e) = &result
                        && !e.is_deterministic()
                    {
                        anyhow::bail!("applying entry {}: {e}", entry.index);
                    }
                    if started.elapsed() > metrics::SLOW_APPLY {
                        metrics::SLOW_APPLIES.inc();
                    }
                    out.results.push((request.id, result));
                    // Attachments move per entry, so the next entry sees them.
                    let events = batch.take_events();
                    lease::track_attachments(&mut lessor, &events);
                    out.events.extend(events);
                }
            }
            EntryType::EntryNormal => {}
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                // The member list changes in this batch, raft's configuration
                // right after; a refused change touches neither.
                let cc = retcd_raft::decode_conf_change(entry)?;
                let outcome = self.cluster.apply_conf_change(batch, &cc);
                if outcome.apply_to_raft
                    && let Err(e) = self.runtime.block_on(self.raft.apply_conf_change(cc))
                {
                    tracing::error!(index = entry.index, error = %e, "raft refused a validated conf change");
                }
                if let Some(id) = outcome.request_id {
                    let result = outcome.result.map(Applied::Members).map_err(Into::into);
                    out.results.push((id, result));
                }
                out.membership_changed = true;
            }
        }
        batch.set_consistent_index(entry.index, entry.term);
        Ok(())
    }
}

impl Applier {
    /// Hands a committed batch's outcome on: events to their consumers,
    /// results to the waiting proposers.
    fn publish(&self, out: BatchOutput) {
        // Responses first: waking the watch dispatcher may cost this thread
        // its CPU for a while, and proposers should not wait for that.
        self.waiters.fire(out.results);
        self.watch.publish(out.events);
    }
}

/// What applying one batch produced, handed on once the batch is committed.
#[derive(Default)]
struct BatchOutput {
    /// Results for proposers, by request id.
    results: Vec<(u64, ApplyResult)>,
    /// Every event of the batch, in revision order.
    events: Vec<Event>,
    /// Whether the member list changed: the batch is committed durably, so a
    /// removed member never restarts into the cluster.
    membership_changed: bool,
}

/// Executes one client request inside the batch.
fn execute(batch: &mut WriteBatch<'_>, lessor: &mut Lessor, request: Request) -> ApplyResult {
    let lease_exists = |id: i64| lessor.contains(id);
    Ok(match request {
        Request::Put(req) => {
            let resp = batch.put(&req, &lease_exists)?;
            Tally::put(&req).record();
            Applied::Put(resp)
        }
        Request::DeleteRange(req) => {
            let resp = batch.delete_range(&req)?;
            Tally::delete_range(&req).record();
            Applied::DeleteRange(resp)
        }
        Request::Txn(req) => {
            let resp = batch.txn(&req, &lease_exists)?;
            for part in Tally::txn(&req, &resp, false) {
                part.record();
            }
            Applied::Txn(resp)
        }
        Request::Compaction(req) => Applied::Compaction(batch.compact(req.revision)?),
        Request::LeaseGrant(req) => return lease::apply_grant(batch, lessor, &req),
        Request::LeaseRevoke(req) => return lease::apply_revoke(batch, lessor, &req),
        Request::LeaseCheckpoint(req) => return lease::apply_checkpoint(batch, lessor, &req),
        Request::MemberAttrSet(_) | Request::MemberPeerUpdate(_) => {
            unreachable!("membership requests are applied by crate::membership before execute")
        }
        Request::Alarm(_) => unreachable!("alarm requests are applied by the alarm store"),
    })
}
