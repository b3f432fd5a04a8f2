//! One client stream: its watchers, its queue, and the responses it owes.
//!
//! The server's task drives a [`WatchStream`] in a loop: hand it the
//! client's requests ([`create`](WatchStream::create),
//! [`cancel`](WatchStream::cancel), progress), [`poll`](WatchStream::poll)
//! it for responses whenever its queue is notified, and run the replay job
//! `poll` hands out (blocking backend reads, off the async threads) before
//! giving the result back with [`finish_replay`](WatchStream::finish_replay).
//!
//! Responses carry a header with only the revision set; the server fills in
//! the cluster and member ids and the raft term. etcd's revisions: a created
//! or canceled response carries the store's current revision, live events
//! their own revision, replayed events the revision the replay read at, a
//! compaction cancel none at all, a progress notification the revision up to
//! which the watcher (or, for a stream-wide request, every watcher) has
//! received everything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use retcd_api::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use retcd_api::mvccpb::Event;

use super::group::WatchSpan;
use super::hub::{HubShared, Queued, StreamQueue};
use super::replay::{Replay, ReplayOutcome, ReplayTarget, replay};
use super::{ERR_DUPLICATE_ID, ERR_EMPTY_RANGE, Filter, WatcherKey, is_create};
use crate::error::Result;

/// The watch id etcd answers with when a create fails, and uses for
/// stream-wide progress notifications.
const INVALID_WATCH_ID: i64 = -1;

/// What the stream keeps of one of its watchers.
#[derive(Debug)]
struct StreamWatcher {
    /// The watcher's key in the hub.
    key: WatcherKey,
    /// Whether its events carry `prev_kv`.
    prev_kv: bool,
    /// Whether large responses are split.
    fragment: bool,
    /// Whether it asked for periodic progress notifications.
    progress_notify: bool,
    /// No response went out for it since the last progress tick.
    idle: bool,
    /// A periodic progress notification is due.
    progress_due: bool,
}

/// A client stream's watchers.
#[derive(Debug)]
pub struct WatchStream {
    /// The hub.
    hub: Arc<HubShared>,
    /// This stream's queue.
    queue: Arc<StreamQueue>,
    /// Watchers by watch id (ordered, so responses come in a stable order).
    watchers: BTreeMap<i64, StreamWatcher>,
    /// Watch ids by watcher key.
    ids: HashMap<WatcherKey, i64>,
    /// The next automatic watch id to try.
    next_id: i64,
    /// A stream-wide progress request waits for every watcher to be synced.
    progress_requested: bool,
    /// Responses larger than this are split for watchers that allow it.
    max_response_bytes: usize,
}

/// What [`WatchStream::poll`] found.
#[derive(Debug, Default)]
pub struct StreamPoll {
    /// Responses to send now, in order.
    pub responses: Vec<WatchResponse>,
    /// History to read for unsynced watchers; send its responses after these.
    pub replay: Option<ReplayJob>,
}

/// A chunk of history to read for a stream's unsynced watchers; blocking.
#[derive(Debug)]
pub struct ReplayJob {
    /// The hub, for the store.
    hub: Arc<HubShared>,
    /// The watchers and where they resume.
    targets: Vec<ReplayTarget>,
}

/// The result of a [`ReplayJob`].
#[derive(Debug)]
pub struct ReplayResult(Result<Replay>);

impl ReplayJob {
    /// Reads the chunk (blocking backend reads).
    pub fn run(self) -> ReplayResult {
        ReplayResult(replay(&self.hub.store.shared, &self.targets))
    }
}

/// A response header with only the revision.
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl WatchStream {
    /// A stream with no watchers.
    pub(crate) fn new(hub: Arc<HubShared>, max_response_bytes: usize) -> WatchStream {
        WatchStream {
            hub,
            queue: Arc::default(),
            watchers: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            progress_requested: false,
            max_response_bytes,
        }
    }

    /// Waits until the dispatcher queued something or a watcher fell behind.
    pub async fn notified(&self) {
        self.queue.notify.notified().await;
    }

    /// The number of watchers on the stream.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Whether the stream has no watchers.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Creates a watcher; returns the created response, or etcd's failed
    /// create (created and canceled, watch id -1, with the reason).
    pub fn create(&mut self, req: &WatchCreateRequest) -> WatchResponse {
        let current = self.hub.store.current_revision();
        let failed = |reason: &str| WatchResponse {
            header: header(current),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        let Some(span) = WatchSpan::new(&req.key, &req.range_end) else {
            return failed(ERR_EMPTY_RANGE);
        };
        let id = if req.watch_id == 0 {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.watchers.contains_key(&req.watch_id) {
            return failed(ERR_DUPLICATE_ID);
        } else {
            req.watch_id
        };
        let (key, current) = {
            let mut state = self.hub.state.lock();
            // Read under the lock: nothing after it can have been dispatched.
            let current = self.hub.store.current_revision();
            let next_rev = if req.start_revision > 0 {
                req.start_revision
            } else {
                current + 1
            };
            let filter = Filter::new(&req.filters);
            let key = state.add(&self.queue, span, filter, next_rev, req.prev_kv);
            (key, current)
        };
        self.ids.insert(key, id);
        self.watchers.insert(
            id,
            StreamWatcher {
                key,
                prev_kv: req.prev_kv,
                fragment: req.fragment,
                progress_notify: req.progress_notify,
                idle: true,
                progress_due: false,
            },
        );
        // A watcher starting in the past has history to replay.
        self.queue.notify.notify_one();
        WatchResponse {
            header: header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        }
    }

    /// Cancels a watcher; None (no response, as etcd) if the id is unknown.
    pub fn cancel(&mut self, watch_id: i64) -> Option<WatchResponse> {
        let watcher = self.watchers.remove(&watch_id)?;
        self.ids.remove(&watcher.key);
        self.hub.state.lock().remove(watcher.key);
        Some(WatchResponse {
            header: header(self.hub.store.current_revision()),
            watch_id,
            canceled: true,
            ..Default::default()
        })
    }

    /// A stream-wide progress request: answered (watch id -1) once every
    /// watcher has received everything up to the revision it reports.
    pub fn request_progress(&mut self) {
        self.progress_requested = true;
        self.queue.notify.notify_one();
    }

    /// The periodic progress tick: every watcher that asked for progress
    /// notifications and got no response since the last tick gets one.
    pub fn progress_tick(&mut self) {
        let mut any = false;
        for w in self.watchers.values_mut() {
            if w.progress_notify && w.idle {
                w.progress_due = true;
                any = true;
            }
            w.idle = true;
        }
        if any {
            self.queue.notify.notify_one();
        }
    }

    /// Drains the queue into responses, adds due progress notifications, and
    /// hands out the replay work of unsynced watchers, all as of one moment.
    pub fn poll(&mut self) -> StreamPoll {
        let (items, dispatched, synced, targets) = {
            let state = self.hub.state.lock();
            let items = self.hub.drain(&self.queue);
            let unsynced = self.queue.inner.lock().unsynced;
            let mut synced: HashMap<i64, i64> = HashMap::new();
            let mut targets = Vec::new();
            for (&id, w) in &self.watchers {
                let entry = &state.watchers[&w.key];
                if entry.synced {
                    synced.insert(id, entry.next_rev - 1);
                } else if unsynced > 0 {
                    targets.push(ReplayTarget {
                        watcher: w.key,
                        next_rev: entry.next_rev,
                        span: entry.span.clone(),
                        filter: entry.filter,
                        prev_kv: w.prev_kv,
                    });
                }
            }
            (items, state.dispatched_rev, synced, targets)
        };
        let mut responses = Vec::new();
        for item in items {
            self.respond(item, &mut responses);
        }
        for (&id, w) in self.watchers.iter_mut() {
            if !w.progress_due {
                continue;
            }
            if let Some(&received) = synced.get(&id) {
                w.progress_due = false;
                responses.push(WatchResponse {
                    header: header(dispatched.max(received)),
                    watch_id: id,
                    ..Default::default()
                });
            }
        }
        if self.progress_requested && synced.len() == self.watchers.len() {
            self.progress_requested = false;
            let revision = if synced.is_empty() {
                self.hub.store.current_revision()
            } else {
                synced
                    .values()
                    .map(|&r| dispatched.max(r))
                    .min()
                    .unwrap_or(dispatched)
            };
            responses.push(WatchResponse {
                header: header(revision),
                watch_id: INVALID_WATCH_ID,
                ..Default::default()
            });
        }
        let replay = (!targets.is_empty()).then(|| ReplayJob {
            hub: self.hub.clone(),
            targets,
        });
        StreamPoll { responses, replay }
    }

    /// Applies a replay's result: responses for the replayed events and for
    /// watchers canceled by compaction; caught-up watchers rejoin the synced
    /// group. An error is the backend's and ends the stream.
    pub fn finish_replay(&mut self, result: ReplayResult) -> Result<Vec<WatchResponse>> {
        let replay = result.0?;
        let mut responses = Vec::new();
        let mut state = self.hub.state.lock();
        for (key, outcome) in replay.outcomes {
            let Some(&id) = self.ids.get(&key) else {
                continue;
            };
            match outcome {
                ReplayOutcome::Compacted(compact_revision) => {
                    state.remove(key);
                    self.ids.remove(&key);
                    self.watchers.remove(&id);
                    responses.push(WatchResponse {
                        header: header(0),
                        watch_id: id,
                        canceled: true,
                        compact_revision,
                        ..Default::default()
                    });
                }
                ReplayOutcome::Events { upto, events } => {
                    state.advance(key, upto + 1);
                    if !events.is_empty() {
                        let w = self.watchers.get_mut(&id).expect("a known watcher");
                        w.idle = false;
                        let resp = WatchResponse {
                            header: header(replay.current),
                            watch_id: id,
                            events,
                            ..Default::default()
                        };
                        if w.fragment {
                            responses.extend(fragment(resp, self.max_response_bytes));
                        } else {
                            responses.push(resp);
                        }
                    }
                }
            }
        }
        Ok(responses)
    }

    /// Turns one queued delivery into its response(s).
    fn respond(&mut self, item: Queued, out: &mut Vec<WatchResponse>) {
        let Some(&id) = self.ids.get(&item.watcher) else {
            // Canceled after the delivery was queued.
            return;
        };
        let w = self.watchers.get_mut(&id).expect("ids and watchers agree");
        // An event response is progress enough.
        w.idle = false;
        w.progress_due = false;
        let events: Vec<Event> = item
            .events
            .iter()
            .map(|shared| {
                let e = &shared.event;
                Event {
                    r#type: e.r#type,
                    kv: e.kv.clone(),
                    prev_kv: if w.prev_kv && !is_create(e) {
                        e.prev_kv.clone()
                    } else {
                        None
                    },
                }
            })
            .collect();
        let resp = WatchResponse {
            header: header(item.revision),
            watch_id: id,
            events,
            ..Default::default()
        };
        if w.fragment {
            out.extend(fragment(resp, self.max_response_bytes));
        } else {
            out.push(resp);
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let mut state = self.hub.state.lock();
        for w in self.watchers.values() {
            state.remove(w.key);
        }
        self.hub.drain(&self.queue);
    }
}

/// Splits a response whose encoding reaches `max_bytes` into fragments of
/// whole events, each below `max_bytes` unless one event alone is larger;
/// every fragment but the last has `fragment` set. A response with fewer
/// than two events is never split.
pub fn fragment(resp: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < max_bytes {
        return vec![resp];
    }
    let mut shell = resp;
    let events = std::mem::take(&mut shell.events);
    shell.fragment = true;
    let base = shell.encoded_len();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = base;
    for event in events {
        // Each event costs its length, a tag and a length prefix.
        let cost = event.encoded_len() + 1 + prost::length_delimiter_len(event.encoded_len());
        if !current.is_empty() && size + cost >= max_bytes {
            out.push(WatchResponse {
                events: std::mem::take(&mut current),
                ..shell.clone()
            });
            size = base;
        }
        size += cost;
        current.push(event);
    }
    out.push(WatchResponse {
        events: current,
        fragment: false,
        ..shell
    });
    out
}
