//! Server errors and the one table that maps them to gRPC status codes and
//! etcd's error texts (`api/v3rpc/rpctypes` in etcd).
//!
//! Texts are etcd's byte for byte, because clients match on them (etcdctl
//! prints them, clientv3 turns them back into typed errors).

use tonic::{Code, Status};

/// Result alias of the server crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything a client request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage-level failure or rule of the MVCC store.
    #[error(transparent)]
    Mvcc(#[from] retcd_mvcc::Error),
    /// A consensus-level failure.
    #[error(transparent)]
    Raft(#[from] retcd_raft::Error),
    /// A lease rule (not found, exists, TTL too large) or a leader-only lease call off the leader.
    #[error(transparent)]
    Lease(#[from] retcd_lease::Error),
    /// The request names no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// A txn branch or its compares exceed `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// The request exceeds `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The request was not applied in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The server is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The cluster has no leader.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Too many proposals wait on raft or the apply side.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// A sort order or target outside the enum.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// The backend is over `--quota-backend-bytes`, or a NOSPACE alarm is active.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is active: the cluster refuses writes.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// A membership rule (`crate::membership`): member not found, peer URL taken, ...
    #[error(transparent)]
    Member(#[from] crate::membership::MemberError),
}

impl Error {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use retcd_mvcc::Error as M;
        match self {
            Error::Mvcc(e) => match e {
                M::Compacted | M::FutureRevision => Code::OutOfRange,
                M::LeaseNotFound => Code::NotFound,
                M::KeyNotFound
                | M::EmptyKey
                | M::ValueProvided
                | M::LeaseProvided
                | M::DuplicateKey => Code::InvalidArgument,
                _ => Code::Unknown,
            },
            Error::Lease(e) => match e {
                retcd_lease::Error::NotFound => Code::NotFound,
                retcd_lease::Error::Exists => Code::FailedPrecondition,
                retcd_lease::Error::TtlTooLarge => Code::OutOfRange,
                // Clients retry Unavailable, so a keep-alive survives an election.
                retcd_lease::Error::NotPrimary => Code::Unavailable,
            },
            Error::Raft(retcd_raft::Error::TooManyRequests)
            | Error::TooManyRequests
            | Error::NoSpace => Code::ResourceExhausted,
            Error::Corrupt => Code::DataLoss,
            Error::Raft(_) | Error::Timeout | Error::Stopped | Error::NoLeader => Code::Unavailable,
            Error::Member(e) => e.code(),
            Error::EmptyKey
            | Error::TooManyOps
            | Error::RequestTooLarge
            | Error::InvalidSortOption => Code::InvalidArgument,
        }
    }

    /// The message clients see: etcd's text, with etcd's `etcdserver: ` prefix on MVCC errors.
    pub fn message(&self) -> String {
        use retcd_mvcc::Error as M;
        match self {
            Error::Mvcc(e @ (M::Compacted | M::FutureRevision)) => format!("etcdserver: {e}"),
            Error::Raft(retcd_raft::Error::Timeout) => Error::Timeout.to_string(),
            Error::Raft(retcd_raft::Error::TooManyRequests) => Error::TooManyRequests.to_string(),
            Error::Raft(retcd_raft::Error::Stopped) => Error::Stopped.to_string(),
            Error::Raft(_) | Error::Lease(retcd_lease::Error::NotPrimary) => {
                Error::NoLeader.to_string()
            }
            e => e.to_string(),
        }
    }

    /// Whether every member computes this same error for the same request,
    /// so apply may return it (false: the member must stop).
    pub fn is_deterministic(&self) -> bool {
        match self {
            Error::Mvcc(e) => e.is_deterministic(),
            _ => true,
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), e.message())
    }
}

/// The HTTP status grpc-gateway answers for a gRPC code.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 408,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::FailedPrecondition => 412,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_codes_and_texts() {
        let cases: Vec<(Error, Code, &str)> = vec![
            (
                Error::Mvcc(retcd_mvcc::Error::Compacted),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Error::Mvcc(retcd_mvcc::Error::FutureRevision),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Error::Mvcc(retcd_mvcc::Error::LeaseNotFound),
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                Error::Mvcc(retcd_mvcc::Error::DuplicateKey),
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                Error::Mvcc(retcd_mvcc::Error::KeyNotFound),
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                Error::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                Error::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                Error::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                Error::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                Error::Lease(retcd_lease::Error::NotFound),
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                Error::Lease(retcd_lease::Error::Exists),
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                Error::Lease(retcd_lease::Error::TtlTooLarge),
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                Error::Lease(retcd_lease::Error::NotPrimary),
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                Error::Raft(retcd_raft::Error::TooManyRequests),
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
            (
                Error::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                Error::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
            (
                Error::Raft(retcd_raft::Error::Stopped),
                Code::Unavailable,
                "etcdserver: server stopped",
            ),
            (
                Error::Raft(retcd_raft::Error::NoLeader),
                Code::Unavailable,
                "etcdserver: no leader",
            ),
        ];
        for (err, code, text) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }

    #[test]
    fn gateway_http_statuses() {
        assert_eq!(http_status(Code::InvalidArgument), 400);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::FailedPrecondition), 412);
        assert_eq!(http_status(Code::Unavailable), 503);
    }
}
