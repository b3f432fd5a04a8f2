//! Masking what legitimately differs between two etcd servers.
//!
//! Two servers given the same requests answer the same, except for values
//! that are random or implementation-specific by design. Those are replaced
//! by placeholders before comparing; everything else, revisions included,
//! must be identical.
//!
//! Masked:
//! - cluster id, member id, leader id, raft term: in JSON (quoted or not, so
//!   the gateway's int64-as-string stays visible), in `fields` output
//!   (`"ClusterID" : N`), and 13-16 digit hex member ids in any output;
//! - lease ids, when not 0 (`lease 694d7ef6b4c1c60a granted`, `"lease":N`,
//!   `"Lease" : N`, `"ID"`);
//! - loopback ports (the servers listen on different ones);
//! - in etcdctl's client-side log lines on stderr: the timestamp and the
//!   `target` (a random client id and the port);
//! - table padding: cell widths follow the widest (masked) cell, so table
//!   rows are compared by their trimmed cells.

use std::sync::LazyLock;

use regex::Regex;

/// A compiled masking rule: pattern and replacement.
struct Rule(Regex, &'static str);

/// The rules, applied in order to every line.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement: &'static str| {
        Rule(
            Regex::new(pattern).expect("valid mask pattern"),
            replacement,
        )
    };
    vec![
        rule(
            r#""(cluster_id|member_id|raft_term|leader|ID|id)":("?)\d+("?)"#,
            r#""$1":$2<masked>$3"#,
        ),
        rule(
            r#""(lease|Lease)":("?)[1-9]\d*("?)"#,
            r#""$1":$2<masked>$3"#,
        ),
        rule(
            r#""(ClusterID|MemberID|RaftTerm|Leader|ID)" : \d+"#,
            r#""$1" : <masked>"#,
        ),
        rule(r#""Lease" : [1-9]\d*"#, r#""Lease" : <masked>"#),
        rule(r"\blease [0-9a-f]{1,16}\b", "lease <lease>"),
        rule(r#""ts":"[^"]*""#, r#""ts":"<ts>""#),
        rule(r#""target":"[^"]*""#, r#""target":"<target>""#),
        rule(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
    ]
});

/// A run of hex digits as long as a member or cluster id printed with `%x`.
static HEX_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[0-9a-f]{13,16}\b").expect("valid hex id pattern"));

/// Masks a whole output (stdout, stderr or an HTTP body).
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&mask_line(body));
        out.push_str(newline);
    }
    out
}

/// Masks one line without its newline.
fn mask_line(line: &str) -> String {
    let mut line = line.to_string();
    for Rule(pattern, replacement) in RULES.iter() {
        line = pattern.replace_all(&line, *replacement).into_owned();
    }
    // A hex run is only an id if it holds a letter; pure digit runs are
    // revisions, sizes and counts.
    let line = HEX_ID.replace_all(&line, |c: &regex::Captures<'_>| {
        if c[0].bytes().any(|b| b.is_ascii_alphabetic()) {
            "<hexid>".to_string()
        } else {
            c[0].to_string()
        }
    });
    normalize_table_line(&line)
}

/// Trims the padding of a table row (`| a  | b |`) or border (`+---+--+`).
fn normalize_table_line(line: &str) -> String {
    if line.starts_with('+') && line.ends_with('+') && line.chars().all(|c| c == '+' || c == '-') {
        let columns = line.matches('+').count().saturating_sub(1);
        return format!("+{}", "-+".repeat(columns));
    }
    if line.starts_with('|') && line.ends_with('|') && line.len() > 1 {
        let cells: Vec<&str> = line[1..line.len() - 1].split('|').map(str::trim).collect();
        return format!("| {} |", cells.join(" | "));
    }
    line.to_string()
}

/// Masks a JSON value in place: the same ids, terms and leases as [`mask`],
/// at any depth, keeping whether the value was a string or a number.
pub fn mask_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let always = matches!(
                    key.as_str(),
                    "cluster_id" | "member_id" | "raft_term" | "leader" | "ID" | "id"
                );
                let nonzero_lease = key == "lease"
                    && !matches!(v, Value::String(s) if s == "0")
                    && !matches!(v, Value::Number(n) if n.as_i64() == Some(0));
                if (always || nonzero_lease) && (v.is_string() || v.is_number()) {
                    *v = match v {
                        Value::String(_) => Value::String("<masked>".into()),
                        _ => Value::String("<masked number>".into()),
                    };
                } else {
                    mask_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_etcdctl_json_header_but_not_revision() {
        let out = r#"{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":4,"raft_term":2},"count":1}"#;
        assert_eq!(
            mask(out),
            r#"{"header":{"cluster_id":<masked>,"member_id":<masked>,"revision":4,"raft_term":<masked>},"count":1}"#
        );
    }

    #[test]
    fn masks_gateway_json_keeping_quotes() {
        let out =
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"16","raft_term":"2"}}"#;
        assert_eq!(
            mask(out),
            r#"{"header":{"cluster_id":"<masked>","member_id":"<masked>","revision":"16","raft_term":"<masked>"}}"#
        );
    }

    #[test]
    fn masks_fields_output() {
        let out = "\"ClusterID\" : 151\n\"MemberID\" : 136\n\"Revision\" : 4\n\"RaftTerm\" : 2\n\"Lease\" : 0\n\"Lease\" : 7587\n";
        assert_eq!(
            mask(out),
            "\"ClusterID\" : <masked>\n\"MemberID\" : <masked>\n\"Revision\" : 4\n\"RaftTerm\" : <masked>\n\"Lease\" : 0\n\"Lease\" : <masked>\n"
        );
    }

    #[test]
    fn masks_client_log_line() {
        let out = r#"{"level":"warn","ts":"2026-11-23T22:31:02.655Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-d799/127.0.0.1:23791","attempt":0,"error":"rpc error: code = OutOfRange desc = x"}"#;
        assert_eq!(
            mask(out),
            r#"{"level":"warn","ts":"<ts>","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"<target>","attempt":0,"error":"rpc error: code = OutOfRange desc = x"}"#
        );
    }

    #[test]
    fn masks_lease_and_member_hex_ids_only() {
        assert_eq!(
            mask("lease 32695410dcc0ca06 granted with TTL(10s)"),
            "lease <lease> granted with TTL(10s)"
        );
        assert_eq!(mask("8e9e05c52164694d, started"), "<hexid>, started");
        assert_eq!(mask("1234567890123456"), "1234567890123456");
    }

    #[test]
    fn normalizes_tables() {
        let table = "+------+-----+\n|  ID  | REV |\n+------+-----+\n| 8e9e05c52164694d |   9 |\n";
        assert_eq!(mask(table), "+-+-+\n| ID | REV |\n+-+-+\n| <hexid> | 9 |\n");
    }

    #[test]
    fn masks_json_values() {
        let mut v = serde_json::json!({"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"kvs":[{"key":"a","lease":"0"},{"key":"b","lease":"77"}]});
        mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"header":{"cluster_id":"<masked>","member_id":"<masked>","revision":"3","raft_term":"<masked>"},"kvs":[{"key":"a","lease":"0"},{"key":"b","lease":"<masked>"}]})
        );
    }
}
