//! Cluster and maintenance commands: `member *`, `endpoint *`, `defrag`,
//! `alarm *`, `move-leader`, `snapshot save`.
//!
//! The per-endpoint commands (`endpoint status|hashkv`, `defrag`) talk to
//! each endpoint on its own connection, report an endpoint's failure on
//! stderr (`Failed to ... (<error>)`), go on with the others, print what
//! they got, and exit 1 if any endpoint failed, as etcdctl does.

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
use crate::output::{EndpointHealth, json};

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
    let printer = ctx.printer();
    match printer.format {
        crate::output::Format::Simple => {
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
        crate::output::Format::Json => {
            emit(format!("{}\n", json::member_add(&response)).as_bytes())
        }
        _ => {
            use prost::Message;
            emit(&response.encode_to_vec());
        }
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
    let cluster_id;
    let members;
    match path {
        "member remove" => {
            let r = ctx.request(&client, MemberRemoveRequest { id });
            let resp = client
                .unary(|ch| async move { ClusterClient::new(ch).member_remove(r).await })
                .await
                .map_err(|s| server_error(&s))?;
            cluster_id = resp
                .header
                .as_ref()
                .map(|h| h.cluster_id)
                .unwrap_or_default();
            members = (resp.header, resp.members);
        }
        "member promote" => {
            let r = ctx.request(&client, MemberPromoteRequest { id });
            let resp = client
                .unary(|ch| async move { ClusterClient::new(ch).member_promote(r).await })
                .await
                .map_err(|s| server_error(&s))?;
            cluster_id = resp
                .header
                .as_ref()
                .map(|h| h.cluster_id)
                .unwrap_or_default();
            members = (resp.header, resp.members);
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
            cluster_id = resp
                .header
                .as_ref()
                .map(|h| h.cluster_id)
                .unwrap_or_default();
            members = (resp.header, resp.members);
        }
    }
    match ctx.printer().format {
        crate::output::Format::Json => {
            emit(format!("{}\n", json::member_change(&members.0, &members.1)).as_bytes());
        }
        _ => {
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

/// The endpoints a per-endpoint command visits.
fn endpoints(ctx: &Ctx) -> Vec<String> {
    ctx.global.endpoints.clone()
}

/// A client of one endpoint.
async fn single(ctx: &Ctx, endpoint: &str, style: TargetStyle) -> Result<Client, CtlError> {
    Client::connect_to(&ctx.global, &[endpoint.to_string()], style).await
}

/// `endpoint health`.
async fn endpoint_health(ctx: &Ctx) -> Result<(), CtlError> {
    let mut results = Vec::new();
    for endpoint in endpoints(ctx) {
        let started = Instant::now();
        let client = single(ctx, &endpoint, TargetStyle::Cluster).await?;
        let r = ctx.request(
            &client,
            RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            },
        );
        let outcome = client
            .unary(|ch| async move { KvClient::new(ch).range(r).await })
            .await;
        let error = match outcome {
            Ok(_) => String::new(),
            Err(s) if s.code() == Code::PermissionDenied => String::new(),
            Err(s) => status_text(&s),
        };
        results.push(EndpointHealth {
            endpoint: endpoint.clone(),
            health: error.is_empty(),
            took: started.elapsed(),
            error,
        });
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
    let mut list = Vec::new();
    let mut failed = false;
    for endpoint in endpoints(ctx) {
        let shown = endpoint.clone();
        let client = single(ctx, &endpoint, TargetStyle::Passthrough).await?;
        let r = ctx.request(&client, StatusRequest {});
        match client
            .unary(|ch| async move { MaintenanceClient::new(ch).status(r).await })
            .await
        {
            Ok(status) => list.push((shown, status)),
            Err(s) => {
                eprintln!(
                    "Failed to get the status of endpoint {shown} ({})",
                    status_text(&s)
                );
                failed = true;
            }
        }
    }
    emit(&ctx.printer().endpoint_status(&list)?);
    if failed {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `endpoint hashkv`.
async fn endpoint_hashkv(ctx: &Ctx) -> Result<(), CtlError> {
    let mut list = Vec::new();
    let mut failed = false;
    let revision = ctx.flags.int("rev");
    for endpoint in endpoints(ctx) {
        let shown = endpoint.clone();
        let client = single(ctx, &endpoint, TargetStyle::Passthrough).await?;
        let r = ctx.request(&client, HashKvRequest { revision });
        match client
            .unary(|ch| async move { MaintenanceClient::new(ch).hash_kv(r).await })
            .await
        {
            Ok(hash) => list.push((shown, hash)),
            Err(s) => {
                eprintln!(
                    "Failed to get the hash of endpoint {shown} ({})",
                    status_text(&s)
                );
                failed = true;
            }
        }
    }
    emit(&ctx.printer().endpoint_hashkv(&list)?);
    if failed {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `defrag`.
async fn defrag(ctx: &Ctx) -> Result<(), CtlError> {
    let mut failed = false;
    for endpoint in endpoints(ctx) {
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
            format!("bad leader ID arg (strconv.ParseUint: parsing {arg:?}: invalid syntax), expecting ID in Hex"),
        )
    })?;
    let mut leader = None;
    for endpoint in endpoints(ctx) {
        let client = single(ctx, &endpoint, TargetStyle::Passthrough).await?;
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
            "no leader endpoint given at [".to_string() + &endpoints(ctx).join(" ") + "]",
        ));
    };
    let r = ctx.request(&client, MoveLeaderRequest { target_id });
    client
        .unary(|ch| async move { MaintenanceClient::new(ch).move_leader(r).await })
        .await
        .map_err(|s| server_error(&s))?;
    emit(format!("Leadership transferred from {leader_id:x} to {target_id:x}\n").as_bytes());
    Ok(())
}

/// `snapshot save <file>`.
async fn snapshot_save(ctx: &Ctx) -> Result<(), CtlError> {
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
    let endpoints = endpoints(ctx);
    if endpoints.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            format!("snapshot must be requested to one selected node, not multiple {endpoints:?}"),
        ));
    }
    let client = single(ctx, &endpoints[0], TargetStyle::Cluster).await?;
    let Some(channel) = client.channel() else {
        return Err(CtlError::new(
            crate::error::EXIT_INTERRUPTED,
            crate::error::DEADLINE_TEXT,
        ));
    };
    let part = format!("{path}.part");
    let mut file = std::fs::File::create(&part).map_err(|e| {
        CtlError::new(
            crate::error::EXIT_INTERRUPTED,
            format!("could not open {part} ({e})"),
        )
    })?;
    let request = ctx.request(&client, SnapshotRequest {});
    let failed = |e: String| {
        let _ = std::fs::remove_file(&part);
        CtlError::new(crate::error::EXIT_INTERRUPTED, e)
    };
    let mut stream = MaintenanceClient::new(channel)
        .snapshot(request)
        .await
        .map_err(|s| failed(status_text(&s)))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => file
                .write_all(&chunk.blob)
                .map_err(|e| failed(e.to_string()))?,
            Ok(None) => break,
            Err(s) => return Err(failed(status_text(&s))),
        }
    }
    file.sync_all().map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&part, &path).map_err(|e| failed(e.to_string()))?;
    emit(format!("Snapshot saved at {path}\n").as_bytes());
    Ok(())
}
