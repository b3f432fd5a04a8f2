//! The request messages of the gateway as [`MessageType`] tables: field
//! names, numbers and kinds in Go struct order, and the Go type names that
//! etcd 3.4's decode errors print. The tables must agree with
//! `proto/etcdserverpb/rpc.proto`; the unit tests decode every field through
//! both this table and the generated JSON code and compare.

use retcd_api::etcdserverpb::{
    AlarmRequest, CompactionRequest, DefragmentRequest, DeleteRangeRequest, HashKvRequest,
    HashRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, PutRequest, RangeRequest,
    SnapshotRequest, StatusRequest, TxnRequest, WatchRequest,
};
use retcd_api::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use retcd_api::v3lockpb::{LockRequest, UnlockRequest};

use crate::gateway_decode::{EnumType, Field, FieldType, GatewayRequest, MessageType};

/// A plain field.
const fn field(name: &'static str, number: u32, ty: FieldType) -> Field {
    Field {
        name,
        number,
        ty,
        repeated: false,
        oneof: false,
    }
}

/// A repeated field.
const fn repeated(name: &'static str, number: u32, ty: FieldType) -> Field {
    Field {
        name,
        number,
        ty,
        repeated: true,
        oneof: false,
    }
}

/// A member of a oneof.
const fn member(name: &'static str, number: u32, ty: FieldType) -> Field {
    Field {
        name,
        number,
        ty,
        repeated: false,
        oneof: true,
    }
}

/// The Go interface field of a oneof, named as the oneof.
const fn oneof(name: &'static str, go_name: &'static str) -> Field {
    field(name, 0, FieldType::OneofInterface(go_name))
}

use FieldType::{Bool, Bytes, Enum, Int64, Message, String, Uint64};

/// RangeRequest.SortOrder.
static SORT_ORDER: EnumType = EnumType {
    go_name: "etcdserverpb.RangeRequest_SortOrder",
    values: &[("NONE", 0), ("ASCEND", 1), ("DESCEND", 2)],
};
/// RangeRequest.SortTarget.
static SORT_TARGET: EnumType = EnumType {
    go_name: "etcdserverpb.RangeRequest_SortTarget",
    values: &[
        ("KEY", 0),
        ("VERSION", 1),
        ("CREATE", 2),
        ("MOD", 3),
        ("VALUE", 4),
    ],
};
/// Compare.CompareResult.
static COMPARE_RESULT: EnumType = EnumType {
    go_name: "etcdserverpb.Compare_CompareResult",
    values: &[("EQUAL", 0), ("GREATER", 1), ("LESS", 2), ("NOT_EQUAL", 3)],
};
/// Compare.CompareTarget.
static COMPARE_TARGET: EnumType = EnumType {
    go_name: "etcdserverpb.Compare_CompareTarget",
    values: &[
        ("VERSION", 0),
        ("CREATE", 1),
        ("MOD", 2),
        ("VALUE", 3),
        ("LEASE", 4),
    ],
};
/// WatchCreateRequest.FilterType.
static FILTER_TYPE: EnumType = EnumType {
    go_name: "etcdserverpb.WatchCreateRequest_FilterType",
    values: &[("NOPUT", 0), ("NODELETE", 1)],
};
/// AlarmRequest.AlarmAction.
static ALARM_ACTION: EnumType = EnumType {
    go_name: "etcdserverpb.AlarmRequest_AlarmAction",
    values: &[("GET", 0), ("ACTIVATE", 1), ("DEACTIVATE", 2)],
};
/// AlarmType.
static ALARM_TYPE: EnumType = EnumType {
    go_name: "etcdserverpb.AlarmType",
    values: &[("NONE", 0), ("NOSPACE", 1), ("CORRUPT", 2)],
};

/// RangeRequest.
pub(crate) static RANGE: MessageType = MessageType {
    fields: &[
        field("key", 1, Bytes),
        field("range_end", 2, Bytes),
        field("limit", 3, Int64),
        field("revision", 4, Int64),
        field("sort_order", 5, Enum(&SORT_ORDER)),
        field("sort_target", 6, Enum(&SORT_TARGET)),
        field("serializable", 7, Bool),
        field("keys_only", 8, Bool),
        field("count_only", 9, Bool),
        field("min_mod_revision", 10, Int64),
        field("max_mod_revision", 11, Int64),
        field("min_create_revision", 12, Int64),
        field("max_create_revision", 13, Int64),
    ],
};
/// PutRequest.
pub(crate) static PUT: MessageType = MessageType {
    fields: &[
        field("key", 1, Bytes),
        field("value", 2, Bytes),
        field("lease", 3, Int64),
        field("prev_kv", 4, Bool),
        field("ignore_value", 5, Bool),
        field("ignore_lease", 6, Bool),
    ],
};
/// DeleteRangeRequest.
pub(crate) static DELETE_RANGE: MessageType = MessageType {
    fields: &[
        field("key", 1, Bytes),
        field("range_end", 2, Bytes),
        field("prev_kv", 3, Bool),
    ],
};
/// RequestOp.
static REQUEST_OP: MessageType = MessageType {
    fields: &[
        oneof("request", "etcdserverpb.isRequestOp_Request"),
        member("request_range", 1, Message(&RANGE)),
        member("request_put", 2, Message(&PUT)),
        member("request_delete_range", 3, Message(&DELETE_RANGE)),
        member("request_txn", 4, Message(&TXN)),
    ],
};
/// Compare.
static COMPARE: MessageType = MessageType {
    fields: &[
        field("result", 1, Enum(&COMPARE_RESULT)),
        field("target", 2, Enum(&COMPARE_TARGET)),
        field("key", 3, Bytes),
        oneof("target_union", "etcdserverpb.isCompare_TargetUnion"),
        member("version", 4, Int64),
        member("create_revision", 5, Int64),
        member("mod_revision", 6, Int64),
        member("value", 7, Bytes),
        member("lease", 8, Int64),
        field("range_end", 64, Bytes),
    ],
};
/// TxnRequest.
pub(crate) static TXN: MessageType = MessageType {
    fields: &[
        repeated("compare", 1, Message(&COMPARE)),
        repeated("success", 2, Message(&REQUEST_OP)),
        repeated("failure", 3, Message(&REQUEST_OP)),
    ],
};
/// CompactionRequest.
static COMPACTION: MessageType = MessageType {
    fields: &[field("revision", 1, Int64), field("physical", 2, Bool)],
};
/// LeaseGrantRequest.
static LEASE_GRANT: MessageType = MessageType {
    fields: &[field("TTL", 1, Int64), field("ID", 2, Int64)],
};
/// LeaseRevokeRequest and LeaseKeepAliveRequest.
static LEASE_ID: MessageType = MessageType {
    fields: &[field("ID", 1, Int64)],
};
/// LeaseTimeToLiveRequest.
static LEASE_TIME_TO_LIVE: MessageType = MessageType {
    fields: &[field("ID", 1, Int64), field("keys", 2, Bool)],
};
/// Messages without fields.
static EMPTY: MessageType = MessageType { fields: &[] };
/// WatchCreateRequest.
static WATCH_CREATE: MessageType = MessageType {
    fields: &[
        field("key", 1, Bytes),
        field("range_end", 2, Bytes),
        field("start_revision", 3, Int64),
        field("progress_notify", 4, Bool),
        repeated("filters", 5, Enum(&FILTER_TYPE)),
        field("prev_kv", 6, Bool),
        field("watch_id", 7, Int64),
        field("fragment", 8, Bool),
    ],
};
/// WatchCancelRequest.
static WATCH_CANCEL: MessageType = MessageType {
    fields: &[field("watch_id", 1, Int64)],
};
/// WatchRequest.
static WATCH: MessageType = MessageType {
    fields: &[
        oneof("request_union", "etcdserverpb.isWatchRequest_RequestUnion"),
        member("create_request", 1, Message(&WATCH_CREATE)),
        member("cancel_request", 2, Message(&WATCH_CANCEL)),
        member("progress_request", 3, Message(&EMPTY)),
    ],
};
/// MemberListRequest.
static MEMBER_LIST: MessageType = MessageType {
    fields: &[field("linearizable", 1, Bool)],
};
/// MemberAddRequest.
static MEMBER_ADD: MessageType = MessageType {
    fields: &[repeated("peerURLs", 1, String), field("isLearner", 2, Bool)],
};
/// MemberRemoveRequest and MemberPromoteRequest.
static MEMBER_ID: MessageType = MessageType {
    fields: &[field("ID", 1, Uint64)],
};
/// MemberUpdateRequest.
static MEMBER_UPDATE: MessageType = MessageType {
    fields: &[field("ID", 1, Uint64), repeated("peerURLs", 2, String)],
};
/// AlarmRequest.
static ALARM: MessageType = MessageType {
    fields: &[
        field("action", 1, Enum(&ALARM_ACTION)),
        field("memberID", 2, Uint64),
        field("alarm", 3, Enum(&ALARM_TYPE)),
    ],
};
/// HashKVRequest.
static HASH_KV: MessageType = MessageType {
    fields: &[field("revision", 1, Int64)],
};
/// MoveLeaderRequest.
static MOVE_LEADER: MessageType = MessageType {
    fields: &[field("targetID", 1, Uint64)],
};
/// v3lockpb.LockRequest.
static LOCK: MessageType = MessageType {
    fields: &[field("name", 1, Bytes), field("lease", 2, Int64)],
};
/// v3lockpb.UnlockRequest.
static UNLOCK: MessageType = MessageType {
    fields: &[field("key", 1, Bytes)],
};
/// v3electionpb.CampaignRequest.
static CAMPAIGN: MessageType = MessageType {
    fields: &[
        field("name", 1, Bytes),
        field("lease", 2, Int64),
        field("value", 3, Bytes),
    ],
};
/// v3electionpb.LeaderKey.
static LEADER_KEY: MessageType = MessageType {
    fields: &[
        field("name", 1, Bytes),
        field("key", 2, Bytes),
        field("rev", 3, Int64),
        field("lease", 4, Int64),
    ],
};
/// v3electionpb.LeaderRequest.
static LEADER: MessageType = MessageType {
    fields: &[field("name", 1, Bytes)],
};
/// v3electionpb.ProclaimRequest.
static PROCLAIM: MessageType = MessageType {
    fields: &[
        field("leader", 1, Message(&LEADER_KEY)),
        field("value", 2, Bytes),
    ],
};
/// v3electionpb.ResignRequest.
static RESIGN: MessageType = MessageType {
    fields: &[field("leader", 1, Message(&LEADER_KEY))],
};

/// Ties request types to their tables.
macro_rules! schemas {
    ($($ty:ty => $schema:expr),* $(,)?) => {
        $(impl GatewayRequest for $ty {
            const SCHEMA: &'static MessageType = &$schema;
        })*
    };
}

schemas! {
    RangeRequest => RANGE,
    PutRequest => PUT,
    DeleteRangeRequest => DELETE_RANGE,
    TxnRequest => TXN,
    CompactionRequest => COMPACTION,
    LeaseGrantRequest => LEASE_GRANT,
    LeaseRevokeRequest => LEASE_ID,
    LeaseKeepAliveRequest => LEASE_ID,
    LeaseTimeToLiveRequest => LEASE_TIME_TO_LIVE,
    LeaseLeasesRequest => EMPTY,
    WatchRequest => WATCH,
    MemberAddRequest => MEMBER_ADD,
    MemberRemoveRequest => MEMBER_ID,
    MemberUpdateRequest => MEMBER_UPDATE,
    MemberListRequest => MEMBER_LIST,
    MemberPromoteRequest => MEMBER_ID,
    StatusRequest => EMPTY,
    AlarmRequest => ALARM,
    DefragmentRequest => EMPTY,
    HashRequest => EMPTY,
    HashKvRequest => HASH_KV,
    MoveLeaderRequest => MOVE_LEADER,
    SnapshotRequest => EMPTY,
    LockRequest => LOCK,
    UnlockRequest => UNLOCK,
    CampaignRequest => CAMPAIGN,
    LeaderKey => LEADER_KEY,
    LeaderRequest => LEADER,
    ProclaimRequest => PROCLAIM,
    ResignRequest => RESIGN,
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::gateway_decode::decode_request;

    /// Decodes `body` through the table and through the generated JSON code.
    fn agree<T: GatewayRequest + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &str) {
        let ours = decode_request::<T>(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        let generated: T = serde_json::from_str(body).unwrap();
        assert_eq!(ours, generated, "{body}");
        assert_ne!(ours, T::default(), "{body}");
    }

    #[test]
    fn tables_agree_with_the_generated_code() {
        agree::<RangeRequest>(
            r#"{"key":"YQ==","range_end":"Yg==","limit":"1","revision":"2","sort_order":"ASCEND",
                "sort_target":"MOD","serializable":true,"keys_only":true,"count_only":true,
                "min_mod_revision":"3","max_mod_revision":"4","min_create_revision":"5",
                "max_create_revision":"6"}"#,
        );
        agree::<PutRequest>(
            r#"{"key":"YQ==","value":"Yg==","lease":"7","prev_kv":true,"ignore_value":true,
                "ignore_lease":true}"#,
        );
        agree::<DeleteRangeRequest>(r#"{"key":"YQ==","range_end":"Yg==","prev_kv":true}"#);
        agree::<TxnRequest>(
            r#"{"compare":[{"result":"LESS","target":"LEASE","key":"YQ==","lease":"9","range_end":"Yg=="},
                           {"version":"1"},{"create_revision":"2"},{"mod_revision":"3"},{"value":"Yw=="}],
                "success":[{"request_range":{"key":"YQ=="}},{"request_put":{"key":"YQ=="}}],
                "failure":[{"request_delete_range":{"key":"YQ=="}},{"request_txn":{"success":[{}]}}]}"#,
        );
        agree::<CompactionRequest>(r#"{"revision":"3","physical":true}"#);
        agree::<LeaseGrantRequest>(r#"{"TTL":"3","ID":"4"}"#);
        agree::<LeaseRevokeRequest>(r#"{"ID":"4"}"#);
        agree::<LeaseKeepAliveRequest>(r#"{"ID":"4"}"#);
        agree::<LeaseTimeToLiveRequest>(r#"{"ID":"4","keys":true}"#);
        agree::<WatchRequest>(
            r#"{"create_request":{"key":"YQ==","range_end":"Yg==","start_revision":"3",
                "progress_notify":true,"filters":["NODELETE"],"prev_kv":true,"watch_id":"5",
                "fragment":true}}"#,
        );
        agree::<WatchRequest>(r#"{"cancel_request":{"watch_id":"5"}}"#);
        agree::<WatchRequest>(r#"{"progress_request":{}}"#);
        agree::<MemberListRequest>(r#"{"linearizable":true}"#);
        agree::<MemberAddRequest>(r#"{"peerURLs":["http://a:1","http://b:2"],"isLearner":true}"#);
        agree::<MemberRemoveRequest>(r#"{"ID":"7"}"#);
        agree::<MemberUpdateRequest>(r#"{"ID":"7","peerURLs":["http://a:1"]}"#);
        agree::<MemberPromoteRequest>(r#"{"ID":"7"}"#);
        agree::<AlarmRequest>(r#"{"action":"ACTIVATE","memberID":"5","alarm":"NOSPACE"}"#);
        agree::<HashKvRequest>(r#"{"revision":"3"}"#);
        agree::<MoveLeaderRequest>(r#"{"targetID":"3"}"#);
        agree::<LockRequest>(r#"{"name":"YQ==","lease":"5"}"#);
        agree::<UnlockRequest>(r#"{"key":"YS81"}"#);
        agree::<CampaignRequest>(r#"{"name":"YQ==","lease":"5","value":"dg=="}"#);
        agree::<LeaderKey>(r#"{"name":"YQ==","key":"YS81","rev":"7","lease":"5"}"#);
        agree::<LeaderRequest>(r#"{"name":"YQ=="}"#);
        agree::<ProclaimRequest>(
            r#"{"leader":{"name":"YQ==","key":"YS81","rev":"7","lease":"5"},"value":"dg=="}"#,
        );
        agree::<ResignRequest>(r#"{"leader":{"name":"YQ==","key":"YS81","rev":"7","lease":"5"}}"#);
    }
}
