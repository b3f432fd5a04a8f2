//! [`RaftHandle`]: how the rest of the member talks to the raft loop.
//!
//! Requests travel to the loop's thread over two channels. Client-driven traffic
//! (proposals, reads, peer messages, transport reports) uses a bounded queue and
//! never blocks: when it is full, proposals and reads fail with
//! [`Error::TooManyRequests`] and peer messages are dropped (raft retransmits).
//! Control traffic (conf changes from the apply side, leader transfer, shutdown)
//! is rare, bounded by its callers, and must never be refused, so it has its own
//! unbounded queue. State the loop publishes (status, leader) is read without
//! going through the loop.
//!
//! A proposal learns raft's verdict one of two ways: [`RaftHandle::propose`]
//! awaits it, while [`RaftHandle::propose_detached`] only hears of a refusal,
//! through a callback the loop runs. The second spares a caller that waits for
//! the entry to be applied anyway one cross-thread wake-up per write. Its
//! callback runs at most once; a proposal the loop drops unanswered (it stopped)
//! counts as refused with [`Error::Stopped`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;
use raft::eraftpb::{ConfChangeV2, ConfState, Message};
use tokio::sync::{oneshot, watch};

use crate::reads::ReadWaiter;
use crate::{Error, Result};

/// A client-driven request to the loop.
pub(crate) enum Request {
    /// Append `data` as a normal entry.
    Propose(Vec<u8>, Verdict),
    /// Propose a membership change.
    ProposeConfChange(ConfChangeV2, oneshot::Sender<Result<()>>),
    /// Wait for a linearizable read index.
    ReadIndex(ReadWaiter),
    /// A message from a peer.
    Step(Message),
    /// The transport could not reach a peer.
    ReportUnreachable(u64),
    /// The transport finished sending a snapshot to a peer.
    ReportSnapshot { to: u64, ok: bool },
}

/// Called with the reason a detached proposal was refused, on whichever thread
/// learns of it: usually the raft loop's, so it must be quick and never block.
pub type OnRefused = Box<dyn FnOnce(Error) + Send>;

/// Where the loop sends its verdict on a proposal.
pub(crate) enum Verdict {
    /// The proposer awaits the verdict, whatever it is.
    Reply(oneshot::Sender<Result<()>>),
    /// The proposer hears only of a refusal.
    Detached(RefusalGuard),
}

impl Verdict {
    /// Delivers raft's verdict.
    pub(crate) fn send(self, verdict: Result<()>) {
        match self {
            Verdict::Reply(tx) => {
                let _ = tx.send(verdict);
            }
            Verdict::Detached(guard) => match verdict {
                Ok(()) => guard.accepted(),
                Err(e) => guard.refused(e),
            },
        }
    }
}

/// Holds an [`OnRefused`] callback and runs it at most once: with raft's
/// refusal, or with [`Error::Stopped`] if dropped without a verdict.
pub(crate) struct RefusalGuard(Option<OnRefused>);

impl RefusalGuard {
    /// The proposal was accepted: the callback is dropped unrun.
    fn accepted(mut self) {
        self.0 = None;
    }

    /// The proposal was refused with `e`.
    fn refused(mut self, e: Error) {
        if let Some(on_refused) = self.0.take() {
            on_refused(e);
        }
    }
}

impl Drop for RefusalGuard {
    fn drop(&mut self) {
        if let Some(on_refused) = self.0.take() {
            on_refused(Error::Stopped);
        }
    }
}

/// A control request to the loop.
pub(crate) enum Control {
    /// Apply a committed conf change to raft.
    ApplyConfChange(ConfChangeV2, oneshot::Sender<Result<ConfState>>),
    /// Hand leadership to a member.
    TransferLeader(u64),
    /// Report the replication progress of every member (leader only).
    Progress(oneshot::Sender<Option<Vec<Progress>>>),
    /// Stop the loop.
    Shutdown,
}

/// A snapshot of the member's raft state, refreshed by the loop after every Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// The leader's id, 0 when none is known.
    pub leader_id: u64,
    /// The current term.
    pub term: u64,
    /// The highest log index known committed.
    pub commit_index: u64,
    /// The highest log index handed to the apply side.
    pub applied_index: u64,
    /// The index of the last entry in the log.
    pub last_index: u64,
    /// The index of the first entry still in the log (earlier ones are compacted).
    pub first_index: u64,
    /// The snapshot point: the log was last compacted up to here.
    pub snapshot_index: u64,
    /// Whether this member is a learner (non-voting).
    pub is_learner: bool,
    /// Readies handled since start.
    pub readies: u64,
    /// Synced (fsynced) log writes since start.
    pub log_syncs: u64,
}

/// How far one member's log matches the leader's, as the leader tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The member's id.
    pub id: u64,
    /// The highest log index known to match the leader's log.
    pub matched: u64,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

/// State the loop publishes and the handles read.
pub(crate) struct Published {
    /// The latest status.
    pub(crate) status: Mutex<Status>,
    /// The current leader id (0 = none).
    pub(crate) leader: watch::Sender<u64>,
    /// The highest index the apply side made durable.
    pub(crate) durable_applied: AtomicU64,
    /// Set once the loop is asked to stop or has stopped.
    pub(crate) stopped: AtomicBool,
}

/// What every clone of a handle shares. Dropping the last one disconnects the
/// queues, which stops the loop.
struct HandleInner {
    requests: Sender<Request>,
    control: Sender<Control>,
    published: Arc<Published>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A cheap, cloneable handle to a member's raft loop.
#[derive(Clone)]
pub struct RaftHandle {
    inner: Arc<HandleInner>,
}

impl RaftHandle {
    /// Wraps the queues and published state of a started loop.
    pub(crate) fn new(
        requests: Sender<Request>,
        control: Sender<Control>,
        published: Arc<Published>,
        thread: JoinHandle<()>,
    ) -> Self {
        RaftHandle {
            inner: Arc::new(HandleInner {
                requests,
                control,
                published,
                thread: Mutex::new(Some(thread)),
            }),
        }
    }

    /// Proposes `data` as a normal entry. Resolves once raft has appended it to its
    /// log (on a follower: forwarded it to the leader), or with
    /// [`Error::ProposalDropped`] / [`Error::NoLeader`] if raft refused it.
    pub async fn propose(&self, data: Vec<u8>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.request(Request::Propose(data, Verdict::Reply(tx)))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Proposes `data` as a normal entry without waiting for raft's verdict, for
    /// a caller that learns of success by seeing the entry applied.
    /// `on_refused` runs at most once, exactly when [`RaftHandle::propose`] would
    /// have failed, with the same error: on the caller's thread before this
    /// returns if the loop's queue is full ([`Error::TooManyRequests`]) or the
    /// loop has stopped ([`Error::Stopped`]); otherwise on the loop's thread if
    /// raft refuses the proposal ([`Error::ProposalDropped`],
    /// [`Error::NoLeader`], [`Error::TooManyRequests`]) or the loop stops before
    /// deciding ([`Error::Stopped`]). An accepted proposal may still be lost
    /// (a leader change before it commits); only the caller's own timeout
    /// covers that.
    pub fn propose_detached(&self, data: Vec<u8>, on_refused: OnRefused) {
        let guard = RefusalGuard(Some(on_refused));
        if self.is_stopped() {
            return guard.refused(Error::Stopped);
        }
        let request = Request::Propose(data, Verdict::Detached(guard));
        if let Err(e) = self.inner.requests.try_send(request) {
            let reason = queue_error(&e);
            if let Request::Propose(_, verdict) = e.into_inner() {
                verdict.send(Err(reason));
            }
        }
    }

    /// Returns a commit index to wait for before serving a linearizable read.
    pub async fn read_index(&self) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.request(Request::ReadIndex(tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Hands a message from a peer to raft; dropped if the loop is saturated.
    pub fn step(&self, msg: Message) {
        if let Err(TrySendError::Full(_)) = self.inner.requests.try_send(Request::Step(msg)) {
            tracing::debug!("raft queue full; dropping a peer message");
        }
    }

    /// Proposes a membership change (resolves like [`RaftHandle::propose`]).
    pub async fn propose_conf_change(&self, cc: ConfChangeV2) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.request(Request::ProposeConfChange(cc, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Applies a committed conf change to raft; the apply side calls this for each
    /// conf-change entry it applies, in log order. Returns the new conf state.
    pub async fn apply_conf_change(&self, cc: ConfChangeV2) -> Result<ConfState> {
        let (tx, rx) = oneshot::channel();
        self.control(Control::ApplyConfChange(cc, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Tells raft that the backend durably holds everything up to `index`, so the
    /// log may be compacted up to it.
    pub fn report_durable_applied(&self, index: u64) {
        self.inner
            .published
            .durable_applied
            .fetch_max(index, Ordering::AcqRel);
    }

    /// The latest status published by the loop.
    pub fn status(&self) -> Status {
        *self.inner.published.status.lock()
    }

    /// Watches the leader id (0 = no leader).
    pub fn leader_changes(&self) -> watch::Receiver<u64> {
        self.inner.published.leader.subscribe()
    }

    /// Asks the leader to hand leadership to member `to`.
    pub fn transfer_leader(&self, to: u64) {
        let _ = self.control(Control::TransferLeader(to));
    }

    /// The replication progress of every member (the leader's own included),
    /// or `None` when this member does not lead.
    pub async fn progress(&self) -> Result<Option<Vec<Progress>>> {
        let (tx, rx) = oneshot::channel();
        self.control(Control::Progress(tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// For the transport: member `id` could not be reached.
    pub fn report_unreachable(&self, id: u64) {
        let _ = self.inner.requests.try_send(Request::ReportUnreachable(id));
    }

    /// For the transport: a snapshot sent to `to` was delivered (`ok`) or failed.
    pub fn report_snapshot(&self, to: u64, ok: bool) {
        let _ = self
            .inner
            .requests
            .try_send(Request::ReportSnapshot { to, ok });
    }

    /// Stops the loop, flushes the log and waits for the loop's thread to exit.
    /// Blocks for at most about one tick plus the final flush.
    pub fn shutdown(&self) {
        self.inner.published.stopped.store(true, Ordering::Release);
        let _ = self.inner.control.send(Control::Shutdown);
        let thread = self.inner.thread.lock().take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("raft loop panicked");
        }
    }

    /// Whether the loop has stopped (or been asked to).
    pub fn is_stopped(&self) -> bool {
        self.inner.published.stopped.load(Ordering::Acquire)
    }

    /// Queues a client-driven request without blocking.
    fn request(&self, req: Request) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Stopped);
        }
        self.inner
            .requests
            .try_send(req)
            .map_err(|e| queue_error(&e))
    }

    /// Queues a control request.
    fn control(&self, ctl: Control) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Stopped);
        }
        self.inner.control.send(ctl).map_err(|_| Error::Stopped)
    }
}

/// Why a client-driven request could not be queued.
fn queue_error(e: &TrySendError<Request>) -> Error {
    match e {
        TrySendError::Full(_) => Error::TooManyRequests,
        TrySendError::Disconnected(_) => Error::Stopped,
    }
}
