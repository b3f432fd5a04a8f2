//! Revisions and their on-disk encoding.
//!
//! A revision is the pair `{main, sub}`: `main` counts write transactions
//! (every put, deleting delete_range or writing txn takes the next one) and
//! `sub` numbers the individual changes inside one of them. The store starts
//! at main revision 1, so the first write is revision 2, as in etcd.
//!
//! Backend rows are keyed by [`RevKey`], 17 bytes:
//!
//! ```text
//! main (u64 big-endian) | sub (u64 big-endian) | kind (0 = put, 1 = tombstone)
//! ```
//!
//! Invariants:
//! - byte order of keys equals `(main, sub)` order, so a table scan walks
//!   history in revision order and "every row at or below main N" is a prefix;
//! - a `(main, sub)` pair is written once, as either a put or a tombstone;
//! - revisions are never negative (the encoding rejects nothing, but callers
//!   only ever build revisions from `main >= 1`).

use std::fmt;

/// One point in the store's history: `main` is the write transaction, `sub`
/// the change inside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The write transaction's revision, as reported to clients.
    pub main: i64,
    /// The position of the change inside its write transaction.
    pub sub: i64,
}

impl Revision {
    /// Builds a revision from its two parts.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

/// Length of an encoded backend row key.
pub(crate) const REV_KEY_LEN: usize = 17;

/// A backend row key: a revision plus whether the row is a tombstone.
pub(crate) type RevKey = [u8; REV_KEY_LEN];

/// The kind byte of a row that stores a key-value pair.
const KIND_PUT: u8 = 0;
/// The kind byte of a row that records a deletion.
const KIND_TOMBSTONE: u8 = 1;

/// Encodes a row key for `rev`; `tombstone` marks a deletion.
pub(crate) fn encode_key(rev: Revision, tombstone: bool) -> RevKey {
    let mut out = [0u8; REV_KEY_LEN];
    out[..8].copy_from_slice(&(rev.main as u64).to_be_bytes());
    out[8..16].copy_from_slice(&(rev.sub as u64).to_be_bytes());
    out[16] = if tombstone { KIND_TOMBSTONE } else { KIND_PUT };
    out
}

/// Decodes a row key into its revision and tombstone flag.
pub(crate) fn decode_key(key: &RevKey) -> (Revision, bool) {
    let main = u64::from_be_bytes(key[..8].try_into().expect("8 bytes")) as i64;
    let sub = u64::from_be_bytes(key[8..16].try_into().expect("8 bytes")) as i64;
    (Revision { main, sub }, key[16] == KIND_TOMBSTONE)
}

/// The smallest row key with main revision `main`.
pub(crate) fn first_key_of(main: i64) -> RevKey {
    encode_key(Revision::new(main, 0), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row: main, sub, tombstone, expected encoding in hex.
    const CASES: &[(i64, i64, bool, &str)] = &[
        (
            0,
            0,
            false,
            "00000000000000000000000000000000", /* + kind */
        ),
        (1, 0, false, "00000000000000010000000000000000"),
        (2, 1, true, "00000000000000020000000000000001"),
        (
            0x0102030405060708,
            0x1112,
            false,
            "01020304050607080000000000001112",
        ),
        (i64::MAX, i64::MAX, true, "7fffffffffffffff7fffffffffffffff"),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn encoding_table() {
        for &(main, sub, tomb, want) in CASES {
            let rev = Revision::new(main, sub);
            let key = encode_key(rev, tomb);
            let kind = if tomb { "01" } else { "00" };
            assert_eq!(hex(&key), format!("{want}{kind}"), "{rev}");
            assert_eq!(decode_key(&key), (rev, tomb), "{rev}");
        }
    }

    /// Byte order must equal revision order, tombstone flag last.
    #[test]
    fn byte_order_is_revision_order() {
        let mut revs = Vec::new();
        for main in [0i64, 1, 2, 255, 256, 65_536, i64::MAX] {
            for sub in [0i64, 1, 300, i64::MAX] {
                for tomb in [false, true] {
                    revs.push((Revision::new(main, sub), tomb));
                }
            }
        }
        let mut by_bytes = revs.clone();
        by_bytes.sort_by_key(|&(r, t)| encode_key(r, t));
        revs.sort();
        assert_eq!(by_bytes, revs);
        assert!(first_key_of(3) > encode_key(Revision::new(2, i64::MAX), true));
        assert!(first_key_of(3) <= encode_key(Revision::new(3, 0), false));
    }
}
