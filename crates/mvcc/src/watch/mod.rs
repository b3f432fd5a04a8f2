//! The watchable store: streaming every committed change to the watchers
//! that cover its key, etcd's `watchable_store`.
//!
//! Three parties meet here:
//! - the **apply thread** hands each committed batch's events to an
//!   [`EventPublisher`]: a bounded, non-blocking send, so no watcher can ever
//!   slow a write; when the queue is full the batch is dropped and the
//!   watchers catch up from the backend instead (below);
//! - the **dispatcher** ([`Dispatcher`], its own thread) matches each
//!   revision's events against the *synced* watchers (those at the head of
//!   history) and appends them to their streams' queues;
//! - a **stream** ([`WatchStream`], one per client stream, driven by the
//!   server's task) creates and cancels watchers, drains its queue into
//!   responses, and catches its *unsynced* watchers up from the backend
//!   ([`replay`]) in bounded chunks until they reach the head and rejoin the
//!   synced group.
//!
//! A watcher whose stream's queue is full (its client reads too slowly) is
//! not waited for: it leaves the synced group and becomes unsynced at the
//! revision it missed, exactly as a watcher that starts in the past. So a
//! stalled client costs a bounded queue and nothing else; other watchers and
//! writers never wait for it.
//!
//! Invariants:
//! - each watcher has a `next_rev`, the first revision it has not received;
//!   every delivery checks `rev >= next_rev` and moves `next_rev` past it, so
//!   a revision reaches a watcher at most once, in revision order;
//! - the dispatcher handles revisions strictly in order, and `dispatched_rev`
//!   (the last one it handled) only grows; a synced watcher has received
//!   every matching event up to `max(dispatched_rev, next_rev - 1)`;
//! - a watcher joins the synced group only with `next_rev > dispatched_rev`,
//!   so there is no gap between what it replayed and what it is sent next;
//! - events reach the dispatcher only after their batch committed, so the
//!   backend holds every revision up to `dispatched_rev` for replay;
//! - a stream drains its queue under the hub lock, so it never sees part of
//!   a revision, and collects replay work in the same critical section, so a
//!   replayed response never overtakes a queued one;
//! - all events of one revision for one watcher travel in one response
//!   (fragmented only on request, as etcd's `fragment` option).
//!
//! Memory is bounded by [`WatchLimits`]: per stream queue (items and bytes),
//! over all queues together, the publisher's queue of batches, and each
//! replay chunk.

mod group;
mod hub;
mod replay;
mod stream;

#[cfg(test)]
mod tests;

use retcd_api::etcdserverpb::watch_create_request::FilterType;
use retcd_api::mvccpb::Event;
use retcd_api::mvccpb::event::EventType;

pub use group::WatchSpan;
pub use hub::{Dispatcher, EventPublisher, WatchHub};
pub use replay::{MAX_REPLAY_BYTES, MAX_REPLAY_REVISIONS};
pub use stream::{ReplayJob, ReplayResult, StreamPoll, WatchStream, fragment};

/// Identifies one watcher across the hub (watch ids repeat across streams
/// and may be reused inside one after a cancel).
pub(crate) type WatcherKey = u64;

/// etcd's text for a create whose key range holds no key.
pub const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// etcd's text for a create naming a watch id already in use on the stream.
pub const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// Queue and chunk bounds of a hub.
#[derive(Clone, Copy, Debug)]
pub struct WatchLimits {
    /// Most committed batches waiting for the dispatcher.
    pub publish_queue_batches: usize,
    /// Most responses waiting in one stream's queue.
    pub stream_queue_items: usize,
    /// Most event bytes waiting in one stream's queue.
    pub stream_queue_bytes: usize,
    /// Most event bytes waiting in all stream queues together.
    pub total_queue_bytes: usize,
}

/// Most committed batches queued for the dispatcher (each up to the apply
/// thread's batch size).
pub const PUBLISH_QUEUE_BATCHES: usize = 1024;
/// Most responses queued per stream (etcd buffers 128 per stream).
pub const STREAM_QUEUE_ITEMS: usize = 256;
/// Most event bytes queued per stream.
pub const STREAM_QUEUE_BYTES: usize = 1024 * 1024;
/// Most event bytes queued over all streams.
pub const TOTAL_QUEUE_BYTES: usize = 256 * 1024 * 1024;

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            publish_queue_batches: PUBLISH_QUEUE_BATCHES,
            stream_queue_items: STREAM_QUEUE_ITEMS,
            stream_queue_bytes: STREAM_QUEUE_BYTES,
            total_queue_bytes: TOTAL_QUEUE_BYTES,
        }
    }
}

/// The event kinds a watcher drops (etcd's `NOPUT`/`NODELETE` filters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Drop puts.
    pub no_put: bool,
    /// Drop deletes.
    pub no_delete: bool,
}

impl Filter {
    /// Decodes a create request's filter list; unknown values are ignored.
    pub fn new(filters: &[i32]) -> Filter {
        let has = |f: FilterType| filters.contains(&(f as i32));
        Filter {
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
        }
    }

    /// Whether `event` passes.
    pub fn passes(&self, event: &Event) -> bool {
        if event.r#type == EventType::Delete as i32 {
            !self.no_delete
        } else {
            !self.no_put
        }
    }
}

/// Whether `event` creates its key (etcd never attaches `prev_kv` to one).
pub(crate) fn is_create(event: &Event) -> bool {
    event.r#type == EventType::Put as i32 && event.kv.as_ref().is_some_and(|kv| kv.version == 1)
}

/// The main revision of an event.
pub(crate) fn event_revision(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}
