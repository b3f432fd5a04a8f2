//! Answering a `RangeRequest` from the index and the rows.
//!
//! A range runs in two steps so the index lock is never held across backend
//! reads:
//! 1. [`plan`], under the index read lock: walk the keys of the span alive at
//!    the read revision, count all of them, and keep the [`KeyState`]s that
//!    may be returned;
//! 2. [`finish`], without the lock: filter, sort, cut to `limit`, and only
//!    then load the rows that will be returned.
//!
//! etcd's rules, kept exactly:
//! - `count` is the number of keys in the span at the revision, whatever
//!   `limit`, filters or `count_only` say;
//! - when the request sorts (`sort_order != NONE`) or filters by min/max
//!   mod/create revision, every key is fetched, filtered, sorted, then cut to
//!   `limit`; otherwise only the first `limit + 1` keys (in key order) are
//!   fetched and sorted, which is what etcd does for a non-KEY `sort_target`
//!   with order NONE (sorted ASCEND, but among the first keys only);
//! - `more` is true when more than `limit` keys survived to the cut;
//! - sorting is stable, ties stay in key order;
//! - `count_only` returns no key-value pairs, `keys_only` clears values.
//!
//! Unlike etcd, filtering and sorting by anything but VALUE happen on index
//! entries, so rows that are filtered out or cut off are never read.

use std::cmp::Ordering;

use retcd_api::etcdserverpb::RangeRequest;
use retcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use retcd_api::mvccpb::KeyValue;

use crate::error::Result;
use crate::index::{Index, KeySpan};
use crate::key_index::KeyState;
use crate::revision::Revision;

/// What step 1 found: the candidates to return and the span's key count.
pub(crate) struct Plan {
    /// Keys that may be returned, in key order.
    pub states: Vec<KeyState>,
    /// Keys alive in the span at the read revision.
    pub count: i64,
}

/// Whether the request fetches everything before cutting to `limit`.
fn fetch_all(req: &RangeRequest) -> bool {
    req.sort_order() != SortOrder::None
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

/// Whether a key passes the request's min/max revision filters.
fn passes_filters(req: &RangeRequest, s: &KeyState) -> bool {
    let (m, c) = (s.modified.main, s.created.main);
    !(req.max_mod_revision != 0 && m > req.max_mod_revision
        || req.min_mod_revision != 0 && m < req.min_mod_revision
        || req.max_create_revision != 0 && c > req.max_create_revision
        || req.min_create_revision != 0 && c < req.min_create_revision)
}

/// Step 1: counts the span at `at` and collects the candidates.
pub(crate) fn plan(index: &Index, req: &RangeRequest, at: i64) -> Plan {
    let span = KeySpan::new(&req.key, &req.range_end);
    let cap = if req.count_only {
        0
    } else if fetch_all(req) || req.limit <= 0 {
        usize::MAX
    } else {
        (req.limit as usize).saturating_add(1)
    };
    let mut states = Vec::new();
    let mut count = 0i64;
    index.visit(span, at, |_, s| {
        count += 1;
        if states.len() < cap && passes_filters(req, &s) {
            states.push(s);
        }
        true
    });
    Plan { states, count }
}

/// The order etcd actually sorts in for a request.
fn effective_order(req: &RangeRequest) -> SortOrder {
    match (req.sort_target(), req.sort_order()) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (SortTarget::Key, order) => order,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, order) => order,
    }
}

/// Stable-sorts `items` by `cmp`, descending when asked.
fn sort_by<T>(items: &mut [T], order: SortOrder, cmp: impl Fn(&T, &T) -> Ordering) {
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => items.sort_by(|a, b| cmp(a, b)),
        SortOrder::Descend => items.sort_by(|a, b| cmp(b, a)),
    }
}

/// Step 2: sorts and cuts the candidates, loads their rows with `load`, and
/// returns the key-value pairs and `more`.
pub(crate) fn finish(
    req: &RangeRequest,
    mut states: Vec<KeyState>,
    mut load: impl FnMut(Revision) -> Result<KeyValue>,
) -> Result<(Vec<KeyValue>, bool)> {
    let order = effective_order(req);
    let limit = if req.limit > 0 {
        req.limit as usize
    } else {
        usize::MAX
    };
    let mut more = false;
    let mut kvs = if order != SortOrder::None && req.sort_target() == SortTarget::Value {
        let mut kvs = states
            .iter()
            .map(|s| load(s.modified))
            .collect::<Result<Vec<_>>>()?;
        sort_by(&mut kvs, order, |a, b| a.value.cmp(&b.value));
        if kvs.len() > limit {
            kvs.truncate(limit);
            more = true;
        }
        kvs
    } else {
        match req.sort_target() {
            // Candidates come in ascending key order and keys are unique.
            SortTarget::Key if order == SortOrder::Descend => states.reverse(),
            SortTarget::Key | SortTarget::Value => {}
            SortTarget::Version => sort_by(&mut states, order, |a, b| a.version.cmp(&b.version)),
            SortTarget::Create => sort_by(&mut states, order, |a, b| {
                a.created.main.cmp(&b.created.main)
            }),
            SortTarget::Mod => sort_by(&mut states, order, |a, b| {
                a.modified.main.cmp(&b.modified.main)
            }),
        }
        if states.len() > limit {
            states.truncate(limit);
            more = true;
        }
        states
            .iter()
            .map(|s| load(s.modified))
            .collect::<Result<Vec<_>>>()?
    };
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok((kvs, more))
}
