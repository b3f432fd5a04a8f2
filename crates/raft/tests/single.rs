//! A single member: election, ordered delivery, batching, reads, restart replay,
//! log compaction and the conf-state history across restarts.

mod common;

use std::sync::Arc;

use common::{Applied, NoData, block_on, config, wait_until};
use retcd_raft::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, NoPeers, NodeConfig, RaftHandle, start,
};

/// Starts a member and its recording apply side; waits until it leads.
fn start_member(cfg: NodeConfig) -> (RaftHandle, Applied) {
    let id = cfg.id;
    let (raft, rx) = start(cfg, Arc::new(NoPeers), Arc::new(NoData)).unwrap();
    let applied = Applied::spawn(raft.clone(), rx);
    wait_until("self-election", || raft.status().leader_id == id);
    (raft, applied)
}

#[test]
fn handle_is_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<RaftHandle>();
}

fn payload(i: usize) -> Vec<u8> {
    format!("put-{i}").into_bytes()
}

#[test]
fn bootstrap_elects_itself_and_delivers_proposals_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
    assert_eq!(*raft.leader_changes().borrow(), 1);
    block_on(async {
        for i in 0..20 {
            raft.propose(payload(i)).await.unwrap();
        }
    });
    applied.wait_for(&payload(19));
    assert_eq!(applied.data(), (0..20).map(payload).collect::<Vec<_>>());
    // Index 1 is the bootstrap snapshot point; the first real entry is 2.
    applied.assert_contiguous_from(2);
    let status = raft.status();
    assert_eq!((status.id, status.is_learner), (1, false));
    assert!(status.commit_index >= applied.last_index());
    raft.shutdown();
    assert!(raft.is_stopped());
    assert!(matches!(
        block_on(raft.propose(b"late".to_vec())),
        Err(retcd_raft::Error::Stopped)
    ));
}

#[test]
fn restart_replays_only_entries_after_applied() {
    let dir = tempfile::tempdir().unwrap();
    let backend_index;
    {
        let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
        block_on(async {
            for i in 0..10 {
                raft.propose(payload(i)).await.unwrap();
            }
        });
        applied.wait_for(&payload(9));
        // The backend only made the first five proposals durable before the crash.
        backend_index = applied.index_of(&payload(4)).unwrap();
        raft.shutdown();
    }
    let (raft, applied) = start_member(config(1, &[1], dir.path(), backend_index));
    applied.wait_for(&payload(9));
    assert_eq!(applied.data(), (5..10).map(payload).collect::<Vec<_>>());
    applied.assert_contiguous_from(backend_index + 1);
    // New proposals continue after the replayed ones.
    block_on(raft.propose(payload(10))).unwrap();
    applied.wait_for(&payload(10));
    assert_eq!(applied.data().last().unwrap(), &payload(10));
    raft.shutdown();
}

#[test]
fn concurrent_proposals_share_readies_and_fsyncs() {
    const PROPOSALS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
    let before = raft.status().log_syncs;
    block_on(futures::future::try_join_all(
        (0..PROPOSALS).map(|i| raft.propose(payload(i))),
    ))
    .unwrap();
    applied.wait_for(&payload(PROPOSALS - 1));
    let syncs = raft.status().log_syncs - before;
    assert!(
        syncs < PROPOSALS as u64,
        "{syncs} fsyncs for {PROPOSALS} concurrent proposals: not batched"
    );
    assert_eq!(applied.data().len(), PROPOSALS);
    raft.shutdown();
}

#[test]
fn read_index_covers_every_committed_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
    for i in 0..5 {
        block_on(raft.propose(payload(i))).unwrap();
        let index = applied.wait_for(&payload(i));
        let read = block_on(raft.read_index()).unwrap();
        assert!(read >= index, "read index {read} below committed {index}");
    }
    // Many readers at once all get an index at least the last commit.
    let committed = applied.last_index();
    let reads = block_on(futures::future::try_join_all(
        (0..100).map(|_| raft.read_index()),
    ))
    .unwrap();
    assert!(reads.iter().all(|&r| r >= committed));
    raft.shutdown();
}

#[test]
fn log_compaction_bounds_the_log_and_restart_still_works() {
    const SNAPSHOT_COUNT: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1, &[1], dir.path(), 0);
    cfg.snapshot_count = SNAPSHOT_COUNT;
    let (raft, applied) = start_member(cfg.clone());
    for i in 0..200 {
        block_on(raft.propose(payload(i))).unwrap();
        applied.wait_for(&payload(i));
        let s = raft.status();
        // Compaction runs on the loop's next turn after a durable report.
        assert!(
            s.last_index - s.first_index < 4 * SNAPSHOT_COUNT,
            "log not bounded: {s:?}"
        );
    }
    wait_until("compaction", || raft.status().snapshot_index > 150);
    let status = raft.status();
    assert!(status.first_index > 100, "{status:?}");
    let last = applied.last_index();
    raft.shutdown();

    cfg.applied = last;
    let (raft, applied) = start_member(cfg);
    let status = raft.status();
    assert!(status.first_index > 100, "{status:?}");
    block_on(raft.propose(payload(200))).unwrap();
    applied.wait_for(&payload(200));
    assert_eq!(
        applied.data(),
        vec![payload(200)],
        "nothing below applied replayed"
    );
    raft.shutdown();
}

/// A conf change adding `node` as a learner.
fn add_learner(node: u64) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(ConfChangeType::AddLearnerNode);
    single.node_id = node;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(single);
    cc
}

#[test]
fn conf_changes_apply_once_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
    block_on(raft.propose(payload(0))).unwrap();
    let before_change = applied.wait_for(&payload(0));
    block_on(raft.propose_conf_change(add_learner(2))).unwrap();
    block_on(raft.propose(payload(1))).unwrap();
    let after_change = applied.wait_for(&payload(1));
    raft.shutdown();

    // The backend is behind the conf change: it is redelivered and applied again
    // on top of the conf state as of `before_change`.
    let (raft, applied) = start_member(config(1, &[1], dir.path(), before_change));
    applied.wait_for(&payload(1));
    let states = applied.conf_states.lock().clone();
    assert_eq!(states.len(), 1, "conf change redelivered once");
    assert_eq!(
        (states[0].voters.clone(), states[0].learners.clone()),
        (vec![1], vec![2])
    );
    raft.shutdown();

    // The backend has it: raft restarts with the learner in place, nothing replays.
    let (raft, applied) = start_member(config(1, &[1], dir.path(), after_change));
    block_on(raft.propose(payload(2))).unwrap();
    applied.wait_for(&payload(2));
    assert_eq!(applied.data(), vec![payload(2)]);
    assert!(applied.conf_states.lock().is_empty());
    raft.shutdown();
}

/// Refusals reported to `propose_detached` callbacks, as error texts.
#[derive(Clone, Default)]
struct Refusals(Arc<parking_lot::Mutex<Vec<String>>>);

impl Refusals {
    /// A callback recording its refusal under `tag`.
    fn callback(&self, tag: &str) -> retcd_raft::OnRefused {
        let (refusals, tag) = (self.0.clone(), tag.to_string());
        Box::new(move |e| refusals.lock().push(format!("{tag}: {e}")))
    }

    fn get(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

#[test]
fn detached_proposals_apply_and_report_only_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, applied) = start_member(config(1, &[1], dir.path(), 0));
    let refusals = Refusals::default();
    for i in 0..50 {
        raft.propose_detached(payload(i), refusals.callback(&format!("put-{i}")));
    }
    applied.wait_for(&payload(49));
    assert_eq!(applied.data(), (0..50).map(payload).collect::<Vec<_>>());
    assert_eq!(refusals.get(), Vec::<String>::new(), "accepted proposals");
    raft.shutdown();
    // Refused before it is queued: reported before the call returns.
    raft.propose_detached(b"late".to_vec(), refusals.callback("late"));
    assert_eq!(refusals.get(), vec!["late: raft: stopped".to_string()]);
}

#[test]
fn detached_proposal_without_a_leader_is_refused_like_propose() {
    let dir = tempfile::tempdir().unwrap();
    // Member 2 never runs, so member 1 can never win an election.
    let (raft, rx) = start(
        config(1, &[1, 2], dir.path(), 0),
        Arc::new(NoPeers),
        Arc::new(NoData),
    )
    .unwrap();
    let _applied = Applied::spawn(raft.clone(), rx);
    let awaited = block_on(raft.propose(payload(0))).unwrap_err();
    assert!(matches!(awaited, retcd_raft::Error::NoLeader), "{awaited}");
    let refusals = Refusals::default();
    raft.propose_detached(payload(1), refusals.callback("detached"));
    wait_until("the refusal", || !refusals.get().is_empty());
    assert_eq!(refusals.get(), vec![format!("detached: {awaited}")]);
    raft.shutdown();
}
