//! How a lease is stored in the backend's server metadata.
//!
//! One entry per lease: key [`LEASE_META_PREFIX`] followed by the id as 8
//! big-endian bytes; value a version byte, then the granted TTL and the
//! checkpointed remaining TTL, each 8 big-endian bytes. Attached keys are not
//! stored here: every live key records its lease, so the server rebuilds
//! attachments from the key space at start (as etcd does).

/// Prefix of every lease entry in the server metadata.
pub const LEASE_META_PREFIX: &[u8] = b"lease/";

/// Version byte of the value layout below.
const RECORD_VERSION: u8 = 1;

/// Length of an encoded value: version, TTL, remaining TTL.
const RECORD_LEN: usize = 1 + 8 + 8;

/// The replicated part of a lease, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The lease id.
    pub id: i64,
    /// The granted TTL, in seconds.
    pub ttl_secs: i64,
    /// The last checkpointed remaining TTL, in seconds (0: none).
    pub remaining_ttl_secs: i64,
}

impl LeaseRecord {
    /// The metadata value of this record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.ttl_secs.to_be_bytes());
        out.extend_from_slice(&self.remaining_ttl_secs.to_be_bytes());
        out
    }
}

/// The metadata key of lease `id`.
pub fn meta_key(id: i64) -> Vec<u8> {
    let mut key = LEASE_META_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Decodes a metadata entry written by [`meta_key`] and
/// [`LeaseRecord::encode`]; `None` when it is not a valid lease entry.
pub fn decode_meta(key: &[u8], value: &[u8]) -> Option<LeaseRecord> {
    let id = i64::from_be_bytes(key.strip_prefix(LEASE_META_PREFIX)?.try_into().ok()?);
    if value.len() != RECORD_LEN || value[0] != RECORD_VERSION {
        return None;
    }
    let ttl_secs = i64::from_be_bytes(value[1..9].try_into().ok()?);
    let remaining_ttl_secs = i64::from_be_bytes(value[9..17].try_into().ok()?);
    Some(LeaseRecord {
        id,
        ttl_secs,
        remaining_ttl_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for record in [
            LeaseRecord {
                id: 1,
                ttl_secs: 10,
                remaining_ttl_secs: 0,
            },
            LeaseRecord {
                id: -5,
                ttl_secs: crate::MAX_LEASE_TTL_SECS,
                remaining_ttl_secs: 7,
            },
        ] {
            let decoded = decode_meta(&meta_key(record.id), &record.encode());
            assert_eq!(decoded, Some(record));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let good = LeaseRecord {
            id: 1,
            ttl_secs: 2,
            remaining_ttl_secs: 0,
        }
        .encode();
        assert_eq!(decode_meta(b"lease/short", &good), None);
        assert_eq!(decode_meta(b"member_id", &good), None);
        assert_eq!(decode_meta(&meta_key(1), &good[..5]), None);
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        assert_eq!(decode_meta(&meta_key(1), &wrong_version), None);
    }
}
