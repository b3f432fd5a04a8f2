//! Peer traffic metrics under etcd's names, kept per peer by the transport
//! (`crate::peer`), which resolves each peer's label sets once.
//!
//! - `etcd_network_peer_sent_bytes_total{To}` / `_received_bytes_total{From}`:
//!   encoded raft message bytes written to / read from a peer (the 4-byte frame
//!   length left out, as etcd counts message sizes);
//! - `etcd_network_peer_sent_failures_total{To}`: messages that never left:
//!   dropped from a full queue, discarded while the peer was unreachable, or
//!   lost with a connection that broke;
//! - `etcd_network_peer_round_trip_time_seconds{To}`: time from handing a
//!   heartbeat to the transport to reading the peer's answer. etcd probes
//!   each peer over HTTP on the side; our transport has no probe, so the
//!   leader times its raft heartbeats instead and followers record none;
//! - `etcd_network_active_peers{Local,Remote}`: 1 while the connection to the
//!   peer is up; `etcd_network_disconnected_peers_total{Local,Remote}` counts
//!   the times it broke;
//! - `etcd_server_heartbeat_send_failures_total` (in `crate::metrics`): a
//!   leader's heartbeat to a peer that left more than two heartbeat
//!   intervals after the previous one of the same term, etcd's sign of an
//!   overloaded leader.
//!
//! Member ids are written in hex, as etcd writes them. Families without a
//! peer yet (a lone member) are left out of a scrape, as in etcd.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec,
};

use crate::metrics;

/// How late a heartbeat may be, in heartbeat intervals, before it counts as
/// a send failure (etcd's factor).
const HEARTBEAT_LATE_INTERVALS: u32 = 2;

/// The peer families.
struct PeerFamilies {
    /// `etcd_network_peer_sent_bytes_total`.
    sent_bytes: IntCounterVec,
    /// `etcd_network_peer_received_bytes_total`.
    received_bytes: IntCounterVec,
    /// `etcd_network_peer_sent_failures_total`.
    sent_failures: IntCounterVec,
    /// `etcd_network_peer_round_trip_time_seconds`.
    round_trip: HistogramVec,
    /// `etcd_network_active_peers`.
    active: IntGaugeVec,
    /// `etcd_network_disconnected_peers_total`.
    disconnected: IntCounterVec,
}

/// The process-wide peer families.
static FAMILIES: LazyLock<PeerFamilies> = LazyLock::new(|| {
    let counters = |name: &str, help: &str, label: &str| {
        register_int_counter_vec!(name, help, &[label])
            .unwrap_or_else(|e| panic!("registering {name}: {e}"))
    };
    PeerFamilies {
        sent_bytes: counters(
            "etcd_network_peer_sent_bytes_total",
            "The total number of bytes sent to peers.",
            "To",
        ),
        received_bytes: counters(
            "etcd_network_peer_received_bytes_total",
            "The total number of bytes received from peers.",
            "From",
        ),
        sent_failures: counters(
            "etcd_network_peer_sent_failures_total",
            "The total number of send failures from peers.",
            "To",
        ),
        round_trip: register_histogram_vec!(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            &["To"],
            prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")
        )
        .expect("registering etcd_network_peer_round_trip_time_seconds"),
        active: register_int_gauge_vec!(
            "etcd_network_active_peers",
            "The current number of active peer connections.",
            &["Local", "Remote"]
        )
        .expect("registering etcd_network_active_peers"),
        disconnected: register_int_counter_vec!(
            "etcd_network_disconnected_peers_total",
            "The total number of disconnected peers.",
            &["Local", "Remote"]
        )
        .expect("registering etcd_network_disconnected_peers_total"),
    }
});

/// Registers the families (they show once a peer has a label set).
pub fn register() {
    LazyLock::force(&FAMILIES);
}

/// The bytes-received counter of messages from member `from`.
pub fn received_bytes(from: u64) -> IntCounter {
    FAMILIES
        .received_bytes
        .with_label_values(&[format!("{from:x}").as_str()])
}

/// One peer's metrics, as this member sees it.
pub struct PeerStats {
    /// Bytes of messages written to the peer.
    pub sent_bytes: IntCounter,
    /// Messages to the peer that were lost.
    pub sent_failures: IntCounter,
    /// Heartbeat round trips to the peer.
    round_trip: Histogram,
    /// 1 while connected.
    active: IntGauge,
    /// Times the connection broke.
    disconnected: IntCounter,
    /// Heartbeat timing to the peer.
    heartbeats: Mutex<HeartbeatClock>,
}

impl PeerStats {
    /// Resolves the label sets of peer `remote` seen from member `local`.
    pub fn new(local: u64, remote: u64) -> PeerStats {
        let (local, remote) = (format!("{local:x}"), format!("{remote:x}"));
        let f = &*FAMILIES;
        PeerStats {
            sent_bytes: f.sent_bytes.with_label_values(&[remote.as_str()]),
            sent_failures: f.sent_failures.with_label_values(&[remote.as_str()]),
            round_trip: f.round_trip.with_label_values(&[remote.as_str()]),
            active: f
                .active
                .with_label_values(&[local.as_str(), remote.as_str()]),
            disconnected: f
                .disconnected
                .with_label_values(&[local.as_str(), remote.as_str()]),
            heartbeats: Mutex::new(HeartbeatClock::default()),
        }
    }

    /// The connection to the peer came up.
    pub fn connected(&self) {
        self.active.set(1);
    }

    /// The connection to the peer broke.
    pub fn disconnected(&self) {
        self.active.set(0);
        self.disconnected.inc();
    }

    /// A heartbeat of `term` is handed to the transport at `now`; counts it
    /// in `etcd_server_heartbeat_send_failures_total` if it is late.
    pub fn heartbeat_sent(&self, term: u64, now: Instant, interval: Duration) {
        if self.heartbeats.lock().sent(term, now, interval) {
            metrics::HEARTBEAT_SEND_FAILURES.inc();
        }
    }

    /// The peer answered a heartbeat at `now`.
    pub fn heartbeat_answered(&self, now: Instant) {
        if let Some(rtt) = self.heartbeats.lock().answered(now) {
            self.round_trip.observe(rtt.as_secs_f64());
        }
    }
}

/// When heartbeats to one peer left and whether one awaits its answer.
#[derive(Debug, Default)]
struct HeartbeatClock {
    /// The term and time of the last heartbeat.
    last: Option<(u64, Instant)>,
    /// When the heartbeat awaiting an answer left.
    unanswered: Option<Instant>,
}

impl HeartbeatClock {
    /// Notes a heartbeat; true if it left more than
    /// [`HEARTBEAT_LATE_INTERVALS`] intervals after the previous one of its
    /// term (a new term, a new leader, starts afresh).
    fn sent(&mut self, term: u64, now: Instant, interval: Duration) -> bool {
        let late = self.last.is_some_and(|(last_term, at)| {
            last_term == term
                && now.saturating_duration_since(at) > interval * HEARTBEAT_LATE_INTERVALS
        });
        self.last = Some((term, now));
        self.unanswered = Some(now);
        late
    }

    /// Notes an answer; the round trip of the heartbeat it answers, if one waits.
    fn answered(&mut self, now: Instant) -> Option<Duration> {
        self.unanswered
            .take()
            .map(|at| now.saturating_duration_since(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);

    #[test]
    fn a_heartbeat_is_late_only_after_two_intervals_in_one_term() {
        let t0 = Instant::now();
        let mut clock = HeartbeatClock::default();
        assert!(!clock.sent(5, t0, INTERVAL));
        assert!(!clock.sent(5, t0 + INTERVAL, INTERVAL));
        assert!(!clock.sent(5, t0 + INTERVAL * 3, INTERVAL));
        assert!(clock.sent(5, t0 + INTERVAL * 6, INTERVAL));
        // A new term (a new leader) starts afresh, however long the pause.
        assert!(!clock.sent(6, t0 + INTERVAL * 60, INTERVAL));
    }

    #[test]
    fn an_answer_times_the_heartbeat_awaiting_it_once() {
        let t0 = Instant::now();
        let mut clock = HeartbeatClock::default();
        assert_eq!(clock.answered(t0), None);
        clock.sent(1, t0, INTERVAL);
        assert_eq!(
            clock.answered(t0 + Duration::from_micros(250)),
            Some(Duration::from_micros(250))
        );
        assert_eq!(clock.answered(t0 + INTERVAL), None);
    }
}
