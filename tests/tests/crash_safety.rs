//! Crash safety of our server: every acknowledged write survives kill -9.
//!
//! Each round starts concurrent writers that put unique keys and record every
//! acknowledged (key, value, revision); the server is killed with SIGKILL at a
//! random moment after the first acknowledgement, then restarted on the same
//! data dir. After every restart:
//! - every write acknowledged so far, in any round, is present with its value
//!   and with its acknowledged revision as mod and create revision;
//! - acknowledged revisions were never handed out twice;
//! - the store's revision is at least the highest acknowledged one, and a new
//!   write gets a revision strictly greater than every acknowledged one.
//!
//! Meanwhile another task defragments the backend over and over (each writer
//! overwrites one key of its own too, so there are free pages to move), so
//! kills also land in the middle of a defragmentation.
//!
//! The kill moments come from a seed printed at the start; set
//! `RETCD_CRASH_SEED` to replay one.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use retcd_tests::Server;

/// Kill/restart rounds in the test.
const ROUNDS: usize = 10;

/// Concurrent writer tasks per round.
const WRITERS: usize = 8;

/// Upper bound of the random delay between the first acknowledgement and the
/// kill.
const MAX_KILL_DELAY_MS: u64 = 400;

/// Longest wait for the first acknowledgement of a round.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-request timeout of the clients, so a dead server ends requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One acknowledged put.
#[derive(Debug, Clone)]
struct Ack {
    /// The unique key written.
    key: String,
    /// The value written.
    value: String,
    /// The revision the server acknowledged.
    revision: i64,
}

/// A small deterministic PRNG (xorshift64*), enough for kill timing.
struct Rng(u64);

impl Rng {
    /// The next pseudo-random number.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The seed from `RETCD_CRASH_SEED`, else from the clock.
fn seed() -> u64 {
    std::env::var("RETCD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos();
            (nanos as u64) | 1
        })
}

/// A client with a request timeout.
async fn connect(server: &Server) -> Client {
    let options = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(REQUEST_TIMEOUT);
    Client::connect([server.client_url()], Some(options))
        .await
        .expect("connect")
}

/// Puts unique keys until a put fails, recording each acknowledgement; in
/// between, overwrites a key of its own with a bigger value, leaving garbage.
async fn writer(mut client: Client, round: usize, id: usize, acks: Arc<Mutex<Vec<Ack>>>) {
    for seq in 0.. {
        let key = format!("crash/{round:02}/{id:02}/{seq:06}");
        let value = format!("value-{round}-{id}-{seq}");
        match client.put(key.clone(), value.clone(), None).await {
            Ok(response) => {
                let revision = response.header().expect("put has a header").revision();
                acks.lock().unwrap().push(Ack {
                    key,
                    value,
                    revision,
                });
            }
            Err(_) => return,
        }
        let scratch = format!("scratch/{id:02}");
        if client.put(scratch, "x".repeat(4096), None).await.is_err() {
            return;
        }
    }
}

/// Compacts away the overwritten values and defragments, over and over,
/// until a request fails; counts the defragmentations in `done`.
async fn defragmenter(mut client: Client, done: Arc<Mutex<usize>>) {
    loop {
        let Ok(status) = client.status().await else {
            return;
        };
        let revision = status.header().expect("status has a header").revision();
        // Another round's compaction may be newer; only a dead server ends this.
        let _ = client.compact(revision, None).await;
        if client.defragment().await.is_err() {
            return;
        }
        *done.lock().unwrap() += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks every acknowledged write against the restarted server and returns
/// the highest acknowledged revision.
async fn verify(client: &mut Client, acks: &[Ack], round: usize) -> i64 {
    let mut seen = HashSet::new();
    for ack in acks {
        assert!(
            seen.insert(ack.revision),
            "round {round}: revision {} acknowledged twice",
            ack.revision
        );
    }
    let response = client
        .get("crash/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("read back");
    let stored: BTreeMap<&[u8], (&[u8], i64, i64)> = response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key(),
                (kv.value(), kv.mod_revision(), kv.create_revision()),
            )
        })
        .collect();
    for ack in acks {
        let (value, mod_revision, create_revision) =
            stored.get(ack.key.as_bytes()).copied().unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged {} (revision {}) is lost",
                    ack.key, ack.revision
                )
            });
        assert_eq!(
            value,
            ack.value.as_bytes(),
            "round {round}: value of {}",
            ack.key
        );
        assert_eq!(
            mod_revision, ack.revision,
            "round {round}: mod revision of {}",
            ack.key
        );
        assert_eq!(
            create_revision, ack.revision,
            "round {round}: create revision of {}",
            ack.key
        );
    }
    let max_acked = acks.iter().map(|a| a.revision).max().unwrap_or(1);
    let current = response.header().expect("range has a header").revision();
    assert!(
        current >= max_acked,
        "round {round}: store revision {current} < acknowledged {max_acked}"
    );
    max_acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9() {
    let seed = seed();
    eprintln!("RETCD_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = Server::ours();
    let mut all_acks: Vec<Ack> = Vec::new();

    for round in 0..ROUNDS {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let client = connect(&server).await;
        let mut tasks: Vec<_> = (0..WRITERS)
            .map(|id| tokio::spawn(writer(client.clone(), round, id, acks.clone())))
            .collect();
        let defrags = Arc::new(Mutex::new(0));
        tasks.push(tokio::spawn(defragmenter(client.clone(), defrags.clone())));

        let waited = tokio::time::Instant::now();
        while acks.lock().unwrap().is_empty() {
            assert!(
                waited.elapsed() < FIRST_ACK_TIMEOUT,
                "round {round}: no write acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.next() % MAX_KILL_DELAY_MS)).await;
        // Acknowledgements recorded before the kill are the ones that count;
        // a put still in flight is neither acknowledged nor recorded.
        server.kill9();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let round_acks = acks.lock().unwrap().clone();
        eprintln!(
            "round {round}: {} acknowledged writes, {} defragmentations",
            round_acks.len(),
            defrags.lock().unwrap()
        );
        all_acks.extend(round_acks);

        server.restart();
        let mut client = connect(&server).await;
        let max_acked = verify(&mut client, &all_acks, round).await;
        let probe = client
            .put(format!("probe/{round}"), "after restart", None)
            .await
            .expect("write after restart");
        let revision = probe.header().expect("put has a header").revision();
        assert!(
            revision > max_acked,
            "round {round}: new write got revision {revision} <= acknowledged {max_acked}"
        );
    }
}
