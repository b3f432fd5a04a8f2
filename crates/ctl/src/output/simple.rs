//! The `simple` format, etcdctl's default: keys and values on lines of
//! their own (raw bytes, or `\xNN` escapes with `--hex`), `OK` for a put,
//! the deleted count for a delete, one sentence per lease or member action.

use std::fmt::Write as _;

use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse,
    MemberListResponse, PutResponse, RangeResponse, TxnResponse,
};
use retcd_api::mvccpb::KeyValue;

use super::gofmt::{hex_escaped, string_slice};
use super::{EndpointHealth, Printer, alarm_name};

/// Appends a key (unless values only) and its value, each on its own line.
fn kv(p: &Printer, out: &mut Vec<u8>, kv: &KeyValue) {
    let show = |bytes: &[u8]| {
        if p.hex {
            hex_escaped(bytes)
        } else {
            bytes.to_vec()
        }
    };
    if !p.value_only {
        out.extend(show(&kv.key));
        out.push(b'\n');
    }
    out.extend(show(&kv.value));
    out.push(b'\n');
}

/// `get`.
pub fn range(p: &Printer, out: &mut Vec<u8>, r: &RangeResponse) {
    for item in &r.kvs {
        kv(p, out, item);
    }
}

/// `put`.
pub fn put(p: &Printer, out: &mut Vec<u8>, r: &PutResponse) {
    out.extend(b"OK\n");
    if let Some(prev) = &r.prev_kv {
        kv(p, out, prev);
    }
}

/// `del`.
pub fn delete(p: &Printer, out: &mut Vec<u8>, r: &DeleteRangeResponse) {
    out.extend(format!("{}\n", r.deleted).into_bytes());
    for prev in &r.prev_kvs {
        kv(p, out, prev);
    }
}

/// `txn`.
pub fn txn(p: &Printer, out: &mut Vec<u8>, r: &TxnResponse) {
    out.extend(if r.succeeded {
        &b"SUCCESS\n"[..]
    } else {
        b"FAILURE\n"
    });
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(Response::ResponseRange(x)) => range(p, out, x),
            Some(Response::ResponsePut(x)) => put(p, out, x),
            Some(Response::ResponseDeleteRange(x)) => delete(p, out, x),
            Some(Response::ResponseTxn(x)) => txn(p, out, x),
            None => {}
        }
    }
}

/// `lease timetolive`.
pub fn lease_time_to_live(out: &mut String, r: &LeaseTimeToLiveResponse, keys: bool) {
    if r.granted_ttl == 0 && r.ttl == -1 {
        let _ = writeln!(out, "lease {:016x} already expired", r.id);
        return;
    }
    let _ = write!(
        out,
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        r.id, r.granted_ttl, r.ttl
    );
    if keys {
        let names: Vec<String> = r
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        let _ = write!(out, ", attached keys({})", string_slice(&names));
    }
    out.push('\n');
}

/// `lease list`.
pub fn lease_list(out: &mut String, r: &LeaseLeasesResponse) {
    let _ = writeln!(out, "found {} leases", r.leases.len());
    for lease in &r.leases {
        let _ = writeln!(out, "{:016x}", lease.id);
    }
}

/// The rows of `member list`, shared with the table format.
pub fn member_rows(r: &MemberListResponse) -> Vec<Vec<String>> {
    r.members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

/// Rows joined with `, `.
pub fn rows(out: &mut String, rows: &[Vec<String>]) {
    for row in rows {
        out.push_str(&row.join(", "));
        out.push('\n');
    }
}

/// `endpoint health` writes to stderr in this format.
pub fn endpoint_health(list: &[EndpointHealth]) -> String {
    let mut out = String::new();
    for h in list {
        if h.error.is_empty() {
            let _ = writeln!(
                out,
                "{} is healthy: successfully committed proposal: took = {}",
                h.endpoint, h.took
            );
        } else {
            let _ = writeln!(
                out,
                "{} is unhealthy: failed to commit proposal: {}",
                h.endpoint, h.error
            );
        }
    }
    out
}

/// `alarm list`: Go's `%+v` of each alarm.
pub fn alarm(out: &mut String, r: &AlarmResponse) {
    for a in &r.alarms {
        let _ = writeln!(
            out,
            "memberID:{} alarm:{} ",
            a.member_id,
            alarm_name(a.alarm)
        );
    }
}
