//! A member's identity and its cluster's membership: how a member learns
//! them when it first starts, and where they are kept.
//!
//! Three ways to a first start:
//! - Bootstrapping a new cluster (`--initial-cluster-state new`) is static:
//!   every member is started with the same `--initial-cluster` and
//!   `--initial-cluster-token`, derives every member id from them (see
//!   `crate::ids`) and therefore the same cluster id, and starts raft with all
//!   members as voters.
//! - Joining (`--initial-cluster-state existing`), after a `MemberAdd` on the
//!   running cluster: the member asks the other members listed in
//!   `--initial-cluster`, over their peer port (`crate::peer::fetch_members`),
//!   for the cluster id and member list, checks that `--initial-cluster`
//!   names exactly those members (etcd's check) and finds its own id by its
//!   peer URLs. Raft then starts with an empty log and the leader brings it up
//!   to date with a snapshot.
//! - Later starts read everything back from the backend; flags no longer
//!   matter.
//!
//! At runtime the list changes only by applying raft entries (see
//! [`RaftCluster`] and `set`): the backend's meta table holds the list as of
//! its consistent index, written in the same batch as the entry.
//!
//! Invariants:
//! - The local member's `--initial-cluster` entry lists exactly its
//!   `--initial-advertise-peer-urls`.
//! - The member id, cluster id and member list are written in one durable
//!   backend batch before raft starts.
//! - A member whose id is in the removed list refuses to start: it was
//!   permanently removed from the cluster.
//!
//! Caveats: a backend written by a single-member build before the member list
//! was recorded gets a list of one member: itself. The member's identity is
//! local state kept in the replicated meta table; [`RaftCluster::reload`]
//! records it again after a snapshot replaced the backend
//! ([`record_local_identity`]).

mod set;
mod shared;

use anyhow::{Context, bail};
use retcd_mvcc::{Store, WriteBatch};

use crate::config::Config;
use crate::ids;

pub use set::{Change, MAX_LEARNERS, Member, MemberError, MemberSet};
pub use shared::{ConfChangeOutcome, RaftCluster, conf_change};

/// Meta key of this member's id in the backend.
const META_MEMBER_ID: &[u8] = b"member_id";
/// Meta key of the cluster id in the backend.
const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// Meta key of the member list (JSON) in the backend.
const META_MEMBERS: &[u8] = b"members";
/// Meta key of the removed member ids (JSON) in the backend.
const META_REMOVED: &[u8] = b"members_removed";
/// Meta key present when this member joined a running cluster.
const META_JOINED: &[u8] = b"member_joined";

/// Who this member is and who else is in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, this one included, and the removed ids.
    pub members: MemberSet,
    /// Whether this member joined a running cluster (as opposed to
    /// bootstrapping it).
    pub joined: bool,
}

impl Membership {
    /// The voters raft bootstraps a fresh log with: none for a member that
    /// joined (the leader's snapshot brings the configuration), even if it
    /// stopped before its log was created.
    pub fn voter_ids(&self) -> Vec<u64> {
        if self.joined {
            Vec::new()
        } else {
            self.members.voter_ids()
        }
    }
}

/// How this start found its membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Read back from the backend.
    Restart,
    /// Bootstrapped a new cluster from `--initial-cluster`.
    Bootstrap,
    /// Joined a running cluster.
    Join,
}

/// Records the member list (members and removed ids) in `batch`.
pub(crate) fn persist(batch: &mut WriteBatch<'_>, set: &MemberSet) -> anyhow::Result<()> {
    batch.meta_put(META_MEMBERS, &serde_json::to_vec(&set.list())?);
    let removed: Vec<u64> = set.removed.iter().copied().collect();
    batch.meta_put(META_REMOVED, &serde_json::to_vec(&removed)?);
    Ok(())
}

/// Records this member's identity in `batch`: its id, its cluster's id and
/// whether it joined. [`RaftCluster::reload`] records it again after a
/// snapshot replaced the backend with the leader's copy, which carries the
/// leader's.
pub fn record_local_identity(batch: &mut WriteBatch<'_>, membership: &Membership) {
    batch.meta_put(META_MEMBER_ID, &membership.member_id.to_be_bytes());
    batch.meta_put(META_CLUSTER_ID, &membership.cluster_id.to_be_bytes());
    if membership.joined {
        batch.meta_put(META_JOINED, &[1]);
    }
}

/// Reads an id recorded under `key`.
fn read_id(store: &Store, key: &[u8]) -> anyhow::Result<Option<u64>> {
    Ok(match store.meta_get(key)? {
        Some(bytes) => Some(u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .context("corrupt id in backend meta")?,
        )),
        None => None,
    })
}

/// Reads the member list recorded in `store` (empty if none is).
pub(crate) fn read_member_set(store: &Store) -> anyhow::Result<MemberSet> {
    let members: Vec<Member> = match store.meta_get(META_MEMBERS)? {
        Some(json) => {
            serde_json::from_slice(&json).context("corrupt member list in backend meta")?
        }
        None => Vec::new(),
    };
    let removed: Vec<u64> = match store.meta_get(META_REMOVED)? {
        Some(json) => {
            serde_json::from_slice(&json).context("corrupt removed member list in backend meta")?
        }
        None => Vec::new(),
    };
    let mut set = MemberSet::new(members);
    set.removed = removed.into_iter().collect();
    Ok(set)
}

/// Returns the membership recorded in the backend, or bootstraps or joins a
/// cluster and records it when the member starts for the first time.
pub async fn load_or_create(cfg: &Config, store: &Store) -> anyhow::Result<(Membership, Start)> {
    if let (Some(member_id), Some(cluster_id)) = (
        read_id(store, META_MEMBER_ID)?,
        read_id(store, META_CLUSTER_ID)?,
    ) {
        let mut members = read_member_set(store)?;
        if members.removed.contains(&member_id) {
            bail!("the member has been permanently removed from the cluster");
        }
        if members.members.is_empty() {
            members = MemberSet::new([Member {
                id: member_id,
                name: cfg.name.clone(),
                peer_urls: cfg.initial_advertise_peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: false,
            }]);
        }
        let membership = Membership {
            member_id,
            cluster_id,
            members,
            joined: store.meta_get(META_JOINED)?.is_some(),
        };
        return Ok((membership, Start::Restart));
    }
    let (membership, start) = match cfg.initial_cluster_state.as_str() {
        "existing" => (join(cfg).await?, Start::Join),
        _ => (bootstrap(cfg)?, Start::Bootstrap),
    };
    let mut batch = store.write()?;
    record_local_identity(&mut batch, &membership);
    persist(&mut batch, &membership.members)?;
    // Durable before raft starts with this identity.
    batch.commit(true)?;
    Ok((membership, start))
}

/// Checks that `--initial-cluster` has this member with exactly its advertised peer URLs.
fn local_entry(cfg: &Config) -> anyhow::Result<&crate::config::InitialMember> {
    let Some(local) = cfg.initial_cluster.iter().find(|m| m.name == cfg.name) else {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        );
    };
    if sorted(&cfg.initial_advertise_peer_urls) != sorted(&local.peer_urls) {
        bail!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            local.name,
            sorted(&local.peer_urls).join(","),
            sorted(&cfg.initial_advertise_peer_urls).join(",")
        );
    }
    Ok(local)
}

/// `urls`, sorted.
fn sorted(urls: &[String]) -> Vec<String> {
    let mut urls = urls.to_vec();
    urls.sort();
    urls
}

/// Derives a new cluster's membership from `--initial-cluster`.
fn bootstrap(cfg: &Config) -> anyhow::Result<Membership> {
    let local = local_entry(cfg)?;
    let mut members: Vec<Member> = cfg
        .initial_cluster
        .iter()
        .map(|m| Member {
            id: ids::member_id(&m.peer_urls, &cfg.initial_cluster_token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    members.sort_by_key(|m| m.id);
    if let Some(pair) = members.windows(2).find(|pair| pair[0].id == pair[1].id) {
        bail!(
            "--initial-cluster: members {:?} and {:?} have the same peer URLs",
            pair[0].name,
            pair[1].name
        );
    }
    let member_id = ids::member_id(&local.peer_urls, &cfg.initial_cluster_token);
    let member_ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    Ok(Membership {
        member_id,
        cluster_id: ids::cluster_id(&member_ids),
        members: MemberSet::new(members),
        joined: false,
    })
}

/// Learns the running cluster's membership from the other members named in
/// `--initial-cluster` and finds this member in it.
async fn join(cfg: &Config) -> anyhow::Result<Membership> {
    let local = local_entry(cfg)?;
    let own_urls = sorted(&local.peer_urls);
    let mut fetched = None;
    let mut errors = Vec::new();
    'peers: for peer in cfg.initial_cluster.iter().filter(|m| m.name != cfg.name) {
        for url in &peer.peer_urls {
            match crate::peer::fetch_members(url).await {
                Ok(answer) => {
                    fetched = Some(answer);
                    break 'peers;
                }
                Err(e) => errors.push(format!("{url}: {e:#}")),
            }
        }
    }
    let Some((cluster_id, existing)) = fetched else {
        bail!(
            "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs ({})",
            errors.join("; ")
        );
    };
    let members = match_initial_cluster(cfg, &existing)?;
    let Some(own) = members.iter().find(|m| sorted(&m.peer_urls) == own_urls) else {
        bail!(
            "member {} has not been added to the cluster: add it with `etcdctl member add` first",
            own_urls.join(",")
        );
    };
    Ok(Membership {
        member_id: own.id,
        cluster_id,
        members: MemberSet::new(members),
        joined: true,
    })
}

/// etcd's check of a joining member's `--initial-cluster` against the
/// running cluster: the same number of members, and every running member's
/// peer URLs listed. Returns the running cluster's members.
fn match_initial_cluster(cfg: &Config, existing: &[Member]) -> anyhow::Result<Vec<Member>> {
    let listed: Vec<Vec<String>> = cfg
        .initial_cluster
        .iter()
        .map(|m| sorted(&m.peer_urls))
        .collect();
    let context = || {
        let spec: Vec<String> = cfg
            .initial_cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_urls.join(",")))
            .collect();
        format!("error validating peerURLs {{{}}}", spec.join(","))
    };
    if listed.len() != existing.len() {
        bail!("{}: member count is unequal", context());
    }
    for member in existing {
        if !listed.contains(&sorted(&member.peer_urls)) {
            bail!(
                "{}: PeerURLs: no match found for existing member ({:x}, {:?})",
                context(),
                member.id,
                member.peer_urls
            );
        }
    }
    Ok(existing.to_vec())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Flags;

    /// The configuration of a member started with `args`.
    fn config(args: &[&str]) -> Config {
        Config::from_flags(Flags::parse_from(
            std::iter::once("etcd").chain(args.iter().copied()),
        ))
        .unwrap()
    }

    /// The configuration of member `name` of a three-member cluster.
    fn member_config(name: &str) -> Config {
        let port = 2380 + u16::from(name.as_bytes()[0] - b'a');
        config(&[
            "--name",
            name,
            "--initial-cluster",
            "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,c=http://127.0.0.1:2382",
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{port}"),
            "--initial-cluster-token",
            "token",
        ])
    }

    #[test]
    fn every_member_derives_the_same_cluster() {
        let all: Vec<Membership> = ["a", "b", "c"]
            .iter()
            .map(|n| bootstrap(&member_config(n)).unwrap())
            .collect();
        for m in &all {
            assert_eq!(m.cluster_id, all[0].cluster_id);
            assert_eq!(m.members, all[0].members);
            assert_eq!(m.voter_ids().len(), 3);
            assert!(m.voter_ids().contains(&m.member_id));
        }
        let own: std::collections::HashSet<u64> = all.iter().map(|m| m.member_id).collect();
        assert_eq!(own.len(), 3);
    }

    #[test]
    fn advertised_urls_must_match_the_local_entry() {
        let mut cfg = member_config("a");
        cfg.initial_advertise_peer_urls = vec!["http://127.0.0.1:9999".into()];
        assert!(bootstrap(&cfg).is_err());
    }

    #[test]
    fn a_joining_member_must_list_exactly_the_running_members() {
        let running = bootstrap(&member_config("a")).unwrap().members.list();
        let cfg = member_config("a");
        assert_eq!(match_initial_cluster(&cfg, &running).unwrap(), running);
        let mut fewer = running.clone();
        fewer.pop();
        let err = match_initial_cluster(&cfg, &fewer).unwrap_err().to_string();
        assert!(err.ends_with("member count is unequal"), "{err}");
        let mut moved = running;
        moved[0].peer_urls = vec!["http://127.0.0.1:9999".into()];
        let err = match_initial_cluster(&cfg, &moved).unwrap_err().to_string();
        assert!(
            err.contains("PeerURLs: no match found for existing member"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_membership_survives_a_restart_without_flags() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (first, start) = load_or_create(&member_config("b"), &store).await.unwrap();
        assert_eq!(start, Start::Bootstrap);
        let bare = config(&["--name", "b"]);
        assert_eq!(
            load_or_create(&bare, &store).await.unwrap(),
            (first, Start::Restart)
        );
    }

    #[tokio::test]
    async fn a_removed_member_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (mut membership, _) = load_or_create(&member_config("b"), &store).await.unwrap();
        membership
            .members
            .apply(&Change::Remove(membership.member_id));
        let mut batch = store.write().unwrap();
        persist(&mut batch, &membership.members).unwrap();
        batch.commit(true).unwrap();
        let err = load_or_create(&member_config("b"), &store)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the member has been permanently removed from the cluster"
        );
    }
}
