//! Membership, leadership, `--cluster` and snapshot commands against
//! 3-member clusters.
//!
//! State-changing commands (`member add|update|promote|remove`,
//! `move-leader`) run through Debian's etcdctl on one reference cluster and
//! through ours on another, step for step; the member id a step needs is
//! read from that side's own earlier output. Member lists come in id order,
//! and ids are random, so listings are compared after sorting their
//! entries (`ETCD_INITIAL_CLUSTER`, JSON `members`).

use std::time::{Duration, Instant};

use regex::Regex;
use retcd_tests::cluster::Cluster;
use retcd_tests::etcdctl::{REFERENCE_ETCDCTL, run_binary};
use retcd_tests::ports::free_port;
use retcd_tests::{CtlOutput, Flavour, Server, step};

use crate::harness::{compare_on, compare_reads, masked, ours};

/// How long a refused membership change is retried.
const UNHEALTHY_RETRY: Duration = Duration::from_secs(30);
/// etcd's refusal while members have not been connected long enough.
const UNHEALTHY: &str = "etcdserver: unhealthy cluster";

/// How long members may take to publish their client URLs.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `binary` against `endpoints`.
fn run(binary: &str, endpoints: &str, args: &[String]) -> CtlOutput {
    run_binary(binary, endpoints, args, &[], None, RUN_TIMEOUT)
}

/// Puts the comma-separated entries of `ETCD_INITIAL_CLUSTER` and the
/// JSON `members` arrays (ids zeroed, sorted by their text with ports
/// masked) in a fixed order, drops the padding `%16x` gives ids shorter
/// than 16 digits (`cluster  b9326b09d1f955a`), then masks.
fn normalized(output: CtlOutput) -> CtlOutput {
    let port = Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let padded_id = Regex::new(r"\b(Member|cluster) +([0-9a-f]+)\b").unwrap();
    let sort_line = |line: &str| -> String {
        if let Some(list) = line
            .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
            .and_then(|l| l.strip_suffix('"'))
        {
            let mut items: Vec<&str> = list.split(',').collect();
            items.sort();
            return format!("ETCD_INITIAL_CLUSTER=\"{}\"", items.join(","));
        }
        if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(members) = value.get_mut("members").and_then(|m| m.as_array_mut())
        {
            for m in members.iter_mut() {
                if let Some(obj) = m.as_object_mut() {
                    obj.insert("ID".into(), serde_json::Value::from(0));
                }
            }
            members.sort_by_key(|m| port.replace_all(&m.to_string(), "").into_owned());
            return value.to_string();
        }
        line.to_string()
    };
    let sort = |text: &str| -> String {
        let mut out: String = text.lines().map(sort_line).collect::<Vec<_>>().join("\n");
        if text.ends_with('\n') {
            out.push('\n');
        }
        out
    };
    masked(CtlOutput {
        stdout: padded_id
            .replace_all(&sort(&output.stdout), "$1 $2")
            .into_owned(),
        stderr: output.stderr,
        code: output.code,
    })
}

/// The id a `Member <id> added` line names.
fn added_id(output: &CtlOutput) -> String {
    let re = Regex::new(r"Member +([0-9a-f]+) added").unwrap();
    re.captures(&output.stdout)
        .unwrap_or_else(|| panic!("no member added: {output:#?}"))[1]
        .to_string()
}

/// Ids (hex) of the leader and of one follower, from its status.
fn leader_and_follower(endpoints: &str) -> (String, String) {
    let status = run(
        REFERENCE_ETCDCTL,
        endpoints,
        &["endpoint".into(), "status".into()],
    );
    let mut leader = String::new();
    let mut follower = String::new();
    for line in status.stdout.lines() {
        let cells: Vec<&str> = line.split(", ").collect();
        if cells.len() > 4 {
            if cells[4] == "true" {
                leader = cells[1].to_string();
            } else {
                follower = cells[1].to_string();
            }
        }
    }
    assert!(!leader.is_empty() && !follower.is_empty(), "{status:#?}");
    (leader, follower)
}

/// One side of the membership script: its etcdctl and its cluster.
struct Side {
    /// The etcdctl binary.
    binary: String,
    /// All client URLs, comma-separated.
    endpoints: String,
    /// The learner this side added.
    learner: String,
}

impl Side {
    /// Runs `args` (with `{learner}` replaced) on this side, unmasked.
    /// etcd refuses membership changes until its members have been
    /// connected for a while (`etcdserver: unhealthy cluster`); such a
    /// refusal is retried for a bounded time.
    fn run_raw(&self, args: &str) -> CtlOutput {
        let args: Vec<String> = args
            .split(' ')
            .map(|a| a.replace("{learner}", &self.learner))
            .collect();
        let deadline = Instant::now() + UNHEALTHY_RETRY;
        loop {
            let output = run(&self.binary, &self.endpoints, &args);
            if !output.stderr.contains(UNHEALTHY) || Instant::now() >= deadline {
                return output;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `args` on this side, normalized for comparison.
    fn run(&self, args: &str) -> CtlOutput {
        normalized(self.run_raw(args))
    }
}

#[test]
fn member_commands_match_reference_on_three_member_clusters() {
    member_script(Flavour::Reference);
}

/// The same script with both etcdctls against our own clusters.
#[test]
fn member_commands_on_our_clusters_print_alike() {
    member_script(Flavour::Ours);
}

/// Runs the membership script through Debian's etcdctl on one `flavour`
/// cluster and through ours on another, comparing every step.
fn member_script(flavour: Flavour) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Cluster::start(flavour, 3));
        let b = Cluster::start(flavour, 3);
        (a.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    });
    let mut reference = Side {
        binary: REFERENCE_ETCDCTL.to_string(),
        endpoints: a.client_urls().join(","),
        learner: String::new(),
    };
    let mut mine = Side {
        binary: ours().display().to_string(),
        endpoints: b.client_urls().join(","),
        learner: String::new(),
    };
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let moved_url = format!("http://127.0.0.1:{}", free_port());
    let voter_url = format!("http://127.0.0.1:{}", free_port());
    let mut mismatches = String::new();
    let mut check = |reference: &Side, mine: &Side, args: &str| -> CtlOutput {
        let want = reference.run(args);
        let got = mine.run(args);
        if want != got {
            mismatches.push_str(&format!(
                "{args}\n--- reference\n{want:#?}\n--- ours\n{got:#?}\n"
            ));
        }
        want
    };
    let add = format!("member add l1 --learner --peer-urls={learner_url}");
    let want = reference.run_raw(&add);
    let got = mine.run_raw(&add);
    reference.learner = added_id(&want);
    mine.learner = added_id(&got);
    assert_eq!(normalized(want), normalized(got), "member add");
    let steps = [
        format!("member add l2 --learner --peer-urls={voter_url}"),
        format!("member update {{learner}} --peer-urls={moved_url}"),
        format!("member update {{learner}} --peer-urls={moved_url} -w json"),
        format!("member update {{learner}} --peer-urls={moved_url} -w fields"),
        format!("member update {{learner}} --peer-urls={moved_url} -w table"),
        "member update {learner}".to_string(),
        "member promote {learner}".to_string(),
        "member promote {learner} -w json".to_string(),
        "member promote 1234".to_string(),
        "member promote zz".to_string(),
        "member remove {learner} -w json".to_string(),
        "member remove {learner}".to_string(),
        // A voter that never starts: 4 voters, 3 running, still a quorum.
        format!("member add v1 --peer-urls={voter_url} -w json"),
        "member list -w json".to_string(),
        "member add".to_string(),
        "member add x".to_string(),
    ];
    for args in &steps {
        check(&reference, &mine, args);
    }
    for format in ["simple", "json", "fields"] {
        let (_, f) = leader_and_follower(&reference.endpoints);
        reference.learner = f;
        let (_, f) = leader_and_follower(&mine.endpoints);
        mine.learner = f;
        check(
            &reference,
            &mine,
            &format!("move-leader {{learner}} -w {format}"),
        );
    }
    check(&reference, &mine, "move-leader zz");
    check(&reference, &mine, "move-leader");
    drop((a, b));
    assert!(mismatches.is_empty(), "our etcdctl differs:\n{mismatches}");
}

#[test]
fn cluster_flag_visits_every_member_like_reference() {
    let cluster = Cluster::start(Flavour::Reference, 3);
    let first = cluster.member(0).client_url();
    wait_client_urls_published(&first, 3);
    wait_status_settled(&first);
    compare_on(
        &first,
        &first,
        &[
            step("endpoint status --cluster"),
            step("endpoint status --cluster -w json"),
            step("endpoint status --cluster -w table"),
            step("endpoint hashkv --cluster"),
            step("endpoint hashkv --cluster -w table"),
            step("defrag --cluster"),
            step("endpoint status --cluster=false"),
        ],
        &[],
    );
    // Health checks run at once and are listed as they finish: compare the
    // lines as sets.
    for format in ["simple", "json", "table"] {
        let args = vec![
            "endpoint".to_string(),
            "health".to_string(),
            "--cluster".to_string(),
            "-w".to_string(),
            format.to_string(),
        ];
        let sorted = |o: CtlOutput| {
            let o = masked(o);
            let sort = |t: &str| {
                let mut lines: Vec<&str> = t.lines().collect();
                lines.sort();
                lines.join("\n")
            };
            (sort(&o.stdout), sort(&o.stderr), o.code)
        };
        let want = sorted(run(REFERENCE_ETCDCTL, &first, &args));
        let got = sorted(run(&ours().display().to_string(), &first, &args));
        if format == "json" {
            // One JSON array whose order varies: compare its length only.
            assert_eq!(want.0.matches("\"endpoint\"").count(), 3, "{want:?}");
            assert_eq!(got.0.matches("\"endpoint\"").count(), 3, "{got:?}");
            assert_eq!((want.1, want.2), (got.1, got.2));
        } else {
            assert_eq!(want, got, "endpoint health --cluster -w {format}");
        }
    }
    // A member list that cannot be fetched.
    compare_on(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        &[step("--command-timeout=1s endpoint status --cluster")],
        &[],
    );
}

/// Waits until the member list at `endpoint` shows client URLs for
/// `count` members: members publish theirs after they start.
fn wait_client_urls_published(endpoint: &str, count: usize) {
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    loop {
        let list = run(
            REFERENCE_ETCDCTL,
            endpoint,
            &["member".into(), "list".into()],
        );
        let published = list
            .stdout
            .lines()
            .filter(|l| l.split(", ").nth(4).is_some_and(|urls| !urls.is_empty()))
            .count();
        if published >= count || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (at most [`PUBLISH_TIMEOUT`]) until two `endpoint status --cluster`
/// answers half a second apart are the same: a member fresh from bootstrap
/// still commits to its backend for a moment (publishing itself, the
/// cluster version), so sizes could change between the two etcdctls' runs.
fn wait_status_settled(endpoint: &str) {
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    let status = || {
        let args = ["endpoint", "status", "--cluster", "-w", "json"].map(String::from);
        run(REFERENCE_ETCDCTL, endpoint, &args).stdout
    };
    let mut last = status();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = status();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Both etcdctls with `--cluster` against our own 3-member cluster. This
/// needs our MemberList to carry every member's client URLs.
#[test]
fn cluster_flag_on_our_cluster_prints_alike() {
    let cluster = Cluster::start(Flavour::Ours, 3);
    let first = cluster.member(0).client_url();
    wait_client_urls_published(&first, 3);
    wait_status_settled(&first);
    let outputs = compare_on(
        &first,
        &first,
        &[
            step("endpoint status --cluster -w json"),
            step("endpoint hashkv --cluster"),
        ],
        &[],
    );
    assert_eq!(outputs[1].stdout.lines().count(), 3, "{:#?}", outputs[1]);
}

#[test]
fn snapshot_save_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db").display().to_string();
    let missing = dir.path().join("no/such/dir.db").display().to_string();
    let outputs = compare_reads(
        Flavour::Reference,
        &[step("put k v")],
        &[
            step(&format!("snapshot save {file}")),
            step(&format!("snapshot save {file} -w json")),
            step(&format!("snapshot save {missing}")),
            step("snapshot save"),
        ],
    );
    assert!(
        outputs[0].stdout.starts_with("Snapshot saved at"),
        "{outputs:#?}"
    );
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let server = Server::start(Flavour::Reference, &[]);
    let both = format!("{},{}", server.client_url(), server.client_url());
    compare_on(&both, &both, &[step(&format!("snapshot save {file}"))], &[]);
}

#[test]
fn snapshot_save_from_our_server_prints_alike() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db").display().to_string();
    compare_reads(
        Flavour::Ours,
        &[step("put k v")],
        &[step(&format!("snapshot save {file}"))],
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert!(meta.len() > 0);
    // Both etcdctls write the file readable by its owner only.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
