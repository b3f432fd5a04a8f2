//! Identifiers: member and cluster ids derived as etcd derives them, and the
//! unique ids that tie a proposal to its apply result.
//!
//! - A member id is the first 8 bytes (big-endian) of SHA-1 over the member's
//!   sorted, concatenated peer URLs followed by the cluster token. Every member
//!   computes the same ids from the same `--initial-cluster`.
//! - The cluster id is the first 8 bytes of SHA-1 over the sorted member ids,
//!   each as 8 big-endian bytes.
//! - Request ids are unique per member across restarts: the low 16 bits of the
//!   member id, then 40 bits of milliseconds at start, then an 8-bit counter
//!   that carries into the time bits.

use std::sync::atomic::{AtomicU64, Ordering};

use sha1::{Digest, Sha1};

/// Derives a member id from its peer URLs and the cluster token.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    hasher.update(urls.concat().as_bytes());
    hasher.update(cluster_token.as_bytes());
    first_u64(&hasher.finalize())
}

/// Derives the cluster id from its members' ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

/// Reads the first 8 bytes of a digest as a big-endian integer.
fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// Hands out request ids that no other member and no earlier run of this member uses.
#[derive(Debug)]
pub struct RequestIdGenerator {
    /// The member-id bits, fixed for the generator's life.
    prefix: u64,
    /// Time and counter bits; incremented per id.
    suffix: AtomicU64,
}

/// Bits of the id taken by the time-and-counter suffix.
const SUFFIX_BITS: u32 = 48;
/// Bits of the suffix taken by the counter.
const COUNTER_BITS: u32 = 8;

impl RequestIdGenerator {
    /// Creates a generator for `member_id`, seeded with the current time.
    pub fn new(member_id: u64) -> RequestIdGenerator {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let prefix = (member_id & 0xffff) << SUFFIX_BITS;
        let suffix = (millis << COUNTER_BITS) & ((1 << SUFFIX_BITS) - 1);
        RequestIdGenerator {
            prefix,
            suffix: AtomicU64::new(suffix),
        }
    }

    /// Returns the next unique id.
    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        self.prefix | (suffix & ((1 << SUFFIX_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_member_matches_etcd() {
        // etcd's well-known ids for a bare `etcd`: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn url_order_does_not_matter() {
        let a = member_id(&["http://b:1".into(), "http://a:1".into()], "t");
        let b = member_id(&["http://a:1".into(), "http://b:1".into()], "t");
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["http://a:1".into(), "http://b:1".into()], "u")
        );
    }

    #[test]
    fn request_ids_are_unique_and_carry_the_member() {
        let g = RequestIdGenerator::new(0xabcd_1234);
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id >> SUFFIX_BITS == 0x1234));
    }
}
