//! Runtime membership: member list with everyone's client URLs, a learner
//! that joins, catches up, is promoted and takes writes, removal of a
//! follower and of the leader (the removed process exits), peer URL
//! updates, leader transfer, a five-member cluster losing its leader, and
//! etcd's errors checked against Debian's etcd 3.4.23 through Debian's
//! etcdctl.

use std::time::{Duration, Instant};

use retcd_tests::cluster::Cluster;
use retcd_tests::etcdctl::{self, CtlOutput};
use retcd_tests::mask::mask;
use retcd_tests::ports::free_port;
use retcd_tests::server::Flavour;

/// How long a condition may take to become true (catch-up, elections, exits).
const WAIT: Duration = Duration::from_secs(30);
/// Pause between polls.
const POLL: Duration = Duration::from_millis(200);
/// How long a removed member may take to exit (etcd waits ten heartbeats).
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Debian etcdctl against member `i`.
fn ctl(cluster: &Cluster, i: usize, args: &[&str]) -> CtlOutput {
    etcdctl::run(cluster.member(i).client_port(), args, None)
}

/// Debian etcdctl against every listed member at once.
fn ctl_all(cluster: &Cluster, members: &[usize], args: &[&str]) -> CtlOutput {
    let endpoints: Vec<String> = members
        .iter()
        .map(|&i| cluster.member(i).client_url())
        .collect();
    etcdctl::run_binary(
        etcdctl::REFERENCE_ETCDCTL,
        &endpoints.join(","),
        args,
        &[],
        None,
        WAIT,
    )
}

/// Runs `run` until `done` accepts its output or [`WAIT`] passes; returns the last output.
fn retry(mut run: impl FnMut() -> CtlOutput, done: impl Fn(&CtlOutput) -> bool) -> CtlOutput {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = run();
        if done(&out) || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(POLL);
    }
}

/// The last line etcdctl printed on stderr (its `Error: ...`).
fn error_line(out: &CtlOutput) -> &str {
    out.stderr.lines().last().unwrap_or("")
}

/// `member add` on member `on`, retried while the cluster is "unhealthy"
/// (etcd wants every peer connected for 5 s first).
fn member_add(cluster: &Cluster, on: usize, args: &[&str]) -> CtlOutput {
    retry(
        || ctl(cluster, on, args),
        |out| !out.stderr.contains("etcdserver: unhealthy cluster"),
    )
}

/// The member id `member add` printed ("Member <id> added to cluster <cid>").
fn added_id(out: &CtlOutput) -> String {
    out.assert_success();
    let first = out.stdout.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.get(2), Some(&"added"), "{out:#?}");
    words[1].to_string()
}

/// The `ETCD_INITIAL_CLUSTER` `member add` printed for the new member.
fn initial_cluster(out: &CtlOutput) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out:#?}"))
        .to_string()
}

/// Member `i`'s `endpoint status` fields (endpoint, id, version, size, is
/// leader, is learner, term, index, applied index, errors).
fn status_fields(cluster: &Cluster, i: usize) -> Vec<String> {
    let out = ctl(cluster, i, &["endpoint", "status"]);
    out.assert_success();
    out.stdout.trim().split(", ").map(str::to_string).collect()
}

/// The parsed `member list -w json` of member `i`.
fn member_list_json(cluster: &Cluster, i: usize) -> serde_json::Value {
    let out = ctl(cluster, i, &["member", "list", "-w", "json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:#?}"))
}

/// The listed member whose id prints as `hex_id`.
fn listed<'a>(list: &'a serde_json::Value, hex_id: &str) -> Option<&'a serde_json::Value> {
    list["members"]
        .as_array()?
        .iter()
        .find(|m| m["ID"].as_u64().map(|id| format!("{id:x}")).as_deref() == Some(hex_id))
}

/// Member `i`'s id in hex.
fn hex_id(cluster: &mut Cluster, i: usize) -> String {
    format!("{:x}", cluster.member_ids().expect("member ids")[i])
}

#[test]
fn every_member_lists_every_members_client_urls() {
    let cluster = Cluster::ours(3);
    for i in 0..3 {
        // Each member publishes its client URLs through raft once it has started.
        let published = retry(
            || ctl(&cluster, i, &["member", "list", "-w", "json"]),
            |out| out.stdout.matches("clientURLs").count() == 3,
        );
        let list: serde_json::Value = serde_json::from_str(&published.stdout).expect("json");
        let members = list["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{list}");
        for m in cluster.members() {
            let entry = members
                .iter()
                .find(|e| e["name"] == m.name())
                .unwrap_or_else(|| panic!("{} missing from {list}", m.name()));
            assert_eq!(
                entry["clientURLs"],
                serde_json::json!([m.client_url()]),
                "{list}"
            );
            assert_eq!(
                entry["peerURLs"],
                serde_json::json!([m.peer_url()]),
                "{list}"
            );
            assert!(entry.get("isLearner").is_none(), "{list}");
        }
    }
}

#[test]
fn a_learner_joins_catches_up_is_promoted_and_a_removed_member_exits() {
    let mut cluster = Cluster::ours(3);
    ctl(&cluster, 0, &["put", "before-join", "v1"]).assert_success();

    let new = cluster.add_member("m3");
    let peer = cluster.member(new).peer_url();
    let add = member_add(
        &cluster,
        0,
        &["member", "add", "m3", "--peer-urls", &peer, "--learner"],
    );
    let id = added_id(&add);
    let list = member_list_json(&cluster, 1);
    let entry = listed(&list, &id).unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(entry["isLearner"], true, "{list}");
    assert!(
        entry.get("name").is_none(),
        "an unstarted member has no name: {list}"
    );

    cluster.start_joining(new, &initial_cluster(&add));
    let read = retry(
        || {
            ctl(
                &cluster,
                new,
                &[
                    "get",
                    "before-join",
                    "--consistency=s",
                    "--print-value-only",
                ],
            )
        },
        |out| out.stdout == "v1\n",
    );
    assert_eq!(
        read.stdout,
        "v1\n",
        "the learner did not catch up: {read:#?}\n{}",
        cluster.logs()
    );
    assert_eq!(status_fields(&cluster, new)[5], "true", "Status.isLearner");
    let put = ctl(&cluster, new, &["put", "k", "v"]);
    assert_eq!(
        error_line(&put),
        "Error: etcdserver: rpc not supported for learner"
    );
    // The learner published its name and client URL through raft.
    let started = retry(
        || ctl(&cluster, 0, &["member", "list"]),
        |out| out.stdout.contains(", started, m3, "),
    );
    assert!(started.stdout.contains(", started, m3, "), "{started:#?}");

    // Promote through a follower: the leader alone knows the learner's progress.
    let leader = cluster.wait_leader(WAIT).expect("leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let promote = retry(
        || ctl(&cluster, follower, &["member", "promote", &id]),
        |out| out.code == 0,
    );
    assert!(
        promote
            .stdout
            .starts_with(&format!("Member {id:>16} promoted in cluster ")),
        "{promote:#?}"
    );
    let voter = retry(
        || ctl(&cluster, new, &["endpoint", "status"]),
        |out| out.stdout.split(", ").nth(5) == Some("false"),
    );
    assert_eq!(
        voter.stdout.split(", ").nth(5),
        Some("false"),
        "promoted member is a voter"
    );
    ctl(&cluster, new, &["put", "after-promote", "v2"]).assert_success();

    // The joined member keeps its identity across a restart (the backend it
    // got from the leader's snapshot carried the leader's).
    cluster.restart(new);
    assert_eq!(
        status_fields(&cluster, new)[1],
        id,
        "member id after a restart"
    );
    let read = retry(
        || {
            ctl(
                &cluster,
                new,
                &["get", "after-promote", "--print-value-only"],
            )
        },
        |out| out.stdout == "v2\n",
    );
    assert_eq!(read.stdout, "v2\n", "{read:#?}");

    // Remove a member that is not the leader; its process stops by itself.
    let leader = cluster.wait_leader(WAIT).expect("leader");
    let victim = (0..3).find(|&i| i != leader).expect("a follower");
    let victim_id = hex_id(&mut cluster, victim);
    let remove = retry(
        || ctl(&cluster, leader, &["member", "remove", &victim_id]),
        |out| !out.stderr.contains("etcdserver: unhealthy cluster"),
    );
    remove.assert_success();
    assert!(
        remove
            .stdout
            .starts_with(&format!("Member {victim_id:>16} removed from cluster ")),
        "{remove:#?}"
    );
    let exit = cluster.member_mut(victim).wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit,
        Some(0),
        "the removed member did not exit cleanly\n{}",
        cluster.logs()
    );
    ctl(&cluster, new, &["put", "after-remove", "v3"]).assert_success();
    let list = member_list_json(&cluster, new);
    assert_eq!(list["members"].as_array().map(Vec::len), Some(3), "{list}");
    assert!(listed(&list, &victim_id).is_none(), "{list}");
}

#[test]
fn removing_the_leader_stops_it_and_the_rest_elect_a_new_one() {
    let mut cluster = Cluster::ours(3);
    let leader = cluster.wait_leader(WAIT).expect("leader");
    let leader_id = hex_id(&mut cluster, leader);
    let remove = retry(
        || ctl(&cluster, leader, &["member", "remove", &leader_id]),
        |out| !out.stderr.contains("etcdserver: unhealthy cluster"),
    );
    remove.assert_success();
    let exit = cluster.member_mut(leader).wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit,
        Some(0),
        "the removed leader did not exit\n{}",
        cluster.logs()
    );
    let new_leader = cluster.wait_leader(WAIT).expect("a new leader");
    assert_ne!(new_leader, leader);
    let put = retry(
        || ctl(&cluster, new_leader, &["put", "k", "v"]),
        |out| out.code == 0,
    );
    put.assert_success();
    let list = member_list_json(&cluster, new_leader);
    assert_eq!(list["members"].as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn a_member_removed_while_down_stops_when_it_comes_back() {
    let mut cluster = Cluster::ours(3);
    let leader = cluster.wait_leader(WAIT).expect("leader");
    let victim = (leader + 1) % 3;
    let victim_id = hex_id(&mut cluster, victim);
    cluster.kill9(victim);
    let remove = retry(
        || ctl(&cluster, leader, &["member", "remove", &victim_id]),
        |out| !out.stderr.contains("etcdserver: unhealthy cluster"),
    );
    remove.assert_success();
    cluster.start_detached(victim);
    let exit = cluster.member_mut(victim).wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit,
        Some(0),
        "the removed member kept running\n{}",
        cluster.logs()
    );
    assert!(
        cluster
            .member(victim)
            .log()
            .contains("permanently removed from the cluster"),
        "{}",
        cluster.logs()
    );
}

#[test]
fn member_update_changes_peer_urls() {
    let mut cluster = Cluster::ours(3);
    let id = hex_id(&mut cluster, 1);
    let own = cluster.member(1).peer_url();
    let extra = format!(
        "http://127.0.0.2:{}",
        cluster.member(1).peer_url().rsplit(':').next().unwrap()
    );
    let both = format!("{own},{extra}");
    let update = ctl(
        &cluster,
        0,
        &["member", "update", &id, "--peer-urls", &both],
    );
    assert!(
        update
            .stdout
            .starts_with(&format!("Member {id:>16} updated in cluster ")),
        "{update:#?}"
    );
    for i in 0..3 {
        let list = retry(
            || ctl(&cluster, i, &["member", "list", "-w", "json"]),
            |out| out.stdout.contains(&extra),
        );
        let list: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
        let entry = listed(&list, &id).expect("listed");
        assert_eq!(entry["peerURLs"], serde_json::json!([own, extra]), "{list}");
    }
    let taken = ctl(
        &cluster,
        0,
        &[
            "member",
            "update",
            &id,
            "--peer-urls",
            &cluster.member(2).peer_url(),
        ],
    );
    assert_eq!(
        error_line(&taken),
        "Error: etcdserver: Peer URLs already exists"
    );
    ctl(&cluster, 0, &["member", "update", &id, "--peer-urls", &own]).assert_success();
    ctl(&cluster, 1, &["put", "k", "v"]).assert_success();
}

#[test]
fn move_leader_makes_the_target_lead() {
    let mut cluster = Cluster::ours(3);
    let leader = cluster.wait_leader(WAIT).expect("leader");
    let target = (leader + 1) % 3;
    let (leader_id, target_id) = (hex_id(&mut cluster, leader), hex_id(&mut cluster, target));
    let moved = ctl_all(&cluster, &[0, 1, 2], &["move-leader", &target_id]);
    assert_eq!(
        moved.stdout,
        format!("Leadership transferred from {leader_id} to {target_id}\n"),
        "{moved:#?}"
    );
    assert_eq!(cluster.wait_leader(WAIT).expect("leader"), target);
    let not_leader = ctl(&cluster, leader, &["move-leader", &leader_id]);
    assert_eq!(
        error_line(&not_leader),
        format!(
            "Error: no leader endpoint given at [{}]",
            cluster.member(leader).client_url()
        )
    );
}

#[test]
fn five_members_keep_writing_after_the_leader_dies() {
    let mut cluster = Cluster::ours(5);
    let leader = cluster.wait_leader(WAIT).expect("leader");
    cluster.kill9(leader);
    let new_leader = cluster.wait_leader(WAIT).expect("a new leader");
    assert_ne!(new_leader, leader);
    let writer = (new_leader + 1..new_leader + 5)
        .map(|i| i % 5)
        .find(|&i| i != leader)
        .expect("a live follower");
    let put = retry(
        || ctl(&cluster, writer, &["put", "after-kill", "v"]),
        |out| out.code == 0,
    );
    put.assert_success();
    for i in (0..5).filter(|&i| i != leader) {
        let get = ctl(&cluster, i, &["get", "after-kill", "--print-value-only"]);
        assert_eq!(get.stdout, "v\n", "member {i}: {get:#?}");
    }
}

/// One masked line for a step: exit code, first stdout line, last stderr
/// line. etcdctl prints the cluster id with `%16x`, so a shorter (random) id
/// gets a padding space: masked too.
fn step_line(step: &str, out: &CtlOutput) -> String {
    let masked = mask(&format!(
        "{step}: {} | {} | {}",
        out.code,
        out.stdout.lines().next().unwrap_or(""),
        error_line(out)
    ));
    masked.replace("  <hexid>", " <hexid>")
}

/// Runs the membership error script against a cluster of `flavour`; returns
/// one masked line per step: exit code, first stdout line, last stderr line.
fn error_script(flavour: Flavour) -> Vec<String> {
    let mut cluster = Cluster::start(flavour, 3);
    let ids = cluster.member_ids().expect("member ids");
    let m1 = format!("{:x}", ids[1]);
    let unknown = "abcdef123456";
    let fresh = || format!("http://127.0.0.1:{}", free_port());
    let mut lines = Vec::new();
    let learner = member_add(
        &cluster,
        0,
        &["member", "add", "l1", "--peer-urls", &fresh(), "--learner"],
    );
    lines.push(step_line("add learner", &learner));
    let learner_id = added_id(&learner);
    let steps: Vec<(&str, Vec<String>)> = vec![
        (
            "remove unknown",
            vec!["member".into(), "remove".into(), unknown.into()],
        ),
        (
            "update unknown",
            vec![
                "member".into(),
                "update".into(),
                unknown.into(),
                "--peer-urls".into(),
                fresh(),
            ],
        ),
        (
            "promote voter",
            vec!["member".into(), "promote".into(), m1.clone()],
        ),
        (
            "promote unknown",
            vec!["member".into(), "promote".into(), unknown.into()],
        ),
        (
            "promote unstarted learner",
            vec!["member".into(), "promote".into(), learner_id.clone()],
        ),
        (
            "add taken url",
            vec![
                "member".into(),
                "add".into(),
                "x".into(),
                "--peer-urls".into(),
                cluster.member(1).peer_url(),
            ],
        ),
        (
            "add bad url",
            vec![
                "member".into(),
                "add".into(),
                "x".into(),
                "--peer-urls".into(),
                "http://127.0.0.1".into(),
            ],
        ),
        (
            "add second learner",
            vec![
                "member".into(),
                "add".into(),
                "l2".into(),
                "--peer-urls".into(),
                fresh(),
                "--learner".into(),
            ],
        ),
    ];
    for (step, args) in &steps {
        lines.push(step_line(
            step,
            &ctl(
                &cluster,
                0,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        ));
    }
    let voter = ctl(
        &cluster,
        0,
        &["member", "add", "v1", "--peer-urls", &fresh()],
    );
    lines.push(step_line("add voter", &voter));
    let voter_id = added_id(&voter);
    lines.push(step_line(
        "add while a voter is down",
        &ctl(
            &cluster,
            0,
            &["member", "add", "v2", "--peer-urls", &fresh()],
        ),
    ));
    let mut listed: Vec<String> = mask(&ctl(&cluster, 0, &["member", "list"]).stdout)
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    lines.extend(listed);
    lines.push(step_line(
        "remove voter",
        &ctl(&cluster, 0, &["member", "remove", &voter_id]),
    ));
    lines.push(step_line(
        "remove learner",
        &ctl(&cluster, 0, &["member", "remove", &learner_id]),
    ));
    lines.push(step_line(
        "move to unknown",
        &ctl_all(&cluster, &[0, 1, 2], &["move-leader", unknown]),
    ));
    lines.push(step_line(
        "move to member 1",
        &ctl_all(&cluster, &[0, 1, 2], &["move-leader", &m1]),
    ));
    lines
}

#[test]
fn membership_errors_match_etcd() {
    let reference = error_script(Flavour::Reference);
    let ours = error_script(Flavour::Ours);
    assert_eq!(ours, reference);
}

/// Adds and starts a learner on a cluster of `flavour`, then records what
/// Debian etcdctl prints on the learner and after promoting it, masked.
fn learner_script(flavour: Flavour) -> Vec<String> {
    let mut cluster = Cluster::start(flavour, 3);
    ctl(&cluster, 0, &["put", "before-join", "v1"]).assert_success();
    let new = cluster.add_member("m3");
    let peer = cluster.member(new).peer_url();
    let add = member_add(
        &cluster,
        0,
        &["member", "add", "m3", "--peer-urls", &peer, "--learner"],
    );
    let id = added_id(&add);
    let mut lines = vec![step_line("add learner", &add)];
    cluster.start_joining(new, &initial_cluster(&add));
    let read = retry(
        || ctl(&cluster, new, &["get", "before-join", "--consistency=s"]),
        |out| out.stdout == "before-join\nv1\n",
    );
    lines.push(step_line("serializable get on the learner", &read));
    lines.push(step_line(
        "put on the learner",
        &ctl(&cluster, new, &["put", "k", "v"]),
    ));
    lines.push(step_line(
        "member list on the learner",
        &ctl(&cluster, new, &["member", "list"]),
    ));
    lines.extend(learner_gateway_lines(cluster.member(new).client_port()));
    let listed = retry(
        || ctl(&cluster, 0, &["member", "list"]),
        |out| out.stdout.contains(", started, m3, "),
    );
    let mut members: Vec<String> = mask(&listed.stdout).lines().map(str::to_string).collect();
    members.sort();
    lines.extend(members);
    let learner_flags = |cluster: &Cluster| {
        let fields = status_fields(cluster, new);
        format!("leader {} learner {}", fields[4], fields[5])
    };
    lines.push(learner_flags(&cluster));
    let promote = retry(
        || ctl(&cluster, 0, &["member", "promote", &id]),
        |out| out.code == 0,
    );
    lines.push(step_line("promote", &promote));
    let voter = retry(
        || ctl(&cluster, new, &["endpoint", "status"]),
        |out| out.stdout.split(", ").nth(5) == Some("false"),
    );
    lines.push(format!(
        "after promote: {}",
        voter.stdout.split(", ").nth(5).unwrap_or("")
    ));
    lines.push(step_line(
        "put after promote",
        &ctl(&cluster, new, &["put", "k", "v"]),
    ));
    lines
}

/// What the HTTP/JSON gateway of a learner answers to calls it serves and
/// calls it refuses: the status, and the body of refusals (a served call's
/// body carries member-specific header fields).
fn learner_gateway_lines(port: u16) -> Vec<String> {
    let calls = [
        ("/v3/kv/put", r#"{"key":"aw==","value":"dg=="}"#),
        ("/v3/kv/range", r#"{"key":"YmVmb3JlLWpvaW4="}"#),
        (
            "/v3/kv/range",
            r#"{"key":"YmVmb3JlLWpvaW4=","serializable":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"#),
        ("/v3/lease/grant", r#"{"TTL":"60"}"#),
        ("/v3/maintenance/status", "{}"),
        ("/v3/cluster/member/list", "{}"),
    ];
    calls
        .iter()
        .map(|(path, body)| {
            let response = retcd_tests::http::post(port, path, body.as_bytes())
                .unwrap_or_else(|e| panic!("POST {path}: {e:#}"));
            let shown = match response.status {
                200 => String::new(),
                _ => String::from_utf8_lossy(&response.body).trim().to_string(),
            };
            format!("gateway {path} {body}: {} {shown}", response.status)
        })
        .collect()
}

#[test]
fn learner_behaviour_matches_etcd() {
    let reference = learner_script(Flavour::Reference);
    let ours = learner_script(Flavour::Ours);
    assert_eq!(ours, reference);
}
