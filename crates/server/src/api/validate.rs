//! Request checks done before anything is proposed, as etcd's gRPC layer does
//! them: a request that fails here never reaches raft and changes nothing.

use retcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request,
    request_op::Request,
};

use crate::error::{Error, Result};

/// Checks a range: a key, and sort options inside their enums.
pub fn range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if range_request::SortOrder::try_from(req.sort_order).is_err()
        || range_request::SortTarget::try_from(req.sort_target).is_err()
    {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

/// Checks a put: a key, and no value or lease alongside the matching ignore flag.
pub fn put(req: &PutRequest) -> Result<()> {
    Ok(retcd_mvcc::check_put_request(req)?)
}

/// Checks a delete: a key.
pub fn delete_range(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Checks a txn: branch sizes within `max_ops`, every op valid (nested txns
/// too), then no key written twice in a branch.
pub fn txn(req: &TxnRequest, max_ops: usize) -> Result<()> {
    txn_shape(req, max_ops)?;
    retcd_mvcc::check_txn_duplicates(req)?;
    Ok(())
}

/// The size and per-op checks of a txn, recursively. As in etcd, a nested
/// txn may only use what its parent's largest part (compares, success or
/// failure) left of `max_ops`.
fn txn_shape(req: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if ops > max_ops {
        return Err(Error::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    req.success
        .iter()
        .chain(&req.failure)
        .try_for_each(|op| request_op(op, max_ops - ops))
}

/// Checks one op of a txn branch.
fn request_op(op: &RequestOp, max_ops: usize) -> Result<()> {
    match &op.request {
        Some(Request::RequestRange(r)) => range(r),
        Some(Request::RequestPut(r)) => put(r),
        Some(Request::RequestDeleteRange(r)) => delete_range(r),
        Some(Request::RequestTxn(r)) => txn_shape(r, max_ops),
        // An op naming no request: etcd refuses it as a missing key.
        None => Err(Error::Mvcc(retcd_mvcc::Error::KeyNotFound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::etcdserverpb::{Compare, request_op};

    fn put_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    /// A txn whose success branch is a range and a txn of `puts` puts, as
    /// etcd counts it: the parent's two ops leave `max_ops - 2`.
    fn nested(puts: usize) -> TxnRequest {
        let range = RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: b"r".to_vec(),
                ..Default::default()
            })),
        };
        let inner = TxnRequest {
            success: (0..puts).map(|i| put_op(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        TxnRequest {
            success: vec![
                range,
                RequestOp {
                    request: Some(request_op::Request::RequestTxn(inner)),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        let too_many = TxnRequest {
            success: (0..4).map(|i| put_op(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        let nested_empty_key = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    failure: vec![put_op("")],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let cases: Vec<(&str, Result<()>, Option<&str>)> = vec![
            (
                "empty range key",
                range(&RangeRequest::default()),
                Some("etcdserver: key is not provided"),
            ),
            (
                "bad sort order",
                range(&RangeRequest {
                    key: b"a".to_vec(),
                    sort_order: 7,
                    ..Default::default()
                }),
                Some("etcdserver: invalid sort option"),
            ),
            (
                "empty put key",
                put(&PutRequest::default()),
                Some("etcdserver: key is not provided"),
            ),
            (
                "ignore_value with value",
                put(&PutRequest {
                    key: b"a".to_vec(),
                    value: b"v".to_vec(),
                    ignore_value: true,
                    ..Default::default()
                }),
                Some("etcdserver: value is provided"),
            ),
            (
                "ignore_lease with lease",
                put(&PutRequest {
                    key: b"a".to_vec(),
                    lease: 5,
                    ignore_lease: true,
                    ..Default::default()
                }),
                Some("etcdserver: lease is provided"),
            ),
            (
                "empty delete key",
                delete_range(&DeleteRangeRequest::default()),
                Some("etcdserver: key is not provided"),
            ),
            (
                "txn op without a request",
                request_op(&RequestOp::default(), 128),
                Some("etcdserver: key not found"),
            ),
            (
                "txn over max ops",
                txn(&too_many, 3),
                Some("etcdserver: too many operations in txn request"),
            ),
            ("txn at max ops", txn(&too_many, 4), None),
            (
                "nested empty key",
                txn(&nested_empty_key, 4),
                Some("etcdserver: key is not provided"),
            ),
            (
                "nested txn over what its parent left",
                txn(&nested(127), 128),
                Some("etcdserver: too many operations in txn request"),
            ),
            (
                "nested txn within what its parent left",
                txn(&nested(126), 128),
                None,
            ),
            (
                "compare with an empty key",
                txn(
                    &TxnRequest {
                        compare: vec![Compare::default()],
                        ..Default::default()
                    },
                    4,
                ),
                Some("etcdserver: key is not provided"),
            ),
            (
                "too many compares before an empty compare key",
                txn(
                    &TxnRequest {
                        compare: vec![Compare::default(); 5],
                        ..Default::default()
                    },
                    4,
                ),
                Some("etcdserver: too many operations in txn request"),
            ),
            (
                "duplicate put",
                txn(
                    &TxnRequest {
                        success: vec![put_op("a"), put_op("a")],
                        ..Default::default()
                    },
                    8,
                ),
                Some("etcdserver: duplicate key given in txn request"),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got.err().map(|e| e.message()).as_deref(), want, "{name}");
        }
    }
}
