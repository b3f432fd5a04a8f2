//! Watch semantics through `etcd-client`: created, live events and history,
//! prev_kv, filters, cancel, ids, compaction, progress, resume.

use etcd_client::{EventType, WatchFilterType, WatchOptions};
use retcd_tests::{Flavour, Server};

use crate::{connect, next};

/// `(type, key, value, mod_revision, prev value)` of every event of a response.
fn events(
    resp: &etcd_client::WatchResponse,
) -> Vec<(EventType, String, String, i64, Option<String>)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("an event has a kv");
            (
                e.event_type(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.mod_revision(),
                e.prev_kv()
                    .map(|p| String::from_utf8_lossy(p.value()).into_owned()),
            )
        })
        .collect()
}

#[tokio::test]
async fn created_then_live_events_with_prev_kv_and_header() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    client.put("foo", "a", None).await.unwrap();
    let mut stream = client
        .watch("foo", Some(WatchOptions::new().with_prev_key()))
        .await
        .unwrap();
    let created = next(&mut stream).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 0);
    let header = created.header().unwrap();
    assert_eq!(header.revision(), 2);
    assert!(header.cluster_id() != 0 && header.member_id() != 0 && header.raft_term() >= 1);

    client.put("foo", "b", None).await.unwrap();
    client.put("other", "x", None).await.unwrap();
    client.delete("foo", None).await.unwrap();
    let put = next(&mut stream).await;
    assert_eq!(put.header().unwrap().revision(), 3);
    assert_eq!(
        events(&put),
        vec![(
            EventType::Put,
            "foo".into(),
            "b".into(),
            3,
            Some("a".into())
        )]
    );
    let del = next(&mut stream).await;
    assert_eq!(
        events(&del),
        vec![(
            EventType::Delete,
            "foo".into(),
            "".into(),
            5,
            Some("b".into())
        )]
    );
}

#[tokio::test]
async fn history_filters_cancel_and_ids_on_one_stream() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for v in ["1", "2"] {
        client.put("k1", v, None).await.unwrap();
    }
    client.delete("k1", None).await.unwrap();
    let mut stream = client
        .watch(
            "k",
            Some(WatchOptions::new().with_prefix().with_start_revision(2)),
        )
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    let history = next(&mut stream).await;
    assert_eq!(history.header().unwrap().revision(), 4);
    assert_eq!(
        events(&history),
        vec![
            (EventType::Put, "k1".into(), "1".into(), 2, None),
            (EventType::Put, "k1".into(), "2".into(), 3, None),
            (EventType::Delete, "k1".into(), "".into(), 4, None),
        ]
    );

    let no_put = WatchOptions::new()
        .with_prefix()
        .with_filters([WatchFilterType::NoPut])
        .with_watch_id(7);
    stream.watch("k", Some(no_put.clone())).await.unwrap();
    let created = next(&mut stream).await;
    assert_eq!((created.created(), created.watch_id()), (true, 7));
    stream.watch("k", Some(no_put)).await.unwrap();
    let dup = next(&mut stream).await;
    assert_eq!(
        (
            dup.created(),
            dup.canceled(),
            dup.watch_id(),
            dup.cancel_reason()
        ),
        (
            true,
            true,
            -1,
            "mvcc: duplicate watch ID provided on the WatchStream"
        )
    );

    client.put("k2", "x", None).await.unwrap();
    client.delete("k2", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let resp = next(&mut stream).await;
        seen.push((resp.watch_id(), events(&resp)));
    }
    seen.sort_by_key(|(id, evs)| (evs[0].3, *id));
    assert_eq!(
        seen,
        vec![
            (0, vec![(EventType::Put, "k2".into(), "x".into(), 5, None)]),
            (
                0,
                vec![(EventType::Delete, "k2".into(), "".into(), 6, None)]
            ),
            (
                7,
                vec![(EventType::Delete, "k2".into(), "".into(), 6, None)]
            ),
        ]
    );

    stream.cancel(0).await.unwrap();
    let canceled = next(&mut stream).await;
    assert_eq!((canceled.canceled(), canceled.watch_id()), (true, 0));
    client
        .delete("k", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    client.put("k3", "y", None).await.unwrap();
    client.delete("k3", None).await.unwrap();
    let only = next(&mut stream).await;
    assert_eq!(only.watch_id(), 7);
    assert_eq!(
        events(&only),
        vec![(EventType::Delete, "k3".into(), "".into(), 8, None)]
    );
}

#[tokio::test]
async fn compacted_start_revision_is_canceled_after_created() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for i in 0..5 {
        client.put("c", format!("{i}"), None).await.unwrap();
    }
    client.compact(4, None).await.unwrap();
    let mut stream = client
        .watch("c", Some(WatchOptions::new().with_start_revision(3)))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    let canceled = next(&mut stream).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.compact_revision(), 4);
    assert_eq!(canceled.header().unwrap().revision(), 0);

    // At the compaction revision itself, history is still there.
    stream
        .watch("c", Some(WatchOptions::new().with_start_revision(4)))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    let history = next(&mut stream).await;
    let revisions: Vec<i64> = events(&history).iter().map(|e| e.3).collect();
    assert_eq!(revisions, vec![4, 5, 6]);
}

#[tokio::test]
async fn resume_after_reconnect_from_the_next_revision() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let mut stream = client
        .watch("r", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    for i in 0..3 {
        client.put(format!("r{i}"), "v", None).await.unwrap();
    }
    let mut last = 0;
    for _ in 0..3 {
        last = next(&mut stream).await.events()[0]
            .kv()
            .unwrap()
            .mod_revision();
    }
    drop(stream);
    for i in 3..6 {
        client.put(format!("r{i}"), "v", None).await.unwrap();
    }
    let mut client = connect(&server).await;
    let mut stream = client
        .watch(
            "r",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(last + 1),
            ),
        )
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    let resumed = next(&mut stream).await;
    let keys: Vec<String> = events(&resumed).into_iter().map(|e| e.1).collect();
    assert_eq!(keys, vec!["r3", "r4", "r5"]);
}

#[tokio::test]
async fn progress_requests_and_periodic_notifications() {
    let server = Server::start(
        Flavour::Ours,
        &["--experimental-watch-progress-notify-interval", "200ms"],
    );
    let mut client = connect(&server).await;
    client.put("p", "1", None).await.unwrap();
    let mut stream = client
        .watch("p", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    client.put("unrelated", "1", None).await.unwrap();
    // The periodic notification names the revision the watcher is up to.
    let progress = next(&mut stream).await;
    assert!(progress.events().is_empty() && !progress.created() && !progress.canceled());
    assert_eq!(progress.watch_id(), 0);
    assert!(progress.header().unwrap().revision() >= 2);

    let mut quiet = client.watch("q", None).await.unwrap();
    assert!(next(&mut quiet).await.created());
    quiet.request_progress().await.unwrap();
    let requested = next(&mut quiet).await;
    assert_eq!(requested.watch_id(), -1);
    assert_eq!(requested.header().unwrap().revision(), 3);
}
