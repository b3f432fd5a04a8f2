//! retcd's lessor: etcd's `lease` package.
//!
//! A lease is a time-to-live (in whole seconds) that keys can be attached to;
//! when it expires or is revoked, every attached key is deleted. The lessor
//! holds every lease of the member, the keys attached to each, and — on the
//! leader only — when each lease expires.
//!
//! Two kinds of state, kept apart on purpose:
//! - **replicated** state, changed only by the apply thread in log order and
//!   therefore identical on every member: which leases exist, their granted
//!   TTL, their checkpointed remaining TTL, and their attached keys
//!   ([`Lessor::grant`], [`Lessor::remove`], [`Lessor::checkpoint`],
//!   [`Lessor::attach`], [`Lessor::detach`]);
//! - **leader-local** state, never replicated: the expiry instant of each
//!   lease, the queue ordering leases by expiry, and the checkpoint schedule.
//!   Only the leader (the *primary* lessor) has expiries; it renews leases
//!   ([`Lessor::renew`]), finds expired ones ([`Lessor::expired`]) and due
//!   checkpoints ([`Lessor::due_checkpoints`]), and the server turns those
//!   into raft proposals (`LeaseRevoke`, `LeaseCheckpoint`). A lease is never
//!   deleted locally: expiry is a proposal like any other write.
//!
//! Time is an argument (`now: Instant`) of every call that needs it, never
//! read inside, so the lessor is deterministic and tests drive it with a
//! fake clock.
//!
//! Invariants:
//! - a primary lessor has an expiry for every lease and exactly one queue
//!   entry per lease; a non-primary lessor has neither;
//! - a granted TTL is at least the configured minimum and at most
//!   [`MAX_LEASE_TTL_SECS`];
//! - a lease's attached keys are exactly the live keys whose `lease` field
//!   names it (the apply thread derives attachments from each entry's
//!   events).
//!
//! Checkpoints (etcd's optional feature, on by default here): every
//! checkpoint interval the leader replicates each lease's remaining TTL, so
//! a new leader — or this member after a restart — continues from the
//! checkpointed remaining TTL instead of granting the full TTL again. A renew
//! clears a lease's checkpoint (replicated as a checkpoint of 0), because a
//! stale remaining TTL would make a renewed lease expire early after a leader
//! change.
//!
//! Known caveats:
//! - after a leader change a lease lives up to one checkpoint interval (plus
//!   the promotion grace period) longer than it would have;
//! - unlike etcd, promotion does not spread out the expiries of many leases
//!   that expire at the same moment; the server's revoke rate limit does.

mod lessor;
mod record;

#[cfg(test)]
mod script_test;

pub use lessor::{Lessor, LessorConfig, Renewed, TimeToLive};
pub use record::{LEASE_META_PREFIX, LeaseRecord, decode_meta, meta_key};

/// The longest TTL a lease may be granted, in seconds (etcd's limit).
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// The lease id that means "no lease".
pub const NO_LEASE: i64 = 0;

/// Result alias of the lease crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What a lease operation can fail with; texts are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No lease with that id (or it has expired and awaits revocation).
    #[error("etcdserver: requested lease not found")]
    NotFound,
    /// A grant named an id already in use.
    #[error("etcdserver: lease already exists")]
    Exists,
    /// A grant asked for more than [`MAX_LEASE_TTL_SECS`].
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
    /// A leader-only operation on a member that is not the leader.
    #[error("etcdserver: not primary")]
    NotPrimary,
}
