//! etcdctl's global flags: their definitions, the `ETCDCTL_<NAME>`
//! environment variables that stand in for them, and the options they add up
//! to.
//!
//! - Every global flag can be given anywhere on the command line, before or
//!   after the command, as cobra's persistent flags can.
//! - `ETCDCTL_<NAME>` (upper case, dashes as underscores) sets a global flag
//!   the command line did not set. Setting both is an error, as in etcdctl
//!   3.4; an `ETCDCTL_*` variable that names no flag draws a warning.
//!   Malformed values from the environment are ignored, as etcdctl ignores
//!   them. `ETCDCTL_API` is accepted and means nothing: this is the v3 API.

use std::time::Duration;

use crate::error::CtlError;
use crate::flags::{FlagSpec, Flags, Kind, validate};
use crate::output::Format;

/// The global flags, as etcdctl 3.4 lists them.
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    FlagSpec::new(
        "cacert",
        Kind::Str,
        "\"\"",
        "verify certificates of TLS-enabled secure servers using this CA bundle",
    ),
    FlagSpec::new(
        "cert",
        Kind::Str,
        "\"\"",
        "identify secure client using this TLS certificate file",
    ),
    FlagSpec::new(
        "command-timeout",
        Kind::Duration,
        "5s",
        "timeout for short running command (excluding dial timeout)",
    ),
    FlagSpec::new(
        "debug",
        Kind::Bool,
        "false",
        "enable client-side debug logging",
    ),
    FlagSpec::new(
        "dial-timeout",
        Kind::Duration,
        "2s",
        "dial timeout for client connections",
    ),
    FlagSpec::new(
        "discovery-srv",
        Kind::Str,
        "\"\"",
        "domain name to query for SRV records describing cluster endpoints",
    )
    .short('d'),
    FlagSpec::new(
        "discovery-srv-name",
        Kind::Str,
        "\"\"",
        "service name to query when using DNS discovery",
    ),
    FlagSpec::new(
        "endpoints",
        Kind::StrList,
        "[127.0.0.1:2379]",
        "gRPC endpoints",
    ),
    FlagSpec::new(
        "hex",
        Kind::Bool,
        "false",
        "print byte strings as hex encoded strings",
    ),
    FlagSpec::new(
        "insecure-discovery",
        Kind::Bool,
        "true",
        "accept insecure SRV records describing cluster endpoints",
    ),
    FlagSpec::new(
        "insecure-skip-tls-verify",
        Kind::Bool,
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    FlagSpec::new(
        "insecure-transport",
        Kind::Bool,
        "true",
        "disable transport security for client connections",
    ),
    FlagSpec::new(
        "keepalive-time",
        Kind::Duration,
        "2s",
        "keepalive time for client connections",
    ),
    FlagSpec::new(
        "keepalive-timeout",
        Kind::Duration,
        "6s",
        "keepalive timeout for client connections",
    ),
    FlagSpec::new(
        "key",
        Kind::Str,
        "\"\"",
        "identify secure client using this TLS key file",
    ),
    FlagSpec::new(
        "password",
        Kind::Str,
        "\"\"",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    FlagSpec::new(
        "user",
        Kind::Str,
        "\"\"",
        "username[:password] for authentication (prompt if password is not supplied)",
    ),
    FlagSpec::new(
        "write-out",
        Kind::Str,
        "\"simple\"",
        "set the output format (fields, json, protobuf, simple, table)",
    )
    .short('w'),
];

/// Environment variables with the `ETCDCTL_` prefix that are not flags but
/// are known, so they draw no warning.
const KNOWN_NON_FLAG_VARIABLES: &[&str] = &[
    "ETCDCTL_API",
    "ETCDCTL_WATCH_KEY",
    "ETCDCTL_WATCH_RANGE_END",
];

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// `--cacert`.
    pub ca_file: String,
    /// `--cert`.
    pub cert_file: String,
    /// `--key`.
    pub key_file: String,
    /// `--insecure-skip-tls-verify`.
    pub skip_verify: bool,
    /// `--insecure-transport`.
    pub insecure_transport: bool,
}

/// The options every command gets.
#[derive(Debug, Clone)]
pub struct GlobalOptions {
    /// Endpoints in the order given.
    pub endpoints: Vec<String>,
    /// How long establishing a connection may take.
    pub dial_timeout: Duration,
    /// How long a short command may take.
    pub command_timeout: Duration,
    /// HTTP/2 keepalive ping interval.
    pub keepalive_time: Duration,
    /// How long a keepalive ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// Output format.
    pub format: Format,
    /// `--hex`.
    pub hex: bool,
    /// `--user` (possibly `name:password`).
    pub user: String,
    /// `--password`.
    pub password: String,
    /// TLS settings.
    pub tls: TlsOptions,
}

impl GlobalOptions {
    /// Reads the global options from parsed flags.
    pub fn from_flags(flags: &Flags) -> Result<GlobalOptions, CtlError> {
        let format = Format::parse(&flags.string("write-out"))?;
        Ok(GlobalOptions {
            endpoints: flags.list("endpoints"),
            dial_timeout: flags.duration("dial-timeout"),
            command_timeout: flags.duration("command-timeout"),
            keepalive_time: flags.duration("keepalive-time"),
            keepalive_timeout: flags.duration("keepalive-timeout"),
            format,
            hex: flags.bool("hex"),
            user: flags.string("user"),
            password: flags.string("password"),
            tls: TlsOptions {
                ca_file: flags.string("cacert"),
                cert_file: flags.string("cert"),
                key_file: flags.string("key"),
                skip_verify: flags.bool("insecure-skip-tls-verify"),
                insecure_transport: flags.bool("insecure-transport"),
            },
        })
    }
}

/// The variable that stands in for a flag: `ETCDCTL_DIAL_TIMEOUT`.
fn variable_name(flag: &str) -> String {
    format!("ETCDCTL_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// Applies `ETCDCTL_*` variables to the global flags the command line left
/// unset. Warnings go to stderr; a variable shadowed by its flag is an error.
pub fn apply_environment(
    parsed: &mut crate::flags::Parsed,
    vars: &[(String, String)],
) -> Result<(), CtlError> {
    for (name, value) in vars {
        if !name.starts_with("ETCDCTL_") || KNOWN_NON_FLAG_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let Some(spec) = GLOBAL_FLAGS.iter().find(|s| variable_name(s.name) == *name) else {
            eprintln!(
                "{} W | pkg/flags: unrecognized environment variable {name}={value}",
                crate::log::capnslog_time()
            );
            continue;
        };
        if parsed.is_set(spec.name) {
            return Err(CtlError::raw(
                crate::error::EXIT_ERROR,
                format!(
                    "{} C | pkg/flags: conflicting environment variable \"{name}\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n",
                    crate::log::capnslog_time()
                ),
            ));
        }
        if validate(spec.kind, value).is_ok() {
            parsed
                .values
                .insert(spec.name.to_string(), vec![value.clone()]);
        }
    }
    Ok(())
}
