//! What each benchmark request is: the workloads and how they pick keys.
//!
//! A [`Workload`] turns a request number `i` (0-based, handed out once per
//! request across all clients) into one gRPC request, an [`Op`]. Building the
//! request happens before the client starts its latency clock, so only the
//! round trip and the server's work are measured.
//!
//! Keys for `put` and `txn-put` are `key_size` bytes: the key number in
//! big-endian, right-aligned, zero-padded on the left. Key numbers lie in
//! `0..key_space_size`, either `i % key_space_size` (sequential) or drawn
//! uniformly at random per request (the default). A `txn-put` transaction's
//! puts take consecutive key numbers (modulo the key space) from a start
//! chosen that way, because etcd rejects a txn that writes one key twice.
//!
//! Invariants:
//! - every key of the key space has a distinct encoding: `key_space_size` must
//!   fit in `key_size` bytes, which [`KeySpec::new`] checks;
//! - the keys of one transaction are distinct: `txn_ops <= key_space_size`,
//!   which [`Workload::txn_put`] checks;
//! - a workload is immutable once built, so all clients share one by reference;
//!   the only per-client state is the random generator.
//!
//! Caveat: values are the same bytes for every request (random alphanumerics
//! chosen once), as in etcd's benchmark; neither side compresses, so this does
//! not flatter either server.

use anyhow::{Result, bail};
use retcd_api::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, TxnRequest, kv_client::KvClient, request_op,
};
use tonic::Status;

use crate::conn::Connection;

/// Largest number of operations one `txn-put` transaction may carry; etcd's
/// own `--max-txn-ops` default is 128, so more would only measure rejections.
pub const MAX_TXN_OPS: usize = 128;

/// A small, fast, seedable pseudo-random generator (splitmix64).
///
/// The benchmark needs cheap uniform numbers, not cryptographic ones; this
/// keeps the hot path free of locks and of another dependency.
#[derive(Debug, Clone)]
pub struct Rng {
    /// The generator's state; advanced by a fixed odd constant per draw.
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`), by widening multiplication; the
    /// bias is below 2^-32 for every bound a key space can have.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// How `put` and `txn-put` choose and encode keys.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Length of every key in bytes.
    key_size: usize,
    /// Number of distinct keys written to.
    key_space_size: u64,
    /// Whether key numbers follow the request number instead of being random.
    sequential: bool,
}

impl KeySpec {
    /// Checks that `key_space_size` distinct keys fit in `key_size` bytes.
    pub fn new(key_size: usize, key_space_size: u64, sequential: bool) -> Result<Self> {
        if key_size == 0 {
            bail!("--key-size must be at least 1 (etcd rejects empty keys)");
        }
        if key_space_size == 0 {
            bail!("--key-space-size must be at least 1");
        }
        let encodable_bits = 8 * key_size.min(8) as u32;
        if encodable_bits < 64 && key_space_size > 1u64 << encodable_bits {
            bail!(
                "--key-space-size {key_space_size} does not fit in --key-size {key_size} \
                 bytes (at most {} distinct keys)",
                1u64 << encodable_bits
            );
        }
        Ok(Self {
            key_size,
            key_space_size,
            sequential,
        })
    }

    /// The key number for slot `n` of the run (request number, or request
    /// number times ops per txn plus op index).
    fn key_number(&self, n: u64, rng: &mut Rng) -> u64 {
        if self.sequential {
            n % self.key_space_size
        } else {
            rng.below(self.key_space_size)
        }
    }

    /// The key bytes for key number `number`.
    fn encode(&self, number: u64) -> Vec<u8> {
        let mut key = vec![0u8; self.key_size];
        let be = number.to_be_bytes();
        let width = self.key_size.min(be.len());
        key[self.key_size - width..].copy_from_slice(&be[be.len() - width..]);
        key
    }
}

/// One benchmark workload; shared read-only by every client.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Single-key puts.
    Put {
        /// Which keys to write.
        keys: KeySpec,
        /// The value written by every put.
        value: Vec<u8>,
    },
    /// The same range read, over and over.
    Range(RangeRequest),
    /// Transactions with no compares and `ops` puts each.
    TxnPut {
        /// Which keys to write.
        keys: KeySpec,
        /// The value written by every put.
        value: Vec<u8>,
        /// Puts per transaction.
        ops: usize,
    },
}

impl Workload {
    /// A put workload writing `val_size`-byte values.
    pub fn put(keys: KeySpec, val_size: usize, rng: &mut Rng) -> Self {
        Workload::Put {
            keys,
            value: random_value(val_size, rng),
        }
    }

    /// A range workload over `[key, range_end)` (just `key` when `range_end`
    /// is empty), linearizable unless `serializable`.
    pub fn range(
        key: Vec<u8>,
        range_end: Vec<u8>,
        serializable: bool,
        limit: i64,
        count_only: bool,
    ) -> Self {
        Workload::Range(RangeRequest {
            key,
            range_end,
            serializable,
            limit,
            count_only,
            ..RangeRequest::default()
        })
    }

    /// A txn-put workload with `ops` puts of `val_size`-byte values per txn.
    pub fn txn_put(keys: KeySpec, val_size: usize, ops: usize, rng: &mut Rng) -> Result<Self> {
        if ops == 0 || ops > MAX_TXN_OPS {
            bail!("--txn-ops must be in 1..={MAX_TXN_OPS}");
        }
        if ops as u64 > keys.key_space_size {
            bail!(
                "--txn-ops {ops} needs a --key-space-size of at least {ops} (distinct keys per txn)"
            );
        }
        Ok(Workload::TxnPut {
            keys,
            value: random_value(val_size, rng),
            ops,
        })
    }

    /// The short name used in reports (`put`, `range`, `txn-put`).
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put { .. } => "put",
            Workload::Range(_) => "range",
            Workload::TxnPut { .. } => "txn-put",
        }
    }

    /// The request for request number `i`.
    pub fn op(&self, i: u64, rng: &mut Rng) -> Op {
        match self {
            Workload::Put { keys, value } => Op::Put(PutRequest {
                key: keys.encode(keys.key_number(i, rng)),
                value: value.clone(),
                ..PutRequest::default()
            }),
            Workload::Range(request) => Op::Range(request.clone()),
            Workload::TxnPut { keys, value, ops } => {
                // Consecutive key numbers from a sequential or random start:
                // etcd rejects a txn that puts the same key twice.
                let first = keys.key_number(i.wrapping_mul(*ops as u64), rng);
                let success = (0..*ops as u64)
                    .map(|j| RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: keys.encode((first + j) % keys.key_space_size),
                            value: value.clone(),
                            ..PutRequest::default()
                        })),
                    })
                    .collect();
                Op::Txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
            }
        }
    }
}

/// One request, ready to send.
#[derive(Debug)]
pub enum Op {
    /// `KV.Put`.
    Put(PutRequest),
    /// `KV.Range`.
    Range(RangeRequest),
    /// `KV.Txn`.
    Txn(TxnRequest),
}

impl Op {
    /// Sends the request and waits for the whole response; the response body
    /// is decoded (as any client would) and dropped.
    pub async fn send(self, kv: &mut KvClient<Connection>) -> Result<(), Status> {
        match self {
            Op::Put(request) => kv.put(request).await.map(drop),
            Op::Range(request) => kv.range(request).await.map(drop),
            Op::Txn(request) => kv.txn(request).await.map(drop),
        }
    }
}

/// `len` random ASCII alphanumerics, so values stay printable in etcdctl.
fn random_value(len: usize, rng: &mut Rng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_big_endian_right_aligned() {
        let keys = KeySpec::new(4, 1 << 16, true).unwrap();
        assert_eq!(keys.encode(0x0102), vec![0, 0, 1, 2]);
        let wide = KeySpec::new(10, 10, true).unwrap();
        assert_eq!(wide.encode(7), vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn key_space_must_fit_key_size() {
        assert!(KeySpec::new(1, 256, false).is_ok());
        assert!(KeySpec::new(1, 257, false).is_err());
        assert!(KeySpec::new(8, u64::MAX, false).is_ok());
        assert!(KeySpec::new(0, 1, false).is_err());
    }

    #[test]
    fn sequential_keys_wrap_around_the_key_space() {
        let keys = KeySpec::new(8, 3, true).unwrap();
        let mut rng = Rng::new(1);
        let numbers: Vec<u64> = (0..5).map(|i| keys.key_number(i, &mut rng)).collect();
        assert_eq!(numbers, vec![0, 1, 2, 0, 1]);
    }

    #[test]
    fn txn_keys_are_distinct_and_in_the_key_space() {
        let mut rng = Rng::new(7);
        let keys = KeySpec::new(8, 5, false).unwrap();
        assert!(Workload::txn_put(keys.clone(), 8, 6, &mut rng).is_err());
        let workload = Workload::txn_put(keys, 8, 5, &mut rng).unwrap();
        for i in 0..100 {
            let Op::Txn(txn) = workload.op(i, &mut rng) else {
                panic!("not a txn");
            };
            let mut numbers: Vec<u64> = txn
                .success
                .iter()
                .map(|op| match &op.request {
                    Some(request_op::Request::RequestPut(put)) => {
                        u64::from_be_bytes(put.key.as_slice().try_into().unwrap())
                    }
                    other => panic!("not a put: {other:?}"),
                })
                .collect();
            numbers.sort_unstable();
            assert_eq!(numbers, vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn random_keys_stay_in_the_key_space() {
        let keys = KeySpec::new(8, 10, false).unwrap();
        let mut rng = Rng::new(42);
        let mut seen = [false; 10];
        for i in 0..1000 {
            seen[keys.key_number(i, &mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "1000 draws should hit all 10 keys");
    }
}
