//! The few Go formatting rules etcdctl's output depends on, reproduced
//! exactly: `%q` quoting, `%x` ids, go-humanize's byte sizes, Go's
//! `time.Duration` text, and `%v` of a string slice.

use std::fmt::Write as _;
use std::time::Duration;

/// Go's `strconv.Quote(string(bytes))`: printable characters as they are,
/// Go escapes for the rest, `\xNN` for bytes that are not UTF-8.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (c, len) = match std::str::from_utf8(rest) {
            Ok(s) => {
                let c = s.chars().next().expect("non-empty");
                (Some(c), c.len_utf8())
            }
            Err(e) if e.valid_up_to() > 0 => {
                let s = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid prefix");
                let c = s.chars().next().expect("non-empty");
                (Some(c), c.len_utf8())
            }
            Err(_) => (None, 1),
        };
        match c {
            None => {
                let _ = write!(out, "\\x{:02x}", rest[0]);
            }
            Some(c) => push_quoted_char(&mut out, c),
        }
        rest = &rest[len..];
    }
    out.push('"');
    out
}

/// One character of [`quote`].
fn push_quoted_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `unicode.IsPrint`: exact for ASCII and the
/// Latin-1 block, and for the format and separator characters Go rejects.
fn is_print(c: char) -> bool {
    let u = c as u32;
    match u {
        0x20..=0x7e => true,
        0..=0x1f | 0x7f..=0xa0 | 0xad => false,
        0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f | 0xfeff | 0xfff9..=0xfffb => false,
        0xd800..=0xdfff | 0xe000..=0xf8ff | 0xfffe | 0xffff => false,
        _ => !c.is_control(),
    }
}

/// etcdctl's `--hex` form of bytes: `\x66\x6f\x6f`.
pub fn hex_escaped(bytes: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
    out.into_bytes()
}

/// go-humanize's `Bytes`: SI units, one decimal below ten (`20 kB`, `1.5 MB`).
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let size = size as f64;
    let exponent = (size.ln() / 1000f64.ln()).floor();
    let unit = UNITS[exponent as usize];
    let value = (size / 1000f64.powf(exponent) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Go's `time.Duration.String()`: `1.351416ms`, `5.001065825s`, `2m3s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (hours, minutes, secs) = (total_secs / 3600, total_secs / 60 % 60, total_secs % 60);
    let secs_text = trim_fraction(
        u128::from(secs as u64) * 1_000_000_000 + frac,
        1_000_000_000,
    );
    match (hours, minutes) {
        (0, 0) => format!("{secs_text}s"),
        (0, m) => format!("{m}m{secs_text}s"),
        (h, m) => format!("{h}h{m}m{secs_text}s"),
    }
}

/// `value / unit` with its fraction, trailing zeros removed.
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = unit.to_string().len() - 1;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Go's `%v` of a `[]string`: `[a b c]`.
pub fn string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote(b"foo"), "\"foo\"");
        assert_eq!(quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote(b"\xff\x00"), "\"\\xff\\x00\"");
        assert_eq!(quote("héllo".as_bytes()), "\"héllo\"");
        assert_eq!(quote("\u{2028}".as_bytes()), "\"\\u2028\"");
    }

    #[test]
    fn humanizes_like_go_humanize() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(24576), "25 kB");
        assert_eq!(humanize_bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn prints_durations_like_go() {
        assert_eq!(go_duration(Duration::from_nanos(1_351_416)), "1.351416ms");
        assert_eq!(
            go_duration(Duration::from_nanos(5_001_065_825)),
            "5.001065825s"
        );
        assert_eq!(go_duration(Duration::from_secs(123)), "2m3s");
        assert_eq!(go_duration(Duration::from_micros(15)), "15µs");
    }

    #[test]
    fn prints_hex_and_slices() {
        assert_eq!(hex_escaped(b"k1"), b"\\x6b\\x31".to_vec());
        assert_eq!(string_slice(&["a".into(), "b".into()]), "[a b]");
    }
}
