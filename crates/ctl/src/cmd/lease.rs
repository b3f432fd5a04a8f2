//! `lease grant|revoke|timetolive|list|keep-alive`.
//!
//! Lease ids are read and printed in hexadecimal, as etcdctl does. Each
//! subcommand keeps etcdctl's own error wording and exit code for a failed
//! call (`failed to grant lease (...)` exits 1, `lease list` exits 2).
//! `keep-alive` renews every third of the TTL until the lease is gone, then
//! says `lease <id> expired or revoked.`; `--once` renews once.

use std::time::Duration;

use retcd_api::etcdserverpb::lease_client::LeaseClient;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::cmd::kv::go_parse_int_error;
use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR, status_text};
use crate::flags::{FlagSpec, Kind};

/// Shortest pause between two renewals.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(500);

/// `lease timetolive`'s flags.
pub fn time_to_live_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "keys",
        Kind::Bool,
        "false",
        "Get keys attached to this lease",
    )]
}

/// `lease keep-alive`'s flags.
pub fn keep_alive_flags() -> Vec<FlagSpec> {
    vec![FlagSpec::new(
        "once",
        Kind::Bool,
        "false",
        "Resets the keep-alive time to its original value and exits immediately",
    )]
}

/// The lease id argument, in hexadecimal.
fn lease_id(ctx: &Ctx, missing: &str) -> Result<i64, CtlError> {
    let Some(arg) = ctx.flags.args().first() else {
        return Err(CtlError::new(EXIT_BAD_ARGS, missing));
    };
    i64::from_str_radix(arg, 16).map_err(|e| {
        CtlError::new(
            EXIT_BAD_ARGS,
            format!(
                "bad lease ID arg ({}), expecting ID in Hex",
                go_parse_int_error(arg, &e)
            ),
        )
    })
}

/// `etcdctl lease grant <ttl>`.
pub async fn grant(ctx: &Ctx) -> Result<(), CtlError> {
    let Some(arg) = ctx.flags.args().first() else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "lease grant command needs TTL argument",
        ));
    };
    let ttl: i64 = arg.parse().map_err(|e| {
        CtlError::new(
            EXIT_BAD_ARGS,
            format!("bad TTL ({})", go_parse_int_error(arg, &e)),
        )
    })?;
    let printer = ctx.printer();
    let client = ctx.connect().await?;
    let r = ctx.request(&client, LeaseGrantRequest { ttl, id: 0 });
    let response = client
        .unary(|ch| async move { LeaseClient::new(ch).lease_grant(r).await })
        .await
        .map_err(|s| {
            CtlError::new(
                EXIT_ERROR,
                format!("failed to grant lease ({})", status_text(&s)),
            )
        })?;
    emit(&printer.lease_grant(&response)?);
    Ok(())
}

/// `etcdctl lease revoke <id>`.
pub async fn revoke(ctx: &Ctx) -> Result<(), CtlError> {
    let id = lease_id(ctx, "lease revoke command needs 1 argument")?;
    let client = ctx.connect().await?;
    let r = ctx.request(&client, LeaseRevokeRequest { id });
    let response = client
        .unary(|ch| async move { LeaseClient::new(ch).lease_revoke(r).await })
        .await
        .map_err(|s| {
            CtlError::new(
                EXIT_ERROR,
                format!("failed to revoke lease ({})", status_text(&s)),
            )
        })?;
    emit(&ctx.printer().lease_revoke(id, &response)?);
    Ok(())
}

/// `etcdctl lease timetolive <id> [--keys]`.
pub async fn time_to_live(ctx: &Ctx) -> Result<(), CtlError> {
    let id = lease_id(ctx, "lease timetolive command needs lease ID as argument")?;
    let keys = ctx.flags.bool("keys");
    let client = ctx.connect().await?;
    let r = ctx.request(&client, LeaseTimeToLiveRequest { id, keys });
    let response = client
        .unary(|ch| async move { LeaseClient::new(ch).lease_time_to_live(r).await })
        .await
        .map_err(|s| CtlError::new(EXIT_BAD_CONNECTION, status_text(&s)))?;
    emit(&ctx.printer().lease_time_to_live(&response, keys)?);
    Ok(())
}

/// `etcdctl lease list`.
pub async fn list(ctx: &Ctx) -> Result<(), CtlError> {
    let client = ctx.connect().await?;
    let r = ctx.request(&client, LeaseLeasesRequest {});
    let response = client
        .unary(|ch| async move { LeaseClient::new(ch).lease_leases(r).await })
        .await
        .map_err(|s| CtlError::new(EXIT_BAD_CONNECTION, status_text(&s)))?;
    emit(&ctx.printer().lease_list(&response)?);
    Ok(())
}

/// `etcdctl lease keep-alive [--once] <id>`.
pub async fn keep_alive(ctx: &Ctx) -> Result<(), CtlError> {
    let id = lease_id(ctx, "lease keep-alive command needs lease ID as argument")?;
    let once = ctx.flags.bool("once");
    let printer = ctx.printer();
    let client = ctx.connect().await?;
    let expired = || {
        emit(format!("lease {id:016x} expired or revoked.\n").as_bytes());
        Ok(())
    };
    let Some(channel) = client.channel() else {
        return if once {
            Err(CtlError::new(
                EXIT_BAD_CONNECTION,
                crate::error::DEADLINE_TEXT,
            ))
        } else {
            expired()
        };
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let request = ctx.request(&client, ReceiverStream::new(rx));
    let mut responses = match LeaseClient::new(channel).lease_keep_alive(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) if once => {
            return Err(CtlError::new(EXIT_BAD_CONNECTION, status_text(&status)));
        }
        Err(_) => return expired(),
    };
    loop {
        let response = match responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) | Err(_) if !once => return expired(),
            Ok(None) => return Err(CtlError::new(EXIT_BAD_CONNECTION, "EOF")),
            Err(status) => return Err(CtlError::new(EXIT_BAD_CONNECTION, status_text(&status))),
        };
        if response.ttl <= 0 {
            if once {
                return Err(CtlError::new(
                    EXIT_BAD_CONNECTION,
                    "etcdserver: requested lease not found",
                ));
            }
            return expired();
        }
        emit(&printer.lease_keep_alive(&response)?);
        if once {
            return Ok(());
        }
        let pause = Duration::from_secs((response.ttl / 3).max(0) as u64).max(MIN_RENEW_INTERVAL);
        tokio::time::sleep(pause).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return expired();
        }
    }
}
