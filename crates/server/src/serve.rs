//! Starting and stopping a member: open the store, fix the member's identity,
//! start raft and the applier, serve clients, and shut down in order.
//!
//! Shutdown order matters: stop accepting clients, stop raft (no more
//! committed entries), let the applier drain and make the backend durable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use retcd_api::etcdserverpb::cluster_server::ClusterServer;
use retcd_api::etcdserverpb::kv_server::KvServer;
use retcd_api::etcdserverpb::lease_server::LeaseServer;
use retcd_api::etcdserverpb::maintenance_server::MaintenanceServer;
use retcd_api::etcdserverpb::watch_server::WatchServer;
use retcd_api::v3electionpb::election_server::ElectionServer;
use retcd_api::v3lockpb::lock_server::LockServer;
use retcd_mvcc::Store;
use retcd_mvcc::watch::{WatchHub, WatchLimits};
use retcd_raft::NodeConfig;
use tokio::sync::watch;

use crate::api::cluster::ClusterService;
use crate::api::concurrency::ConcurrencyClient;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::apply::Applier;
use crate::config::{Config, GRPC_OVERHEAD_BYTES, listen_addrs};
use crate::grpc_route::{ClientService, GrpcServices};
use crate::peer::PeerTransport;
use crate::server::{EtcdServer, Waiters};
use crate::snapshot::BackendSnapshots;
use crate::{gateway, gateway_watch, lease, listener, membership, metrics, peer};

/// How long in-flight client connections may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Raft's largest append message, in bytes (etcd's default).
const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// Raft's most in-flight append messages per follower.
const MAX_INFLIGHT_MSGS: usize = 512;
/// Heartbeats a member removed from the cluster keeps running before it stops.
const REMOVED_STOP_DELAY_HEARTBEATS: u32 = 10;

/// Runs a member until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    metrics::register_all();
    let member_dir = cfg.data_dir.join("member");
    std::fs::create_dir_all(member_dir.join("snap"))
        .with_context(|| format!("creating {}", member_dir.display()))?;
    let store = Arc::new(Store::open(&member_dir.join("snap").join("db"))?);
    // Bind the peer port first, so a taken port fails the start before a
    // joining member records its identity.
    let bound = peer::bind(&cfg.listen_peer_urls).await;
    let (membership, start) = membership::load_or_create(&cfg, &store).await?;
    let (member_id, cluster_id) = (membership.member_id, membership.cluster_id);
    metrics::describe_member(member_id, cfg.quota_backend_bytes);
    tracing::info!(
        name = %cfg.name,
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{cluster_id:x}"),
        members = membership.members.members.len(),
        start = ?start,
        data_dir = %cfg.data_dir.display(),
        "starting member"
    );
    // A lone member that cannot bind the peer port still serves, but cannot grow.
    let peer_listeners = match bound {
        Ok(listeners) => listeners,
        Err(e) if membership.members.members.len() == 1 => {
            tracing::warn!(error = %format!("{e:#}"), "not listening for peers; members cannot be added");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let transport = Arc::new(PeerTransport::start(
        cluster_id,
        member_id,
        cfg.heartbeat_interval,
        &[],
        &tokio::runtime::Handle::current(),
    ));
    // Joining: an empty log that the leader's snapshot fills.
    let voters = membership.voter_ids();
    let cluster = membership::RaftCluster::new(membership, transport.clone());

    let ticks = |d: Duration| (d.as_millis() / cfg.heartbeat_interval.as_millis()).max(1) as usize;
    let (raft, entries) = retcd_raft::start(
        NodeConfig {
            id: member_id,
            voters,
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
        transport.clone(),
        Arc::new(BackendSnapshots::new(store.clone())),
    )?;
    transport.attach(raft.clone());
    let peer_servers: Vec<_> = peer_listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(peer::serve(
                l,
                cluster_id,
                member_id,
                raft.clone(),
                cluster.clone(),
            ))
        })
        .collect();
    // Leases must be restored before raft replays entries onto them.
    let lessor = Arc::new(parking_lot::Mutex::new(lease::restore(
        &store,
        lease::lessor_config(&cfg),
    )?));
    let alarms = Arc::new(crate::alarm::AlarmStore::load(&store)?);
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
        lessor_config: lease::lessor_config(&cfg),
        cluster: cluster.clone(),
        alarms: alarms.clone(),
    }
    .spawn(entries);
    let server = Arc::new(EtcdServer::new(
        cfg.clone(),
        member_id,
        cluster_id,
        cluster.clone(),
        store,
        raft.clone(),
        waiters,
        lessor,
        alarms,
        applied_rx,
    ));

    let app = client_router(server.clone(), watch_hub);
    let (stop_tx, stop_rx) = watch::channel(false);
    let lease_loop = tokio::spawn(lease::run_lease_loop(server.clone(), stop_rx.clone()));
    let mut bound_client = Vec::new();
    for url in &cfg.listen_client_urls {
        for addr in listen_addrs(url)? {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for client requests on {addr}"))?;
            bound_client.push((addr, listener));
        }
    }

    let mut publisher = tokio::spawn(crate::api::cluster::publish_attributes(server.clone()));
    let mut leader = raft.leader_changes();
    let ready = async {
        let _ = leader.wait_for(|&l| l != 0).await;
        // etcd serves once this member's name and client URLs are in the list.
        let _ = (&mut publisher).await;
    };
    let mut removed = transport.removed_from_cluster();
    tokio::select! {
        () = ready => {
            tracing::info!("ready to serve client requests");
        }
        () = tokio::time::sleep(cfg.election_timeout * 10) => {
            tracing::warn!("no leader elected yet; serving anyway");
        }
        _ = removed.wait_for(|&r| r) => {}
    }
    // Clients are served from here on (like etcd, once this member's
    // attributes are published); until then their connections wait.
    let mut listeners = Vec::new();
    for (addr, listener) in bound_client {
        tracing::info!(address = %addr, "serving insecure client requests, this is strongly discouraged!");
        listeners.push(tokio::spawn(listener::serve(
            listener,
            app.clone(),
            stop_rx.clone(),
        )));
    }

    tokio::select! {
        () = shutdown => {
            tracing::info!("received shutdown signal; stopping");
        }
        _ = removed.wait_for(|&r| r) => {
            tracing::warn!("the member has been permanently removed from the cluster; stopping");
            // Let the removal's commit reach the others first (etcd waits ten heartbeats).
            tokio::time::sleep(cfg.heartbeat_interval * REMOVED_STOP_DELAY_HEARTBEATS).await;
        }
    }
    publisher.abort();
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
    for task in peer_servers {
        task.abort();
    }
    drop(server);
    tokio::task::spawn_blocking(move || applier.join())
        .await?
        .map_err(|_| anyhow::anyhow!("apply thread panicked"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The client port's service: etcd's gRPC services served directly by tonic,
/// everything else (gateway, health, metrics, version) by one axum router
/// whose fallback answers gRPC calls of services not registered yet.
fn client_router(server: Arc<EtcdServer>, watch_hub: WatchHub) -> ClientService {
    let max_decode = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(KvService {
        server: server.clone(),
    })
    .max_decoding_message_size(max_decode)
    .max_encoding_message_size(usize::MAX);
    let lease =
        LeaseServer::new(LeaseService::new(server.clone())).max_decoding_message_size(max_decode);
    let cluster = ClusterServer::new(ClusterService {
        server: server.clone(),
    });
    let maintenance = MaintenanceServer::new(MaintenanceService {
        server: server.clone(),
    });
    let watch = WatchService {
        server: server.clone(),
        hub: watch_hub,
    };
    let concurrency = ConcurrencyClient {
        kv: KvService {
            server: server.clone(),
        },
        lease: LeaseService::new(server.clone()),
        watch: watch.clone(),
    };
    let lock = LockServer::new(LockService {
        client: concurrency.clone(),
    })
    .max_decoding_message_size(max_decode);
    let election = ElectionServer::new(ElectionService {
        client: concurrency,
    })
    .max_decoding_message_size(max_decode);
    let watch_gateway = gateway_watch::router(watch.clone(), gateway::PREFIXES);
    let watch_hub = watch.hub.clone();
    let watch = WatchServer::new(watch)
        .max_decoding_message_size(max_decode)
        .max_encoding_message_size(usize::MAX);
    let grpc = GrpcServices {
        kv,
        watch,
        lease,
        cluster,
        maintenance,
        lock,
        election,
        membership: server.cluster.clone(),
    };
    let routes = gateway::router(server, watch_hub)
        .merge(watch_gateway)
        .method_not_allowed_fallback(gateway::method_not_allowed)
        .fallback(gateway::fallback);
    // Around the whole router rather than each route, so a preflight is
    // answered before axum's method routing sees it.
    let http = axum::Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(gateway::access_control));
    ClientService::new(grpc, http)
}
