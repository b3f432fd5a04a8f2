//! Driving the load: connections, clients and the timed request loop.
//!
//! `--conns` gRPC connections (HTTP/2, one TCP connection each) are opened
//! before the clock starts, spread round-robin over the endpoints. `--clients`
//! tasks then share them round-robin: client `c` uses connection
//! `c % conns`, so 100 clients on 10 connections multiplex 10 concurrent
//! streams per connection, as etcd's benchmark does.
//!
//! Each client runs a closed loop: take the next request number from a shared
//! counter, build the request, start the clock, send, wait for the response,
//! stop the clock. The counter hands each number out exactly once, so the run
//! issues exactly `--total` requests and a fast client simply takes more of
//! them. The clients and connections share one thread, so the atomic is
//! never contended. The hot path does no locking beyond that one add, records a
//! latency into a vector sized up front, and allocates only the request
//! message itself; error texts are formatted only when a request fails.
//!
//! The process's CPU time is read when the clock starts and when the last
//! client is done, so the report can give the client's CPU per request.
//!
//! Caveat: the load generator shares the machine's cores with the server when
//! both run locally; it reports what a client on the same box sees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use retcd_api::etcdserverpb::kv_client::KvClient;

use crate::conn::{self, Connection};
use crate::cpu;
use crate::report::Outcome;
use crate::workload::{Rng, Workload};

/// Largest response a client accepts; range benchmarks over many keys can
/// exceed tonic's 4 MiB default, and etcd's own client allows 2 GiB.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Opens `conns` connections, connection `i` to endpoint `i % endpoints.len()`.
pub async fn connect(
    endpoints: &[String],
    conns: usize,
    dial_timeout: Duration,
) -> Result<Vec<Connection>> {
    if endpoints.is_empty() {
        bail!("no endpoints given");
    }
    let mut connections = Vec::with_capacity(conns);
    for i in 0..conns {
        let url = endpoint_url(&endpoints[i % endpoints.len()]);
        let connection = conn::connect(&url, dial_timeout)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        connections.push(connection);
    }
    Ok(connections)
}

/// Runs `total` requests of `workload` from `clients` concurrent clients over
/// `connections`, and collects every latency and error.
pub async fn run(
    connections: Vec<Connection>,
    clients: usize,
    total: u64,
    workload: Workload,
) -> Result<Outcome> {
    if connections.is_empty() || clients == 0 {
        bail!("--conns and --clients must be at least 1");
    }
    let workload = Arc::new(workload);
    let next_request = Arc::new(AtomicU64::new(0));
    let expected_per_client = usize::try_from(total / clients as u64 + 1).unwrap_or(usize::MAX);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);

    let cpu_at_start = cpu::process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let connection = &connections[c % connections.len()];
            let kv = KvClient::with_origin(connection.clone(), connection.origin())
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            let client = Client {
                kv,
                rng: Rng::new(seed ^ (c as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)),
                workload: Arc::clone(&workload),
                next_request: Arc::clone(&next_request),
                total,
                latencies_ns: Vec::with_capacity(expected_per_client.min(total as usize)),
                errors: BTreeMap::new(),
            };
            tokio::spawn(client.run())
        })
        .collect();

    let mut outcome = Outcome::default();
    for task in tasks {
        let client = task.await.context("benchmark client panicked")?;
        outcome.latencies_ns.extend_from_slice(&client.latencies_ns);
        for (error, count) in client.errors {
            *outcome.errors.entry(error).or_default() += count;
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.client_cpu = cpu_at_start
        .zip(cpu::process_cpu())
        .map(|(start, end)| end.saturating_sub(start));
    Ok(outcome)
}

/// One closed-loop client and what it recorded.
struct Client {
    /// The gRPC KV client on this client's connection.
    kv: KvClient<Connection>,
    /// This client's source of random keys.
    rng: Rng,
    /// The shared workload.
    workload: Arc<Workload>,
    /// The next request number to issue, shared by all clients.
    next_request: Arc<AtomicU64>,
    /// Number of requests in the whole run.
    total: u64,
    /// Latency of each of this client's successful requests, in ns.
    latencies_ns: Vec<u64>,
    /// This client's failed requests per error text.
    errors: BTreeMap<String, u64>,
}

impl Client {
    /// Issues requests until the run's total is handed out; returns itself
    /// with its recordings.
    async fn run(mut self) -> Self {
        loop {
            let i = self.next_request.fetch_add(1, Ordering::Relaxed);
            if i >= self.total {
                return self;
            }
            let op = self.workload.op(i, &mut self.rng);
            let sent = Instant::now();
            let result = op.send(&mut self.kv).await;
            let latency_ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
            match result {
                Ok(()) => self.latencies_ns.push(latency_ns),
                Err(status) => {
                    let error = format!("{:?}: {}", status.code(), status.message());
                    *self.errors.entry(error).or_default() += 1;
                }
            }
        }
    }
}

/// `endpoint` with `http://` in front when it names no scheme, as etcdctl
/// accepts bare `host:port`.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::KeySpec;
    use retcd_api::etcdserverpb::kv_server::{Kv, KvServer};
    use retcd_api::etcdserverpb::{
        CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
        PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
    };
    use tonic::transport::server::TcpIncoming;
    use tonic::{Request, Response, Status};

    /// A KV service that counts well-formed puts and fails every txn.
    #[derive(Default)]
    struct CountingKv {
        /// Puts with an 8-byte key and a 16-byte value.
        puts: Arc<AtomicU64>,
    }

    #[tonic::async_trait]
    impl Kv for CountingKv {
        async fn range(&self, _: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
            Ok(Response::new(RangeResponse::default()))
        }
        async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
            let put = request.into_inner();
            if put.key.len() == 8 && put.value.len() == 16 {
                self.puts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Response::new(PutResponse::default()))
        }
        async fn delete_range(
            &self,
            _: Request<DeleteRangeRequest>,
        ) -> Result<Response<DeleteRangeResponse>, Status> {
            Err(Status::unimplemented("delete_range"))
        }
        async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
            Err(Status::unavailable("boom"))
        }
        async fn compact(
            &self,
            _: Request<CompactionRequest>,
        ) -> Result<Response<CompactionResponse>, Status> {
            Err(Status::unimplemented("compact"))
        }
    }

    /// Serves `kv` on a free loopback port until the test's runtime ends;
    /// returns its endpoint.
    fn serve(kv: CountingKv) -> String {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let endpoint = format!("http://{}", incoming.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(kv))
                .serve_with_incoming(incoming),
        );
        endpoint
    }

    #[tokio::test]
    async fn every_request_reaches_the_server_once() {
        let kv = CountingKv::default();
        let puts = Arc::clone(&kv.puts);
        let endpoint = serve(kv);
        let connections = connect(&[endpoint], 3, Duration::from_secs(5))
            .await
            .unwrap();
        let mut rng = Rng::new(1);
        let workload = Workload::put(KeySpec::new(8, 1000, false).unwrap(), 16, &mut rng);
        let outcome = run(connections, 10, 500, workload).await.unwrap();
        assert_eq!(outcome.latencies_ns.len(), 500);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(puts.load(Ordering::Relaxed), 500);
        assert!(outcome.client_cpu.is_some());
    }

    #[tokio::test]
    async fn failed_requests_are_counted_by_status() {
        let endpoint = serve(CountingKv::default());
        let connections = connect(&[endpoint], 1, Duration::from_secs(5))
            .await
            .unwrap();
        let mut rng = Rng::new(2);
        let workload =
            Workload::txn_put(KeySpec::new(8, 10, true).unwrap(), 8, 2, &mut rng).unwrap();
        let outcome = run(connections, 2, 7, workload).await.unwrap();
        assert!(outcome.latencies_ns.is_empty());
        assert_eq!(
            outcome.errors,
            BTreeMap::from([("Unavailable: boom".to_string(), 7)])
        );
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let error = connect(&[format!("127.0.0.1:{port}")], 1, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot connect to http://127.0.0.1:"),
            "{error:#}"
        );
    }

    #[test]
    fn bare_endpoints_get_http() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("https://a:1"), "https://a:1");
    }
}
