//! Lease-expiry burst benchmark (not a test): grants many leases that expire
//! in the same second, each with one attached key, while one writer puts
//! continuously, and reports the writer's worst latency during the burst.
//!
//! Usage: `lease_burst <endpoint> [leases] [ttl_secs]` (defaults 10000, 10).
//! `scripts/bench-leases.sh` runs it against real etcd and retcd.
//!
//! Phases: grant every lease (many in flight, so the grants take well under
//! a second of TTL spread) and attach its key; keep writing; when the TTL
//! passes, every lease expires within about the grant span, and the server
//! revokes them (deleting the keys). The burst window runs from the first
//! expiry until the lease list is empty. Prints one JSON object.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, PutOptions};

/// Grants and attaching puts in flight at once.
const SETUP_CONCURRENCY: usize = 200;
/// How long after the last expiry the revocations may take before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between checks of the lease count while draining.
const DRAIN_POLL: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let leases: usize = args.get(2).map_or(Ok(10_000), |s| s.parse())?;
    let ttl_secs: i64 = args.get(3).map_or(Ok(10), |s| s.parse())?;
    let client = Client::connect([endpoint.as_str()], None).await?;

    // The writer: one put at a time, every latency kept with its start time.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut client = client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples: Vec<(Instant, Duration)> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                client
                    .put(format!("writer/{}", i % 1000), "v", None)
                    .await?;
                samples.push((start, start.elapsed()));
                i += 1;
            }
            anyhow::Ok(samples)
        })
    };

    let grant_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = leases.div_ceil(SETUP_CONCURRENCY);
    for t in 0..SETUP_CONCURRENCY {
        let mut client = client.clone();
        let range = (t * per_task)..((t + 1) * per_task).min(leases);
        tasks.spawn(async move {
            for n in range {
                let id = client.lease_grant(ttl_secs, None).await?.id();
                let lease = Some(PutOptions::new().with_lease(id));
                client.put(format!("leased/{n}"), "v", lease).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let grant_end = Instant::now();
    let first_expiry = grant_start + Duration::from_secs(ttl_secs as u64);
    tokio::time::sleep_until(first_expiry.into()).await;

    let mut lister = client.clone();
    let drained = loop {
        let left = lister.leases().await?.leases().len();
        if left == 0 {
            break Instant::now();
        }
        if first_expiry.elapsed() > DRAIN_TIMEOUT {
            anyhow::bail!("{left} leases still not revoked after {DRAIN_TIMEOUT:?}");
        }
        tokio::time::sleep(DRAIN_POLL).await;
    };
    stop.store(true, Ordering::Relaxed);
    let samples = writer.await??;

    let latency_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let in_window = |from: Instant, to: Instant| -> Vec<Duration> {
        samples
            .iter()
            .filter(|(start, lat)| *start + *lat >= from && *start <= to)
            .map(|(_, lat)| *lat)
            .collect()
    };
    let burst = in_window(first_expiry, drained);
    let quiet = in_window(grant_end, first_expiry);
    let max = |v: &[Duration]| v.iter().max().copied().map_or(0.0, latency_ms);
    let p99 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) * 99 / 100)
            .copied()
            .map_or(0.0, latency_ms)
    };
    println!(
        "{}",
        serde_json::json!({
            "endpoint": endpoint,
            "leases": leases,
            "ttl_secs": ttl_secs,
            "grant_and_attach_secs": (grant_end - grant_start).as_secs_f64(),
            "revoke_all_secs_after_first_expiry": (drained - first_expiry).as_secs_f64(),
            "burst_puts": burst.len(),
            "burst_put_max_ms": max(&burst),
            "burst_put_p99_ms": p99(&burst),
            "quiet_puts": quiet.len(),
            "quiet_put_max_ms": max(&quiet),
            "quiet_put_p99_ms": p99(&quiet),
        })
    );
    Ok(())
}
