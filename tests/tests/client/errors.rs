//! The gRPC status of every KV error, code and message, as etcd returns them.

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use retcd_tests::Server;
use tonic::Code;

use crate::{connect, grpc_error};

/// The default `--max-request-bytes`: 1.5 MiB.
const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's gRPC receive limit: `--max-request-bytes` plus 512 KiB of overhead.
const GRPC_RECEIVE_LIMIT_BYTES: usize = DEFAULT_MAX_REQUEST_BYTES + 512 * 1024;

/// The default `--max-txn-ops`.
const DEFAULT_MAX_TXN_OPS: usize = 128;

const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const TOO_LARGE: &str = "etcdserver: request is too large";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";

#[tokio::test]
async fn empty_keys_are_invalid_arguments() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let expected = (Code::InvalidArgument, KEY_NOT_PROVIDED.to_string());
    assert_eq!(grpc_error(client.put("", "x", None).await), expected);
    assert_eq!(grpc_error(client.get("", None).await), expected);
    assert_eq!(grpc_error(client.delete("", None).await), expected);
    let in_txn = Txn::new().and_then([TxnOp::put("", "x", None)]);
    assert_eq!(grpc_error(client.txn(in_txn).await), expected);
    let ranged_delete = client
        .delete("", Some(DeleteOptions::new().with_range("z")))
        .await;
    assert_eq!(grpc_error(ranged_delete), expected);
}

#[tokio::test]
async fn revisions_out_of_range() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for value in ["1", "2", "3"] {
        client.put("k", value, None).await.unwrap();
    }
    let future = (Code::OutOfRange, FUTURE_REV.to_string());
    let compacted = (Code::OutOfRange, COMPACTED.to_string());
    assert_eq!(
        grpc_error(
            client
                .get("k", Some(GetOptions::new().with_revision(5)))
                .await
        ),
        future
    );
    assert_eq!(grpc_error(client.compact(5, None).await), future);
    client.compact(3, None).await.unwrap();
    assert_eq!(grpc_error(client.compact(3, None).await), compacted);
    assert_eq!(grpc_error(client.compact(2, None).await), compacted);
    assert_eq!(
        grpc_error(
            client
                .get("k", Some(GetOptions::new().with_revision(2)))
                .await
        ),
        compacted
    );
    let in_txn = Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(2)))]);
    assert_eq!(grpc_error(client.txn(in_txn).await), compacted);
    let future_in_txn =
        Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(9)))]);
    assert_eq!(grpc_error(client.txn(future_in_txn).await), future);
}

#[tokio::test]
async fn txn_limits_and_duplicates() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let puts = |n: usize| -> Vec<TxnOp> {
        (0..n)
            .map(|i| TxnOp::put(format!("k{i}"), "v", None))
            .collect()
    };
    let too_many = Txn::new().and_then(puts(DEFAULT_MAX_TXN_OPS + 1));
    assert_eq!(
        grpc_error(client.txn(too_many).await),
        (Code::InvalidArgument, TOO_MANY_OPS.to_string())
    );
    let too_many_compares = Txn::new().when(
        (0..=DEFAULT_MAX_TXN_OPS)
            .map(|i| Compare::version(format!("k{i}"), CompareOp::Equal, 0))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        grpc_error(client.txn(too_many_compares).await),
        (Code::InvalidArgument, TOO_MANY_OPS.to_string())
    );
    let at_limit = client
        .txn(Txn::new().and_then(puts(DEFAULT_MAX_TXN_OPS)))
        .await
        .unwrap();
    assert_eq!(at_limit.header().unwrap().revision(), 2);

    let duplicate = (Code::InvalidArgument, DUPLICATE_KEY.to_string());
    let two_puts = Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    assert_eq!(grpc_error(client.txn(two_puts).await), duplicate);
    let put_in_deleted_range = Txn::new().and_then([
        TxnOp::put("d", "1", None),
        TxnOp::delete("a", Some(DeleteOptions::new().with_range("z"))),
    ]);
    assert_eq!(
        grpc_error(client.txn(put_in_deleted_range).await),
        duplicate
    );
    let in_failure_branch = Txn::new()
        .when([Compare::version("d", CompareOp::Greater, 100)])
        .or_else([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    assert_eq!(grpc_error(client.txn(in_failure_branch).await), duplicate);
    let read_and_write = Txn::new().and_then([TxnOp::get("d", None), TxnOp::put("d", "1", None)]);
    assert!(client.txn(read_and_write).await.unwrap().succeeded());
}

#[tokio::test]
async fn oversized_requests() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let over = vec![b'x'; DEFAULT_MAX_REQUEST_BYTES + 30 * 1024];
    assert_eq!(
        grpc_error(client.put("big", over, None).await),
        (Code::InvalidArgument, TOO_LARGE.to_string())
    );
    let under = vec![b'y'; DEFAULT_MAX_REQUEST_BYTES - 64 * 1024];
    client.put("big", under, None).await.unwrap();
    let beyond_grpc = vec![b'z'; GRPC_RECEIVE_LIMIT_BYTES + 1024];
    let (code, message) = grpc_error(client.put("huge", beyond_grpc, None).await);
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    let still = client
        .get("big", Some(GetOptions::new().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(still.count(), 1, "the server survives oversized messages");
}

#[tokio::test]
async fn ignore_value_and_lease_need_an_existing_key() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let not_found = (Code::InvalidArgument, KEY_NOT_FOUND.to_string());
    let ignore_value = client
        .put("missing", "", Some(PutOptions::new().with_ignore_value()))
        .await;
    assert_eq!(grpc_error(ignore_value), not_found);
    let ignore_lease = client
        .put("missing", "v", Some(PutOptions::new().with_ignore_lease()))
        .await;
    assert_eq!(grpc_error(ignore_lease), not_found);
    client.put("k", "v", None).await.unwrap();
    let kept = client
        .put("k", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap();
    assert_eq!(kept.header().unwrap().revision(), 3);
    let kv = client.get("k", None).await.unwrap().kvs()[0].clone();
    assert_eq!(
        (kv.value(), kv.mod_revision(), kv.version()),
        (&b"v"[..], 3, 2)
    );
}

#[tokio::test]
async fn a_nested_txn_gets_what_its_parent_left_like_reference() {
    // The parent's success branch holds two ops (a range and the nested
    // txn), which leaves 126 of the default 128 to the nested txn.
    let puts = |n: usize| -> Vec<TxnOp> {
        (0..n)
            .map(|i| TxnOp::put(format!("k{i}"), "v", None))
            .collect()
    };
    let nested = |n: usize| {
        Txn::new().and_then([
            TxnOp::get("r", None),
            TxnOp::txn(Txn::new().and_then(puts(n))),
        ])
    };
    for server in [Server::reference(), Server::ours()] {
        let mut client = connect(&server).await;
        assert_eq!(
            grpc_error(client.txn(nested(DEFAULT_MAX_TXN_OPS - 1)).await),
            (Code::InvalidArgument, TOO_MANY_OPS.to_string()),
            "{:?}",
            server.flavour()
        );
        let fits = client.txn(nested(DEFAULT_MAX_TXN_OPS - 2)).await.unwrap();
        assert!(fits.succeeded());
        assert_eq!(fits.header().unwrap().revision(), 2);
    }
}
