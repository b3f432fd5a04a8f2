//! The crate's one error type.
//!
//! Errors come in two kinds, and callers must tell them apart:
//! - deterministic ones (`Compacted`, `KeyNotFound`, ...) follow from the
//!   request and the replicated state alone, so every member computes the same
//!   one; the apply loop may return them to the client;
//! - non-deterministic ones (`Backend`, `Io`, `Corrupted`) come from this member's
//!   disk; turning them into a client answer would let replicas diverge, so the
//!   member must stop instead.
//!
//! Display strings are etcd's, byte for byte: clients match on them.

/// The result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the MVCC store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested revision is older than the compaction revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision has not happened yet.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value`/`ignore_lease` asked for a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A request named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` was set together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` was set together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A put would attach a lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A txn writes the same key twice in one branch.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A write reached the read-only txn path (the caller skipped
    /// `is_txn_read_only`).
    #[error("mvcc: read-only txn holds a write")]
    TxnNotReadOnly,
    /// The storage engine failed (I/O, full disk, ...).
    #[error("mvcc: backend: {0}")]
    Backend(#[source] Box<redb::Error>),
    /// An operating-system call failed (starting the compactor thread).
    #[error("mvcc: io: {0}")]
    Io(#[from] std::io::Error),
    /// The backend holds data that contradicts the index or cannot be decoded.
    #[error("mvcc: corrupted backend: {0}")]
    Corrupted(String),
}

impl Error {
    /// Whether every member computes this same error for the same request, so it
    /// may be returned from apply (false: the member must stop).
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Error::Backend(_) | Error::Io(_) | Error::Corrupted(_))
    }
}

/// Turns each of redb's error types into `Error::Backend`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Backend(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Corrupted(format!("undecodable key-value row: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients match on these strings; they must stay etcd's.
    #[test]
    fn display_strings_are_etcds() {
        let cases: &[(Error, &str, bool)] = &[
            (
                Error::Compacted,
                "mvcc: required revision has been compacted",
                true,
            ),
            (
                Error::FutureRevision,
                "mvcc: required revision is a future revision",
                true,
            ),
            (Error::KeyNotFound, "etcdserver: key not found", true),
            (Error::EmptyKey, "etcdserver: key is not provided", true),
            (Error::ValueProvided, "etcdserver: value is provided", true),
            (Error::LeaseProvided, "etcdserver: lease is provided", true),
            (
                Error::LeaseNotFound,
                "etcdserver: requested lease not found",
                true,
            ),
            (
                Error::DuplicateKey,
                "etcdserver: duplicate key given in txn request",
                true,
            ),
            (
                Error::Corrupted("x".into()),
                "mvcc: corrupted backend: x",
                false,
            ),
        ];
        for (err, text, deterministic) in cases {
            assert_eq!(err.to_string(), *text);
            assert_eq!(err.is_deterministic(), *deterministic, "{err}");
        }
    }
}
