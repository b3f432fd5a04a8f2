//! Data-driven MVCC scenarios: `testdata/*.txt` scripts run against a real
//! store in a temporary directory (format in [`crate::testutil`]).
//!
//! Each file runs top to bottom against one store, so cases build on each
//! other. Within a case, write commands share one [`WriteBatch`], opened on
//! the first of them and committed (non-durably) at the end of the case
//! unless a `commit` or `abort` came first. `get`, `rows`, `hash` and
//! `status` read committed state, so a case can show what readers see while
//! a batch is open.
//!
//! Commands:
//! - `put K V [lease=N] [prev_kv] [ignore_value] [ignore_lease]`
//! - `get K [end=E] [rev=N] [limit=N] [order=asc|desc]
//!   [target=key|version|create|mod|value] [keys_only] [count_only]
//!   [min_mod=N] [max_mod=N] [min_create=N] [max_create=N]`; `bget` reads
//!   the open batch instead
//! - `del K [end=E] [prev_kv]`
//! - `txn` / `check_txn`, followed by indented lines `if TARGET(K[..E]) OP V`
//!   (`OP` one of `= != > <`), `then CMD`, `else CMD`, where `CMD` is a
//!   put/get/del as above, `empty`, or `txn` with its own deeper lines
//! - `compact N`, `wait_compaction N`, `commit [durable]`, `abort`
//! - `events`, `rows`, `index K`, `hash [rev=N]`, `status`, `reopen`
//! - `leases N...` (the leases that exist), `meta_put K V`, `meta_delete K`,
//!   `meta_get K`, `meta_scan PREFIX`,
//!   `set_index I T`
//!
//! Keys and values accept `\xNN` escapes; output escapes non-printable bytes.

use std::collections::HashSet;

use prost::Message;
use retcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use retcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse,
};
use retcd_api::mvccpb::KeyValue;
use retcd_api::mvccpb::event::EventType;

use crate::testutil::{arg, flag, run_file, words};
use crate::{Store, WriteBatch, check_txn_duplicates};

/// Decodes `\xNN` escapes; `""` is the empty string.
fn unescape(s: &str) -> Vec<u8> {
    if s == "\"\"" {
        return Vec::new();
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("bad escape"));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Prints bytes with non-printable ones escaped.
fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// One key-value pair on one line.
fn fmt_kv(kv: &KeyValue) -> String {
    let mut s = format!(
        "{}={} c={} m={} v={}",
        esc(&kv.key),
        esc(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version
    );
    if kv.lease != 0 {
        s += &format!(" l={}", kv.lease);
    }
    s
}

/// The value of a `name=...` argument, unescaped.
fn bytes_arg(args: &[&str], name: &str) -> Vec<u8> {
    arg::<String>(args, name).map_or_else(Vec::new, |v| unescape(&v))
}

/// Builds a put from `K V [flags]`.
fn put_req(args: &[&str]) -> PutRequest {
    PutRequest {
        key: unescape(args[0]),
        value: args
            .get(1)
            .filter(|v| !v.contains('=') && !is_flag(v))
            .map_or_else(Vec::new, |v| unescape(v)),
        lease: arg(args, "lease").unwrap_or(0),
        prev_kv: flag(args, "prev_kv"),
        ignore_value: flag(args, "ignore_value"),
        ignore_lease: flag(args, "ignore_lease"),
    }
}

/// Whether a word is one of the bare flags, not a value.
fn is_flag(w: &str) -> bool {
    [
        "prev_kv",
        "ignore_value",
        "ignore_lease",
        "keys_only",
        "count_only",
    ]
    .contains(&w)
}

/// Builds a range from `K [options]`.
fn range_req(args: &[&str]) -> RangeRequest {
    let order = match arg::<String>(args, "order").as_deref() {
        Some("asc") => SortOrder::Ascend,
        Some("desc") => SortOrder::Descend,
        _ => SortOrder::None,
    };
    let target = match arg::<String>(args, "target").as_deref() {
        Some("version") => SortTarget::Version,
        Some("create") => SortTarget::Create,
        Some("mod") => SortTarget::Mod,
        Some("value") => SortTarget::Value,
        _ => SortTarget::Key,
    };
    RangeRequest {
        key: unescape(args[0]),
        range_end: bytes_arg(args, "end"),
        limit: arg(args, "limit").unwrap_or(0),
        revision: arg(args, "rev").unwrap_or(0),
        sort_order: order as i32,
        sort_target: target as i32,
        keys_only: flag(args, "keys_only"),
        count_only: flag(args, "count_only"),
        min_mod_revision: arg(args, "min_mod").unwrap_or(0),
        max_mod_revision: arg(args, "max_mod").unwrap_or(0),
        min_create_revision: arg(args, "min_create").unwrap_or(0),
        max_create_revision: arg(args, "max_create").unwrap_or(0),
        ..Default::default()
    }
}

/// Builds a delete_range from `K [end=E] [prev_kv]`.
fn del_req(args: &[&str]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: unescape(args[0]),
        range_end: bytes_arg(args, "end"),
        prev_kv: flag(args, "prev_kv"),
    }
}

/// Parses `if TARGET(K[..E]) OP V`.
fn parse_compare(w: &[&str]) -> Compare {
    let (target, rest) = w[0].split_once('(').expect("TARGET(KEY)");
    let span = rest.strip_suffix(')').expect("closing paren");
    let (key, end) = span.split_once("..").unwrap_or((span, ""));
    let result = match w[1] {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        op => panic!("unknown compare op {op}"),
    };
    let num = || w[2].parse::<i64>().expect("number");
    let (target, union) = match target {
        "value" => (CompareTarget::Value, TargetUnion::Value(unescape(w[2]))),
        "version" => (CompareTarget::Version, TargetUnion::Version(num())),
        "create" => (CompareTarget::Create, TargetUnion::CreateRevision(num())),
        "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(num())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(num())),
        t => panic!("unknown compare target {t}"),
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: unescape(key),
        range_end: unescape(end),
        target_union: Some(union),
    }
}

/// Indentation of a line.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Parses the txn body in `lines[*i..]` indented deeper than `outer`.
fn parse_txn(lines: &[String], i: &mut usize, outer: usize) -> TxnRequest {
    let mut txn = TxnRequest::default();
    while *i < lines.len() && indent(&lines[*i]) > outer {
        let line = &lines[*i];
        let my_indent = indent(line);
        let w = words(line);
        *i += 1;
        if w[0] == "if" {
            txn.compare.push(parse_compare(&w[1..]));
            continue;
        }
        let request = match w[1] {
            "put" => Some(Request::RequestPut(put_req(&w[2..]))),
            "get" => Some(Request::RequestRange(range_req(&w[2..]))),
            "del" => Some(Request::RequestDeleteRange(del_req(&w[2..]))),
            "txn" => Some(Request::RequestTxn(parse_txn(lines, i, my_indent))),
            "empty" => None,
            op => panic!("unknown txn op {op}"),
        };
        let branch = match w[0] {
            "then" => &mut txn.success,
            "else" => &mut txn.failure,
            b => panic!("unknown txn branch {b}"),
        };
        branch.push(RequestOp { request });
    }
    txn
}

/// Prints a range response: a summary line, then one line per pair.
fn fmt_range(resp: &RangeResponse, pad: &str, out: &mut Vec<String>) {
    out.push(format!(
        "rev={} count={} more={}",
        resp.header.unwrap().revision,
        resp.count,
        resp.more
    ));
    out.extend(resp.kvs.iter().map(|kv| format!("{pad}  {}", fmt_kv(kv))));
}

/// Prints a txn response, nested responses indented below it.
fn fmt_txn(resp: &TxnResponse, pad: &str, out: &mut Vec<String>) {
    out.push(format!(
        "rev={} succeeded={}",
        resp.header.unwrap().revision,
        resp.succeeded
    ));
    let pad = format!("{pad}  ");
    for op in &resp.responses {
        let mut lines = Vec::new();
        match &op.response {
            Some(Response::ResponseRange(r)) => {
                fmt_range(r, &pad, &mut lines);
                lines[0] = format!("get {}", lines[0]);
            }
            Some(Response::ResponsePut(p)) => {
                let mut line = format!("put rev={}", p.header.unwrap().revision);
                if let Some(prev) = &p.prev_kv {
                    line += &format!(" prev={}", fmt_kv(prev));
                }
                lines.push(line);
            }
            Some(Response::ResponseDeleteRange(d)) => {
                lines.push(format!(
                    "del rev={} deleted={}",
                    d.header.unwrap().revision,
                    d.deleted
                ));
                lines.extend(d.prev_kvs.iter().map(|kv| format!("{pad}  {}", fmt_kv(kv))));
            }
            Some(Response::ResponseTxn(t)) => {
                fmt_txn(t, &pad, &mut lines);
                lines[0] = format!("txn {}", lines[0]);
            }
            None => lines.push("none".into()),
        }
        lines[0] = format!("{pad}{}", lines[0]);
        out.extend(lines);
    }
}

/// The open batch, opened first if needed.
fn ensure<'s, 'b>(
    store: &'s Store,
    batch: &'b mut Option<WriteBatch<'s>>,
) -> &'b mut WriteBatch<'s> {
    batch.get_or_insert_with(|| store.write().unwrap())
}

/// A store under test plus the harness's own state.
struct Harness {
    /// Holds the store's file.
    dir: tempfile::TempDir,
    /// The store; None only while reopening.
    store: Option<Store>,
    /// Leases that exist.
    leases: HashSet<i64>,
}

impl Harness {
    /// A fresh store in a new temporary directory.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        Harness {
            dir,
            store: Some(store),
            leases: HashSet::new(),
        }
    }

    /// Runs one case's command lines; returns their output.
    fn run_case(&mut self, lines: &[String]) -> String {
        if lines.len() == 1 && lines[0] == "reopen" {
            drop(self.store.take());
            self.store = Some(Store::open(&self.dir.path().join("db")).unwrap());
            return self.status();
        }
        let leases = self.leases.clone();
        let lease_exists = move |id: i64| leases.contains(&id);
        let store = self.store.as_ref().unwrap();
        let mut batch: Option<WriteBatch<'_>> = None;
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].as_str();
            i += 1;
            let w = words(line);
            let (cmd, args) = (w[0], &w[1..]);
            let result: Result<(), crate::Error> = (|| {
                match cmd {
                    "put" => {
                        let resp = ensure(store, &mut batch).put(&put_req(args), &lease_exists)?;
                        let mut line = format!("rev={}", resp.header.unwrap().revision);
                        if let Some(prev) = &resp.prev_kv {
                            line += &format!(" prev={}", fmt_kv(prev));
                        }
                        out.push(line);
                    }
                    "get" => fmt_range(&store.range(&range_req(args))?, "", &mut out),
                    "bget" => {
                        let resp = ensure(store, &mut batch).range(&range_req(args))?;
                        fmt_range(&resp, "", &mut out);
                    }
                    "del" => {
                        let resp = ensure(store, &mut batch).delete_range(&del_req(args))?;
                        out.push(format!(
                            "rev={} deleted={}",
                            resp.header.unwrap().revision,
                            resp.deleted
                        ));
                        out.extend(resp.prev_kvs.iter().map(|kv| format!("  {}", fmt_kv(kv))));
                    }
                    "txn" | "check_txn" => {
                        let req = parse_txn(lines, &mut i, indent(line));
                        if cmd == "check_txn" {
                            check_txn_duplicates(&req)?;
                            out.push("ok".into());
                        } else {
                            let resp = ensure(store, &mut batch).txn(&req, &lease_exists)?;
                            fmt_txn(&resp, "", &mut out);
                        }
                    }
                    "compact" => {
                        let resp = ensure(store, &mut batch).compact(args[0].parse().unwrap())?;
                        out.push(format!("rev={}", resp.header.unwrap().revision));
                    }
                    "commit" => {
                        if let Some(batch) = batch.take() {
                            batch.commit(args.first() == Some(&"durable"))?;
                        }
                        out.push("ok".into());
                    }
                    "abort" => {
                        batch = None;
                        out.push("ok".into());
                    }
                    "events" => {
                        let before = out.len();
                        for ev in ensure(store, &mut batch).take_events() {
                            let kind = if ev.r#type == EventType::Put as i32 {
                                "PUT"
                            } else {
                                "DELETE"
                            };
                            let mut line = format!("{kind} {}", fmt_kv(ev.kv.as_ref().unwrap()));
                            if let Some(prev) = &ev.prev_kv {
                                line += &format!(" prev=({})", fmt_kv(prev));
                            }
                            out.push(line);
                        }
                        if out.len() == before {
                            out.push("no events".into());
                        }
                    }
                    "rows" => {
                        let before = out.len();
                        let snapshot = store.shared.backend.snapshot()?;
                        snapshot.scan(i64::MAX, |key, row| {
                            let (rev, tomb) = crate::revision::decode_key(key);
                            let kv = KeyValue::decode(row)?;
                            out.push(if tomb {
                                format!("{rev} tombstone {}", esc(&kv.key))
                            } else {
                                format!("{rev} {}", fmt_kv(&kv))
                            });
                            Ok(())
                        })?;
                        if out.len() == before {
                            out.push("no rows".into());
                        }
                    }
                    "index" => {
                        let index = store.shared.index.read();
                        let dump = index.key_index(&unescape(args[0])).map(|k| k.dump());
                        out.push(dump.unwrap_or_else(|| "not indexed".into()));
                    }
                    "wait_compaction" => {
                        store.wait_compaction_done(args[0].parse().unwrap());
                        out.push("ok".into());
                    }
                    "hash" => {
                        let (hash, compact, rev) = store.hash_kv(arg(args, "rev").unwrap_or(0))?;
                        out.push(format!("hash={hash:#010x} compact={compact} rev={rev}"));
                    }
                    "status" => out.push(status_line(store)),
                    "meta_put" => {
                        ensure(store, &mut batch).meta_put(args[0].as_bytes(), args[1].as_bytes());
                        out.push("ok".into());
                    }
                    "meta_delete" => {
                        ensure(store, &mut batch).meta_delete(args[0].as_bytes());
                        out.push("ok".into());
                    }
                    "meta_scan" => {
                        for (k, v) in store.meta_scan_prefix(args[0].as_bytes())? {
                            out.push(format!("{}={}", esc(&k), esc(&v)));
                        }
                    }
                    "meta_get" => {
                        let v = store.meta_get(args[0].as_bytes())?;
                        out.push(v.map_or("none".into(), |v| esc(&v)));
                    }
                    "set_index" => {
                        ensure(store, &mut batch).set_consistent_index(
                            args[0].parse().unwrap(),
                            args[1].parse().unwrap(),
                        );
                        out.push("ok".into());
                    }
                    other => panic!("unknown command {other}"),
                }
                Ok(())
            })();
            if let Err(e) = result {
                out.push(format!("error: {e}"));
            }
        }
        if let Some(batch) = batch {
            batch.commit(false).unwrap();
        }
        out.join("\n")
    }

    /// The store's counters on one line.
    fn status(&self) -> String {
        status_line(self.store.as_ref().unwrap())
    }
}

/// The store's counters on one line.
fn status_line(store: &Store) -> String {
    format!(
        "rev={} compact={} consistent_index={} term={}",
        store.current_revision(),
        store.compact_revision(),
        store.consistent_index(),
        store.consistent_term()
    )
}

/// Runs one scenario file against a fresh store.
fn run(name: &str) {
    let mut h = Harness::new();
    run_file(name, |lines| {
        if let Some(ids) = lines[0].strip_prefix("leases") {
            h.leases = ids.split_whitespace().map(|s| s.parse().unwrap()).collect();
            return "ok".into();
        }
        h.run_case(lines)
    });
}

#[test]
fn put() {
    run("put.txt");
}

#[test]
fn range() {
    run("range.txt");
}

#[test]
fn delete() {
    run("delete.txt");
}

#[test]
fn txn() {
    run("txn.txt");
}

#[test]
fn txn_duplicates() {
    run("txn_duplicates.txt");
}

#[test]
fn compact() {
    run("compact.txt");
}

#[test]
fn events() {
    run("events.txt");
}

#[test]
fn batch() {
    run("batch.txt");
}

#[test]
fn reopen() {
    run("reopen.txt");
}
