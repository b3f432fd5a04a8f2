//! The in-memory key index: every key's revision history, ordered by key.
//!
//! The backend is keyed by revision, so it cannot answer "which keys lie in
//! [a, b) at revision r" by itself; this index can. A range walks the keys in
//! order, asks each [`KeyIndex`] what a read at `r` sees, and only then reads
//! the backend for the rows it will return. Counts, `more`, sorting by
//! key/version/create/mod and the min/max revision filters are all answered
//! here without touching the backend.
//!
//! The index is rebuilt from the backend at open ([`Index::restore_row`] per
//! row, in revision order) and is never persisted.
//!
//! Invariants:
//! - no key maps to an empty [`KeyIndex`];
//! - revisions above the store's published revision belong to the write batch
//!   in progress; reads at the published revision never see them, and a batch
//!   that does not commit removes them again (`undo_*`).

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::key_index::{KeyIndex, KeyState};
use crate::revision::Revision;

/// The keys a request addresses, decoded from etcd's `key`/`range_end` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySpan<'a> {
    /// Just `key` (empty `range_end`).
    Single(&'a [u8]),
    /// Every key `>= key` (`range_end` is `"\0"`).
    From(&'a [u8]),
    /// Keys in `[key, range_end)`; empty when `range_end <= key`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> KeySpan<'a> {
    /// Decodes a request's key and range end.
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeySpan::Single(key),
            [0] => KeySpan::From(key),
            end => KeySpan::Between(key, end),
        }
    }

    /// The span as BTreeMap bounds, or None if it holds no key.
    fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeySpan::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeySpan::From(key) => Some((Bound::Included(key), Bound::Unbounded)),
            KeySpan::Between(key, end) if key < end => {
                Some((Bound::Included(key), Bound::Excluded(end)))
            }
            KeySpan::Between(..) => None,
        }
    }
}

/// Lower and upper bound of a key span, as `BTreeMap::range` takes them.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Every key's revision history.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Key to history; never holds an empty history.
    keys: BTreeMap<Vec<u8>, KeyIndex>,
    /// How many keys exist as of their newest revision, kept as every change
    /// passes, so counting costs nothing (etcd's `keys_total`).
    alive: usize,
}

impl Index {
    /// Number of keys with any history left.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of keys that exist as of their newest revision (those of a
    /// write batch in progress included).
    pub fn alive(&self) -> usize {
        self.alive
    }

    /// Adjusts the live count after `key`'s history changed from
    /// `was_alive`.
    fn note_change(&mut self, key: &[u8], was_alive: bool) {
        let alive = self.keys.get(key).is_some_and(KeyIndex::is_alive);
        match (was_alive, alive) {
            (false, true) => self.alive += 1,
            (true, false) => self.alive -= 1,
            _ => {}
        }
    }

    /// Whether `key` exists as of its newest revision.
    fn is_alive(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(KeyIndex::is_alive)
    }

    /// What a read at `at` sees of `key`.
    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyState> {
        self.keys.get(key)?.get(at)
    }

    /// Calls `f` with every key in `span` that exists at `at`, in key order,
    /// until `f` returns false.
    pub fn visit(&self, span: KeySpan<'_>, at: i64, mut f: impl FnMut(&[u8], KeyState) -> bool) {
        let Some(bounds) = span.bounds() else { return };
        for (key, ki) in self.keys.range::<[u8], _>(bounds) {
            if let Some(state) = ki.get(at)
                && !f(key, state)
            {
                return;
            }
        }
    }

    /// The states at `at` of every key in `span` alive then, in key order.
    pub fn states(&self, span: KeySpan<'_>, at: i64) -> Vec<KeyState> {
        let mut out = Vec::new();
        self.visit(span, at, |_, s| {
            out.push(s);
            true
        });
        out
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        let was_alive = self.is_alive(key);
        match self.keys.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                self.keys.insert(key.to_vec(), KeyIndex::new(rev));
            }
        }
        self.note_change(key, was_alive);
    }

    /// Records the deletion of `key` at `rev`; false if it was not alive.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        let ended = self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev));
        if ended {
            self.alive -= 1;
        }
        ended
    }

    /// Reverts the latest put of `key`.
    pub fn undo_put(&mut self, key: &[u8]) {
        let was_alive = self.is_alive(key);
        let ki = self
            .keys
            .get_mut(key)
            .expect("undo of a put of an unknown key");
        if ki.undo_put() {
            self.keys.remove(key);
        }
        self.note_change(key, was_alive);
    }

    /// Reverts the latest deletion of `key`.
    pub fn undo_tombstone(&mut self, key: &[u8]) {
        let was_alive = self.is_alive(key);
        self.keys
            .get_mut(key)
            .expect("undo of a deletion of an unknown key")
            .undo_tombstone();
        self.note_change(key, was_alive);
    }

    /// Replays one backend row while rebuilding the index at open. Rows must
    /// come in revision order; `created` and `version` are the row's own.
    pub fn restore_row(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        created: i64,
        version: i64,
    ) {
        let was_alive = self.is_alive(key);
        self.restore(key, rev, tombstone, created, version);
        self.note_change(key, was_alive);
    }

    /// [`restore_row`](Self::restore_row) without the live count.
    fn restore(&mut self, key: &[u8], rev: Revision, tombstone: bool, created: i64, version: i64) {
        match self.keys.get_mut(key) {
            Some(ki) if tombstone => {
                ki.tombstone(rev);
            }
            Some(ki) => ki.put(rev),
            // A tombstone whose puts were compacted away (an interrupted
            // physical compaction leaves such rows) ends nothing we know of.
            None if tombstone => {}
            None => {
                let created = Revision::new(created, 0);
                self.keys
                    .insert(key.to_vec(), KeyIndex::restored(created, rev, version));
            }
        }
    }

    /// Drops the history no read at `at` or later can see.
    pub fn compact(&mut self, at: i64) {
        // Compaction never ends a live key; counting again costs nothing in
        // the pass it makes anyway.
        let mut alive = 0;
        self.keys.retain(|_, ki| {
            let empty = ki.compact(at);
            alive += usize::from(ki.is_alive());
            !empty
        });
        debug_assert_eq!(alive, self.alive, "compaction changed the live keys");
        self.alive = alive;
    }

    /// Whether the backend row for `key` at `rev` is still referenced.
    pub fn contains(&self, key: &[u8], rev: Revision) -> bool {
        self.keys.get(key).is_some_and(|ki| ki.contains(rev))
    }

    /// The revisions at or below main revision `at` that a compaction at `at`
    /// would keep, one per key at most (etcd's `Keep`).
    pub fn kept_at(&self, at: i64) -> HashSet<Revision> {
        let mut out = HashSet::new();
        for ki in self.keys.values() {
            ki.kept_at(at, |r| {
                out.insert(r);
            });
        }
        out
    }

    /// The history of `key`, for tests.
    #[cfg(test)]
    pub fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn keys_at(index: &Index, span: KeySpan<'_>, at: i64) -> Vec<String> {
        let mut out = Vec::new();
        index.visit(span, at, |k, s| {
            out.push(format!(
                "{}@{}",
                String::from_utf8_lossy(k),
                s.modified.main
            ));
            true
        });
        out
    }

    #[test]
    fn spans() {
        let mut index = Index::default();
        for (i, k) in ["\0", "a", "b", "c"].iter().enumerate() {
            index.put(k.as_bytes(), r(i as i64 + 2));
        }
        assert!(index.tombstone(b"b", r(6)));
        assert!(!index.tombstone(b"b", r(7)), "already deleted");
        assert!(!index.tombstone(b"zz", r(7)), "never existed");
        type Case<'a> = (&'a [u8], &'a [u8], i64, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (b"a", b"", 6, &["a@3"]),
            (b"a", b"c", 5, &["a@3", "b@4"]),
            (b"a", b"c", 6, &["a@3"]),
            (b"a", b"\0", 6, &["a@3", "c@5"]),
            (b"\0", b"\0", 6, &["\0@2", "a@3", "c@5"]),
            (b"c", b"a", 6, &[]),
            (b"a", b"a", 6, &[]),
            (b"a", b"", 2, &[]),
        ];
        for &(key, end, at, want) in cases {
            let got = keys_at(&index, KeySpan::new(key, end), at);
            assert_eq!(got, want, "{key:?}..{end:?}@{at}");
        }
    }

    #[test]
    fn undo_restores_exact_history() {
        let mut index = Index::default();
        index.put(b"a", r(2));
        index.put(b"a", r(3));
        index.tombstone(b"a", r(4));
        let before = index.key_index(b"a").cloned();

        index.put(b"a", r(5));
        index.tombstone(b"a", r(6));
        index.put(b"b", r(6));
        index.undo_put(b"b");
        index.undo_tombstone(b"a");
        index.undo_put(b"a");
        assert_eq!(index.key_index(b"a").cloned(), before);
        assert!(index.key_index(b"b").is_none());
        assert_eq!(index.len(), 1);
    }

    /// Keys alive at their newest revision, counted the slow way.
    fn alive_by_walking(index: &Index) -> usize {
        index.keys.values().filter(|ki| ki.is_alive()).count()
    }

    #[test]
    fn the_live_count_follows_every_change() {
        let mut index = Index::default();
        let mut rev = 1;
        // A deterministic mix over a few keys: puts, deletes, undos of both,
        // rebuilt rows and compactions.
        let mut state = 0x2545_f491_u64;
        for step in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = [b'k', (state % 7) as u8];
            rev += 1;
            let next = || r(rev);
            match (state >> 8) % 10 {
                0..=3 => index.put(&key, next()),
                4..=5 => {
                    index.tombstone(&key, next());
                }
                6 => {
                    index.put(&key, next());
                    index.undo_put(&key);
                }
                7 => {
                    if index.tombstone(&key, next()) {
                        index.undo_tombstone(&key);
                    }
                }
                8 => index.restore_row(&key, next(), state.is_multiple_of(3), rev, 1),
                _ => index.compact(rev - (state % 5) as i64),
            }
            assert_eq!(index.alive(), alive_by_walking(&index), "step {step}");
        }
        assert!(index.alive() > 0);
    }

    #[test]
    fn restore_skips_orphan_tombstones_and_compact_removes_dead_keys() {
        let mut index = Index::default();
        index.restore_row(b"a", r(3), true, 0, 0);
        assert_eq!(index.len(), 0);
        index.restore_row(b"a", r(5), false, 4, 2);
        index.restore_row(b"b", r(6), false, 6, 1);
        index.restore_row(b"b", r(7), true, 0, 0);
        let a = index.get(b"a", 5).unwrap();
        assert_eq!((a.created, a.version), (r(4), 2));
        assert!(index.contains(b"b", r(7)));
        index.compact(7);
        assert_eq!(index.len(), 1, "b's only generation ended at 7");
        assert!(!index.contains(b"b", r(6)));
        assert_eq!(index.kept_at(7), HashSet::from([r(5)]));
        assert_eq!(index.kept_at(9), HashSet::from([r(5)]));
    }
}
