//! A bounded in-memory copy of the tail of the raft log.
//!
//! raft-rs keeps appended entries in its own memory only until they are
//! persisted; afterwards it reads them back through `Storage::entries`: to hand
//! committed entries to the apply side (every write, right after its fsync) and,
//! on a leader, to replicate them to followers. raft-engine serves such a read
//! from its log file, a `pread` plus a decode per batch. [`EntryCache`] keeps
//! the most recently appended entries so those reads come from memory. Applied
//! entries are kept too (up to the bound): a leader still sends them to
//! followers that lag a little.
//!
//! Invariants (the storage upholds them by routing every change of the log
//! through this cache):
//! - The cached entries have consecutive indexes, and when the cache is not
//!   empty its last entry is the log's last entry: [`EntryCache::append`] drops
//!   the suffix new entries replace, as raft-engine does.
//! - Every cached entry is in raft-engine as it is here: compaction drops the
//!   entries it removes from the engine ([`EntryCache::compact_to`]) and a
//!   snapshot install clears the cache ([`EntryCache::clear`]).
//! - At most [`MAX_CACHED_ENTRIES`] entries of at most [`MAX_CACHED_BYTES`]
//!   bytes in all (encoded size) are kept; the oldest are evicted first.
//!
//! Caveat: the cache is updated when entries are staged into a batch, before
//! the batch is written. The batch is written before raft reads the log again,
//! and a failed write stops the raft loop, so no read sees the difference.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::eraftpb::Entry;

/// Most entries the cache holds.
pub(crate) const MAX_CACHED_ENTRIES: usize = 4096;
/// Most bytes (entries' encoded size) the cache holds.
pub(crate) const MAX_CACHED_BYTES: u64 = 16 << 20;

/// One cached entry with its encoded size.
struct Cached {
    /// The entry as appended.
    entry: Entry,
    /// Its protobuf-encoded size, as raft-rs counts sizes.
    size: u64,
}

/// The most recently appended entries of the log, oldest first.
#[derive(Default)]
pub(crate) struct EntryCache {
    /// Entries with consecutive indexes, ending at the log's last index.
    entries: VecDeque<Cached>,
    /// Sum of the entries' sizes.
    bytes: u64,
}

impl EntryCache {
    /// Records `entries` appended to the log, dropping any cached suffix they
    /// replace, then evicts the oldest entries beyond the bounds.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(new_first) = entries.first().map(|e| e.index) else {
            return;
        };
        match self.range() {
            Some((first, last)) if first <= new_first && new_first <= last + 1 => {
                self.truncate_from(new_first);
            }
            // The new entries replace every cached one, or leave a gap after them.
            _ => self.clear(),
        }
        for entry in entries {
            let size = u64::from(entry.compute_size());
            self.bytes += size;
            self.entries.push_back(Cached {
                entry: entry.clone(),
                size,
            });
        }
        while self.entries.len() > MAX_CACHED_ENTRIES || self.bytes > MAX_CACHED_BYTES {
            self.pop_front();
        }
    }

    /// Drops the entries at or below `index` (the log was compacted up to it).
    pub(crate) fn compact_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|c| c.entry.index <= index) {
            self.pop_front();
        }
    }

    /// Forgets every entry (a snapshot replaced the log).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The indexes `(first, last)` cached, `None` when empty.
    pub(crate) fn range(&self) -> Option<(u64, u64)> {
        let first = self.entries.front()?.entry.index;
        let last = self.entries.back()?.entry.index;
        Some((first, last))
    }

    /// Entries `low..high` if all are cached, limited like raft-rs's
    /// `limit_size`: at most `max_size` bytes, but always at least one entry.
    pub(crate) fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Option<Vec<Entry>> {
        let (first, last) = self.range()?;
        if low < first || high > last + 1 {
            return None;
        }
        let start = usize::try_from(low - first).ok()?;
        let count = usize::try_from(high.saturating_sub(low)).ok()?;
        let max_size = max_size.unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity(count);
        let mut size = 0u64;
        for cached in self.entries.range(start..start + count) {
            size = size.saturating_add(cached.size);
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(cached.entry.clone());
        }
        Some(out)
    }

    /// Sum of the cached entries' encoded sizes.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of cached entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops cached entries at or above `index`.
    fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|c| c.entry.index >= index) {
            let dropped = self.entries.pop_back().expect("checked non-empty");
            self.bytes -= dropped.size;
        }
    }

    /// Evicts the oldest entry.
    fn pop_front(&mut self) {
        if let Some(dropped) = self.entries.pop_front() {
            self.bytes -= dropped.size;
        }
    }
}
