//! The peer transport: raft messages between the members of a cluster.
//!
//! Each member listens on its `--listen-peer-urls` and keeps one long-lived
//! TCP connection to every other member, used in one direction (the dialer
//! writes, the listener reads), so two members talk over two connections.
//!
//! Wire format (all integers big-endian):
//! - a handshake from the dialer: [`HANDSHAKE_MAGIC`], then the cluster id,
//!   the sender's member id and the recipient's member id (`u64` each);
//! - the listener's one-byte verdict: [`ACCEPTED`], [`WRONG_CLUSTER`] or
//!   [`WRONG_MEMBER`]; on a refusal both sides log it and the listener closes;
//! - then frames: a `u32` length followed by a protobuf-encoded
//!   `raft::eraftpb::Message`.
//!
//! Invariants:
//! - [`Transport::send`] never blocks the raft loop: each peer has a bounded
//!   queue ([`PEER_QUEUE_CAPACITY`]); a message that does not fit, or that is
//!   queued while the peer is unreachable, is dropped and raft is told with
//!   `report_unreachable` (raft retransmits what matters).
//! - A member only steps messages that come from a member of its own cluster
//!   and are addressed to it.
//! - A lost connection is redialled with exponential backoff, from
//!   [`MIN_RECONNECT_BACKOFF`] up to [`MAX_RECONNECT_BACKOFF`].
//!
//! Caveats:
//! - Snapshots (`MsgSnap`) are not sent yet: a follower that falls behind the
//!   leader's compacted log cannot catch up (the leader logs a warning and
//!   reports the snapshot failed, and keeps retrying). With etcd's default
//!   `--snapshot-count` the log keeps 100,000 entries.
//! - The peer port speaks this protocol, not etcd's HTTP peer API: retcd
//!   members cannot be mixed with etcd members in one cluster.
//! - Peer traffic is plaintext (no TLS yet), like `http://` peer URLs in etcd.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use protobuf::Message as _;
use retcd_raft::{Message, MessageType, RaftHandle, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// First bytes of a peer connection, so a stray client is refused early.
const HANDSHAKE_MAGIC: &[u8; 8] = b"RETCDPR1";
/// Verdict: the handshake is accepted; frames follow.
const ACCEPTED: u8 = 0;
/// Verdict: the dialer belongs to another cluster.
const WRONG_CLUSTER: u8 = 1;
/// Verdict: the dialer addressed another member.
const WRONG_MEMBER: u8 = 2;
/// Raft messages queued per peer before new ones are dropped.
const PEER_QUEUE_CAPACITY: usize = 4096;
/// Messages written before one flush of the connection.
const MAX_MESSAGES_PER_FLUSH: usize = 256;
/// Largest frame accepted from a peer, in bytes (entries are bounded by
/// `--max-request-bytes` and an append message by its size limit).
const MAX_FRAME_BYTES: usize = 64 << 20;
/// First pause before redialling a peer.
const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause before redialling a peer.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// How long dialling plus the handshake may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an accepted connection may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One member of the cluster as the transport sees it.
#[derive(Clone, Debug)]
pub struct PeerAddress {
    /// The member's id.
    pub id: u64,
    /// The member's advertised peer URLs (`http://host:port`).
    pub peer_urls: Vec<String>,
}

/// What a connection's handshake says about who is talking to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handshake {
    /// The dialer's cluster id.
    cluster_id: u64,
    /// The dialer's member id.
    from: u64,
    /// The member the dialer means to reach.
    to: u64,
}

impl Handshake {
    /// The handshake's bytes on the wire.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = HANDSHAKE_MAGIC.to_vec();
        bytes.extend_from_slice(&self.cluster_id.to_be_bytes());
        bytes.extend_from_slice(&self.from.to_be_bytes());
        bytes.extend_from_slice(&self.to.to_be_bytes());
        bytes
    }

    /// Reads a handshake; fails on a wrong magic.
    async fn read(stream: &mut TcpStream) -> anyhow::Result<Handshake> {
        let mut magic = [0u8; HANDSHAKE_MAGIC.len()];
        stream.read_exact(&mut magic).await?;
        anyhow::ensure!(&magic == HANDSHAKE_MAGIC, "not a retcd peer connection");
        Ok(Handshake {
            cluster_id: stream.read_u64().await?,
            from: stream.read_u64().await?,
            to: stream.read_u64().await?,
        })
    }
}

/// The raft transport of a member: one writer task and queue per peer.
pub struct PeerTransport {
    /// Queues of the peers' writer tasks, by member id.
    queues: BTreeMap<u64, mpsc::Sender<Message>>,
    /// The member's raft, set once raft has started (reports go to it).
    raft: Arc<OnceLock<RaftHandle>>,
}

impl PeerTransport {
    /// Starts a writer task for every member of `members` but `member_id`.
    /// Call [`PeerTransport::attach`] once raft has started.
    pub fn start(
        cluster_id: u64,
        member_id: u64,
        members: &[PeerAddress],
        runtime: &tokio::runtime::Handle,
    ) -> PeerTransport {
        let raft = Arc::new(OnceLock::new());
        let mut queues = BTreeMap::new();
        for peer in members.iter().filter(|m| m.id != member_id) {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
            let handshake = Handshake {
                cluster_id,
                from: member_id,
                to: peer.id,
            };
            runtime.spawn(write_loop(
                handshake,
                peer.peer_urls.clone(),
                rx,
                raft.clone(),
            ));
            queues.insert(peer.id, tx);
        }
        PeerTransport { queues, raft }
    }

    /// Gives the transport the raft it reports unreachable peers to.
    pub fn attach(&self, raft: RaftHandle) {
        let _ = self.raft.set(raft);
    }

    /// Tells raft that `to` did not get a message.
    fn unreachable(&self, to: u64) {
        if let Some(raft) = self.raft.get() {
            raft.report_unreachable(to);
        }
    }
}

impl Transport for PeerTransport {
    fn send(&self, msgs: Vec<Message>) {
        for msg in msgs {
            let to = msg.to;
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                tracing::warn!(
                    to = %format!("{to:x}"),
                    "member is behind the compacted log; sending snapshots is not supported yet"
                );
                if let Some(raft) = self.raft.get() {
                    raft.report_snapshot(to, false);
                }
                continue;
            }
            let Some(queue) = self.queues.get(&to) else {
                tracing::debug!(to = %format!("{to:x}"), "raft message to an unknown member dropped");
                continue;
            };
            if queue.try_send(msg).is_err() {
                self.unreachable(to);
            }
        }
    }
}

/// Keeps a connection to one peer and writes its queued messages, redialling
/// with backoff; runs until the transport is dropped.
async fn write_loop(
    handshake: Handshake,
    peer_urls: Vec<String>,
    mut queue: mpsc::Receiver<Message>,
    raft: Arc<OnceLock<RaftHandle>>,
) {
    let peer = format!("{:x}", handshake.to);
    let mut backoff = MIN_RECONNECT_BACKOFF;
    let mut url_index = 0;
    let mut was_connected = true;
    loop {
        if queue.is_closed() && queue.is_empty() {
            return;
        }
        let url = &peer_urls[url_index % peer_urls.len().max(1)];
        url_index += 1;
        let stream = match tokio::time::timeout(DIAL_TIMEOUT, dial(url, handshake)).await {
            Ok(Ok(stream)) => stream,
            result => {
                let error = match result {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "timed out".to_string(),
                };
                if was_connected {
                    tracing::warn!(peer = %peer, url = %url, error = %error, "cannot reach peer");
                    was_connected = false;
                }
                // Messages queued for an unreachable peer are stale by the time
                // it comes back; raft resends what it still needs.
                if drain(&mut queue) > 0
                    && let Some(raft) = raft.get()
                {
                    raft.report_unreachable(handshake.to);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
                continue;
            }
        };
        tracing::info!(peer = %peer, url = %url, "connected to peer");
        was_connected = true;
        backoff = MIN_RECONNECT_BACKOFF;
        if let Err(e) = write_messages(stream, &mut queue).await {
            tracing::warn!(peer = %peer, error = %format!("{e:#}"), "lost connection to peer");
            if let Some(raft) = raft.get() {
                raft.report_unreachable(handshake.to);
            }
        }
    }
}

/// Discards every queued message; returns how many there were.
fn drain(queue: &mut mpsc::Receiver<Message>) -> usize {
    let mut dropped = 0;
    while queue.try_recv().is_ok() {
        dropped += 1;
    }
    dropped
}

/// Connects to `url` and completes the handshake.
async fn dial(url: &str, handshake: Handshake) -> anyhow::Result<TcpStream> {
    let addr = url_host_port(url)?;
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.write_all(&handshake.encode()).await?;
    match stream
        .read_u8()
        .await
        .context("reading the peer's verdict")?
    {
        ACCEPTED => Ok(stream),
        WRONG_CLUSTER => anyhow::bail!(
            "the peer belongs to another cluster (ours is {:x})",
            handshake.cluster_id
        ),
        WRONG_MEMBER => anyhow::bail!("the peer is not member {:x}", handshake.to),
        other => anyhow::bail!("unknown handshake verdict {other}"),
    }
}

/// The `host:port` of an `http://host:port[/]` URL.
fn url_host_port(url: &str) -> anyhow::Result<&str> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .with_context(|| format!("unsupported peer URL {url:?} (only http:// is served)"))
}

/// Writes queued messages to `stream` until the queue closes (Ok) or a write fails.
async fn write_messages(
    stream: TcpStream,
    queue: &mut mpsc::Receiver<Message>,
) -> anyhow::Result<()> {
    let mut writer = BufWriter::new(stream);
    while let Some(first) = queue.recv().await {
        write_frame(&mut writer, &first).await?;
        let mut written = 1;
        while written < MAX_MESSAGES_PER_FLUSH {
            match queue.try_recv() {
                Ok(msg) => write_frame(&mut writer, &msg).await?,
                Err(_) => break,
            }
            written += 1;
        }
        writer.flush().await?;
    }
    Ok(())
}

/// Writes one length-prefixed message.
async fn write_frame(writer: &mut BufWriter<TcpStream>, msg: &Message) -> anyhow::Result<()> {
    let bytes = msg.write_to_bytes()?;
    let len = u32::try_from(bytes.len()).context("raft message too large")?;
    writer.write_u32(len).await?;
    writer.write_all(&bytes).await?;
    Ok(())
}

/// Binds every `--listen-peer-urls` address; fails if one cannot be bound.
pub async fn bind(listen_peer_urls: &[String]) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for url in listen_peer_urls {
        for addr in crate::config::listen_addrs(url)? {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for peers on {addr}"))?;
            tracing::info!(address = %addr, "listening for peers");
            listeners.push(listener);
        }
    }
    Ok(listeners)
}

/// Accepts peer connections on `listener` and steps their messages into
/// `raft`, until the task is aborted.
pub async fn serve(listener: TcpListener, cluster_id: u64, member_id: u64, raft: RaftHandle) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                tokio::time::sleep(MIN_RECONNECT_BACKOFF).await;
                continue;
            }
        };
        let raft = raft.clone();
        tokio::spawn(async move {
            if let Err(e) = read_peer(stream, cluster_id, member_id, |m| raft.step(m)).await {
                tracing::debug!(remote = %addr, error = %format!("{e:#}"), "peer connection closed");
            }
        });
    }
}

/// Checks a connection's handshake, then hands every message it carries to `step`.
async fn read_peer(
    mut stream: TcpStream,
    cluster_id: u64,
    member_id: u64,
    step: impl Fn(Message),
) -> anyhow::Result<()> {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, Handshake::read(&mut stream))
        .await
        .context("handshake timed out")??;
    let verdict = if handshake.cluster_id != cluster_id {
        tracing::error!(
            from = %format!("{:x}", handshake.from),
            remote_cluster_id = %format!("{:x}", handshake.cluster_id),
            local_cluster_id = %format!("{cluster_id:x}"),
            "refusing a peer of another cluster"
        );
        WRONG_CLUSTER
    } else if handshake.to != member_id {
        tracing::error!(
            from = %format!("{:x}", handshake.from),
            to = %format!("{:x}", handshake.to),
            "refusing a peer that addressed another member"
        );
        WRONG_MEMBER
    } else {
        ACCEPTED
    };
    stream.write_u8(verdict).await?;
    if verdict != ACCEPTED {
        return Ok(());
    }
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        let len = reader.read_u32().await? as usize;
        anyhow::ensure!(
            len <= MAX_FRAME_BYTES,
            "peer frame of {len} bytes is too large"
        );
        buf.resize(len, 0);
        reader.read_exact(&mut buf).await?;
        let msg = Message::parse_from_bytes(&buf)?;
        anyhow::ensure!(
            msg.from == handshake.from && msg.to == member_id,
            "message from {:x} to {:x} on the connection of {:x}",
            msg.from,
            msg.to,
            handshake.from
        );
        step(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips() {
        let handshake = Handshake {
            cluster_id: 0x1234,
            from: 7,
            to: 9,
        };
        let bytes = handshake.encode();
        assert_eq!(&bytes[..8], HANDSHAKE_MAGIC);
        assert_eq!(bytes.len(), 8 + 3 * 8);
    }

    /// Serves one connection as member `member_id` of `cluster_id`; returns its URL
    /// and the messages it received.
    async fn one_connection(
        cluster_id: u64,
        member_id: u64,
    ) -> (String, Arc<parking_lot::Mutex<Vec<Message>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = read_peer(stream, cluster_id, member_id, |m| sink.lock().push(m)).await;
        });
        (url, received)
    }

    #[tokio::test]
    async fn a_peer_of_another_cluster_is_refused() {
        let (url, received) = one_connection(1, 2).await;
        let handshake = Handshake {
            cluster_id: 99,
            from: 3,
            to: 2,
        };
        let err = dial(&url, handshake).await.unwrap_err();
        assert!(format!("{err:#}").contains("another cluster"), "{err:#}");
        assert!(received.lock().is_empty());
    }

    #[tokio::test]
    async fn a_peer_addressing_another_member_is_refused() {
        let (url, _) = one_connection(1, 2).await;
        let handshake = Handshake {
            cluster_id: 1,
            from: 3,
            to: 4,
        };
        let err = dial(&url, handshake).await.unwrap_err();
        assert!(format!("{err:#}").contains("not member"), "{err:#}");
    }

    #[tokio::test]
    async fn messages_arrive_in_order() {
        let (url, received) = one_connection(1, 2).await;
        let handshake = Handshake {
            cluster_id: 1,
            from: 3,
            to: 2,
        };
        let stream = dial(&url, handshake).await.unwrap();
        let (tx, mut rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
        for index in 1..=10 {
            let msg = Message {
                from: 3,
                to: 2,
                index,
                ..Default::default()
            };
            tx.send(msg).await.unwrap();
        }
        drop(tx);
        write_messages(stream, &mut rx).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while received.lock().len() < 10 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let indexes: Vec<u64> = received.lock().iter().map(|m| m.index).collect();
        assert_eq!(indexes, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn peer_urls_must_be_http() {
        assert_eq!(
            url_host_port("http://127.0.0.1:2380/").unwrap(),
            "127.0.0.1:2380"
        );
        assert!(url_host_port("https://127.0.0.1:2380").is_err());
    }
}
