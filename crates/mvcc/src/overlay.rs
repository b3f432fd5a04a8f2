//! What the store committed but redb does not hold yet.
//!
//! Committing a redb transaction costs far more than the rows in it (a
//! copy-on-write of every touched B-tree path, the allocator state, the
//! header), so the backend does not commit redb per write batch. A batch's
//! rows, counters and server metadata are appended here instead, visible to
//! readers at once, and [`Backend`](crate::backend::Backend) writes the whole
//! overlay to redb in one transaction now and then (when the apply loop asks
//! for durability, about every 100 ms while writes flow, or when the overlay
//! outgrows its bounds). etcd's backend does the same with its batch
//! interval and read buffer.
//!
//! Invariants:
//! - An `Overlay` value is immutable; appending builds a new one that shares
//!   the old one's chunks, so a reader holding one sees a fixed state.
//! - Every row here has a higher key than every row in the redb state it is
//!   paired with (rows are written in revision order and only compaction,
//!   which empties the overlay first, removes rows), so a scan reads redb's
//!   rows, then the overlay's.
//! - Server metadata operations are kept in order; the last one on a key wins.
//!
//! Nothing here survives a crash; raft replays the entries whose effects were
//! only here, since the consistent index redb holds is as old as its rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::backend::Meta;
use crate::revision::RevKey;

/// One revision-ordered run of rows, appended by one commit.
pub(crate) type Rows = Vec<(RevKey, Vec<u8>)>;
/// Server metadata operations (`None`: delete), in order.
pub(crate) type MetaOps = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Committed state not yet written to redb.
#[derive(Clone, Default)]
pub(crate) struct Overlay {
    /// Non-empty row runs, in key order across runs.
    chunks: Vec<Arc<Rows>>,
    /// Non-empty server metadata operation lists, in commit order.
    meta_ops: Vec<Arc<MetaOps>>,
    /// The newest `(consistent_index, consistent_term)`, if any commit set one.
    consistent: Option<(u64, u64)>,
    /// The newest scheduled compaction, if any commit scheduled one.
    scheduled_compact: Option<i64>,
    /// Rows held.
    rows: usize,
    /// Bytes of row values held.
    bytes: usize,
}

impl Overlay {
    /// Whether there is nothing to write to redb.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
            && self.meta_ops.is_empty()
            && self.consistent.is_none()
            && self.scheduled_compact.is_none()
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of row values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// This overlay with one commit's changes appended. `rows` must sort
    /// after every row already held.
    pub fn with(
        &self,
        rows: Rows,
        consistent: Option<(u64, u64)>,
        scheduled_compact: Option<i64>,
        meta_ops: MetaOps,
    ) -> Overlay {
        let mut next = self.clone();
        if let Some(first) = rows.first() {
            debug_assert!(
                self.last_key().is_none_or(|last| last < &first.0),
                "overlay rows out of order"
            );
            next.rows += rows.len();
            next.bytes += rows.iter().map(|(_, v)| v.len()).sum::<usize>();
            next.chunks.push(Arc::new(rows));
        }
        if !meta_ops.is_empty() {
            next.meta_ops.push(Arc::new(meta_ops));
        }
        next.consistent = consistent.or(self.consistent);
        next.scheduled_compact = scheduled_compact.or(self.scheduled_compact);
        next
    }

    /// This overlay without `flushed`, an earlier state of it (every chunk
    /// and operation `flushed` holds comes first here, unchanged).
    pub fn without(&self, flushed: &Overlay) -> Overlay {
        let (chunks, ops) = (flushed.chunks.len(), flushed.meta_ops.len());
        debug_assert!(
            self.chunks[..chunks]
                .iter()
                .zip(&flushed.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b)),
            "a flushed overlay is a prefix of the current one"
        );
        Overlay {
            chunks: self.chunks[chunks..].to_vec(),
            meta_ops: self.meta_ops[ops..].to_vec(),
            consistent: newer(self.consistent, flushed.consistent),
            scheduled_compact: newer(self.scheduled_compact, flushed.scheduled_compact),
            rows: self.rows - flushed.rows,
            bytes: self.bytes - flushed.bytes,
        }
    }

    /// The newest row key held.
    fn last_key(&self) -> Option<&RevKey> {
        self.chunks.last().and_then(|c| c.last()).map(|(k, _)| k)
    }

    /// The row at `key`, if held here.
    pub fn get(&self, key: &RevKey) -> Option<&[u8]> {
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(last, _)| last < key));
        let chunk = self.chunks.get(i)?;
        let at = chunk.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(chunk[at].1.as_slice())
    }

    /// Every row with `start <= key < end`, in key order.
    pub fn range<'a>(
        &'a self,
        start: &'a RevKey,
        end: &'a RevKey,
    ) -> impl Iterator<Item = (&'a RevKey, &'a [u8])> + 'a {
        let first = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(last, _)| last < start));
        self.chunks[first..]
            .iter()
            .flat_map(|c| c.iter())
            .skip_while(move |(k, _)| k < start)
            .take_while(move |(k, _)| k < end)
            .map(|(k, v)| (k, v.as_slice()))
    }

    /// Every row held, in key order.
    pub fn all_rows(&self) -> impl Iterator<Item = &(RevKey, Vec<u8>)> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Every server metadata operation held, in commit order.
    pub fn meta_ops(&self) -> impl Iterator<Item = &(Vec<u8>, Option<Vec<u8>>)> {
        self.meta_ops.iter().flat_map(|ops| ops.iter())
    }

    /// The counters with this overlay's newer values laid over `meta`.
    pub fn meta_over(&self, mut meta: Meta) -> Meta {
        if let Some((index, term)) = self.consistent {
            meta.consistent_index = index;
            meta.consistent_term = term;
        }
        if let Some(rev) = self.scheduled_compact {
            meta.scheduled_compact = rev;
        }
        meta
    }

    /// The newest consistent index and term held, if any.
    pub fn consistent(&self) -> Option<(u64, u64)> {
        self.consistent
    }

    /// The newest scheduled compaction held, if any.
    pub fn scheduled_compact(&self) -> Option<i64> {
        self.scheduled_compact
    }

    /// The last operation on server metadata `key`: `Some(None)` if it was
    /// deleted, `None` if the overlay never touched it.
    pub fn meta_get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.meta_ops
            .iter()
            .rev()
            .flat_map(|ops| ops.iter().rev())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref())
    }

    /// Applies the held operations on keys starting with `prefix` to `pairs`.
    pub fn meta_apply_prefix(&self, prefix: &[u8], pairs: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
        for (key, value) in self.meta_ops().filter(|(k, _)| k.starts_with(prefix)) {
            match value {
                Some(v) => pairs.insert(key.clone(), v.clone()),
                None => pairs.remove(key),
            };
        }
    }
}

/// `now` unless it equals `then`: the counters only grow, so a value
/// unchanged since a flush was flushed.
fn newer<T: PartialEq>(now: Option<T>, then: Option<T>) -> Option<T> {
    if now == then { None } else { now }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision::{Revision, encode_key};

    fn key(main: i64) -> RevKey {
        encode_key(Revision::new(main, 0), false)
    }

    fn rows(mains: &[i64]) -> Rows {
        mains.iter().map(|&m| (key(m), vec![m as u8])).collect()
    }

    #[test]
    fn rows_are_found_across_chunks_and_ranges_cut_at_both_ends() {
        let o = Overlay::default()
            .with(rows(&[2, 3]), Some((5, 1)), None, vec![])
            .with(vec![], Some((6, 1)), Some(2), vec![])
            .with(rows(&[4, 7, 9]), None, None, vec![]);
        assert_eq!(o.rows(), 5);
        assert_eq!(o.bytes(), 5);
        for m in [2, 3, 4, 7, 9] {
            assert_eq!(o.get(&key(m)), Some(&[m as u8][..]), "{m}");
        }
        for m in [1, 5, 8, 10] {
            assert_eq!(o.get(&key(m)), None, "{m}");
        }
        let got: Vec<u8> = o.range(&key(3), &key(9)).map(|(_, v)| v[0]).collect();
        assert_eq!(got, vec![3, 4, 7]);
        assert_eq!(o.range(&key(10), &key(20)).count(), 0);
        assert_eq!(o.all_rows().count(), 5);
        let meta = o.meta_over(Meta::default());
        assert_eq!((meta.consistent_index, meta.scheduled_compact), (6, 2));
    }

    #[test]
    fn an_appended_overlay_leaves_the_old_one_unchanged() {
        let old = Overlay::default().with(rows(&[2]), None, None, vec![]);
        let new = old.with(rows(&[3]), Some((1, 1)), None, vec![]);
        assert_eq!(old.get(&key(3)), None);
        assert_eq!(old.consistent(), None);
        assert_eq!(new.get(&key(3)), Some(&[3u8][..]));
        assert!(Overlay::default().is_empty());
        assert!(
            !Overlay::default()
                .with(vec![], None, Some(4), vec![])
                .is_empty()
        );
    }

    #[test]
    fn removing_a_flushed_prefix_keeps_what_came_after() {
        let flushed = Overlay::default().with(
            rows(&[2]),
            Some((5, 1)),
            Some(1),
            vec![(b"a".to_vec(), None)],
        );
        let both = flushed.with(rows(&[3, 4]), None, None, vec![]);
        let rest = both.without(&flushed);
        assert_eq!(rest.rows(), 2);
        assert_eq!(rest.get(&key(2)), None);
        assert_eq!(rest.get(&key(4)), Some(&[4u8][..]));
        assert_eq!(rest.consistent(), None, "unchanged since the flush");
        assert_eq!(rest.scheduled_compact(), None);
        assert_eq!(rest.meta_get(b"a"), None);
        let newer = both.with(vec![], Some((6, 1)), None, vec![]);
        assert_eq!(newer.without(&flushed).consistent(), Some((6, 1)));
        assert!(flushed.without(&flushed).is_empty());
    }

    #[test]
    fn the_last_metadata_operation_wins() {
        let o = Overlay::default()
            .with(
                vec![],
                None,
                None,
                vec![
                    (b"m/a".to_vec(), Some(b"1".to_vec())),
                    (b"m/b".to_vec(), Some(b"2".to_vec())),
                ],
            )
            .with(
                vec![],
                None,
                None,
                vec![
                    (b"m/a".to_vec(), None),
                    (b"x".to_vec(), Some(b"3".to_vec())),
                ],
            );
        assert_eq!(o.meta_get(b"m/a"), Some(None));
        assert_eq!(o.meta_get(b"m/b"), Some(Some(&b"2"[..])));
        assert_eq!(o.meta_get(b"m/c"), None);
        let mut pairs = BTreeMap::from([
            (b"m/a".to_vec(), b"old".to_vec()),
            (b"m/z".to_vec(), b"kept".to_vec()),
        ]);
        o.meta_apply_prefix(b"m/", &mut pairs);
        assert_eq!(
            pairs,
            BTreeMap::from([
                (b"m/b".to_vec(), b"2".to_vec()),
                (b"m/z".to_vec(), b"kept".to_vec()),
            ])
        );
    }
}
