//! retcd's multi-version key-value store: etcd's `mvcc` package.
//!
//! Every change to the key space gets a revision, and every revision stays
//! readable until it is compacted away. The store has two halves:
//! - the **index** (`index.rs`, `key_index.rs`): in memory, key to the
//!   revisions that key was written at, grouped into generations (a delete
//!   ends one); it answers which keys a range covers at a revision, counts,
//!   versions and create/mod revisions;
//! - the **backend** (`backend.rs`): a redb file of rows keyed by revision,
//!   holding the encoded `mvccpb::KeyValue`s, with an in-memory overlay
//!   (`overlay.rs`) of the rows committed since redb's last write; the index
//!   is rebuilt from it at open.
//!
//! Reads go through [`Store::range`] (any thread, any time, committed state
//! only). Writes go through one [`WriteBatch`] at a time: the apply loop
//! applies a run of raft entries to a batch, records the last entry's index
//! with [`WriteBatch::set_consistent_index`], takes the watch events, and
//! commits, durably or not: a non-durable commit only adds to the overlay, a
//! durable one writes the overlay to redb and fsyncs. Because the raft log is
//! the durability point, a non-durable commit that a crash loses is simply
//! applied again: raft replays from the consistent index redb holds.
//!
//! Compaction ([`WriteBatch::compact`]) makes old revisions unreadable at
//! once and removes their rows in the background (`compactor.rs`), in chunks
//! that interleave with writes.
//!
//! Behaviour follows etcd 3.5 (revisions, counts, sort and limit rules, txn
//! compares, error texts); module docs note where and why retcd differs.
//!
//! Known caveats:
//! - compacting the index is one pass over every key under the index write
//!   lock, at the commit of the batch that compacts (a few hundred
//!   nanoseconds per key, during which reads wait);
//! - `count` walks the keys of the range in the index (never the backend);
//! - a range's answer is built in memory whole.

mod backend;
mod compactor;
mod error;
mod hash;
mod index;
mod key_index;
mod lock;
mod overlay;
mod range;
mod revision;
mod snapshot;
mod store;
mod txn;
pub mod watch;
mod write;

#[cfg(test)]
mod defrag_test;
#[cfg(test)]
mod model_test;
#[cfg(test)]
mod overlay_test;
#[cfg(test)]
mod script_test;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
pub use snapshot::SnapshotInfo;
pub use store::Store;
pub use txn::{check_txn_duplicates, is_txn_read_only};
pub use write::{WriteBatch, check_put_request};
