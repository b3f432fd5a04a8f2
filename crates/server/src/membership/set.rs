//! The member list as a value: the changes raft can carry, the checks each
//! change must pass when it is applied, and etcd's quorum-safety checks made
//! before a change is proposed.
//!
//! Validation at apply time runs on every member against the same replicated
//! list, so every member accepts or refuses a change alike; a refused change
//! leaves the list (and raft's configuration) untouched and its proposer gets
//! the error.
//!
//! Invariants:
//! - Member ids are unique and never reused: a removed id stays in `removed`
//!   forever, so it can neither be re-added nor come back.
//! - No two members share a peer URL.
//! - At most [`MAX_LEARNERS`] learners.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tonic::Code;

/// Most learners a cluster may hold (etcd's limit).
pub const MAX_LEARNERS: usize = 1;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub id: u64,
    /// The member's name (`--name`); empty until the member has started and
    /// published it.
    pub name: String,
    /// The member's peer URLs.
    pub peer_urls: Vec<String>,
    /// The member's client URLs (`--advertise-client-urls`), published when it starts.
    #[serde(default)]
    pub client_urls: Vec<String>,
    /// Whether the member is a non-voting learner.
    #[serde(default)]
    pub is_learner: bool,
}

impl Member {
    /// Whether the member has started and published its name (etcd's `IsStarted`).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// The member as the Cluster API describes it.
    pub fn to_proto(&self) -> retcd_api::etcdserverpb::Member {
        retcd_api::etcdserverpb::Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// A change to the member list, as a raft entry carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Add a member (voter or learner); its name and client URLs are empty.
    Add(Member),
    /// Make learner `id` a voter.
    Promote(u64),
    /// Remove member `id`.
    Remove(u64),
    /// Replace member `id`'s peer URLs.
    UpdatePeers {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// Member `id` publishes its name and client URLs.
    Attributes {
        /// The member.
        id: u64,
        /// Its `--name`.
        name: String,
        /// Its `--advertise-client-urls`.
        client_urls: Vec<String>,
    },
}

/// Why a membership change (or a call that depends on membership) is refused;
/// texts and codes are etcd's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// No such member, or it was removed.
    #[error("etcdserver: member not found")]
    NotFound,
    /// The new member's id is taken.
    #[error("etcdserver: member ID already exist")]
    IdExists,
    /// Another member already has one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// The peer URLs do not parse.
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
    /// Promote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// Promote of a learner that lags the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// A second learner.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// The change would leave fewer started voters than a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// This member is not connected to enough voters to change the configuration safely.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// A leader-only call reached a follower.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A leader transfer to a non-member or a learner.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The leader transfer did not finish in time.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// A learner refuses the call.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
}

impl MemberError {
    /// The gRPC code etcd answers with.
    pub fn code(&self) -> Code {
        match self {
            MemberError::NotFound => Code::NotFound,
            MemberError::BadUrls => Code::InvalidArgument,
            MemberError::Unhealthy
            | MemberError::NotLeader
            | MemberError::LeaderTransferTimeout
            | MemberError::NotSupportedForLearner => Code::Unavailable,
            _ => Code::FailedPrecondition,
        }
    }
}

/// The member list and the ids removed from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSet {
    /// Current members by id.
    pub members: BTreeMap<u64, Member>,
    /// Every id ever removed.
    pub removed: BTreeSet<u64>,
}

impl MemberSet {
    /// A set of `members` with nothing removed.
    pub fn new(members: impl IntoIterator<Item = Member>) -> MemberSet {
        MemberSet {
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    /// Every member, sorted by id.
    pub fn list(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// The voting members.
    fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.is_learner)
    }

    /// The ids of the voting members.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.voters().map(|m| m.id).collect()
    }

    /// Whether a peer URL of `urls` belongs to a member other than `except`.
    fn peer_url_taken(&self, urls: &[String], except: Option<u64>) -> bool {
        self.members
            .values()
            .filter(|m| Some(m.id) != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
    }

    /// Checks `change` against the list; the same answer on every member.
    pub fn validate(&self, change: &Change) -> Result<(), MemberError> {
        let existing = |id: u64| {
            if self.removed.contains(&id) {
                return Err(MemberError::NotFound);
            }
            self.members.get(&id).ok_or(MemberError::NotFound)
        };
        match change {
            Change::Add(member) => {
                if self.removed.contains(&member.id) || self.members.contains_key(&member.id) {
                    return Err(MemberError::IdExists);
                }
                if self.peer_url_taken(&member.peer_urls, None) {
                    return Err(MemberError::PeerUrlExists);
                }
                let learners = self.members.values().filter(|m| m.is_learner).count();
                if member.is_learner && learners + 1 > MAX_LEARNERS {
                    return Err(MemberError::TooManyLearners);
                }
            }
            Change::Promote(id) => {
                if !existing(*id)?.is_learner {
                    return Err(MemberError::NotLearner);
                }
            }
            Change::Remove(id) | Change::Attributes { id, .. } => {
                existing(*id)?;
            }
            Change::UpdatePeers { id, peer_urls } => {
                existing(*id)?;
                if self.peer_url_taken(peer_urls, Some(*id)) {
                    return Err(MemberError::PeerUrlExists);
                }
            }
        }
        Ok(())
    }

    /// Applies a validated `change`.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Add(member) => {
                self.members.insert(member.id, member.clone());
            }
            Change::Promote(id) => {
                if let Some(m) = self.members.get_mut(id) {
                    m.is_learner = false;
                }
            }
            Change::Remove(id) => {
                self.members.remove(id);
                self.removed.insert(*id);
            }
            Change::UpdatePeers { id, peer_urls } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.peer_urls = peer_urls.clone();
                }
            }
            Change::Attributes {
                id,
                name,
                client_urls,
            } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.name = name.clone();
                    m.client_urls = client_urls.clone();
                }
            }
        }
    }

    /// Whether adding one more voter keeps a quorum of started voters (etcd's
    /// `IsReadyToAddVotingMember`).
    pub fn ready_to_add_voter(&self) -> bool {
        let members = self.voters().count() + 1;
        let started = self.voters().filter(|m| m.is_started()).count();
        // Growing a one-member cluster (e.g. to restore it elsewhere) is allowed.
        if started == 1 && members == 2 {
            return true;
        }
        is_quorum(started, members)
    }

    /// Whether removing voter `id` keeps a quorum of started voters (etcd's
    /// `IsReadyToRemoveVotingMember`).
    pub fn ready_to_remove_voter(&self, id: u64) -> bool {
        let rest: Vec<&Member> = self.voters().filter(|m| m.id != id).collect();
        let started = rest.iter().filter(|m| m.is_started()).count();
        is_quorum(started, rest.len())
    }

    /// Whether promoting learner `id` keeps a quorum of started voters (etcd's
    /// `IsReadyToPromoteMember`; the learner counts as started).
    pub fn ready_to_promote(&self, id: u64) -> bool {
        let others = self.voters().filter(|m| m.id != id);
        let (members, started) =
            others.fold((1, 1), |(n, s), m| (n + 1, s + usize::from(m.is_started())));
        is_quorum(started, members)
    }
}

/// Whether `count` of `members` is a majority.
fn is_quorum(count: usize, members: usize) -> bool {
    count > members / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, started: bool, learner: bool) -> Member {
        Member {
            id,
            name: if started {
                format!("m{id}")
            } else {
                String::new()
            },
            peer_urls: vec![format!("http://127.0.0.1:{}", 2000 + id)],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn three() -> MemberSet {
        MemberSet::new([1, 2, 3].map(|id| member(id, true, false)))
    }

    #[test]
    fn add_checks_ids_urls_and_learners() {
        let mut set = three();
        assert_eq!(
            set.validate(&Change::Add(member(2, false, false))),
            Err(MemberError::IdExists)
        );
        let mut dup = member(9, false, false);
        dup.peer_urls = vec!["http://127.0.0.1:2001".into()];
        assert_eq!(
            set.validate(&Change::Add(dup)),
            Err(MemberError::PeerUrlExists)
        );
        let learner = Change::Add(member(4, false, true));
        set.validate(&learner).unwrap();
        set.apply(&learner);
        assert_eq!(
            set.validate(&Change::Add(member(5, false, true))),
            Err(MemberError::TooManyLearners)
        );
        set.validate(&Change::Add(member(5, false, false))).unwrap();
    }

    #[test]
    fn removed_ids_never_return() {
        let mut set = three();
        set.apply(&Change::Remove(3));
        assert_eq!(set.validate(&Change::Remove(3)), Err(MemberError::NotFound));
        assert_eq!(
            set.validate(&Change::Add(member(3, false, false))),
            Err(MemberError::IdExists)
        );
        assert_eq!(set.voter_ids(), vec![1, 2]);
    }

    #[test]
    fn promote_only_learners() {
        let mut set = three();
        assert_eq!(
            set.validate(&Change::Promote(1)),
            Err(MemberError::NotLearner)
        );
        assert_eq!(
            set.validate(&Change::Promote(7)),
            Err(MemberError::NotFound)
        );
        set.apply(&Change::Add(member(4, false, true)));
        set.validate(&Change::Promote(4)).unwrap();
        set.apply(&Change::Promote(4));
        assert!(!set.members[&4].is_learner);
    }

    #[test]
    fn update_may_keep_own_urls() {
        let set = three();
        let own = Change::UpdatePeers {
            id: 2,
            peer_urls: vec![
                "http://127.0.0.1:2002".into(),
                "http://127.0.0.2:2002".into(),
            ],
        };
        set.validate(&own).unwrap();
        let taken = Change::UpdatePeers {
            id: 2,
            peer_urls: vec!["http://127.0.0.1:2001".into()],
        };
        assert_eq!(set.validate(&taken), Err(MemberError::PeerUrlExists));
    }

    #[test]
    fn quorum_of_started_members() {
        let mut set = three();
        assert!(set.ready_to_add_voter());
        set.apply(&Change::Add(member(4, false, false)));
        // 4 voters + 1 new = 5, quorum 3, 3 started.
        assert!(set.ready_to_add_voter());
        set.apply(&Change::Add(member(5, false, false)));
        // 6 voters, quorum 4, 3 started.
        assert!(!set.ready_to_add_voter());
        // Without 1: voters 2,3,4,5; quorum 3; started 2.
        assert!(!set.ready_to_remove_voter(1));
        // Without 4 (never started): voters 1,2,3,5; quorum 3; started 3.
        assert!(set.ready_to_remove_voter(4));
        let single = MemberSet::new([member(1, true, false)]);
        assert!(single.ready_to_add_voter());
    }
}
