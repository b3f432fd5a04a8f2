//! The `etcd` binary's life: configuration from flags, environment and YAML
//! file, `--version`, a clean stop on SIGTERM (ending, as etcd, by the signal
//! itself), and restarts that keep every write — also after the raft log was
//! compacted by `--snapshot-count`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use retcd_tests::ports::free_port;
use retcd_tests::process::KillOnDrop as Process;
use retcd_tests::server::ours_binary;
use retcd_tests::{Flavour, Server, http};

/// How long a stop or a start may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `GET /health` on `port` answers healthy.
fn wait_healthy(port: u16, process: &mut Process) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("etcd exited early: {status}");
        }
        if let Ok(resp) = http::get(port, "/health")
            && resp.status == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("etcd on port {port} not healthy after {PATIENCE:?}");
}

/// Puts `key=value` through the gateway; returns the header revision.
fn put(port: u16, key: &str, value: &str) -> i64 {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        b64(key.as_bytes()),
        b64(value.as_bytes())
    );
    let resp = http::post(port, "/v3/kv/put", body.as_bytes()).expect("put");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    json["header"]["revision"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Counts keys with `prefix` through the gateway and returns (count, revision).
fn count_prefix(port: u16, prefix: &str) -> (i64, i64) {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let body = format!(
        r#"{{"key":"{}","range_end":"{}","count_only":true}}"#,
        b64(prefix.as_bytes()),
        b64(&end)
    );
    let resp = http::post(port, "/v3/kv/range", body.as_bytes()).expect("range");
    assert_eq!(resp.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let num = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.parse().unwrap());
    (num(&json["count"]), num(&json["header"]["revision"]))
}

/// Standard base64.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn sigterm_stops_cleanly_and_restart_keeps_every_write() {
    let mut server = Server::ours();
    let port = server.client_port();
    let mut last = 0;
    for i in 0..50 {
        last = put(port, &format!("k/{i:03}"), "v");
    }
    assert_eq!(last, 51);
    let status = server
        .terminate(PATIENCE)
        .expect("etcd did not stop on SIGTERM");
    // Like etcd, the process dies of the signal after its clean stop: the
    // shell sees 143, and service managers see what stopped it.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "exit status {status}");
    assert!(server.log().contains("stopped"), "{}", server.log());
    server.restart();
    assert_eq!(count_prefix(port, "k/"), (50, 51));
    assert_eq!(put(port, "after", "restart"), 52);
}

#[test]
fn restart_after_raft_log_compaction_replays_from_the_backend() {
    let mut server = Server::start(Flavour::Ours, &["--snapshot-count", "20"]);
    let port = server.client_port();
    for i in 0..300 {
        put(port, &format!("c/{i:03}"), "v");
    }
    server.kill9();
    server.restart();
    assert_eq!(count_prefix(port, "c/"), (300, 301));
    assert_eq!(put(port, "next", "v"), 302);
}

#[test]
fn environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let mut process = Process(
        Command::new(ours_binary())
            .current_dir(dir.path())
            .env("ETCD_NAME", "envnode")
            .env(
                "ETCD_LISTEN_CLIENT_URLS",
                format!("http://127.0.0.1:{client}"),
            )
            .env(
                "ETCD_ADVERTISE_CLIENT_URLS",
                format!("http://127.0.0.1:{client}"),
            )
            .env("ETCD_LISTEN_PEER_URLS", format!("http://127.0.0.1:{peer}"))
            .env(
                "ETCD_INITIAL_ADVERTISE_PEER_URLS",
                format!("http://127.0.0.1:{peer}"),
            )
            .env(
                "ETCD_INITIAL_CLUSTER",
                format!("envnode=http://127.0.0.1:{peer}"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(client, &mut process);
    assert_eq!(put(client, "a", "b"), 2);
    assert!(
        dir.path().join("envnode.etcd/member/snap/db").exists(),
        "the data dir defaults to <name>.etcd"
    );
}

#[test]
fn config_file_configures_the_server_and_overrides_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let data_dir = dir.path().join("from-file");
    let config = dir.path().join("etcd.yaml");
    std::fs::write(
        &config,
        format!(
            "name: filenode\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:{client}\n\
             advertise-client-urls: http://127.0.0.1:{client}\nlisten-peer-urls: http://127.0.0.1:{peer}\n\
             initial-advertise-peer-urls: http://127.0.0.1:{peer}\n\
             initial-cluster: filenode=http://127.0.0.1:{peer}\nmax-txn-ops: 2\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let mut process = Process(
        Command::new(ours_binary())
            .current_dir(dir.path())
            .args([
                "--config-file",
                config.to_str().unwrap(),
                "--name",
                "ignored",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(client, &mut process);
    assert!(data_dir.join("member/snap/db").exists());
    let three_puts = r#"{"success":[
        {"request_put":{"key":"YQ==","value":"MQ=="}},
        {"request_put":{"key":"Yg==","value":"MQ=="}},
        {"request_put":{"key":"Yw==","value":"MQ=="}}]}"#;
    let resp = http::post(client, "/v3/kv/txn", three_puts.as_bytes()).unwrap();
    assert_eq!(resp.status, 400);
    assert!(
        String::from_utf8_lossy(&resp.body).contains("too many operations in txn request"),
        "max-txn-ops from the file applies"
    );
}

#[test]
fn version_flag_prints_etcds_format_and_names_retcd() {
    let out = Command::new(ours_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("etcd Version: 3.5."), "{text}");
    assert!(text.contains("retcd Version: "), "{text}");
    assert!(text.contains("Go OS/Arch: "), "{text}");
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let out = Command::new(ours_binary())
        .args(["--heartbeat-interval", "100", "--election-timeout", "300"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "etcd's exit code after parsing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--election-timeout"), "{stderr}");
}
