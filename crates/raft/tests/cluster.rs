//! Three members in one process over an in-memory transport: one leader is
//! elected, proposals replicate to everyone in the same order, reads work from
//! followers, and the cluster survives the leader's shutdown.

mod common;

use std::sync::Arc;

use common::{Applied, Network, NoData, block_on, config, wait_until};
use retcd_raft::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, EntryType, Error, RaftHandle, start,
};

const IDS: [u64; 3] = [1, 2, 3];

struct Member {
    raft: RaftHandle,
    applied: Applied,
    _dir: tempfile::TempDir,
}

fn start_cluster(network: &Arc<Network>, snapshot_count: u64) -> Vec<Member> {
    IDS.iter()
        .map(|&id| {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(id, &IDS, dir.path(), 0);
            cfg.snapshot_count = snapshot_count;
            let (raft, rx) = start(cfg, network.clone(), Arc::new(NoData)).unwrap();
            network.join(id, raft.clone());
            let applied = Applied::spawn(raft.clone(), rx);
            Member {
                raft,
                applied,
                _dir: dir,
            }
        })
        .collect()
}

/// Waits until every running member agrees on one leader; returns its id.
fn agreed_leader(members: &[&Member]) -> u64 {
    let mut leader = 0;
    wait_until("one agreed leader", || {
        let leaders: Vec<u64> = members.iter().map(|m| m.raft.status().leader_id).collect();
        leader = leaders[0];
        leader != 0 && leaders.iter().all(|&l| l == leader)
    });
    leader
}

/// Proposes `data` through `leader`, retrying while leadership settles.
fn propose(leader: &RaftHandle, data: &[u8]) {
    wait_until("proposal accepted", || {
        match block_on(leader.propose(data.to_vec())) {
            Ok(()) => true,
            Err(Error::ProposalDropped | Error::NoLeader) => false,
            Err(e) => panic!("proposal failed: {e}"),
        }
    });
}

fn payload(i: usize) -> Vec<u8> {
    format!("put-{i}").into_bytes()
}

#[test]
fn three_members_elect_replicate_and_survive_leader_loss() {
    let network = Arc::new(Network::default());
    let members = start_cluster(&network, 100_000);
    let all: Vec<&Member> = members.iter().collect();
    let leader_id = agreed_leader(&all);
    let leader = &members[(leader_id - 1) as usize];
    assert_eq!(*leader.raft.leader_changes().borrow(), leader_id);
    let leaders = members
        .iter()
        .filter(|m| m.raft.status().leader_id == m.raft.status().id)
        .count();
    assert_eq!(leaders, 1, "exactly one member believes it leads");

    for i in 0..10 {
        propose(&leader.raft, &payload(i));
    }
    for m in &members {
        m.applied.wait_for(&payload(9));
    }
    let expected: Vec<Vec<u8>> = (0..10).map(payload).collect();
    for m in &members {
        assert_eq!(m.applied.data(), expected, "member {}", m.raft.status().id);
    }

    // A follower's read index covers what the leader committed.
    let follower = members
        .iter()
        .find(|m| m.raft.status().id != leader_id)
        .unwrap();
    let committed = leader.applied.index_of(&payload(9)).unwrap();
    let read = block_on(follower.raft.read_index()).unwrap();
    assert!(
        read >= committed,
        "follower read index {read} < {committed}"
    );

    // The leader goes away; the other two elect a new one and continue.
    network.leave(leader_id);
    leader.raft.shutdown();
    let survivors: Vec<&Member> = members
        .iter()
        .filter(|m| m.raft.status().id != leader_id)
        .collect();
    let mut new_leader_id = 0;
    wait_until("a new leader", || {
        new_leader_id = agreed_leader(&survivors);
        new_leader_id != leader_id
    });
    let new_leader = &members[(new_leader_id - 1) as usize];
    for i in 10..20 {
        propose(&new_leader.raft, &payload(i));
    }
    let expected: Vec<Vec<u8>> = (0..20).map(payload).collect();
    for m in &survivors {
        m.applied.wait_for(&payload(19));
        assert_eq!(m.applied.data(), expected, "member {}", m.raft.status().id);
    }
    for m in &survivors {
        m.raft.shutdown();
    }
}

#[test]
fn lagging_follower_catches_up_from_a_snapshot() {
    const SNAPSHOT_COUNT: u64 = 10;
    let network = Arc::new(Network::default());
    let members = start_cluster(&network, SNAPSHOT_COUNT);
    let all: Vec<&Member> = members.iter().collect();
    let leader_id = agreed_leader(&all);
    let leader = &members[(leader_id - 1) as usize];
    propose(&leader.raft, &payload(0));
    let lagging = members
        .iter()
        .find(|m| m.raft.status().id != leader_id)
        .unwrap();
    let lagging_id = lagging.raft.status().id;
    lagging.applied.wait_for(&payload(0));

    // Cut the follower off while the other two commit and compact well past it.
    network.leave(lagging_id);
    for i in 1..100 {
        propose(&leader.raft, &payload(i));
    }
    leader.applied.wait_for(&payload(99));
    wait_until("leader compaction", || {
        leader.raft.status().first_index > lagging.applied.last_index() + 1
    });

    network.join(lagging_id, lagging.raft.clone());
    propose(&leader.raft, &payload(100));
    lagging.applied.wait_for(&payload(100));
    leader.applied.wait_for(&payload(100));
    let snapshots = lagging.applied.snapshots.lock().clone();
    assert_eq!(snapshots.len(), 1, "caught up through one snapshot");
    let (delivered_before, snap_index) = snapshots[0];
    let entries = lagging.applied.entries.lock().clone();
    // After the snapshot, delivery resumes exactly at the entry following it.
    assert_eq!(entries[delivered_before].index, snap_index + 1);
    for (i, e) in entries[delivered_before..].iter().enumerate() {
        assert_eq!(e.index, snap_index + 1 + i as u64);
    }
    // The entries after the snapshot are the leader's, byte for byte.
    let leader_tail: Vec<_> = leader
        .applied
        .entries
        .lock()
        .iter()
        .filter(|e| e.index > snap_index)
        .map(|e| (e.index, e.term, e.data.clone()))
        .collect();
    let lagging_tail: Vec<_> = entries[delivered_before..]
        .iter()
        .map(|e| (e.index, e.term, e.data.clone()))
        .collect();
    assert_eq!(lagging_tail, leader_tail);
    for m in &members {
        m.raft.shutdown();
    }
}

#[test]
fn a_member_started_without_voters_joins_through_a_snapshot() {
    let network = Arc::new(Network::default());
    let members = start_cluster(&network, 100_000);
    let all: Vec<&Member> = members.iter().collect();
    let leader_id = agreed_leader(&all);
    let leader = &members[(leader_id - 1) as usize];
    for i in 0..10 {
        propose(&leader.raft, &payload(i));
    }

    // Member 4 starts with an empty log and no voters: it waits to be added.
    const JOINER: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let (joiner, rx) = start(
        config(JOINER, &[], dir.path(), 0),
        network.clone(),
        Arc::new(NoData),
    )
    .unwrap();
    network.join(JOINER, joiner.clone());
    let joined = Applied::spawn(joiner.clone(), rx);
    let status = joiner.status();
    assert_eq!((status.last_index, status.commit_index), (0, 0));

    let mut add = ConfChangeSingle::default();
    add.set_change_type(ConfChangeType::AddNode);
    add.node_id = JOINER;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(add);
    block_on(leader.raft.propose_conf_change(cc)).unwrap();
    wait_until("the leader applied the conf change", || {
        leader
            .applied
            .conf_states
            .lock()
            .last()
            .is_some_and(|cs| cs.voters.contains(&JOINER))
    });
    propose(&leader.raft, &payload(10));
    joined.wait_for(&payload(10));

    // It caught up through one snapshot that already names it a voter, then
    // through the log, and follows the leader from then on.
    let snapshots = joined.snapshots.lock().clone();
    assert_eq!(snapshots.len(), 1, "joined through one snapshot");
    let (delivered_before, snap_index) = snapshots[0];
    assert_eq!(delivered_before, 0, "nothing before the snapshot");
    let add_index = leader
        .applied
        .entries
        .lock()
        .iter()
        .find(|e| e.get_entry_type() != EntryType::EntryNormal)
        .map(|e| e.index)
        .unwrap();
    assert!(
        snap_index >= add_index,
        "snapshot {snap_index} before the add at {add_index}"
    );
    joined.assert_contiguous_from(snap_index + 1);
    assert_eq!(joiner.status().leader_id, leader_id);
    assert!(!joiner.status().is_learner);
    for i in 11..15 {
        propose(&leader.raft, &payload(i));
    }
    joined.wait_for(&payload(14));
    // A snapshot installs state up to its index; entries after it match the leader's.
    let tail = |a: &Applied| -> Vec<Vec<u8>> {
        a.entries
            .lock()
            .iter()
            .filter(|e| {
                e.index > snap_index
                    && e.get_entry_type() == EntryType::EntryNormal
                    && !e.data.is_empty()
            })
            .map(|e| e.data.to_vec())
            .collect()
    };
    leader.applied.wait_for(&payload(14));
    assert_eq!(tail(&joined), tail(&leader.applied));
    joiner.shutdown();
    for m in &members {
        m.raft.shutdown();
    }
}
