//! Put, get, delete, txn and compact through `etcd-client`, with the header
//! revision advancing by exactly one per write and never on reads.

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse,
};
use retcd_tests::Server;

use crate::connect;

#[tokio::test]
async fn put_get_delete_roundtrip() {
    let server = Server::ours();
    let mut client = connect(&server).await;

    let put = client.put("foo", "bar", None).await.unwrap();
    let header = put.header().expect("put has a header");
    assert_eq!(
        header.revision(),
        2,
        "the first write of an empty store is revision 2"
    );
    assert_ne!(header.cluster_id(), 0);
    assert_ne!(header.member_id(), 0);
    assert!(header.raft_term() >= 1);
    let (cluster_id, member_id) = (header.cluster_id(), header.member_id());

    let put = client
        .put("foo", "bar_new", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(put.header().unwrap().revision(), 3);
    let prev = put.prev_key().expect("prev_kv requested");
    assert_eq!((prev.key(), prev.value()), (&b"foo"[..], &b"bar"[..]));
    assert_eq!(
        (prev.create_revision(), prev.mod_revision(), prev.version()),
        (2, 2, 1)
    );

    client.put("foo1", "bar1", None).await.unwrap();
    let get = client.get("foo", None).await.unwrap();
    let header = get.header().unwrap();
    assert_eq!(
        (header.revision(), header.cluster_id(), header.member_id()),
        (4, cluster_id, member_id)
    );
    assert_eq!(get.count(), 1);
    let kv = &get.kvs()[0];
    assert_eq!(kv.value(), b"bar_new");
    assert_eq!(
        (
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        ),
        (2, 3, 2, 0)
    );

    let prefix = client
        .get("foo", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(prefix.count(), 2);
    assert_eq!(prefix.kvs()[1].key(), b"foo1");

    let old = client
        .get(
            "foo",
            Some(GetOptions::new().with_prefix().with_revision(2)),
        )
        .await
        .unwrap();
    assert_eq!(old.kvs().len(), 1);
    assert_eq!(old.kvs()[0].value(), b"bar");
    assert_eq!(
        old.header().unwrap().revision(),
        4,
        "a historical read reports the current revision"
    );

    let del = client
        .delete(
            "foo",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(del.deleted(), 2);
    assert_eq!(
        del.header().unwrap().revision(),
        5,
        "one delete of two keys is one revision"
    );
    assert_eq!(del.prev_kvs().len(), 2);

    let none = client.delete("foo", None).await.unwrap();
    assert_eq!(
        (none.deleted(), none.header().unwrap().revision()),
        (0, 5),
        "deleting nothing writes nothing"
    );
    let empty = client
        .get("foo", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!((empty.count(), empty.kvs().len()), (0, 0));

    let again = client.put("foo", "again", None).await.unwrap();
    assert_eq!(again.header().unwrap().revision(), 6);
    let kv = &client.get("foo", None).await.unwrap().kvs()[0].clone();
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (6, 6, 1),
        "a new generation"
    );
}

#[tokio::test]
async fn limits_sorting_and_counts() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for (key, value) in [("a", "3"), ("b", "1"), ("c", "2"), ("a", "1"), ("d", "0")] {
        client.put(key, value, None).await.unwrap();
    }
    let limited = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(
        (limited.kvs().len(), limited.count(), limited.more()),
        (2, 4, true)
    );
    let by_value = client
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Value, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = by_value.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(
        keys,
        [&b"c"[..], b"a", b"b", b"d"],
        "values 2, 1, 1, 0; ties keep key order"
    );
    let counted = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!((counted.count(), counted.kvs().len()), (4, 0));
    let keys_only = client
        .get("a", Some(GetOptions::new().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(
        (keys_only.kvs()[0].key(), keys_only.kvs()[0].value()),
        (&b"a"[..], &b""[..])
    );
    let filtered = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_min_mod_revision(5)),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = filtered.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"a"[..], b"d"]);
}

#[tokio::test]
async fn txn_branches_and_nesting() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    client.put("a", "1", None).await.unwrap();

    let txn = Txn::new()
        .when([
            Compare::value("a", CompareOp::Equal, "1"),
            Compare::version("missing", CompareOp::Equal, 0),
        ])
        .and_then([
            TxnOp::put("b", "2", None),
            TxnOp::get("a", None),
            TxnOp::delete("none", None),
        ])
        .or_else([TxnOp::put("c", "3", None)]);
    let response = client.txn(txn).await.unwrap();
    assert!(response.succeeded());
    assert_eq!(response.header().unwrap().revision(), 3);
    let ops = response.op_responses();
    assert_eq!(ops.len(), 3);
    match &ops[1] {
        TxnOpResponse::Get(get) => assert_eq!(get.kvs()[0].value(), b"1"),
        other => panic!("expected a range response, got {other:?}"),
    }

    let txn = Txn::new()
        .when([Compare::mod_revision("b", CompareOp::Greater, 3)])
        .and_then([TxnOp::put("never", "x", None)])
        .or_else([
            TxnOp::put("c", "3", Some(PutOptions::new().with_prev_key())),
            TxnOp::put("d", "4", None),
        ]);
    let response = client.txn(txn).await.unwrap();
    assert!(!response.succeeded());
    assert_eq!(
        response.header().unwrap().revision(),
        4,
        "two puts in one txn are one revision"
    );
    let d = client.get("d", None).await.unwrap();
    assert_eq!(d.kvs()[0].mod_revision(), 4);
    let c = client.get("c", None).await.unwrap();
    assert_eq!(c.kvs()[0].mod_revision(), 4);

    let read_only = Txn::new()
        .when([Compare::create_revision("a", CompareOp::Less, 100)])
        .and_then([TxnOp::get("a", None)]);
    let response = client.txn(read_only).await.unwrap();
    assert_eq!(
        response.header().unwrap().revision(),
        4,
        "a read-only txn writes nothing"
    );

    let nested = Txn::new().and_then([TxnOp::txn(
        Txn::new()
            .when([Compare::value("a", CompareOp::Equal, "1")])
            .and_then([TxnOp::put("n", "nested", None)]),
    )]);
    let response = client.txn(nested).await.unwrap();
    assert!(response.succeeded());
    assert_eq!(response.header().unwrap().revision(), 5);
    match &response.op_responses()[0] {
        TxnOpResponse::Txn(inner) => assert!(inner.succeeded()),
        other => panic!("expected a txn response, got {other:?}"),
    }
    assert_eq!(
        client.get("n", None).await.unwrap().kvs()[0].value(),
        b"nested"
    );
}

#[tokio::test]
async fn compaction_keeps_the_compacted_revision_readable() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for value in ["1", "2", "3", "4"] {
        client.put("k", value, None).await.unwrap();
    }
    let compacted = client.compact(3, None).await.unwrap();
    assert_eq!(
        compacted.header().unwrap().revision(),
        5,
        "compaction is not a write"
    );
    let at = client
        .get("k", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(at.kvs()[0].value(), b"2");
    client
        .compact(
            4,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    let put = client.put("k", "5", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), 6);
    let at = client
        .get("k", Some(GetOptions::new().with_revision(4)))
        .await
        .unwrap();
    assert_eq!(at.kvs()[0].value(), b"3");
}
