//! The raft log on raft-engine, seen by raft-rs through [`raft::Storage`].
//!
//! raft-engine keeps, per raft group, an ordered run of log entries plus a small
//! key-value map, and makes one `LogBatch` durable with one `fdatasync`. The member
//! is group 1 ([`REGION_ID`]); its keys are:
//!
//! - `hard_state`: raft's `HardState` (term, vote, commit).
//! - `snapshot`: the snapshot point, a `SnapshotMetadata` (index, term, conf state).
//!   Everything at or below its index is in the state machine's durable backend.
//! - `truncated`: `(index, term)` of the last entry removed from the log; entries
//!   `truncated + 1 ..= last` are readable. It trails the snapshot point by a margin
//!   so slightly lagging followers catch up from the log instead of a snapshot.
//! - `conf_state/<index>`: the conf state after each conf change applied above the
//!   snapshot point, keyed by the change's log index.
//!
//! Invariants:
//! - `truncated.index <= snapshot.index <= hard_state.commit <= last_index`.
//! - A fresh directory is bootstrapped with the initial voters at snapshot point
//!   (1, 1) and commit 1, so the first real entry is index 2; a joining member's
//!   (no voters) at (0, 0) with an empty conf state, so any leader's log is
//!   compacted past it and the leader sends a snapshot.
//! - Everything a `Ready` produces (snapshot point, entries, hard state) goes into
//!   one batch, so a crash keeps all of it or none of it.
//!
//! Reads of recent entries (raft hands committed entries to the apply side right
//! after their fsync; a leader replicates them) are served from
//! [`EntryCache`], a bounded copy of the log's tail; older ones from raft-engine.
//! Every change to the log (append, overwrite, compaction, snapshot install)
//! updates the cache with it, so it never holds an entry the engine does not.
//!
//! Why a conf-state history: on restart raft replays from the state machine's
//! durable index, which may lie before the latest conf changes. Raft must restart
//! with the conf state as of that index and see the later changes again as they are
//! redelivered, not apply them twice. The history also gives the exact conf state at
//! a compaction point.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Command, Engine, LogBatch, MessageExt, ReadableSize};

use crate::entry_cache::EntryCache;
use crate::log_fs::ZeroFillFileSystem;
use crate::{Error, Result, SnapshotSource};

/// The raft-engine group holding this member's log.
pub(crate) const REGION_ID: u64 = 1;
/// Size of one raft-engine log file, like etcd's 64 MB WAL segments.
const LOG_FILE_BYTES: u64 = 64 << 20;
/// raft-engine rewrites and purges old files once the log files exceed this.
const LOG_PURGE_THRESHOLD_BYTES: u64 = 5 * LOG_FILE_BYTES;

const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
const KEY_TRUNCATED: &[u8] = b"truncated";
const CONF_HISTORY_PREFIX: &[u8] = b"conf_state/";
/// The first key after every `conf_state/...` key ('0' follows '/').
const CONF_HISTORY_END: &[u8] = b"conf_state0";

/// Tells raft-engine how to find the index of an `eraftpb::Entry`.
pub(crate) struct EntryCodec;

impl MessageExt for EntryCodec {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Raft's log and state, durable in raft-engine, with the small parts cached.
pub(crate) struct LogStorage {
    /// The raft-engine instance.
    engine: Engine<ZeroFillFileSystem>,
    /// Cached `hard_state` key; `hard_state_dirty` if the cache is ahead of the engine.
    hard_state: HardState,
    /// The cached hard state has changes not yet staged into a batch.
    hard_state_dirty: bool,
    /// Cached snapshot point.
    snapshot: SnapshotMetadata,
    /// Cached `(index, term)` of the last entry removed from the log.
    truncated: (u64, u64),
    /// Conf states after conf changes above the snapshot point, by log index.
    conf_history: BTreeMap<u64, ConfState>,
    /// Terms of entries appended since open, so raft's frequent term lookups skip the disk.
    terms: TermRuns,
    /// The most recently appended entries, so reads of them skip the disk.
    cache: EntryCache,
    /// Produces the state machine's data when raft sends a snapshot.
    snapshots: Arc<dyn SnapshotSource>,
}

impl LogStorage {
    /// Opens (or bootstraps with `voters`) the raft log in `dir`.
    pub(crate) fn open(
        dir: &Path,
        voters: &[u64],
        snapshots: Arc<dyn SnapshotSource>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("creating {}: {e}", dir.display())))?;
        let cfg = raft_engine::Config {
            dir: dir.to_string_lossy().into_owned(),
            target_file_size: ReadableSize(LOG_FILE_BYTES),
            purge_threshold: ReadableSize(LOG_PURGE_THRESHOLD_BYTES),
            ..Default::default()
        };
        let engine = Engine::open_with_file_system(cfg, Arc::new(ZeroFillFileSystem))?;
        let mut storage = LogStorage {
            engine,
            hard_state: HardState::default(),
            hard_state_dirty: false,
            snapshot: SnapshotMetadata::default(),
            truncated: (0, 0),
            conf_history: BTreeMap::new(),
            terms: TermRuns::default(),
            cache: EntryCache::default(),
            snapshots,
        };
        match storage
            .engine
            .get_message::<HardState>(REGION_ID, KEY_HARD_STATE)?
        {
            None => storage.bootstrap(voters)?,
            Some(hs) => storage.load(hs)?,
        }
        Ok(storage)
    }

    /// Writes the initial state of a fresh member: voters at snapshot point
    /// (1, 1), or, with no voters (a member joining an existing cluster), an
    /// empty log at (0, 0) that the leader's first snapshot replaces.
    fn bootstrap(&mut self, voters: &[u64]) -> Result<()> {
        if voters.is_empty() {
            let mut batch = LogBatch::default();
            self.stage_snapshot_point(&mut batch, SnapshotMetadata::default(), (0, 0))?;
            // The hard state is the default one; store it all the same, since
            // its presence is what marks the log as bootstrapped.
            self.hard_state_dirty = true;
            self.stage_hard_state(&mut batch)?;
            self.write(&mut batch, true)?;
            tracing::info!("bootstrapped an empty raft log to join an existing cluster");
            return Ok(());
        }
        let mut meta = SnapshotMetadata {
            index: 1,
            term: 1,
            ..Default::default()
        };
        meta.mut_conf_state().voters = voters.to_vec();
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        let mut batch = LogBatch::default();
        self.stage_snapshot_point(&mut batch, meta, (1, 1))?;
        self.set_hard_state(hs);
        self.stage_hard_state(&mut batch)?;
        self.write(&mut batch, true)?;
        tracing::info!(?voters, "bootstrapped a new raft log");
        Ok(())
    }

    /// Loads the cached state of an existing log and checks its invariants.
    fn load(&mut self, hs: HardState) -> Result<()> {
        self.hard_state = hs;
        self.snapshot = self
            .engine
            .get_message::<SnapshotMetadata>(REGION_ID, KEY_SNAPSHOT)?
            .ok_or_else(|| Error::Corrupt("missing snapshot point".into()))?;
        let raw = self
            .engine
            .get(REGION_ID, KEY_TRUNCATED)
            .ok_or_else(|| Error::Corrupt("missing truncated state".into()))?;
        self.truncated = decode_index_term(&raw)?;
        let mut history = BTreeMap::new();
        let mut bad_key = None;
        self.engine.scan_messages::<ConfState, _>(
            REGION_ID,
            Some(CONF_HISTORY_PREFIX),
            Some(CONF_HISTORY_END),
            false,
            |key, cs| match conf_history_index(key) {
                Some(index) => {
                    history.insert(index, cs);
                    true
                }
                None => {
                    bad_key = Some(key.to_vec());
                    false
                }
            },
        )?;
        if let Some(key) = bad_key {
            return Err(Error::Corrupt(format!("bad conf state key {key:?}")));
        }
        self.conf_history = history;
        let last = self.last_index_inner();
        let (trunc, snap, commit) = (
            self.truncated.0,
            self.snapshot.index,
            self.hard_state.commit,
        );
        if !(trunc <= snap && snap <= commit && commit <= last) {
            return Err(Error::Corrupt(format!(
                "truncated {trunc}, snapshot {snap}, commit {commit}, last index {last} out of order"
            )));
        }
        tracing::info!(
            term = self.hard_state.term,
            commit,
            snapshot_index = snap,
            first_index = trunc + 1,
            last_index = last,
            "recovered raft log"
        );
        Ok(())
    }

    /// Forgets conf changes above `applied`: they are redelivered and applied again.
    pub(crate) fn rewind_conf_history(&mut self, applied: u64) -> Result<()> {
        let above: Vec<u64> = self
            .conf_history
            .range(applied + 1..)
            .map(|(i, _)| *i)
            .collect();
        if above.is_empty() {
            return Ok(());
        }
        let mut batch = LogBatch::default();
        for index in above {
            self.conf_history.remove(&index);
            batch.delete(REGION_ID, conf_history_key(index));
        }
        self.write(&mut batch, true)?;
        Ok(())
    }

    /// The cached hard state (possibly ahead of the engine until the next batch).
    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The snapshot point: everything at or below it is in the durable backend.
    pub(crate) fn snapshot_point(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// Index of the first readable entry.
    pub(crate) fn first_index_inner(&self) -> u64 {
        self.truncated.0 + 1
    }

    /// Index of the last entry (the truncated index when the log is empty).
    pub(crate) fn last_index_inner(&self) -> u64 {
        self.engine
            .last_index(REGION_ID)
            .map_or(self.truncated.0, |last| last.max(self.truncated.0))
    }

    /// The conf state in effect now (after every recorded conf change).
    pub(crate) fn conf_state(&self) -> &ConfState {
        self.conf_history
            .values()
            .next_back()
            .unwrap_or_else(|| self.snapshot.get_conf_state())
    }

    /// The conf state in effect once the entry at `index` was applied.
    fn conf_state_at(&self, index: u64) -> &ConfState {
        self.conf_history
            .range(..=index)
            .next_back()
            .map_or_else(|| self.snapshot.get_conf_state(), |(_, cs)| cs)
    }

    /// Records, durably, the conf state that results from the conf change at `index`.
    pub(crate) fn record_conf_state(&mut self, index: u64, cs: ConfState) -> Result<()> {
        let mut batch = LogBatch::default();
        batch.put_message(REGION_ID, conf_history_key(index), &cs)?;
        // Synced on its own: the backend may make `index` durable before the next
        // Ready syncs, and a restart from there must see this conf state.
        self.write(&mut batch, true)?;
        self.conf_history.insert(index, cs);
        Ok(())
    }

    /// Replaces the cached hard state; it reaches the engine with the next batch.
    pub(crate) fn set_hard_state(&mut self, hs: HardState) {
        if hs != self.hard_state {
            self.hard_state = hs;
            self.hard_state_dirty = true;
        }
    }

    /// Raises the cached commit index; it reaches the engine with the next batch.
    pub(crate) fn set_commit(&mut self, commit: u64) {
        if commit > self.hard_state.commit {
            self.hard_state.commit = commit;
            self.hard_state_dirty = true;
        }
    }

    /// Adds the hard state to `batch` if it changed since it was last staged.
    pub(crate) fn stage_hard_state(&mut self, batch: &mut LogBatch) -> Result<()> {
        if self.hard_state_dirty {
            batch.put_message(REGION_ID, KEY_HARD_STATE.to_vec(), &self.hard_state)?;
            self.hard_state_dirty = false;
        }
        Ok(())
    }

    /// Adds `entries` to `batch`, replacing any conflicting suffix of the log.
    pub(crate) fn stage_entries(&mut self, batch: &mut LogBatch, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let first = entries[0].index;
        if first <= self.truncated.0 {
            return Err(Error::Corrupt(format!(
                "appending entry {first} at or below the truncated index {}",
                self.truncated.0
            )));
        }
        batch.add_entries::<EntryCodec>(REGION_ID, entries)?;
        self.terms.append(entries);
        self.cache.append(entries);
        Ok(())
    }

    /// Installs a snapshot received from the leader: the whole log is replaced by it.
    pub(crate) fn stage_snapshot(&mut self, batch: &mut LogBatch, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata().clone();
        let last = self.last_index_inner().max(meta.index);
        batch.add_command(REGION_ID, Command::Compact { index: last + 1 });
        self.terms = TermRuns::default();
        self.cache.clear();
        for index in std::mem::take(&mut self.conf_history).into_keys() {
            batch.delete(REGION_ID, conf_history_key(index));
        }
        let point = (meta.index, meta.term);
        self.set_commit(meta.index);
        self.stage_snapshot_point(batch, meta, point)
    }

    /// Adds a new snapshot point and truncated state to `batch` and the cache.
    fn stage_snapshot_point(
        &mut self,
        batch: &mut LogBatch,
        meta: SnapshotMetadata,
        truncated: (u64, u64),
    ) -> Result<()> {
        batch.put_message(REGION_ID, KEY_SNAPSHOT.to_vec(), &meta)?;
        batch.put(
            REGION_ID,
            KEY_TRUNCATED.to_vec(),
            encode_index_term(truncated).to_vec(),
        )?;
        self.snapshot = meta;
        self.truncated = truncated;
        Ok(())
    }

    /// Moves the snapshot point to `index` (durable in the backend) and drops the log
    /// up to `index - margin`. Returns false if `index` is not past the current point.
    pub(crate) fn compact(&mut self, index: u64, margin: u64) -> Result<bool> {
        if index <= self.snapshot.index {
            return Ok(false);
        }
        if index > self.hard_state.commit || index > self.last_index_inner() {
            return Err(Error::Corrupt(format!(
                "compacting to {index} beyond commit {} / last index {}",
                self.hard_state.commit,
                self.last_index_inner()
            )));
        }
        let mut meta = SnapshotMetadata {
            index,
            term: self.term_of(index)?,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state_at(index).clone());
        let trunc_index = index.saturating_sub(margin).max(self.truncated.0);
        let truncated = (trunc_index, self.term_of(trunc_index)?);

        let mut batch = LogBatch::default();
        let folded: Vec<u64> = self.conf_history.range(..=index).map(|(i, _)| *i).collect();
        for i in folded {
            self.conf_history.remove(&i);
            batch.delete(REGION_ID, conf_history_key(i));
        }
        batch.add_command(
            REGION_ID,
            Command::Compact {
                index: trunc_index + 1,
            },
        );
        self.terms.forget_below(trunc_index);
        self.cache.compact_to(trunc_index);
        self.stage_snapshot_point(&mut batch, meta, truncated)?;
        // The stored commit must not fall behind the new truncated index.
        self.hard_state_dirty = true;
        self.stage_hard_state(&mut batch)?;
        // Not synced: the batch is atomic and the next Ready's sync covers it; losing
        // it in a crash only keeps more log.
        self.write(&mut batch, false)?;
        self.engine.purge_expired_files()?;
        Ok(true)
    }

    /// Writes `batch` to the engine; with `sync` it is durable on return.
    pub(crate) fn write(&self, batch: &mut LogBatch, sync: bool) -> Result<usize> {
        Ok(self.engine.write(batch, sync)?)
    }

    /// Writes the hard state and makes every earlier write durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        // raft-engine skips an empty batch, sync included: always write something.
        self.hard_state_dirty = true;
        let mut batch = LogBatch::default();
        self.stage_hard_state(&mut batch)?;
        self.write(&mut batch, true)?;
        Ok(())
    }

    /// Term of the entry at `index`, which must be in `[truncated, last]`.
    fn term_of(&self, index: u64) -> Result<u64> {
        raft::Storage::term(self, index).map_err(Error::Raft)
    }
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index_inner() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let max_size = max_size.into();
        if let Some(cached) = self.cache.entries(low, high, max_size) {
            return Ok(cached);
        }
        let max_size = max_size.map(|size| usize::try_from(size).unwrap_or(usize::MAX));
        let mut entries = Vec::with_capacity(high.saturating_sub(low) as usize);
        self.engine
            .fetch_entries_to::<EntryCodec>(REGION_ID, low, high, max_size, &mut entries)
            .map_err(storage_error)?;
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index_inner() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if let Some(term) = self.terms.term(idx) {
            return Ok(term);
        }
        match self
            .engine
            .get_entry::<EntryCodec>(REGION_ID, idx)
            .map_err(storage_error)?
        {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index_inner())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // raft-rs treats any other error as fatal: everything that is not
        // ready yet is "temporarily unavailable", and raft asks again later.
        let unavailable = || raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        // The copy must cover the snapshot point and the latest conf change,
        // so the receiver's conf state is current (it may be the member that
        // change added).
        let latest_conf_change = self.conf_history.keys().next_back().copied().unwrap_or(0);
        let min_index = request_index
            .max(self.snapshot.index)
            .max(latest_conf_change);
        let (index, data) = self
            .snapshots
            .snapshot_data(min_index)
            .ok_or_else(unavailable)?;
        if index < min_index || index > self.hard_state.commit {
            tracing::warn!(
                index,
                min_index,
                "snapshot source returned an unusable copy"
            );
            return Err(unavailable());
        }
        let term = raft::Storage::term(self, index).map_err(|_| unavailable())?;
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state_at(index).clone());
        snap.data = data;
        Ok(snap)
    }
}

/// Terms of a contiguous run of recent entries, run-length encoded.
#[derive(Default)]
struct TermRuns {
    /// `(first index, term)` of each run of equal terms, ascending.
    runs: Vec<(u64, u64)>,
    /// Last index covered by `runs`.
    last: u64,
}

impl TermRuns {
    /// Records appended entries, forgetting any suffix they replace.
    fn append(&mut self, entries: &[Entry]) {
        let first = entries[0].index;
        match self.runs.first() {
            Some(&(start, _)) if start <= first && first <= self.last + 1 => {
                let keep = self.runs.partition_point(|&(start, _)| start < first);
                self.runs.truncate(keep);
            }
            _ => self.runs.clear(),
        }
        for e in entries {
            if self.runs.last().is_none_or(|&(_, term)| term != e.term) {
                self.runs.push((e.index, e.term));
            }
        }
        self.last = entries[entries.len() - 1].index;
    }

    /// Drops runs that end before `index`.
    fn forget_below(&mut self, index: u64) {
        let containing = self.runs.partition_point(|&(start, _)| start <= index);
        self.runs.drain(..containing.saturating_sub(1));
    }

    /// The term of `index`, if covered.
    fn term(&self, index: u64) -> Option<u64> {
        let first = self.runs.first()?.0;
        if index < first || index > self.last {
            return None;
        }
        let pos = self.runs.partition_point(|&(start, _)| start <= index);
        Some(self.runs[pos - 1].1)
    }
}

/// Wraps a raft-engine error for raft-rs.
fn storage_error(e: raft_engine::Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

/// Key of the conf state recorded for the conf change at `index`.
fn conf_history_key(index: u64) -> Vec<u8> {
    let mut key = CONF_HISTORY_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The index in a conf history key.
fn conf_history_index(key: &[u8]) -> Option<u64> {
    let raw = key.strip_prefix(CONF_HISTORY_PREFIX)?;
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

/// Encodes `(index, term)` as 16 big-endian bytes.
fn encode_index_term((index, term): (u64, u64)) -> [u8; 16] {
    let mut buf = [0; 16];
    buf[..8].copy_from_slice(&index.to_be_bytes());
    buf[8..].copy_from_slice(&term.to_be_bytes());
    buf
}

/// Decodes what [`encode_index_term`] wrote.
fn decode_index_term(raw: &[u8]) -> Result<(u64, u64)> {
    let raw: [u8; 16] = raw
        .try_into()
        .map_err(|_| Error::Corrupt(format!("truncated state of {} bytes", raw.len())))?;
    let (index, term) = raw.split_at(8);
    Ok((
        u64::from_be_bytes(index.try_into().expect("8 bytes")),
        u64::from_be_bytes(term.try_into().expect("8 bytes")),
    ))
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
