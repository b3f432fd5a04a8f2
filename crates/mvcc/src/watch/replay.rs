//! History replay: the events of past revisions, read back from the backend
//! for watchers that start in the past or fell behind.
//!
//! One replay reads one chunk of revisions for several watchers at once (all
//! the unsynced watchers of a stream), so the rows are scanned once however
//! many watchers want them. A chunk stops after [`MAX_REPLAY_REVISIONS`]
//! revisions or once it holds [`MAX_REPLAY_BYTES`] of events, always at a
//! revision boundary and never before one whole revision.
//!
//! Consistency follows the store's read order: the current revision first,
//! then a backend snapshot, then the compaction revision under the index
//! lock. A watcher whose next revision is below the compaction revision is
//! reported compacted, as etcd cancels it; the rows from there on are all in
//! the snapshot. `prev_kv` is the key's value at the revision before the
//! event, as etcd looks it up; it is left out when that revision has been
//! compacted, and never set on a create.

use prost::Message;
use retcd_api::mvccpb::event::EventType;
use retcd_api::mvccpb::{Event, KeyValue};

use super::group::WatchSpan;
use super::{Filter, WatcherKey, is_create};
use crate::backend::Snapshot;
use crate::error::Result;
use crate::revision::decode_key;
use crate::store::Shared;

/// Most revisions one replay chunk covers (etcd's batch of 1,000 revisions).
pub const MAX_REPLAY_REVISIONS: i64 = 1000;
/// Bytes of events after which a replay chunk ends at the next revision boundary.
pub const MAX_REPLAY_BYTES: usize = 1024 * 1024;

/// One watcher a replay reads for.
#[derive(Clone, Debug)]
pub(crate) struct ReplayTarget {
    /// The watcher.
    pub watcher: WatcherKey,
    /// The first revision it still needs.
    pub next_rev: i64,
    /// The keys it watches.
    pub span: WatchSpan,
    /// The event kinds it drops.
    pub filter: Filter,
    /// Whether its events carry `prev_kv`.
    pub prev_kv: bool,
}

/// What a replay found for one watcher.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ReplayOutcome {
    /// Its events of revisions up to `upto` (inclusive), in order.
    Events {
        /// The last revision the chunk covered for this watcher.
        upto: i64,
        /// The matching events.
        events: Vec<Event>,
    },
    /// Its next revision is compacted away; etcd cancels such a watcher.
    Compacted(i64),
}

/// The result of one replay chunk.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The store revision the chunk was read at (etcd's response header).
    pub current: i64,
    /// One outcome per target, in the targets' order.
    pub outcomes: Vec<(WatcherKey, ReplayOutcome)>,
}

/// Reads the next chunk of history for `targets`.
pub(crate) fn replay(shared: &Shared, targets: &[ReplayTarget]) -> Result<Replay> {
    use std::sync::atomic::Ordering;
    let current = shared.current_rev.load(Ordering::Acquire);
    let snapshot = shared.backend.snapshot()?;
    let compact = {
        let _index = shared.index.read();
        shared.compact_rev.load(Ordering::Acquire)
    };
    let live: Vec<&ReplayTarget> = targets.iter().filter(|t| t.next_rev >= compact).collect();
    let mut events: Vec<Vec<Event>> = vec![Vec::new(); live.len()];
    let from = live.iter().map(|t| t.next_rev).min().unwrap_or(i64::MAX);
    let mut end = current.min(from.saturating_add(MAX_REPLAY_REVISIONS - 1));
    if from <= end {
        let mut bytes = 0usize;
        let mut last_main = from - 1;
        snapshot.scan_between(from, end, |key, row| {
            let (rev, tombstone) = decode_key(key);
            if rev.main != last_main && bytes >= MAX_REPLAY_BYTES {
                end = last_main;
                return Ok(false);
            }
            last_main = rev.main;
            let kv = KeyValue::decode(row)?;
            let event = if tombstone {
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: kv.key,
                        mod_revision: rev.main,
                        ..Default::default()
                    }),
                    prev_kv: None,
                }
            } else {
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            };
            let key = &event.kv.as_ref().expect("set above").key;
            let mut prev: Option<Option<KeyValue>> = None;
            for (i, target) in live.iter().enumerate() {
                if rev.main < target.next_rev
                    || !target.span.contains(key)
                    || !target.filter.passes(&event)
                {
                    continue;
                }
                let mut ev = event.clone();
                if target.prev_kv && !is_create(&event) {
                    if prev.is_none() {
                        prev = Some(prev_kv(shared, &snapshot, key, rev.main)?);
                    }
                    ev.prev_kv = prev.clone().flatten();
                }
                bytes += ev.encoded_len();
                events[i].push(ev);
            }
            Ok(true)
        })?;
    }
    let mut live_events = events.into_iter();
    let outcomes = targets
        .iter()
        .map(|t| {
            let outcome = if t.next_rev < compact {
                ReplayOutcome::Compacted(compact)
            } else {
                ReplayOutcome::Events {
                    upto: end.max(t.next_rev - 1),
                    events: live_events.next().expect("one list per live target"),
                }
            };
            (t.watcher, outcome)
        })
        .collect();
    Ok(Replay { current, outcomes })
}

/// Reads the `prev_kv` of every event in `events` (one committed batch) that
/// lacks it and has one: the apply thread reads a put's previous value only
/// when its request asks for it. Compacted in the meantime: left empty.
pub(crate) fn fill_prev_kvs(shared: &Shared, events: &mut [Event]) -> Result<()> {
    let mut missing = events
        .iter_mut()
        .filter(|e| e.prev_kv.is_none() && !is_create(e) && e.kv.is_some())
        .peekable();
    if missing.peek().is_none() {
        return Ok(());
    }
    let snapshot = shared.backend.snapshot()?;
    for event in missing {
        let kv = event.kv.as_ref().expect("filtered on kv");
        event.prev_kv = prev_kv(shared, &snapshot, &kv.key, kv.mod_revision)?;
    }
    Ok(())
}

/// The value `key` had just before main revision `rev`, unless compacted.
fn prev_kv(shared: &Shared, snapshot: &Snapshot, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
    use std::sync::atomic::Ordering;
    let state = {
        let index = shared.index.read();
        if rev - 1 < shared.compact_rev.load(Ordering::Acquire) {
            return Ok(None);
        }
        index.get(key, rev - 1)
    };
    state.map(|s| snapshot.load(s.modified)).transpose()
}
