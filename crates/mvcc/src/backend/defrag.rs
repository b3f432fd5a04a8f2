//! Defragmentation that lets writes go on (etcd stops them for the whole
//! copy, etcd #9222).
//!
//! Removed rows leave free pages that redb reuses but seldom gives back.
//! [`Backend::defragment`] gives them back the way etcd does, by copying
//! every table into a fresh file, and then putting the copy in the
//! original's place, but in two phases:
//!
//! 1. **Copy**, with nothing stopped: one read view (redb transaction and
//!    overlay) is written into `<db>.defrag` in one transaction. Readers and
//!    writers go on; flushes keep writing to the old file. Only physical
//!    compaction chunks and snapshot installs wait (the backend's `gate`):
//!    they are the only changes that remove or rewrite rows.
//! 2. **Catch up and switch**, with writers stopped (the caller's writer
//!    lock, then `flushing`): the overlay goes to the old file, the rows
//!    committed since the copy (revisions only grow, so they are the rows
//!    after the copy's last key) and the two small metadata tables are
//!    written into the copy in one durable transaction; the copy is renamed
//!    over the original, the directory synced, and the copy becomes the
//!    backend's database. Read views of the old one keep it open until they
//!    end.
//!
//! A crash before the rename leaves the original whole (the copy is removed
//! at the next open); after it, the copy is whole and durable.

use std::fs::File;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use super::*;
use crate::revision::REV_KEY_LEN;

/// Longest a defragmentation waits for the read views of the replaced
/// database to end before it lets the last of them close it.
const OLD_VIEWS_WAIT: Duration = Duration::from_secs(5);
/// How often it looks.
const OLD_VIEWS_POLL: Duration = Duration::from_millis(1);

/// Where a defragmentation writes its copy of the file at `path`.
fn defrag_path(path: &Path) -> PathBuf {
    path.with_extension("defrag")
}

/// Removes the copy an interrupted defragmentation of `path` left.
pub(super) fn remove_defrag_leftover(path: &Path) -> Result<()> {
    match std::fs::remove_file(defrag_path(path)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

impl Backend {
    /// Rewrites the file without its free pages (see the module docs).
    /// `stop_writers` is called between the copy and the switch and must
    /// return a guard that keeps write batches out until it drops; the caller
    /// must hold neither the writer lock nor a read view.
    pub fn defragment<G>(&self, stop_writers: impl FnOnce() -> G) -> Result<()> {
        let _gate = self.gate.lock();
        let tmp = defrag_path(&self.path);
        remove_defrag_leftover(&self.path)?;
        let done = self.copy_and_switch(&tmp, stop_writers);
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    /// With writers stopped: adds to `copy` what was committed since it was
    /// written after `copied_to` (its last row), puts it in place of the file
    /// and returns the database it replaced.
    fn catch_up_and_switch(
        &self,
        tmp: &Path,
        copy: Database,
        copied_to: Option<&RevKey>,
    ) -> Result<Arc<Database>> {
        let _flushing = self.flushing.lock();
        self.flush_locked(false)?;
        {
            // The overlay is empty: flushed above, and no batch commits now.
            let view = self.view()?;
            let txn = copy.begin_write()?;
            {
                let from = view.txn.open_table(KV)?;
                let mut to = txn.open_table(KV)?;
                let start = copied_to.copied().unwrap_or([0; REV_KEY_LEN]);
                for item in from.range::<&RevKey>(&start..)? {
                    let (key, value) = item?;
                    if Some(key.value()) != copied_to {
                        to.insert(key.value(), value.value())?;
                    }
                }
            }
            txn.delete_table(META)?;
            txn.delete_table(SERVER_META)?;
            copy_meta_tables(&view.txn, &txn)?;
            txn.commit()?;
        }
        std::fs::rename(tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let old = std::mem::replace(&mut *self.db.write(), Arc::new(copy));
        self.note_size();
        Ok(old)
    }

    /// The two phases, writing the copy at `tmp`.
    fn copy_and_switch<G>(&self, tmp: &Path, stop_writers: impl FnOnce() -> G) -> Result<()> {
        let started = Instant::now();
        let copy = Database::builder().create(tmp)?;
        self.view()?.copy_to(&copy)?;
        let copied_to = {
            let txn = copy.begin_read()?;
            let rows = txn.open_table(KV)?;
            rows.last()?.map(|(key, _)| *key.value())
        };

        let copied = started.elapsed();
        let (old, paused) = {
            let _writers = stop_writers();
            let stopped = Instant::now();
            let old = self.catch_up_and_switch(tmp, copy, copied_to.as_ref())?;
            (old, stopped.elapsed())
        };
        tracing::info!(
            copy = ?copied,
            writes_paused = ?paused,
            size_bytes = self.size_bytes(),
            "defragmented the backend"
        );
        // Closing a database writes to it, which takes a while for a big
        // one: not under the locks, and not on a reader's thread if waiting
        // a little lets the last read view of it end first.
        let deadline = Instant::now() + OLD_VIEWS_WAIT;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(OLD_VIEWS_POLL);
        }
        drop(old);
        Ok(())
    }
}
