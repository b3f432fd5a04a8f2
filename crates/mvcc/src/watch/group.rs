//! Which watchers a key wakes: the key spans of the synced watchers.
//!
//! Single-key watchers (the common case: etcdctl, leader election, config
//! keys) sit in a hash map, so matching them costs one lookup whatever their
//! number. Range and prefix watchers sit in a map ordered by start key; a key
//! is checked only against the ranges that start at or before it.
//!
//! Caveat: matching a key walks every range starting at or before it, so
//! many overlapping range watchers cost linear time per event (etcd uses an
//! interval tree here); single-key watchers are unaffected.

use std::collections::{BTreeMap, HashMap};

use super::WatcherKey;

/// The keys one watcher covers, decoded from etcd's `key`/`range_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSpan {
    /// Just this key.
    Single(Vec<u8>),
    /// `[key, end)`, or every key `>= key` when `end` is `None`.
    Range(Vec<u8>, Option<Vec<u8>>),
}

impl WatchSpan {
    /// Decodes a create request's key and range end as etcd does: an empty
    /// key means `"\0"`, range end `"\0"` means every key from `key` on.
    /// Returns None when the range holds no key.
    pub fn new(key: &[u8], range_end: &[u8]) -> Option<WatchSpan> {
        let key = if key.is_empty() {
            vec![0]
        } else {
            key.to_vec()
        };
        match range_end {
            [] => Some(WatchSpan::Single(key)),
            [0] => Some(WatchSpan::Range(key, None)),
            end if key.as_slice() < end => Some(WatchSpan::Range(key, Some(end.to_vec()))),
            _ => None,
        }
    }

    /// Whether `key` lies in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            WatchSpan::Single(k) => k == key,
            WatchSpan::Range(start, end) => {
                start.as_slice() <= key && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }
}

/// The synced watchers, indexed by the keys they cover.
#[derive(Debug, Default)]
pub(crate) struct WatcherGroup {
    /// Single-key watchers by key.
    single: HashMap<Vec<u8>, Vec<WatcherKey>>,
    /// Range watchers by (start key, watcher), with their end.
    ranges: BTreeMap<(Vec<u8>, WatcherKey), Option<Vec<u8>>>,
}

impl WatcherGroup {
    /// Adds a watcher covering `span`.
    pub fn insert(&mut self, span: &WatchSpan, watcher: WatcherKey) {
        match span {
            WatchSpan::Single(key) => self.single.entry(key.clone()).or_default().push(watcher),
            WatchSpan::Range(start, end) => {
                self.ranges.insert((start.clone(), watcher), end.clone());
            }
        }
    }

    /// Removes a watcher added with the same `span`; a no-op if absent.
    pub fn remove(&mut self, span: &WatchSpan, watcher: WatcherKey) {
        match span {
            WatchSpan::Single(key) => {
                if let Some(list) = self.single.get_mut(key) {
                    list.retain(|&w| w != watcher);
                    if list.is_empty() {
                        self.single.remove(key);
                    }
                }
            }
            WatchSpan::Range(start, _) => {
                self.ranges.remove(&(start.clone(), watcher));
            }
        }
    }

    /// Calls `f` with every watcher whose span holds `key`.
    pub fn matching(&self, key: &[u8], mut f: impl FnMut(WatcherKey)) {
        if let Some(list) = self.single.get(key) {
            list.iter().copied().for_each(&mut f);
        }
        for ((start, watcher), end) in &self.ranges {
            if start.as_slice() > key {
                break;
            }
            if end.as_ref().is_none_or(|e| key < e.as_slice()) {
                f(*watcher);
            }
        }
    }

    /// Every watcher in the group.
    pub fn all(&self) -> Vec<WatcherKey> {
        let mut all: Vec<WatcherKey> = self.single.values().flatten().copied().collect();
        all.extend(self.ranges.keys().map(|(_, w)| *w));
        all
    }

    /// Removes every watcher.
    pub fn clear(&mut self) {
        self.single.clear();
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watchers `group` wakes for `key`, sorted.
    fn woken(group: &WatcherGroup, key: &[u8]) -> Vec<WatcherKey> {
        let mut out = Vec::new();
        group.matching(key, |w| out.push(w));
        out.sort_unstable();
        out
    }

    #[test]
    fn spans_decode_like_etcd() {
        assert_eq!(WatchSpan::new(b"", b""), Some(WatchSpan::Single(vec![0])));
        assert_eq!(
            WatchSpan::new(b"a", b"\0"),
            Some(WatchSpan::Range(b"a".to_vec(), None))
        );
        assert_eq!(WatchSpan::new(b"b", b"a"), None);
        assert_eq!(WatchSpan::new(b"a", b"a"), None);
        let span = WatchSpan::new(b"a", b"c").unwrap();
        assert!(span.contains(b"a") && span.contains(b"bzz") && !span.contains(b"c"));
    }

    #[test]
    fn matches_single_range_and_open_spans() {
        let mut group = WatcherGroup::default();
        let spans = [
            (1, WatchSpan::new(b"foo", b"").unwrap()),
            (2, WatchSpan::new(b"foo", b"fop").unwrap()),
            (3, WatchSpan::new(b"a", b"\0").unwrap()),
            (4, WatchSpan::new(b"g", b"h").unwrap()),
            (5, WatchSpan::new(b"foo", b"").unwrap()),
        ];
        for (w, span) in &spans {
            group.insert(span, *w);
        }
        assert_eq!(woken(&group, b"foo"), vec![1, 2, 3, 5]);
        assert_eq!(woken(&group, b"foo1"), vec![2, 3]);
        assert_eq!(woken(&group, b"g"), vec![3, 4]);
        assert_eq!(woken(&group, b"\0"), Vec::<WatcherKey>::new());
        group.remove(&spans[0].1, 1);
        group.remove(&spans[2].1, 3);
        assert_eq!(woken(&group, b"foo"), vec![2, 5]);
        let mut all = group.all();
        all.sort_unstable();
        assert_eq!(all, vec![2, 4, 5]);
    }
}
