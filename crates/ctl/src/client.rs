//! The connection to the cluster and the rules every call follows.
//!
//! - Endpoints are tried in the order given; the first that accepts a
//!   connection serves the command (fail-over when one is down). Like etcd's
//!   Go client, connecting does not fail by itself: a command whose endpoints
//!   are all down fails when its `--command-timeout` runs out, with
//!   `context deadline exceeded`.
//! - Every unary call runs under the command's deadline and, when it fails,
//!   logs the Go client's `retrying of unary invoker failed` warning before
//!   the error reaches the command (see [`crate::log`]).
//! - With `--user`, the client authenticates first and sends the token with
//!   every request, as etcd's `token` metadata.
//! - `https://` endpoints and the certificate flags dial through TLS (see
//!   [`crate::tls`]); a handshake that fails makes the endpoint unreachable.
//! - A client of one endpoint (`passthrough:///<endpoint>` in the log) that
//!   never connected logs why, in Go's words; the cluster client logs only
//!   that every connection failed, as the Go client's balancer does.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retcd_api::etcdserverpb::AuthenticateRequest;
use retcd_api::etcdserverpb::auth_client::AuthClient;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::{
    CtlError, DEADLINE_TEXT, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR, status_text,
};
use crate::global::GlobalOptions;
use crate::log;
use crate::tls::{self, Transport};

/// The server's answer to Authenticate when auth is off.
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// Pause between rounds of connection attempts while every endpoint is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How the Go client's log names the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStyle {
    /// The cluster client: `endpoint://client-<id>/<first endpoint>`.
    Cluster,
    /// A client of one endpoint (status, defrag, hashkv): `passthrough:///<endpoint>`.
    Passthrough,
}

/// A connected (or, with every endpoint down, not connected) client.
pub struct Client {
    /// The channel to the first endpoint that answered.
    channel: Option<Channel>,
    /// When the command's time is up.
    deadline: Instant,
    /// The dial target shown in log lines.
    target: String,
    /// The auth token, once authenticated.
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// Why the single endpoint of a passthrough client could not be reached.
    dial_error: Option<String>,
}

/// `127.0.0.1:2379` for `http://127.0.0.1:2379`.
pub fn strip_scheme(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
}

impl Client {
    /// Connects to the first reachable endpoint of `opts`, authenticating
    /// when a user is given; the command's clock starts now.
    pub async fn connect(opts: &GlobalOptions) -> Result<Client, CtlError> {
        Client::connect_to(opts, &opts.endpoints, TargetStyle::Cluster).await
    }

    /// Like [`Client::connect`], for the given endpoints and log style.
    pub async fn connect_to(
        opts: &GlobalOptions,
        endpoints: &[String],
        style: TargetStyle,
    ) -> Result<Client, CtlError> {
        if endpoints.is_empty() {
            return Err(CtlError::new(EXIT_BAD_ARGS, "no endpoints given"));
        }
        let transport = Transport::from_options(opts)?;
        let deadline = Instant::now() + opts.command_timeout;
        let first = endpoints.first().map(String::as_str).unwrap_or_default();
        let target = match style {
            TargetStyle::Cluster => format!(
                "endpoint://client-{}/{}",
                log::client_id(),
                strip_scheme(first)
            ),
            TargetStyle::Passthrough => format!("passthrough:///{first}"),
        };
        let last_error = Arc::new(Mutex::new(None));
        let channel = connect_any(opts, endpoints, deadline, &transport, &last_error).await;
        let dial_error = match style {
            TargetStyle::Passthrough => last_error.lock().ok().and_then(|mut e| e.take()),
            TargetStyle::Cluster => None,
        };
        let mut client = Client {
            channel,
            deadline,
            target,
            token: None,
            dial_error,
        };
        client.authenticate(opts).await?;
        Ok(client)
    }

    /// The channel for streaming calls, which run without the deadline;
    /// `None` when no endpoint could be reached.
    pub fn channel(&self) -> Option<Channel> {
        self.channel.clone()
    }

    /// A request carrying the auth token.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    /// Runs one unary call under the command's deadline, logging a failure
    /// as the Go client does.
    pub async fn unary<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let Some(channel) = self.channel.clone() else {
            tokio::time::sleep_until(self.deadline).await;
            let status = Status::deadline_exceeded(match &self.dial_error {
                Some(reason) => format!("latest balancer error: {reason}"),
                None => "latest balancer error: all SubConns are in TransientFailure".to_string(),
            });
            log::unary_failure(&self.target, 0, &status);
            return Err(Status::deadline_exceeded(DEADLINE_TEXT));
        };
        match tokio::time::timeout_at(self.deadline, call(channel)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                log::unary_failure(&self.target, 0, &status);
                Err(status)
            }
            Err(_) => {
                let status = Status::deadline_exceeded(DEADLINE_TEXT);
                log::unary_failure(&self.target, 0, &status);
                Err(status)
            }
        }
    }

    /// Authenticates with `--user`/`--password`, keeping the token.
    async fn authenticate(&mut self, opts: &GlobalOptions) -> Result<(), CtlError> {
        if opts.user.is_empty() {
            return Ok(());
        }
        let (name, password) = match opts.user.split_once(':') {
            Some((name, password)) if opts.password.is_empty() => {
                (name.to_string(), password.to_string())
            }
            _ if !opts.password.is_empty() => (opts.user.clone(), opts.password.clone()),
            _ => (opts.user.clone(), read_password()?),
        };
        let request = AuthenticateRequest { name, password };
        let response = match self
            .unary(|ch| async move { AuthClient::new(ch).authenticate(request).await })
            .await
        {
            Ok(response) => response,
            // The Go client goes on without a token when auth is off.
            Err(s) if s.message() == AUTH_NOT_ENABLED => return Ok(()),
            Err(s) => return Err(CtlError::new(EXIT_BAD_CONNECTION, status_text(&s))),
        };
        let token = MetadataValue::try_from(response.token.as_str())
            .map_err(|e| CtlError::new(EXIT_ERROR, format!("invalid auth token: {e}")))?;
        self.token = Some(token);
        Ok(())
    }
}

/// Reads a password from stdin after a prompt, as etcdctl prompts when
/// `--user` names no password.
fn read_password() -> Result<String, CtlError> {
    use std::io::Write;
    print!("Password: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Tries the endpoints in order until one accepts a connection or the
/// deadline passes; the reason of the last failure lands in `last_error`.
async fn connect_any(
    opts: &GlobalOptions,
    endpoints: &[String],
    deadline: Instant,
    transport: &Transport,
    last_error: &Arc<Mutex<Option<String>>>,
) -> Option<Channel> {
    loop {
        for endpoint in endpoints {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            let address = strip_scheme(endpoint).to_string();
            // Always an `http` URI: with TLS the connector below wraps the
            // stream itself, and tonic must not try its own TLS.
            let Ok(builder) = Endpoint::from_shared(format!("http://{address}")) else {
                continue;
            };
            let builder = builder
                .connect_timeout(opts.dial_timeout.min(remaining))
                .http2_keep_alive_interval(opts.keepalive_time)
                .keep_alive_timeout(opts.keepalive_timeout)
                .keep_alive_while_idle(true)
                .tcp_nodelay(true);
            let connected = match transport.tls_for(endpoint) {
                Some(config) => {
                    let last_error = last_error.clone();
                    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
                        tls::dial_tls(address.clone(), config.clone(), last_error.clone())
                    });
                    tokio::time::timeout(remaining, builder.connect_with_connector(connector)).await
                }
                None => {
                    let attempt = tokio::time::timeout(remaining, builder.connect()).await;
                    if let Ok(Err(e)) = &attempt {
                        record_dial_error(&address, e, last_error);
                    }
                    attempt
                }
            };
            if let Ok(Ok(channel)) = connected {
                return Some(channel);
            }
        }
        if Instant::now() + RECONNECT_PAUSE >= deadline {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

/// Keeps Go's text for a failed plain dial, found in the error's causes.
fn record_dial_error(
    address: &str,
    error: &tonic::transport::Error,
    last_error: &Arc<Mutex<Option<String>>>,
) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Ok(mut slot) = last_error.lock() {
                *slot = Some(tls::connection_error(&tls::dial_text(address, io)));
            }
            return;
        }
        cause = e.source();
    }
}
