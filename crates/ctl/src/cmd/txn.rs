//! `txn`: a transaction read from stdin, in three blocks each ended by an
//! empty line: comparisons, then the operations to run on success, then on
//! failure. `-i` prompts before each block.
//!
//! - A comparison is `<target>("<key>") <op> "<value>"`, target one of
//!   `ver`/`version`, `c`/`create`, `m`/`mod`, `val`/`value`, `lease`, op
//!   one of `=`, `!=`, `<`, `>`.
//! - An operation is a `get`, `put` or `del` command line with its flags
//!   (`put k v --prev-kv`), words split as a shell would (double quotes with
//!   Go escapes, single quotes verbatim).
//! - Input that ends before the last empty line is `Error: EOF` (exit 3),
//!   as etcdctl.

use std::io::BufRead;

use retcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::{Compare, RequestOp, TxnRequest};

use crate::cmd::kv::{del_flags, del_request, get_flags, get_request, put_flags, put_request};
use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_INVALID_INPUT};
use crate::flags::{Flags, help_flag, parse};
use crate::output::Format;

/// `etcdctl txn`.
pub async fn txn(ctx: &Ctx) -> Result<(), CtlError> {
    if !ctx.flags.args().is_empty() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "txn command does not accept argument",
        ));
    }
    let interactive = ctx.flags.bool("interactive");
    let stdin = std::io::stdin();
    let request = read_txn(&mut stdin.lock(), interactive)?;
    let client = ctx.connect().await?;
    let r = ctx.request(&client, request);
    let response = client
        .unary(|ch| async move { KvClient::new(ch).txn(r).await })
        .await
        .map_err(|s| CtlError::from_status(&s))?;
    emit(&ctx.printer().txn(&response)?);
    Ok(())
}

/// Reads the three blocks of a transaction.
pub fn read_txn(input: &mut dyn BufRead, interactive: bool) -> Result<TxnRequest, CtlError> {
    let prompt = |text: &str| {
        if interactive {
            emit(format!("{text}\n").as_bytes());
        }
    };
    prompt("compares:");
    let compare = read_block(input)?
        .iter()
        .map(|line| parse_compare(line))
        .collect::<Result<Vec<_>, _>>()?;
    prompt("success requests (get, put, del):");
    let success = read_ops(input)?;
    prompt("failure requests (get, put, del):");
    let failure = read_ops(input)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

/// Lines up to the next empty one; EOF first is an error.
fn read_block(input: &mut dyn BufRead) -> Result<Vec<String>, CtlError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CtlError::new(EXIT_INVALID_INPUT, e))?;
        if n == 0 || !line.ends_with('\n') {
            return Err(CtlError::new(EXIT_INVALID_INPUT, "EOF"));
        }
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

/// A block of operation lines.
fn read_ops(input: &mut dyn BufRead) -> Result<Vec<RequestOp>, CtlError> {
    read_block(input)?.iter().map(|l| parse_op(l)).collect()
}

/// One operation line.
fn parse_op(line: &str) -> Result<RequestOp, CtlError> {
    let words = argify(line);
    let invalid = || CtlError::new(EXIT_INVALID_INPUT, format!("invalid txn request: {line}"));
    let Some((name, args)) = words.split_first() else {
        return Err(invalid());
    };
    let parse_with = |mut specs: Vec<_>, name: &str| -> Result<Flags, CtlError> {
        specs.push(help_flag(name));
        let parsed = parse(args, &specs).map_err(|e| CtlError::new(EXIT_INVALID_INPUT, e))?;
        Ok(Flags::new(specs, parsed))
    };
    let request = match name.as_str() {
        "get" => Request::RequestRange(get_request(
            &parse_with(get_flags(), "get")?,
            Format::Simple,
        )?),
        "put" => Request::RequestPut(put_request(
            &parse_with(put_flags(), "put")?,
            &mut std::io::empty(),
        )?),
        "del" | "delete" => {
            Request::RequestDeleteRange(del_request(&parse_with(del_flags(), "del")?)?)
        }
        _ => return Err(invalid()),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Parses one comparison.
pub fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let malformed = |detail: String| CtlError::new(EXIT_INVALID_INPUT, detail);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed(format!("malformed comparison: {line}")));
    };
    let scanned = (|| {
        let (key, rest) = scan_quoted(rest)?;
        let rest = rest.strip_prefix(") ")?;
        let (op, rest) = rest.split_once(' ')?;
        let (value, _) = scan_quoted(rest.trim_start())?;
        Some((key, op.to_string(), value))
    })();
    let Some((key, op, value)) = scanned else {
        return Err(malformed(format!("malformed comparison: {line}")));
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        _ => return Err(malformed(format!("malformed comparison: {line}"))),
    };
    let number = || {
        value
            .parse::<i64>()
            .map_err(|_| malformed(format!("invalid txn compare request: {line}")))
    };
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(number()?)),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(number()?),
        ),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(number()?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.into_bytes())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(number()?)),
        other => {
            return Err(malformed(format!(
                "malformed comparison: {line} (unknown target {other})"
            )));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// Reads a Go-quoted string (`"..."` with escapes, or `` `...` ``) at the
/// start of `text`; returns it and the rest.
fn scan_quoted(text: &str) -> Option<(String, &str)> {
    if let Some(body) = text.strip_prefix('`') {
        let end = body.find('`')?;
        return Some((body[..end].to_string(), &body[end + 1..]));
    }
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Splits an operation line into words: `"..."` unquoted with escapes,
/// `'...'` verbatim, otherwise at whitespace.
pub fn argify(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            match scan_quoted(rest) {
                Some((word, after)) => {
                    words.push(word);
                    rest = after;
                }
                None => {
                    words.push(rest.to_string());
                    rest = "";
                }
            }
        } else if let Some(body) = rest.strip_prefix('\'') {
            let end = body.find('\'').unwrap_or(body.len());
            words.push(body[..end].to_string());
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_transaction() {
        let input = "mod(\"k1\") > \"0\"\n\nput k1 new\nget k2\n\nput kk \"x y\"\n\n";
        let txn = read_txn(&mut input.as_bytes(), false).unwrap();
        assert_eq!(txn.compare.len(), 1);
        assert_eq!(
            txn.compare[0].target_union,
            Some(TargetUnion::ModRevision(0))
        );
        assert_eq!(txn.success.len(), 2);
        match &txn.failure[0].request {
            Some(Request::RequestPut(p)) => assert_eq!(p.value, b"x y".to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn eof_before_the_last_block_is_an_error() {
        let err = read_txn(&mut "\nput a b\n".as_bytes(), false).unwrap_err();
        assert_eq!((err.code, err.stderr.as_str()), (3, "Error: EOF\n"));
    }

    #[test]
    fn splits_words_like_etcdctl() {
        assert_eq!(argify(r#"put "a b" 'c d' e"#), ["put", "a b", "c d", "e"]);
    }
}
