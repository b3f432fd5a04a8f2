//! Cluster and maintenance commands: `member *`, `endpoint *`, `defrag`,
//! `alarm *`, `move-leader`, `snapshot save`.
//!
//! The per-endpoint commands (`endpoint status|hashkv`, `defrag`) talk to
//! each endpoint on its own connection, report an endpoint's failure on
//! stderr (`Failed to ... (<error>)`), go on with the others, print what
//! they got, and exit 1 if any endpoint failed, as etcdctl does.
//! - With `--cluster` they visit every client URL of every member instead
//!   of `--endpoints`; `endpoint health` checks all endpoints at once and
//!   lists them in the order the checks finish, as etcdctl does.
//! - Membership and `move-leader` print in `simple`, `json` and `protobuf`;
//!   `fields` and `table` fail with exit 4 after the change is made, as in
//!   etcdctl 3.4.

use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Instant;

use retcd_api::etcdserverpb::cluster_client::ClusterClient;
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::{
    AlarmRequest, DefragmentRequest, HashKvRequest, MemberAddRequest, MemberListRequest,
    MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest,
    RangeRequest, StatusRequest,
};
use tonic::Code;

use crate::client::{Client, TargetStyle};
use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR, status_text};
use crate::flags::{FlagSpec, Kind};
use crate::global::GlobalOptions;
use crate::output::gofmt::go_duration;
use crate::output::{EndpointHealth, Format, json, unsupported};
use prost::Message;

/// Mode of a saved snapshot file: owner read/write only, as etcdctl's.
const SNAPSHOT_FILE_MODE: u32 = 0o600;

/// `defrag`'s flags.
pub fn defrag_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "cluster",
        Kind::Bool,
        "false",
        "use all endpoints from the cluster member list",
    )]
}

/// `endpoint hashkv`'s flags.
pub fn hashkv_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "rev",
        Kind::Int,
        "0",
        "maximum revision to hash (default: all revisions)",
    )]
}

/// The `endpoint` group's persistent flag.
pub fn endpoint_hidden_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "cluster",
        Kind::Bool,
        "false",
        "use all endpoints from the cluster member list",
    )]
}

/// `member add`'s flags.
pub fn member_add_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "learner",
            Kind::Bool,
            "false",
            "indicates if the new member is raft learner",
        ),
        FlagSpec::new(
            "peer-urls",
            Kind::Str,
            "\"\"",
            "comma separated peer URLs for the new member.",
        ),
    ]
}

/// `snapshot restore`'s flags.
pub fn snapshot_restore_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new("data-dir", Kind::Str, "\"\"", "Path to the data directory"),
        FlagSpec::new(
            "initial-advertise-peer-urls",
            Kind::Str,
            "\"http://localhost:2380\"",
            "List of this member's peer URLs to advertise to the rest of the cluster",
        ),
        FlagSpec::new(
            "initial-cluster",
            Kind::Str,
            "\"default=http://localhost:2380\"",
            "Initial cluster configuration for restore bootstrap",
        ),
        FlagSpec::new(
            "initial-cluster-token",
            Kind::Str,
            "\"etcd-cluster\"",
            "Initial cluster token for the etcd cluster during restore bootstrap",
        ),
        FlagSpec::new(
            "name",
            Kind::Str,
            "\"default\"",
            "Human-readable name for this member",
        ),
        FlagSpec::new(
            "skip-hash-check",
            Kind::Bool,
            "false",
            "Ignore snapshot integrity hash value (required if copied from data directory)",
        ),
        FlagSpec::new(
            "wal-dir",
            Kind::Str,
            "\"\"",
            "Path to the WAL directory (use --data-dir if none given)",
        ),
    ]
}

/// `snapshot status` and `snapshot restore` read or write a member's
/// backend file offline. etcd's backend is a bbolt file, which this
/// etcdctl does not read, and retcd's own is a different format; both
/// commands say so instead of guessing.
fn offline_snapshot_unsupported(path: &str) -> CtlError {
    CtlError::new(
        crate::error::EXIT_BAD_FEATURE,
        format!(
            "{path} is not supported by this etcdctl: it works offline on etcd's bbolt backend file, which this etcdctl cannot read"
        ),
    )
}

/// `member update`'s flags.
pub fn member_update_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "peer-urls",
        Kind::Str,
        "\"\"",
        "comma separated peer URLs for the updated member.",
    )]
}

/// Runs the cluster command at `path`.
pub async fn dispatch(path: &str, ctx: &Ctx) -> Result<(), CtlError> {
    match path {
        "member list" => member_list(ctx).await,
        "member add" => member_add(ctx).await,
        "member remove" | "member promote" | "member update" => member_change(path, ctx).await,
        "endpoint health" => endpoint_health(ctx).await,
        "endpoint status" => endpoint_status(ctx).await,
        "endpoint hashkv" => endpoint_hashkv(ctx).await,
        "defrag" => defrag(ctx).await,
        "alarm list" | "alarm disarm" => alarm(path, ctx).await,
        "move-leader" => move_leader(ctx).await,
        "snapshot save" => snapshot_save(ctx).await,
        "snapshot status" | "snapshot restore" => Err(offline_snapshot_unsupported(path)),
        other => Err(CtlError::new(
            EXIT_ERROR,
            format!("unknown command {other}"),
        )),
    }
}

/// A server error as exit 1.
fn server_error(s: &tonic::Status) -> CtlError {
    CtlError::new(EXIT_ERROR, status_text(s))
}

/// `member list`.
async fn member_list(ctx: &Ctx) -> Result<(), CtlError> {
    let client = ctx.connect().await?;
    let r = ctx.request(
        &client,
        MemberListRequest {
            linearizable: false,
        },
    );
    let response = client
        .unary(|ch| async move { ClusterClient::new(ch).member_list(r).await })
        .await
        .map_err(|s| server_error(&s))?;
    emit(&ctx.printer().member_list(&response)?);
    Ok(())
}

/// `member add <name> --peer-urls=...`.
async fn member_add(ctx: &Ctx) -> Result<(), CtlError> {
    let Some(name) = ctx.flags.args().first().cloned() else {
        return Err(CtlError::new(EXIT_BAD_ARGS, "member name not provided"));
    };
    let urls = ctx.flags.string("peer-urls");
    if urls.is_empty() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "member peer urls not provided",
        ));
    }
    let peer_urls: Vec<String> = urls.split(',').map(str::to_string).collect();
    let client = ctx.connect().await?;
    let r = ctx.request(
        &client,
        MemberAddRequest {
            peer_ur_ls: peer_urls.clone(),
            is_learner: ctx.flags.bool("learner"),
        },
    );
    let response = client
        .unary(|ch| async move { ClusterClient::new(ch).member_add(r).await })
        .await
        .map_err(|s| server_error(&s))?;
    match ctx.printer().format {
        Format::Simple => {
            let id = response.member.as_ref().map(|m| m.id).unwrap_or_default();
            let cluster = response
                .header
                .as_ref()
                .map(|h| h.cluster_id)
                .unwrap_or_default();
            let mut text = format!("Member {id:16x} added to cluster {cluster:16x}\n\n");
            let mut initial = Vec::new();
            for m in &response.members {
                for url in &m.peer_ur_ls {
                    let n = if m.id == id {
                        name.as_str()
                    } else {
                        m.name.as_str()
                    };
                    initial.push(format!("{n}={url}"));
                }
            }
            text.push_str(&format!(
                "ETCD_NAME=\"{name}\"\nETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
                initial.join(","),
                peer_urls.join(",")
            ));
            emit(text.as_bytes());
        }
        Format::Json => emit(format!("{}\n", json::member_add(&response)).as_bytes()),
        Format::Protobuf => emit(&response.encode_to_vec()),
        // The change is made; only then does etcdctl find it cannot print it.
        other => return Err(unsupported(other)),
    }
    Ok(())
}

/// The member id argument, in hexadecimal.
fn member_id(ctx: &Ctx, what: &str) -> Result<u64, CtlError> {
    let Some(arg) = ctx.flags.args().first() else {
        return Err(CtlError::new(EXIT_BAD_ARGS, "member ID is not provided"));
    };
    u64::from_str_radix(arg, 16).map_err(|_| {
        CtlError::new(
            EXIT_BAD_ARGS,
            format!("bad member ID arg (strconv.ParseUint: parsing {arg:?}: invalid syntax), expecting ID in Hex{what}"),
        )
    })
}

/// `member remove|promote|update <id>`.
async fn member_change(path: &str, ctx: &Ctx) -> Result<(), CtlError> {
    let id = member_id(ctx, "")?;
    let client = ctx.connect().await?;
    // Each answer: its protobuf encoding, header and member list.
    let (encoded, header, members) = match path {
        "member remove" => {
            let r = ctx.request(&client, MemberRemoveRequest { id });
            let resp = client
                .unary(|ch| async move { ClusterClient::new(ch).member_remove(r).await })
                .await
                .map_err(|s| server_error(&s))?;
            (resp.encode_to_vec(), resp.header, resp.members)
        }
        "member promote" => {
            let r = ctx.request(&client, MemberPromoteRequest { id });
            let resp = client
                .unary(|ch| async move { ClusterClient::new(ch).member_promote(r).await })
                .await
                .map_err(|s| server_error(&s))?;
            (resp.encode_to_vec(), resp.header, resp.members)
        }
        _ => {
            let urls = ctx.flags.string("peer-urls");
            if urls.is_empty() {
                return Err(CtlError::new(
                    EXIT_BAD_ARGS,
                    "member peer urls not provided",
                ));
            }
            let peer_ur_ls = urls.split(',').map(str::to_string).collect();
            let r = ctx.request(&client, MemberUpdateRequest { id, peer_ur_ls });
            let resp = client
                .unary(|ch| async move { ClusterClient::new(ch).member_update(r).await })
                .await
                .map_err(|s| server_error(&s))?;
            (resp.encode_to_vec(), resp.header, resp.members)
        }
    };
    let cluster_id = header.as_ref().map_or(0, |h| h.cluster_id);
    match ctx.printer().format {
        Format::Json => {
            emit(format!("{}\n", json::member_change(&header, &members)).as_bytes());
        }
        Format::Protobuf => emit(&encoded),
        Format::Fields | Format::Table => return Err(unsupported(ctx.printer().format)),
        Format::Simple => {
            let verb = match path {
                "member remove" => "removed from",
                "member promote" => "promoted in",
                _ => "updated in",
            };
            emit(format!("Member {id:16x} {verb} cluster {cluster_id:16x}\n").as_bytes());
        }
    }
    Ok(())
}

/// The endpoints a per-endpoint command visits: `--endpoints`, or with
/// `--cluster` every client URL of every member, in the member list's
/// order. The member list is fetched without authenticating, as etcdctl
/// does (it needs none).
async fn endpoints(ctx: &Ctx) -> Result<Vec<String>, CtlError> {
    if !ctx.flags.bool("cluster") {
        return Ok(ctx.global.endpoints.clone());
    }
    let fetch_failed = |text: &str| {
        CtlError::new(
            EXIT_ERROR,
            format!("failed to fetch endpoints from etcd cluster member list: {text}"),
        )
    };
    let mut anonymous = ctx.global.clone();
    anonymous.user.clear();
    anonymous.password.clear();
    let client = Client::connect(&anonymous).await?;
    let r = client.request(MemberListRequest {
        linearizable: false,
    });
    let response = client
        .unary(|ch| async move { ClusterClient::new(ch).member_list(r).await })
        .await
        .map_err(|s| fetch_failed(&status_text(&s)))?;
    Ok(response
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect())
}

/// A client of one endpoint.
async fn single(ctx: &Ctx, endpoint: &str, style: TargetStyle) -> Result<Client, CtlError> {
    Client::connect_to(&ctx.global, &[endpoint.to_string()], style).await
}

/// Checks one endpoint's health as etcdctl does: a read of the key
/// `health` that succeeds, or is refused for permissions, means healthy.
async fn check_health(global: GlobalOptions, endpoint: String) -> EndpointHealth {
    let started = Instant::now();
    let client = match Client::connect_to(
        &global,
        std::slice::from_ref(&endpoint),
        TargetStyle::Cluster,
    )
    .await
    {
        Ok(client) => client,
        Err(e) => {
            return EndpointHealth {
                endpoint,
                health: false,
                took: String::new(),
                error: e.message().to_string(),
            };
        }
    };
    let r = client.request(RangeRequest {
        key: b"health".to_vec(),
        ..Default::default()
    });
    let outcome = client
        .unary(|ch| async move { KvClient::new(ch).range(r).await })
        .await;
    let error = match outcome {
        Ok(_) => String::new(),
        Err(s) if s.code() == Code::PermissionDenied => String::new(),
        Err(s) => status_text(&s),
    };
    EndpointHealth {
        endpoint,
        health: error.is_empty(),
        took: go_duration(started.elapsed()),
        error,
    }
}

/// `endpoint health`: every endpoint checked at once, listed in the order
/// the checks finish, as etcdctl lists them.
async fn endpoint_health(ctx: &Ctx) -> Result<(), CtlError> {
    let mut checks = tokio::task::JoinSet::new();
    for endpoint in endpoints(ctx).await? {
        checks.spawn(check_health(ctx.global.clone(), endpoint));
    }
    let mut results = Vec::new();
    while let Some(done) = checks.join_next().await {
        results.push(done.map_err(|e| CtlError::new(EXIT_ERROR, e))?);
    }
    let (stdout, stderr) = ctx.printer().endpoint_health(&results)?;
    emit(&stdout);
    eprint!("{stderr}");
    if results.iter().any(|h| !h.health) {
        return Err(CtlError::new(EXIT_ERROR, "unhealthy cluster"));
    }
    Ok(())
}

/// `endpoint status`.
async fn endpoint_status(ctx: &Ctx) -> Result<(), CtlError> {
    let (list, failed) = per_endpoint(ctx, "status", |client| async move {
        let r = ctx.request(&client, StatusRequest {});
        client
            .unary(|ch| async move { MaintenanceClient::new(ch).status(r).await })
            .await
    })
    .await?;
    emit(&ctx.printer().endpoint_status(&list)?);
    if failed {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `endpoint hashkv`.
async fn endpoint_hashkv(ctx: &Ctx) -> Result<(), CtlError> {
    let revision = ctx.flags.int("rev");
    let (list, failed) = per_endpoint(ctx, "hash", |client| async move {
        let r = ctx.request(&client, HashKvRequest { revision });
        client
            .unary(|ch| async move { MaintenanceClient::new(ch).hash_kv(r).await })
            .await
    })
    .await?;
    emit(&ctx.printer().endpoint_hashkv(&list)?);
    if failed {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// Runs `call` against every endpoint in turn, each through its own client:
/// the answers of those that answered, and whether any failed (each failure
/// printed as etcdctl prints it, naming `what` was asked for).
async fn per_endpoint<T, Fut>(
    ctx: &Ctx,
    what: &str,
    mut call: impl FnMut(Client) -> Fut,
) -> Result<(Vec<(String, T)>, bool), CtlError>
where
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut list = Vec::new();
    let mut failed = false;
    for endpoint in endpoints(ctx).await? {
        let client = single(ctx, &endpoint, TargetStyle::Passthrough).await?;
        match call(client).await {
            Ok(answer) => list.push((endpoint, answer)),
            Err(s) => {
                eprintln!(
                    "Failed to get the {what} of endpoint {endpoint} ({})",
                    status_text(&s)
                );
                failed = true;
            }
        }
    }
    Ok((list, failed))
}

/// `defrag`.
async fn defrag(ctx: &Ctx) -> Result<(), CtlError> {
    let mut failed = false;
    for endpoint in endpoints(ctx).await? {
        let shown = endpoint.clone();
        let client = single(ctx, &endpoint, TargetStyle::Passthrough).await?;
        let r = ctx.request(&client, DefragmentRequest {});
        match client
            .unary(|ch| async move { MaintenanceClient::new(ch).defragment(r).await })
            .await
        {
            Ok(_) => emit(format!("Finished defragmenting etcd member[{shown}]\n").as_bytes()),
            Err(s) => {
                eprintln!(
                    "Failed to defragment etcd member[{shown}] ({})",
                    status_text(&s)
                );
                failed = true;
            }
        }
    }
    if failed {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `alarm list` and `alarm disarm`.
async fn alarm(path: &str, ctx: &Ctx) -> Result<(), CtlError> {
    let client = ctx.connect().await?;
    // GET lists every alarm; DEACTIVATE with no member and no type clears all.
    let action = if path == "alarm list" { 0 } else { 2 };
    let r = ctx.request(
        &client,
        AlarmRequest {
            action,
            member_id: 0,
            alarm: 0,
        },
    );
    let response = client
        .unary(|ch| async move { MaintenanceClient::new(ch).alarm(r).await })
        .await
        .map_err(|s| server_error(&s))?;
    emit(&ctx.printer().alarm(&response)?);
    Ok(())
}

/// `move-leader <member id>`.
async fn move_leader(ctx: &Ctx) -> Result<(), CtlError> {
    let Some(arg) = ctx.flags.args().first().cloned() else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "move-leader command needs 1 argument",
        ));
    };
    let target_id = u64::from_str_radix(&arg, 16).map_err(|_| {
        CtlError::new(
            EXIT_BAD_ARGS,
            format!("strconv.ParseUint: parsing {arg:?}: invalid syntax"),
        )
    })?;
    let mut leader = None;
    for endpoint in ctx.global.endpoints.clone() {
        let client = single(ctx, &endpoint, TargetStyle::Cluster).await?;
        let r = ctx.request(&client, StatusRequest {});
        let status = client
            .unary(|ch| async move { MaintenanceClient::new(ch).status(r).await })
            .await
            .map_err(|s| server_error(&s))?;
        let member = status
            .header
            .as_ref()
            .map(|h| h.member_id)
            .unwrap_or_default();
        if status.leader == member {
            leader = Some((client, member));
            break;
        }
    }
    let Some((client, leader_id)) = leader else {
        return Err(CtlError::new(
            EXIT_ERROR,
            "no leader endpoint given at [".to_string() + &ctx.global.endpoints.join(" ") + "]",
        ));
    };
    let r = ctx.request(&client, MoveLeaderRequest { target_id });
    let response = client
        .unary(|ch| async move { MaintenanceClient::new(ch).move_leader(r).await })
        .await
        .map_err(|s| server_error(&s))?;
    match ctx.printer().format {
        Format::Simple => {
            emit(format!("Leadership transferred from {leader_id:x} to {target_id:x}\n").as_bytes())
        }
        Format::Json => emit(format!("{}\n", json::header_only(&response.header)).as_bytes()),
        Format::Protobuf => emit(&response.encode_to_vec()),
        // Leadership has moved; only then does etcdctl find it cannot print.
        other => return Err(unsupported(other)),
    }
    Ok(())
}

/// `snapshot save <file>`: streams the member's backend into `<file>.part`,
/// syncs it and renames it, logging each step as etcdctl's snapshot
/// manager and Go client do.
async fn snapshot_save(ctx: &Ctx) -> Result<(), CtlError> {
    use crate::log::{ZapTime, info};
    use crate::output::json::quote;
    use retcd_api::etcdserverpb::SnapshotRequest;
    use std::io::Write;
    let args = ctx.flags.args();
    if args.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "snapshot save expects one argument",
        ));
    }
    let path = args[0].clone();
    let endpoints = ctx.global.endpoints.clone();
    if endpoints.len() != 1 {
        return Err(CtlError::new(
            crate::error::EXIT_INTERRUPTED,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                endpoints.join(" ")
            ),
        ));
    }
    let interrupted = |e: CtlError| CtlError {
        code: crate::error::EXIT_INTERRUPTED,
        ..e
    };
    let client = single(ctx, &endpoints[0], TargetStyle::Cluster)
        .await
        .map_err(interrupted)?;
    let part = format!("{path}.part");
    // Private, as etcdctl writes it: a snapshot holds every key and value.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(SNAPSHOT_FILE_MODE)
        .open(&part)
        .map_err(|e| {
            CtlError::new(
                crate::error::EXIT_INTERRUPTED,
                format!(
                    "could not open {part} ({})",
                    crate::error::go_path_error("open", &part, &e)
                ),
            )
        })?;
    info(
        ZapTime::Epoch,
        "snapshot/v3_snapshot.go:119",
        "created temporary db file",
        &[("path", quote(&part))],
    );
    let failed = |e: String| {
        let _ = std::fs::remove_file(&part);
        CtlError::new(crate::error::EXIT_INTERRUPTED, e)
    };
    let Some(channel) = client.channel() else {
        return Err(failed(crate::error::DEADLINE_TEXT.to_string()));
    };
    let started = Instant::now();
    let request = ctx.request(&client, SnapshotRequest {});
    let mut stream = MaintenanceClient::new(channel)
        .snapshot(request)
        .await
        .map_err(|s| failed(status_text(&s)))?
        .into_inner();
    info(
        ZapTime::Iso,
        "clientv3/maintenance.go:200",
        "opened snapshot stream; downloading",
        &[],
    );
    info(
        ZapTime::Epoch,
        "snapshot/v3_snapshot.go:127",
        "fetching snapshot",
        &[("endpoint", quote(&endpoints[0]))],
    );
    let mut size = 0u64;
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                size += chunk.blob.len() as u64;
                file.write_all(&chunk.blob)
                    .map_err(|e| failed(e.to_string()))?
            }
            Ok(None) => break,
            Err(s) => return Err(failed(status_text(&s))),
        }
    }
    info(
        ZapTime::Iso,
        "clientv3/maintenance.go:208",
        "completed snapshot read; closing",
        &[],
    );
    file.sync_all().map_err(|e| failed(e.to_string()))?;
    info(
        ZapTime::Epoch,
        "snapshot/v3_snapshot.go:142",
        "fetched snapshot",
        &[
            ("endpoint", quote(&endpoints[0])),
            ("size", quote(&crate::output::gofmt::humanize_bytes(size))),
            ("took", format!("{}", started.elapsed().as_secs_f64())),
        ],
    );
    std::fs::rename(&part, &path).map_err(|e| failed(e.to_string()))?;
    info(
        ZapTime::Epoch,
        "snapshot/v3_snapshot.go:152",
        "saved",
        &[("path", quote(&path))],
    );
    emit(format!("Snapshot saved at {path}\n").as_bytes());
    Ok(())
}
