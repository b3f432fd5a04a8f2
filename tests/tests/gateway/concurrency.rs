//! The Lock and Election services through the gateway, against the
//! reference: the same sequence on both servers, answers compared after
//! masking (ids, raft term, non-zero leases), the important fields checked
//! directly. Leases are granted with chosen ids, so the participant keys
//! (`<name>/<lease hex>`) are the same on both.
//!
//! A lock or campaign that must wait holds its HTTP request open: those run
//! on a thread, and the test checks that they are still waiting before the
//! holder lets go and that they finish after.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use retcd_tests::gateway::{Answer, b64, call, compare_gateway, compare_gateway_prefixes, send};
use retcd_tests::{Server, mask_json};
use serde_json::{Value, json};

/// How long a waiting call must stay blocked to count as waiting.
const STILL_WAITING: Duration = Duration::from_millis(700);
/// Longest wait for a call or stream line that should come.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Lease ids the tests grant (hex 64 and c8 in the keys).
const LEASE_A: i64 = 100;
/// The second session's lease.
const LEASE_B: i64 = 200;

/// Grants the two sessions' leases with fixed ids.
fn grant_leases(server: &Server) {
    for id in [LEASE_A, LEASE_B] {
        let answer = send(
            server,
            "/v3",
            &call("lease/grant", json!({"TTL": "60", "ID": id.to_string()})),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

/// Starts `method` with `body` on a thread; its answer arrives on the receiver.
fn start<'s>(
    scope: &'s thread::Scope<'s, '_>,
    server: &'s Server,
    method: &str,
    body: Value,
) -> mpsc::Receiver<Answer> {
    let (tx, rx) = mpsc::channel();
    let c = call(method, body);
    scope.spawn(move || {
        let _ = tx.send(send(server, "/v3", &c));
    });
    rx
}

/// Asserts that the call behind `rx` has not answered yet.
fn assert_waiting(rx: &mpsc::Receiver<Answer>, what: &str, server: &Server) {
    match rx.recv_timeout(STILL_WAITING) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!(
            "{}: {what} should still wait, got {other:?}",
            server.flavour().label()
        ),
    }
}

/// The answer of the call behind `rx`, which must come now.
fn arrived(rx: &mpsc::Receiver<Answer>, what: &str, server: &Server) -> Answer {
    rx.recv_timeout(ARRIVAL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {what} did not finish: {e}", server.flavour().label()))
}

/// Lock, a second lock on the same name that waits, unlock, the second
/// lock granted, unlock again; every answer in order.
fn lock_sequence(server: &Server) -> Vec<Answer> {
    grant_leases(server);
    let post = |method: &str, body: Value| send(server, "/v3", &call(method, body));
    let mut answers = Vec::new();
    thread::scope(|scope| {
        let first = post(
            "lock/lock",
            json!({"name": b64("l"), "lease": LEASE_A.to_string()}),
        );
        let waiter = start(
            scope,
            server,
            "lock/lock",
            json!({"name": b64("l"), "lease": LEASE_B.to_string()}),
        );
        assert_waiting(&waiter, "the second lock", server);
        // A write while it waits moves the revision the grant reports.
        let put = post("kv/put", json!({"key": b64("x"), "value": b64("y")}));
        let key = first.body["key"].as_str().unwrap_or_default().to_string();
        let unlock = post("lock/unlock", json!({"key": key}));
        let second = arrived(&waiter, "the second lock", server);
        let second_key = second.body["key"].as_str().unwrap_or_default().to_string();
        let unlock_second = post("lock/unlock", json!({"key": second_key}));
        let left = post(
            "kv/range",
            json!({"key": b64("l/"), "range_end": b64("l0")}),
        );
        answers = vec![first, put, unlock, second, unlock_second, left];
    });
    answers
}

#[test]
fn lock_waits_for_unlock_as_reference() {
    let (reference, ours) = Server::pair(&[]);
    let want = lock_sequence(&reference);
    let got = lock_sequence(&ours);
    assert_eq!(got, want);
    let [first, put, unlock, second, unlock_second, left] = &want[..] else {
        panic!("{want:?}");
    };
    for answer in &want {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(first.body["key"], b64("l/64"));
    assert_eq!(first.body["header"]["revision"], "2");
    assert_eq!(put.body["header"]["revision"], "4");
    assert_eq!(unlock.body["header"]["revision"], "5");
    // Granted by the read that found no older key, after the unlock.
    assert_eq!(second.body["key"], b64("l/c8"));
    assert_eq!(second.body["header"]["revision"], "5");
    assert_eq!(unlock_second.body["header"]["revision"], "6");
    assert_eq!(left.body["count"], Value::Null, "{left:?}");
}

/// One streaming `POST /v3/election/observe`, read line by line.
struct Observer {
    /// The connection, kept open while the test reads.
    tcp: TcpStream,
    /// Bytes received so far.
    raw: Vec<u8>,
}

impl Observer {
    /// Opens the stream on election `name`.
    fn open(server: &Server, name: &str) -> Observer {
        let mut tcp = TcpStream::connect(("127.0.0.1", server.client_port())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let body = json!({"name": b64(name)}).to_string();
        write!(
            tcp,
            "POST /v3/election/observe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        Observer {
            tcp,
            raw: Vec::new(),
        }
    }

    /// The first `count` lines of the stream, masked, waiting for them.
    fn lines(&mut self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            let lines = stream_lines(&self.raw);
            if lines.len() >= count {
                return lines.into_iter().take(count).collect();
            }
            assert!(
                Instant::now() < deadline,
                "observe: {count} lines expected: {}",
                String::from_utf8_lossy(&self.raw)
            );
            match self.tcp.read(&mut buf) {
                Ok(0) => panic!("observe ended: {}", String::from_utf8_lossy(&self.raw)),
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }
}

/// The JSON lines of a chunked 200 answer received so far, masked.
fn stream_lines(raw: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, mut rest)) = text.split_once("\r\n\r\n") else {
        return Vec::new();
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body.lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            mask_json(&mut v);
            v
        })
        .collect()
}

/// What the election sequence saw: the answers in order and the observer's
/// lines.
struct ElectionRun {
    /// The unary answers.
    answers: Vec<Answer>,
    /// The observe stream's lines.
    observed: Vec<Value>,
}

/// Observe (before anyone leads), campaign, a second candidate that waits,
/// proclaim, leader, resign, the second candidate elected, errors by a
/// stale leader key.
fn election_sequence(server: &Server) -> ElectionRun {
    grant_leases(server);
    let post = |method: &str, body: Value| send(server, "/v3", &call(method, body));
    let mut observer = Observer::open(server, "e");
    let mut run = ElectionRun {
        answers: Vec::new(),
        observed: Vec::new(),
    };
    thread::scope(|scope| {
        let no_leader = post("election/leader", json!({"name": b64("e")}));
        let won = post(
            "election/campaign",
            json!({"name": b64("e"), "lease": LEASE_A.to_string(), "value": b64("a")}),
        );
        let leader_key = won.body["leader"].clone();
        // The masked lease is of no use in a request: the real one.
        let mut key = leader_key.clone();
        key["lease"] = json!(LEASE_A.to_string());
        let candidate = start(
            scope,
            server,
            "election/campaign",
            json!({"name": b64("e"), "lease": LEASE_B.to_string(), "value": b64("b")}),
        );
        assert_waiting(&candidate, "the second campaign", server);
        let proclaimed = post(
            "election/proclaim",
            json!({"leader": key, "value": b64("a2")}),
        );
        let leader = post("election/leader", json!({"name": b64("e")}));
        let mut stale = key.clone();
        stale["rev"] = json!("99");
        let stale_proclaim = post(
            "election/proclaim",
            json!({"leader": stale, "value": b64("z")}),
        );
        let stale_resign = post("election/resign", json!({"leader": stale}));
        let resigned = post("election/resign", json!({"leader": key}));
        let elected = arrived(&candidate, "the second campaign", server);
        let new_leader = post("election/leader", json!({"name": b64("e")}));
        run.observed = observer.lines(3);
        run.answers = vec![
            no_leader,
            won,
            proclaimed,
            leader,
            stale_proclaim,
            stale_resign,
            resigned,
            elected,
            new_leader,
        ];
    });
    run
}

#[test]
fn election_matches_reference() {
    let (reference, ours) = Server::pair(&[]);
    let want = election_sequence(&reference);
    let got = election_sequence(&ours);
    assert_eq!(got.answers, want.answers);
    assert_eq!(got.observed, want.observed);
    let [
        no_leader,
        won,
        proclaimed,
        leader,
        stale_proclaim,
        stale_resign,
        resigned,
        elected,
        new_leader,
    ] = &want.answers[..]
    else {
        panic!("{:?}", want.answers);
    };
    assert_eq!(no_leader.status, 500);
    assert_eq!(no_leader.body["error"], "election: no leader");
    assert_eq!(no_leader.body["code"], 2);
    assert_eq!(won.body["leader"]["name"], b64("e"));
    assert_eq!(won.body["leader"]["key"], b64("e/64"));
    assert_eq!(won.body["leader"]["rev"], "2");
    assert_eq!(won.body["header"]["revision"], "2");
    assert_eq!(proclaimed.body["header"]["revision"], "4");
    assert_eq!(leader.body["kv"]["value"], b64("a2"));
    assert_eq!(leader.body["kv"]["create_revision"], "2");
    assert_eq!(leader.body["kv"]["version"], "2");
    assert_eq!(stale_proclaim.status, 500);
    assert_eq!(stale_proclaim.body["message"], "election: not leader");
    // Resigning with a stale key is no error and changes nothing.
    assert_eq!(stale_resign.status, 200);
    assert_eq!(stale_resign.body["header"]["revision"], "4");
    assert_eq!(resigned.body["header"]["revision"], "5");
    assert_eq!(elected.body["leader"]["key"], b64("e/c8"));
    assert_eq!(elected.body["leader"]["rev"], "3");
    assert_eq!(new_leader.body["kv"]["value"], b64("b"));
    let values: Vec<&Value> = want
        .observed
        .iter()
        .map(|l| &l["result"]["kv"]["value"])
        .collect();
    assert_eq!(
        values,
        [&json!(b64("a")), &json!(b64("a2")), &json!(b64("b"))]
    );
    let revisions: Vec<&Value> = want
        .observed
        .iter()
        .map(|l| &l["result"]["header"]["revision"])
        .collect();
    assert_eq!(revisions, [&json!("2"), &json!("4"), &json!("5")]);
}

/// Errors and edge cases of the unary calls, in one sequence.
#[test]
fn lock_and_election_errors_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let leader_key = json!({"name": b64("e"), "key": b64("e/4d2"), "rev": "3", "lease": "1234"});
    let calls = vec![
        call("lease/grant", json!({"TTL": "60", "ID": "1234"})),
        call("lock/lock", json!({"name": b64("l"), "lease": "999"})),
        call(
            "election/campaign",
            json!({"name": b64("e"), "lease": "999"}),
        ),
        // An empty name is allowed: the key is "/<lease hex>".
        call("lock/lock", json!({"lease": "1234"})),
        call("lock/lock", json!({"name": "", "lease": "1234"})),
        call("lock/unlock", json!({})),
        call("lock/unlock", json!({"key": b64("none")})),
        call(
            "election/campaign",
            json!({"name": b64("e"), "lease": "1234", "value": b64("v")}),
        ),
        // The same session campaigning again with another value proclaims it.
        call(
            "election/campaign",
            json!({"name": b64("e"), "lease": "1234", "value": b64("w")}),
        ),
        call("election/leader", json!({"name": b64("e")})),
        call("election/proclaim", json!({"value": b64("v")})),
        call(
            "election/proclaim",
            json!({"leader": null, "value": b64("v")}),
        ),
        call(
            "election/proclaim",
            json!({"leader": {"name": b64("e"), "key": b64("e/4d2"), "rev": "2", "lease": "1234"}}),
        ),
        call(
            "election/proclaim",
            json!({"leader": leader_key, "value": b64("x")}),
        ),
        call("election/resign", json!({})),
        call("election/resign", json!({"leader": leader_key})),
        call("election/leader", json!({"name": b64("e")})),
        call("lock/lock", json!({"name": "b"})),
        call("lock/lock", json!({"name": 5})),
        call("election/leader", json!({"name": [1, 2]})),
        call("election/proclaim", json!({"leader": {"rev": "x"}})),
        call("election/proclaim", json!({"leader": []})),
        call("election/campaign", json!({"lease": true})),
        retcd_tests::gateway::raw_call("lock/lock", "{\"name\":"),
        retcd_tests::gateway::raw_call("election/resign", "x"),
        retcd_tests::gateway::raw_call("election/observe", "x"),
        retcd_tests::gateway::raw_call("election/observe", "{\"name\":"),
        call("kv/range", json!({"key": "AA==", "range_end": "AA=="})),
    ];
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    let error = |i: usize| {
        (
            answers[i].status,
            answers[i].body["error"].clone(),
            answers[i].body["code"].clone(),
        )
    };
    let unknown = |text: &str| (500, json!(text), json!(2));
    let invalid = |text: &str| (400, json!(text), json!(3));
    assert_eq!(error(1), unknown("etcdserver: requested lease not found"));
    assert_eq!(error(2), unknown("etcdserver: requested lease not found"));
    assert_eq!(answers[3].body["key"], b64("/4d2"));
    assert_eq!(error(5), unknown("etcdserver: key is not provided"));
    assert_eq!(answers[6].status, 200);
    assert_eq!(
        answers[8].body["leader"]["rev"],
        answers[7].body["leader"]["rev"]
    );
    assert_eq!(answers[9].body["kv"]["value"], b64("w"));
    assert_eq!(error(10), unknown("\"leader\" field must be provided"));
    assert_eq!(error(11), unknown("\"leader\" field must be provided"));
    assert_eq!(error(12), unknown("election: not leader"));
    assert_eq!(answers[13].status, 200);
    assert_eq!(error(14), unknown("\"leader\" field must be provided"));
    assert_eq!(answers[15].status, 200);
    assert_eq!(error(16), unknown("election: no leader"));
    assert_eq!(error(17), invalid("illegal base64 data at input byte 0"));
    assert_eq!(
        error(18),
        invalid("json: cannot unmarshal number into Go value of type []uint8")
    );
    assert_eq!(error(23), invalid("unexpected EOF"));
    assert_eq!(
        error(25),
        invalid("invalid character 'x' looking for beginning of value")
    );
}

/// etcd 3.4 serves the routes under `/v3beta` too; ours under `/v3alpha`
/// answers as the reference does under `/v3`.
#[test]
fn other_prefixes_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let calls = vec![
        call("lease/grant", json!({"TTL": "60", "ID": "1234"})),
        call("lock/lock", json!({"name": b64("l"), "lease": "1234"})),
        call("lock/unlock", json!({"key": b64("l/4d2")})),
        call(
            "election/campaign",
            json!({"name": b64("e"), "lease": "1234", "value": b64("v")}),
        ),
        call("election/leader", json!({"name": b64("e")})),
        call(
            "election/proclaim",
            json!({"leader": {"name": b64("e"), "key": b64("e/4d2"), "rev": "4", "lease": "1234"}, "value": b64("w")}),
        ),
        call(
            "election/resign",
            json!({"leader": {"name": b64("e"), "key": b64("e/4d2"), "rev": "4", "lease": "1234"}}),
        ),
        call("election/leader", json!({"name": b64("e")})),
    ];
    let answers = compare_gateway(&reference, &ours, "/v3beta", &calls);
    assert!(answers[..7].iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(answers[7].body["error"], "election: no leader");
    let (reference, ours) = Server::pair(&[]);
    let alpha = reference.http_post("/v3alpha/lock/lock", "{}");
    assert_eq!(alpha.status, 404, "the reference has no /v3alpha gateway");
    compare_gateway_prefixes(&reference, "/v3", &ours, "/v3alpha", &calls);
}

/// The gRPC answer of one step: revision (or error code and text) and key.
type GrpcStep = Result<(i64, Vec<u8>), (tonic::Code, String)>;

/// The header revision and `key` of a successful call, or its error.
fn grpc_step<T>(
    result: Result<T, etcd_client::Error>,
    parts: impl Fn(&T) -> (i64, Vec<u8>),
) -> GrpcStep {
    match result {
        Ok(resp) => Ok(parts(&resp)),
        Err(etcd_client::Error::GRpcStatus(status)) => {
            Err((status.code(), status.message().to_string()))
        }
        Err(other) => panic!("not a gRPC status: {other:?}"),
    }
}

/// Lock and election over gRPC (`v3lockpb.Lock`, `v3electionpb.Election`).
async fn grpc_sequence(server: &Server) -> Vec<GrpcStep> {
    use etcd_client::{Client, LockOptions, ProclaimOptions, ResignOptions};
    let mut client = Client::connect([server.client_url()], None).await.unwrap();
    client
        .lease_grant(
            60,
            Some(etcd_client::LeaseGrantOptions::new().with_id(LEASE_A)),
        )
        .await
        .unwrap();
    let revision = |h: Option<&etcd_client::ResponseHeader>| h.map_or(0, |h| h.revision());
    let mut steps = Vec::new();
    let with_lease = |lease| Some(LockOptions::new().with_lease(lease));
    let lock = client.lock("g", with_lease(LEASE_A)).await;
    let key = lock.as_ref().map(|l| l.key().to_vec()).unwrap_or_default();
    steps.push(grpc_step(lock, |r| {
        (revision(r.header()), r.key().to_vec())
    }));
    let unknown_lease = client.lock("g", with_lease(999)).await;
    steps.push(grpc_step(unknown_lease, |r| {
        (revision(r.header()), r.key().to_vec())
    }));
    let unlock = client.unlock(key).await;
    steps.push(grpc_step(unlock, |r| (revision(r.header()), Vec::new())));
    let won = client.campaign("ge", "v", LEASE_A).await.unwrap();
    let leader_key = won.leader().cloned().unwrap();
    steps.push(Ok((revision(won.header()), leader_key.key().to_vec())));
    let leader = client.leader("ge").await;
    steps.push(grpc_step(leader, |r| {
        let kv = r.kv().unwrap();
        (revision(r.header()), kv.value().to_vec())
    }));
    let proclaim = client
        .proclaim(
            "w",
            Some(ProclaimOptions::new().with_leader(leader_key.clone())),
        )
        .await;
    steps.push(grpc_step(proclaim, |r| (revision(r.header()), Vec::new())));
    let no_key = client.proclaim("w", None).await;
    steps.push(grpc_step(no_key, |r| (revision(r.header()), Vec::new())));
    let resign = client
        .resign(Some(ResignOptions::new().with_leader(leader_key)))
        .await;
    steps.push(grpc_step(resign, |r| (revision(r.header()), Vec::new())));
    let none = client.leader("ge").await;
    steps.push(grpc_step(none, |r| (revision(r.header()), Vec::new())));
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_lock_and_election_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let want = grpc_sequence(&reference).await;
    let got = grpc_sequence(&ours).await;
    assert_eq!(got, want);
    let unknown = |text: &str| Err((tonic::Code::Unknown, text.to_string()));
    assert_eq!(want[0], Ok((2, b"g/64".to_vec())));
    assert_eq!(want[1], unknown("etcdserver: requested lease not found"));
    assert_eq!(want[3], Ok((4, b"ge/64".to_vec())));
    assert_eq!(want[4], Ok((4, b"v".to_vec())));
    assert_eq!(want[6], unknown("\"leader\" field must be provided"));
    assert_eq!(want[8], unknown("election: no leader"));

    // Both count these calls in /metrics, listing a method and a code only
    // once one was counted (etcd registers these services after its metrics).
    let counted = |server: &Server| {
        let mut lines: Vec<String> = server
            .http_get("/metrics")
            .text()
            .lines()
            .filter(|l| l.contains("v3lockpb") || l.contains("v3electionpb"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let reference_counts = counted(&reference);
    assert_eq!(counted(&ours), reference_counts);
    assert!(
        reference_counts.contains(
            &r#"grpc_server_handled_total{grpc_code="Unknown",grpc_method="Lock",grpc_service="v3lockpb.Lock",grpc_type="unary"} 1"#
                .to_string()
        ),
        "{reference_counts:#?}"
    );
}
