//! Data-driven watch scenarios: `testdata/watch*.txt` scripts (format in
//! [`crate::testutil`]) against a real store, a hub whose dispatcher runs on
//! the test thread, and named streams, so every interleaving is explicit.
//!
//! Commands:
//! - `limits [items=N] [bytes=N] [batches=N]`: a fresh store and hub with
//!   these queue bounds (the defaults otherwise)
//! - `put K V [hold]`, `del K [end=E] [hold]`, `txn put=K=V... del=K...`:
//!   one committed batch; its events are published and, unless `hold`,
//!   dispatched
//! - `compact N`, `dispatch`
//! - `watch S [id=N] K [end=E] [rev=N] [prev_kv] [noput] [nodelete]
//!   [progress_notify] [fragment]`: create on stream `S` (opened on first use)
//! - `cancel S ID`, `progress S`, `tick S`, `close S`
//! - `poll S`: drain the stream, running replay chunks until none is left
//! - `count`: watchers in the hub, and how many of them are unsynced
//!
//! Responses print one per line: `S id=N rev=N [created] [canceled]
//! [compact=N] [reason=...] [fragment]`, then one line per event.

use std::collections::BTreeMap;
use std::sync::Arc;

use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::watch_create_request::FilterType;
use retcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchResponse,
};
use retcd_api::mvccpb::event::EventType;
use retcd_api::mvccpb::{Event, KeyValue};

use super::{Dispatcher, EventPublisher, WatchHub, WatchLimits, WatchStream, fragment};
use crate::Store;
use crate::testutil::{arg, flag, run_file, words};

/// Largest response before fragmenting watchers split, in the scripts.
const TEST_MAX_RESPONSE_BYTES: usize = 200;
/// Replay chunks one `poll` runs at most (a runaway guard).
const MAX_POLL_ROUNDS: usize = 100;

/// A store with a hub and named streams.
struct Harness {
    /// Holds the store's file.
    _dir: tempfile::TempDir,
    /// The store.
    store: Arc<Store>,
    /// The hub.
    hub: WatchHub,
    /// The apply thread's end.
    publisher: EventPublisher,
    /// The dispatcher, run by hand.
    dispatcher: Dispatcher,
    /// Streams by name.
    streams: BTreeMap<String, WatchStream>,
}

impl Harness {
    /// A fresh store and hub with `limits`.
    fn new(limits: WatchLimits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let (hub, publisher, dispatcher) = WatchHub::new(store.clone(), limits);
        Harness {
            _dir: dir,
            store,
            hub,
            publisher,
            dispatcher,
            streams: BTreeMap::new(),
        }
    }

    /// The stream named `name`, opened on first use.
    fn stream(&mut self, name: &str) -> &mut WatchStream {
        let hub = &self.hub;
        self.streams
            .entry(name.to_string())
            .or_insert_with(|| hub.stream(TEST_MAX_RESPONSE_BYTES))
    }

    /// Commits one batch built by `f`, publishes its events and, unless
    /// `hold`, dispatches them.
    fn write(&mut self, hold: bool, f: impl FnOnce(&mut crate::WriteBatch<'_>)) -> String {
        let mut batch = self.store.write().unwrap();
        f(&mut batch);
        let events = batch.take_events();
        batch.commit(false).unwrap();
        self.publisher.publish(events);
        if !hold {
            self.dispatcher.dispatch_pending();
        }
        format!("rev={}", self.store.current_revision())
    }

    /// Runs one command line.
    fn run(&mut self, line: &str) -> String {
        let w = words(line);
        let none = |_: i64| false;
        match w[0] {
            "limits" => {
                let d = WatchLimits::default();
                *self = Harness::new(WatchLimits {
                    stream_queue_items: arg(&w, "items").unwrap_or(d.stream_queue_items),
                    stream_queue_bytes: arg(&w, "bytes").unwrap_or(d.stream_queue_bytes),
                    publish_queue_batches: arg(&w, "batches").unwrap_or(d.publish_queue_batches),
                    total_queue_bytes: d.total_queue_bytes,
                });
                "ok".into()
            }
            "put" => {
                let req = PutRequest {
                    key: w[1].into(),
                    value: w[2].into(),
                    ..Default::default()
                };
                self.write(flag(&w, "hold"), |b| {
                    b.put(&req, &none).unwrap();
                })
            }
            "del" => {
                let req = DeleteRangeRequest {
                    key: w[1].into(),
                    range_end: arg::<String>(&w, "end").unwrap_or_default().into(),
                    ..Default::default()
                };
                self.write(flag(&w, "hold"), |b| {
                    b.delete_range(&req).unwrap();
                })
            }
            "txn" => {
                let mut ops = Vec::new();
                for a in &w[1..] {
                    let (kind, rest) = a.split_once('=').unwrap();
                    let request = match kind {
                        "put" => {
                            let (k, v) = rest.split_once('=').unwrap();
                            Request::RequestPut(PutRequest {
                                key: k.into(),
                                value: v.into(),
                                ..Default::default()
                            })
                        }
                        _ => Request::RequestDeleteRange(DeleteRangeRequest {
                            key: rest.into(),
                            ..Default::default()
                        }),
                    };
                    ops.push(RequestOp {
                        request: Some(request),
                    });
                }
                let req = TxnRequest {
                    success: ops,
                    ..Default::default()
                };
                self.write(false, |b| {
                    b.txn(&req, &none).unwrap();
                })
            }
            "compact" => {
                let rev: i64 = w[1].parse().unwrap();
                let mut batch = self.store.write().unwrap();
                batch.compact(rev).unwrap();
                batch.commit(false).unwrap();
                self.store.wait_compaction_done(rev);
                "ok".into()
            }
            "dispatch" => {
                self.dispatcher.dispatch_pending();
                "ok".into()
            }
            "watch" => {
                let mut filters = Vec::new();
                if flag(&w, "noput") {
                    filters.push(FilterType::Noput as i32);
                }
                if flag(&w, "nodelete") {
                    filters.push(FilterType::Nodelete as i32);
                }
                let req = WatchCreateRequest {
                    key: w[2].into(),
                    range_end: arg::<String>(&w, "end")
                        .map(|e| if e == "\\x00" { vec![0] } else { e.into() })
                        .unwrap_or_default(),
                    start_revision: arg(&w, "rev").unwrap_or(0),
                    progress_notify: flag(&w, "progress_notify"),
                    filters,
                    prev_kv: flag(&w, "prev_kv"),
                    watch_id: arg(&w, "id").unwrap_or(0),
                    fragment: flag(&w, "fragment"),
                };
                let resp = self.stream(w[1]).create(&req);
                fmt_response(w[1], &resp)
            }
            "cancel" => match self.stream(w[1]).cancel(w[2].parse().unwrap()) {
                Some(resp) => fmt_response(w[1], &resp),
                None => "no response".into(),
            },
            "progress" => {
                self.stream(w[1]).request_progress();
                "ok".into()
            }
            "tick" => {
                self.stream(w[1]).progress_tick();
                "ok".into()
            }
            "close" => {
                self.streams.remove(w[1]);
                "ok".into()
            }
            "count" => format!(
                "watchers={} unsynced={}",
                self.hub.watcher_count(),
                self.hub.unsynced_count()
            ),
            "poll" => {
                let name = w[1];
                let stream = self.stream(name);
                let mut out = Vec::new();
                for _ in 0..MAX_POLL_ROUNDS {
                    let poll = stream.poll();
                    out.extend(poll.responses.iter().map(|r| fmt_response(name, r)));
                    let Some(job) = poll.replay else { break };
                    let responses = stream.finish_replay(job.run()).unwrap();
                    out.extend(responses.iter().map(|r| fmt_response(name, r)));
                }
                if out.is_empty() {
                    "nothing".into()
                } else {
                    out.join("\n")
                }
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// One key-value pair, compactly.
fn fmt_kv(kv: &KeyValue) -> String {
    format!(
        "{}={} c={} m={} v={}",
        kv.key.escape_ascii(),
        kv.value.escape_ascii(),
        kv.create_revision,
        kv.mod_revision,
        kv.version
    )
}

/// One event on one line.
fn fmt_event(e: &Event) -> String {
    let kind = if e.r#type == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    };
    let mut s = format!("  {kind} {}", fmt_kv(e.kv.as_ref().unwrap()));
    if let Some(prev) = &e.prev_kv {
        s += &format!(" prev: {}", fmt_kv(prev));
    }
    s
}

/// A response and its events.
fn fmt_response(stream: &str, r: &WatchResponse) -> String {
    let mut s = format!(
        "{stream} id={} rev={}",
        r.watch_id,
        r.header.as_ref().map_or(0, |h| h.revision)
    );
    for (set, word) in [
        (r.created, "created"),
        (r.canceled, "canceled"),
        (r.fragment, "fragment"),
    ] {
        if set {
            s += " ";
            s += word;
        }
    }
    if r.compact_revision != 0 {
        s += &format!(" compact={}", r.compact_revision);
    }
    if !r.cancel_reason.is_empty() {
        s += &format!(" reason={:?}", r.cancel_reason);
    }
    for e in &r.events {
        s += "\n";
        s += &fmt_event(e);
    }
    s
}

/// Runs a script file against a fresh harness.
fn run_script(name: &str) {
    let mut h = Harness::new(WatchLimits::default());
    run_file(name, |lines| {
        lines
            .iter()
            .map(|l| h.run(l))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

#[test]
fn watch_scenarios() {
    run_script("watch.txt");
}

#[test]
fn slow_watcher_scenarios() {
    run_script("watch_slow.txt");
}

#[test]
fn fragments_split_between_events_and_mark_all_but_the_last() {
    let event = |i: u8| Event {
        kv: Some(KeyValue {
            key: vec![b'k', i],
            value: vec![0; 40],
            mod_revision: 7,
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = WatchResponse {
        watch_id: 3,
        events: (0..10).map(event).collect(),
        ..Default::default()
    };
    let parts = fragment(resp.clone(), 150);
    assert!(parts.len() > 1);
    let (last, rest) = parts.split_last().unwrap();
    assert!(
        rest.iter()
            .all(|p| p.fragment && prost::Message::encoded_len(p) < 150)
    );
    assert!(!last.fragment);
    let joined: Vec<Event> = parts.iter().flat_map(|p| p.events.clone()).collect();
    assert_eq!(joined, resp.events);
    assert_eq!(fragment(resp.clone(), 10_000), vec![resp.clone()]);
    let single = WatchResponse {
        events: vec![event(1)],
        ..resp
    };
    assert_eq!(fragment(single.clone(), 1), vec![single]);
}

#[test]
fn concurrent_writers_and_readers_see_every_revision_once_in_order() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut h = Harness::new(WatchLimits {
        stream_queue_items: 4,
        publish_queue_batches: 2,
        ..WatchLimits::default()
    });
    let dispatcher = std::mem::replace(
        &mut h.dispatcher,
        WatchHub::new(h.store.clone(), WatchLimits::default()).2,
    );
    let handle = dispatcher.spawn().unwrap();
    const WRITES: i64 = 500;
    let mut streams: Vec<WatchStream> = (0..4).map(|_| h.hub.stream(1 << 20)).collect();
    for s in &mut streams {
        s.create(&WatchCreateRequest {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision: 1,
            ..Default::default()
        });
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let poll = s.poll();
                    let mut responses = poll.responses;
                    if let Some(job) = poll.replay {
                        responses.extend(s.finish_replay(job.run()).unwrap());
                    }
                    for r in responses {
                        seen.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
                    }
                    if finished && seen.last() == Some(&(WRITES + 1)) {
                        return seen;
                    }
                    // Reader 0 is slow, so it overflows and replays.
                    std::thread::sleep(std::time::Duration::from_micros(if i == 0 {
                        500
                    } else {
                        10
                    }));
                }
            })
        })
        .collect();
    for i in 0..WRITES {
        let req = PutRequest {
            key: format!("k{}", i % 7).into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        h.write(true, |b| {
            b.put(&req, &|_| false).unwrap();
        });
    }
    done.store(true, Ordering::Release);
    for r in readers {
        let seen = r.join().unwrap();
        assert_eq!(seen, (2..=WRITES + 1).collect::<Vec<_>>());
    }
    drop(h);
    handle.join().unwrap();
}
