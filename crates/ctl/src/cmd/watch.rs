//! `watch`: stream events on a key, a range or a prefix until interrupted.
//!
//! - `watch [options] <key> [range_end] [-- command args...]`: every event is
//!   printed in the chosen format; with a command after `--`, the command
//!   runs after each event with `ETCD_WATCH_REVISION`, `ETCD_WATCH_KEY`,
//!   `ETCD_WATCH_EVENT_TYPE` and `ETCD_WATCH_VALUE` (Go-quoted) set.
//! - `-i` reads `watch ...` lines from stdin, one watch per line.
//! - A watch the server cancels ends the command: `watch was canceled (...)`
//!   then `Error: watch is canceled by the server`, exit 5.

use std::fmt::Write as _;
use std::io::BufRead;

use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use retcd_api::mvccpb::Event;
use tokio_stream::wrappers::ReceiverStream;

use crate::cmd::kv::prefix_end;
use crate::cmd::txn::argify;
use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_INTERRUPTED, status_text};
use crate::flags::{FlagSpec, Flags, Kind, help_flag, parse};
use crate::output::gofmt::{hex_escaped, quote};
use crate::output::{Format, Printer, json, unsupported};

/// `watch`'s flags.
pub fn watch_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new("interactive", Kind::Bool, "false", "Interactive mode").short('i'),
        FlagSpec::new(
            "prefix",
            Kind::Bool,
            "false",
            "Watch on a prefix if prefix is set",
        ),
        FlagSpec::new(
            "prev-kv",
            Kind::Bool,
            "false",
            "get the previous key-value pair before the event happens",
        ),
        FlagSpec::new("rev", Kind::Int, "0", "Revision to start watching"),
    ]
}

/// etcdctl 3.5's `watch` flags, accepted beyond 3.4's.
pub fn watch_hidden_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "progress-notify",
        Kind::Bool,
        "false",
        "get periodic watch progress notification from server",
    )]
}

/// One watch: what to watch and what to run on events.
struct WatchSpec {
    /// The create request.
    create: WatchCreateRequest,
    /// Command to run after each event, if any.
    exec: Vec<String>,
}

/// Builds a watch from positional arguments (before `--`) and flags.
fn watch_spec(flags: &Flags) -> Result<WatchSpec, CtlError> {
    let dash = flags.dash_at();
    let split = dash.unwrap_or(flags.args().len());
    let exec: Vec<String> = flags.args()[split..].to_vec();
    let positional: Vec<&String> = flags.args()[..split].iter().collect();
    if positional.is_empty() || positional.len() > 2 || (dash.is_some() && exec.is_empty()) {
        return Err(CtlError::new(EXIT_BAD_ARGS, "bad number of arguments"));
    }
    let prefix = flags.bool("prefix");
    if prefix && positional.len() > 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "too many arguments, only accept one argument when `--prefix` is set.",
        ));
    }
    let key = positional[0].as_bytes().to_vec();
    let range_end = if prefix {
        if key.is_empty() {
            vec![0]
        } else {
            prefix_end(&key)
        }
    } else {
        positional
            .get(1)
            .map(|e| e.as_bytes().to_vec())
            .unwrap_or_default()
    };
    let key = if prefix && key.is_empty() {
        vec![0]
    } else {
        key
    };
    Ok(WatchSpec {
        create: WatchCreateRequest {
            key,
            range_end,
            start_revision: flags.int("rev"),
            progress_notify: flags.bool("progress-notify"),
            prev_kv: flags.bool("prev-kv"),
            ..Default::default()
        },
        exec,
    })
}

/// `etcdctl watch`.
pub async fn watch(ctx: &Ctx) -> Result<(), CtlError> {
    let printer = ctx.printer();
    if printer.format == Format::Table {
        return Err(unsupported(printer.format));
    }
    let specs = if ctx.flags.bool("interactive") {
        read_interactive()?
    } else {
        vec![watch_spec(&ctx.flags)?]
    };
    let client = ctx.connect().await?;
    let Some(channel) = client.channel() else {
        return Err(CtlError::new(
            crate::error::EXIT_ERROR,
            crate::error::DEADLINE_TEXT,
        ));
    };
    let (tx, rx) = tokio::sync::mpsc::channel(specs.len().max(1));
    for spec in &specs {
        let _ = tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(spec.create.clone())),
            })
            .await;
    }
    let request = ctx.request(&client, ReceiverStream::new(rx));
    let canceled = |reason: String| {
        eprintln!("watch was canceled ({reason})");
        CtlError::new(EXIT_INTERRUPTED, "watch is canceled by the server")
    };
    let mut stream = match WatchClient::new(channel).watch(request).await {
        Ok(s) => s.into_inner(),
        Err(status) => return Err(canceled(status_text(&status))),
    };
    let mut watch_ids: Vec<i64> = Vec::new();
    loop {
        let response = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(canceled("EOF".to_string())),
            Err(status) => return Err(canceled(status_text(&status))),
        };
        if response.created {
            watch_ids.push(response.watch_id);
        }
        if response.canceled {
            return Err(canceled(response.cancel_reason.clone()));
        }
        if response.events.is_empty() && !response.created && response.compact_revision == 0 {
            // Progress notifications print only an empty event list in json.
            if printer.format != Format::Json {
                continue;
            }
        } else if response.created && response.events.is_empty() {
            continue;
        }
        emit(&print_watch(&printer, &response));
        let spec = watch_ids
            .iter()
            .position(|id| *id == response.watch_id)
            .and_then(|i| specs.get(i))
            .or(specs.first());
        if let Some(spec) = spec.filter(|s| !s.exec.is_empty()) {
            run_exec(&spec.exec, &response);
        }
    }
}

/// Reads `watch ...` lines for `-i` until stdin ends.
fn read_interactive() -> Result<Vec<WatchSpec>, CtlError> {
    let mut specs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words = argify(&line);
        if words.first().map(String::as_str) != Some("watch") {
            eprintln!("Invalid command {line} (only support watch)");
            continue;
        }
        let mut flag_specs = watch_flags();
        flag_specs.extend(watch_hidden_flags());
        flag_specs.push(help_flag("watch"));
        let Ok(parsed) = parse(&words[1..], &flag_specs) else {
            eprintln!("Invalid command {line}");
            continue;
        };
        let flags = Flags::new(flag_specs, parsed);
        match watch_spec(&flags) {
            Ok(spec) => specs.push(spec),
            Err(_) => eprintln!("Invalid command {line}"),
        }
    }
    Ok(specs)
}

/// Prints one watch response in the printer's format.
pub fn print_watch(printer: &Printer, r: &WatchResponse) -> Vec<u8> {
    match printer.format {
        Format::Json => {
            let mut line = json::Obj::new()
                .raw("Header", &json::header(&r.header.unwrap_or_default()))
                .raw("Events", &events_json(&r.events))
                .num("CompactRevision", r.compact_revision)
                .bool("Canceled", r.canceled)
                .bool("Created", r.created)
                .end()
                .into_bytes();
            line.push(b'\n');
            line
        }
        Format::Fields => {
            let mut out = String::new();
            let h = r.header.unwrap_or_default();
            let _ = write!(
                out,
                "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
                h.cluster_id, h.member_id, h.revision, h.raft_term
            );
            for e in &r.events {
                let _ = writeln!(out, "\"Type\" : {}", event_type(e));
                if let Some(prev) = &e.prev_kv {
                    kv_fields(&mut out, "Prev", prev);
                }
                kv_fields(&mut out, "", &e.kv.clone().unwrap_or_default());
            }
            out.into_bytes()
        }
        Format::Protobuf => {
            use prost::Message;
            r.events.iter().flat_map(Message::encode_to_vec).collect()
        }
        Format::Simple | Format::Table => {
            let mut out = Vec::new();
            for e in &r.events {
                out.extend(event_type(e).as_bytes());
                out.push(b'\n');
                if let Some(prev) = &e.prev_kv {
                    simple_kv(printer, &mut out, prev);
                }
                simple_kv(printer, &mut out, &e.kv.clone().unwrap_or_default());
            }
            out
        }
    }
}

/// `PUT` or `DELETE`.
fn event_type(e: &Event) -> &'static str {
    if e.r#type == 1 { "DELETE" } else { "PUT" }
}

/// Events as the Go client's JSON (`type` left out for puts).
fn events_json(events: &[Event]) -> String {
    if events.is_empty() {
        return "null".to_string();
    }
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            let obj = json::Obj::new().num_nz("type", e.r#type);
            let obj = match &e.kv {
                Some(kv) => obj.raw("kv", &json::kv(kv)),
                None => obj,
            };
            match &e.prev_kv {
                Some(kv) => obj.raw("prev_kv", &json::kv(kv)),
                None => obj,
            }
            .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A key-value in the fields format.
fn kv_fields(out: &mut String, prefix: &str, kv: &retcd_api::mvccpb::KeyValue) {
    let _ = write!(
        out,
        "\"{prefix}Key\" : {}\n\"{prefix}CreateRevision\" : {}\n\"{prefix}ModRevision\" : {}\n\"{prefix}Version\" : {}\n\"{prefix}Value\" : {}\n\"{prefix}Lease\" : {}\n",
        quote(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        quote(&kv.value),
        kv.lease
    );
}

/// A key-value in the simple format.
fn simple_kv(printer: &Printer, out: &mut Vec<u8>, kv: &retcd_api::mvccpb::KeyValue) {
    for bytes in [&kv.key, &kv.value] {
        if printer.hex {
            out.extend(hex_escaped(bytes));
        } else {
            out.extend(bytes);
        }
        out.push(b'\n');
    }
}

/// Runs the `-- command` once per event with the event in its environment.
fn run_exec(command: &[String], r: &WatchResponse) {
    let revision = r.header.as_ref().map(|h| h.revision).unwrap_or_default();
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_KEY", quote(&kv.key))
            .env("ETCD_WATCH_EVENT_TYPE", format!("\"{}\"", event_type(e)))
            .env("ETCD_WATCH_VALUE", quote(&kv.value))
            .status();
        if let Err(err) = status {
            eprintln!("command {command:?} error ({err})");
        }
    }
}
