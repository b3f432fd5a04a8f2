//! The etcd server core: what every API service calls.
//!
//! A write becomes an `InternalRaftRequest` stamped with a unique id; the
//! proposer registers a waiter under that id, hands the bytes to raft, and
//! sleeps until the apply thread has executed the entry and committed its
//! effects to the backend, which then wakes the waiter with the result. A
//! linearizable read asks raft for a read index and waits until the apply
//! thread has reached it; a serializable read goes straight to the store.
//!
//! Invariants:
//! - A waiter is removed exactly once: by the applier (result delivered), by
//!   raft's refusal of the proposal (error delivered), or by the proposer when
//!   it gives up (timeout).
//! - Replayed entries after a restart have no waiters; their results are dropped.
//! - A proposal that adds data passes the backend quota first
//!   (`crate::alarm`): one that does not fit raises this member's NOSPACE
//!   alarm and is refused without reaching the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message;
use retcd_api::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmType, CompactionResponse, DeleteRangeResponse,
    InternalRaftRequest, LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse,
    PutResponse, ResponseHeader, TxnResponse, alarm_request::AlarmAction,
    internal_raft_request::Request,
};
use retcd_mvcc::Store;
use retcd_raft::RaftHandle;
use tokio::sync::{oneshot, watch};

use crate::alarm::{self, AlarmStore, Quota};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::RequestIdGenerator;
use crate::lease::SharedLessor;
use crate::membership::{Change, Member, RaftCluster, conf_change};

/// etcd carries a proposal's id in a `RequestHeader` (field 100) where we
/// write a bare field 1: three bytes more (two-byte tag, length, inner tag),
/// which etcd's `--max-request-bytes` check counts, so ours does too.
const ETCD_ID_HEADER_EXTRA_BYTES: usize = 3;
/// How long a proposer waits for its entry to be applied (etcd: 5 s plus two election timeouts).
pub fn request_timeout(cfg: &Config) -> Duration {
    Duration::from_secs(5) + 2 * cfg.election_timeout
}

/// The result of applying one request.
#[derive(Debug)]
pub enum Applied {
    /// A put's response.
    Put(PutResponse),
    /// A delete's response.
    DeleteRange(DeleteRangeResponse),
    /// A txn's response.
    Txn(TxnResponse),
    /// A compaction's response.
    Compaction(CompactionResponse),
    /// A lease grant's response.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revoke's response.
    LeaseRevoke(LeaseRevokeResponse),
    /// A lease checkpoint's response.
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// A membership change's result: the member list after it.
    Members(Vec<Member>),
    /// An alarm request's result: the alarms it reports.
    Alarm(Vec<AlarmMember>),
}

/// What the applier hands a waiting proposer.
pub type ApplyResult = std::result::Result<Applied, Error>;

/// Proposers waiting for their entries to be applied, by request id.
#[derive(Debug, Default)]
pub struct Waiters {
    /// Pending waiters.
    pending: Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>,
}

impl Waiters {
    /// Registers a waiter for `id`.
    fn register(&self, id: u64) -> oneshot::Receiver<ApplyResult> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        rx
    }

    /// Forgets the waiter for `id`, if still there.
    fn cancel(&self, id: u64) {
        self.pending.lock().remove(&id);
    }

    /// Fails the waiter for `id` with `err`, if still there.
    fn fail(&self, id: u64, err: Error) {
        let tx = self.pending.lock().remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(Err(err));
        }
    }

    /// Delivers results; ids nobody waits for are ignored.
    pub fn fire(&self, results: Vec<(u64, ApplyResult)>) {
        if results.is_empty() {
            return;
        }
        let mut senders = Vec::with_capacity(results.len());
        {
            let mut pending = self.pending.lock();
            for (id, result) in results {
                if let Some(tx) = pending.remove(&id) {
                    senders.push((tx, result));
                }
            }
        }
        for (tx, result) in senders {
            let _ = tx.send(result);
        }
    }
}

/// Shared state of a running member.
pub struct EtcdServer {
    /// The configuration it runs with.
    pub cfg: Config,
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// The cluster's live member list (shared with the apply thread).
    pub cluster: Arc<RaftCluster>,
    /// The MVCC store.
    pub store: Arc<Store>,
    /// Handle to the raft loop.
    pub raft: RaftHandle,
    /// Proposers waiting for apply results.
    pub waiters: Arc<Waiters>,
    /// Every lease of the member (shared with the apply thread).
    pub lessor: SharedLessor,
    /// The cluster's active alarms (shared with the apply thread).
    pub alarms: Arc<AlarmStore>,
    /// The backend quota proposals are checked against.
    quota: Quota,
    /// Request id source.
    ids: RequestIdGenerator,
    /// Raft index the applier has reached.
    applied: watch::Receiver<u64>,
}

impl EtcdServer {
    /// Assembles the server core from the parts `serve::run` started, one
    /// argument per part.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        member_id: u64,
        cluster_id: u64,
        cluster: Arc<RaftCluster>,
        store: Arc<Store>,
        raft: RaftHandle,
        waiters: Arc<Waiters>,
        lessor: SharedLessor,
        alarms: Arc<AlarmStore>,
        applied: watch::Receiver<u64>,
    ) -> EtcdServer {
        EtcdServer {
            quota: Quota::new(cfg.quota_backend_bytes),
            cfg,
            member_id,
            cluster_id,
            cluster,
            store,
            raft,
            waiters,
            lessor,
            alarms,
            ids: RequestIdGenerator::new(member_id),
            applied,
        }
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft.status().term,
        }
    }

    /// Completes a header the store started (it knows only the revision).
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header
            .as_ref()
            .map_or_else(|| self.store.current_revision(), |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Replicates `request` through raft and returns its apply result.
    pub async fn propose(&self, request: Request) -> Result<Applied> {
        self.check_quota(&request).await?;
        self.propose_unchecked(request).await
    }

    /// Refuses `request` if the backend has no room for it, after raising
    /// this member's NOSPACE alarm (once: an active alarm is not proposed again).
    async fn check_quota(&self, request: &Request) -> Result<()> {
        let cost = alarm::cost(request);
        if cost == 0 || self.quota.has_room(self.store.db_size_bytes(), cost) {
            return Ok(());
        }
        if !self.alarms.has(self.member_id, AlarmType::Nospace) {
            let activate = Request::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            });
            // The refusal stands whether or not the alarm got through; a
            // later write tries again.
            if let Err(e) = self.propose_unchecked(activate).await {
                tracing::warn!(error = %e, "raising the NOSPACE alarm failed");
            }
        }
        Err(Error::NoSpace)
    }

    /// Replicates `request` through raft without the quota check.
    async fn propose_unchecked(&self, request: Request) -> Result<Applied> {
        let id = self.ids.next();
        let data = InternalRaftRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() + ETCD_ID_HEADER_EXTRA_BYTES > self.cfg.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let rx = self.waiters.register(id);
        // Not awaiting raft's verdict saves the request task a wake-up; a
        // refusal reaches it through the waiter instead, as the same error.
        let waiters = Arc::clone(&self.waiters);
        self.raft.propose_detached(
            data,
            Box::new(move |e: retcd_raft::Error| waiters.fail(id, e.into())),
        );
        self.wait_result(id, rx).await
    }

    /// Replicates a membership change (`crate::membership::conf_change`) and
    /// returns the member list after it is applied.
    pub async fn propose_member_change(&self, change: &Change) -> Result<Vec<Member>> {
        let id = self.ids.next();
        let rx = self.waiters.register(id);
        if let Err(e) = self.raft.propose_conf_change(conf_change(id, change)).await {
            self.waiters.cancel(id);
            return Err(e.into());
        }
        match self.wait_result(id, rx).await? {
            Applied::Members(members) => Ok(members),
            other => panic!("a membership change applied as {other:?}"),
        }
    }

    /// Waits for the apply result of request `id`.
    async fn wait_result(&self, id: u64, rx: oneshot::Receiver<ApplyResult>) -> Result<Applied> {
        match tokio::time::timeout(request_timeout(&self.cfg), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                self.waiters.cancel(id);
                Err(Error::Timeout)
            }
        }
    }

    /// A fresh positive lease id, unique like request ids (etcd derives
    /// server-chosen lease ids the same way).
    pub fn new_lease_id(&self) -> i64 {
        loop {
            let id = (self.ids.next() & i64::MAX as u64) as i64;
            if id != retcd_lease::NO_LEASE {
                return id;
            }
        }
    }

    /// Waits until this member has applied everything committed before the call.
    pub async fn linearizable_read_barrier(&self) -> Result<()> {
        let index = self.raft.read_index().await?;
        self.wait_applied(index).await
    }

    /// Waits until the applier has reached raft index `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<()> {
        let mut applied = self.applied.clone();
        let wait = applied.wait_for(|&a| a >= index);
        match tokio::time::timeout(request_timeout(&self.cfg), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// The raft index the applier has reached.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }
}
