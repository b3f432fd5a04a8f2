//! Gateway request decoding with the rules and error texts of etcd 3.4's
//! grpc-gateway (golang/protobuf `jsonpb` over Go's `encoding/json`).
//!
//! The decoder walks the JSON one object level at a time, as `jsonpb` does
//! with `map[string]json.RawMessage`, looks each field up in a small schema
//! table ([`MessageType`]) and writes the protobuf wire encoding, which prost
//! then decodes into the request type. What it accepts and rejects:
//!
//! - a field by its proto name or its lowerCamel JSON name; when both are
//!   present the camel one wins; a repeated key keeps its last value;
//!   unknown fields are ignored;
//! - `null` anywhere leaves the field unset;
//! - integers as JSON numbers or as strings holding a JSON number (the
//!   quotes are dropped and the rest parsed as JSON, so `"x"` fails with a
//!   syntax error and `"1.5"` with a type error);
//! - enums by exact value name (as a string) or by any number in range;
//! - strings as JSON strings (invalid UTF-8 becomes U+FFFD, as in Go);
//! - bytes as standard base64 with padding (Go's decoder: CR/LF skipped),
//!   or as an array of numbers 0..=255;
//! - a wrong JSON kind gives `json: cannot unmarshal <kind> into Go value of
//!   type <go type>`, an unknown enum name `unknown value "<name>" for enum
//!   <enum>`, bad base64 `illegal base64 data at input byte <n>`.
//!
//! Invariants: fields are visited in the order of the Go struct (proto
//! declaration order, oneof members after the other fields), so the first
//! error reported is the one etcd reports; message nesting is bounded by
//! [`MAX_MESSAGE_DEPTH`], so no input can exhaust the stack.
//!
//! Caveat: where etcd's own behaviour is a crash (a `null` element in a
//! repeated message field drops the connection) we answer 400 instead.

use crate::gateway_json::{
    Kind, ScanError, array_elements, check_valid, decode_base64, go_quote, object_members,
    scan_first_value, unquote,
};

/// Deepest nesting of messages decoded (prost's own recursion limit).
pub(crate) const MAX_MESSAGE_DEPTH: usize = 100;

/// Go's name for the type a JSON object is first decoded into.
const GO_OBJECT: &str = "map[string]json.RawMessage";
/// Go's name for the type a repeated field's array is decoded into.
const GO_ARRAY: &str = "[]json.RawMessage";

/// A proto enum: Go's type name and the value names.
pub(crate) struct EnumType {
    /// Go's fully qualified type name, e.g. `etcdserverpb.RangeRequest_SortOrder`.
    pub go_name: &'static str,
    /// Value names and numbers.
    pub values: &'static [(&'static str, i32)],
}

/// What a field holds.
pub(crate) enum FieldType {
    /// `bytes`.
    Bytes,
    /// `int64`.
    Int64,
    /// `uint64`.
    Uint64,
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// An enum.
    Enum(&'static EnumType),
    /// A nested message.
    Message(&'static MessageType),
    /// The Go interface field of a oneof (named by the oneof): only `null`
    /// decodes into it.
    OneofInterface(&'static str),
}

/// One field of a message.
pub(crate) struct Field {
    /// The proto field name.
    pub name: &'static str,
    /// The field number (0 for a oneof interface).
    pub number: u32,
    /// What it holds.
    pub ty: FieldType,
    /// Whether it is `repeated`.
    pub repeated: bool,
    /// Whether it is a member of a oneof.
    pub oneof: bool,
}

/// A message: its fields in Go struct order.
pub(crate) struct MessageType {
    /// The fields.
    pub fields: &'static [Field],
}

/// A request type the gateway decodes, with its schema.
pub(crate) trait GatewayRequest: prost::Message + Default {
    /// The schema of the message.
    const SCHEMA: &'static MessageType;
}

/// What the front of a buffer holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Next<T> {
    /// A request and the bytes it took.
    Request(T, usize),
    /// Nothing but whitespace.
    Empty,
    /// The start of a value that has not ended yet.
    Truncated,
}

/// The first request in `body`, or the default one when the body is only
/// whitespace (grpc-gateway ignores `io.EOF`).
pub(crate) fn decode_request<T: GatewayRequest>(body: &[u8]) -> Result<T, String> {
    match decode_next::<T>(body)? {
        Next::Request(request, _) => Ok(request),
        Next::Empty => Ok(T::default()),
        Next::Truncated => Err(UNEXPECTED_EOF.to_string()),
    }
}

/// Go's text for a body that ends inside a value.
pub(crate) const UNEXPECTED_EOF: &str = "unexpected EOF";

/// The request at the front of `buf`, if a whole one is there.
pub(crate) fn decode_next<T: GatewayRequest>(buf: &[u8]) -> Result<Next<T>, String> {
    let end = match scan_first_value(buf) {
        Ok(end) => end,
        Err(ScanError::Empty) => return Ok(Next::Empty),
        Err(ScanError::Truncated) => return Ok(Next::Truncated),
        Err(ScanError::Syntax(text)) => return Err(text),
    };
    let start = buf
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(0);
    let mut wire = Vec::new();
    encode_message(T::SCHEMA, &buf[start..end], 0, &mut wire)?;
    let request = T::decode(wire.as_slice()).map_err(|e| e.to_string())?;
    Ok(Next::Request(request, end))
}

/// `json: cannot unmarshal <kind> into Go value of type <go_type>`.
fn type_error(what: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {what} into Go value of type {go_type}")
}

/// The proto3 JSON name of a field: lowerCamel of the proto name.
fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Takes a field's value out of `members` by either of its names.
fn take_field<'a>(members: &mut Vec<(Vec<u8>, &'a [u8])>, name: &str) -> Option<&'a [u8]> {
    let camel = json_name(name);
    let last = |members: &[(Vec<u8>, &'a [u8])], key: &str| {
        members
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| *v)
    };
    let value = last(members, &camel).or_else(|| last(members, name))?;
    members.retain(|(k, _)| k != name.as_bytes() && k != camel.as_bytes());
    Some(value)
}

/// Encodes the JSON object `raw` as message `ty` onto `out`.
fn encode_message(
    ty: &MessageType,
    raw: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if depth >= MAX_MESSAGE_DEPTH {
        return Err("request nesting too deep".to_string());
    }
    match Kind::of(raw) {
        Kind::Null => return Ok(()),
        Kind::Object => {}
        kind => return Err(type_error(kind.go_name(), GO_OBJECT)),
    }
    let mut members = object_members(raw);
    for field in ty.fields.iter().filter(|f| !f.oneof) {
        if let Some(value) = take_field(&mut members, field.name) {
            encode_field(field, value, depth, out)?;
        }
    }
    for field in ty.fields.iter().filter(|f| f.oneof) {
        if let Some(value) = take_field(&mut members, field.name) {
            encode_field(field, value, depth, out)?;
        }
    }
    Ok(())
}

/// Encodes one field's JSON value.
fn encode_field(field: &Field, raw: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if !field.repeated {
        return encode_single(field, raw, depth, out);
    }
    match (Kind::of(raw), &field.ty) {
        // jsonpb tries a string as an enum name before it looks at the
        // field being repeated.
        (Kind::String, FieldType::Enum(en)) => {
            enum_number(en, raw)?;
            Err(format!("invalid target \"slice\" for enum {}", en.go_name))
        }
        (Kind::Null, _) => Ok(()),
        (Kind::Array, ty) => {
            for element in array_elements(raw) {
                if matches!(ty, FieldType::Message(_)) && Kind::of(element) == Kind::Null {
                    return Err(format!("null element in repeated field {}", field.name));
                }
                encode_single(field, element, depth, out)?;
            }
            Ok(())
        }
        (kind, _) => Err(type_error(kind.go_name(), GO_ARRAY)),
    }
}

/// Writes a varint field.
fn put_varint(number: u32, value: u64, out: &mut Vec<u8>) {
    prost::encoding::encode_key(number, prost::encoding::WireType::Varint, out);
    prost::encoding::encode_varint(value, out);
}

/// Writes a length-delimited field.
fn put_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encodes one (non-repeated, or one element of a repeated) value.
fn encode_single(field: &Field, raw: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let kind = Kind::of(raw);
    match &field.ty {
        FieldType::Message(ty) => {
            if kind == Kind::Null {
                return Ok(());
            }
            let mut nested = Vec::new();
            encode_message(ty, raw, depth + 1, &mut nested)?;
            put_bytes(field.number, &nested, out);
        }
        FieldType::Bytes => {
            if let Some(bytes) = decode_bytes(raw)? {
                put_bytes(field.number, &bytes, out);
            }
        }
        FieldType::Bool => match kind {
            Kind::Null => {}
            Kind::Bool => put_varint(field.number, u64::from(raw[0] == b't'), out),
            kind => return Err(type_error(kind.go_name(), "bool")),
        },
        FieldType::String => match kind {
            Kind::Null => {}
            Kind::String => put_bytes(field.number, &unquote(raw), out),
            kind => return Err(type_error(kind.go_name(), "string")),
        },
        FieldType::Int64 => {
            let text = strip_number_quotes(raw)?;
            if let Some(n) = parse_number(text, "int64", |s| s.parse::<i64>().ok())? {
                put_varint(field.number, n as u64, out);
            }
        }
        FieldType::Uint64 => {
            let text = strip_number_quotes(raw)?;
            if let Some(n) = parse_number(text, "uint64", |s| s.parse::<u64>().ok())? {
                put_varint(field.number, n, out);
            }
        }
        FieldType::Enum(en) => {
            let number = if kind == Kind::String {
                Some(enum_number(en, raw)?)
            } else {
                parse_number(raw, en.go_name, |s| s.parse::<i32>().ok())?
            };
            if let Some(n) = number {
                put_varint(field.number, i64::from(n) as u64, out);
            }
        }
        FieldType::OneofInterface(go_name) => {
            if kind != Kind::Null {
                return Err(type_error(kind.go_name(), go_name));
            }
        }
    }
    Ok(())
}

/// The number of the enum value named by the JSON string `raw` (its raw
/// text between the quotes, escapes not resolved, as jsonpb looks it up).
fn enum_number(en: &EnumType, raw: &[u8]) -> Result<i32, String> {
    let name = &raw[1..raw.len() - 1];
    en.values
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(_, number)| *number)
        .ok_or_else(|| format!("unknown value {} for enum {}", go_quote(name), en.go_name))
}

/// For an integer field: a JSON string loses its quotes and what is left
/// must be one JSON value (checked as `json.Unmarshal` checks it).
fn strip_number_quotes(raw: &[u8]) -> Result<&[u8], String> {
    if Kind::of(raw) != Kind::String {
        return Ok(raw);
    }
    let inner = &raw[1..raw.len() - 1];
    check_valid(inner)?;
    Ok(inner.trim_ascii())
}

/// An integer from a (valid) JSON value: `None` for null, Go's type error
/// for other kinds and for numbers that do not parse or fit.
fn parse_number<T>(
    raw: &[u8],
    go_type: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, String> {
    match Kind::of(raw) {
        Kind::Null => Ok(None),
        Kind::Number => {
            let text = String::from_utf8_lossy(raw);
            parse(&text)
                .map(Some)
                .ok_or_else(|| type_error(&format!("number {text}"), go_type))
        }
        kind => Err(type_error(kind.go_name(), go_type)),
    }
}

/// The bytes of a `bytes` field: base64 string, array of byte numbers, or
/// `None` for null.
fn decode_bytes(raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match Kind::of(raw) {
        Kind::Null => Ok(None),
        Kind::String => decode_base64(&unquote(raw)).map(Some),
        Kind::Array => {
            let mut bytes = Vec::new();
            for element in array_elements(raw) {
                let byte = parse_number(element, "uint8", |s| s.parse::<u8>().ok())?;
                bytes.push(byte.unwrap_or_default());
            }
            Ok(Some(bytes))
        }
        kind => Err(type_error(kind.go_name(), "[]uint8")),
    }
}

#[cfg(test)]
mod tests {
    use retcd_api::etcdserverpb::{RangeRequest, TxnRequest, WatchRequest};

    use super::*;

    fn range(body: &str) -> Result<RangeRequest, String> {
        decode_request::<RangeRequest>(body.as_bytes())
    }

    #[test]
    fn accepts_what_jsonpb_accepts() {
        let got = range(
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","range_end":"eA==","limit":" 5","revision":7,
               "sort_order":"DESCEND","sortTarget":4,"serializable":true,"unknown":{"x":[1]},
               "min_mod_revision":null,"max_mod_revision":"null","count_only":false}"#,
        )
        .unwrap();
        let want = RangeRequest {
            key: b"foo".to_vec(),
            range_end: b"fop".to_vec(),
            limit: 5,
            revision: 7,
            sort_order: 2,
            sort_target: 4,
            serializable: true,
            ..Default::default()
        };
        assert_eq!(got, want);
        assert_eq!(range("").unwrap(), RangeRequest::default());
        assert_eq!(range("null").unwrap(), RangeRequest::default());
        assert_eq!(range(r#"{"sort_order":7}"#).unwrap().sort_order, 7);
        assert_eq!(
            range(r#"{"key":[1,null,255]}"#).unwrap().key,
            vec![1, 0, 255]
        );
        assert_eq!(
            range(r#"{"key":"Zm9v","key":"YQ=="} trailing"#)
                .unwrap()
                .key,
            b"a".to_vec()
        );
    }

    #[test]
    fn rejects_with_go_texts() {
        let cases = [
            (
                r#"{"limit":"x"}"#,
                "invalid character 'x' looking for beginning of value",
            ),
            (r#"{"limit":""}"#, "unexpected end of JSON input"),
            (
                r#"{"limit":"1e3"}"#,
                "json: cannot unmarshal number 1e3 into Go value of type int64",
            ),
            (
                r#"{"limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"limit":true}"#,
                "json: cannot unmarshal bool into Go value of type int64",
            ),
            (
                r#"{"limit":{}}"#,
                "json: cannot unmarshal object into Go value of type int64",
            ),
            (
                r#"{"limit":9223372036854775808}"#,
                "json: cannot unmarshal number 9223372036854775808 into Go value of type int64",
            ),
            (
                r#"{"key":5}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (
                r#"{"key":[300]}"#,
                "json: cannot unmarshal number 300 into Go value of type uint8",
            ),
            (
                r#"{"key":["a"]}"#,
                "json: cannot unmarshal string into Go value of type uint8",
            ),
            (r#"{"key":"Zg="}"#, "illegal base64 data at input byte 3"),
            (
                r#"{"serializable":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (
                r#"{"sort_order":"ascend"}"#,
                "unknown value \"ascend\" for enum etcdserverpb.RangeRequest_SortOrder",
            ),
            (
                r#"{"sort_order":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type etcdserverpb.RangeRequest_SortOrder",
            ),
            (
                "[]",
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
            ),
            ("{\"key\":\"Zm9v\"", "unexpected EOF"),
            (
                "{bad",
                "invalid character 'b' looking for beginning of object key string",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(range(body), Err(want.to_string()), "{body}");
        }
    }

    #[test]
    fn nested_messages_and_oneofs() {
        let txn = decode_request::<TxnRequest>(
            br#"{"compare":[{"target":"VALUE","key":"YQ==","value":"Yg==","result":"NOT_EQUAL"}],
                "success":[{"requestPut":{"key":"YQ==","lease":"5"}},
                           {"request_txn":{"failure":[{"request_delete_range":{"key":"YQ=="}}]}}]}"#,
        )
        .unwrap();
        let want: TxnRequest = serde_json::from_str(
            r#"{"compare":[{"target":"VALUE","key":"YQ==","value":"Yg==","result":"NOT_EQUAL"}],
                "success":[{"request_put":{"key":"YQ==","lease":"5"}},
                           {"request_txn":{"failure":[{"request_delete_range":{"key":"YQ=="}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(txn, want);
        assert_eq!(
            decode_request::<TxnRequest>(br#"{"compare":{}}"#),
            Err("json: cannot unmarshal object into Go value of type []json.RawMessage".into())
        );
        assert!(decode_request::<TxnRequest>(br#"{"compare":[null]}"#).is_err());
        let watch = decode_request::<WatchRequest>(
            br#"{"create_request":{"key":"YQ==","filters":["NOPUT",1],"start_revision":"3"}}"#,
        )
        .unwrap();
        let want: WatchRequest = serde_json::from_str(
            r#"{"create_request":{"key":"YQ==","filters":["NOPUT","NODELETE"],"start_revision":"3"}}"#,
        )
        .unwrap();
        assert_eq!(watch, want);
    }

    #[test]
    fn deep_txn_nesting_is_an_error() {
        let depth = MAX_MESSAGE_DEPTH;
        let body = format!(
            "{}{{}}{}",
            r#"{"success":[{"request_txn":"#.repeat(depth),
            "}]}".repeat(depth)
        );
        assert!(decode_request::<TxnRequest>(body.as_bytes()).is_err());
        let shallow = format!(
            "{}{{}}{}",
            r#"{"success":[{"request_txn":"#.repeat(3),
            "}]}".repeat(3)
        );
        assert!(decode_request::<TxnRequest>(shallow.as_bytes()).is_ok());
    }
}
