//! etcd's command line, read the way etcd reads it: Go's `flag` package for
//! the arguments, etcd's `pkg/flags` for the `ETCD_*` environment variables.
//! Scripts and unit files written for etcd then behave the same with retcd,
//! down to the exit codes and error texts. clap still owns the flag
//! definitions (`config::Flags`) and renders `--help`.
//!
//! - Syntax: `-name value`, `--name value`, `-name=value`, `--name=value`.
//!   A flag given twice keeps its last value. A bool flag takes no separate
//!   value (`-version`, `--version=false`). A non-bool flag takes the next
//!   argument whatever it looks like, so `--quota-backend-bytes -1` works.
//!   Parsing stops at `--` or at the first argument that is not a flag;
//!   anything left over is refused (`'x' is not a valid flag`).
//! - Values are checked as Go checks them: unsigned integers (etcd's `uint`
//!   and `uint64` flags) refuse any sign, signed ones (`int64`) take one; both
//!   accept Go's `0x`/`0o`/`0b`/`0` prefixes and `_` separators. Durations
//!   are Go durations; `--initial-cluster-state` is `new` or `existing`.
//! - Environment: without a config file, a flag absent from the command line
//!   takes `ETCD_<FLAG_NAME>`. A variable that is set, even to nothing, for a
//!   flag also on the command line is a fatal conflict. An empty variable is
//!   ignored, and an `ETCD_*` variable that fed no flag is warned about.
//! - A config file (`--config-file`, else `ETCD_CONFIG_FILE`) replaces every
//!   other flag and variable, which are then neither applied nor checked.
//! - Order of checks, as etcd: syntax and values on the command line, left
//!   over arguments, `--version`, config file or environment, log level,
//!   the remaining checks (`Config::from_flags`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::config::{Config, Flags, check_log_level, parse_go_duration};

/// Prefix of etcd's environment variables.
const ENV_PREFIX: &str = "ETCD_";

/// Values `--initial-cluster-state` accepts.
const CLUSTER_STATES: [&str; 2] = ["new", "existing"];

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// `-h`, `-help` or `--help`: print the help (the long one unless `-h`).
    Help {
        /// `--help`/`-help` rather than `-h`.
        long: bool,
    },
    /// `--version`: print the version and exit.
    Version,
    /// Start a member.
    Run {
        /// The checked configuration.
        config: Box<Config>,
        /// Lines to log once logging is set up.
        notes: Vec<Note>,
    },
}

/// A line about the configuration, logged once logging is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Logged at info level.
    Info(String),
    /// Logged at warn level.
    Warn(String),
}

/// A command line etcd would refuse, with etcd's text and exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// Refused while parsing arguments (Go's `flag`): exit 2, usage follows.
    Syntax(String),
    /// An environment variable shadowed by a flag: exit 1.
    EnvConflict(String),
    /// Refused after parsing (etcd's `error verifying flags`): exit 1.
    Verify(String),
    /// A log level etcd's logger does not know: exit 2.
    LogLevel(String),
}

impl CmdlineError {
    /// The process exit code etcd uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CmdlineError::Syntax(_) | CmdlineError::LogLevel(_) => 2,
            CmdlineError::EnvConflict(_) | CmdlineError::Verify(_) => 1,
        }
    }

    /// Whether etcd prints its usage after the message.
    pub fn shows_usage(&self) -> bool {
        matches!(self, CmdlineError::Syntax(_))
    }
}

impl std::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmdlineError::Syntax(msg) | CmdlineError::LogLevel(msg) => f.write_str(msg),
            CmdlineError::EnvConflict(var) => write!(
                f,
                "pkg/flags: conflicting environment variable {var:?} is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
            ),
            CmdlineError::Verify(msg) => write!(
                f,
                "etcdmain: error verifying flags, {msg}. See 'etcd --help'."
            ),
        }
    }
}

impl std::error::Error for CmdlineError {}

/// How a flag's value is checked: Go's type for the flag in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `bool`: `-flag` alone means true.
    Bool,
    /// `uint`/`uint64`.
    Unsigned,
    /// `int64`.
    Signed,
    /// `time.Duration`.
    Duration,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// `string`.
    Text,
}

/// Why Go refuses a value; the text is Go's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueError {
    /// Not a value of the flag's type.
    Parse,
    /// A number outside the type's range.
    Range,
    /// A word outside the flag's choices.
    Invalid,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueError::Parse => "parse error",
            ValueError::Range => "value out of range",
            ValueError::Invalid => "invalid value",
        })
    }
}

impl Kind {
    /// Checks `value`; returns it normalised for clap (decimal numbers, `true`/`false`).
    fn check(self, value: &str) -> Result<String, ValueError> {
        match self {
            Kind::Bool => parse_go_bool(value).map(|b| b.to_string()),
            Kind::Unsigned => parse_go_uint(value).map(|n| n.to_string()),
            Kind::Signed => parse_go_int(value).map(|n| n.to_string()),
            Kind::Duration => {
                let unsigned = value
                    .strip_prefix('-')
                    .or_else(|| value.strip_prefix('+'))
                    .unwrap_or(value);
                match parse_go_duration(unsigned) {
                    Some(_) => Ok(value.to_string()),
                    None => Err(ValueError::Parse),
                }
            }
            Kind::Choice(choices) if choices.contains(&value) => Ok(value.to_string()),
            Kind::Choice(_) => Err(ValueError::Invalid),
            Kind::Text => Ok(value.to_string()),
        }
    }
}

/// One flag of etcd's command line.
#[derive(Debug, Clone)]
struct Spec {
    /// The long name, without dashes.
    name: String,
    /// How its value is checked.
    kind: Kind,
    /// A path, where an empty value means "not set" (etcd then uses its default).
    path: bool,
}

impl Spec {
    /// The environment variable that sets this flag: `ETCD_` and the name in
    /// upper snake case.
    fn env_var(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// The flags `config::Flags` defines, sorted by name (the order etcd visits
/// them in), each with its Go kind derived from the Rust type.
fn specs() -> Vec<Spec> {
    use std::any::TypeId;
    let command = Flags::command();
    let mut specs: Vec<Spec> = command
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?.to_string();
            let value_type = arg.get_value_parser().type_id();
            let kind = if !arg.get_action().takes_values() {
                Kind::Bool
            } else if value_type == TypeId::of::<u64>() {
                Kind::Unsigned
            } else if value_type == TypeId::of::<i64>() {
                Kind::Signed
            } else if name == "initial-cluster-state" {
                Kind::Choice(&CLUSTER_STATES)
            } else if name == "experimental-watch-progress-notify-interval" {
                Kind::Duration
            } else {
                Kind::Text
            };
            let path = value_type == TypeId::of::<PathBuf>();
            Some(Spec { name, kind, path })
        })
        .filter(|spec| spec.name != "help")
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
}

/// Flag values by name, already checked and normalised.
type Values = BTreeMap<String, String>;

/// The outcome of reading the arguments.
enum Scan {
    /// `-h` or `-help` appeared.
    Help { long: bool },
    /// The flags set and the arguments left after the flags.
    Flags { values: Values, rest: Vec<String> },
}

/// Reads `args` (without the program name) as Go's `flag` package does.
fn scan(specs: &[Spec], args: &[String]) -> Result<Scan, CmdlineError> {
    let mut values = Values::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        if arg == "--" {
            i += 1;
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(CmdlineError::Syntax(format!("bad flag syntax: {arg}")));
        }
        i += 1;
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            if name == "h" || name == "help" {
                return Ok(Scan::Help {
                    long: name == "help",
                });
            }
            return Err(CmdlineError::Syntax(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = if spec.kind == Kind::Bool {
            let value = inline.unwrap_or("true");
            spec.kind.check(value).map_err(|e| {
                CmdlineError::Syntax(format!("invalid boolean value {value:?} for -{name}: {e}"))
            })?
        } else {
            let value = match inline {
                Some(value) => value,
                None => {
                    let Some(next) = args.get(i) else {
                        return Err(CmdlineError::Syntax(format!(
                            "flag needs an argument: -{name}"
                        )));
                    };
                    i += 1;
                    next.as_str()
                }
            };
            spec.kind.check(value).map_err(|e| {
                CmdlineError::Syntax(format!("invalid value {value:?} for flag -{name}: {e}"))
            })?
        };
        values.insert(spec.name.clone(), value);
    }
    Ok(Scan::Flags {
        values,
        rest: args[i..].to_vec(),
    })
}

/// Fills flags missing from the command line from `ETCD_*` variables, as
/// etcd's `pkg/flags` does; returns the notes to log.
///
/// Like etcd, a bad value does not stop the reading: the last bad variable in
/// flag order is the one reported, and only after the whole environment, in
/// its own order, was checked for variables shadowed by a flag (fatal).
fn apply_env(
    specs: &[Spec],
    values: &mut Values,
    env: &[(String, String)],
) -> Result<Vec<Note>, CmdlineError> {
    let on_command_line: Vec<String> = specs
        .iter()
        .filter(|spec| values.contains_key(&spec.name))
        .map(Spec::env_var)
        .collect();
    let mut notes = Vec::new();
    let mut used = Vec::new();
    let mut bad_value = None;
    for spec in specs {
        if values.contains_key(&spec.name) {
            continue;
        }
        let var = spec.env_var();
        let Some(value) = env_value(env, &var).filter(|v| !v.is_empty()) else {
            continue;
        };
        used.push(var.clone());
        match spec.kind.check(value) {
            Ok(checked) => {
                values.insert(spec.name.clone(), checked);
                notes.push(Note::Info(format!(
                    "recognized and used environment variable {var}={value}"
                )));
            }
            Err(e) => {
                bad_value = Some(CmdlineError::Verify(format!(
                    "invalid value {value:?} for {var}: {e}"
                )));
            }
        }
    }
    for (var, value) in env.iter().filter(|(var, _)| var.starts_with(ENV_PREFIX)) {
        if on_command_line.contains(var) {
            return Err(CmdlineError::EnvConflict(var.clone()));
        }
        if !used.contains(var) {
            notes.push(Note::Warn(format!(
                "unrecognized environment variable {var}={value}"
            )));
        }
    }
    match bad_value {
        Some(e) => Err(e),
        None => Ok(notes),
    }
}

/// The value of `var` in `env`, if set.
fn env_value<'a>(env: &'a [(String, String)], var: &str) -> Option<&'a str> {
    env.iter()
        .find(|(name, _)| name == var)
        .map(|(_, value)| value.as_str())
}

/// `config::Flags` holding `values`, etcd's defaults elsewhere.
fn flags_from_values(specs: &[Spec], values: &Values) -> Result<Flags, CmdlineError> {
    let mut args = vec!["etcd".to_string()];
    for spec in specs {
        let Some(value) = values.get(&spec.name) else {
            continue;
        };
        match spec.kind {
            Kind::Bool if value == "true" => args.push(format!("--{}", spec.name)),
            Kind::Bool => {}
            _ if spec.path && value.is_empty() => {}
            _ => args.push(format!("--{}={value}", spec.name)),
        }
    }
    Flags::parse_without_env(args)
        .map_err(|e| CmdlineError::Verify(e.to_string().trim().to_string()))
}

/// Reads etcd's command line: `args` without the program name, `env` the
/// process environment in its order.
pub fn load(args: &[String], env: &[(String, String)]) -> Result<Invocation, CmdlineError> {
    let specs = specs();
    let (mut values, rest) = match scan(&specs, args)? {
        Scan::Help { long } => return Ok(Invocation::Help { long }),
        Scan::Flags { values, rest } => (values, rest),
    };
    if let Some(first) = rest.first() {
        return Err(CmdlineError::Verify(format!(
            "'{first}' is not a valid flag"
        )));
    }
    if values.get("version").is_some_and(|v| v == "true") {
        return Ok(Invocation::Version);
    }
    let config_file = values
        .get("config-file")
        .map(String::as_str)
        .or_else(|| env_value(env, "ETCD_CONFIG_FILE"))
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    let (flags, notes) = match config_file {
        Some(path) => {
            let flags = Flags::from_config_file(&path)
                .map_err(|e| CmdlineError::Verify(format!("{e:#}")))?;
            let note = Note::Info(format!(
                "Loading server configuration from {:?}. Other configuration command line \
                 flags and environment variables will be ignored if provided.",
                path.display().to_string()
            ));
            (flags, vec![note])
        }
        None => {
            let notes = apply_env(&specs, &mut values, env)?;
            (flags_from_values(&specs, &values)?, notes)
        }
    };
    check_log_level(&flags.log_level).map_err(CmdlineError::LogLevel)?;
    let config = Config::from_flags(flags).map_err(|e| CmdlineError::Verify(format!("{e:#}")))?;
    Ok(Invocation::Run {
        config: Box::new(config),
        notes,
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Result<bool, ValueError> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ValueError::Parse),
    }
}

/// Go's `strconv.ParseUint(text, 0, 64)`: no sign; `0x`, `0o`, `0b` or a
/// leading `0` (octal) choose the base; `_` may separate digits.
fn parse_go_uint(text: &str) -> Result<u64, ValueError> {
    if text.is_empty() || !underscores_ok(text) {
        return Err(ValueError::Parse);
    }
    let lower = text.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if let Some(rest) = lower.strip_prefix('0') {
        (8, rest)
    } else {
        (10, lower.as_str())
    };
    // `0x` alone has no digits; `0` alone is zero.
    if digits.is_empty() && radix != 8 {
        return Err(ValueError::Parse);
    }
    let mut value: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let digit = c.to_digit(radix).ok_or(ValueError::Parse)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(ValueError::Range)?;
    }
    Ok(value)
}

/// Go's `strconv.ParseInt(text, 0, 64)`: an optional sign, then as [`parse_go_uint`].
fn parse_go_int(text: &str) -> Result<i64, ValueError> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_go_uint(magnitude)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or(ValueError::Range)
    } else {
        i64::try_from(magnitude).map_err(|_| ValueError::Range)
    }
}

/// Whether `_` in a Go integer literal only ever separates digits (or
/// follows a base prefix).
fn underscores_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hex = bytes.len() >= 2 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'X');
    let prefixed = bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'x' | b'o' | b'b');
    // What came last: a digit (or base prefix), an underscore, or the start.
    let mut after_digit = prefixed;
    let mut after_underscore = false;
    for &b in &bytes[if prefixed { 2 } else { 0 }..] {
        if b == b'_' {
            if !after_digit {
                return false;
            }
            after_digit = false;
            after_underscore = true;
        } else if b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()) {
            after_digit = true;
            after_underscore = false;
        } else {
            // Any other byte is a syntax error the digit loop reports;
            // an underscore just before it is not allowed either.
            if after_underscore {
                return false;
            }
            after_digit = false;
        }
    }
    !after_underscore
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `load` on a command line given as one string, with `env`.
    fn run(line: &str, env: &[(&str, &str)]) -> Result<Invocation, CmdlineError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&args, &env)
    }

    /// The configuration `line` and `env` start a member with.
    fn config(line: &str, env: &[(&str, &str)]) -> Config {
        match run(line, env) {
            Ok(Invocation::Run { config, .. }) => *config,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    /// The error `line` and `env` are refused with.
    fn error(line: &str, env: &[(&str, &str)]) -> CmdlineError {
        match run(line, env) {
            Err(e) => e,
            Ok(other) => panic!("{line:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn go_numbers() {
        let uint: &[(&str, Result<u64, ValueError>)] = &[
            ("0", Ok(0)),
            ("42", Ok(42)),
            ("0x10", Ok(16)),
            ("0X1f", Ok(31)),
            ("010", Ok(8)),
            ("0o17", Ok(15)),
            ("0b101", Ok(5)),
            ("1_000", Ok(1000)),
            ("0x_1", Ok(1)),
            ("18446744073709551615", Ok(u64::MAX)),
            ("18446744073709551616", Err(ValueError::Range)),
            ("", Err(ValueError::Parse)),
            ("-1", Err(ValueError::Parse)),
            ("+5", Err(ValueError::Parse)),
            ("1.5", Err(ValueError::Parse)),
            ("abc", Err(ValueError::Parse)),
            ("0x", Err(ValueError::Parse)),
            ("08", Err(ValueError::Parse)),
            ("1__0", Err(ValueError::Parse)),
            ("_1", Err(ValueError::Parse)),
            ("1_", Err(ValueError::Parse)),
        ];
        for (text, want) in uint {
            assert_eq!(parse_go_uint(text), *want, "uint {text:?}");
        }
        let int: &[(&str, Result<i64, ValueError>)] = &[
            ("-1", Ok(-1)),
            ("+5", Ok(5)),
            ("-0x10", Ok(-16)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("9223372036854775808", Err(ValueError::Range)),
            ("-", Err(ValueError::Parse)),
            ("--1", Err(ValueError::Parse)),
            ("x", Err(ValueError::Parse)),
        ];
        for (text, want) in int {
            assert_eq!(parse_go_int(text), *want, "int {text:?}");
        }
        for (text, want) in [
            ("1", Ok(true)),
            ("False", Ok(false)),
            ("yes", Err(ValueError::Parse)),
        ] {
            assert_eq!(parse_go_bool(text), want, "bool {text:?}");
        }
    }

    #[test]
    fn go_flag_syntax_is_accepted() {
        // (command line, name, max_txn_ops, quota_backend_bytes)
        let cases: &[(&str, &str, usize, i64)] = &[
            ("-name x", "x", 128, 2 << 30),
            ("--name=x -max-txn-ops=3", "x", 3, 2 << 30),
            ("--max-txn-ops 3 --max-txn-ops 5", "default", 5, 2 << 30),
            ("-name a -name b", "b", 128, 2 << 30),
            ("--quota-backend-bytes -1", "default", 128, -1),
            ("--quota-backend-bytes 0x100000", "default", 128, 1 << 20),
            ("--max-txn-ops 0x10", "default", 16, 2 << 30),
            ("--name=a=b", "a=b", 128, 2 << 30),
            ("--version=false --name v", "v", 128, 2 << 30),
        ];
        for &(line, name, max_txn_ops, quota) in cases {
            let cfg = config(line, &[]);
            assert_eq!(cfg.name, name, "{line}");
            assert_eq!(cfg.max_txn_ops, max_txn_ops, "{line}");
            assert_eq!(cfg.quota_backend_bytes, quota, "{line}");
        }
    }

    #[test]
    fn help_and_version() {
        for (line, long) in [
            ("-h", false),
            ("--help", true),
            ("-help", true),
            ("--name x -h", false),
        ] {
            assert!(
                matches!(run(line, &[]), Ok(Invocation::Help { long: l }) if l == long),
                "{line}"
            );
        }
        for line in [
            "--version",
            "-version",
            "--version=true",
            "-version=1",
            "--name x -version",
        ] {
            assert!(matches!(run(line, &[]), Ok(Invocation::Version)), "{line}");
        }
        // --version wins over environment variables etcd would refuse.
        assert!(matches!(
            run(
                "--version",
                &[("ETCD_SNAPSHOT_COUNT", "x"), ("ETCD_NAME", "n")]
            ),
            Ok(Invocation::Version)
        ));
    }

    /// A refused command line: arguments, environment, exit code, text.
    type Refusal<'a> = (&'a str, &'a [(&'a str, &'a str)], u8, &'a str);

    #[test]
    fn refused_command_lines_use_etcds_texts_and_codes() {
        let cases: &[Refusal] = &[
            ("--bogus", &[], 2, "flag provided but not defined: -bogus"),
            ("-x", &[], 2, "flag provided but not defined: -x"),
            ("---name x", &[], 2, "bad flag syntax: ---name"),
            ("--name", &[], 2, "flag needs an argument: -name"),
            (
                "--heartbeat-interval abc",
                &[],
                2,
                "invalid value \"abc\" for flag -heartbeat-interval: parse error",
            ),
            (
                "--snapshot-count -1",
                &[],
                2,
                "invalid value \"-1\" for flag -snapshot-count: parse error",
            ),
            (
                "--max-txn-ops=-3",
                &[],
                2,
                "invalid value \"-3\" for flag -max-txn-ops: parse error",
            ),
            (
                "--max-request-bytes 1.5",
                &[],
                2,
                "invalid value \"1.5\" for flag -max-request-bytes: parse error",
            ),
            (
                "--heartbeat-interval 99999999999999999999999",
                &[],
                2,
                "invalid value \"99999999999999999999999\" for flag -heartbeat-interval: value out of range",
            ),
            (
                "--initial-cluster-state weird",
                &[],
                2,
                "invalid value \"weird\" for flag -initial-cluster-state: invalid value",
            ),
            (
                "--experimental-watch-progress-notify-interval x",
                &[],
                2,
                "invalid value \"x\" for flag -experimental-watch-progress-notify-interval: parse error",
            ),
            (
                "--version=x",
                &[],
                2,
                "invalid boolean value \"x\" for -version: parse error",
            ),
            (
                "extra",
                &[],
                1,
                "etcdmain: error verifying flags, 'extra' is not a valid flag. See 'etcd --help'.",
            ),
            ("-version extra", &[], 1, "'extra' is not a valid flag"),
            ("-- --name x", &[], 1, "'--name' is not a valid flag"),
            (
                "--heartbeat-interval 0",
                &[],
                1,
                "error verifying flags, --heartbeat-interval must be >0 (set to 0ms).",
            ),
            (
                "--election-timeout 400",
                &[],
                1,
                "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]",
            ),
            (
                "--election-timeout 60000",
                &[],
                1,
                "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
            ),
            ("--log-level bogus", &[], 2, "unknown level \"bogus\""),
            (
                "--log-level bogus --election-timeout 400",
                &[],
                2,
                "unknown level \"bogus\"",
            ),
            (
                "--config-file /nonexistent.yaml",
                &[],
                1,
                "error verifying flags, open /nonexistent.yaml: no such file or directory.",
            ),
            (
                "",
                &[("ETCD_HEARTBEAT_INTERVAL", "abc")],
                1,
                "error verifying flags, invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error.",
            ),
            (
                "",
                &[("ETCD_SNAPSHOT_COUNT", "-1")],
                1,
                "invalid value \"-1\" for ETCD_SNAPSHOT_COUNT: parse error",
            ),
            (
                "",
                &[("ETCD_INITIAL_CLUSTER_STATE", "weird")],
                1,
                "invalid value \"weird\" for ETCD_INITIAL_CLUSTER_STATE: invalid value",
            ),
            (
                "",
                &[
                    ("ETCD_LOG_LEVEL", "bogus"),
                    ("ETCD_HEARTBEAT_INTERVAL", "0"),
                ],
                2,
                "unknown level \"bogus\"",
            ),
            (
                "--name y",
                &[("ETCD_NAME", "x")],
                1,
                "pkg/flags: conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
            ),
            (
                "--name y",
                &[("ETCD_NAME", "")],
                1,
                "conflicting environment variable \"ETCD_NAME\"",
            ),
            // Conflicts are fatal before any variable's value is checked.
            (
                "--name y",
                &[("ETCD_ELECTION_TIMEOUT", "x"), ("ETCD_NAME", "a")],
                1,
                "conflicting environment variable \"ETCD_NAME\"",
            ),
            // Syntax errors come before left-over arguments.
            (
                "--heartbeat-interval 0 --bogus",
                &[],
                2,
                "flag provided but not defined: -bogus",
            ),
        ];
        for &(line, env, code, text) in cases {
            let e = error(line, env);
            assert_eq!(e.exit_code(), code, "{line} {env:?}: {e}");
            assert!(e.to_string().contains(text), "{line} {env:?}: {e}");
        }
    }

    #[test]
    fn environment_fills_what_the_command_line_leaves_out() {
        let cfg = config(
            "--name n1",
            &[
                ("ETCD_MAX_TXN_OPS", "7"),
                ("ETCD_QUOTA_BACKEND_BYTES", "-1"),
                ("ETCD_SNAPSHOT_COUNT", "0x10"),
            ],
        );
        assert_eq!((cfg.name.as_str(), cfg.max_txn_ops), ("n1", 7));
        assert_eq!(cfg.snapshot_count, 16);
        assert_eq!(cfg.quota_backend_bytes, -1, "negative: no quota");
        // An empty variable is ignored, with a warning.
        let Ok(Invocation::Run { config, notes }) = run("", &[("ETCD_MAX_TXN_OPS", "")]) else {
            panic!("refused");
        };
        assert_eq!(config.max_txn_ops, 128);
        assert!(notes.contains(&Note::Warn(
            "unrecognized environment variable ETCD_MAX_TXN_OPS=".into()
        )));
        let Ok(Invocation::Run { notes, .. }) = run("", &[("ETCD_BOGUS", "1"), ("ETCD_NAME", "n")])
        else {
            panic!("refused");
        };
        assert_eq!(
            notes,
            vec![
                Note::Info("recognized and used environment variable ETCD_NAME=n".into()),
                Note::Warn("unrecognized environment variable ETCD_BOGUS=1".into()),
            ]
        );
        // Variables that are not etcd's are none of its business.
        let Ok(Invocation::Run { notes, .. }) = run("", &[("PATH", "/bin"), ("ETCDCTL_API", "3")])
        else {
            panic!("refused");
        };
        assert_eq!(notes, vec![]);
    }

    #[test]
    fn a_config_file_ignores_the_environment_and_other_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(&path, "name: n1\nmax-txn-ops: 7\n").unwrap();
        let path = path.to_str().unwrap();
        let env = [
            ("ETCD_MAX_REQUEST_BYTES", "3000"),
            ("ETCD_SNAPSHOT_COUNT", "-1"),
            ("ETCD_NAME", "envname"),
        ];
        for (line, env) in [
            (
                format!("--config-file {path} --name other --max-txn-ops 9"),
                &env[..],
            ),
            (
                String::new(),
                &[("ETCD_CONFIG_FILE", path), env[0], env[1]][..],
            ),
        ] {
            let cfg = config(&line, env);
            assert_eq!(cfg.name, "n1");
            assert_eq!(cfg.max_txn_ops, 7);
            assert_eq!(
                cfg.max_request_bytes, 1_572_864,
                "the environment is ignored"
            );
        }
    }
}
