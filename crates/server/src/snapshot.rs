//! Whole-backend snapshots on the server side: building the copy a leader
//! sends to a lagging follower, and installing one on the follower.
//!
//! **Sending.** raft asks [`BackendSnapshots`] for a copy of the backend when
//! a follower needs one. Exporting reads every row, which may take long on a
//! large store, and raft asks from its own loop, which must not stall; so the
//! first ask starts the export on a background thread and answers "not ready"
//! (raft-rs retries on a later heartbeat), and the finished copy answers every
//! later ask whose minimum index it covers. etcd builds its merged snapshot
//! inline on its raft goroutine; we do not.
//!
//! **Installing.** The apply thread hands [`install`] the snapshot raft made
//! durable: its data is written to a file beside the backend, copied into the
//! backend in one durable transaction (`Store::install_snapshot`, keeping this
//! member's own id, which the leader's copy holds for the leader), and then
//! everything derived from the backend follows it: the member list is
//! re-read (`RaftCluster::reload`), so are the alarms, the lessor is rebuilt from
//! the leases in the new backend, watchers catch up from the backend (the
//! dispatcher unsyncs them, as etcd moves them to its unsynced group), the
//! applied index moves to the snapshot's consistent index and raft learns it
//! is durable.
//!
//! Invariants:
//! - A copy handed to raft holds at least the index raft asked for, and its
//!   exact consistent index is what raft makes the snapshot at.
//! - At most one export runs at a time; its temporary file is removed whether
//!   it succeeds or not, and files a crash left behind at the next start.
//! - An install runs with no write batch open (the apply loop commits its
//!   batch first), so entries before the snapshot are committed before it
//!   and entries after it are applied on top of it.
//!
//! **Downloading.** [`download`] serves `Maintenance.Snapshot`: the same
//! export, streamed to the client with etcd's trailing SHA-256.
//!
//! Caveats:
//! - The finished copy stays in memory until a newer one replaces it (one
//!   copy of the backend at most).
//! - A crash after raft persisted the snapshot but before the install
//!   finished leaves the backend behind the raft log; the member then needs
//!   the leader to send a snapshot again (see `retcd_raft`'s caveat).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use anyhow::Context;
use bytes::Bytes;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge, register_int_counter, register_int_gauge};
use retcd_api::etcdserverpb::{ResponseHeader, SnapshotResponse};
use retcd_mvcc::{SnapshotInfo, Store};
use retcd_raft::{Snapshot, SnapshotSource};

use crate::apply::Applier;
use crate::{lease, metrics};

/// Snapshots being installed right now (etcd's gauge: 0 or 1).
pub static APPLY_IN_PROGRESS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_server_snapshot_apply_in_progress_total",
        "1 if the server is applying the incoming snapshot. 0 if none."
    )
    .expect("registering etcd_server_snapshot_apply_in_progress_total")
});

/// Snapshots installed since start (retcd's own counter).
pub static INSTALLED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "retcd_server_snapshots_installed_total",
        "The total number of raft snapshots installed into the backend."
    )
    .expect("registering retcd_server_snapshots_installed_total")
});

/// Server metadata that belongs to this member, not to the cluster: kept
/// when the leader's backend replaces ours (`crate::membership`'s
/// `record_local_identity` writes it).
const LOCAL_META_KEYS: &[&[u8]] = &[b"member_id"];

/// Distinguishes the temporary files of concurrent exports.
static NEXT_EXPORT: AtomicU64 = AtomicU64::new(0);

/// Writes a consistent copy of `store` to a fresh temporary file beside the
/// backend; the caller removes it.
pub fn export_to_temp(store: &Store) -> anyhow::Result<(SnapshotInfo, PathBuf)> {
    let n = NEXT_EXPORT.fetch_add(1, Ordering::Relaxed);
    let path = sibling(
        store.db_path(),
        &format!("export.{}.{n}", std::process::id()),
    );
    let _ = std::fs::remove_file(&path);
    match store.export_snapshot(&path) {
        Ok(info) => Ok((info, path)),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e).context("exporting the backend")
        }
    }
}

/// Removes every `<db>.*.tmp` file beside the backend file `db`: exports
/// and received snapshots of an earlier run of this member.
fn remove_stale_files(db: &Path) {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %file, "removed a stale snapshot file"),
                Err(e) => {
                    tracing::warn!(file = %file, error = %e, "cannot remove a stale snapshot file")
                }
            }
        }
    }
}

/// `<db>.<suffix>.tmp` beside the backend file `db`.
fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}.tmp"));
    db.with_file_name(name)
}

/// The leader's source of snapshot data: backend copies built off the raft loop.
pub struct BackendSnapshots {
    /// The store to copy.
    store: Arc<Store>,
    /// The latest copy and whether one is being built.
    state: Arc<Mutex<SourceState>>,
}

/// What [`BackendSnapshots`] has ready.
#[derive(Default)]
struct SourceState {
    /// The latest finished copy: its consistent index and bytes.
    ready: Option<(u64, Bytes)>,
    /// Whether an export is running.
    building: bool,
}

impl BackendSnapshots {
    /// A source copying `store`; removes temporary files a crash left beside
    /// the backend.
    pub fn new(store: Arc<Store>) -> BackendSnapshots {
        remove_stale_files(store.db_path());
        BackendSnapshots {
            store,
            state: Arc::default(),
        }
    }
}

impl SnapshotSource for BackendSnapshots {
    fn snapshot_data(&self, min_index: u64) -> Option<(u64, Bytes)> {
        let mut state = self.state.lock();
        if let Some((index, data)) = &state.ready
            && *index >= min_index
        {
            return Some((*index, data.clone()));
        }
        if !state.building {
            state.building = true;
            let (store, shared) = (self.store.clone(), self.state.clone());
            let spawned = std::thread::Builder::new()
                .name("snapshot-export".into())
                .spawn(move || {
                    let built = build_copy(&store);
                    let mut state = shared.lock();
                    state.building = false;
                    match built {
                        Ok(copy) => state.ready = Some(copy),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "building a snapshot failed")
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a snapshot export");
                state.building = false;
            }
        }
        None
    }
}

/// Exports `store` and reads the copy into memory.
fn build_copy(store: &Store) -> anyhow::Result<(u64, Bytes)> {
    let timer = metrics::BACKEND_SNAPSHOT_SECONDS.start_timer();
    let (info, path) = export_to_temp(store)?;
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()));
    let _ = std::fs::remove_file(&path);
    let data = data?;
    timer.observe_duration();
    tracing::info!(
        consistent_index = info.consistent_index,
        revision = info.revision,
        bytes = data.len(),
        "built a backend snapshot for a follower"
    );
    Ok((info.consistent_index, Bytes::from(data)))
}

/// Installs a snapshot raft received from the leader (see the module docs).
/// Fails only on local errors (disk, a corrupt snapshot), which stop the member.
pub fn install(applier: &Applier, snapshot: &Snapshot) -> anyhow::Result<SnapshotInfo> {
    APPLY_IN_PROGRESS.set(1);
    let result = install_backend(&applier.store, snapshot);
    APPLY_IN_PROGRESS.set(0);
    let info = result?;
    let fresh = lease::restore(&applier.store, applier.lessor_config)?;
    *applier.lessor.lock() = fresh;
    applier.cluster.reload(&applier.store)?;
    applier.alarms.reload(&applier.store)?;
    applier.watch.history_replaced();
    metrics::PROPOSALS_APPLIED.set(i64::try_from(info.consistent_index).unwrap_or(i64::MAX));
    applier.applied.send_replace(info.consistent_index);
    applier.raft.report_durable_applied(info.consistent_index);
    INSTALLED.inc();
    Ok(info)
}

/// Writes the snapshot's data beside the backend and installs it.
fn install_backend(store: &Store, snapshot: &Snapshot) -> anyhow::Result<SnapshotInfo> {
    let meta = snapshot.get_metadata();
    tracing::info!(
        index = meta.index,
        term = meta.term,
        bytes = snapshot.data.len(),
        "installing a raft snapshot into the backend"
    );
    let path = sibling(store.db_path(), "received");
    std::fs::write(&path, &snapshot.data).with_context(|| format!("writing {}", path.display()))?;
    let installed = store.install_snapshot(&path, LOCAL_META_KEYS);
    let _ = std::fs::remove_file(&path);
    let info = installed.context("installing the received snapshot")?;
    anyhow::ensure!(
        info.consistent_index >= meta.index,
        "the snapshot's backend holds index {} but raft's snapshot is at {}",
        info.consistent_index,
        meta.index
    );
    Ok(info)
}

/// Bytes of backend per `SnapshotResponse` (under every client's default
/// 4 MiB receive limit).
pub const DOWNLOAD_CHUNK_BYTES: usize = 1 << 20;
/// Responses buffered ahead of a slow client.
const DOWNLOAD_QUEUE: usize = 4;

/// One item of a `Maintenance.Snapshot` stream.
pub type DownloadItem = Result<SnapshotResponse, tonic::Status>;

/// Starts `Maintenance.Snapshot`: exports the backend, then streams it as
/// etcd does, in chunks whose `remaining_bytes` counts what follows them,
/// and last a response whose blob is the SHA-256 of everything before it
/// (`remaining_bytes` 0), which `etcdctl snapshot restore` checks. Every
/// response carries `header`.
pub async fn download(
    store: Arc<Store>,
    header: impl Fn(i64) -> ResponseHeader + Send + 'static,
) -> Result<tokio::sync::mpsc::Receiver<DownloadItem>, tonic::Status> {
    // The copy lives from the export to the end of the transfer.
    let timer = metrics::BACKEND_SNAPSHOT_SECONDS.start_timer();
    let (info, path) = tokio::task::spawn_blocking(move || export_to_temp(&store))
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .map_err(|e| tonic::Status::internal(format!("{e:#}")))?;
    let file = std::fs::File::open(&path);
    // The open file keeps the data readable; nothing else needs the name.
    let _ = std::fs::remove_file(&path);
    let file = file.map_err(|e| tonic::Status::internal(e.to_string()))?;
    let header = header(info.revision);
    let (tx, rx) = tokio::sync::mpsc::channel(DOWNLOAD_QUEUE);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stream_file(file, header, &tx) {
            let _ = tx.blocking_send(Err(tonic::Status::internal(format!(
                "reading the snapshot: {e}"
            ))));
        }
        timer.observe_duration();
    });
    Ok(rx)
}

/// Sends `file` in chunks and then its digest; stops early when the client
/// goes away.
fn stream_file(
    mut file: std::fs::File,
    header: ResponseHeader,
    tx: &tokio::sync::mpsc::Sender<DownloadItem>,
) -> std::io::Result<()> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let total = file.metadata()?.len();
    let mut sent = 0u64;
    let mut digest = sha2::Sha256::new();
    while sent < total {
        let want = usize::try_from(total - sent)
            .map_or(DOWNLOAD_CHUNK_BYTES, |left| left.min(DOWNLOAD_CHUNK_BYTES));
        let mut blob = vec![0; want];
        file.read_exact(&mut blob)?;
        digest.update(&blob);
        sent += want as u64;
        let response = SnapshotResponse {
            header: Some(header),
            remaining_bytes: total - sent,
            blob,
            ..Default::default()
        };
        if tx.blocking_send(Ok(response)).is_err() {
            return Ok(());
        }
    }
    let _ = tx.blocking_send(Ok(SnapshotResponse {
        header: Some(header),
        remaining_bytes: 0,
        blob: digest.finalize().to_vec(),
        ..Default::default()
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use retcd_api::etcdserverpb::PutRequest;

    use super::*;

    /// Puts `key` and records `index` as applied.
    fn apply_put(store: &Store, key: &str, index: u64) {
        let mut batch = store.write().unwrap();
        let req = PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        batch.put(&req, &|_| false).unwrap();
        batch.set_consistent_index(index, 1);
        batch.commit(true).unwrap();
    }

    /// Asks `source` until it has a copy covering `min_index`.
    fn wait_copy(source: &BackendSnapshots, min_index: u64) -> (u64, Bytes) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(copy) = source.snapshot_data(min_index) {
                return copy;
            }
            assert!(Instant::now() < deadline, "no copy at {min_index}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn copies_are_built_off_the_caller_and_rebuilt_when_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(dir.path().join("db.export.1.2.tmp"), b"left by a crash").unwrap();
        let store = Arc::new(Store::open(&db).unwrap());
        apply_put(&store, "a", 10);
        let source = BackendSnapshots::new(store.clone());
        assert!(
            !dir.path().join("db.export.1.2.tmp").exists(),
            "stale file removed"
        );
        assert!(
            source.snapshot_data(10).is_none(),
            "the first ask starts a build"
        );
        let (index, first) = wait_copy(&source, 10);
        assert_eq!(index, 10);
        // The same copy answers while it covers the request.
        let (_, again) = source.snapshot_data(5).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr());

        apply_put(&store, "b", 11);
        let (index, newer) = wait_copy(&source, 11);
        assert_eq!(index, 11);
        // The copy is a backend with both keys; no temporary file is left.
        let copy = dir.path().join("copy");
        std::fs::write(&copy, &newer).unwrap();
        let reopened = Store::open(&copy).unwrap();
        assert_eq!(reopened.consistent_index(), 11);
        assert_eq!(reopened.current_revision(), 3);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
