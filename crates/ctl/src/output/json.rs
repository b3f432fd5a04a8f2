//! The `json` format: what Go's `encoding/json` writes for the Go client's
//! response structs, one line per response.
//!
//! - Field names are the structs' JSON tags (proto names, `snake_case`),
//!   except where the Go client wraps a response in its own struct
//!   (`ID`, `TTL`, `Error` in lease responses; `Response`/`ResponsePut` in
//!   txn responses).
//! - 64-bit integers are JSON numbers, bytes are base64, zero values are
//!   left out (`omitempty`) except in the client's own structs.
//! - Strings are escaped as Go escapes them: `<`, `>`, `&` as `\u003c`...

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, Member, MemberAddResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse,
};
use retcd_api::mvccpb::KeyValue;

use super::EndpointHealth;

/// A JSON object under construction, fields in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    /// The text so far, without the closing brace.
    buf: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj {
            buf: String::from("{"),
        }
    }

    /// Adds `"key":<raw JSON>`.
    pub fn raw(mut self, key: &str, json: &str) -> Obj {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        self.buf.push_str(&quote(key));
        self.buf.push(':');
        self.buf.push_str(json);
        self
    }

    /// Adds a number, always.
    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Obj {
        self.raw(key, &value.to_string())
    }

    /// Adds a number unless it is zero.
    pub fn num_nz<T: std::fmt::Display + Default + PartialEq>(self, key: &str, value: T) -> Obj {
        if value == T::default() {
            self
        } else {
            self.num(key, value)
        }
    }

    /// Adds `true` unless false.
    pub fn bool_nz(self, key: &str, value: bool) -> Obj {
        if value { self.raw(key, "true") } else { self }
    }

    /// Adds a boolean, always.
    pub fn bool(self, key: &str, value: bool) -> Obj {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// Adds a string, always.
    pub fn str(self, key: &str, value: &str) -> Obj {
        self.raw(key, &quote(value))
    }

    /// Adds a string unless empty.
    pub fn str_nz(self, key: &str, value: &str) -> Obj {
        if value.is_empty() {
            self
        } else {
            self.str(key, value)
        }
    }

    /// Adds bytes as base64 unless empty.
    pub fn bytes_nz(self, key: &str, value: &[u8]) -> Obj {
        if value.is_empty() {
            self
        } else {
            self.raw(key, &format!("\"{}\"", STANDARD.encode(value)))
        }
    }

    /// Adds an array of raw JSON values unless empty.
    pub fn array_nz(self, key: &str, items: &[String]) -> Obj {
        if items.is_empty() {
            self
        } else {
            self.raw(key, &format!("[{}]", items.join(",")))
        }
    }

    /// Adds a list of strings unless empty.
    pub fn strings_nz(self, key: &str, items: &[String]) -> Obj {
        let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
        self.array_nz(key, &quoted)
    }

    /// The finished object.
    pub fn end(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// Go's JSON string quoting.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The fields of a response header, appended to `obj` (flattened, as the
/// lease structs embed it).
pub fn header_fields(obj: Obj, h: &ResponseHeader) -> Obj {
    obj.num_nz("cluster_id", h.cluster_id)
        .num_nz("member_id", h.member_id)
        .num_nz("revision", h.revision)
        .num_nz("raft_term", h.raft_term)
}

/// A response header object.
pub fn header(h: &ResponseHeader) -> String {
    header_fields(Obj::new(), h).end()
}

/// Adds `"header":{...}` when the response has a header.
pub fn with_header(obj: Obj, h: &Option<ResponseHeader>) -> Obj {
    match h {
        Some(h) => obj.raw("header", &header(h)),
        None => obj,
    }
}

/// A key-value object.
pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes_nz("key", &kv.key)
        .num_nz("create_revision", kv.create_revision)
        .num_nz("mod_revision", kv.mod_revision)
        .num_nz("version", kv.version)
        .bytes_nz("value", &kv.value)
        .num_nz("lease", kv.lease)
        .end()
}

/// A list of key-value objects.
fn kvs(items: &[KeyValue]) -> Vec<String> {
    items.iter().map(kv).collect()
}

/// `get`.
pub fn range(r: &RangeResponse) -> String {
    with_header(Obj::new(), &r.header)
        .array_nz("kvs", &kvs(&r.kvs))
        .bool_nz("more", r.more)
        .num_nz("count", r.count)
        .end()
}

/// `put`.
pub fn put(r: &PutResponse) -> String {
    let obj = with_header(Obj::new(), &r.header);
    match &r.prev_kv {
        Some(prev) => obj.raw("prev_kv", &kv(prev)).end(),
        None => obj.end(),
    }
}

/// `del`.
pub fn delete(r: &DeleteRangeResponse) -> String {
    with_header(Obj::new(), &r.header)
        .num_nz("deleted", r.deleted)
        .array_nz("prev_kvs", &kvs(&r.prev_kvs))
        .end()
}

/// `txn`.
pub fn txn(r: &TxnResponse) -> String {
    let responses: Vec<String> = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(Response::ResponseRange(x)) => wrap_op("ResponseRange", &range(x)),
            Some(Response::ResponsePut(x)) => wrap_op("ResponsePut", &put(x)),
            Some(Response::ResponseDeleteRange(x)) => wrap_op("ResponseDeleteRange", &delete(x)),
            Some(Response::ResponseTxn(x)) => wrap_op("ResponseTxn", &txn(x)),
            None => "{}".to_string(),
        })
        .collect();
    with_header(Obj::new(), &r.header)
        .bool_nz("succeeded", r.succeeded)
        .array_nz("responses", &responses)
        .end()
}

/// `lease grant`: the Go client's struct, header flattened.
pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    flat_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .str("Error", &r.error)
        .end()
}

/// `lease keep-alive`.
pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    flat_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .end()
}

/// `lease timetolive`.
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = r
            .keys
            .iter()
            .map(|k| format!("\"{}\"", STANDARD.encode(k)))
            .collect();
        format!("[{}]", items.join(","))
    };
    flat_header(&r.header)
        .num("id", r.id)
        .num("ttl", r.ttl)
        .num("granted-ttl", r.granted_ttl)
        .raw("keys", &keys)
        .end()
}

/// `lease list`.
pub fn lease_list(r: &LeaseLeasesResponse) -> String {
    let items: Vec<String> = r
        .leases
        .iter()
        .map(|l| Obj::new().num("id", l.id).end())
        .collect();
    let leases = format!("[{}]", items.join(","));
    flat_header(&r.header).raw("leases", &leases).end()
}

/// `lease revoke`, `defrag` and other header-only responses.
pub fn header_only(h: &Option<ResponseHeader>) -> String {
    with_header(Obj::new(), h).end()
}

/// A header embedded in a Go client struct: its fields at the top level.
fn flat_header(h: &Option<ResponseHeader>) -> Obj {
    match h {
        Some(h) => header_fields(Obj::new(), h),
        None => Obj::new(),
    }
}

/// One member.
fn member(m: &Member) -> String {
    Obj::new()
        .num_nz("ID", m.id)
        .str_nz("name", &m.name)
        .strings_nz("peerURLs", &m.peer_ur_ls)
        .strings_nz("clientURLs", &m.client_ur_ls)
        .bool_nz("isLearner", m.is_learner)
        .end()
}

/// A list of members.
fn members(list: &[Member]) -> Vec<String> {
    list.iter().map(member).collect()
}

/// `member list`.
pub fn member_list(r: &MemberListResponse) -> String {
    with_header(Obj::new(), &r.header)
        .array_nz("members", &members(&r.members))
        .end()
}

/// `member add`.
pub fn member_add(r: &MemberAddResponse) -> String {
    let obj = with_header(Obj::new(), &r.header);
    let obj = match &r.member {
        Some(m) => obj.raw("member", &member(m)),
        None => obj,
    };
    obj.array_nz("members", &members(&r.members)).end()
}

/// `member remove`, `update`, `promote`: header and members.
pub fn member_change(h: &Option<ResponseHeader>, list: &[Member]) -> String {
    with_header(Obj::new(), h)
        .array_nz("members", &members(list))
        .end()
}

/// `endpoint status`.
pub fn endpoint_status(list: &[(String, StatusResponse)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(endpoint, s)| {
            let status = with_header(Obj::new(), &s.header)
                .str_nz("version", &s.version)
                .num_nz("dbSize", s.db_size)
                .num_nz("leader", s.leader)
                .num_nz("raftIndex", s.raft_index)
                .num_nz("raftTerm", s.raft_term)
                .num_nz("raftAppliedIndex", s.raft_applied_index)
                .strings_nz("errors", &s.errors)
                .num_nz("dbSizeInUse", s.db_size_in_use)
                .bool_nz("isLearner", s.is_learner)
                .end();
            Obj::new()
                .str("Endpoint", endpoint)
                .raw("Status", &status)
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `endpoint health`.
pub fn endpoint_health(list: &[EndpointHealth]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            Obj::new()
                .str("endpoint", &h.endpoint)
                .bool("health", h.health)
                .str("took", &h.took)
                .str_nz("error", &h.error)
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `endpoint hashkv`.
pub fn endpoint_hashkv(list: &[(String, HashKvResponse)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(endpoint, h)| {
            let hash = with_header(Obj::new(), &h.header)
                .num_nz("hash", h.hash)
                .num_nz("compact_revision", h.compact_revision)
                .end();
            Obj::new()
                .str("Endpoint", endpoint)
                .raw("HashKV", &hash)
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `alarm list` and `alarm disarm`.
pub fn alarm(r: &AlarmResponse) -> String {
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            Obj::new()
                .num_nz("memberID", a.member_id)
                .num_nz("alarm", a.alarm)
                .end()
        })
        .collect();
    with_header(Obj::new(), &r.header)
        .array_nz("alarms", &alarms)
        .end()
}

/// `{"Response":{"<Kind>":<inner>}}`, the Go client's oneof shape.
fn wrap_op(kind: &str, inner: &str) -> String {
    Obj::new()
        .raw("Response", &Obj::new().raw(kind, inner).end())
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: 324952591200643719,
            member_id: 3319814642761637952,
            revision,
            raft_term: 2,
        }
    }

    #[test]
    fn prints_range_like_etcdctl() {
        let r = RangeResponse {
            header: Some(hdr(2)),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":2,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
    }

    #[test]
    fn prints_txn_oneofs_and_nested_headers() {
        use retcd_api::etcdserverpb::ResponseOp;
        let r = TxnResponse {
            header: Some(hdr(16)),
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(Response::ResponsePut(PutResponse {
                    header: Some(ResponseHeader {
                        revision: 16,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        assert_eq!(
            txn(&r),
            r#"{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":16,"raft_term":2},"succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":16}}}}]}"#
        );
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            quote("a<b>&\"\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\n\u0001""#
        );
    }
}
