//! Txn semantics shared by the write path and the read-only path: compare
//! evaluation, etcd's duplicate-key rule, and the read-only test.
//!
//! Compares (etcd's `applyCompare`):
//! - a compare reads every key of its span (`key`, `range_end`) at the
//!   revision the txn started from, never the txn's own writes; nested txns'
//!   compares too;
//! - all keys of the span must satisfy it; an empty span compares a zero
//!   `KeyValue` (version, revisions and lease 0), except that a VALUE compare
//!   on missing keys always fails (an empty value cannot be told from none);
//! - the compared-to value comes from `target_union` when it matches the
//!   target, else it is zero/empty; an unknown result kind holds.

use std::cmp::Ordering;
use std::collections::HashSet;

use parking_lot::RwLock;

use retcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::{Compare, RequestOp, TxnRequest};
use retcd_api::mvccpb::KeyValue;

use crate::error::{Error, Result};
use crate::index::{Index, KeySpan};
use crate::key_index::KeyState;
use crate::revision::Revision;

/// Whether a compare needs the rows (value, lease) rather than index entries.
pub(crate) fn needs_rows(c: &Compare) -> bool {
    matches!(
        CompareTarget::try_from(c.target),
        Ok(CompareTarget::Value | CompareTarget::Lease)
    )
}

/// Evaluates a txn's compares in order against `index` as of revision `at`;
/// true when every one holds (the success branch runs). Rows are loaded with
/// `load` only for targets that need them.
pub(crate) fn compares_hold(
    compares: &[Compare],
    index: &RwLock<Index>,
    at: i64,
    mut load: impl FnMut(Revision) -> Result<KeyValue>,
) -> Result<bool> {
    for c in compares {
        let states = index.read().states(compare_span(c), at);
        if !compare_holds(c, &states, &mut load)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Evaluates `c` over the key states of its span (read under the index lock
/// by the caller), loading rows with `load` only when the target needs them.
fn compare_holds(
    c: &Compare,
    states: &[KeyState],
    mut load: impl FnMut(Revision) -> Result<KeyValue>,
) -> Result<bool> {
    let target = CompareTarget::try_from(c.target).ok();
    if states.is_empty() {
        if target == Some(CompareTarget::Value) {
            return Ok(false);
        }
        return Ok(holds(c, target, &KeyValue::default()));
    }
    for s in states {
        let kv = if needs_rows(c) {
            load(s.modified)?
        } else {
            KeyValue {
                create_revision: s.created.main,
                mod_revision: s.modified.main,
                version: s.version,
                ..Default::default()
            }
        };
        if !holds(c, target, &kv) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Compares one key-value pair.
fn holds(c: &Compare, target: Option<CompareTarget>, kv: &KeyValue) -> bool {
    let int = |field: i64, want: Option<i64>| field.cmp(&want.unwrap_or(0));
    let u = c.target_union.as_ref();
    let ord = match target {
        Some(CompareTarget::Value) => {
            let want = match u {
                Some(TargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Some(CompareTarget::Version) => int(
            kv.version,
            match u {
                Some(TargetUnion::Version(v)) => Some(*v),
                _ => None,
            },
        ),
        Some(CompareTarget::Create) => int(
            kv.create_revision,
            match u {
                Some(TargetUnion::CreateRevision(v)) => Some(*v),
                _ => None,
            },
        ),
        Some(CompareTarget::Mod) => int(
            kv.mod_revision,
            match u {
                Some(TargetUnion::ModRevision(v)) => Some(*v),
                _ => None,
            },
        ),
        Some(CompareTarget::Lease) => int(
            kv.lease,
            match u {
                Some(TargetUnion::Lease(v)) => Some(*v),
                _ => None,
            },
        ),
        None => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// The key span a compare reads.
pub(crate) fn compare_span(c: &Compare) -> KeySpan<'_> {
    KeySpan::new(&c.key, &c.range_end)
}

/// Whether a txn holds no put or delete in any branch, nested txns included.
pub fn is_txn_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(t)) => is_txn_read_only(t),
            Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => false,
        })
}

/// A key or key interval a branch deletes, as etcd's duplicate check sees it.
enum Deleted<'a> {
    /// One key (empty `range_end`).
    Key(&'a [u8]),
    /// `[key, range_end)`, compared as plain byte strings: etcd's check reads
    /// `range_end == "\0"` literally, so such a delete conflicts with nothing.
    Interval(&'a [u8], &'a [u8]),
}

/// Whether `key` falls in any of `dels`.
fn deleted(dels: &[Deleted<'_>], key: &[u8]) -> bool {
    dels.iter().any(|d| match *d {
        Deleted::Key(k) => k == key,
        Deleted::Interval(start, end) => start <= key && key < end,
    })
}

/// etcd's rule against writing a key twice in one txn: within one branch
/// (nested txns included) no key is put twice or put and deleted; the
/// success and failure branches of a nested txn may put the same key, since
/// only one of them runs. Deletes may overlap each other.
pub fn check_txn_duplicates(req: &TxnRequest) -> Result<()> {
    branch_writes(&req.success)?;
    branch_writes(&req.failure)?;
    Ok(())
}

/// The keys a branch puts and the spans it deletes, or DuplicateKey.
fn branch_writes(ops: &[RequestOp]) -> Result<(HashSet<&[u8]>, Vec<Deleted<'_>>)> {
    let mut dels: Vec<Deleted<'_>> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) if d.range_end.is_empty() => {
                Some(Deleted::Key(&d.key))
            }
            Some(Request::RequestDeleteRange(d)) => Some(Deleted::Interval(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<&[u8]> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = branch_writes(&t.success)?;
        let (puts_else, dels_else) = branch_writes(&t.failure)?;
        for &k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        for &k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(p.key.as_slice()) || deleted(&dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(&p.key);
    }
    Ok((puts, dels))
}
