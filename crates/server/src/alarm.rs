//! The backend quota and the cluster's alarms (etcd's NOSPACE and CORRUPT).
//!
//! **Quota.** `--quota-backend-bytes` caps the backend file. Before a Put, a
//! Txn that puts or a LeaseGrant is proposed, the API layer asks whether the
//! backend has room for it: its size plus the request's estimated cost must
//! stay below the quota ([`Quota::has_room`]; costs as etcd counts them:
//! key + value + a fixed per-key overhead for a put, the larger branch for a
//! txn, a fixed overhead for a lease). If not, the member raises the NOSPACE
//! alarm for itself through raft and answers `etcdserver: mvcc: database
//! space exceeded`. A negative quota disables the check; 0 means etcd's
//! default of 2 GiB (`crate::config`).
//!
//! **Alarms.** An alarm is a (member id, alarm type) pair. They change only
//! by raft entries (`AlarmRequest` ACTIVATE / DEACTIVATE), applied on every
//! member in log order by [`AlarmStore::apply`], and are kept in the
//! backend's server metadata under [`META_PREFIX`], so they survive restarts
//! and travel with raft snapshots (which copy the backend).
//!
//! While an alarm is active, apply refuses requests ([`AlarmStore::gate`]),
//! the same way on every member because it depends only on applied state:
//! - NOSPACE (any member's): Put, a Txn that puts, LeaseGrant. Range,
//!   DeleteRange, a Txn without puts, Compaction, LeaseRevoke still apply,
//!   so an operator can free space, defragment and disarm.
//! - CORRUPT: every write (Put, DeleteRange, Txn, Compaction, LeaseGrant,
//!   LeaseRevoke); reads are served.
//!
//! Invariants:
//! - The in-memory set equals the metadata rows as of the last applied entry:
//!   both change together in [`AlarmStore::apply`], and [`AlarmStore::reload`]
//!   rereads the rows after a raft snapshot replaced the backend.
//! - Applying the same alarm entry twice leaves the same state (replay after a
//!   restart is idempotent).
//!
//! Caveats:
//! - The size is the disk space redb's file takes (`Store::db_size_bytes`),
//!   not bbolt's highest page: the same data reaches the quota after a
//!   somewhat different number of writes than in etcd (1 MiB: 7 puts of
//!   100 KiB against etcd's 10).
//! - etcd counts only a txn's top-level puts; nested txns' puts count here
//!   too, so a nested put cannot slip past a NOSPACE alarm.
//! - etcd also applies a put that passed the API check but no longer fits
//!   when applied, and then answers the error anyway; retcd answers what it
//!   applied. Only the alarm refuses at apply time.

use std::collections::BTreeSet;

use parking_lot::RwLock;
use retcd_api::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmType, PutRequest, RequestOp, TxnRequest, alarm_request,
    internal_raft_request::Request, request_op,
};
use retcd_mvcc::{Store, WriteBatch};

use crate::error::{Error, Result};

/// Prefix of the server metadata rows that hold active alarms; the rest of
/// the key is the member id (8 bytes) and the alarm type (4 bytes), both
/// big-endian, so rows sort by member, then type.
pub const META_PREFIX: &[u8] = b"alarm/";

/// What etcd estimates a key's metadata costs in the backend, in bytes.
const KV_OVERHEAD_BYTES: u64 = 256;
/// What etcd estimates a lease costs in the backend, in bytes.
const LEASE_OVERHEAD_BYTES: u64 = 64;

/// The backend quota: how many bytes the backend file may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The cap in bytes; `None` when enforcement is off.
    max_bytes: Option<u64>,
}

impl Quota {
    /// The quota of `--quota-backend-bytes` as the config holds it: negative
    /// switches enforcement off (the config already turned 0 into the default).
    pub fn new(quota_backend_bytes: i64) -> Quota {
        Quota {
            max_bytes: u64::try_from(quota_backend_bytes).ok(),
        }
    }

    /// Whether a backend of `db_size_bytes` has room for a request costing
    /// `cost_bytes` (etcd's strict "below the quota"). A request that writes
    /// nothing always fits.
    pub fn has_room(&self, db_size_bytes: u64, cost_bytes: u64) -> bool {
        match self.max_bytes {
            None => true,
            Some(_) if cost_bytes == 0 => true,
            Some(max) => db_size_bytes.saturating_add(cost_bytes) < max,
        }
    }
}

/// The estimated backend bytes `request` adds: 0 for requests the quota
/// never refuses.
pub fn cost(request: &Request) -> u64 {
    match request {
        Request::Put(put) => put_cost(put),
        Request::Txn(txn) => txn_cost(txn),
        Request::LeaseGrant(_) => LEASE_OVERHEAD_BYTES,
        _ => 0,
    }
}

/// A put's estimated cost: its key, its value and a key's overhead.
fn put_cost(put: &PutRequest) -> u64 {
    KV_OVERHEAD_BYTES + put.key.len() as u64 + put.value.len() as u64
}

/// A txn's estimated cost: the puts of its costlier branch.
fn txn_cost(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(put)) => put_cost(put),
                Some(request_op::Request::RequestTxn(nested)) => txn_cost(nested),
                _ => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

/// etcd's text for an alarm in `Status.errors` (the protobuf text form,
/// trailing space included).
pub fn status_text(alarm: &AlarmMember) -> String {
    let name = AlarmType::try_from(alarm.alarm)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| alarm.alarm.to_string());
    format!("memberID:{} alarm:{name} ", alarm.member_id)
}

/// The cluster's active alarms, as of the last applied entry.
#[derive(Debug, Default)]
pub struct AlarmStore {
    /// Active alarms as (alarm type, member id): listed by type, then member.
    active: RwLock<BTreeSet<(i32, u64)>>,
}

impl AlarmStore {
    /// The alarms recorded in `store`'s metadata.
    pub fn load(store: &Store) -> Result<AlarmStore> {
        let alarms = AlarmStore::default();
        alarms.reload(store)?;
        Ok(alarms)
    }

    /// Rereads the alarms from `store` (after a raft snapshot replaced it).
    pub fn reload(&self, store: &Store) -> Result<()> {
        let mut active = BTreeSet::new();
        for (key, _) in store.meta_scan_prefix(META_PREFIX)? {
            match decode_key(&key) {
                Some(alarm) => {
                    active.insert(alarm);
                }
                None => tracing::warn!(key = ?key, "ignoring a malformed alarm row"),
            }
        }
        *self.active.write() = active;
        Ok(())
    }

    /// Active alarms of type `alarm` (every type for NONE), by type, then member.
    pub fn list(&self, alarm: i32) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .filter(|(t, _)| alarm == AlarmType::None as i32 || *t == alarm)
            .map(|&(t, member_id)| AlarmMember {
                member_id,
                alarm: t,
            })
            .collect()
    }

    /// Whether any member has an alarm of type `alarm`.
    pub fn any(&self, alarm: AlarmType) -> bool {
        let alarm = alarm as i32;
        self.active.read().iter().any(|(t, _)| *t == alarm)
    }

    /// Whether member `member_id` has an alarm of type `alarm`.
    pub fn has(&self, member_id: u64, alarm: AlarmType) -> bool {
        self.active.read().contains(&(alarm as i32, member_id))
    }

    /// Applies an ACTIVATE or DEACTIVATE entry inside `batch` and answers
    /// what etcd answers: the alarm activated (or already active), the alarm
    /// deactivated, nothing if there was nothing to deactivate. GET reads
    /// the list. Activating the NONE type does nothing.
    pub fn apply(&self, batch: &mut WriteBatch<'_>, req: &AlarmRequest) -> Vec<AlarmMember> {
        let entry = (req.alarm, req.member_id);
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        match alarm_request::AlarmAction::try_from(req.action) {
            Ok(alarm_request::AlarmAction::Get) => self.list(req.alarm),
            Ok(alarm_request::AlarmAction::Activate) => {
                if req.alarm == AlarmType::None as i32 {
                    return Vec::new();
                }
                if self.active.write().insert(entry) {
                    batch.meta_put(&encode_key(entry), &[]);
                    tracing::warn!(
                        member_id = %format!("{:x}", req.member_id),
                        alarm = %status_text(&member).trim_end(),
                        "alarm raised"
                    );
                }
                vec![member]
            }
            Ok(alarm_request::AlarmAction::Deactivate) => {
                if !self.active.write().remove(&entry) {
                    return Vec::new();
                }
                batch.meta_delete(&encode_key(entry));
                tracing::info!(
                    member_id = %format!("{:x}", req.member_id),
                    alarm = %status_text(&member).trim_end(),
                    "alarm disarmed"
                );
                vec![member]
            }
            Err(_) => Vec::new(),
        }
    }

    /// Refuses `request` at apply time if an active alarm forbids it (see the
    /// module docs); the same answer on every member.
    pub fn gate(&self, request: &Request) -> Result<()> {
        let active = self.active.read();
        if active.is_empty() {
            return Ok(());
        }
        let of_type = |t: AlarmType| active.iter().any(|(a, _)| *a == t as i32);
        if of_type(AlarmType::Corrupt)
            && matches!(
                request,
                Request::Put(_)
                    | Request::DeleteRange(_)
                    | Request::Txn(_)
                    | Request::Compaction(_)
                    | Request::LeaseGrant(_)
                    | Request::LeaseRevoke(_)
            )
        {
            return Err(Error::Corrupt);
        }
        if of_type(AlarmType::Nospace) && cost(request) > 0 {
            return Err(Error::NoSpace);
        }
        Ok(())
    }
}

/// The metadata key of alarm (type, member).
fn encode_key((alarm, member_id): (i32, u64)) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    key.extend_from_slice(&member_id.to_be_bytes());
    key.extend_from_slice(&alarm.to_be_bytes());
    key
}

/// The (type, member) a metadata key holds; `None` if malformed.
fn decode_key(key: &[u8]) -> Option<(i32, u64)> {
    let rest = key.strip_prefix(META_PREFIX)?;
    let (member, alarm) = rest.split_at_checked(8)?;
    Some((
        i32::from_be_bytes(alarm.try_into().ok()?),
        u64::from_be_bytes(member.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use retcd_api::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest};

    use super::*;

    fn put(key: &str, value_len: usize) -> PutRequest {
        PutRequest {
            key: key.as_bytes().to_vec(),
            value: vec![b'v'; value_len],
            ..Default::default()
        }
    }

    fn op_put(key: &str, value_len: usize) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(put(key, value_len))),
        }
    }

    fn op_delete(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                },
            )),
        }
    }

    fn request(
        action: alarm_request::AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn costs_follow_etcds_estimates() {
        let cases: Vec<(Request, u64)> = vec![
            (Request::Put(put("k", 10)), 256 + 1 + 10),
            (Request::LeaseGrant(LeaseGrantRequest::default()), 64),
            (Request::LeaseRevoke(LeaseRevokeRequest::default()), 0),
            (Request::DeleteRange(DeleteRangeRequest::default()), 0),
            (
                Request::Txn(TxnRequest {
                    success: vec![op_put("a", 10), op_put("b", 10)],
                    failure: vec![op_put("c", 300)],
                    ..Default::default()
                }),
                256 + 1 + 300,
            ),
            (
                Request::Txn(TxnRequest {
                    success: vec![op_put("a", 10), op_put("b", 10)],
                    failure: vec![op_put("c", 100)],
                    ..Default::default()
                }),
                2 * (256 + 1 + 10),
            ),
            (
                Request::Txn(TxnRequest {
                    success: vec![op_delete("a"), op_put("b", 0)],
                    ..Default::default()
                }),
                256 + 1,
            ),
            (
                Request::Txn(TxnRequest {
                    success: vec![op_delete("a")],
                    ..Default::default()
                }),
                0,
            ),
            (
                Request::Txn(TxnRequest {
                    failure: vec![RequestOp {
                        request: Some(request_op::Request::RequestTxn(TxnRequest {
                            success: vec![op_put("n", 1)],
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                }),
                256 + 2,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(cost(&req), want, "{req:?}");
        }
    }

    #[test]
    fn quota_is_strict_and_can_be_disabled() {
        let quota = Quota::new(1000);
        assert!(quota.has_room(900, 99));
        assert!(!quota.has_room(900, 100));
        assert!(!quota.has_room(2000, 1));
        assert!(quota.has_room(2000, 0), "a request writing nothing fits");
        let off = Quota::new(-1);
        assert!(off.has_room(u64::MAX, u64::MAX));
    }

    #[test]
    fn status_text_is_etcds() {
        let nospace = AlarmMember {
            member_id: 10276657743932975437,
            alarm: AlarmType::Nospace as i32,
        };
        assert_eq!(
            status_text(&nospace),
            "memberID:10276657743932975437 alarm:NOSPACE "
        );
        let corrupt = AlarmMember {
            member_id: 1,
            alarm: AlarmType::Corrupt as i32,
        };
        assert_eq!(status_text(&corrupt), "memberID:1 alarm:CORRUPT ");
    }

    #[test]
    fn keys_round_trip_and_reject_garbage() {
        let alarm = (AlarmType::Corrupt as i32, 0x0102_0304_0506_0708);
        assert_eq!(decode_key(&encode_key(alarm)), Some(alarm));
        assert_eq!(decode_key(b"alarm/short"), None);
        assert_eq!(decode_key(b"members"), None);
    }

    #[test]
    fn activate_deactivate_persist_and_gate() {
        use alarm_request::AlarmAction::{Activate, Deactivate, Get};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let alarms = AlarmStore::load(&store).unwrap();
        let put_req = Request::Put(put("k", 1));
        let delete_only = Request::Txn(TxnRequest {
            success: vec![op_delete("k")],
            ..Default::default()
        });
        let grant = Request::LeaseGrant(LeaseGrantRequest::default());
        let revoke = Request::LeaseRevoke(LeaseRevokeRequest::default());
        assert!(alarms.gate(&put_req).is_ok());

        let mut batch = store.write().unwrap();
        let raised = alarms.apply(&mut batch, &request(Activate, 7, AlarmType::Nospace));
        assert_eq!(raised.len(), 1);
        // Raising it again answers the active alarm and changes nothing.
        assert_eq!(
            alarms.apply(&mut batch, &request(Activate, 7, AlarmType::Nospace)),
            raised
        );
        assert!(
            alarms
                .apply(&mut batch, &request(Activate, 7, AlarmType::None))
                .is_empty()
        );
        batch.commit(true).unwrap();

        assert!(matches!(alarms.gate(&put_req), Err(Error::NoSpace)));
        assert!(matches!(alarms.gate(&grant), Err(Error::NoSpace)));
        assert!(alarms.gate(&delete_only).is_ok());
        assert!(alarms.gate(&revoke).is_ok());
        assert!(alarms.has(7, AlarmType::Nospace));
        assert!(!alarms.has(8, AlarmType::Nospace));

        // Survives a reload from the store (a restart).
        let reloaded = AlarmStore::load(&store).unwrap();
        assert_eq!(reloaded.list(AlarmType::None as i32), raised);

        let mut batch = store.write().unwrap();
        alarms.apply(&mut batch, &request(Activate, 3, AlarmType::Corrupt));
        assert_eq!(
            alarms.apply(&mut batch, &request(Get, 0, AlarmType::Corrupt)),
            vec![AlarmMember {
                member_id: 3,
                alarm: AlarmType::Corrupt as i32
            }]
        );
        assert_eq!(alarms.list(AlarmType::None as i32).len(), 2);
        assert!(matches!(alarms.gate(&delete_only), Err(Error::Corrupt)));
        assert!(matches!(alarms.gate(&revoke), Err(Error::Corrupt)));
        assert!(
            alarms
                .apply(&mut batch, &request(Deactivate, 9, AlarmType::Nospace))
                .is_empty(),
            "nothing to deactivate answers nothing"
        );
        assert_eq!(
            alarms.apply(&mut batch, &request(Deactivate, 7, AlarmType::Nospace)),
            raised
        );
        alarms.apply(&mut batch, &request(Deactivate, 3, AlarmType::Corrupt));
        batch.commit(true).unwrap();
        assert!(alarms.gate(&put_req).is_ok());
        assert!(
            AlarmStore::load(&store)
                .unwrap()
                .list(AlarmType::None as i32)
                .is_empty()
        );
    }
}
