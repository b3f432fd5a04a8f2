//! The gateway's streaming `POST /v3/watch` against the reference and ours:
//! newline-delimited `{"result": ...}` lines, compared after masking.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use retcd_tests::{Server, mask_json};
use serde_json::{Value, json};

/// Longest wait for the expected lines.
const STREAM_TIMEOUT: Duration = Duration::from_secs(20);

/// Posts `body` to `path` and reads `lines` JSON lines of the chunked answer.
fn stream(server: &Server, path: &str, body: &str, lines: usize) -> Vec<Value> {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.client_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + STREAM_TIMEOUT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(found) = parse(&raw)
            && found.len() >= lines
        {
            return found.into_iter().take(lines).collect();
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {}",
            String::from_utf8_lossy(&raw)
        );
        match tcp.read(&mut buf) {
            Ok(0) => panic!("stream ended: {}", String::from_utf8_lossy(&raw)),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

/// The JSON lines of a chunked answer received so far (None before the headers end).
fn parse(raw: &[u8]) -> Option<Vec<Value>> {
    let text = String::from_utf8_lossy(raw);
    let (head, mut rest) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    Some(
        body.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                mask_json(&mut v);
                v
            })
            .collect(),
    )
}

#[test]
fn watch_streams_created_history_and_live_events() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        for (k, v) in [("Zm9v", "YQ=="), ("Zm9v", "Yg==")] {
            server.http_post("/v3/kv/put", &json!({"key": k, "value": v}).to_string());
        }
    }
    let body = concat!(
        r#"{"create_request":{"key":"Zm9v","start_revision":2,"prev_kv":true}}"#,
        "\n",
        r#"{"create_request":{"key":"Zm9v","watch_id":5,"filters":["NOPUT"]}} "#,
        r#"{"create_request":{"key":"Zm9v","watch_id":5}}"#,
        r#"{"cancel_request":{"watch_id":"42"}}"#,
        r#"{"progress_request":{}}"#
    );
    // etcd sends history from a background loop, so it may come after the
    // later answers: compare the sets of lines.
    let sorted = |lines: Vec<Value>| {
        let mut text: Vec<String> = lines.iter().map(Value::to_string).collect();
        text.sort();
        text
    };
    let want = sorted(stream(&reference, "/v3/watch", body, 5));
    let got = sorted(stream(&ours, "/v3/watch", body, 5));
    assert_eq!(got, want);
    assert!(
        want.iter().any(|l| l.contains("duplicate watch ID")),
        "{want:?}"
    );
    assert!(want.iter().any(|l| l.contains("prev_kv")), "{want:?}");
}

#[test]
fn watch_answers_under_every_prefix_and_rejects_bad_json() {
    let ours = Server::ours();
    for prefix in ["/v3", "/v3beta", "/v3alpha"] {
        let lines = stream(
            &ours,
            &format!("{prefix}/watch"),
            r#"{"create_request":{"key":"YQ=="}}"#,
            1,
        );
        assert_eq!(lines[0]["result"]["created"], true, "{prefix}");
    }
    let (reference, ours) = Server::pair(&[]);
    let want = reference.http_post("/v3/watch", "garbage");
    let got = ours.http_post("/v3/watch", "garbage");
    // The text is the JSON decoder's own (Go's there, serde's here).
    assert_eq!(
        (got.status, &got.json()["code"]),
        (want.status, &want.json()["code"])
    );
}
