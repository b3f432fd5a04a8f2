//! Raft snapshots between members: sent on a connection of their own, in
//! chunks, so a large backend never queues behind (or ahead of) heartbeats.
//!
//! A `MsgSnapshot` carries the whole backend. The peer transport hands it to
//! [`SnapshotSender::send`], which returns at once; a task dials the
//! recipient on a fresh connection (the same handshake as `crate::peer`'s
//! message connections), then writes:
//!
//! - [`SNAPSHOT_STREAM`] where a message connection has a frame length, so
//!   the receiver's frame loop knows a snapshot stream follows;
//! - the encoded message's length (`u64`);
//! - chunks of at most [`CHUNK_BYTES`], each a `u32` length and the bytes;
//! - the SHA-256 of the encoded message.
//!
//! The receiver reassembles the message, checks the length, every chunk
//! bound and the digest, checks sender and recipient, steps it into raft and
//! answers one byte, [`RECEIVED`]. The sender reports the outcome to raft
//! with `report_snapshot` (raft retries a failed one). All integers are
//! big-endian.
//!
//! Invariants:
//! - `Transport::send` never waits: encoding, dialling and writing happen on
//!   a task; raft keeps at most one snapshot in flight per follower.
//! - A truncated, oversized or corrupt stream is refused before anything
//!   reaches raft; the connection is closed and the sender reports failure.
//! - Every send ends in exactly one `report_snapshot`, within
//!   [`SEND_TIMEOUT_PER_CHUNK`] per chunk plus the dial and answer timeouts.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use anyhow::Context;
use parking_lot::RwLock;
use prometheus::{IntCounterVec, register_int_counter_vec};
use protobuf::Message as _;
use retcd_raft::{Message, MessageType, RaftHandle};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::peer::{Handshake, PeerAddress, dial};

/// Where a frame length would be: announces a snapshot stream.
pub const SNAPSHOT_STREAM: u32 = u32::MAX;
/// The receiver's answer once the snapshot reached raft.
const RECEIVED: u8 = 0;
/// Largest chunk, in bytes.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Largest snapshot message accepted, in bytes (it is held in memory whole).
const MAX_SNAPSHOT_BYTES: u64 = 8 << 30;
/// Length of the trailing digest.
const DIGEST_BYTES: usize = 32;
/// How long dialling plus the handshake may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing one chunk may take before the send fails.
const SEND_TIMEOUT_PER_CHUNK: Duration = Duration::from_secs(30);
/// How long the receiver may take to answer once everything is written.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Snapshots sent, by recipient (etcd's metric).
static SEND_SUCCESS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "etcd_network_snapshot_send_success",
        "Total number of successful snapshot sends",
        &["To"]
    )
    .expect("registering etcd_network_snapshot_send_success")
});

/// Snapshot sends that failed, by recipient (etcd's metric).
static SEND_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "etcd_network_snapshot_send_failures",
        "Total number of snapshot send failures",
        &["To"]
    )
    .expect("registering etcd_network_snapshot_send_failures")
});

/// Snapshots received, by sender (etcd's metric).
static RECEIVE_SUCCESS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "etcd_network_snapshot_receive_success",
        "Total number of successful snapshot receives",
        &["From"]
    )
    .expect("registering etcd_network_snapshot_receive_success")
});

/// Snapshot receives that failed, by sender (etcd's metric).
static RECEIVE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "etcd_network_snapshot_receive_failures",
        "Total number of snapshot receive failures",
        &["From"]
    )
    .expect("registering etcd_network_snapshot_receive_failures")
});

/// Sends snapshot messages, each on its own connection and task.
pub struct SnapshotSender {
    /// This member's cluster id, for the handshake.
    cluster_id: u64,
    /// This member's id.
    member_id: u64,
    /// Every other member's peer URLs, by id.
    peers: RwLock<BTreeMap<u64, Vec<String>>>,
    /// The member's raft, for reports (set once raft has started).
    raft: Arc<OnceLock<RaftHandle>>,
    /// Where send tasks run.
    runtime: tokio::runtime::Handle,
}

impl SnapshotSender {
    /// A sender to the members of `members` other than `member_id`.
    pub fn new(
        cluster_id: u64,
        member_id: u64,
        members: &[PeerAddress],
        raft: Arc<OnceLock<RaftHandle>>,
        runtime: tokio::runtime::Handle,
    ) -> SnapshotSender {
        let peers = members
            .iter()
            .filter(|m| m.id != member_id)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        SnapshotSender {
            cluster_id,
            member_id,
            peers: RwLock::new(peers),
            raft,
            runtime,
        }
    }

    /// Adds a member or changes its peer URLs.
    pub fn set_peer(&self, peer: &PeerAddress) {
        if peer.id != self.member_id {
            self.peers.write().insert(peer.id, peer.peer_urls.clone());
        }
    }

    /// Forgets a member.
    pub fn remove_peer(&self, id: u64) {
        self.peers.write().remove(&id);
    }

    /// Starts sending `msg` (a `MsgSnapshot`); never blocks.
    pub fn send(&self, msg: Message) {
        debug_assert_eq!(msg.get_msg_type(), MessageType::MsgSnapshot);
        let to = msg.to;
        let urls = self.peers.read().get(&to).cloned().unwrap_or_default();
        let handshake = Handshake {
            cluster_id: self.cluster_id,
            from: self.member_id,
            to,
        };
        let raft = self.raft.clone();
        self.runtime.spawn(async move {
            let index = msg.get_snapshot().get_metadata().index;
            let size = msg.get_snapshot().data.len();
            tracing::info!(to = %format!("{to:x}"), index, bytes = size, "sending a raft snapshot");
            let result = send_to(&urls, handshake, msg).await;
            let label = format!("{to:x}");
            match &result {
                Ok(()) => {
                    SEND_SUCCESS.with_label_values(&[&label]).inc();
                    tracing::info!(to = %label, index, bytes = size, "sent a raft snapshot");
                }
                Err(e) => {
                    SEND_FAILURES.with_label_values(&[&label]).inc();
                    tracing::warn!(to = %label, index, error = %format!("{e:#}"), "sending a raft snapshot failed");
                }
            }
            if let Some(raft) = raft.get() {
                raft.report_snapshot(to, result.is_ok());
            }
        });
    }
}

/// Encodes `msg` and sends it to the first of `urls` that takes it.
async fn send_to(urls: &[String], handshake: Handshake, msg: Message) -> anyhow::Result<()> {
    anyhow::ensure!(!urls.is_empty(), "no peer URL known for the member");
    let bytes = tokio::task::spawn_blocking(move || msg.write_to_bytes())
        .await
        .context("encoding task")?
        .context("encoding the snapshot message")?;
    let mut last_error = None;
    for url in urls {
        let stream = match tokio::time::timeout(DIAL_TIMEOUT, dial(url, handshake)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                last_error = Some(e);
                continue;
            }
            Err(_) => {
                last_error = Some(anyhow::anyhow!("dialling {url} timed out"));
                continue;
            }
        };
        return send_on(stream, &bytes).await;
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no peer URL answered")))
}

/// Writes the stream on an accepted connection and waits for the answer.
async fn send_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
) -> anyhow::Result<()> {
    write_stream(&mut stream, bytes).await?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, stream.read_u8())
        .await
        .context("the receiver did not answer")?
        .context("the receiver closed the connection")?;
    anyhow::ensure!(
        answer == RECEIVED,
        "the receiver refused the snapshot ({answer})"
    );
    Ok(())
}

/// Writes [`SNAPSHOT_STREAM`], the length, the chunks and the digest of `bytes`.
pub async fn write_stream<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> anyhow::Result<()> {
    writer.write_u32(SNAPSHOT_STREAM).await?;
    writer.write_u64(bytes.len() as u64).await?;
    for chunk in bytes.chunks(CHUNK_BYTES) {
        tokio::time::timeout(SEND_TIMEOUT_PER_CHUNK, async {
            writer.write_u32(chunk.len() as u32).await?;
            writer.write_all(chunk).await
        })
        .await
        .map_err(|_| anyhow::anyhow!("writing a snapshot chunk timed out"))??;
    }
    writer.write_all(&Sha256::digest(bytes)).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads what [`write_stream`] wrote after its [`SNAPSHOT_STREAM`] marker and
/// returns the message bytes; fails on any bound, truncation or digest error.
pub async fn read_stream<R: AsyncRead + Unpin>(reader: &mut R) -> anyhow::Result<Vec<u8>> {
    let total = reader
        .read_u64()
        .await
        .context("reading the snapshot length")?;
    anyhow::ensure!(
        total <= MAX_SNAPSHOT_BYTES,
        "snapshot of {total} bytes is too large"
    );
    let total = usize::try_from(total)?;
    let mut bytes = Vec::with_capacity(total.min(CHUNK_BYTES * 64));
    let mut digest = Sha256::new();
    while bytes.len() < total {
        let len = reader.read_u32().await.context("reading a chunk length")? as usize;
        let remaining = total - bytes.len();
        anyhow::ensure!(
            len > 0 && len <= CHUNK_BYTES && len <= remaining,
            "bad snapshot chunk of {len} bytes ({remaining} remaining)"
        );
        let start = bytes.len();
        bytes.resize(start + len, 0);
        reader
            .read_exact(&mut bytes[start..])
            .await
            .context("snapshot stream truncated")?;
        digest.update(&bytes[start..]);
    }
    let mut expected = [0u8; DIGEST_BYTES];
    reader
        .read_exact(&mut expected)
        .await
        .context("snapshot stream truncated before its digest")?;
    anyhow::ensure!(
        digest.finalize().as_slice() == expected,
        "snapshot digest mismatch"
    );
    Ok(bytes)
}

/// Receives a snapshot stream from member `from` (its marker already read),
/// steps the message into raft through `step` and answers the sender.
pub async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    from: u64,
    member_id: u64,
    step: &impl Fn(Message),
) -> anyhow::Result<()> {
    let label = format!("{from:x}");
    let result = async {
        let bytes = read_stream(stream).await?;
        let msg = tokio::task::spawn_blocking(move || Message::parse_from_bytes(&bytes))
            .await
            .context("decoding task")?
            .context("decoding the snapshot message")?;
        anyhow::ensure!(
            msg.get_msg_type() == MessageType::MsgSnapshot
                && msg.from == from
                && msg.to == member_id,
            "unexpected {:?} from {:x} to {:x} on a snapshot stream of {from:x}",
            msg.get_msg_type(),
            msg.from,
            msg.to
        );
        Ok(msg)
    }
    .await;
    let msg = match result {
        Ok(msg) => msg,
        Err(e) => {
            RECEIVE_FAILURES.with_label_values(&[&label]).inc();
            return Err(e);
        }
    };
    let index = msg.get_snapshot().get_metadata().index;
    let bytes = msg.get_snapshot().data.len();
    if crate::fault::blocks(from) {
        return Ok(());
    }
    step(msg);
    RECEIVE_SUCCESS.with_label_values(&[&label]).inc();
    tracing::info!(from = %label, index, bytes, "received a raft snapshot");
    stream.write_u8(RECEIVED).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot message of `size` data bytes from 1 to 2.
    fn snapshot_message(size: usize) -> Message {
        let mut msg = Message {
            from: 1,
            to: 2,
            ..Default::default()
        };
        msg.set_msg_type(MessageType::MsgSnapshot);
        let snap = msg.mut_snapshot();
        snap.mut_metadata().index = 77;
        snap.data = (0..size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        msg
    }

    /// The bytes `write_stream` produces for `payload`.
    async fn encoded(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_stream(&mut out, payload).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_message_of_several_chunks_round_trips() {
        let msg = snapshot_message(3 * CHUNK_BYTES + 12_345);
        let payload = msg.write_to_bytes().unwrap();
        let wire = encoded(&payload).await;
        assert_eq!(&wire[..4], &SNAPSHOT_STREAM.to_be_bytes());
        // Marker, length, four chunk headers, the chunks, the digest.
        assert_eq!(wire.len(), 4 + 8 + 4 * 4 + payload.len() + DIGEST_BYTES);
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let sender = tokio::spawn(async move { send_on(&mut near, &payload).await });
        assert_eq!(far.read_u32().await.unwrap(), SNAPSHOT_STREAM);
        let stepped = parking_lot::Mutex::new(Vec::new());
        receive(&mut far, 1, 2, &|m| stepped.lock().push(m))
            .await
            .unwrap();
        sender.await.unwrap().unwrap();
        assert_eq!(stepped.into_inner(), vec![msg]);
    }

    #[tokio::test]
    async fn an_empty_message_round_trips() {
        let wire = encoded(b"").await;
        let mut reader = &wire[4..];
        assert_eq!(read_stream(&mut reader).await.unwrap(), Vec::<u8>::new());
        assert!(reader.is_empty());
    }

    #[tokio::test]
    async fn truncated_streams_are_refused() {
        let payload = snapshot_message(2 * CHUNK_BYTES).write_to_bytes().unwrap();
        let wire = encoded(&payload).await;
        for cut in [6, 12, 14, 4 + 8 + 4 + CHUNK_BYTES + 2, wire.len() - 1] {
            let mut reader = &wire[4..cut];
            let err = read_stream(&mut reader).await.unwrap_err();
            assert!(
                format!("{err:#}").contains("truncated") || format!("{err:#}").contains("length"),
                "cut at {cut}: {err:#}"
            );
        }
    }

    #[tokio::test]
    async fn corrupt_streams_are_refused_and_nothing_is_stepped() {
        let payload = snapshot_message(CHUNK_BYTES + 10).write_to_bytes().unwrap();
        let wire = encoded(&payload).await;
        // A flipped data byte fails the digest.
        let mut flipped = wire.clone();
        flipped[4 + 8 + 4 + 100] ^= 1;
        // A chunk longer than the bound, or than what remains.
        let mut oversized = wire.clone();
        oversized[12..16].copy_from_slice(&(CHUNK_BYTES as u32 + 1).to_be_bytes());
        let mut zero = wire.clone();
        zero[12..16].copy_from_slice(&0u32.to_be_bytes());
        // A length beyond the bound.
        let mut huge = wire.clone();
        huge[4..12].copy_from_slice(&u64::MAX.to_be_bytes());
        for (what, bytes, expect) in [
            ("flipped", flipped, "digest mismatch"),
            ("oversized", oversized, "bad snapshot chunk"),
            ("zero", zero, "bad snapshot chunk"),
            ("huge", huge, "too large"),
        ] {
            let mut stream = tokio_test_stream(&bytes[4..]);
            let stepped = parking_lot::Mutex::new(0);
            let err = receive(&mut stream, 1, 2, &|_| *stepped.lock() += 1)
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains(expect), "{what}: {err:#}");
            assert_eq!(*stepped.lock(), 0, "{what}");
        }
    }

    #[tokio::test]
    async fn a_message_for_another_member_is_refused() {
        let payload = snapshot_message(10).write_to_bytes().unwrap();
        let wire = encoded(&payload).await;
        let mut stream = tokio_test_stream(&wire[4..]);
        let err = receive(&mut stream, 1, 3, &|_| panic!("stepped"))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("unexpected"), "{err:#}");
    }

    /// A duplex stream whose far end has written `bytes` and closed.
    fn tokio_test_stream(bytes: &[u8]) -> tokio::io::DuplexStream {
        let (near, mut far) = tokio::io::duplex(bytes.len() + 1024);
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            far.write_all(&bytes).await.unwrap();
            // Keep the far end open until the near end is done reading.
            let mut sink = Vec::new();
            let _ = far.read_to_end(&mut sink).await;
        });
        near
    }
}
