//! A member's identity and its cluster's membership: fixed at the first start
//! from `--initial-cluster`, then read back from the backend.
//!
//! Bootstrapping a new cluster (`--initial-cluster-state new`) is static:
//! every member is started with the same `--initial-cluster` and
//! `--initial-cluster-token`, derives every member id from them (see
//! `crate::ids`) and therefore the same cluster id, and starts raft with all
//! members as voters.
//!
//! Invariants:
//! - The local member's `--initial-cluster` entry lists exactly its
//!   `--initial-advertise-peer-urls`.
//! - The member id, cluster id and member list are written in one durable
//!   backend batch before raft starts; after that, flags no longer matter: a
//!   restart with other (or no) cluster flags keeps the recorded membership.
//!
//! Caveats: joining an existing cluster (`--initial-cluster-state existing`)
//! and runtime membership changes are not supported yet. A backend written by
//! a single-member build before the member list was recorded gets a list of
//! one member: itself.

use anyhow::{Context, bail};
use retcd_mvcc::Store;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ids;
use crate::peer::PeerAddress;

/// Meta key of this member's id in the backend.
const META_MEMBER_ID: &[u8] = b"member_id";
/// Meta key of the cluster id in the backend.
const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// Meta key of the member list (JSON) in the backend.
const META_MEMBERS: &[u8] = b"members";

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub id: u64,
    /// The member's name (`--name`).
    pub name: String,
    /// The member's peer URLs.
    pub peer_urls: Vec<String>,
}

/// Who this member is and who else is in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, this one included, sorted by id.
    pub members: Vec<Member>,
}

impl Membership {
    /// The voters raft bootstraps a fresh log with.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// The members as the peer transport addresses them.
    pub fn peer_addresses(&self) -> Vec<PeerAddress> {
        self.members
            .iter()
            .map(|m| PeerAddress {
                id: m.id,
                peer_urls: m.peer_urls.clone(),
            })
            .collect()
    }
}

/// Returns the membership recorded in the backend, or derives it from the
/// configuration and records it when the member starts for the first time.
pub fn load_or_bootstrap(cfg: &Config, store: &Store) -> anyhow::Result<Membership> {
    let read_id = |key: &[u8]| -> anyhow::Result<Option<u64>> {
        Ok(match store.meta_get(key)? {
            Some(bytes) => Some(u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .context("corrupt id in backend meta")?,
            )),
            None => None,
        })
    };
    if let (Some(member_id), Some(cluster_id)) =
        (read_id(META_MEMBER_ID)?, read_id(META_CLUSTER_ID)?)
    {
        let members = match store.meta_get(META_MEMBERS)? {
            Some(json) => {
                serde_json::from_slice(&json).context("corrupt member list in backend meta")?
            }
            None => vec![Member {
                id: member_id,
                name: cfg.name.clone(),
                peer_urls: cfg.initial_advertise_peer_urls.clone(),
            }],
        };
        return Ok(Membership {
            member_id,
            cluster_id,
            members,
        });
    }
    let membership = bootstrap(cfg)?;
    let mut batch = store.write()?;
    batch.meta_put(META_MEMBER_ID, &membership.member_id.to_be_bytes());
    batch.meta_put(META_CLUSTER_ID, &membership.cluster_id.to_be_bytes());
    batch.meta_put(META_MEMBERS, &serde_json::to_vec(&membership.members)?);
    // Durable before raft bootstraps its log with these voters.
    batch.commit(true)?;
    Ok(membership)
}

/// Derives a new cluster's membership from `--initial-cluster`.
fn bootstrap(cfg: &Config) -> anyhow::Result<Membership> {
    if cfg.initial_cluster_state != "new" {
        bail!(
            "--initial-cluster-state=existing: joining an existing cluster is not supported yet; \
             bootstrap every member with --initial-cluster-state=new"
        );
    }
    let Some(local) = cfg.initial_cluster.iter().find(|m| m.name == cfg.name) else {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        );
    };
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = local.peer_urls.clone();
    advertised.sort();
    listed.sort();
    if advertised != listed {
        bail!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            local.name,
            listed.join(","),
            advertised.join(",")
        );
    }
    let mut members: Vec<Member> = cfg
        .initial_cluster
        .iter()
        .map(|m| Member {
            id: ids::member_id(&m.peer_urls, &cfg.initial_cluster_token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
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
        members,
    })
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
    fn joining_is_refused() {
        let mut cfg = member_config("a");
        cfg.initial_cluster_state = "existing".into();
        let err = bootstrap(&cfg).unwrap_err().to_string();
        assert!(err.contains("not supported yet"), "{err}");
    }

    #[test]
    fn the_membership_survives_a_restart_without_flags() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let first = load_or_bootstrap(&member_config("b"), &store).unwrap();
        let bare = config(&["--name", "b"]);
        assert_eq!(load_or_bootstrap(&bare, &store).unwrap(), first);
    }
}
