//! The watch guarantees under concurrent writers, many watchers and slow
//! readers: every watcher receives exactly the history its range and start
//! revision select, in revision order, without gaps or duplicates, with all
//! events of one revision in one response.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{Client, DeleteOptions, Txn, TxnOp, WatchOptions, WatchStream};
use retcd_tests::Server;

use crate::{connect, next};

/// Concurrent writer tasks.
const WRITERS: usize = 4;
/// Operations per writer.
const OPS_PER_WRITER: usize = 120;
/// Distinct keys written.
const KEYS: usize = 10;
/// Watch streams.
const STREAMS: usize = 6;

/// One event as compared: revision, key, whether a delete, value.
type Seen = (i64, String, bool, String);

/// What a watcher covers.
#[derive(Clone)]
struct Spec {
    /// Key.
    key: String,
    /// Range end ("" for one key).
    end: String,
    /// Start revision (0: from creation).
    start: i64,
}

impl Spec {
    /// Whether the watcher covers `key`.
    fn covers(&self, key: &str) -> bool {
        if self.end.is_empty() {
            key == self.key
        } else {
            self.key.as_str() <= key && key < self.end.as_str()
        }
    }
}

/// The specs each stream creates.
fn specs() -> Vec<Spec> {
    let spec = |key: &str, end: &str, start| Spec {
        key: key.into(),
        end: end.into(),
        start,
    };
    vec![
        spec("g/", "g0", 0),
        spec("g/3", "", 0),
        spec("g/1", "g/5", 0),
        spec("g/", "g0", 1),
    ]
}

/// Runs one writer: puts, deletes and two-key txns.
async fn write(mut client: Client, writer: usize) {
    for op in 0..OPS_PER_WRITER {
        let key = format!("g/{}", (writer * 7 + op) % KEYS);
        match op % 10 {
            3 => {
                client.delete(key, None).await.unwrap();
            }
            7 => {
                let other = format!("g/{}", (writer * 7 + op + 1) % KEYS);
                let txn = Txn::new().and_then([
                    TxnOp::put(key, format!("t{writer}-{op}"), None),
                    TxnOp::put(other, format!("t{writer}-{op}"), None),
                ]);
                client.txn(txn).await.unwrap();
            }
            _ => {
                client
                    .put(key, format!("v{writer}-{op}"), None)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Reads a stream until every watcher reached `last`; returns each
/// watcher's events and the revisions each response carried.
async fn collect(
    mut stream: WatchStream,
    watchers: usize,
    mut last: tokio::sync::watch::Receiver<i64>,
    slow: bool,
) -> HashMap<i64, (Vec<Seen>, Vec<Vec<i64>>)> {
    let mut out: HashMap<i64, (Vec<Seen>, Vec<Vec<i64>>)> = HashMap::new();
    let mut reached: HashMap<i64, i64> = HashMap::new();
    loop {
        let target = *last.borrow();
        if target > 0 && reached.len() == watchers && reached.values().all(|&r| r >= target) {
            return out;
        }
        let resp = tokio::select! {
            resp = next(&mut stream) => resp,
            _ = last.changed() => continue,
        };
        let entry = out.entry(resp.watch_id()).or_default();
        let progress = resp.header().map_or(0, |h| h.revision());
        reached.insert(resp.watch_id(), progress);
        if resp.events().is_empty() {
            continue;
        }
        let mut revisions: Vec<i64> = Vec::new();
        for e in resp.events() {
            let kv = e.kv().unwrap();
            entry.0.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                e.event_type() == etcd_client::EventType::Delete,
                String::from_utf8_lossy(kv.value()).into_owned(),
            ));
            if revisions.last() != Some(&kv.mod_revision()) {
                revisions.push(kv.mod_revision());
            }
        }
        entry.1.push(revisions);
        if slow {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_many_watchers_ordered_gapless_atomic() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    client.put("g/0", "seed", None).await.unwrap();
    let (last_tx, last_rx) = tokio::sync::watch::channel(0i64);
    let mut readers = Vec::new();
    let mut created_at: Vec<HashMap<i64, (Spec, i64)>> = Vec::new();
    for s in 0..STREAMS {
        let mut c = connect(&server).await;
        let mut stream: Option<WatchStream> = None;
        let mut ids = HashMap::new();
        for spec in specs() {
            let mut options = WatchOptions::new().with_start_revision(spec.start);
            if !spec.end.is_empty() {
                options = options.with_range(spec.end.clone());
            }
            match stream.as_mut() {
                None => stream = Some(c.watch(spec.key.clone(), Some(options)).await.unwrap()),
                Some(st) => st.watch(spec.key.clone(), Some(options)).await.unwrap(),
            }
            let created = next(stream.as_mut().unwrap()).await;
            assert!(created.created(), "{created:?}");
            ids.insert(
                created.watch_id(),
                (spec, created.header().unwrap().revision()),
            );
        }
        let watchers = ids.len();
        created_at.push(ids);
        readers.push(tokio::spawn(collect(
            stream.unwrap(),
            watchers,
            last_rx.clone(),
            s == 0,
        )));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let writer_client = connect(&server).await;
        writers.push(tokio::spawn(write(writer_client, w)));
    }
    for w in writers {
        w.await.unwrap();
    }
    // A final write every watcher covers marks the end of history.
    let end = client.put("g/3", "end", None).await.unwrap();
    let last = end.header().unwrap().revision();
    last_tx.send(last).unwrap();

    // The reference history, read back in one go.
    let mut reference = client
        .watch(
            "g/",
            Some(WatchOptions::new().with_range("g0").with_start_revision(1)),
        )
        .await
        .unwrap();
    let mut history: Vec<Seen> = Vec::new();
    while history.last().is_none_or(|e| e.0 < last) {
        let resp = next(&mut reference).await;
        for e in resp.events() {
            let kv = e.kv().unwrap();
            history.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                e.event_type() == etcd_client::EventType::Delete,
                String::from_utf8_lossy(kv.value()).into_owned(),
            ));
        }
    }
    let writes = client
        .get("g/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(writes.header().unwrap().revision(), last);

    for (reader, ids) in readers.into_iter().zip(created_at) {
        let got = reader.await.unwrap();
        for (id, (spec, created_rev)) in ids {
            let from = if spec.start > 0 {
                spec.start
            } else {
                created_rev + 1
            };
            let want: Vec<Seen> = history
                .iter()
                .filter(|e| e.0 >= from && spec.covers(&e.1))
                .cloned()
                .collect();
            let (events, responses) = got.get(&id).cloned().unwrap_or_default();
            assert_eq!(
                events, want,
                "watcher {id} ({}..{} from {from})",
                spec.key, spec.end
            );
            // Atomic: no revision is split over two responses.
            let mut seen_revisions: Vec<i64> = responses.concat();
            let total = seen_revisions.len();
            seen_revisions.dedup();
            assert_eq!(
                seen_revisions.len(),
                total,
                "watcher {id}: a revision split"
            );
        }
    }
    client
        .delete("g/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
}
