//! The Maintenance service: Status, HashKV, Hash, Alarm and Defragment.
//!
//! Alarm ACTIVATE and DEACTIVATE go through raft and answer what applying
//! them reports (`crate::alarm`); GET reads the applied alarms after a
//! linearizable read barrier, where etcd puts a raft entry in the log.
//! Status lists the active alarms in `errors` as etcd does.
//!
//! Caveats:
//! - Defragment is local to the member, as in etcd: it rewrites this
//!   member's backend file without its free pages (`Store::defragment`);
//!   reads and writes go on, but for a pause of a few milliseconds at the
//!   end.
//! - Hash is the same CRC-32C as HashKV at the current revision: etcd hashes
//!   its whole bolt file, whose layout no other implementation shares, so the
//!   value is only comparable between retcd members anyway.
//! - MoveLeader waits for the transfer (`crate::api::cluster::move_leader`).
//! - Snapshot streams a copy of the backend (`crate::snapshot::download`):
//!   a redb file, not a bolt one, so only retcd can restore it.
//! - Downgrade is UNIMPLEMENTED.

use std::sync::Arc;

use retcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, StatusRequest, StatusResponse,
    alarm_request::AlarmAction, internal_raft_request, maintenance_server::Maintenance,
};
use tonic::{Request, Response, Status};

use crate::config::ETCD_VERSION;
use crate::error::Error;
use crate::metrics;
use crate::server::{Applied, EtcdServer};

/// Serves etcd's Maintenance API from the server core.
#[derive(Clone)]
pub struct MaintenanceService {
    /// The server core.
    pub server: Arc<EtcdServer>,
}

impl MaintenanceService {
    /// Hashes the store at `revision` (0: current) off the async runtime:
    /// it reads every row.
    async fn hash_kv_at(&self, revision: i64) -> Result<(u32, i64, i64), Status> {
        let store = self.server.store.clone();
        let hashed = tokio::task::spawn_blocking(move || store.hash_kv(revision))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(hashed.map_err(Error::from)?)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let req = req.into_inner();
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => {
                self.server.linearizable_read_barrier().await?;
                self.server.alarms.list(req.alarm)
            }
            Ok(AlarmAction::Activate | AlarmAction::Deactivate) => {
                match self
                    .server
                    .propose(internal_raft_request::Request::Alarm(req))
                    .await?
                {
                    Applied::Alarm(alarms) => alarms,
                    other => {
                        panic!("apply returned a response of another request kind: {other:?}")
                    }
                }
            }
            // etcd applies an unknown action as a no-op.
            Err(_) => Vec::new(),
        };
        // etcd answers alarm requests without a header (clients print `{}`).
        Ok(Response::new(AlarmResponse {
            header: None,
            alarms,
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let store = &self.server.store;
        let raft = self.server.raft.status();
        let mut errors = Vec::new();
        if raft.leader_id == 0 {
            errors.push(Error::NoLeader.to_string());
        }
        errors.extend(
            self.server
                .alarms
                .list(AlarmType::None as i32)
                .iter()
                .map(crate::alarm::status_text),
        );
        Ok(Response::new(StatusResponse {
            header: Some(self.server.header(store.current_revision())),
            version: ETCD_VERSION.to_string(),
            db_size: i64::try_from(store.db_size_bytes()).unwrap_or(i64::MAX),
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: self.server.applied_index(),
            errors,
            db_size_in_use: i64::try_from(store.db_size_in_use_bytes()).unwrap_or(i64::MAX),
            is_learner: raft.is_learner,
        }))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let store = self.server.store.clone();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || store.defragment())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Error::from)?;
        let took = started.elapsed();
        metrics::DEFRAG_SECONDS.observe(took.as_secs_f64());
        tracing::info!(
            ?took,
            db_size_bytes = self.server.store.db_size_bytes(),
            "finished defragmenting the backend"
        );
        Ok(Response::new(DefragmentResponse {
            header: Some(self.server.header(self.server.store.current_revision())),
        }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (hash, _, revision) = self.hash_kv_at(0).await?;
        Ok(Response::new(HashResponse {
            header: Some(self.server.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let (hash, compact_revision, hash_revision) =
            self.hash_kv_at(req.into_inner().revision).await?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(self.server.store.current_revision())),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = tokio_stream::wrappers::ReceiverStream<crate::snapshot::DownloadItem>;

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let server = self.server.clone();
        let rx =
            crate::snapshot::download(server.store.clone(), move |rev| server.header(rev)).await?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let timeout = crate::api::cluster::grpc_timeout(req.metadata())
            .unwrap_or_else(|| crate::server::request_timeout(&self.server.cfg));
        let target = req.into_inner().target_id;
        crate::api::cluster::move_leader(&self.server, target, timeout).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.server.header(self.server.store.current_revision())),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: cluster downgrade is not supported yet",
        ))
    }
}
