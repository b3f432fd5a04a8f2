//! The client listener: one TCP port serving gRPC (HTTP/2 with prior
//! knowledge) and the HTTP/1.1 gateway side by side, as etcd's client port does.
//!
//! hyper's defaults would cap a connection at 200 concurrent HTTP/2 streams;
//! etcd allows `u32::MAX`, and clients that open one watch stream per watcher
//! (thousands on one connection) depend on it, so the cap is lifted here.
//! Every connection reads through [`AuthorityFix`], which repairs the
//! `http://host:port` authorities older grpc-go clients send, and writes
//! through [`Coalesce`], which lets responses ready together share a write.
//! Every request passes through [`GrpcMetricsService`], which counts gRPC
//! calls for `/metrics`.
//! Shutdown stops accepting, asks every connection to finish gracefully, and
//! leaves the caller to bound how long that may take.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::grpc_metrics::GrpcMetricsService;
use crate::grpc_route::ClientService;
use crate::h2_authority::AuthorityFix;
use crate::write_coalesce::Coalesce;

/// Most concurrent HTTP/2 streams per connection (etcd's default).
const MAX_CONCURRENT_STREAMS: u32 = u32::MAX;
/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Serves `app` on `listener` until `stop` turns true, then drains connections.
pub async fn serve(listener: TcpListener, app: ClientService, mut stop: watch::Receiver<bool>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let graceful = GracefulShutdown::new();
    let stopped = async move {
        let _ = stop.wait_for(|&s| s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a client connection failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let service = TowerToHyperService::new(GrpcMetricsService::new(app.clone()));
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(AuthorityFix::new(Coalesce::new(tcp))), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                });
            }
            () = &mut stopped => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
