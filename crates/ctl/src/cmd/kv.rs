//! `put`, `get` and `del`: argument rules, request building and printing.
//!
//! The request builders are shared with `txn`, whose operation lines use the
//! same flags. Key ranges follow etcd's client: `--prefix` ends the range at
//! the prefix's successor (everything from `\0` for an empty prefix),
//! `--from-key` ends it at `\0` (every key at or after the given one).

use std::io::Read;

use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_BAD_FEATURE, status_text};
use crate::flags::{FlagSpec, Flags, Kind};
use crate::output::Format;

/// `put`'s flags.
pub fn put_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "ignore-lease",
            Kind::Bool,
            "false",
            "updates the key using its current lease",
        ),
        FlagSpec::new(
            "ignore-value",
            Kind::Bool,
            "false",
            "updates the key using its current value",
        ),
        FlagSpec::new(
            "lease",
            Kind::Str,
            "\"0\"",
            "lease ID (in hexadecimal) to attach to the key",
        ),
        FlagSpec::new(
            "prev-kv",
            Kind::Bool,
            "false",
            "return the previous key-value pair before modification",
        ),
    ]
}

/// `get`'s flags (etcdctl 3.4's, then 3.5's additions).
pub fn get_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "consistency",
            Kind::Str,
            "\"l\"",
            "Linearizable(l) or Serializable(s)",
        ),
        FlagSpec::new(
            "from-key",
            Kind::Bool,
            "false",
            "Get keys that are greater than or equal to the given key using byte compare",
        ),
        FlagSpec::new("keys-only", Kind::Bool, "false", "Get only the keys"),
        FlagSpec::new("limit", Kind::Int, "0", "Maximum number of results"),
        FlagSpec::new(
            "order",
            Kind::Str,
            "\"\"",
            "Order of results; ASCEND or DESCEND (ASCEND by default)",
        ),
        FlagSpec::new(
            "prefix",
            Kind::Bool,
            "false",
            "Get keys with matching prefix",
        ),
        FlagSpec::new(
            "print-value-only",
            Kind::Bool,
            "false",
            "Only write values when using the \"simple\" output format",
        ),
        FlagSpec::new("rev", Kind::Int, "0", "Specify the kv revision"),
        FlagSpec::new(
            "sort-by",
            Kind::Str,
            "\"\"",
            "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
        ),
    ]
}

/// etcdctl 3.5's `get` flags, accepted beyond 3.4's (not in 3.4's help).
pub fn get_flags_3_5() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new("count-only", Kind::Bool, "false", "Get only the count"),
        FlagSpec::new("min-mod-rev", Kind::Int, "0", "Minimum modify revision"),
        FlagSpec::new("max-mod-rev", Kind::Int, "0", "Maximum modify revision"),
        FlagSpec::new("min-create-rev", Kind::Int, "0", "Minimum create revision"),
        FlagSpec::new("max-create-rev", Kind::Int, "0", "Maximum create revision"),
    ]
}

/// `del`'s flags.
pub fn del_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "from-key",
            Kind::Bool,
            "false",
            "delete keys that are greater than or equal to the given key using byte compare",
        ),
        FlagSpec::new(
            "prefix",
            Kind::Bool,
            "false",
            "delete keys with matching prefix",
        ),
        FlagSpec::new(
            "prev-kv",
            Kind::Bool,
            "false",
            "return deleted key-value pairs",
        ),
    ]
}

/// The first key after every key with `prefix`; `\0` (no end) when there
/// is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Key and range end for `--prefix`/`--from-key`/`[range_end]`.
fn key_range(
    key: &str,
    range_end: Option<&str>,
    prefix: bool,
    from_key: bool,
) -> (Vec<u8>, Vec<u8>) {
    let key = key.as_bytes().to_vec();
    if prefix {
        if key.is_empty() {
            return (vec![0], vec![0]);
        }
        let end = prefix_end(&key);
        return (key, end);
    }
    if from_key {
        let key = if key.is_empty() { vec![0] } else { key };
        return (key, vec![0]);
    }
    (
        key,
        range_end.map(|e| e.as_bytes().to_vec()).unwrap_or_default(),
    )
}

/// Builds a put from `put`'s arguments; `stdin` supplies a missing value.
pub fn put_request(flags: &Flags, stdin: &mut dyn Read) -> Result<PutRequest, CtlError> {
    let args = flags.args();
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    let Some(key) = args.first() else {
        return Err(CtlError::bad_args(NEEDS));
    };
    let ignore_value = flags.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = if ignore_value {
        Vec::new()
    } else if let Some(value) = args.get(1) {
        value.as_bytes().to_vec()
    } else {
        let mut value = Vec::new();
        let _ = stdin.read_to_end(&mut value);
        if value.is_empty() {
            return Err(CtlError::bad_args(NEEDS));
        }
        value
    };
    let lease_text = flags.string("lease");
    let lease = i64::from_str_radix(&lease_text, 16).map_err(|e| {
        CtlError::bad_args(format!(
            "bad lease ID ({}), expecting ID in Hex",
            go_parse_int_error(&lease_text, &e)
        ))
    })?;
    Ok(PutRequest {
        key: key.as_bytes().to_vec(),
        value,
        lease,
        prev_kv: flags.bool("prev-kv"),
        ignore_value,
        ignore_lease: flags.bool("ignore-lease"),
    })
}

/// Go's `strconv.ParseInt` error text for a failed parse of `text`.
pub fn go_parse_int_error(text: &str, e: &std::num::ParseIntError) -> String {
    use std::num::IntErrorKind;
    let reason = match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("strconv.ParseInt: parsing {text:?}: {reason}")
}

/// Builds a range from `get`'s arguments and flags.
pub fn get_request(flags: &Flags, format: Format) -> Result<RangeRequest, CtlError> {
    let args = flags.args();
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    let serializable = match flags.string("consistency").as_str() {
        "l" => false,
        "s" => true,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown consistency flag {other:?}"),
            ));
        }
    };
    let prefix = flags.bool("prefix");
    let from_key = flags.bool("from-key");
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if (prefix || from_key) && args.len() > 1 {
        return Err(CtlError::bad_args(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    let order = match flags.string("order").as_str() {
        "" => 0,
        "ASCEND" => 1,
        "DESCEND" => 2,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort order {other}"),
            ));
        }
    };
    let target = match flags.string("sort-by").as_str() {
        "" | "KEY" => 0,
        "VERSION" => 1,
        "CREATE" => 2,
        "MODIFY" => 3,
        "VALUE" => 4,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort target {other}"),
            ));
        }
    };
    // etcd's client sends ascending by key as "no order": it is the default.
    let order = if target == 0 && order == 1 { 0 } else { order };
    let count_only = flags.is_set("count-only") && flags.bool("count-only");
    let keys_only = flags.bool("keys-only");
    if count_only && keys_only {
        return Err(CtlError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    if count_only && format != Format::Fields {
        return Err(CtlError::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    let (key, range_end) = key_range(&args[0], args.get(1).map(String::as_str), prefix, from_key);
    let extra = |name: &str| {
        if flags.is_set(name) {
            flags.int(name)
        } else {
            0
        }
    };
    Ok(RangeRequest {
        key,
        range_end,
        limit: flags.int("limit"),
        revision: flags.int("rev"),
        sort_order: order,
        sort_target: target,
        serializable,
        keys_only,
        count_only,
        min_mod_revision: extra("min-mod-rev"),
        max_mod_revision: extra("max-mod-rev"),
        min_create_revision: extra("min-create-rev"),
        max_create_revision: extra("max-create-rev"),
    })
}

/// Builds a delete from `del`'s arguments and flags.
pub fn del_request(flags: &Flags) -> Result<DeleteRangeRequest, CtlError> {
    let args = flags.args();
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let prefix = flags.bool("prefix");
    let from_key = flags.bool("from-key");
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if prefix && args.len() > 1 {
        return Err(CtlError::bad_args(
            "too many arguments, only accept one argument when `--prefix` is set.",
        ));
    }
    if from_key && args.len() > 1 {
        return Err(CtlError::bad_args(
            "too many arguments, only accept one argument when `--from-key` is set.",
        ));
    }
    let (key, range_end) = key_range(&args[0], args.get(1).map(String::as_str), prefix, from_key);
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: flags.bool("prev-kv"),
    })
}

/// `etcdctl put`.
pub async fn put(ctx: &Ctx) -> Result<(), CtlError> {
    let request = put_request(&ctx.flags, &mut std::io::stdin())?;
    let client = ctx.connect().await?;
    let r = ctx.request(&client, request);
    let response = client
        .unary(|ch| async move { KvClient::new(ch).put(r).await })
        .await
        .map_err(|s| CtlError::from_status(&s))?;
    emit(&ctx.printer().put(&response)?);
    Ok(())
}

/// `etcdctl get`.
pub async fn get(ctx: &Ctx) -> Result<(), CtlError> {
    let request = get_request(&ctx.flags, ctx.global.format)?;
    let mut printer = ctx.printer();
    if ctx.flags.bool("print-value-only") {
        if ctx.global.format != Format::Simple {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.value_only = true;
    }
    let client = ctx.connect().await?;
    let r = ctx.request(&client, request);
    let response = client
        .unary(|ch| async move { KvClient::new(ch).range(r).await })
        .await
        .map_err(|s| CtlError::from_status(&s))?;
    emit(&printer.range(&response)?);
    Ok(())
}

/// `etcdctl del`.
pub async fn del(ctx: &Ctx) -> Result<(), CtlError> {
    let request = del_request(&ctx.flags)?;
    let client = ctx.connect().await?;
    let r = ctx.request(&client, request);
    let response = client
        .unary(|ch| async move { KvClient::new(ch).delete_range(r).await })
        .await
        .map_err(|s| CtlError::from_status(&s))?;
    emit(&ctx.printer().delete(&response)?);
    Ok(())
}

/// `etcdctl compaction <revision>`.
pub async fn compaction(ctx: &Ctx) -> Result<(), CtlError> {
    use retcd_api::etcdserverpb::CompactionRequest;
    let args = ctx.flags.args();
    if args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let revision: i64 = args[0]
        .parse()
        .map_err(|e| CtlError::new(crate::error::EXIT_ERROR, go_parse_int_error(&args[0], &e)))?;
    let client = ctx.connect().await?;
    let r = ctx.request(
        &client,
        CompactionRequest {
            revision,
            physical: ctx.flags.bool("physical"),
        },
    );
    client
        .unary(|ch| async move { KvClient::new(ch).compact(r).await })
        .await
        .map_err(|s| CtlError::new(crate::error::EXIT_ERROR, status_text(&s)))?;
    emit(format!("compacted revision {revision}\n").as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse;

    fn flags(specs: Vec<FlagSpec>, line: &str) -> Flags {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let parsed = parse(&args, &specs).unwrap();
        Flags::new(specs, parsed)
    }

    fn get_specs() -> Vec<FlagSpec> {
        let mut specs = get_flags();
        specs.extend(get_flags_3_5());
        specs
    }

    #[test]
    fn prefix_ends_at_successor() {
        assert_eq!(prefix_end(b"foo"), b"fop".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn builds_get_ranges() {
        let r = get_request(&flags(get_specs(), "foo --prefix"), Format::Simple).unwrap();
        assert_eq!((r.key, r.range_end), (b"foo".to_vec(), b"fop".to_vec()));
        let r = get_request(&flags(get_specs(), "a --from-key"), Format::Simple).unwrap();
        assert_eq!(r.range_end, vec![0]);
        let r = get_request(
            &flags(get_specs(), "a --sort-by=KEY --order=ASCEND"),
            Format::Simple,
        )
        .unwrap();
        assert_eq!((r.sort_order, r.sort_target), (0, 0));
        let r = get_request(&flags(get_specs(), "a --sort-by=VALUE"), Format::Simple).unwrap();
        assert_eq!((r.sort_order, r.sort_target), (0, 4));
    }

    #[test]
    fn rejects_bad_get_arguments() {
        let err = |line: &str| get_request(&flags(get_specs(), line), Format::Simple).unwrap_err();
        assert_eq!(
            err("").stderr,
            "Error: get command needs one argument as key and an optional argument as range_end\n"
        );
        assert_eq!(
            err("a --consistency=x").stderr,
            "Error: unknown consistency flag \"x\"\n"
        );
        assert_eq!(err("a --order=UP").stderr, "Error: bad sort order UP\n");
        assert_eq!(err("a b --prefix").code, 128);
    }

    #[test]
    fn put_reads_value_from_stdin_and_lease_in_hex() {
        let f = flags(put_flags(), "k --lease=ff");
        let r = put_request(&f, &mut &b"from stdin\n"[..]).unwrap();
        assert_eq!(r.value, b"from stdin\n".to_vec());
        assert_eq!(r.lease, 255);
        let err = put_request(&flags(put_flags(), "k"), &mut &b""[..]).unwrap_err();
        assert_eq!(
            err.stderr,
            "Error: put command needs 1 argument and input from stdin or 2 arguments\n"
        );
    }
}
