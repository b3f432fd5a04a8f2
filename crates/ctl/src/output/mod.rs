//! Output formats: `simple`, `json`, `fields`, `table`, `protobuf`.
//!
//! Each format lives in its own module; [`Printer`] picks one per response
//! kind and returns the exact bytes etcdctl writes to stdout, or etcdctl's
//! error when the format does not apply to that response
//! (`table not supported as output format`, exit 4). Printing is pure (bytes
//! in, bytes out) so every format is unit-tested without a server.
//!
//! - `protobuf` writes the response's wire encoding, no newline. For the
//!   lease responses etcdctl 3.4 writes only the header's encoding; so do we.
//! - `json` lines end with a newline; `simple` and `fields` print line by
//!   line.

pub mod fields;
pub mod gofmt;
pub mod json;
pub mod simple;
pub mod table;

use prost::Message;
use retcd_api::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse,
};

use crate::error::{CtlError, EXIT_BAD_FEATURE};

/// An output format (`-w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (the default).
    Simple,
    /// One JSON document per response.
    Json,
    /// `"Field" : value` lines.
    Fields,
    /// ASCII tables (listings only).
    Table,
    /// The response's protobuf encoding.
    Protobuf,
}

impl Format {
    /// Parses `-w`; an unknown name is etcdctl's `unsupported output format`.
    pub fn parse(name: &str) -> Result<Format, CtlError> {
        match name {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "fields" => Ok(Format::Fields),
            "table" => Ok(Format::Table),
            "protobuf" => Ok(Format::Protobuf),
            _ => Err(CtlError::new(EXIT_BAD_FEATURE, "unsupported output format")),
        }
    }

    /// The name as given to `-w`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// One endpoint's health, as `endpoint health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The endpoint as given.
    pub endpoint: String,
    /// Whether the check succeeded.
    pub health: bool,
    /// How long the check took, as Go prints a duration; empty when no
    /// client could be made.
    pub took: String,
    /// Why it failed, or empty.
    pub error: String,
}

/// The name of an alarm type, as Go's enum `String()` gives it.
pub fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        0 => "NONE",
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "UNKNOWN",
    }
}

/// etcdctl's error for a format a command cannot print.
pub fn unsupported(format: Format) -> CtlError {
    CtlError::new(
        EXIT_BAD_FEATURE,
        format!("{} not supported as output format", format.name()),
    )
}

/// Chooses the format's printer for each kind of response.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// The format.
    pub format: Format,
    /// `--hex`: keys and values as `\xNN` in the simple format.
    pub hex: bool,
    /// `--print-value-only`: values without keys in the simple format.
    pub value_only: bool,
}

/// A line of JSON as bytes.
fn json_line(text: String) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    bytes
}

/// A response header's protobuf encoding (or nothing without a header).
fn header_pb(h: &Option<ResponseHeader>) -> Vec<u8> {
    h.as_ref().map(Message::encode_to_vec).unwrap_or_default()
}

/// Generates a `Printer` method for a response printed by all of simple
/// (bytes), json, fields and protobuf, and refused by table.
macro_rules! kv_printer {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(&self, r: &$ty) -> Result<Vec<u8>, CtlError> {
            Ok(match self.format {
                Format::Simple => {
                    let mut out = Vec::new();
                    simple::$name(self, &mut out, r);
                    out
                }
                Format::Json => json_line(json::$name(r)),
                Format::Fields => {
                    let mut out = String::new();
                    fields::$name(&mut out, r);
                    out.into_bytes()
                }
                Format::Protobuf => r.encode_to_vec(),
                Format::Table => return Err(unsupported(self.format)),
            })
        }
    };
}

impl Printer {
    kv_printer!(
        /// `get`.
        range,
        RangeResponse
    );
    kv_printer!(
        /// `put`.
        put,
        PutResponse
    );
    kv_printer!(
        /// `del`.
        delete,
        DeleteRangeResponse
    );
    kv_printer!(
        /// `txn`.
        txn,
        TxnResponse
    );

    /// `lease grant`.
    pub fn lease_grant(&self, r: &LeaseGrantResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl).into_bytes()
            }
            Format::Json => json_line(json::lease_grant(r)),
            Format::Fields => self.fields(|out| fields::lease_grant(out, r)),
            Format::Protobuf => header_pb(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// `lease revoke` of lease `id`.
    pub fn lease_revoke(&self, id: i64, r: &LeaseRevokeResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => format!("lease {id:016x} revoked\n").into_bytes(),
            Format::Json => json_line(json::header_only(&r.header)),
            Format::Fields => self.fields(|out| fields::lease_revoke(out, r)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// One `lease keep-alive` answer.
    pub fn lease_keep_alive(&self, r: &LeaseKeepAliveResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl).into_bytes()
            }
            Format::Json => json_line(json::lease_keep_alive(r)),
            Format::Fields => self.fields(|out| fields::lease_keep_alive(out, r)),
            Format::Protobuf => header_pb(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// `lease timetolive`.
    pub fn lease_time_to_live(
        &self,
        r: &LeaseTimeToLiveResponse,
        keys: bool,
    ) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::lease_time_to_live(&mut out, r, keys);
                out.into_bytes()
            }
            Format::Json => json_line(json::lease_time_to_live(r)),
            Format::Fields => self.fields(|out| fields::lease_time_to_live(out, r)),
            Format::Protobuf => header_pb(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// `lease list`.
    pub fn lease_list(&self, r: &LeaseLeasesResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::lease_list(&mut out, r);
                out.into_bytes()
            }
            Format::Json => json_line(json::lease_list(r)),
            Format::Fields => self.fields(|out| fields::lease_list(out, r)),
            Format::Protobuf => header_pb(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// `member list`.
    pub fn member_list(&self, r: &MemberListResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::rows(&mut out, &simple::member_rows(r));
                out.into_bytes()
            }
            Format::Json => json_line(json::member_list(r)),
            Format::Fields => self.fields(|out| fields::member_list(out, r)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => table::render(
                &[
                    "ID",
                    "Status",
                    "Name",
                    "Peer Addrs",
                    "Client Addrs",
                    "Is Learner",
                ],
                &simple::member_rows(r),
            )
            .into_bytes(),
        })
    }

    /// `endpoint health`: (stdout, stderr).
    pub fn endpoint_health(&self, list: &[EndpointHealth]) -> Result<(Vec<u8>, String), CtlError> {
        Ok(match self.format {
            Format::Simple => (Vec::new(), simple::endpoint_health(list)),
            Format::Json => (json_line(json::endpoint_health(list)), String::new()),
            Format::Fields => (
                self.fields(|out| fields::endpoint_health(out, list)),
                String::new(),
            ),
            Format::Table => {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                (
                    table::render(&["endpoint", "health", "took", "error"], &rows).into_bytes(),
                    String::new(),
                )
            }
            Format::Protobuf => return Err(unsupported(self.format)),
        })
    }

    /// `endpoint status`.
    pub fn endpoint_status(&self, list: &[(String, StatusResponse)]) -> Result<Vec<u8>, CtlError> {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|(endpoint, s)| {
                let member_id = s.header.as_ref().map(|h| h.member_id).unwrap_or_default();
                vec![
                    endpoint.clone(),
                    format!("{member_id:x}"),
                    s.version.clone(),
                    gofmt::humanize_bytes(s.db_size.max(0) as u64),
                    (s.leader == member_id).to_string(),
                    s.is_learner.to_string(),
                    s.raft_term.to_string(),
                    s.raft_index.to_string(),
                    s.raft_applied_index.to_string(),
                    s.errors.join(", "),
                ]
            })
            .collect();
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::rows(&mut out, &rows);
                out.into_bytes()
            }
            Format::Json => json_line(json::endpoint_status(list)),
            Format::Fields => self.fields(|out| fields::endpoint_status(out, list)),
            Format::Table => table::render(
                &[
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ],
                &rows,
            )
            .into_bytes(),
            Format::Protobuf => return Err(unsupported(self.format)),
        })
    }

    /// `endpoint hashkv`.
    pub fn endpoint_hashkv(&self, list: &[(String, HashKvResponse)]) -> Result<Vec<u8>, CtlError> {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|(endpoint, h)| vec![endpoint.clone(), h.hash.to_string()])
            .collect();
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::rows(&mut out, &rows);
                out.into_bytes()
            }
            Format::Json => json_line(json::endpoint_hashkv(list)),
            Format::Fields => self.fields(|out| fields::endpoint_hashkv(out, list)),
            Format::Table => table::render(&["endpoint", "hash"], &rows).into_bytes(),
            Format::Protobuf => return Err(unsupported(self.format)),
        })
    }

    /// `alarm list` and `alarm disarm`.
    pub fn alarm(&self, r: &AlarmResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => {
                let mut out = String::new();
                simple::alarm(&mut out, r);
                out.into_bytes()
            }
            Format::Json => json_line(json::alarm(r)),
            Format::Fields => self.fields(|out| fields::alarm(out, r)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    /// Runs a fields printer into bytes.
    fn fields(&self, print: impl FnOnce(&mut String)) -> Vec<u8> {
        let mut out = String::new();
        print(&mut out);
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::mvccpb::KeyValue;

    fn printer(format: Format) -> Printer {
        Printer {
            format,
            hex: false,
            value_only: false,
        }
    }

    fn get_response() -> RangeResponse {
        RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                lease: 0,
            }],
            more: false,
            count: 1,
        }
    }

    #[test]
    fn simple_get_prints_keys_and_values() {
        let r = get_response();
        assert_eq!(printer(Format::Simple).range(&r).unwrap(), b"foo\nbar\n");
        let mut p = printer(Format::Simple);
        p.value_only = true;
        assert_eq!(p.range(&r).unwrap(), b"bar\n");
        p.value_only = false;
        p.hex = true;
        assert_eq!(p.range(&r).unwrap(), b"\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n");
    }

    #[test]
    fn table_is_refused_for_kv() {
        let err = printer(Format::Table).range(&get_response()).unwrap_err();
        assert_eq!(err.code, 4);
        assert_eq!(err.stderr, "Error: table not supported as output format\n");
    }

    #[test]
    fn protobuf_is_the_wire_encoding() {
        let r = get_response();
        assert_eq!(
            printer(Format::Protobuf).range(&r).unwrap(),
            r.encode_to_vec()
        );
    }

    #[test]
    fn lease_outputs() {
        let r = LeaseGrantResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 21,
                raft_term: 2,
            }),
            id: 0x2040a20aa3d62731,
            ttl: 100,
            error: String::new(),
        };
        assert_eq!(
            printer(Format::Simple).lease_grant(&r).unwrap(),
            b"lease 2040a20aa3d62731 granted with TTL(100s)\n"
        );
        assert_eq!(
            String::from_utf8(printer(Format::Json).lease_grant(&r).unwrap()).unwrap(),
            "{\"cluster_id\":1,\"member_id\":2,\"revision\":21,\"raft_term\":2,\"ID\":2324035574305269553,\"TTL\":100,\"Error\":\"\"}\n"
        );
    }
}
