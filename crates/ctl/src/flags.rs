//! Command-line flags, parsed the way etcdctl's flag library (pflag under
//! cobra) parses them, so that every accepted spelling and every error text
//! is etcdctl's.
//!
//! Why not clap: etcdctl users rely on pflag's exact behaviour and scripts
//! grep its messages. pflag accepts `--prefix=false`, `-wjson`, `-w=json`,
//! flags after positional arguments, and reports
//! `invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x":
//! invalid syntax`; its usage lists flags as `--limit=0` and `--prefix[=false]`
//! aligned with tab stops. Reproducing that through clap's parser and
//! renderer would take more code than this module, so the parser is ours.
//!
//! - A [`FlagSpec`] names a flag, its optional one-letter shorthand, its
//!   [`Kind`], its default (as text, as pflag shows it) and its usage line.
//! - [`parse`] walks the arguments once: `--` ends the flags, `-` alone and
//!   anything not starting with `-` is positional, values are checked when
//!   met (first error wins, as in pflag).
//! - [`usage_lines`] renders a flag set as etcdctl's help does, through
//!   [`tabwrite`], a port of the layout (not the code) of Go's tabwriter with
//!   tab padding.

use std::collections::BTreeMap;
use std::time::Duration;

/// What values a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true|false`.
    Bool,
    /// Any text.
    Str,
    /// A signed 64-bit integer.
    Int,
    /// A Go duration (`5s`, `100ms`, `1m30s`).
    Duration,
    /// A comma-separated list; repeated flags append.
    StrList,
}

/// One flag's definition.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Long name without dashes.
    pub name: &'static str,
    /// One-letter shorthand, if any.
    pub short: Option<char>,
    /// Value kind.
    pub kind: Kind,
    /// Default value as pflag prints it (`"simple"` is shown quoted).
    pub default: &'static str,
    /// One-line description.
    pub usage: &'static str,
}

impl FlagSpec {
    /// A flag without shorthand.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        usage: &'static str,
    ) -> FlagSpec {
        FlagSpec {
            name,
            short: None,
            kind,
            default,
            usage,
        }
    }

    /// The same flag with a shorthand.
    pub const fn short(mut self, short: char) -> FlagSpec {
        self.short = Some(short);
        self
    }
}

/// The help flag every command has.
pub fn help_flag(command: &str) -> FlagSpec {
    FlagSpec {
        name: "help",
        short: Some('h'),
        kind: Kind::Bool,
        default: "false",
        usage: Box::leak(format!("help for {command}").into_boxed_str()),
    }
}

/// Values given on the command line, by long name, as text.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// Flags that were set, with their (last, or joined for lists) values.
    pub values: BTreeMap<String, Vec<String>>,
    /// Positional arguments in order.
    pub args: Vec<String>,
    /// How many positional arguments came before a `--`, if one was given.
    pub dash_at: Option<usize>,
}

impl Parsed {
    /// Whether the flag was given.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The last value given for a flag.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
}

/// A parsed flag set that also knows the defaults.
#[derive(Debug, Clone)]
pub struct Flags {
    /// The definitions.
    specs: Vec<FlagSpec>,
    /// What the command line (and environment) set.
    parsed: Parsed,
}

impl Flags {
    /// Wraps parsed values with their definitions.
    pub fn new(specs: Vec<FlagSpec>, parsed: Parsed) -> Flags {
        Flags { specs, parsed }
    }

    /// The positional arguments.
    pub fn args(&self) -> &[String] {
        &self.parsed.args
    }

    /// How many positional arguments came before `--`, if given.
    pub fn dash_at(&self) -> Option<usize> {
        self.parsed.dash_at
    }

    /// Whether the flag was set explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.parsed.is_set(name)
    }

    /// The flag's text value, or its default (unquoted).
    pub fn string(&self, name: &str) -> String {
        match self.parsed.last(name) {
            Some(v) => v.to_string(),
            None => self.spec(name).default.trim_matches('"').to_string(),
        }
    }

    /// A boolean flag.
    pub fn bool(&self, name: &str) -> bool {
        parse_bool(&self.string(name)).unwrap_or(false)
    }

    /// A signed integer flag (validated while parsing).
    pub fn int(&self, name: &str) -> i64 {
        self.string(name).parse().unwrap_or(0)
    }

    /// A duration flag (validated while parsing).
    pub fn duration(&self, name: &str) -> Duration {
        parse_duration(&self.string(name)).unwrap_or_default()
    }

    /// A list flag: every given value split at commas, or the default list.
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.parsed.values.get(name) {
            Some(values) => values
                .iter()
                .flat_map(|v| v.split(','))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => {
                let default = self.spec(name).default;
                let inner = default.trim_start_matches('[').trim_end_matches(']');
                inner
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
        }
    }

    /// The definition of `name`; panics on a programming error.
    fn spec(&self, name: &str) -> &FlagSpec {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("flag --{name} is not defined"))
    }
}

/// Parses `args` against `specs`; the error text is pflag's.
pub fn parse(args: &[String], specs: &[FlagSpec]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            parsed.dash_at = Some(parsed.args.len());
            parsed.args.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("unknown flag: --{name}"))?;
            let value = match (inline, spec.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".to_string(),
                (None, _) if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                (None, _) => return Err(format!("flag needs an argument: --{name}")),
            };
            set(&mut parsed, spec, value, &format!("--{}", spec.name))?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            let shorts: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < shorts.len() {
                let c = shorts[j];
                let spec = specs
                    .iter()
                    .find(|s| s.short == Some(c))
                    .ok_or_else(|| format!("unknown shorthand flag: '{c}' in -{}", &arg[1..]))?;
                let rest: String = shorts[j + 1..].iter().collect();
                let shown = format!("-{c}, --{}", spec.name);
                if let Some(v) = rest.strip_prefix('=') {
                    set(&mut parsed, spec, v.to_string(), &shown)?;
                    break;
                }
                if spec.kind == Kind::Bool {
                    set(&mut parsed, spec, "true".to_string(), &shown)?;
                    j += 1;
                    continue;
                }
                let value = if !rest.is_empty() {
                    rest
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!("flag needs an argument: '{c}' in -{}", &arg[1..]));
                };
                set(&mut parsed, spec, value, &shown)?;
                break;
            }
        } else {
            parsed.args.push(arg.clone());
        }
    }
    Ok(parsed)
}

/// Validates and records one value.
fn set(parsed: &mut Parsed, spec: &FlagSpec, value: String, shown: &str) -> Result<(), String> {
    validate(spec.kind, &value)
        .map_err(|e| format!("invalid argument {value:?} for \"{shown}\" flag: {e}"))?;
    let entry = parsed.values.entry(spec.name.to_string()).or_default();
    if spec.kind == Kind::StrList {
        entry.push(value);
    } else {
        *entry = vec![value];
    }
    Ok(())
}

/// Checks a value against its kind, with Go's error texts.
pub fn validate(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Bool => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| format!("strconv.ParseBool: parsing {value:?}: invalid syntax")),
        Kind::Int => parse_go_int(value, "ParseInt", |s| s.parse::<i64>().is_ok()),
        Kind::Duration => parse_duration(value)
            .map(|_| ())
            .ok_or_else(|| format!("time: invalid duration {value:?}")),
        Kind::Str | Kind::StrList => Ok(()),
    }
}

/// Go's `strconv` error for an integer that does not parse.
fn parse_go_int(value: &str, func: &str, ok: impl Fn(&str) -> bool) -> Result<(), String> {
    if ok(value) {
        return Ok(());
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let reason = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range"
    } else {
        "invalid syntax"
    };
    Err(format!("strconv.{func}: parsing {value:?}: {reason}"))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` for non-negative durations (`1h2m3.5s`, `300ms`).
pub fn parse_duration(value: &str) -> Option<Duration> {
    if value == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = value.strip_prefix('+').unwrap_or(value);
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += number * nanos_per_unit;
    }
    Some(Duration::from_nanos(total_nanos as u64))
}

/// How pflag shows a flag in usage: `  -w, --write-out="simple"`, with the
/// usage after a tab.
fn usage_cell(spec: &FlagSpec) -> String {
    let mut line = match spec.short {
        Some(c) => format!("  -{c}, --{}", spec.name),
        None => format!("      --{}", spec.name),
    };
    if spec.kind == Kind::Bool {
        line.push_str(&format!("[={}]", spec.default));
    } else {
        line.push('=');
        line.push_str(spec.default);
    }
    format!("{line}\t{}", spec.usage)
}

/// The flag lines of a usage text, sorted by name, tab-aligned.
pub fn usage_lines(specs: &[FlagSpec]) -> String {
    let mut sorted: Vec<&FlagSpec> = specs.iter().collect();
    sorted.sort_by_key(|s| s.name);
    let lines: Vec<String> = sorted.into_iter().map(usage_cell).collect();
    tabwrite(&lines)
}

/// Aligns tab-separated cells the way Go's tabwriter does with minwidth 0,
/// tabwidth 8, padding 1 and tab padding: each column is as wide as its
/// widest cell plus one, rounded up to a tab stop, and filled with tabs.
/// Cells in a line's last position are not aligned.
pub fn tabwrite(lines: &[String]) -> String {
    const TAB_WIDTH: usize = 8;
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &rows {
        for (c, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            let width = (cell.chars().count() + 1).div_ceil(TAB_WIDTH) * TAB_WIDTH;
            widths[c] = widths[c].max(width);
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                let len = cell.chars().count();
                let tabs = (widths[c] - len).div_ceil(TAB_WIDTH).max(1);
                out.push_str(&"\t".repeat(tabs));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<FlagSpec> {
        vec![
            FlagSpec::new(
                "prefix",
                Kind::Bool,
                "false",
                "Get keys with matching prefix",
            ),
            FlagSpec::new("limit", Kind::Int, "0", "Maximum number of results"),
            FlagSpec::new(
                "write-out",
                Kind::Str,
                "\"simple\"",
                "set the output format",
            )
            .short('w'),
            FlagSpec::new("dial-timeout", Kind::Duration, "2s", "dial timeout"),
        ]
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn accepts_pflag_spellings() {
        let p = parse(
            &args("a --prefix=false -wjson b --limit 3 -- --x"),
            &specs(),
        )
        .unwrap();
        assert_eq!(p.args, vec!["a", "b", "--x"]);
        assert_eq!(p.last("prefix"), Some("false"));
        assert_eq!(p.last("write-out"), Some("json"));
        assert_eq!(p.last("limit"), Some("3"));
        let p = parse(&args("-w=fields"), &specs()).unwrap();
        assert_eq!(p.last("write-out"), Some("fields"));
    }

    #[test]
    fn reports_pflag_errors() {
        let err = |line: &str| parse(&args(line), &specs()).unwrap_err();
        assert_eq!(err("--foo"), "unknown flag: --foo");
        assert_eq!(err("-x"), "unknown shorthand flag: 'x' in -x");
        assert_eq!(err("--limit"), "flag needs an argument: --limit");
        assert_eq!(err("-w"), "flag needs an argument: 'w' in -w");
        assert_eq!(
            err("--limit=abc"),
            "invalid argument \"abc\" for \"--limit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            err("--prefix=xx"),
            "invalid argument \"xx\" for \"--prefix\" flag: strconv.ParseBool: parsing \"xx\": invalid syntax"
        );
        assert_eq!(
            err("--dial-timeout=x"),
            "invalid argument \"x\" for \"--dial-timeout\" flag: time: invalid duration \"x\""
        );
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn aligns_usage_like_tabwriter() {
        let text = usage_lines(&specs());
        assert_eq!(
            text,
            "      --dial-timeout=2s\t\tdial timeout\n      --limit=0\t\t\tMaximum number of results\n      --prefix[=false]\t\tGet keys with matching prefix\n  -w, --write-out=\"simple\"\tset the output format\n"
        );
    }
}
