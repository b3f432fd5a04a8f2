//! etcd's per-operation MVCC counters: ranges, puts, deletes and
//! multi-operation transactions, counted the way etcd's store counts them.
//!
//! etcd counts inside its store: every read or write transaction tallies the
//! ranges, puts and deletes run in it, and when it ends adds them to
//! `etcd_mvcc_{range,put,delete}_total` (and their `etcd_debugging_mvcc_*`
//! twins) and counts one `etcd_mvcc_txn_total` if it ran more than one
//! operation. The store crate does not count, so the server derives the same
//! tallies from each request and its outcome, where it executes them:
//! - a Range is one range;
//! - a Put is one put, plus one range when it needs the previous value
//!   (`prev_kv`, `ignore_value`, `ignore_lease`);
//! - a DeleteRange is one delete whatever it removes, plus one range for `prev_kv`;
//! - a Txn is two store transactions, as in etcd 3.4: its compares (one range
//!   each, nested txns on the taken branch included) in a read transaction,
//!   then the taken branch's operations in a write transaction; a read-only
//!   Txn runs both parts in one read transaction;
//! - a lease revoke deletes each attached key in one write transaction.
//!
//! Caveat: etcd stops evaluating compares at the first false one; a failed
//! Txn here counts all of its compares.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntGauge, register_int_counter, register_int_gauge};
use retcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, TxnRequest, TxnResponse, request_op, response_op,
};

/// One store transaction's operations, as etcd tallies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Range calls (reads, compares, previous-value lookups).
    pub ranges: u64,
    /// Put calls.
    pub puts: u64,
    /// DeleteRange calls.
    pub deletes: u64,
    /// Key plus value bytes of the puts.
    pub put_bytes: u64,
}

impl Tally {
    /// A transaction of one range.
    pub const RANGE: Tally = Tally {
        ranges: 1,
        puts: 0,
        deletes: 0,
        put_bytes: 0,
    };

    /// The tally of a Put request.
    pub fn put(req: &PutRequest) -> Tally {
        let mut tally = Tally::default();
        tally.add_put(req);
        tally
    }

    /// The tally of a DeleteRange request.
    pub fn delete_range(req: &DeleteRangeRequest) -> Tally {
        let mut tally = Tally::default();
        tally.add_delete(req);
        tally
    }

    /// A write transaction deleting `keys` keys one by one (a lease revoke).
    pub fn deletes(keys: usize) -> Tally {
        Tally {
            deletes: keys as u64,
            ..Tally::default()
        }
    }

    /// The store transactions of a Txn that answered `resp`: the compare
    /// part and the operation part, or one part for a read-only Txn.
    pub fn txn(req: &TxnRequest, resp: &TxnResponse, read_only: bool) -> [Tally; 2] {
        let mut compares = Tally::default();
        let mut ops = Tally::default();
        tally_txn(req, resp, &mut compares, &mut ops);
        if read_only {
            compares.ranges += ops.ranges;
            return [compares, Tally::default()];
        }
        [compares, ops]
    }

    /// Counts one Put.
    fn add_put(&mut self, req: &PutRequest) {
        self.puts += 1;
        self.put_bytes += (req.key.len() + req.value.len()) as u64;
        if req.prev_kv || req.ignore_value || req.ignore_lease {
            self.ranges += 1;
        }
    }

    /// Counts one DeleteRange.
    fn add_delete(&mut self, req: &DeleteRangeRequest) {
        self.deletes += 1;
        if req.prev_kv {
            self.ranges += 1;
        }
    }

    /// Every operation of the tally.
    fn operations(&self) -> u64 {
        self.ranges + self.puts + self.deletes
    }

    /// Adds the tally to the counters, as etcd does when a store transaction ends.
    pub fn record(&self) {
        let m = &*COUNTERS;
        if self.operations() > 1 {
            m.txns.inc();
            m.txns_debugging.inc();
        }
        if self.ranges > 0 {
            m.ranges.inc_by(self.ranges);
            m.ranges_debugging.inc_by(self.ranges);
        }
        if self.puts > 0 {
            m.puts.inc_by(self.puts);
            m.puts_debugging.inc_by(self.puts);
            m.put_bytes
                .add(i64::try_from(self.put_bytes).unwrap_or(i64::MAX));
        }
        if self.deletes > 0 {
            m.deletes.inc_by(self.deletes);
            m.deletes_debugging.inc_by(self.deletes);
        }
    }
}

/// Adds a Txn's compares to `compares` and its taken branch's operations to
/// `ops`, nested txns included (their compares run in the compare part).
fn tally_txn(req: &TxnRequest, resp: &TxnResponse, compares: &mut Tally, ops: &mut Tally) {
    compares.ranges += req.compare.len() as u64;
    let branch = if resp.succeeded {
        &req.success
    } else {
        &req.failure
    };
    for (op, answer) in branch.iter().zip(&resp.responses) {
        match &op.request {
            Some(request_op::Request::RequestRange(_)) => ops.ranges += 1,
            Some(request_op::Request::RequestPut(put)) => ops.add_put(put),
            Some(request_op::Request::RequestDeleteRange(delete)) => ops.add_delete(delete),
            Some(request_op::Request::RequestTxn(nested)) => {
                if let Some(response_op::Response::ResponseTxn(nested_resp)) = &answer.response {
                    tally_txn(nested, nested_resp, compares, ops);
                }
            }
            None => {}
        }
    }
}

/// The counters, registered together.
struct Counters {
    /// `etcd_mvcc_range_total`.
    ranges: IntCounter,
    /// `etcd_debugging_mvcc_range_total`.
    ranges_debugging: IntCounter,
    /// `etcd_mvcc_put_total`.
    puts: IntCounter,
    /// `etcd_debugging_mvcc_put_total`.
    puts_debugging: IntCounter,
    /// `etcd_mvcc_delete_total`.
    deletes: IntCounter,
    /// `etcd_debugging_mvcc_delete_total`.
    deletes_debugging: IntCounter,
    /// `etcd_mvcc_txn_total`.
    txns: IntCounter,
    /// `etcd_debugging_mvcc_txn_total`.
    txns_debugging: IntCounter,
    /// `etcd_debugging_mvcc_total_put_size_in_bytes`.
    put_bytes: IntGauge,
}

/// Registers a counter under `name` (and panics on a duplicate, a bug).
fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(name, help).unwrap_or_else(|e| panic!("registering {name}: {e}"))
}

/// The process-wide MVCC counters.
static COUNTERS: LazyLock<Counters> = LazyLock::new(|| Counters {
    ranges: counter(
        "etcd_mvcc_range_total",
        "Total number of ranges seen by this member.",
    ),
    ranges_debugging: counter(
        "etcd_debugging_mvcc_range_total",
        "Total number of ranges seen by this member.",
    ),
    puts: counter(
        "etcd_mvcc_put_total",
        "Total number of puts seen by this member.",
    ),
    puts_debugging: counter(
        "etcd_debugging_mvcc_put_total",
        "Total number of puts seen by this member.",
    ),
    deletes: counter(
        "etcd_mvcc_delete_total",
        "Total number of deletes seen by this member.",
    ),
    deletes_debugging: counter(
        "etcd_debugging_mvcc_delete_total",
        "Total number of deletes seen by this member.",
    ),
    txns: counter(
        "etcd_mvcc_txn_total",
        "Total number of txns seen by this member.",
    ),
    txns_debugging: counter(
        "etcd_debugging_mvcc_txn_total",
        "Total number of txns seen by this member.",
    ),
    put_bytes: register_int_gauge!(
        "etcd_debugging_mvcc_total_put_size_in_bytes",
        "The total size of put kv pairs seen by this member."
    )
    .expect("registering etcd_debugging_mvcc_total_put_size_in_bytes"),
});

/// Registers the counters so a scrape lists them from the start.
pub fn register() {
    LazyLock::force(&COUNTERS);
}

#[cfg(test)]
mod tests {
    use retcd_api::etcdserverpb::{
        Compare, RangeRequest, RequestOp, ResponseOp, TxnResponse, request_op::Request,
        response_op::Response,
    };

    use super::*;

    fn put(key: &str, value: &str, prev_kv: bool) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                prev_kv,
                ..Default::default()
            })),
        }
    }

    fn range() -> RequestOp {
        RequestOp {
            request: Some(Request::RequestRange(RangeRequest::default())),
        }
    }

    fn delete() -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest::default())),
        }
    }

    /// A response with one (empty) answer per operation of the taken branch.
    fn answered(succeeded: bool, n: usize) -> TxnResponse {
        TxnResponse {
            succeeded,
            responses: vec![ResponseOp::default(); n],
            ..Default::default()
        }
    }

    fn tally(ranges: u64, puts: u64, deletes: u64, put_bytes: u64) -> Tally {
        Tally {
            ranges,
            puts,
            deletes,
            put_bytes,
        }
    }

    #[test]
    fn single_requests() {
        let plain = PutRequest {
            key: b"k1".to_vec(),
            value: b"v1".to_vec(),
            ..Default::default()
        };
        assert_eq!(Tally::put(&plain), tally(0, 1, 0, 4));
        let prev = PutRequest {
            prev_kv: true,
            ..plain.clone()
        };
        assert_eq!(Tally::put(&prev), tally(1, 1, 0, 4));
        let ignore = PutRequest {
            ignore_lease: true,
            ..plain
        };
        assert_eq!(Tally::put(&ignore), tally(1, 1, 0, 4));
        assert_eq!(
            Tally::delete_range(&DeleteRangeRequest::default()),
            tally(0, 0, 1, 0)
        );
        let delete_prev = DeleteRangeRequest {
            prev_kv: true,
            ..Default::default()
        };
        assert_eq!(Tally::delete_range(&delete_prev), tally(1, 0, 1, 0));
    }

    #[test]
    fn a_write_txn_counts_compares_and_the_taken_branch_apart() {
        let req = TxnRequest {
            compare: vec![Compare::default(), Compare::default()],
            success: vec![put("a", "1", false), put("bb", "22", true), delete()],
            failure: vec![range()],
        };
        let [compares, ops] = Tally::txn(&req, &answered(true, 3), false);
        assert_eq!(compares, tally(2, 0, 0, 0));
        assert_eq!(ops, tally(1, 2, 1, 6));
        let [compares, ops] = Tally::txn(&req, &answered(false, 1), false);
        assert_eq!(compares, tally(2, 0, 0, 0));
        assert_eq!(ops, tally(1, 0, 0, 0));
    }

    #[test]
    fn a_read_only_txn_is_one_transaction() {
        let req = TxnRequest {
            compare: vec![Compare::default()],
            success: vec![range(), range()],
            failure: vec![],
        };
        let [one, none] = Tally::txn(&req, &answered(true, 2), true);
        assert_eq!(one, tally(3, 0, 0, 0));
        assert_eq!(none, Tally::default());
    }

    #[test]
    fn nested_txns_follow_their_own_outcome() {
        let nested = TxnRequest {
            compare: vec![Compare::default()],
            success: vec![put("x", "y", false)],
            failure: vec![delete(), delete()],
        };
        let req = TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestTxn(nested)),
            }],
            failure: vec![],
        };
        let resp = TxnResponse {
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(Response::ResponseTxn(answered(false, 2))),
            }],
            ..Default::default()
        };
        let [compares, ops] = Tally::txn(&req, &resp, false);
        assert_eq!(compares, tally(1, 0, 0, 0));
        assert_eq!(ops, tally(0, 0, 2, 0));
    }
}
