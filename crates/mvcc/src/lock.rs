//! The writer lock: one writer at a time, first come first served.
//!
//! Two parties write the backend: the apply loop through a
//! [`WriteBatch`](crate::WriteBatch) and the compactor between its chunks. A
//! plain mutex would let the compactor, which releases and re-takes the lock
//! in a tight loop, starve a waiting batch; tickets hand the lock over in
//! arrival order. The guard is a plain value (not a `MutexGuard`), so a batch
//! holding it is `Send`.

use parking_lot::{Condvar, Mutex};

/// Ticket counters behind the lock.
#[derive(Debug, Default)]
struct Tickets {
    /// The next ticket to hand out.
    next: u64,
    /// The ticket allowed to write now.
    serving: u64,
}

/// A fair, ticket-based exclusive lock.
#[derive(Debug, Default)]
pub(crate) struct WriterLock {
    /// The ticket counters.
    tickets: Mutex<Tickets>,
    /// Signalled whenever `serving` advances.
    turn: Condvar,
}

/// Proof of holding the [`WriterLock`]; releases it when dropped.
#[derive(Debug)]
pub(crate) struct WriterGuard<'a> {
    /// The lock to release.
    lock: &'a WriterLock,
}

impl WriterLock {
    /// Waits for this caller's turn and takes the lock.
    pub fn acquire(&self) -> WriterGuard<'_> {
        let mut t = self.tickets.lock();
        let mine = t.next;
        t.next += 1;
        while t.serving != mine {
            self.turn.wait(&mut t);
        }
        WriterGuard { lock: self }
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.lock.tickets.lock().serving += 1;
        self.lock.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn exclusive() {
        let lock = Arc::new(WriterLock::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _g = lock.acquire();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = lock.tickets.lock();
        assert_eq!((t.next, t.serving), (800, 800));
    }
}
