//! The queue that carries committed entries from the raft loop to the apply side.
//!
//! Why not a crossbeam channel: a crossbeam receiver that finds its channel
//! empty spins and then calls `sched_yield` a few times before it sleeps. The
//! apply thread waits on an empty queue after every batch, so under load it
//! yielded ~3 times per batch (5,700 calls in a 2-second, 60,000-put run), and
//! a thread that yields on a busy machine goes to the back of the run queue:
//! a batch arriving meanwhile waited for a whole time slice before it was
//! applied. Here the receiver sleeps at once on a condition variable, so the
//! raft loop's notification wakes it directly.
//!
//! Semantics follow a channel's: FIFO; the receiver sees `Disconnected` once
//! the sender is gone and the queue is empty; sending fails once the receiver
//! is gone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use parking_lot::{Condvar, Mutex};

use crate::Apply;

/// Creates a connected sender and receiver.
pub(crate) fn apply_queue() -> (ApplySender, ApplyReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
        }),
        ready: Condvar::new(),
    });
    (
        ApplySender {
            shared: shared.clone(),
        },
        ApplyReceiver { shared },
    )
}

/// What both ends share.
struct Shared {
    /// The queue and which end has hung up.
    state: Mutex<State>,
    /// Signalled when an item arrives or the sender hangs up.
    ready: Condvar,
}

/// The queue proper.
struct State {
    /// Deliveries not yet received, oldest first.
    items: VecDeque<Apply>,
    /// The sender was dropped.
    sender_gone: bool,
    /// The receiver was dropped.
    receiver_gone: bool,
}

/// The raft loop's end.
pub(crate) struct ApplySender {
    shared: Arc<Shared>,
}

impl ApplySender {
    /// Queues `apply`; gives it back if the receiver is gone.
    pub(crate) fn send(&self, apply: Apply) -> Result<(), Apply> {
        let mut state = self.shared.state.lock();
        if state.receiver_gone {
            return Err(apply);
        }
        state.items.push_back(apply);
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Deliveries waiting to be received.
    pub(crate) fn len(&self) -> usize {
        self.shared.state.lock().items.len()
    }
}

impl Drop for ApplySender {
    fn drop(&mut self) {
        self.shared.state.lock().sender_gone = true;
        self.shared.ready.notify_one();
    }
}

/// The apply side's end: committed entries and snapshots, in log order.
pub struct ApplyReceiver {
    shared: Arc<Shared>,
}

impl ApplyReceiver {
    /// The next delivery, waiting at most `timeout` for one.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Apply, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock();
        loop {
            if let Some(apply) = state.items.pop_front() {
                return Ok(apply);
            }
            if state.sender_gone {
                return Err(RecvTimeoutError::Disconnected);
            }
            if self
                .shared
                .ready
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.items.pop_front().ok_or(RecvTimeoutError::Timeout);
            }
        }
    }

    /// The next delivery, waiting as long as it takes; `None` once the
    /// sender is gone and everything was received.
    pub fn recv(&self) -> Option<Apply> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(apply) = state.items.pop_front() {
                return Some(apply);
            }
            if state.sender_gone {
                return None;
            }
            self.shared.ready.wait(&mut state);
        }
    }

    /// The next delivery if one is queued.
    pub fn try_recv(&self) -> Result<Apply, TryRecvError> {
        let mut state = self.shared.state.lock();
        match state.items.pop_front() {
            Some(apply) => Ok(apply),
            None if state.sender_gone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for ApplyReceiver {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.receiver_gone = true;
        state.items.clear();
    }
}

impl Iterator for ApplyReceiver {
    type Item = Apply;

    /// Blocks like [`ApplyReceiver::recv`].
    fn next(&mut self) -> Option<Apply> {
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(index: u64) -> Apply {
        Apply::Entries(vec![crate::Entry {
            index,
            ..Default::default()
        }])
    }

    fn index_of(apply: &Apply) -> u64 {
        match apply {
            Apply::Entries(e) => e[0].index,
            Apply::Snapshot(s) => s.get_metadata().index,
        }
    }

    #[test]
    fn delivers_in_order_then_reports_the_sender_gone() {
        let (tx, rx) = apply_queue();
        for i in 1..=3 {
            tx.send(entries(i)).unwrap();
        }
        assert_eq!(tx.len(), 3);
        assert_eq!(index_of(&rx.try_recv().unwrap()), 1);
        assert_eq!(
            index_of(&rx.recv_timeout(Duration::from_millis(1)).unwrap()),
            2
        );
        drop(tx);
        // Queued items outlive the sender.
        assert_eq!(index_of(&rx.recv().unwrap()), 3);
        assert!(rx.recv().is_none());
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)).unwrap_err(),
            RecvTimeoutError::Disconnected
        );
    }

    #[test]
    fn waits_for_items_and_times_out_when_none_come() {
        let (tx, rx) = apply_queue();
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(entries(7)).unwrap();
            tx
        });
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(index_of(&got), 7);
        let tx = sender.join().unwrap();
        drop(rx);
        assert!(tx.send(entries(8)).is_err(), "the receiver is gone");
    }
}
