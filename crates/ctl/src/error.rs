//! Errors as etcdctl reports them: `Error: <text>` on stderr and one of
//! etcdctl's exit codes.
//!
//! - Server errors whose text is one of etcd's own (`etcdserver: ...`) are
//!   shown as that text, as etcd's Go client turns them into its typed
//!   errors; any other gRPC status is shown as Go's grpc does,
//!   `rpc error: code = Unimplemented desc = ...`.
//! - A command that runs out of time reports `context deadline exceeded`.
//! - Exit codes are etcdctl's: 1 for errors, 2 bad connection, 3 invalid
//!   input, 4 unsupported feature, 5 interrupted, 128 bad arguments.

use tonic::{Code, Status};

/// Exit code for a generic error (server errors, flag errors).
pub const EXIT_ERROR: i32 = 1;
/// Exit code when the cluster cannot be reached (and a few listing commands).
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Exit code for malformed input (txn on stdin, for one).
pub const EXIT_INVALID_INPUT: i32 = 3;
/// Exit code for an output format a command does not support.
pub const EXIT_BAD_FEATURE: i32 = 4;
/// Exit code for a watch canceled under the user.
pub const EXIT_INTERRUPTED: i32 = 5;
/// Exit code for wrong positional arguments or flag combinations.
pub const EXIT_BAD_ARGS: i32 = 128;

/// Why a command failed: what to print and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// Process exit code.
    pub code: i32,
    /// Text for stderr, with its newline.
    pub stderr: String,
    /// Text for stdout printed before `stderr` (usage after a flag error).
    pub stdout: String,
}

impl CtlError {
    /// `Error: <message>` with exit code `code`.
    pub fn new(code: i32, message: impl std::fmt::Display) -> CtlError {
        CtlError {
            code,
            stderr: format!("Error: {message}\n"),
            stdout: String::new(),
        }
    }

    /// Text printed as is.
    pub fn raw(code: i32, stderr: impl Into<String>) -> CtlError {
        CtlError {
            code,
            stderr: stderr.into(),
            stdout: String::new(),
        }
    }

    /// The message of an `Error: <message>` error.
    pub fn message(&self) -> &str {
        self.stderr
            .strip_prefix("Error: ")
            .unwrap_or(&self.stderr)
            .trim_end_matches('\n')
    }

    /// A bad-arguments error (exit 128).
    pub fn bad_args(message: impl std::fmt::Display) -> CtlError {
        CtlError::new(EXIT_BAD_ARGS, message)
    }

    /// A server or connection error (exit 1).
    pub fn from_status(status: &Status) -> CtlError {
        CtlError::new(EXIT_ERROR, status_text(status))
    }
}

/// The text etcdctl shows for a failed call.
pub fn status_text(status: &Status) -> String {
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled if status.message() == DEADLINE_TEXT => {
            DEADLINE_TEXT.to_string()
        }
        _ if status.message().starts_with("etcdserver: ") => status.message().to_string(),
        _ => grpc_text(status),
    }
}

/// Go's text of a context that ran out of time.
pub const DEADLINE_TEXT: &str = "context deadline exceeded";

/// Go grpc's `rpc error: code = X desc = Y`.
pub fn grpc_text(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code()),
        status.message()
    )
}

/// Go grpc's name of a status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// Go's `*PathError` text for a failed file operation:
/// `open <path>: no such file or directory`.
pub fn go_path_error(op: &str, path: &str, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::AlreadyExists => "file exists".to_string(),
        _ => error.to_string(),
    };
    format!("{op} {path}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_etcd_errors_bare_and_others_as_grpc() {
        let compacted =
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert_eq!(
            status_text(&compacted),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let missing = Status::unimplemented("unknown service etcdserverpb.Lease");
        assert_eq!(
            status_text(&missing),
            "rpc error: code = Unimplemented desc = unknown service etcdserverpb.Lease"
        );
        assert_eq!(
            CtlError::from_status(&missing).stderr,
            "Error: rpc error: code = Unimplemented desc = unknown service etcdserverpb.Lease\n"
        );
    }
}
