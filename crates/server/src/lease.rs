//! Leases in the server: applying lease requests, tracking which keys are
//! attached to which lease, restoring both at start, and the leader's loop
//! that turns expiry and checkpoints into raft proposals.
//!
//! The lessor itself (`retcd-lease`) keeps the state; this module connects
//! it to the rest of the member:
//! - **apply** (on the apply thread, in log order): `LeaseGrant`,
//!   `LeaseRevoke` and `LeaseCheckpoint` change the lessor and persist the
//!   lease in the backend's metadata in the same batch; a revoke deletes every
//!   attached key in one txn, so watchers see the deletes at one revision;
//! - **attachments** are derived from each applied entry's events before the
//!   next entry runs: a put attaches its key to its lease (detaching it from
//!   the previous version's lease), a delete detaches it;
//! - **restore**: leases from the metadata, attachments from the `lease`
//!   field of every live key, before raft replays anything;
//! - **the lease loop** (a tokio task) follows leadership — promoting the
//!   lessor when this member becomes leader, demoting it when it stops — and
//!   on the leader proposes a `LeaseRevoke` for each expired lease (at most
//!   [`MAX_REVOKES_PER_SEC`], like etcd, so that a mass expiry does not
//!   starve client writes) and batched `LeaseCheckpoint`s.
//!
//! Invariants:
//! - only the apply thread changes replicated lessor state; keys are never
//!   deleted because of a lease except by an applied `LeaseRevoke`;
//! - a lease's metadata entry is written in the batch that changed it, so
//!   after a crash the backend's leases match its `consistent_index`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use retcd_api::etcdserverpb::{
    DeleteRangeRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseCheckpointResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, RangeRequest,
    RequestOp, TxnRequest, internal_raft_request::Request, request_op,
};
use retcd_api::mvccpb::Event;
use retcd_api::mvccpb::event::EventType;
use retcd_lease::{LEASE_META_PREFIX, Lessor, LessorConfig, NO_LEASE, decode_meta, meta_key};
use retcd_mvcc::{Store, WriteBatch};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics;
use crate::mvcc_metrics::Tally;
use crate::server::{Applied, EtcdServer};

/// The lessor as the apply thread, the services and the lease loop share it.
pub type SharedLessor = Arc<Mutex<Lessor>>;

/// How often the leader checkpoints remaining TTLs. Short enough that a
/// restart or leader change costs a lease at most this much extra life,
/// long enough that checkpoints stay a small share of the log (one entry per
/// [`MAX_CHECKPOINTS_PER_PROPOSAL`] leases per interval).
pub const LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// How long an expired lease waits before its revocation is proposed again,
/// if the first proposal did not remove it (etcd's value).
pub const REVOKE_RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// How often the lease loop looks for expired leases and due checkpoints.
const LEASE_TICK: Duration = Duration::from_millis(100);

/// Most lease revocations proposed per second (etcd's rate).
pub const MAX_REVOKES_PER_SEC: usize = 1000;

/// Most revocations proposed per tick of the lease loop.
const MAX_REVOKES_PER_TICK: usize = MAX_REVOKES_PER_SEC * LEASE_TICK.as_millis() as usize / 1000;

/// Most checkpoints carried by one `LeaseCheckpoint` proposal (etcd's value).
const MAX_CHECKPOINTS_PER_PROPOSAL: usize = 1000;

/// The lessor settings for this member: the minimum TTL is 1.5 election
/// timeouts rounded up to whole seconds, as etcd computes it (in ticks).
pub fn lessor_config(cfg: &Config) -> LessorConfig {
    let heartbeat_ms = cfg.heartbeat_interval.as_millis().max(1);
    let election_ticks = cfg.election_timeout.as_millis() / heartbeat_ms;
    let min_ttl_ms = (3 * election_ticks / 2) * heartbeat_ms;
    LessorConfig {
        min_ttl_secs: min_ttl_ms.div_ceil(1000) as i64,
        checkpoint_interval: LEASE_CHECKPOINT_INTERVAL,
        revoke_retry_interval: REVOKE_RETRY_INTERVAL,
    }
}

/// Builds the lessor from the backend: leases from the metadata, attached
/// keys from the live key space.
pub fn restore(store: &Store, cfg: LessorConfig) -> anyhow::Result<Lessor> {
    let mut lessor = Lessor::new(cfg);
    let mut records = Vec::new();
    for (key, value) in store.meta_scan_prefix(LEASE_META_PREFIX)? {
        let record = decode_meta(&key, &value)
            .ok_or_else(|| anyhow::anyhow!("corrupt lease entry in backend meta: {key:?}"))?;
        records.push(record);
    }
    lessor.restore(records);
    if !lessor.is_empty() {
        let everything = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            keys_only: true,
            ..Default::default()
        };
        for kv in store.range(&everything)?.kvs {
            if kv.lease != NO_LEASE {
                lessor.attach(kv.lease, &kv.key);
            }
        }
    }
    tracing::info!(leases = lessor.len(), "restored leases");
    Ok(lessor)
}

/// Applies a `LeaseGrant`.
pub fn apply_grant(
    batch: &mut WriteBatch<'_>,
    lessor: &mut Lessor,
    req: &LeaseGrantRequest,
) -> Result<Applied> {
    let ttl = lessor.grant(req.id, req.ttl, Instant::now())?;
    persist(batch, lessor, req.id);
    metrics::LEASE_GRANTED.inc();
    metrics::LEASE_TTL.observe(ttl as f64);
    Ok(Applied::LeaseGrant(LeaseGrantResponse {
        header: Some(mvcc_header(batch)),
        id: req.id,
        ttl,
        error: String::new(),
    }))
}

/// Applies a `LeaseRevoke`: deletes the attached keys in one revision, then
/// the lease.
pub fn apply_revoke(
    batch: &mut WriteBatch<'_>,
    lessor: &mut Lessor,
    req: &LeaseRevokeRequest,
) -> Result<Applied> {
    let keys = lessor.keys(req.id).ok_or(retcd_lease::Error::NotFound)?;
    let key_count = keys.len();
    if !keys.is_empty() {
        let deletes = TxnRequest {
            success: keys
                .into_iter()
                .map(|key| RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(
                        DeleteRangeRequest {
                            key,
                            ..Default::default()
                        },
                    )),
                })
                .collect(),
            ..Default::default()
        };
        batch.txn(&deletes, &|_| false)?;
    }
    // The deletes' events detach the keys once the caller tracks them; the
    // lease goes now, so tracking them finds nothing left to detach.
    lessor.remove(req.id);
    batch.meta_delete(&meta_key(req.id));
    Tally::deletes(key_count).record();
    metrics::LEASE_REVOKED.inc();
    Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
        header: Some(mvcc_header(batch)),
    }))
}

/// Applies a `LeaseCheckpoint`: records each lease's remaining TTL; leases
/// gone meanwhile are skipped.
pub fn apply_checkpoint(
    batch: &mut WriteBatch<'_>,
    lessor: &mut Lessor,
    req: &LeaseCheckpointRequest,
) -> Result<Applied> {
    for cp in &req.checkpoints {
        if lessor.checkpoint(cp.id, cp.remaining_ttl) {
            persist(batch, lessor, cp.id);
        }
    }
    Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
        header: Some(mvcc_header(batch)),
    }))
}

/// Moves key attachments as one applied entry's events say. The lease a key
/// had before comes from the lessor itself: a put's event carries no
/// `prev_kv` unless its request asked for one.
pub fn track_attachments(lessor: &mut Lessor, events: &[Event]) {
    for event in events {
        let Some(kv) = &event.kv else { continue };
        let prev_lease = lessor.lease_of(&kv.key).unwrap_or(NO_LEASE);
        let lease = if event.r#type == EventType::Put as i32 {
            kv.lease
        } else {
            NO_LEASE
        };
        if prev_lease != lease {
            if prev_lease != NO_LEASE {
                lessor.detach(prev_lease, &kv.key);
            }
            if lease != NO_LEASE {
                lessor.attach(lease, &kv.key);
            }
        }
    }
}

/// Writes lease `id`'s record into the batch's metadata.
fn persist(batch: &mut WriteBatch<'_>, lessor: &Lessor, id: i64) {
    if let Some(record) = lessor.record(id) {
        batch.meta_put(&meta_key(id), &record.encode());
    }
}

/// A header carrying only the batch's revision; the service completes it.
fn mvcc_header(batch: &WriteBatch<'_>) -> retcd_api::etcdserverpb::ResponseHeader {
    retcd_api::etcdserverpb::ResponseHeader {
        revision: batch.current_revision(),
        ..Default::default()
    }
}

/// Promotes or demotes the lessor to match this member's raft role; returns
/// whether it is primary afterwards.
pub fn sync_role(server: &EtcdServer, now: Instant) -> bool {
    let is_leader = server.raft.status().leader_id == server.member_id;
    let mut lessor = server.lessor.lock();
    if is_leader && !lessor.is_primary() {
        // Clients get an election timeout to find the new leader and renew.
        lessor.promote(server.cfg.election_timeout, now);
        tracing::info!(leases = lessor.len(), "lessor promoted");
    } else if !is_leader && lessor.is_primary() {
        lessor.demote();
        tracing::info!("lessor demoted");
    }
    lessor.is_primary()
}

/// Renews lease `id` on the leader; returns its TTL, and replicates the
/// clearing checkpoint the renew calls for.
pub fn renew(server: &Arc<EtcdServer>, id: i64) -> Result<i64> {
    let now = Instant::now();
    sync_role(server, now);
    let renewed = server.lessor.lock().renew(id, now)?;
    metrics::LEASE_RENEWED.inc();
    if renewed.clear_checkpoint {
        propose_checkpoints(server, vec![(id, 0)]);
    }
    Ok(renewed.ttl_secs)
}

/// Runs the lease loop until `stop` turns true.
pub async fn run_lease_loop(server: Arc<EtcdServer>, mut stop: watch::Receiver<bool>) {
    let mut leader = server.raft.leader_changes();
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = leader.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|&s| s) => return,
        }
        let now = Instant::now();
        if !sync_role(&server, now) {
            continue;
        }
        let (expired, checkpoints) = {
            let mut lessor = server.lessor.lock();
            (
                lessor.expired(now, MAX_REVOKES_PER_TICK),
                lessor.due_checkpoints(now, MAX_CHECKPOINTS_PER_PROPOSAL),
            )
        };
        for id in expired {
            let server = server.clone();
            tokio::spawn(async move {
                let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id });
                match server.propose(revoke).await {
                    Ok(_) => metrics::LEASE_EXPIRED.inc(),
                    Err(Error::Lease(retcd_lease::Error::NotFound)) => {}
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "revoking an expired lease failed; will retry")
                    }
                }
            });
        }
        if !checkpoints.is_empty() {
            propose_checkpoints(&server, checkpoints);
        }
    }
}

/// Proposes one `LeaseCheckpoint` of `(id, remaining TTL)` pairs, in the
/// background; a lost checkpoint only means a longer life after a leader
/// change, so failures are logged and dropped.
fn propose_checkpoints(server: &Arc<EtcdServer>, checkpoints: Vec<(i64, i64)>) {
    let server = server.clone();
    tokio::spawn(async move {
        let request = Request::LeaseCheckpoint(LeaseCheckpointRequest {
            checkpoints: checkpoints
                .into_iter()
                .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                .collect(),
        });
        if let Err(e) = server.propose(request).await {
            tracing::debug!(error = %e, "lease checkpoint not replicated");
        }
    });
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::config::Flags;

    /// The minimum TTL of a member started with `args`.
    fn min_ttl(args: &[&str]) -> i64 {
        let flags = Flags::parse_from(std::iter::once("etcd").chain(args.iter().copied()));
        lessor_config(&Config::from_flags(flags).unwrap()).min_ttl_secs
    }

    #[test]
    fn minimum_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(min_ttl(&[]), 2);
        assert_eq!(min_ttl(&["--election-timeout", "3000"]), 5);
        // 2300 / 400 = 5 ticks; 7 ticks (integer halving, as etcd) = 2.8 s.
        let ticks = ["--heartbeat-interval", "400", "--election-timeout", "2300"];
        assert_eq!(min_ttl(&ticks), 3);
    }

    #[test]
    fn attachments_follow_put_and_delete_events() {
        use retcd_api::mvccpb::KeyValue;
        let mut lessor = Lessor::new(LessorConfig {
            min_ttl_secs: 1,
            checkpoint_interval: Duration::ZERO,
            revoke_retry_interval: REVOKE_RETRY_INTERVAL,
        });
        let now = Instant::now();
        lessor.grant(1, 10, now).unwrap();
        lessor.grant(2, 10, now).unwrap();
        let kv = |key: &str, lease| KeyValue {
            key: key.as_bytes().to_vec(),
            lease,
            ..Default::default()
        };
        // Events as the apply thread makes them: a put's prev_kv is not read
        // unless its request asks, so the lessor must know the old lease.
        let put = |key, lease| Event {
            r#type: EventType::Put as i32,
            kv: Some(kv(key, lease)),
            prev_kv: None,
        };
        let delete = |key| Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv(key, 0)),
            prev_kv: None,
        };
        let keys = |l: &Lessor, id| -> Vec<String> {
            l.keys(id)
                .unwrap()
                .into_iter()
                .map(|k| String::from_utf8(k).unwrap())
                .collect()
        };
        track_attachments(&mut lessor, &[put("a", 1), put("b", 1), put("c", 1)]);
        // Moved to lease 2, kept by an ignore_lease put, deleted.
        track_attachments(&mut lessor, &[put("a", 2), put("b", 1), delete("c")]);
        assert_eq!(keys(&lessor, 1), ["b"]);
        assert_eq!(keys(&lessor, 2), ["a"]);
        assert_eq!(lessor.lease_of(b"a"), Some(2));
        assert_eq!(lessor.lease_of(b"c"), None);
        // A put without a lease detaches.
        track_attachments(&mut lessor, &[put("a", 0)]);
        assert!(keys(&lessor, 2).is_empty());
        assert_eq!(lessor.lease_of(b"a"), None);
        // A revoked lease's keys are attached to nothing.
        assert!(lessor.remove(1));
        assert_eq!(lessor.lease_of(b"b"), None);
        track_attachments(&mut lessor, &[put("b", 2)]);
        assert_eq!(keys(&lessor, 2), ["b"]);
    }
}
