//! Linearizability under faults: five clients (one per member and two that
//! hop between members) put, get (linearizable) and compare-and-set a
//! handful of keys while the test isolates the leader, kills -9 and restarts
//! the leader, cuts a follower off from the leader, and kills -9 and
//! restarts a follower. Every operation's call and return instants and
//! outcome are recorded (a timeout or an error is an unknown outcome), and
//! the history is checked by `retcd_tests::linearizability`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use retcd_tests::cluster::Cluster;
use retcd_tests::linearizability::{
    Operation, Outcome, Recorder, Request, Response, Verdict, check,
};

use crate::{CLUSTER_SIZE, ELECTION_TIMEOUT, connect};

/// The keys the clients share.
const KEYS: [&str; 4] = ["lin/a", "lin/b", "lin/c", "lin/d"];
/// Clients bound to one member each (member i for client i).
const FIXED_CLIENTS: usize = CLUSTER_SIZE;
/// Clients that send each operation to the next member in turn.
const HOPPING_CLIENTS: usize = 2;
/// How long one operation may take before its outcome counts as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed operation, so a client of a dead member does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Memoized search states allowed per key before the check gives up.
const MAX_SEARCH_STATES: usize = 5_000_000;
/// Successful operations the history must hold for the check to mean something.
const MIN_COMPLETED_OPS: usize = 200;

/// A small deterministic PRNG (xorshift64*) for the clients' choices.
struct Rng(u64);

impl Rng {
    /// The next number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Issues one operation and returns its response, or `None` on a timeout or error.
async fn execute(client: &mut Client, request: &Request) -> Option<Response> {
    let call = async {
        match request {
            Request::Put { key, value } => client
                .put(key.as_str(), value.as_str(), None)
                .await
                .map(|_| Response::Put),
            Request::Get { key } => client.get(key.as_str(), None).await.map(|r| {
                Response::Get(
                    r.kvs()
                        .first()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                )
            }),
            Request::Cas { key, expect, value } => {
                let compare = match expect {
                    Some(expect) => Compare::value(key.as_str(), CompareOp::Equal, expect.as_str()),
                    None => Compare::version(key.as_str(), CompareOp::Equal, 0),
                };
                let txn = Txn::new().when([compare]).and_then([TxnOp::put(
                    key.as_str(),
                    value.as_str(),
                    None,
                )]);
                client.txn(txn).await.map(|r| Response::Cas(r.succeeded()))
            }
        }
    };
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(Ok(response)) => Some(response),
        _ => None,
    }
}

/// Runs client `id` over `members` (one for a fixed client, all for a
/// hopping one) until `stop`, recording every operation.
async fn run_client(
    id: usize,
    mut members: Vec<Client>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1));
    // The last value this client saw per key: what its CAS expects.
    let mut seen: Vec<Option<String>> = vec![None; KEYS.len()];
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let k = rng.below(KEYS.len() as u64) as usize;
        let key = KEYS[k].to_string();
        let value = format!("{id}-{n}");
        let request = match rng.below(10) {
            0..=3 => Request::Put { key, value },
            4..=6 => Request::Get { key },
            _ => Request::Cas {
                key,
                expect: seen[k].clone(),
                value,
            },
        };
        let member = n % members.len();
        let client = &mut members[member];
        n += 1;
        let call = recorder.now();
        let response = execute(client, &request).await;
        match (&request, &response) {
            (Request::Put { value, .. }, Some(_))
            | (Request::Cas { value, .. }, Some(Response::Cas(true))) => {
                seen[k] = Some(value.clone());
            }
            (_, Some(Response::Get(value))) => seen[k] = value.clone(),
            _ => {}
        }
        let failed = response.is_none();
        recorder.record(id, call, request, response);
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// `history` with its last answered read turned stale: it returns the
/// first acknowledged value of its key instead (values are unique, so this
/// is a read from the past). The checker must reject it, or the recorded
/// history proves nothing.
fn corrupt(history: &[Operation]) -> Vec<Operation> {
    let mut corrupted = history.to_vec();
    let last_read = corrupted
        .iter()
        .rposition(|op| {
            matches!(
                op.outcome,
                Outcome::Returned {
                    response: Response::Get(_),
                    ..
                }
            )
        })
        .expect("an answered read");
    let key = corrupted[last_read].request.key().to_string();
    let first_value = corrupted
        .iter()
        .filter(|op| {
            op.request.key() == key
                && matches!(
                    op.outcome,
                    Outcome::Returned {
                        response: Response::Put,
                        ..
                    }
                )
        })
        .min_by_key(|op| op.call)
        .and_then(|op| match &op.request {
            Request::Put { value, .. } => Some(value.clone()),
            _ => None,
        })
        .expect("an acknowledged put of the last read's key");
    if let Outcome::Returned { response, .. } = &mut corrupted[last_read].outcome {
        assert_ne!(
            *response,
            Response::Get(Some(first_value.clone())),
            "the last read already returned the first value"
        );
        *response = Response::Get(Some(first_value));
    }
    corrupted
}

/// Sleeps without holding a runtime worker.
async fn pause(millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_under_partitions_and_kills_see_a_linearizable_store() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT)).expect("a leader");
    // Learn the member ids while every member answers.
    tokio::task::block_in_place(|| cluster.member_ids()).expect("member ids");
    let urls = cluster.client_urls();
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for id in 0..FIXED_CLIENTS + HOPPING_CLIENTS {
        let members = if id < FIXED_CLIENTS {
            vec![connect(&urls[id]).await]
        } else {
            let mut all = Vec::new();
            for url in &urls {
                all.push(connect(url).await);
            }
            all
        };
        clients.push(tokio::spawn(run_client(
            id,
            members,
            recorder.clone(),
            stop.clone(),
        )));
    }

    let mut faults = Vec::new();
    pause(2000).await;
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    tokio::task::block_in_place(|| cluster.isolate(leader)).expect("isolate");
    faults.push(format!("isolated leader {leader}"));
    pause(3000).await;
    tokio::task::block_in_place(|| cluster.heal()).expect("heal");
    pause(1500).await;

    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader after the heal");
    tokio::task::block_in_place(|| cluster.kill9(leader));
    faults.push(format!("killed leader {leader}"));
    pause(2000).await;
    tokio::task::block_in_place(|| cluster.restart(leader));
    pause(1500).await;

    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader after the restart");
    let follower = (leader + 1) % CLUSTER_SIZE;
    tokio::task::block_in_place(|| cluster.partition(&[follower], &[leader])).expect("partition");
    faults.push(format!("cut follower {follower} from leader {leader}"));
    pause(2500).await;
    tokio::task::block_in_place(|| cluster.heal()).expect("heal");
    pause(1500).await;

    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader after the second heal");
    let follower = (leader + 2) % CLUSTER_SIZE;
    tokio::task::block_in_place(|| cluster.kill9(follower));
    faults.push(format!("killed follower {follower}"));
    pause(2000).await;
    tokio::task::block_in_place(|| cluster.restart(follower));
    pause(1500).await;

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let history = recorder.history();
    let completed = history
        .iter()
        .filter(|op| {
            matches!(
                op.outcome,
                retcd_tests::linearizability::Outcome::Returned { .. }
            )
        })
        .count();
    eprintln!(
        "{} operations, {completed} answered, {} unknown; faults: {faults:?}",
        history.len(),
        history.len() - completed
    );
    assert!(
        completed >= MIN_COMPLETED_OPS,
        "only {completed} operations were answered"
    );
    let verdict = tokio::task::block_in_place(|| check(&history, MAX_SEARCH_STATES));
    let corrupted = tokio::task::block_in_place(|| check(&corrupt(&history), MAX_SEARCH_STATES));
    assert!(
        matches!(corrupted, Verdict::NotLinearizable { .. }),
        "the checker missed a stale read: {corrupted:?}"
    );
    assert_eq!(
        verdict,
        Verdict::Linearizable,
        "faults: {faults:?}\n{}",
        match &verdict {
            Verdict::NotLinearizable { report, .. } => report.as_str(),
            _ => "",
        }
    );
}
