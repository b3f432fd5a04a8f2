//! The backend flusher: makes applied batches durable in redb off the apply
//! thread.
//!
//! Writing ~100 ms of applied rows to redb and fsyncing takes milliseconds
//! under load; done on the apply thread it stalled every response for that
//! long. The apply thread instead asks this thread to flush and goes on
//! applying (its batches land in the store's overlay, which the flush does
//! not block); once the flush is durable, raft is told it may compact its
//! log up to the index the flush covered.
//!
//! Invariants:
//! - The index reported to raft was read before the flush started, so the
//!   flush holds every entry up to it.
//! - Requests that pile up while a flush runs are served by one more flush.
//! - A flush that fails stops the member, as an apply failure does: the disk
//!   can no longer be trusted.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use retcd_mvcc::Store;
use retcd_raft::RaftHandle;

use crate::metrics;

/// A handle to the flusher thread; dropping it lets the thread finish its
/// last flush and waits for it.
pub struct BackendFlusher {
    /// Flush requests; closed on drop.
    requests: Option<Sender<()>>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl BackendFlusher {
    /// Starts the flusher thread for `store`, reporting to `raft`.
    pub fn spawn(store: Arc<Store>, raft: RaftHandle) -> std::io::Result<Self> {
        let (requests, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("backend-flush".into())
            .spawn(move || run(&store, &raft, &rx))?;
        Ok(BackendFlusher {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for everything applied so far to be made durable; returns at once.
    pub fn request(&self) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(());
        }
    }
}

impl Drop for BackendFlusher {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's loop: one durable flush per burst of requests.
fn run(store: &Store, raft: &RaftHandle, requests: &Receiver<()>) {
    while requests.recv().is_ok() {
        while requests.try_recv().is_ok() {}
        let index = store.consistent_index();
        let timer = metrics::BACKEND_COMMIT_SECONDS.start_timer();
        if let Err(e) = store.sync() {
            tracing::error!(error = %e, "writing the mvcc backend failed; stopping the member");
            std::process::exit(1);
        }
        timer.observe_duration();
        raft.report_durable_applied(index);
    }
}
