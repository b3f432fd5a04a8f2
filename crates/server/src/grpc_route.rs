//! The client port's front service: sends each request either straight to
//! the tonic service it names or to the axum router (gateway, `/health`,
//! `/metrics`, `/version`, the fallback).
//!
//! Every gRPC request pays for this on top of its own work, so the common
//! path does only what it must: one string split to find the service, one
//! atomic load to see whether this member is a learner, the generated tonic
//! server's own (boxed) future, and one header lookup on the response to
//! rewrite tonic's oversized-message error (`crate::grpc_compat`). No axum
//! routing, middleware or body boxing stands between hyper and tonic.
//!
//! Invariants:
//! - A path goes to tonic exactly when axum routed it there before this
//!   service existed: `/<registered service>/<non-empty rest>`, whatever the
//!   method or content type. Everything else reaches the axum router
//!   untouched, so gRPC calls of unregistered services still get the
//!   gateway fallback's `unknown service` answer.
//! - Every response of a registered gRPC service passes through
//!   `grpc_compat::rewrite_errors`; on a learner every such call passes
//!   through `learner_guard::serve_as_learner` first.
//! - Responses carry `tonic::body::Body`: gRPC responses unchanged, gateway
//!   responses wrapped once (the gateway path is the costlier one anyway).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::HttpBody;
use axum::http::{Request, Response};
use axum::routing::future::RouteFuture;
use retcd_api::etcdserverpb::cluster_server::{self, ClusterServer};
use retcd_api::etcdserverpb::kv_server::{self, KvServer};
use retcd_api::etcdserverpb::lease_server::{self, LeaseServer};
use retcd_api::etcdserverpb::maintenance_server::{self, MaintenanceServer};
use retcd_api::etcdserverpb::watch_server::{self, WatchServer};
use retcd_api::v3electionpb::election_server::{self, ElectionServer};
use retcd_api::v3lockpb::lock_server::{self, LockServer};
use tonic::codegen::{BoxFuture, Service};

use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::membership::RaftCluster;
use crate::{grpc_compat, learner_guard};

/// A response on the client port.
type ClientResponse = Response<tonic::body::Body>;

/// The gRPC services registered on the client port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GrpcService {
    /// `etcdserverpb.KV`.
    Kv,
    /// `etcdserverpb.Watch`.
    Watch,
    /// `etcdserverpb.Lease`.
    Lease,
    /// `etcdserverpb.Cluster`.
    Cluster,
    /// `etcdserverpb.Maintenance`.
    Maintenance,
    /// `v3lockpb.Lock`.
    Lock,
    /// `v3electionpb.Election`.
    Election,
}

impl GrpcService {
    /// The registered service a request path `/<service>/<method>` calls, if any.
    fn of_path(path: &str) -> Option<GrpcService> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        if method.is_empty() {
            return None;
        }
        match service {
            kv_server::SERVICE_NAME => Some(GrpcService::Kv),
            watch_server::SERVICE_NAME => Some(GrpcService::Watch),
            lease_server::SERVICE_NAME => Some(GrpcService::Lease),
            cluster_server::SERVICE_NAME => Some(GrpcService::Cluster),
            maintenance_server::SERVICE_NAME => Some(GrpcService::Maintenance),
            lock_server::SERVICE_NAME => Some(GrpcService::Lock),
            election_server::SERVICE_NAME => Some(GrpcService::Election),
            _ => None,
        }
    }
}

/// The generated tonic servers, configured, and what the learner check reads.
pub struct GrpcServices {
    /// The KV service.
    pub kv: KvServer<KvService>,
    /// The Watch service.
    pub watch: WatchServer<WatchService>,
    /// The Lease service.
    pub lease: LeaseServer<LeaseService>,
    /// The Cluster service.
    pub cluster: ClusterServer<ClusterService>,
    /// The Maintenance service.
    pub maintenance: MaintenanceServer<MaintenanceService>,
    /// The Lock service.
    pub lock: LockServer<LockService>,
    /// The Election service.
    pub election: ElectionServer<ElectionService>,
    /// The member list, which knows whether this member is a learner.
    pub membership: Arc<RaftCluster>,
}

impl GrpcServices {
    /// Hands `request` to `service`'s generated server.
    fn call<B>(
        &self,
        service: GrpcService,
        request: Request<B>,
    ) -> BoxFuture<ClientResponse, Infallible>
    where
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError> + Send + 'static,
    {
        match service {
            GrpcService::Kv => self.kv.clone().call(request),
            GrpcService::Watch => self.watch.clone().call(request),
            GrpcService::Lease => self.lease.clone().call(request),
            GrpcService::Cluster => self.cluster.clone().call(request),
            GrpcService::Maintenance => self.maintenance.clone().call(request),
            GrpcService::Lock => self.lock.clone().call(request),
            GrpcService::Election => self.election.clone().call(request),
        }
    }
}

/// The tower service hyper runs for every request on the client port.
///
/// hyper clones it for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct ClientService {
    /// What every request may be handed to.
    routes: Arc<ClientRoutes>,
}

/// What a [`ClientService`] hands requests to.
struct ClientRoutes {
    /// Where gRPC calls of registered services go.
    grpc: Arc<GrpcServices>,
    /// Where everything else goes.
    http: axum::Router,
}

impl ClientService {
    /// Serves `grpc`'s services directly and everything else through `http`.
    pub fn new(grpc: GrpcServices, http: axum::Router) -> ClientService {
        ClientService {
            routes: Arc::new(ClientRoutes {
                grpc: Arc::new(grpc),
                http,
            }),
        }
    }
}

impl<B> Service<Request<B>> for ClientService
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Send + 'static,
{
    type Response = ClientResponse;
    type Error = Infallible;
    type Future = ClientFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Neither the generated servers nor axum's router ever apply backpressure.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ClientFuture {
        let grpc = &self.routes.grpc;
        let Some(service) = GrpcService::of_path(request.uri().path()) else {
            let mut http = self.routes.http.clone();
            if !grpc.membership.is_local_learner() {
                return ClientFuture::Http(Box::pin(http.call(request)));
            }
            return ClientFuture::Learner(Box::pin(async move {
                let response =
                    learner_guard::serve_gateway_as_learner(request, |request| async move {
                        match http.call(request).await {
                            Ok(response) => response.map(tonic::body::Body::new),
                            Err(never) => match never {},
                        }
                    })
                    .await;
                Ok(response)
            }));
        };
        if !grpc.membership.is_local_learner() {
            return ClientFuture::Grpc(grpc.call(service, request));
        }
        let grpc = grpc.clone();
        ClientFuture::Grpc(Box::pin(async move {
            let response = learner_guard::serve_as_learner(request, |request| async move {
                match grpc.call(service, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
            .await;
            Ok(response)
        }))
    }
}

/// The future of one request on the client port.
pub enum ClientFuture {
    /// A call of a registered gRPC service.
    Grpc(BoxFuture<ClientResponse, Infallible>),
    /// Anything the axum router serves (boxed: axum's future is several
    /// times the size of the gRPC variant, which every gRPC call would carry).
    Http(Pin<Box<RouteFuture<Infallible>>>),
    /// A gateway request on a learner, through `learner_guard`.
    Learner(BoxFuture<ClientResponse, Infallible>),
}

impl Future for ClientFuture {
    type Output = Result<ClientResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ClientFuture::Grpc(call) => call.as_mut().poll(cx).map_ok(grpc_compat::rewrite_errors),
            ClientFuture::Http(route) => route
                .as_mut()
                .poll(cx)
                .map_ok(|response| response.map(tonic::body::Body::new)),
            ClientFuture::Learner(call) => call.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_registered_services_only() {
        let cases = [
            ("/etcdserverpb.KV/Put", Some(GrpcService::Kv)),
            ("/etcdserverpb.KV/Range/extra", Some(GrpcService::Kv)),
            ("/etcdserverpb.Watch/Watch", Some(GrpcService::Watch)),
            ("/etcdserverpb.Lease/LeaseGrant", Some(GrpcService::Lease)),
            (
                "/etcdserverpb.Cluster/MemberList",
                Some(GrpcService::Cluster),
            ),
            (
                "/etcdserverpb.Maintenance/Status",
                Some(GrpcService::Maintenance),
            ),
            // axum's `/<service>/{*rest}` needs a non-empty rest.
            ("/etcdserverpb.KV/", None),
            ("/etcdserverpb.KV", None),
            ("/etcdserverpb.KVX/Put", None),
            ("/etcdserverpb.Auth/AuthStatus", None),
            ("/v3lockpb.Lock/Lock", Some(GrpcService::Lock)),
            (
                "/v3electionpb.Election/Observe",
                Some(GrpcService::Election),
            ),
            ("/v3lockpb.Locks/Lock", None),
            ("/v3/kv/put", None),
            ("/health", None),
            ("/", None),
            ("", None),
        ];
        for (path, service) in cases {
            assert_eq!(GrpcService::of_path(path), service, "{path}");
        }
    }
}
