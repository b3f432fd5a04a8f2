//! JSON syntax as etcd's gateway sees it: a byte-at-a-time scanner with the
//! states, error texts and end-of-value rules of Go's `encoding/json`.
//!
//! etcd 3.4's grpc-gateway reads a request with Go's `json.Decoder`, which
//! takes one JSON value off the front of the body and ignores whatever
//! follows it, and then decodes each field again with `json.Unmarshal`,
//! which insists that its whole input is one value. Users and tools match on
//! the texts those two produce, so this module reproduces them:
//!
//! - a byte that cannot continue the value gives
//!   `invalid character 'x' <context>`, the context naming the scanner state
//!   (`looking for beginning of value`, `after object key`, ...);
//! - a body that ends inside a value gives `unexpected EOF` on the decoder
//!   path and `unexpected end of JSON input` on the unmarshal path (unless
//!   the implied end of input is itself invalid there, as after `1.`);
//! - a body with nothing but whitespace is no value at all (`io.EOF`, which
//!   the gateway treats as an empty request).
//!
//! Invariants:
//! - the scanner never looks at a byte twice and keeps its nesting on an
//!   explicit stack, so hostile nesting cannot overflow the thread's stack;
//!   nesting deeper than [`MAX_NESTING_DEPTH`] is an error, as in Go;
//! - any byte sequence is accepted inside strings except control characters,
//!   as in Go (invalid UTF-8 is not a syntax error).

/// Deepest nesting of objects and arrays Go's scanner accepts.
pub(crate) const MAX_NESTING_DEPTH: usize = 10_000;

/// Why scanning a value failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The input holds only whitespace.
    Empty,
    /// The input ended inside the value.
    Truncated,
    /// A byte that cannot continue the value, with Go's text.
    Syntax(String),
}

/// What the enclosing container expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Inside an object, before the `:` of a member.
    ObjectKey,
    /// Inside an object, after a member's value.
    ObjectValue,
    /// Inside an array, after an element.
    ArrayValue,
}

/// The scanner's state: what the next byte may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Whitespace, then a value.
    BeginValue,
    /// Right after `[`: a value or `]`.
    BeginValueOrEmpty,
    /// Right after `{`: a key string or `}`.
    BeginStringOrEmpty,
    /// After `,` in an object: a key string.
    BeginString,
    /// Inside a string.
    InString,
    /// After a backslash in a string.
    InStringEsc,
    /// Inside `\u` with this many hex digits still to come.
    InStringEscU(u8),
    /// After a leading `-`.
    Neg,
    /// After a leading `0`.
    Zero,
    /// In the integer digits of a number that did not start with `0`.
    Int,
    /// After the decimal point.
    Dot,
    /// In the fraction digits.
    Frac,
    /// After `e` or `E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    /// In the exponent digits.
    ExpDigits,
    /// Inside `true`, `false` or `null`: the literal and how much is read.
    Literal(&'static str, u8),
    /// A value just ended: whitespace, then what the container expects.
    EndValue,
    /// The top-level value ended.
    EndTop,
}

/// What one byte did.
enum Step {
    /// The value goes on.
    Continue,
    /// The top-level value was already complete before this byte.
    End,
    /// The byte is invalid here.
    Error(String),
}

/// Go's JSON whitespace.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// `c` quoted as Go's syntax errors quote a byte: `'x'`, `'\n'`, `'\x01'`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            // Go turns the byte into the rune of the same value (Latin-1).
            let quoted = go_quote(char::from(c).to_string().as_bytes());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// `bytes` as Go's `%q` (strconv.Quote) writes them.
pub(crate) fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if is_go_printable(c) => out.push(c),
                c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push_str(&format!("\\U{:08x}", c as u32)),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: graphic characters and the
/// ASCII space. Exact for ASCII and Latin-1, which is all a syntax error
/// can name.
fn is_go_printable(c: char) -> bool {
    match c as u32 {
        0x20..=0x7e => true,
        0..=0x1f | 0x7f..=0xa0 | 0xad => false,
        _ => !c.is_control() && !c.is_whitespace(),
    }
}

/// A syntax error text for byte `c` in `context`.
fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's JSON scanner over one value.
struct Scanner {
    /// What the next byte may be.
    state: State,
    /// The open containers, innermost last.
    stack: Vec<Frame>,
}

impl Scanner {
    /// A scanner before the first byte.
    fn new() -> Self {
        Scanner {
            state: State::BeginValue,
            stack: Vec::new(),
        }
    }

    /// Enters a container.
    fn push(&mut self, c: u8, frame: Frame, next: State) -> Step {
        if self.stack.len() >= MAX_NESTING_DEPTH {
            return Step::Error(invalid(c, "exceeded max nesting depth"));
        }
        self.stack.push(frame);
        self.state = next;
        Step::Continue
    }

    /// The start of a value at byte `c`.
    fn begin_value(&mut self, c: u8) -> Step {
        self.state = match c {
            b'{' => return self.push(c, Frame::ObjectKey, State::BeginStringOrEmpty),
            b'[' => return self.push(c, Frame::ArrayValue, State::BeginValueOrEmpty),
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b'1'..=b'9' => State::Int,
            b't' => State::Literal("true", 1),
            b'f' => State::Literal("false", 1),
            b'n' => State::Literal("null", 1),
            c if is_space(c) => return Step::Continue,
            c => return Step::Error(invalid(c, "looking for beginning of value")),
        };
        Step::Continue
    }

    /// Byte `c` after a complete value.
    fn end_value(&mut self, c: u8) -> Step {
        let Some(frame) = self.stack.last().copied() else {
            self.state = State::EndTop;
            return Step::End;
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Step::Continue;
        }
        match (frame, c) {
            (Frame::ObjectKey, b':') => {
                *self.stack.last_mut().expect("frame") = Frame::ObjectValue;
                self.state = State::BeginValue;
            }
            (Frame::ObjectKey, c) => return Step::Error(invalid(c, "after object key")),
            (Frame::ObjectValue, b',') => {
                *self.stack.last_mut().expect("frame") = Frame::ObjectKey;
                self.state = State::BeginString;
            }
            (Frame::ObjectValue, b'}') | (Frame::ArrayValue, b']') => {
                self.stack.pop();
                self.state = State::EndValue;
            }
            (Frame::ObjectValue, c) => {
                return Step::Error(invalid(c, "after object key:value pair"));
            }
            (Frame::ArrayValue, b',') => self.state = State::BeginValue,
            (Frame::ArrayValue, c) => return Step::Error(invalid(c, "after array element")),
        }
        Step::Continue
    }

    /// Feeds one byte.
    fn step(&mut self, c: u8) -> Step {
        match self.state {
            State::BeginValue => self.begin_value(c),
            State::BeginValueOrEmpty if c == b']' => {
                self.stack.pop();
                self.state = State::EndValue;
                Step::Continue
            }
            State::BeginValueOrEmpty => self.begin_value(c),
            State::BeginStringOrEmpty if c == b'}' => {
                self.stack.pop();
                self.state = State::EndValue;
                Step::Continue
            }
            State::BeginStringOrEmpty | State::BeginString => match c {
                b'"' => {
                    self.state = State::InString;
                    Step::Continue
                }
                c if is_space(c) => Step::Continue,
                c => Step::Error(invalid(c, "looking for beginning of object key string")),
            },
            State::InString => {
                match c {
                    b'"' => self.state = State::EndValue,
                    b'\\' => self.state = State::InStringEsc,
                    c if c < 0x20 => return Step::Error(invalid(c, "in string literal")),
                    _ => {}
                }
                Step::Continue
            }
            State::InStringEsc => {
                match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                        self.state = State::InString;
                    }
                    b'u' => self.state = State::InStringEscU(4),
                    c => return Step::Error(invalid(c, "in string escape code")),
                }
                Step::Continue
            }
            State::InStringEscU(left) => {
                if !c.is_ascii_hexdigit() {
                    return Step::Error(invalid(c, "in \\u hexadecimal character escape"));
                }
                self.state = if left == 1 {
                    State::InString
                } else {
                    State::InStringEscU(left - 1)
                };
                Step::Continue
            }
            State::Neg => {
                self.state = match c {
                    b'0' => State::Zero,
                    b'1'..=b'9' => State::Int,
                    c => return Step::Error(invalid(c, "in numeric literal")),
                };
                Step::Continue
            }
            State::Zero | State::Int => match c {
                b'0'..=b'9' if self.state == State::Int => Step::Continue,
                b'.' => {
                    self.state = State::Dot;
                    Step::Continue
                }
                b'e' | b'E' => {
                    self.state = State::Exp;
                    Step::Continue
                }
                c => self.end_value(c),
            },
            State::Dot => {
                if !c.is_ascii_digit() {
                    return Step::Error(invalid(c, "after decimal point in numeric literal"));
                }
                self.state = State::Frac;
                Step::Continue
            }
            State::Frac => match c {
                b'0'..=b'9' => Step::Continue,
                b'e' | b'E' => {
                    self.state = State::Exp;
                    Step::Continue
                }
                c => self.end_value(c),
            },
            State::Exp | State::ExpSign => {
                self.state = match c {
                    b'+' | b'-' if self.state == State::Exp => State::ExpSign,
                    b'0'..=b'9' => State::ExpDigits,
                    c => return Step::Error(invalid(c, "in exponent of numeric literal")),
                };
                Step::Continue
            }
            State::ExpDigits if c.is_ascii_digit() => Step::Continue,
            State::ExpDigits | State::EndValue => self.end_value(c),
            State::Literal(word, read) => {
                let want = word.as_bytes()[usize::from(read)];
                if c != want {
                    let context = format!("in literal {word} (expecting {})", quote_char(want));
                    return Step::Error(invalid(c, &context));
                }
                self.state = if usize::from(read) + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, read + 1)
                };
                Step::Continue
            }
            State::EndTop if is_space(c) => Step::Continue,
            State::EndTop => Step::Error(invalid(c, "after top-level value")),
        }
    }

    /// Whether a complete top-level value has been read (the bytes seen so
    /// far end it; for a number, only if the input ends here).
    fn top_complete(&self) -> bool {
        self.stack.is_empty() && matches!(self.state, State::EndValue | State::EndTop)
    }

    /// What the end of input does in the current state, as Go's scanner
    /// treats it: like one more space.
    fn finish(&mut self) -> Result<(), Option<String>> {
        if self.state == State::EndTop {
            return Ok(());
        }
        match self.step(b' ') {
            Step::Error(text) => Err(Some(text)),
            _ if self.top_complete() => Ok(()),
            _ => Err(None),
        }
    }
}

/// Reads the first JSON value of `input` as Go's `json.Decoder` does and
/// returns the offset just past it (bytes after it are not looked at).
pub(crate) fn scan_first_value(input: &[u8]) -> Result<usize, ScanError> {
    let mut scanner = Scanner::new();
    let mut started = false;
    for (i, &c) in input.iter().enumerate() {
        let depth_before = scanner.stack.len();
        match scanner.step(c) {
            Step::Continue => {}
            Step::End => return Ok(i),
            Step::Error(text) => return Err(ScanError::Syntax(text)),
        }
        started |= !is_space(c);
        if depth_before == 1 && scanner.stack.is_empty() {
            // A closing bracket ends the top-level value at once.
            return Ok(i + 1);
        }
    }
    if !started {
        return Err(ScanError::Empty);
    }
    match scanner.finish() {
        Ok(()) => Ok(input.len()),
        Err(_) => Err(ScanError::Truncated),
    }
}

/// Checks that `input` is exactly one JSON value (plus whitespace) as Go's
/// `json.Unmarshal` does, with its error text.
pub(crate) fn check_valid(input: &[u8]) -> Result<(), String> {
    let mut scanner = Scanner::new();
    for &c in input {
        if let Step::Error(text) = scanner.step(c) {
            return Err(text);
        }
        if scanner.state == State::EndTop && !is_space(c) {
            // The byte that ended a number is judged again as trailing.
            if let Step::Error(text) = scanner.step(c) {
                return Err(text);
            }
        }
    }
    scanner
        .finish()
        .map_err(|e| e.unwrap_or_else(|| "unexpected end of JSON input".to_string()))
}

/// The kind of a JSON value, named as Go's type errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `{...}`.
    Object,
    /// `[...]`.
    Array,
    /// `"..."`.
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl Kind {
    /// The kind of the (valid) value `raw`.
    pub(crate) fn of(raw: &[u8]) -> Kind {
        match raw.first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// Go's word for the kind in `cannot unmarshal <word> into ...`.
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Null => "null",
        }
    }
}

/// Offset just past the valid value starting at `input[0]`.
fn value_end(input: &[u8]) -> usize {
    match scan_first_value(input) {
        Ok(end) => end,
        Err(_) => input.len(),
    }
}

/// Skips whitespace from `at`.
fn skip_space(input: &[u8], mut at: usize) -> usize {
    while at < input.len() && is_space(input[at]) {
        at += 1;
    }
    at
}

/// The members of the valid object `raw`, one level deep: unquoted key and
/// the raw value, in input order.
pub(crate) fn object_members(raw: &[u8]) -> Vec<(Vec<u8>, &[u8])> {
    let mut members = Vec::new();
    let mut at = skip_space(raw, 1);
    while at < raw.len() && raw[at] == b'"' {
        let key_len = value_end(&raw[at..]);
        let key = unquote(&raw[at..at + key_len]);
        at = skip_space(raw, at + key_len) + 1; // the ':'
        at = skip_space(raw, at);
        let len = value_end(&raw[at..]);
        members.push((key, &raw[at..at + len]));
        at = skip_space(raw, at + len);
        if raw.get(at) == Some(&b',') {
            at = skip_space(raw, at + 1);
        }
    }
    members
}

/// The elements of the valid array `raw`, one level deep.
pub(crate) fn array_elements(raw: &[u8]) -> Vec<&[u8]> {
    let mut elements = Vec::new();
    let mut at = skip_space(raw, 1);
    while at < raw.len() && raw[at] != b']' {
        let len = value_end(&raw[at..]);
        elements.push(&raw[at..at + len]);
        at = skip_space(raw, at + len);
        if raw.get(at) == Some(&b',') {
            at = skip_space(raw, at + 1);
        }
    }
    elements
}

/// The bytes of the valid string literal `raw` (quotes included), escapes
/// resolved as Go does: invalid UTF-8 and unpaired surrogates become U+FFFD.
pub(crate) fn unquote(raw: &[u8]) -> Vec<u8> {
    let body = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => {
                i += 1;
                let simple = match body[i] {
                    b'b' => Some('\u{8}'),
                    b'f' => Some('\u{c}'),
                    b'n' => Some('\n'),
                    b'r' => Some('\r'),
                    b't' => Some('\t'),
                    b'u' => None,
                    c => Some(char::from(c)),
                };
                if let Some(ch) = simple {
                    out.push(ch);
                    i += 1;
                    continue;
                }
                let unit = hex4(&body[i + 1..i + 5]);
                i += 5;
                if (0xd800..0xdc00).contains(&unit)
                    && body.get(i) == Some(&b'\\')
                    && body.get(i + 1) == Some(&b'u')
                {
                    let low = hex4(&body[i + 2..i + 6]);
                    if (0xdc00..0xe000).contains(&low) {
                        let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        i += 6;
                        continue;
                    }
                }
                out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
            }
            _ => {
                let end = body[i..]
                    .iter()
                    .position(|&b| b == b'\\')
                    .map_or(body.len(), |p| i + p);
                for chunk in body[i..end].utf8_chunks() {
                    out.push_str(chunk.valid());
                    for _ in chunk.invalid() {
                        out.push('\u{fffd}');
                    }
                }
                i = end;
            }
        }
    }
    out.into_bytes()
}

/// The value of four hex digits (already validated by the scanner).
fn hex4(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |acc, &d| {
        acc * 16 + char::from(d).to_digit(16).unwrap_or_default()
    })
}

/// Decodes standard base64 as Go's `base64.StdEncoding` does (padding
/// required, CR and LF skipped anywhere), with its error text.
pub(crate) fn decode_base64(src: &[u8]) -> Result<Vec<u8>, String> {
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let sextet = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let is_newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u32; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(corrupt(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = sextet(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if is_newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(corrupt(si - 1));
            }
            if j == 2 {
                // A second '=' must follow (newlines aside).
                while si < src.len() && is_newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Err(corrupt(src.len()));
                }
                if src[si] != b'=' {
                    return Err(corrupt(si - 1));
                }
                si += 1;
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                return Err(corrupt(si));
            }
            len = j;
            break;
        }
        let bits = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..len - 1]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(input: &str) -> Result<usize, ScanError> {
        scan_first_value(input.as_bytes())
    }

    fn syntax(text: &str) -> Result<usize, ScanError> {
        Err(ScanError::Syntax(text.to_string()))
    }

    #[test]
    fn first_value_errors_read_as_go() {
        let cases = [
            (
                "{bad",
                syntax("invalid character 'b' looking for beginning of object key string"),
            ),
            (
                "bad",
                syntax("invalid character 'b' looking for beginning of value"),
            ),
            (
                "{\"a\" 1}",
                syntax("invalid character '1' after object key"),
            ),
            (
                "{\"a\":1 2}",
                syntax("invalid character '2' after object key:value pair"),
            ),
            ("[1 2]", syntax("invalid character '2' after array element")),
            (
                "[1,]",
                syntax("invalid character ']' looking for beginning of value"),
            ),
            (
                "{\"a\":1,}",
                syntax("invalid character '}' looking for beginning of object key string"),
            ),
            (
                "\"a\nb\"",
                syntax("invalid character '\\n' in string literal"),
            ),
            (
                "\"\\x\"",
                syntax("invalid character 'x' in string escape code"),
            ),
            (
                "\"\\u12g4\"",
                syntax("invalid character 'g' in \\u hexadecimal character escape"),
            ),
            ("-x", syntax("invalid character 'x' in numeric literal")),
            (
                "1.x",
                syntax("invalid character 'x' after decimal point in numeric literal"),
            ),
            (
                "1ex",
                syntax("invalid character 'x' in exponent of numeric literal"),
            ),
            (
                "trux",
                syntax("invalid character 'x' in literal true (expecting 'e')"),
            ),
            (
                "nil",
                syntax("invalid character 'i' in literal null (expecting 'u')"),
            ),
            (
                "\u{1}",
                syntax("invalid character '\\x01' looking for beginning of value"),
            ),
            (
                "'",
                syntax("invalid character '\\'' looking for beginning of value"),
            ),
            ("{\"k\":\"v\"", Err(ScanError::Truncated)),
            ("{\"k\":1", Err(ScanError::Truncated)),
            ("-", Err(ScanError::Truncated)),
            ("  \n", Err(ScanError::Empty)),
            ("", Err(ScanError::Empty)),
            ("{} x", Ok(2)),
            (" {\"a\":[1,{}]}}", Ok(13)),
            ("5x", Ok(1)),
            ("5", Ok(1)),
            ("\"s\" 1", Ok(3)),
            ("null,", Ok(4)),
        ];
        for (input, want) in cases {
            assert_eq!(first(input), want, "{input:?}");
        }
        assert_eq!(
            scan_first_value(&[b'[', 0xe9]),
            syntax("invalid character 'é' looking for beginning of value")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(MAX_NESTING_DEPTH + 1);
        assert_eq!(
            first(&deep),
            syntax("invalid character '[' exceeded max nesting depth")
        );
    }

    #[test]
    fn whole_input_checks_read_as_go() {
        let cases = [
            ("1", Ok(())),
            (" 1 ", Ok(())),
            ("null", Ok(())),
            ("", Err("unexpected end of JSON input")),
            (
                "x",
                Err("invalid character 'x' looking for beginning of value"),
            ),
            ("0x10", Err("invalid character 'x' after top-level value")),
            ("1 2", Err("invalid character '2' after top-level value")),
            (
                "1.",
                Err("invalid character ' ' after decimal point in numeric literal"),
            ),
            (
                "tru",
                Err("invalid character ' ' in literal true (expecting 'e')"),
            ),
            ("[1", Err("unexpected end of JSON input")),
        ];
        for (input, want) in cases {
            assert_eq!(
                check_valid(input.as_bytes()),
                want.map_err(str::to_string),
                "{input:?}"
            );
        }
    }

    #[test]
    fn members_and_elements_split_one_level() {
        let members = object_members(br#"{ "a" : [1, {"b":2}] , "k\u0065y":"v" }"#);
        assert_eq!(members.len(), 2);
        assert_eq!(members[0], (b"a".to_vec(), &br#"[1, {"b":2}]"#[..]));
        assert_eq!(members[1], (b"key".to_vec(), &br#""v""#[..]));
        assert_eq!(
            array_elements(b"[ 1 , \"x\",{} ]"),
            vec![&b"1"[..], b"\"x\"", b"{}"]
        );
        assert!(array_elements(b"[ ]").is_empty());
        assert!(object_members(b"{}").is_empty());
    }

    #[test]
    fn unquote_follows_go() {
        assert_eq!(unquote(br#""a\n\u00e9\ud83d\ude00""#), "a\né😀".as_bytes());
        assert_eq!(unquote(br#""\ud800x""#), "\u{fffd}x".as_bytes());
        assert_eq!(unquote(b"\"\xff\""), "\u{fffd}".as_bytes());
    }

    #[test]
    fn base64_errors_read_as_go() {
        let cases: [(&str, Result<&[u8], usize>); 14] = [
            ("Zm9v", Ok(b"foo")),
            ("Zm8=", Ok(b"fo")),
            ("Zg==", Ok(b"f")),
            ("Zh==", Ok(b"f")),
            ("Zm9v\n", Ok(b"foo")),
            ("", Ok(b"")),
            ("Zm9", Err(0)),
            ("Zm9v=", Err(4)),
            ("Zm8", Err(0)),
            ("Zm 9v", Err(2)),
            ("-_-_", Err(0)),
            ("Zg=", Err(3)),
            ("Z", Err(0)),
            ("Zg==x", Err(4)),
        ];
        for (input, want) in cases {
            let want = want
                .map(<[u8]>::to_vec)
                .map_err(|at| format!("illegal base64 data at input byte {at}"));
            assert_eq!(decode_base64(input.as_bytes()), want, "{input:?}");
        }
    }
}
