//! `watch-latency`: put-to-event latency and delivery rate to many watchers.
//!
//! `--watchers` watchers on one key, spread over `--streams` gRPC streams on
//! `--conns` connections, all created (and their created responses
//! received) before the clock starts. One writer then puts `--total` values
//! to that key, each carrying the send time in nanoseconds since the run's
//! start; every watcher decodes it from each event it receives, so latency
//! is measured from just before the put is sent to the moment the event is
//! decoded on the watcher's stream. Puts go one at a time with
//! `--put-interval-ms` between them, so the latency is that of delivery, not
//! of a write queue.
//!
//! Reported: p50/p99/max latency over all deliveries, and events delivered
//! per second (deliveries over the time from the first put to the last
//! delivery).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use tokio::sync::mpsc;

use crate::conn::Connection;

/// The key every watcher watches.
const WATCH_KEY: &[u8] = b"watch-latency";
/// Largest watch response a stream accepts.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What one run measured.
#[derive(Debug, serde::Serialize)]
pub struct WatchReport {
    /// Watchers.
    pub watchers: usize,
    /// Streams they were spread over.
    pub streams: usize,
    /// Puts made.
    pub puts: u64,
    /// Events delivered (puts times watchers when none is lost).
    pub delivered: u64,
    /// Median put-to-event latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Events delivered per second.
    pub events_per_sec: f64,
}

/// Runs the benchmark over `connections`.
pub async fn run(
    connections: Vec<Connection>,
    watchers: usize,
    streams: usize,
    puts: u64,
    put_interval: Duration,
) -> Result<WatchReport> {
    if watchers == 0 || streams == 0 || puts == 0 {
        bail!("--watchers, --streams and --total must be at least 1");
    }
    let start = Instant::now();
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<Vec<(u64, Instant)>>();
    let mut ready = Vec::new();
    for s in 0..streams {
        let n = watchers / streams + usize::from(s < watchers % streams);
        if n == 0 {
            continue;
        }
        let connection = &connections[s % connections.len()];
        let (req_tx, req_rx) = mpsc::channel::<WatchRequest>(n.max(1));
        for _ in 0..n {
            req_tx
                .send(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                        key: WATCH_KEY.to_vec(),
                        ..Default::default()
                    })),
                })
                .await?;
        }
        let mut client = WatchClient::with_origin(connection.clone(), connection.origin())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut responses = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(req_rx))
            .await
            .context("opening a watch stream")?
            .into_inner();
        let mut created = 0;
        while created < n {
            let resp = responses.message().await?.context("stream ended")?;
            created += usize::from(resp.created);
        }
        let lat_tx = lat_tx.clone();
        ready.push(tokio::spawn(async move {
            let _keep_open = req_tx;
            let mut seen = Vec::new();
            let total = puts as usize * n;
            while seen.len() < total {
                let Ok(Some(resp)) = responses.message().await else {
                    break;
                };
                let now = Instant::now();
                for e in &resp.events {
                    if let Some(kv) = &e.kv
                        && let Ok(bytes) = <[u8; 8]>::try_from(kv.value.as_slice())
                    {
                        seen.push((u64::from_be_bytes(bytes), now));
                    }
                }
            }
            let _ = lat_tx.send(seen);
        }));
    }
    drop(lat_tx);
    let mut kv = KvClient::with_origin(connections[0].clone(), connections[0].origin());
    let first_put = Instant::now();
    for _ in 0..puts {
        let sent = start.elapsed().as_nanos() as u64;
        kv.put(PutRequest {
            key: WATCH_KEY.to_vec(),
            value: sent.to_be_bytes().to_vec(),
            ..Default::default()
        })
        .await?;
        tokio::time::sleep(put_interval).await;
    }
    let mut latencies = Vec::new();
    let mut last = first_put;
    while let Some(seen) = lat_rx.recv().await {
        for (sent, at) in seen {
            let sent_at = start + Duration::from_nanos(sent);
            latencies.push(at.saturating_duration_since(sent_at).as_secs_f64() * 1000.0);
            last = last.max(at);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let secs = last.duration_since(first_put).as_secs_f64().max(1e-9);
    Ok(WatchReport {
        watchers,
        streams,
        puts,
        delivered: latencies.len() as u64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        events_per_sec: latencies.len() as f64 / secs,
    })
}

/// Shares a report as text.
pub fn to_text(r: &WatchReport) -> String {
    format!(
        "watchers {} on {} streams, {} puts: delivered {} events, {:.0} events/s, \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        r.watchers, r.streams, r.puts, r.delivered, r.events_per_sec, r.p50_ms, r.p99_ms, r.max_ms
    )
}
