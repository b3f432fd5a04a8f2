//! The `slog` logger raft-rs requires, forwarding to `tracing`.
//!
//! raft-rs logs routine events (elections, dropped reads while leaderless) at info
//! level; they are forwarded one level down so a member's info log stays quiet.
//! The driver logs leader changes itself. Records go to the `raft` target.

use std::fmt::{self, Write as _};

use slog::{KV as _, Level};

/// Builds the logger handed to raft-rs for member `id`.
pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}

/// A `slog` drain that re-emits each record as a `tracing` event.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let enabled = match record.level() {
            Level::Critical | Level::Error => {
                tracing::enabled!(target: "raft", tracing::Level::ERROR)
            }
            Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
            Level::Info => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
            Level::Debug | Level::Trace => tracing::enabled!(target: "raft", tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut line = KvLine(record.msg().to_string());
        // Formatting into a String cannot fail.
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        let line = line.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{line}"),
            Level::Warning => tracing::warn!(target: "raft", "{line}"),
            Level::Info => tracing::debug!(target: "raft", "{line}"),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{line}"),
        }
        Ok(())
    }
}

/// Appends ` key=value` pairs to a log line.
struct KvLine(String);

impl slog::Serializer for KvLine {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}
