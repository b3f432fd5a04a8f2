//! [`RaftCluster`]: the live member list every part of a running member
//! shares, changed only by the apply thread as it applies raft entries.
//!
//! How a change travels: the Cluster API builds a [`Change`], wraps it with
//! its request id (a conf change carries both as JSON in its context, like
//! etcd's member-in-context; member-update and attribute changes are normal
//! entries, because raft has no "update node" conf change), and proposes it.
//! The apply thread hands each committed one to [`RaftCluster::apply_conf_change`]
//! or [`RaftCluster::apply_request`], which validate it against the list,
//! update the list in memory and in the apply batch (so the backend holds the
//! list as of its consistent index), and update the peer transport's peer
//! set; the applier then applies the conf change to raft and wakes the
//! proposer with the resulting list.
//!
//! Invariants:
//! - The list in memory equals the backend's list as of the last applied
//!   entry (after a snapshot is installed, [`RaftCluster::reload`] re-reads it).
//! - The peer transport has a connection for exactly the members other than
//!   this one.
//! - A refused change touches neither the list nor raft's configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use retcd_api::etcdserverpb::internal_raft_request::Request;
use retcd_mvcc::{Store, WriteBatch};
use retcd_raft::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use serde::{Deserialize, Serialize};

use super::set::{Change, Member, MemberError, MemberSet};
use super::{Membership, persist, read_member_set, record_local_identity};
use crate::peer::{PeerAddress, PeerTransport};

/// What a conf-change entry's context carries.
#[derive(Debug, Serialize, Deserialize)]
struct ConfChangeContext {
    /// The proposer's request id, to wake it with the result.
    request_id: u64,
    /// The membership change.
    change: Change,
}

/// Builds the conf change that carries `change` for proposer `request_id`.
/// Only additions, promotions and removals are conf changes.
pub fn conf_change(request_id: u64, change: &Change) -> ConfChangeV2 {
    let (change_type, node_id) = match change {
        Change::Add(m) if m.is_learner => (ConfChangeType::AddLearnerNode, m.id),
        Change::Add(m) => (ConfChangeType::AddNode, m.id),
        Change::Promote(id) => (ConfChangeType::AddNode, *id),
        Change::Remove(id) => (ConfChangeType::RemoveNode, *id),
        Change::UpdatePeers { .. } | Change::Attributes { .. } => {
            panic!("{change:?} travels as a normal entry, not a conf change")
        }
    };
    let mut single = ConfChangeSingle::default();
    single.set_change_type(change_type);
    single.node_id = node_id;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(single);
    let context = ConfChangeContext {
        request_id,
        change: change.clone(),
    };
    cc.context = serde_json::to_vec(&context)
        .expect("a membership change serializes")
        .into();
    cc
}

/// The outcome of applying one conf-change entry.
#[derive(Debug)]
pub struct ConfChangeOutcome {
    /// The proposer to wake, if the entry named one.
    pub request_id: Option<u64>,
    /// The member list after the change, or why it was refused.
    pub result: Result<Vec<Member>, MemberError>,
    /// Whether the applier must apply the conf change to raft (false when refused).
    pub apply_to_raft: bool,
}

/// The live membership of a running member.
pub struct RaftCluster {
    /// This member's id.
    member_id: u64,
    /// The cluster's id.
    cluster_id: u64,
    /// Whether this member joined a running cluster.
    joined: bool,
    /// The member list.
    state: RwLock<MemberSet>,
    /// Whether this member is currently a learner (read on every client call).
    local_learner: AtomicBool,
    /// The peer transport whose peer set follows the list.
    transport: Arc<PeerTransport>,
}

impl RaftCluster {
    /// The live state of `membership`; syncs `transport` to its members.
    pub fn new(membership: Membership, transport: Arc<PeerTransport>) -> Arc<RaftCluster> {
        let cluster = Arc::new(RaftCluster {
            member_id: membership.member_id,
            cluster_id: membership.cluster_id,
            joined: membership.joined,
            state: RwLock::new(membership.members),
            local_learner: AtomicBool::new(false),
            transport,
        });
        cluster.after_change();
        cluster
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Every member, sorted by id.
    pub fn members(&self) -> Vec<Member> {
        self.state.read().list()
    }

    /// A copy of the whole list (members and removed ids).
    pub fn member_set(&self) -> MemberSet {
        self.state.read().clone()
    }

    /// Member `id`, if it is one.
    pub fn member(&self, id: u64) -> Option<Member> {
        self.state.read().members.get(&id).cloned()
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.state.read().removed.contains(&id)
    }

    /// Whether this member is a learner.
    pub fn is_local_learner(&self) -> bool {
        self.local_learner.load(Ordering::Acquire)
    }

    /// The peer transport.
    pub fn transport(&self) -> &Arc<PeerTransport> {
        &self.transport
    }

    /// Re-reads the member list from `store` after a snapshot from the leader
    /// replaced the backend, and records this member's own id again (the
    /// leader's copy carries the leader's).
    pub fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let set = read_member_set(store)?;
        let mut batch = store.write()?;
        let identity = Membership {
            member_id: self.member_id,
            cluster_id: self.cluster_id,
            members: set.clone(),
            joined: self.joined,
        };
        record_local_identity(&mut batch, &identity);
        batch.commit(true)?;
        tracing::info!(
            members = set.members.len(),
            "reloaded the member list from the backend"
        );
        *self.state.write() = set;
        self.after_change();
        Ok(())
    }

    /// Applies a committed conf-change entry's membership change inside `batch`.
    /// Entries without a readable context (none are proposed so) change raft only.
    pub fn apply_conf_change(
        &self,
        batch: &mut WriteBatch<'_>,
        cc: &ConfChangeV2,
    ) -> ConfChangeOutcome {
        let context: ConfChangeContext = match serde_json::from_slice(&cc.context) {
            Ok(context) => context,
            Err(e) => {
                tracing::warn!(error = %e, "conf change without a membership context; applying it to raft only");
                return ConfChangeOutcome {
                    request_id: None,
                    result: Ok(self.members()),
                    apply_to_raft: true,
                };
            }
        };
        let result = self.commit(batch, &context.change);
        ConfChangeOutcome {
            request_id: Some(context.request_id),
            apply_to_raft: result.is_ok(),
            result,
        }
    }

    /// Applies a membership request carried by a normal entry; `None` when
    /// `request` is not one.
    pub fn apply_request(
        &self,
        batch: &mut WriteBatch<'_>,
        request: &Request,
    ) -> Option<Result<Vec<Member>, MemberError>> {
        let change = match request {
            Request::MemberAttrSet(req) => Change::Attributes {
                id: req.member_id,
                name: req.name.clone(),
                client_urls: req.client_urls.clone(),
            },
            Request::MemberPeerUpdate(req) => Change::UpdatePeers {
                id: req.member_id,
                peer_urls: req.peer_urls.clone(),
            },
            _ => return None,
        };
        Some(self.commit(batch, &change))
    }

    /// Validates and applies `change`, records the list in `batch`, and
    /// returns the new list.
    fn commit(
        &self,
        batch: &mut WriteBatch<'_>,
        change: &Change,
    ) -> Result<Vec<Member>, MemberError> {
        let list = {
            let mut state = self.state.write();
            if let Err(e) = state.validate(change) {
                tracing::warn!(?change, error = %e, "membership change refused");
                return Err(e);
            }
            state.apply(change);
            persist(batch, &state).expect("a member list serializes");
            state.list()
        };
        tracing::info!(?change, "membership changed");
        self.after_change();
        Ok(list)
    }

    /// Brings the derived state (learner flag, peer set, removal notice) in
    /// line with the list.
    fn after_change(&self) {
        let state = self.state.read();
        let local = state.members.get(&self.member_id);
        self.local_learner
            .store(local.is_some_and(|m| m.is_learner), Ordering::Release);
        let peers: Vec<PeerAddress> = state
            .members
            .values()
            .filter(|m| m.id != self.member_id)
            .map(|m| PeerAddress {
                id: m.id,
                peer_urls: m.peer_urls.clone(),
            })
            .collect();
        let removed = state.removed.contains(&self.member_id);
        drop(state);
        self.transport.sync_peers(&peers);
        if removed {
            self.transport.mark_removed();
        }
    }
}
