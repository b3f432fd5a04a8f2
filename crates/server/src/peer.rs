//! The peer transport: raft messages between the members of a cluster.
//!
//! Each member listens on its `--listen-peer-urls` and keeps one long-lived
//! TCP connection to every other member, used in one direction (the dialer
//! writes, the listener reads), so two members talk over two connections.
//!
//! Wire format (all integers big-endian):
//! - a handshake from the dialer: [`HANDSHAKE_MAGIC`], then the cluster id,
//!   the sender's member id and the recipient's member id (`u64` each);
//! - the listener's one-byte verdict: [`ACCEPTED`], [`WRONG_CLUSTER`],
//!   [`WRONG_MEMBER`] or [`REMOVED_MEMBER`]; on a refusal both sides log it
//!   and the listener closes; a dialer told it was removed stops its member;
//! - then frames: a `u32` length followed by a protobuf-encoded
//!   `raft::eraftpb::Message`.
//!
//! A joining member, which knows no ids yet, opens a connection with
//! [`MEMBERS_MAGIC`] instead and reads back the cluster id and member list
//! as JSON ([`fetch_members`]).
//!
//! The peer set follows the member list: the apply thread calls
//! [`PeerTransport::sync_peers`] after every membership change, which starts
//! writer tasks for added members, ends those of removed ones and re-points
//! updated ones. Each writer records since when its connection is up
//! ([`PeerTransport::active_since`]), for the Cluster API's health checks.
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
//! - Snapshot messages (`MsgSnapshot`, the whole backend) do not use the
//!   peer's queue: `crate::peer_snapshot` sends each on a connection of its
//!   own, in chunks, announced by a frame length of
//!   `peer_snapshot::SNAPSHOT_STREAM`.
//!
//! Caveats:
//! - The peer port speaks this protocol, not etcd's HTTP peer API: retcd
//!   members cannot be mixed with etcd members in one cluster.
//! - Peer traffic is plaintext (no TLS yet), like `http://` peer URLs in etcd.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use protobuf::Message as _;
use retcd_raft::{Message, MessageType, RaftHandle, Transport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::membership::RaftCluster;
use crate::peer_metrics::{self, PeerStats};
use crate::peer_snapshot::{self, SnapshotSender};

/// First bytes of a peer connection, so a stray client is refused early.
const HANDSHAKE_MAGIC: &[u8; 8] = b"RETCDPR1";
/// Verdict: the handshake is accepted; frames follow.
const ACCEPTED: u8 = 0;
/// Verdict: the dialer belongs to another cluster.
const WRONG_CLUSTER: u8 = 1;
/// Verdict: the dialer addressed another member.
const WRONG_MEMBER: u8 = 2;
/// Verdict: the dialer was removed from the cluster; it must stop.
const REMOVED_MEMBER: u8 = 3;
/// First bytes of a member-list request (a joining member asking who is in
/// the cluster); answered with a `u32` length and the JSON of [`MemberList`].
const MEMBERS_MAGIC: &[u8; 8] = b"RETCDMB1";
/// Largest member-list answer accepted.
const MAX_MEMBERS_ANSWER_BYTES: usize = 1 << 20;
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
pub(crate) struct Handshake {
    /// The dialer's cluster id.
    pub(crate) cluster_id: u64,
    /// The dialer's member id.
    pub(crate) from: u64,
    /// The member the dialer means to reach.
    pub(crate) to: u64,
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

    /// Reads the rest of a handshake whose magic was read.
    async fn read(stream: &mut TcpStream) -> anyhow::Result<Handshake> {
        Ok(Handshake {
            cluster_id: stream.read_u64().await?,
            from: stream.read_u64().await?,
            to: stream.read_u64().await?,
        })
    }
}

/// The cluster as a joining member learns it from a peer.
#[derive(Debug, Serialize, Deserialize)]
struct MemberList {
    /// The cluster's id.
    cluster_id: u64,
    /// Every member.
    members: Vec<crate::membership::Member>,
}

/// A refusal from a peer: this member was removed from the cluster.
#[derive(Debug, thiserror::Error)]
#[error("the member has been permanently removed from the cluster")]
struct RemovedFromCluster;

/// One peer's writer task as the transport drives it.
struct PeerLink {
    /// The writer task's queue; dropping it ends the task.
    queue: mpsc::Sender<Message>,
    /// The peer URLs the task dials (updated by `MemberUpdate`).
    urls: Arc<RwLock<Vec<String>>>,
    /// Since when the current connection is up; `None` while disconnected.
    active_since: Arc<Mutex<Option<Instant>>>,
    /// The peer's metrics (`crate::peer_metrics`).
    stats: Arc<PeerStats>,
}

/// The raft transport of a member: one writer task and queue per peer; the
/// peer set follows the member list (`sync_peers`).
pub struct PeerTransport {
    /// This member's cluster id.
    cluster_id: u64,
    /// This member's id.
    member_id: u64,
    /// raft's heartbeat interval, against which late heartbeats are counted.
    heartbeat_interval: Duration,
    /// The runtime writer tasks run on.
    runtime: tokio::runtime::Handle,
    /// The peers' writer tasks, by member id.
    queues: RwLock<BTreeMap<u64, PeerLink>>,
    /// The member's raft, set once raft has started (reports go to it).
    raft: Arc<OnceLock<RaftHandle>>,
    /// Set once this member learns it was removed from the cluster.
    removed: Arc<watch::Sender<bool>>,
    /// Sends snapshot messages on connections of their own (`crate::peer_snapshot`).
    pub snapshots: SnapshotSender,
}

impl PeerTransport {
    /// Starts a writer task for every member of `members` but `member_id`.
    /// Call [`PeerTransport::attach`] once raft has started.
    pub fn start(
        cluster_id: u64,
        member_id: u64,
        heartbeat_interval: Duration,
        members: &[PeerAddress],
        runtime: &tokio::runtime::Handle,
    ) -> PeerTransport {
        let raft = Arc::new(OnceLock::new());
        let snapshots = SnapshotSender::new(
            cluster_id,
            member_id,
            members,
            raft.clone(),
            runtime.clone(),
        );
        let transport = PeerTransport {
            cluster_id,
            member_id,
            heartbeat_interval,
            runtime: runtime.clone(),
            queues: RwLock::new(BTreeMap::new()),
            raft,
            removed: Arc::new(watch::Sender::new(false)),
            snapshots,
        };
        transport.sync_peers(members);
        transport
    }

    /// Makes the peer set exactly `members` (minus this member): starts writer
    /// tasks for new members, stops those of removed ones, and points
    /// existing ones at their current peer URLs.
    pub fn sync_peers(&self, members: &[PeerAddress]) {
        let mut queues = self.queues.write();
        let gone: Vec<u64> = queues
            .keys()
            .filter(|id| !members.iter().any(|m| m.id == **id))
            .copied()
            .collect();
        for id in gone {
            queues.remove(&id);
            self.snapshots.remove_peer(id);
        }
        for peer in members.iter().filter(|m| m.id != self.member_id) {
            self.snapshots.set_peer(peer);
            if let Some(link) = queues.get(&peer.id) {
                if *link.urls.read() != peer.peer_urls {
                    *link.urls.write() = peer.peer_urls.clone();
                }
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
            let handshake = Handshake {
                cluster_id: self.cluster_id,
                from: self.member_id,
                to: peer.id,
            };
            let link = PeerLink {
                queue: tx,
                urls: Arc::new(RwLock::new(peer.peer_urls.clone())),
                active_since: Arc::new(Mutex::new(None)),
                stats: Arc::new(PeerStats::new(self.member_id, peer.id)),
            };
            self.runtime.spawn(write_loop(
                handshake,
                link.urls.clone(),
                link.active_since.clone(),
                link.stats.clone(),
                rx,
                self.raft.clone(),
                self.removed.clone(),
            ));
            queues.insert(peer.id, link);
        }
    }

    /// Since when the connection to member `id` is up; `None` while it is down
    /// or `id` is no peer.
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        self.queues
            .read()
            .get(&id)
            .and_then(|link| *link.active_since.lock())
    }

    /// Notes that this member was removed from the cluster.
    pub fn mark_removed(&self) {
        self.removed.send_replace(true);
    }

    /// Turns true once this member was removed from the cluster (it applied its
    /// own removal, or a peer refused it as removed).
    pub fn removed_from_cluster(&self) -> watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// Gives the transport the raft it reports unreachable peers to.
    pub fn attach(&self, raft: RaftHandle) {
        let _ = self.raft.set(raft);
    }

    /// Notes that member `from` answered a heartbeat (its round trip).
    pub fn heartbeat_answered(&self, from: u64) {
        if let Some(link) = self.queues.read().get(&from) {
            link.stats.heartbeat_answered(Instant::now());
        }
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
            if crate::fault::blocks(to) {
                // A cut link fails a snapshot as a broken connection would.
                if msg.get_msg_type() == MessageType::MsgSnapshot
                    && let Some(raft) = self.raft.get()
                {
                    raft.report_snapshot(to, false);
                }
                continue;
            }
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots.send(msg);
                continue;
            }
            let sent = match self.queues.read().get(&to) {
                Some(link) => {
                    if msg.get_msg_type() == MessageType::MsgHeartbeat {
                        link.stats.heartbeat_sent(
                            msg.term,
                            Instant::now(),
                            self.heartbeat_interval,
                        );
                    }
                    let sent = link.queue.try_send(msg).is_ok();
                    if !sent {
                        link.stats.sent_failures.inc();
                    }
                    sent
                }
                None => {
                    tracing::debug!(to = %format!("{to:x}"), "raft message to an unknown member dropped");
                    continue;
                }
            };
            if !sent {
                self.unreachable(to);
            }
        }
    }
}

/// Keeps a connection to one peer and writes its queued messages, redialling
/// with backoff; runs until the transport is dropped.
async fn write_loop(
    handshake: Handshake,
    peer_urls: Arc<RwLock<Vec<String>>>,
    active_since: Arc<Mutex<Option<Instant>>>,
    stats: Arc<PeerStats>,
    mut queue: mpsc::Receiver<Message>,
    raft: Arc<OnceLock<RaftHandle>>,
    removed: Arc<watch::Sender<bool>>,
) {
    let peer = format!("{:x}", handshake.to);
    let mut backoff = MIN_RECONNECT_BACKOFF;
    let mut url_index = 0;
    let mut was_connected = true;
    loop {
        if queue.is_closed() && queue.is_empty() {
            return;
        }
        let url = {
            let urls = peer_urls.read();
            if urls.is_empty() {
                return;
            }
            urls[url_index % urls.len()].clone()
        };
        let url = &url;
        url_index += 1;
        let stream = match tokio::time::timeout(DIAL_TIMEOUT, dial(url, handshake)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) if e.downcast_ref::<RemovedFromCluster>().is_some() => {
                tracing::error!(peer = %peer, "the member has been permanently removed from the cluster");
                removed.send_replace(true);
                return;
            }
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
                let dropped = drain(&mut queue);
                stats.sent_failures.inc_by(dropped as u64);
                if dropped > 0
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
        *active_since.lock() = Some(Instant::now());
        stats.connected();
        let written = write_messages(stream, &mut queue, &stats).await;
        *active_since.lock() = None;
        if let Err(e) = written {
            stats.disconnected();
            // The messages of the batch being written are lost with it.
            stats.sent_failures.inc();
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
pub(crate) async fn dial(url: &str, handshake: Handshake) -> anyhow::Result<TcpStream> {
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
        REMOVED_MEMBER => Err(RemovedFromCluster.into()),
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
    stats: &PeerStats,
) -> anyhow::Result<()> {
    let mut writer = BufWriter::new(stream);
    while let Some(first) = queue.recv().await {
        write_frame(&mut writer, &first, stats).await?;
        let mut written = 1;
        while written < MAX_MESSAGES_PER_FLUSH {
            match queue.try_recv() {
                Ok(msg) => write_frame(&mut writer, &msg, stats).await?,
                Err(_) => break,
            }
            written += 1;
        }
        writer.flush().await?;
    }
    Ok(())
}

/// Writes one length-prefixed message.
async fn write_frame(
    writer: &mut BufWriter<TcpStream>,
    msg: &Message,
    stats: &PeerStats,
) -> anyhow::Result<()> {
    let bytes = msg.write_to_bytes()?;
    let len = u32::try_from(bytes.len()).context("raft message too large")?;
    writer.write_u32(len).await?;
    writer.write_all(&bytes).await?;
    stats.sent_bytes.inc_by(u64::from(len));
    Ok(())
}

/// Asks the member at peer URL `url` for its cluster id and member list (how
/// a joining member learns the cluster it was added to).
pub async fn fetch_members(url: &str) -> anyhow::Result<(u64, Vec<crate::membership::Member>)> {
    let addr = url_host_port(url)?;
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.write_all(MEMBERS_MAGIC).await?;
        let len = stream.read_u32().await? as usize;
        anyhow::ensure!(
            len <= MAX_MEMBERS_ANSWER_BYTES,
            "member list of {len} bytes is too large"
        );
        let mut buf = vec![0; len];
        stream.read_exact(&mut buf).await?;
        let list: MemberList = serde_json::from_slice(&buf).context("decoding the member list")?;
        Ok((list.cluster_id, list.members))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .context("timed out")?
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
pub async fn serve(
    listener: TcpListener,
    cluster_id: u64,
    member_id: u64,
    raft: RaftHandle,
    cluster: Arc<RaftCluster>,
) {
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
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let step = |m: Message| {
                if !crate::fault::blocks(m.from) {
                    if m.get_msg_type() == MessageType::MsgHeartbeatResponse {
                        cluster.transport().heartbeat_answered(m.from);
                    }
                    raft.step(m)
                }
            };
            if let Err(e) = read_peer(stream, cluster_id, member_id, Some(&cluster), step).await {
                tracing::debug!(remote = %addr, error = %format!("{e:#}"), "peer connection closed");
            }
        });
    }
}

/// Checks a connection's handshake, then hands every message it carries to
/// `step`; answers a member-list request from `cluster` instead when the
/// connection opens with one.
async fn read_peer(
    mut stream: TcpStream,
    cluster_id: u64,
    member_id: u64,
    cluster: Option<&RaftCluster>,
    step: impl Fn(Message),
) -> anyhow::Result<()> {
    let read = async {
        let mut magic = [0u8; HANDSHAKE_MAGIC.len()];
        stream.read_exact(&mut magic).await?;
        if &magic == MEMBERS_MAGIC {
            return Ok(None);
        }
        anyhow::ensure!(&magic == HANDSHAKE_MAGIC, "not a retcd peer connection");
        Handshake::read(&mut stream).await.map(Some)
    };
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .context("handshake timed out")??;
    let Some(handshake) = handshake else {
        let Some(cluster) = cluster else {
            anyhow::bail!("member list requested before membership is known");
        };
        let answer = serde_json::to_vec(&MemberList {
            cluster_id: cluster.cluster_id(),
            members: cluster.members(),
        })?;
        stream.write_u32(u32::try_from(answer.len())?).await?;
        stream.write_all(&answer).await?;
        return Ok(());
    };
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
    } else if cluster.is_some_and(|c| c.is_removed(handshake.from)) {
        tracing::warn!(
            from = %format!("{:x}", handshake.from),
            "refusing a member removed from the cluster"
        );
        REMOVED_MEMBER
    } else {
        ACCEPTED
    };
    stream.write_u8(verdict).await?;
    if verdict != ACCEPTED {
        return Ok(());
    }
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buf = Vec::new();
    let received_bytes = peer_metrics::received_bytes(handshake.from);
    loop {
        let len = reader.read_u32().await?;
        if len == peer_snapshot::SNAPSHOT_STREAM {
            return peer_snapshot::receive(&mut reader, handshake.from, member_id, &step).await;
        }
        let len = len as usize;
        anyhow::ensure!(
            len <= MAX_FRAME_BYTES,
            "peer frame of {len} bytes is too large"
        );
        buf.resize(len, 0);
        reader.read_exact(&mut buf).await?;
        received_bytes.inc_by(len as u64);
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
            let step = |m| sink.lock().push(m);
            let _ = read_peer(stream, cluster_id, member_id, None, step).await;
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
        write_messages(stream, &mut rx, &PeerStats::new(1, 2))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while received.lock().len() < 10 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let indexes: Vec<u64> = received.lock().iter().map(|m| m.index).collect();
        assert_eq!(indexes, (1..=10).collect::<Vec<_>>());
    }

    /// Serves one connection as member 2 of cluster 1, whose list has
    /// members 2 and 3 and from which member 4 was removed; returns its URL.
    async fn one_member_connection() -> (String, Vec<crate::membership::Member>) {
        use crate::membership::{Change, Member, MemberSet, Membership};
        let member = |id: u64| Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2000 + id)],
            client_urls: Vec::new(),
            is_learner: false,
        };
        let mut members = MemberSet::new([member(2), member(3), member(4)]);
        members.apply(&Change::Remove(4));
        let list = members.list();
        let transport = PeerTransport::start(
            1,
            2,
            Duration::from_millis(100),
            &[],
            &tokio::runtime::Handle::current(),
        );
        let membership = Membership {
            member_id: 2,
            cluster_id: 1,
            members,
            joined: false,
        };
        let cluster = RaftCluster::new(membership, Arc::new(transport));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = read_peer(stream, 1, 2, Some(&cluster), |_| {}).await;
        });
        (url, list)
    }

    #[tokio::test]
    async fn a_joining_member_fetches_the_member_list() {
        let (url, list) = one_member_connection().await;
        let (cluster_id, members) = fetch_members(&url).await.unwrap();
        assert_eq!(cluster_id, 1);
        assert_eq!(members, list);
        assert_eq!(members.len(), 2);
    }

    #[tokio::test]
    async fn a_removed_member_is_told_so() {
        let (url, _) = one_member_connection().await;
        let handshake = Handshake {
            cluster_id: 1,
            from: 4,
            to: 2,
        };
        let err = dial(&url, handshake).await.unwrap_err();
        assert!(
            err.downcast_ref::<RemovedFromCluster>().is_some(),
            "{err:#}"
        );
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
