//! Linearizable read barriers (ReadIndex), batched and retried.
//!
//! Every `read_index` call waiting when the loop runs joins one raft ReadIndex
//! request with a fresh context; raft answers with a `ReadState` carrying the
//! leader's commit index, which resolves all of them. A read never joins a request
//! issued before it arrived: that request's answer could predate writes the reader
//! has already seen acknowledged.
//!
//! raft-rs drops a ReadIndex it cannot serve yet (no leader known, or a new leader
//! that has not committed an entry in its term) without telling anyone. So every
//! pending request is re-sent on each tick until it is answered or its deadline
//! passes, when its waiters get [`Error::Timeout`]. The leader deduplicates a
//! context it is still serving, so re-sending is harmless.
//!
//! A context is the member id and a counter, both big-endian: leaders keep pending
//! reads of all members in one map keyed by context, so contexts must not collide
//! across members.

use std::time::{Duration, Instant};

use raft::{RawNode, ReadState};
use tokio::sync::oneshot;

use crate::metrics::metrics;
use crate::storage::LogStorage;
use crate::{Error, Result};

/// Resolves one `read_index` caller.
pub(crate) type ReadWaiter = oneshot::Sender<Result<u64>>;

/// ReadIndex requests in flight, oldest first.
pub(crate) struct ReadIndexQueue {
    /// This member's id, the first half of every context.
    member_id: u64,
    /// The counter half of the next context.
    next_seq: u64,
    /// How long a request may stay unanswered.
    timeout: Duration,
    /// Requests sent to raft and not yet answered.
    pending: Vec<PendingRead>,
}

/// One raft ReadIndex request and the callers waiting on it.
struct PendingRead {
    /// The request's context.
    ctx: Vec<u8>,
    /// Callers resolved by its answer.
    waiters: Vec<ReadWaiter>,
    /// When the waiters give up.
    deadline: Instant,
}

impl ReadIndexQueue {
    /// Creates an empty queue whose requests expire after `timeout`.
    pub(crate) fn new(member_id: u64, timeout: Duration) -> Self {
        ReadIndexQueue {
            member_id,
            next_seq: 0,
            timeout,
            pending: Vec::new(),
        }
    }

    /// Sends one ReadIndex request on behalf of all `waiters`.
    pub(crate) fn issue(
        &mut self,
        raw: &mut RawNode<LogStorage>,
        waiters: Vec<ReadWaiter>,
        now: Instant,
    ) {
        if waiters.is_empty() {
            return;
        }
        self.next_seq += 1;
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&self.member_id.to_be_bytes());
        ctx.extend_from_slice(&self.next_seq.to_be_bytes());
        raw.read_index(ctx.clone());
        self.pending.push(PendingRead {
            ctx,
            waiters,
            deadline: now + self.timeout,
        });
    }

    /// Resolves the waiters of the request `rs` answers; unknown contexts are stale.
    pub(crate) fn on_read_state(&mut self, rs: &ReadState) {
        let Some(pos) = self.pending.iter().position(|p| p.ctx == rs.request_ctx) else {
            return;
        };
        let read = self.pending.remove(pos);
        for waiter in read.waiters {
            let _ = waiter.send(Ok(rs.index));
        }
    }

    /// Times out expired requests and re-sends the others.
    pub(crate) fn on_tick(&mut self, raw: &mut RawNode<LogStorage>, now: Instant) {
        self.pending.retain_mut(|read| {
            if now >= read.deadline {
                metrics().slow_read_indexes.inc();
                for waiter in read.waiters.drain(..) {
                    let _ = waiter.send(Err(Error::Timeout));
                }
                return false;
            }
            raw.read_index(read.ctx.clone());
            true
        });
    }

    /// Fails every waiter with `Error::Stopped`.
    pub(crate) fn stop(&mut self) {
        for read in self.pending.drain(..) {
            for waiter in read.waiters {
                let _ = waiter.send(Err(Error::Stopped));
            }
        }
    }
}
