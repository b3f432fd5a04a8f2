//! The `fields` format: one `"Name" : value` line per field, strings quoted
//! as Go's `%q` quotes them, numbers and booleans bare.

use std::fmt::Write as _;

use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse,
};
use retcd_api::mvccpb::KeyValue;

use super::gofmt::quote;
use super::{EndpointHealth, alarm_name};

/// Appends one `"name" : value` line.
fn line(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "\"{name}\" : {value}");
}

/// The header's four lines; a missing header prints as zeros.
fn header(out: &mut String, h: &Option<ResponseHeader>) {
    let h = h.unwrap_or_default();
    line(out, "ClusterID", h.cluster_id);
    line(out, "MemberID", h.member_id);
    line(out, "Revision", h.revision);
    line(out, "RaftTerm", h.raft_term);
}

/// A key-value's six lines, names prefixed with `prefix`.
fn kv(out: &mut String, prefix: &str, kv: &KeyValue) {
    line(out, &format!("{prefix}Key"), quote(&kv.key));
    line(out, &format!("{prefix}CreateRevision"), kv.create_revision);
    line(out, &format!("{prefix}ModRevision"), kv.mod_revision);
    line(out, &format!("{prefix}Version"), kv.version);
    line(out, &format!("{prefix}Value"), quote(&kv.value));
    line(out, &format!("{prefix}Lease"), kv.lease);
}

/// `get`.
pub fn range(out: &mut String, r: &RangeResponse) {
    header(out, &r.header);
    for item in &r.kvs {
        kv(out, "", item);
    }
    line(out, "More", r.more);
    line(out, "Count", r.count);
}

/// `put`.
pub fn put(out: &mut String, r: &PutResponse) {
    header(out, &r.header);
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev);
    }
}

/// `del`.
pub fn delete(out: &mut String, r: &DeleteRangeResponse) {
    header(out, &r.header);
    line(out, "Deleted", r.deleted);
    for prev in &r.prev_kvs {
        kv(out, "Prev", prev);
    }
}

/// `txn`.
pub fn txn(out: &mut String, r: &TxnResponse) {
    header(out, &r.header);
    line(out, "Succeeded", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(Response::ResponseRange(x)) => range(out, x),
            Some(Response::ResponsePut(x)) => put(out, x),
            Some(Response::ResponseDeleteRange(x)) => delete(out, x),
            Some(Response::ResponseTxn(x)) => txn(out, x),
            None => {}
        }
    }
}

/// `lease grant`.
pub fn lease_grant(out: &mut String, r: &LeaseGrantResponse) {
    header(out, &r.header);
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
}

/// `lease revoke`.
pub fn lease_revoke(out: &mut String, r: &LeaseRevokeResponse) {
    header(out, &r.header);
}

/// `lease keep-alive`.
pub fn lease_keep_alive(out: &mut String, r: &LeaseKeepAliveResponse) {
    header(out, &r.header);
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
}

/// `lease timetolive`.
pub fn lease_time_to_live(out: &mut String, r: &LeaseTimeToLiveResponse) {
    header(out, &r.header);
    line(out, "ID", r.id);
    line(out, "TTL", r.ttl);
    line(out, "GrantedTTL", r.granted_ttl);
    for key in &r.keys {
        line(out, "Key", quote(key));
    }
}

/// `lease list`.
pub fn lease_list(out: &mut String, r: &LeaseLeasesResponse) {
    header(out, &r.header);
    for lease in &r.leases {
        line(out, "ID", lease.id);
    }
}

/// `member list`.
pub fn member_list(out: &mut String, r: &MemberListResponse) {
    header(out, &r.header);
    for m in &r.members {
        line(out, "ID", m.id);
        line(out, "Name", quote(m.name.as_bytes()));
        for url in &m.peer_ur_ls {
            line(out, "PeerURL", quote(url.as_bytes()));
        }
        for url in &m.client_ur_ls {
            line(out, "ClientURL", quote(url.as_bytes()));
        }
        line(out, "IsLearner", m.is_learner);
        out.push('\n');
    }
}

/// `endpoint health`.
pub fn endpoint_health(out: &mut String, list: &[EndpointHealth]) {
    for h in list {
        line(out, "Endpoint", quote(h.endpoint.as_bytes()));
        line(out, "Health", h.health);
        line(out, "Took", &h.took);
        line(out, "Error", &h.error);
        out.push('\n');
    }
}

/// `endpoint status`.
pub fn endpoint_status(out: &mut String, list: &[(String, StatusResponse)]) {
    for (endpoint, s) in list {
        header(out, &s.header);
        line(out, "Version", quote(s.version.as_bytes()));
        line(out, "DBSize", s.db_size);
        line(out, "Leader", s.leader);
        line(out, "IsLearner", s.is_learner);
        line(out, "RaftIndex", s.raft_index);
        line(out, "RaftTerm", s.raft_term);
        line(out, "RaftAppliedIndex", s.raft_applied_index);
        line(out, "Errors", super::gofmt::string_slice(&s.errors));
        line(out, "Endpoint", quote(endpoint.as_bytes()));
        out.push('\n');
    }
}

/// `endpoint hashkv`.
pub fn endpoint_hashkv(out: &mut String, list: &[(String, HashKvResponse)]) {
    for (endpoint, h) in list {
        header(out, &h.header);
        line(out, "Endpoint", quote(endpoint.as_bytes()));
        line(out, "Hash", h.hash);
        out.push('\n');
    }
}

/// `alarm list` and `alarm disarm`.
pub fn alarm(out: &mut String, r: &AlarmResponse) {
    header(out, &r.header);
    for a in &r.alarms {
        line(out, "MemberID", a.member_id);
        line(out, "AlarmType", alarm_name(a.alarm));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_get_fields() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 14,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: b"k1".to_vec(),
                create_revision: 12,
                mod_revision: 12,
                version: 1,
                value: b"v\n1".to_vec(),
                lease: 0,
            }],
            more: true,
            count: 3,
        };
        let mut out = String::new();
        range(&mut out, &r);
        assert_eq!(
            out,
            "\"ClusterID\" : 1\n\"MemberID\" : 2\n\"Revision\" : 14\n\"RaftTerm\" : 2\n\"Key\" : \"k1\"\n\"CreateRevision\" : 12\n\"ModRevision\" : 12\n\"Version\" : 1\n\"Value\" : \"v\\n1\"\n\"Lease\" : 0\n\"More\" : true\n\"Count\" : 3\n"
        );
    }
}
