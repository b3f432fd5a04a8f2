//! The plain HTTP endpoints on the client port: `/health`, `/version` and
//! `/metrics`.

use retcd_tests::{Flavour, Server};

#[test]
fn health_reports_true() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        let response = server.http_get("/health");
        let label = server.flavour().label();
        assert_eq!(response.status, 200, "{label}");
        assert_eq!(
            response.json()["health"],
            "true",
            "{label}: {}",
            response.text()
        );
    }
}

/// etcd reports a member unhealthy while any alarm is active; 3.4 says only
/// `"health":"false"`, 3.5 (which ours reports) adds the alarm as the reason.
#[test]
fn health_is_false_while_an_alarm_is_active() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        let label = server.flavour().label();
        let status = server.http_post("/v3/maintenance/status", "{}").json();
        let member_id = status["header"]["member_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no member id in {status}"))
            .to_string();
        let alarm = |action: &str| {
            let body =
                format!(r#"{{"action":"{action}","memberID":"{member_id}","alarm":"NOSPACE"}}"#);
            let response = server.http_post("/v3/maintenance/alarm", &body);
            assert_eq!(response.status, 200, "{label}: {}", response.text());
        };
        alarm("ACTIVATE");
        let response = server.http_get("/health");
        assert_eq!(response.status, 503, "{label}: {}", response.text());
        let health = response.json();
        assert_eq!(health["health"], "false", "{label}: {health}");
        if server.flavour() == Flavour::Ours {
            assert_eq!(health["reason"], "ALARM NOSPACE", "{health}");
        }
        alarm("DEACTIVATE");
        let response = server.http_get("/health");
        assert_eq!(response.status, 200, "{label}: {}", response.text());
        assert_eq!(response.json()["health"], "true", "{label}");
    }
}

#[test]
fn reference_version_shape() {
    let reference = Server::reference();
    let response = reference.http_get("/version");
    assert_eq!(
        response.text(),
        r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#
    );
}

#[test]
fn ours_reports_an_etcd_3_5_version() {
    let ours = Server::start(Flavour::Ours, &[]);
    let response = ours.http_get("/version");
    assert_eq!(response.status, 200);
    // etcd writes the server's version first.
    assert!(
        response.text().starts_with(r#"{"etcdserver":"#),
        "{}",
        response.text()
    );
    let json = response.json();
    let object = json.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["etcdcluster", "etcdserver"], "{json}");
    let server = json["etcdserver"].as_str().expect("etcdserver is a string");
    let parts: Vec<&str> = server.split('.').collect();
    assert!(
        parts.len() == 3 && parts[0] == "3" && parts[1] == "5" && parts[2].parse::<u32>().is_ok(),
        "etcdserver must be 3.5.x: {server}"
    );
    let cluster = json["etcdcluster"]
        .as_str()
        .expect("etcdcluster is a string");
    assert!(
        cluster.starts_with("3.5."),
        "etcdcluster must be 3.5.x: {cluster}"
    );
}

#[test]
fn metrics_expose_etcd_names() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        // One write so the proposal and fsync counters have moved.
        server.etcdctl(&["put", "m", "1"]).assert_success();
        let response = server.http_get("/metrics");
        let label = server.flavour().label();
        assert_eq!(response.status, 200, "{label}");
        assert!(
            response
                .header("content-type")
                .unwrap_or_default()
                .starts_with("text/plain"),
            "{label}: {:?}",
            response.headers
        );
        let text = response.text();
        for name in [
            "etcd_server_has_leader 1",
            "etcd_server_proposals_committed_total",
            "etcd_disk_wal_fsync_duration_seconds_bucket",
            "etcd_disk_wal_fsync_duration_seconds_count",
            "etcd_mvcc_db_total_size_in_bytes",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{label}: /metrics lacks {name}"
            );
        }
    }
}
