//! The crate's one error type.
//!
//! Errors fall in two groups. Request-scoped ones (`ProposalDropped`, `NoLeader`,
//! `Timeout`, `TooManyRequests`, `Stopped`) fail one caller and leave the member
//! healthy; the caller may retry. Storage and consensus failures (`Engine`, `Raft`,
//! `Corrupt`; raft-rs's storage and I/O errors) mean the raft log can no longer be trusted: the loop stops and the
//! member must stop with it ([`Error::is_fatal`]).

/// Errors of the raft driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Raft refused the proposal (leader transfer in progress, uncommitted-size limit,
    /// a conf change already pending, ...).
    #[error("raft: proposal dropped")]
    ProposalDropped,
    /// No leader is known, so the request cannot be served right now.
    #[error("raft: no leader")]
    NoLeader,
    /// A read barrier (ReadIndex) did not complete in time.
    #[error("raft: request timed out")]
    Timeout,
    /// The command queue of the raft loop is full.
    #[error("raft: too many requests")]
    TooManyRequests,
    /// The raft loop has stopped.
    #[error("raft: stopped")]
    Stopped,
    /// The configuration cannot start a member.
    #[error("raft: invalid config: {0}")]
    Config(String),
    /// The persisted raft state is inconsistent.
    #[error("raft: corrupt log: {0}")]
    Corrupt(String),
    /// raft-rs reported an error.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// raft-engine (the log) reported an error.
    #[error("raft log: {0}")]
    Engine(#[from] raft_engine::Error),
    /// A protobuf message failed to encode or decode.
    #[error("raft: protobuf: {0}")]
    Protobuf(#[from] protobuf::ProtobufError),
}

impl Error {
    /// Whether the member must stop: the raft log or state machine can't be trusted.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Corrupt(_)
                | Error::Engine(_)
                | Error::Protobuf(_)
                | Error::Raft(raft::Error::Store(_) | raft::Error::Io(_))
        )
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
