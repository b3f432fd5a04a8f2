//! The lessor: every lease of a member, its attached keys, and on the leader
//! its expiry queue and checkpoint schedule. See the crate docs for the
//! split between replicated and leader-local state.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::record::LeaseRecord;
use crate::{Error, MAX_LEASE_TTL_SECS, Result};

/// How the lessor behaves; identical on every member of a cluster (the
/// minimum TTL changes what a grant replicates).
#[derive(Debug, Clone, Copy)]
pub struct LessorConfig {
    /// Shortest TTL granted, in seconds; shorter requests are raised to it.
    pub min_ttl_secs: i64,
    /// How often the leader checkpoints a lease's remaining TTL; leases whose
    /// TTL is not longer than this are never checkpointed.
    pub checkpoint_interval: Duration,
    /// How long after handing out an expired lease for revocation it is
    /// handed out again if still not revoked (the proposal may have failed).
    pub revoke_retry_interval: Duration,
}

/// One lease.
#[derive(Debug)]
struct Lease {
    /// Granted TTL, in seconds.
    ttl_secs: i64,
    /// Checkpointed remaining TTL, in seconds (0: none, use `ttl_secs`).
    remaining_ttl_secs: i64,
    /// Keys attached to the lease.
    keys: BTreeSet<Vec<u8>>,
    /// Leader only: when the lease expires.
    expiry: Option<Instant>,
    /// Leader only: this lease's entry in the expiry queue (its expiry, or a
    /// retry time once handed out for revocation).
    queued: Option<Instant>,
    /// Leader only: this lease's entry in the checkpoint schedule.
    checkpoint_at: Option<Instant>,
    /// Leader only: a checkpoint was issued since the last renew, so the next
    /// renew must clear it even if it has not been applied yet.
    checkpoint_issued: bool,
}

impl Lease {
    /// The TTL to count down from when (re)starting the clock: the
    /// checkpointed remaining TTL if there is one, else the granted TTL.
    fn effective_ttl_secs(&self) -> i64 {
        if self.remaining_ttl_secs > 0 {
            self.remaining_ttl_secs
        } else {
            self.ttl_secs
        }
    }
}

/// What a successful renew reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's granted TTL, which the keep-alive answers.
    pub ttl_secs: i64,
    /// Whether the caller must replicate a checkpoint of 0 for the lease,
    /// clearing a remaining TTL that the renew made stale.
    pub clear_checkpoint: bool,
}

/// What a time-to-live query reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// Remaining seconds, truncated (etcd's rounding); on a member that is
    /// not the leader, the checkpointed remaining TTL or the granted TTL.
    pub ttl_secs: i64,
    /// The granted TTL, in seconds.
    pub granted_ttl_secs: i64,
    /// The attached keys, sorted.
    pub keys: Vec<Vec<u8>>,
}

/// Every lease of a member.
#[derive(Debug)]
pub struct Lessor {
    /// Behaviour settings.
    cfg: LessorConfig,
    /// Leases by id.
    leases: HashMap<i64, Lease>,
    /// The lease each attached key belongs to (the inverse of `Lease::keys`).
    attached: HashMap<Vec<u8>, i64>,
    /// Whether this member is the leader's lessor (has expiries).
    primary: bool,
    /// Leader only: `(queued instant, id)` of every lease, earliest first.
    expiry_queue: BTreeSet<(Instant, i64)>,
    /// Leader only: `(checkpoint instant, id)` of leases to checkpoint.
    checkpoints: BTreeSet<(Instant, i64)>,
}

impl Lessor {
    /// An empty, non-primary lessor.
    pub fn new(cfg: LessorConfig) -> Lessor {
        Lessor {
            cfg,
            leases: HashMap::new(),
            attached: HashMap::new(),
            primary: false,
            expiry_queue: BTreeSet::new(),
            checkpoints: BTreeSet::new(),
        }
    }

    /// Adds leases loaded from the backend at start; the lessor must not be
    /// primary yet.
    pub fn restore(&mut self, records: impl IntoIterator<Item = LeaseRecord>) {
        assert!(!self.primary, "leases are restored before promotion");
        for r in records {
            self.leases.insert(
                r.id,
                Lease {
                    ttl_secs: r.ttl_secs,
                    remaining_ttl_secs: r.remaining_ttl_secs,
                    keys: BTreeSet::new(),
                    expiry: None,
                    queued: None,
                    checkpoint_at: None,
                    checkpoint_issued: false,
                },
            );
        }
    }

    /// Whether lease `id` exists.
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// How many leases exist.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no lease exists.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Whether this lessor is the leader's.
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The persisted form of lease `id`.
    pub fn record(&self, id: i64) -> Option<LeaseRecord> {
        self.leases.get(&id).map(|l| LeaseRecord {
            id,
            ttl_secs: l.ttl_secs,
            remaining_ttl_secs: l.remaining_ttl_secs,
        })
    }

    /// Replicated: creates lease `id` with `ttl_secs` (raised to the
    /// minimum); returns the TTL granted. On the leader its clock starts now.
    pub fn grant(&mut self, id: i64, ttl_secs: i64, now: Instant) -> Result<i64> {
        if ttl_secs > MAX_LEASE_TTL_SECS {
            return Err(Error::TtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(Error::Exists);
        }
        let ttl_secs = ttl_secs.max(self.cfg.min_ttl_secs);
        self.leases.insert(
            id,
            Lease {
                ttl_secs,
                remaining_ttl_secs: 0,
                keys: BTreeSet::new(),
                expiry: None,
                queued: None,
                checkpoint_at: None,
                checkpoint_issued: false,
            },
        );
        if self.primary {
            self.start_clock(id, now, Duration::ZERO);
        }
        Ok(ttl_secs)
    }

    /// The keys attached to lease `id`, sorted: what revoking it deletes.
    pub fn keys(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
    }

    /// Replicated: removes lease `id` (its keys must have been deleted by the
    /// caller); false if it did not exist.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        for key in &lease.keys {
            self.attached.remove(key);
        }
        if let Some(at) = lease.queued {
            self.expiry_queue.remove(&(at, id));
        }
        if let Some(at) = lease.checkpoint_at {
            self.checkpoints.remove(&(at, id));
        }
        true
    }

    /// Replicated: records lease `id`'s remaining TTL (0 clears it); false if
    /// the lease does not exist. The leader's own expiry is left alone: it
    /// is the source of the value.
    pub fn checkpoint(&mut self, id: i64, remaining_ttl_secs: i64) -> bool {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                lease.remaining_ttl_secs = remaining_ttl_secs.max(0);
                true
            }
            None => false,
        }
    }

    /// Replicated: attaches `key` to lease `id` (ignored if the lease is gone).
    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
            if let Some(old) = self.attached.insert(key.to_vec(), id)
                && old != id
                && let Some(old_lease) = self.leases.get_mut(&old)
            {
                old_lease.keys.remove(key);
            }
        }
    }

    /// Replicated: detaches `key` from lease `id` (ignored if either is gone).
    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
            if self.attached.get(key) == Some(&id) {
                self.attached.remove(key);
            }
        }
    }

    /// The lease `key` is attached to, if any.
    pub fn lease_of(&self, key: &[u8]) -> Option<i64> {
        if self.attached.is_empty() {
            return None;
        }
        self.attached.get(key).copied()
    }

    /// Makes this lessor the leader's: every lease's clock starts now, from
    /// its checkpointed remaining TTL (else its TTL), plus `extend` so that
    /// clients have time to find the new leader.
    pub fn promote(&mut self, extend: Duration, now: Instant) {
        if self.primary {
            return;
        }
        self.primary = true;
        let ids: Vec<i64> = self.leases.keys().copied().collect();
        for id in ids {
            self.start_clock(id, now, extend);
        }
    }

    /// Stops being the leader's lessor: forgets every expiry and schedule.
    pub fn demote(&mut self) {
        self.primary = false;
        self.expiry_queue.clear();
        self.checkpoints.clear();
        for lease in self.leases.values_mut() {
            lease.expiry = None;
            lease.queued = None;
            lease.checkpoint_at = None;
            lease.checkpoint_issued = false;
        }
    }

    /// Leader only: restarts lease `id`'s clock at its full TTL.
    pub fn renew(&mut self, id: i64, now: Instant) -> Result<Renewed> {
        if !self.primary {
            return Err(Error::NotPrimary);
        }
        let lease = self.leases.get_mut(&id).ok_or(Error::NotFound)?;
        if lease.expiry.is_some_and(|e| e <= now) {
            // Expired: its revocation is on the way, as etcd answers.
            return Err(Error::NotFound);
        }
        let clear_checkpoint = lease.remaining_ttl_secs > 0 || lease.checkpoint_issued;
        lease.checkpoint_issued = false;
        // The renew restarts from the full TTL, whatever was checkpointed.
        let ttl_secs = lease.ttl_secs;
        self.set_expiry(id, now + secs(ttl_secs));
        self.schedule_checkpoint(id, now, ttl_secs);
        Ok(Renewed {
            ttl_secs,
            clear_checkpoint,
        })
    }

    /// Leader only: up to `limit` leases that have expired by `now`, earliest
    /// first. Each is handed out again after the revoke retry interval if it
    /// still exists then.
    pub fn expired(&mut self, now: Instant, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(at, id)) = self.expiry_queue.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.expiry_queue.remove(&(at, id));
            let retry = now + self.cfg.revoke_retry_interval;
            let lease = self.leases.get_mut(&id).expect("queued lease exists");
            lease.queued = Some(retry);
            self.expiry_queue.insert((retry, id));
            out.push(id);
        }
        out
    }

    /// Leader only: up to `limit` `(id, remaining TTL seconds)` checkpoints
    /// due by `now`; each lease is rescheduled one interval later.
    pub fn due_checkpoints(&mut self, now: Instant, limit: usize) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(at, id)) = self.checkpoints.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.checkpoints.remove(&(at, id));
            let lease = self.leases.get_mut(&id).expect("scheduled lease exists");
            lease.checkpoint_at = None;
            let Some(expiry) = lease.expiry else {
                continue;
            };
            let remaining = ceil_secs(expiry.saturating_duration_since(now));
            if remaining <= 0 || remaining >= lease.ttl_secs {
                continue;
            }
            lease.checkpoint_issued = true;
            out.push((id, remaining));
            self.schedule_checkpoint(id, now, remaining);
        }
        out
    }

    /// Lease `id`'s remaining and granted TTL, and its keys.
    pub fn time_to_live(&self, id: i64, now: Instant) -> Option<TimeToLive> {
        let lease = self.leases.get(&id)?;
        let ttl_secs = match lease.expiry {
            Some(expiry) if expiry >= now => expiry.duration_since(now).as_secs() as i64,
            // Expired, revocation pending: negative, truncated toward zero.
            Some(expiry) => -(now.duration_since(expiry).as_secs() as i64),
            None => lease.effective_ttl_secs(),
        };
        Some(TimeToLive {
            ttl_secs,
            granted_ttl_secs: lease.ttl_secs,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    /// Every lease id, soonest expiry first (ties and non-leaders by id).
    pub fn leases(&self) -> Vec<i64> {
        let mut ids: Vec<(Option<Instant>, i64)> =
            self.leases.iter().map(|(&id, l)| (l.expiry, id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Starts lease `id`'s clock at `now` plus its effective TTL plus `extend`.
    fn start_clock(&mut self, id: i64, now: Instant, extend: Duration) {
        let ttl = self.leases[&id].effective_ttl_secs();
        self.set_expiry(id, now + extend + secs(ttl));
        self.schedule_checkpoint(id, now, ttl);
    }

    /// Sets lease `id`'s expiry and its queue entry.
    fn set_expiry(&mut self, id: i64, expiry: Instant) {
        let lease = self.leases.get_mut(&id).expect("lease exists");
        if let Some(at) = lease.queued.replace(expiry) {
            self.expiry_queue.remove(&(at, id));
        }
        lease.expiry = Some(expiry);
        self.expiry_queue.insert((expiry, id));
    }

    /// Schedules lease `id`'s next checkpoint one interval from `now` if its
    /// clock has more than an interval to run (`remaining_secs`).
    fn schedule_checkpoint(&mut self, id: i64, now: Instant, remaining_secs: i64) {
        let interval = self.cfg.checkpoint_interval;
        let lease = self.leases.get_mut(&id).expect("lease exists");
        if let Some(at) = lease.checkpoint_at.take() {
            self.checkpoints.remove(&(at, id));
        }
        if interval.is_zero() || secs(remaining_secs) <= interval {
            return;
        }
        let at = now + interval;
        lease.checkpoint_at = Some(at);
        self.checkpoints.insert((at, id));
    }
}

/// A whole number of seconds as a duration (negative counts as zero).
fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// A duration in seconds, rounded up.
fn ceil_secs(d: Duration) -> i64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)) as i64
}
