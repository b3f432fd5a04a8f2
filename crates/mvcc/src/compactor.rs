//! Physical compaction: removing the rows a compaction made unreachable.
//!
//! `WriteBatch::compact` only schedules: when the batch commits, the index is
//! compacted at once (so reads below the compaction revision fail from then
//! on) and the revision is handed to the compactor thread here. The thread
//! deletes garbage rows in chunks of [`COMPACTION_BATCH_ROWS`] scanned rows,
//! each chunk one short redb write transaction taken under the writer lock,
//! so the apply loop waits at most one chunk. The last chunk records the
//! finished revision; a compaction interrupted by a restart is resumed at
//! open from the scheduled revision.
//!
//! A row at or below the target revision is garbage exactly when the
//! (already compacted) index no longer holds its revision; rows above the
//! target are never looked at. A newer compaction scheduled while one runs
//! restarts the scan at the newer target, which subsumes the older one.
//!
//! Chunks commit with `Durability::None`: a crash loses compaction progress,
//! never data, and the work is redone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use prost::Message;

use crate::backend::RowHead;
use crate::revision::{REV_KEY_LEN, decode_key};
use crate::store::{Shared, row_bytes};

/// Rows scanned per compaction write transaction.
pub(crate) const COMPACTION_BATCH_ROWS: usize = 1_000;

/// Pause before retrying a chunk that failed on a backend error.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Where compaction stands.
#[derive(Debug, Default)]
struct State {
    /// The latest scheduled compaction revision.
    target: i64,
    /// The latest revision whose garbage is all removed.
    finished: i64,
    /// Set when the store closes.
    stopping: bool,
}

/// The compaction schedule shared by the store and its compactor thread.
#[derive(Debug, Default)]
pub(crate) struct Compaction {
    /// Where compaction stands.
    state: Mutex<State>,
    /// Signalled on every change of `state`.
    changed: Condvar,
}

impl Compaction {
    /// A schedule resuming from the persisted revisions.
    pub fn new(scheduled: i64, finished: i64) -> Self {
        Compaction {
            state: Mutex::new(State {
                target: scheduled,
                finished,
                stopping: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Asks for the rows unreachable at `rev` to be removed.
    pub fn schedule(&self, rev: i64) {
        let mut s = self.state.lock();
        s.target = s.target.max(rev);
        self.changed.notify_all();
    }

    /// Blocks until the garbage of compaction `rev` is removed; returns at
    /// once if `rev` was never scheduled or the store is closing.
    pub fn wait_done(&self, rev: i64) {
        let mut s = self.state.lock();
        while s.finished < rev && rev <= s.target && !s.stopping {
            self.changed.wait(&mut s);
        }
    }

    /// Tells the compactor thread to exit.
    pub fn stop(&self) {
        self.state.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Waits for work: the target to compact to, or None when closing.
    fn next_job(&self) -> Option<i64> {
        let mut s = self.state.lock();
        loop {
            if s.stopping {
                return None;
            }
            if s.target > s.finished {
                return Some(s.target);
            }
            self.changed.wait(&mut s);
        }
    }

    /// Whether the job for `target` should go on.
    fn still_wanted(&self, target: i64) -> bool {
        let s = self.state.lock();
        !s.stopping && s.target == target
    }

    /// Records that compaction `target` is done.
    fn finish(&self, target: i64) {
        let mut s = self.state.lock();
        s.finished = s.finished.max(target);
        self.changed.notify_all();
    }
}

/// The compactor thread's body: runs jobs until the store closes.
pub(crate) fn run(shared: Arc<Shared>) {
    while let Some(target) = shared.compaction.next_job() {
        compact_to(&shared, target);
    }
}

/// Removes, chunk by chunk, every row that compaction `target` made
/// unreachable, unless a newer target or closing interrupts.
fn compact_to(shared: &Shared, target: i64) {
    let mut cursor = [0u8; REV_KEY_LEN];
    while shared.compaction.still_wanted(target) {
        let chunk = {
            let _gate = shared.backend.maintenance_gate();
            let _writer = shared.writer.acquire();
            let index = shared.index.read();
            shared
                .backend
                .compact_chunk(&cursor, target, COMPACTION_BATCH_ROWS, |key, row| {
                    let (rev, _) = decode_key(key);
                    Ok(index.contains(&RowHead::decode(row)?.key, rev))
                })
        };
        if let Ok((_, removed)) = &chunk {
            let bytes: u64 = removed.iter().map(|&len| row_bytes(len)).sum();
            shared.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        match chunk {
            Ok((Some(next), _)) => cursor = next,
            Ok((None, _)) => {
                tracing::debug!(revision = target, "finished physical compaction");
                shared.compaction.finish(target);
                return;
            }
            Err(e) => {
                tracing::error!(revision = target, error = %e, "physical compaction failed; retrying");
                std::thread::sleep(RETRY_DELAY);
            }
        }
    }
}
