//! The hub: every watcher's state, the synced group, the stream queues, and
//! the dispatcher that feeds them from the apply thread's events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message;
use retcd_api::mvccpb::Event;
use tokio::sync::Notify;

use super::group::{WatchSpan, WatcherGroup};
use super::replay::fill_prev_kvs;
use super::stream::WatchStream;
use super::{Filter, WatchLimits, WatcherKey, event_revision};
use crate::Store;

/// How often an idle dispatcher checks whether the publisher dropped a batch.
const LOST_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Most batches one dispatch round takes from the publisher's queue.
const MAX_ROUND_BATCHES: usize = 64;

/// An event shared by every queue it is delivered to.
#[derive(Debug)]
pub(crate) struct SharedEvent {
    /// The event as the apply thread produced it (with `prev_kv`).
    pub event: Event,
    /// Its encoded size, for queue accounting.
    pub bytes: usize,
}

/// One queued delivery: a watcher's events of one revision.
#[derive(Debug)]
pub(crate) struct Queued {
    /// The watcher.
    pub watcher: WatcherKey,
    /// The revision of the events.
    pub revision: i64,
    /// The events, in order.
    pub events: Vec<Arc<SharedEvent>>,
    /// Sum of the events' sizes.
    pub bytes: usize,
}

/// A stream's queue of deliveries, filled by the dispatcher.
#[derive(Debug, Default)]
pub(crate) struct StreamQueue {
    /// Deliveries and their byte total.
    pub inner: Mutex<QueueInner>,
    /// Wakes the stream's task when something arrives or a watcher unsyncs.
    pub notify: Notify,
}

/// The contents of a [`StreamQueue`].
#[derive(Debug, Default)]
pub(crate) struct QueueInner {
    /// Deliveries in the order made.
    pub items: VecDeque<Queued>,
    /// Sum of the items' bytes.
    pub bytes: usize,
    /// How many of the stream's watchers are unsynced (changed under the hub lock).
    pub unsynced: usize,
}

/// What the hub knows of one watcher.
#[derive(Debug)]
pub(crate) struct WatcherEntry {
    /// The queue of the stream it belongs to.
    pub queue: Arc<StreamQueue>,
    /// The keys it watches.
    pub span: WatchSpan,
    /// The event kinds it drops.
    pub filter: Filter,
    /// The first revision it has not received.
    pub next_rev: i64,
    /// Whether it is in the synced group.
    pub synced: bool,
    /// Whether its events carry `prev_kv`.
    pub prev_kv: bool,
}

/// The hub's mutable state, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct HubState {
    /// The last revision the dispatcher handled.
    pub dispatched_rev: i64,
    /// Synced watchers by key.
    pub synced: WatcherGroup,
    /// Every watcher.
    pub watchers: HashMap<WatcherKey, WatcherEntry>,
    /// The next watcher key.
    pub next_key: WatcherKey,
    /// How many watchers want `prev_kv`.
    pub prev_kv_watchers: usize,
}

impl HubState {
    /// Marks a synced watcher unsynced from `next_rev` and wakes its stream.
    fn unsync(&mut self, watcher: WatcherKey, next_rev: i64) {
        let entry = self.watchers.get_mut(&watcher).expect("a known watcher");
        if !entry.synced {
            return;
        }
        self.synced.remove(&entry.span, watcher);
        entry.synced = false;
        entry.next_rev = entry.next_rev.max(next_rev);
        entry.queue.inner.lock().unsynced += 1;
        entry.queue.notify.notify_one();
    }

    /// Registers a watcher; synced if it starts after `dispatched_rev`.
    pub fn add(
        &mut self,
        queue: &Arc<StreamQueue>,
        span: WatchSpan,
        filter: Filter,
        next_rev: i64,
        prev_kv: bool,
    ) -> WatcherKey {
        let key = self.next_key;
        self.prev_kv_watchers += usize::from(prev_kv);
        self.next_key += 1;
        let synced = next_rev > self.dispatched_rev;
        if synced {
            self.synced.insert(&span, key);
        } else {
            queue.inner.lock().unsynced += 1;
        }
        self.watchers.insert(
            key,
            WatcherEntry {
                queue: queue.clone(),
                span,
                filter,
                next_rev,
                synced,
                prev_kv,
            },
        );
        key
    }

    /// Forgets a watcher; a no-op if unknown.
    pub fn remove(&mut self, watcher: WatcherKey) {
        if let Some(entry) = self.watchers.remove(&watcher) {
            self.prev_kv_watchers -= usize::from(entry.prev_kv);
            if entry.synced {
                self.synced.remove(&entry.span, watcher);
            } else {
                entry.queue.inner.lock().unsynced -= 1;
            }
        }
    }

    /// Records that an unsynced watcher has everything below `next_rev`;
    /// it rejoins the synced group if nothing after that was dispatched yet.
    pub fn advance(&mut self, watcher: WatcherKey, next_rev: i64) {
        let Some(entry) = self.watchers.get_mut(&watcher) else {
            return;
        };
        assert!(!entry.synced, "only unsynced watchers replay");
        entry.next_rev = entry.next_rev.max(next_rev);
        if entry.next_rev > self.dispatched_rev {
            entry.synced = true;
            entry.queue.inner.lock().unsynced -= 1;
            self.synced.insert(&entry.span, watcher);
        }
    }
}

/// State shared by the hub, its dispatcher, its publisher and its streams.
pub(crate) struct HubShared {
    /// The store history is replayed from.
    pub store: Arc<Store>,
    /// Watchers and the synced group.
    pub state: Mutex<HubState>,
    /// Set by the publisher when it dropped a batch.
    pub lost: AtomicBool,
    /// Event bytes queued over all streams.
    pub queued_bytes: AtomicUsize,
    /// The bounds.
    pub limits: WatchLimits,
}

impl std::fmt::Debug for HubShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubShared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HubShared {
    /// Appends `item` to `queue` unless a bound is reached; an empty queue
    /// always takes one item, so a revision larger than the bounds still moves.
    fn try_push(&self, queue: &StreamQueue, item: Queued) -> bool {
        let mut inner = queue.inner.lock();
        if !inner.items.is_empty() {
            let total = self.queued_bytes.load(Ordering::Relaxed);
            if inner.items.len() >= self.limits.stream_queue_items
                || inner.bytes + item.bytes > self.limits.stream_queue_bytes
                || total + item.bytes > self.limits.total_queue_bytes
            {
                return false;
            }
        }
        self.queued_bytes.fetch_add(item.bytes, Ordering::Relaxed);
        inner.bytes += item.bytes;
        inner.items.push_back(item);
        drop(inner);
        queue.notify.notify_one();
        true
    }

    /// Takes every queued item of `queue`.
    pub fn drain(&self, queue: &StreamQueue) -> VecDeque<Queued> {
        let mut inner = queue.inner.lock();
        self.queued_bytes.fetch_sub(inner.bytes, Ordering::Relaxed);
        inner.bytes = 0;
        std::mem::take(&mut inner.items)
    }

    /// Handles one revision's events (all of revision `rev`).
    fn dispatch_revision(&self, state: &mut HubState, rev: i64, events: &[Arc<SharedEvent>]) {
        let mut matched: BTreeMap<WatcherKey, Vec<Arc<SharedEvent>>> = BTreeMap::new();
        for event in events {
            let Some(kv) = &event.event.kv else { continue };
            state.synced.matching(&kv.key, |w| {
                let entry = &state.watchers[&w];
                if entry.filter.passes(&event.event) {
                    matched.entry(w).or_default().push(event.clone());
                }
            });
        }
        for (watcher, events) in matched {
            let entry = state.watchers.get_mut(&watcher).expect("a synced watcher");
            if rev < entry.next_rev || !entry.synced {
                continue;
            }
            let bytes = events.iter().map(|e| e.bytes).sum();
            let item = Queued {
                watcher,
                revision: rev,
                events,
                bytes,
            };
            if self.try_push(&entry.queue, item) {
                entry.next_rev = rev + 1;
            } else {
                state.unsync(watcher, rev);
            }
        }
    }

    /// Every synced watcher becomes unsynced from `next_rev`: the events of
    /// some revisions never reached the dispatcher.
    fn unsync_all(&self, state: &mut HubState, next_rev: i64) {
        let all = state.synced.all();
        tracing::warn!(
            watchers = all.len(),
            from_revision = next_rev,
            "watch dispatch fell behind; watchers catch up from the backend"
        );
        for watcher in all {
            state.unsync(watcher, next_rev);
        }
        state.synced.clear();
    }

    /// Dispatches committed batches, revision by revision.
    fn dispatch(&self, mut batches: Vec<Vec<Event>>) {
        let mut state = self.state.lock();
        if state.prev_kv_watchers > 0 {
            for batch in &mut batches {
                if let Err(e) = fill_prev_kvs(&self.store.shared, batch) {
                    tracing::warn!(error = %e, "reading prev_kv for watch events failed");
                }
            }
        }
        for batch in batches {
            let mut events = batch.into_iter().peekable();
            while let Some(first) = events.next() {
                let rev = event_revision(&first);
                let mut group = vec![shared(first)];
                while let Some(next) = events.next_if(|e| event_revision(e) == rev) {
                    group.push(shared(next));
                }
                if rev <= state.dispatched_rev {
                    continue;
                }
                if rev > state.dispatched_rev + 1 {
                    let from = state.dispatched_rev + 1;
                    self.unsync_all(&mut state, from);
                }
                self.dispatch_revision(&mut state, rev, &group);
                state.dispatched_rev = rev;
            }
        }
    }

    /// After the publisher dropped a batch and nothing followed it: everything
    /// up to the store's revision counts as dispatched, and the synced
    /// watchers catch up from the backend.
    fn recover_lost(&self) {
        if !self.lost.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut state = self.state.lock();
        let current = self.store.current_revision();
        if current > state.dispatched_rev {
            let from = state.dispatched_rev + 1;
            self.unsync_all(&mut state, from);
            state.dispatched_rev = current;
        }
    }
}

/// Wraps an event for sharing.
fn shared(event: Event) -> Arc<SharedEvent> {
    let bytes = event.encoded_len();
    Arc::new(SharedEvent { event, bytes })
}

/// The watch hub of one store.
#[derive(Clone, Debug)]
pub struct WatchHub {
    /// State shared with the dispatcher and streams.
    shared: Arc<HubShared>,
}

/// The apply thread's end: hands committed events to the dispatcher without
/// ever blocking.
#[derive(Debug)]
pub struct EventPublisher {
    /// The bounded queue to the dispatcher.
    tx: SyncSender<Vec<Event>>,
    /// The hub, to flag a dropped batch.
    shared: Arc<HubShared>,
}

impl EventPublisher {
    /// Publishes the events of a committed batch (in revision order). Never
    /// blocks: when the dispatcher is too far behind, the batch is dropped
    /// and the watchers replay it from the backend.
    pub fn publish(&self, events: Vec<Event>) {
        let Some(last) = events.last() else {
            return;
        };
        {
            // Nobody watches: the batch counts as dispatched right here, and
            // the dispatcher thread is not woken for it. Under the hub lock,
            // so a watcher added next sees the revision as dispatched (the
            // batch is committed, so it starts after it anyway).
            let mut state = self.shared.state.lock();
            if state.watchers.is_empty() {
                state.dispatched_rev = state.dispatched_rev.max(event_revision(last));
                return;
            }
        }
        match self.tx.try_send(events) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.shared.lost.store(true, Ordering::Release),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl EventPublisher {
    /// Tells the dispatcher that the store's history was replaced (a raft
    /// snapshot was installed) and jumped past the events published so far:
    /// every synced watcher catches up from the backend, as after a dropped
    /// batch, and one whose next revision is compacted is canceled.
    pub fn history_replaced(&self) {
        self.shared.lost.store(true, Ordering::Release);
    }
}

/// The dispatcher: moves published events into stream queues.
#[derive(Debug)]
pub struct Dispatcher {
    /// The hub.
    shared: Arc<HubShared>,
    /// The publisher's queue.
    rx: Receiver<Vec<Event>>,
}

impl Dispatcher {
    /// Runs the dispatcher on its own thread until the publisher is dropped.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("watch-dispatch".into())
            .spawn(move || self.run())
    }

    /// The dispatch loop.
    fn run(self) {
        loop {
            match self.rx.recv_timeout(LOST_CHECK_INTERVAL) {
                Ok(first) => {
                    let mut batches = vec![first];
                    while batches.len() < MAX_ROUND_BATCHES {
                        match self.rx.try_recv() {
                            Ok(more) => batches.push(more),
                            Err(_) => break,
                        }
                    }
                    self.shared.dispatch(batches);
                }
                Err(RecvTimeoutError::Timeout) => self.shared.recover_lost(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Dispatches whatever is queued now, on the calling thread (tests).
    pub fn dispatch_pending(&self) {
        let batches: Vec<Vec<Event>> = self.rx.try_iter().collect();
        self.shared.dispatch(batches);
        self.shared.recover_lost();
    }
}

impl WatchHub {
    /// A hub over `store`, with the publisher the apply thread feeds and the
    /// dispatcher to run (see [`Dispatcher::spawn`]). Create it before any
    /// batch commits that watchers should see.
    pub fn new(store: Arc<Store>, limits: WatchLimits) -> (WatchHub, EventPublisher, Dispatcher) {
        let (tx, rx) = mpsc::sync_channel(limits.publish_queue_batches);
        let dispatched_rev = store.current_revision();
        let shared = Arc::new(HubShared {
            store,
            state: Mutex::new(HubState {
                dispatched_rev,
                ..Default::default()
            }),
            lost: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            limits,
        });
        (
            WatchHub {
                shared: shared.clone(),
            },
            EventPublisher {
                tx,
                shared: shared.clone(),
            },
            Dispatcher { shared, rx },
        )
    }

    /// Opens a stream; `max_response_bytes` is where fragmenting watchers split.
    pub fn stream(&self, max_response_bytes: usize) -> WatchStream {
        WatchStream::new(self.shared.clone(), max_response_bytes)
    }

    /// The number of watchers over all streams.
    pub fn watcher_count(&self) -> usize {
        self.shared.state.lock().watchers.len()
    }

    /// The watchers out of the synced group: catching up from the backend,
    /// having started in the past or fallen behind (etcd's slow watchers).
    /// Walks every watcher; meant for a metrics scrape.
    pub fn unsynced_count(&self) -> usize {
        let state = self.shared.state.lock();
        state.watchers.values().filter(|w| !w.synced).count()
    }

    /// Event bytes queued over all streams.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }
}
