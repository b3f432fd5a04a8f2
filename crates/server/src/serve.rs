//! Starting and stopping a member: open the store, fix the member's identity,
//! start raft and the applier, serve clients, and shut down in order.
//!
//! Shutdown order matters: stop accepting clients, stop raft (no more
//! committed entries), let the applier drain and make the backend durable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use retcd_api::etcdserverpb::kv_server::KvServer;
use retcd_api::etcdserverpb::lease_server::LeaseServer;
use retcd_api::etcdserverpb::watch_server::WatchServer;
use retcd_mvcc::Store;
use retcd_mvcc::watch::{WatchHub, WatchLimits};
use retcd_raft::{NoPeers, NodeConfig, SnapshotSource};
use tokio::sync::watch;

use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::watch::WatchService;
use crate::apply::Applier;
use crate::config::{Config, GRPC_OVERHEAD_BYTES, listen_addrs};
use crate::server::{EtcdServer, Waiters};
use crate::{gateway, gateway_watch, grpc_compat, ids, lease, listener, metrics};

/// Meta key of this member's id in the backend.
const META_MEMBER_ID: &[u8] = b"member_id";
/// Meta key of the cluster id in the backend.
const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// How long in-flight client connections may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Raft's largest append message, in bytes (etcd's default).
const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// Raft's most in-flight append messages per follower.
const MAX_INFLIGHT_MSGS: usize = 512;

/// Snapshot data of a single member: raft never sends it anywhere, so it is empty.
struct NoSnapshots;

impl SnapshotSource for NoSnapshots {
    fn snapshot_data(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// Runs a member until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    metrics::register_all();
    let member_dir = cfg.data_dir.join("member");
    std::fs::create_dir_all(member_dir.join("snap"))
        .with_context(|| format!("creating {}", member_dir.display()))?;
    let store = Arc::new(Store::open(&member_dir.join("snap").join("db"))?);
    let (member_id, cluster_id) = identity(&cfg, &store)?;
    tracing::info!(
        name = %cfg.name,
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{cluster_id:x}"),
        data_dir = %cfg.data_dir.display(),
        "starting member"
    );

    let ticks = |d: Duration| (d.as_millis() / cfg.heartbeat_interval.as_millis()).max(1) as usize;
    let (raft, entries) = retcd_raft::start(
        NodeConfig {
            id: member_id,
            voters: vec![member_id],
            dir: member_dir.join("wal"),
            tick_interval: cfg.heartbeat_interval,
            election_tick: ticks(cfg.election_timeout),
            heartbeat_tick: 1,
            applied: store.consistent_index(),
            snapshot_count: cfg.snapshot_count,
            max_size_per_msg: MAX_SIZE_PER_MSG,
            max_inflight_msgs: MAX_INFLIGHT_MSGS,
            pre_vote: true,
            check_quorum: true,
        },
        Arc::new(NoPeers),
        Arc::new(NoSnapshots),
    )?;
    // Leases must be restored before raft replays entries onto them.
    let lessor = Arc::new(parking_lot::Mutex::new(lease::restore(
        &store,
        lease::lessor_config(&cfg),
    )?));
    let (applied_tx, applied_rx) = watch::channel(store.consistent_index());
    let waiters = Arc::new(Waiters::default());
    // The hub starts at the store's revision, before the applier commits more.
    let (watch_hub, watch_publisher, watch_dispatcher) =
        WatchHub::new(store.clone(), WatchLimits::default());
    watch_dispatcher
        .spawn()
        .context("starting the watch dispatcher")?;
    let applier = Applier {
        store: store.clone(),
        raft: raft.clone(),
        waiters: waiters.clone(),
        applied: applied_tx,
        runtime: tokio::runtime::Handle::current(),
        watch: watch_publisher,
        lessor: lessor.clone(),
    }
    .spawn(entries);
    let server = Arc::new(EtcdServer::new(
        cfg.clone(),
        member_id,
        cluster_id,
        store,
        raft.clone(),
        waiters,
        lessor,
        applied_rx,
    ));

    let app = client_router(server.clone(), watch_hub);
    let (stop_tx, stop_rx) = watch::channel(false);
    let lease_loop = tokio::spawn(lease::run_lease_loop(server.clone(), stop_rx.clone()));
    let mut listeners = Vec::new();
    for url in &cfg.listen_client_urls {
        for addr in listen_addrs(url)? {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for client requests on {addr}"))?;
            tracing::info!(address = %addr, "serving insecure client requests, this is strongly discouraged!");
            listeners.push(tokio::spawn(listener::serve(
                listener,
                app.clone(),
                stop_rx.clone(),
            )));
        }
    }

    let mut leader = raft.leader_changes();
    tokio::select! {
        _ = leader.wait_for(|&l| l != 0) => {
            tracing::info!("ready to serve client requests");
        }
        () = tokio::time::sleep(cfg.election_timeout * 10) => {
            tracing::warn!("no leader elected yet; serving anyway");
        }
    }

    shutdown.await;
    tracing::info!("received shutdown signal; stopping");
    let _ = stop_tx.send(true);
    for task in listeners {
        let abort = task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
    let _ = lease_loop.await;
    let stopping = raft.clone();
    tokio::task::spawn_blocking(move || stopping.shutdown()).await?;
    drop(server);
    tokio::task::spawn_blocking(move || applier.join())
        .await?
        .map_err(|_| anyhow::anyhow!("apply thread panicked"))?;
    tracing::info!("stopped");
    Ok(())
}

/// gRPC services and the gateway on one router; gRPC paths fall through to
/// tonic's UNIMPLEMENTED answer for services not registered yet.
fn client_router(server: Arc<EtcdServer>, watch_hub: WatchHub) -> axum::Router {
    let max_decode = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(KvService {
        server: server.clone(),
    })
    .max_decoding_message_size(max_decode)
    .max_encoding_message_size(usize::MAX);
    let lease = LeaseServer::new(LeaseService {
        server: server.clone(),
    })
    .max_decoding_message_size(max_decode);
    let watch = WatchService {
        server: server.clone(),
        hub: watch_hub,
    };
    let watch_gateway = gateway_watch::router(watch.clone(), gateway::PREFIXES);
    let watch = WatchServer::new(watch)
        .max_decoding_message_size(max_decode)
        .max_encoding_message_size(usize::MAX);
    let grpc = tonic::service::Routes::new(kv)
        .add_service(lease)
        .add_service(watch)
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::map_response(grpc_compat::rewrite_errors));
    grpc.merge(gateway::router(server))
        .merge(watch_gateway)
        .fallback(gateway::fallback)
}

/// Returns this member's and its cluster's ids: from the backend when the
/// member has run before, else derived from the configuration and recorded.
fn identity(cfg: &Config, store: &Store) -> anyhow::Result<(u64, u64)> {
    let read = |key: &[u8]| -> anyhow::Result<Option<u64>> {
        Ok(match store.meta_get(key)? {
            Some(bytes) => Some(u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .context("corrupt id in backend meta")?,
            )),
            None => None,
        })
    };
    if let (Some(member), Some(cluster)) = (read(META_MEMBER_ID)?, read(META_CLUSTER_ID)?) {
        return Ok((member, cluster));
    }
    if cfg.initial_cluster_state != "new" {
        bail!(
            "--initial-cluster-state=existing: joining a cluster arrives with multi-member support"
        );
    }
    let Some(local) = cfg.initial_cluster.iter().find(|m| m.name == cfg.name) else {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        );
    };
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = local.peer_urls.clone();
    advertised.sort();
    listed.sort();
    if advertised != listed {
        bail!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            local.name,
            listed.join(","),
            advertised.join(",")
        );
    }
    if cfg.initial_cluster.len() > 1 {
        bail!(
            "multi-member clusters are not supported yet: --initial-cluster must list only this member"
        );
    }
    let member = ids::member_id(&local.peer_urls, &cfg.initial_cluster_token);
    let cluster = ids::cluster_id(&[member]);
    let mut batch = store.write()?;
    batch.meta_put(META_MEMBER_ID, &member.to_be_bytes());
    batch.meta_put(META_CLUSTER_ID, &cluster.to_be_bytes());
    batch.commit(true)?;
    Ok((member, cluster))
}
