//! Counters the driver keeps, and the Prometheus text exposition of them
//! together with the gossip core's own [`starling_gossip::Stats`].

use std::fmt::Write;

/// Bucket bounds of the delivery latency histogram, in ms.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// The driver's counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Messages published by the agent.
    pub published: u64,
    /// Messages delivered to the agent.
    pub delivered: u64,
    /// Direct messages sent.
    pub directs_sent: u64,
    /// Direct messages received and opened.
    pub directs_received: u64,
    /// Direct messages that failed to open (tampered or misaddressed).
    pub directs_rejected: u64,
    /// Private-topic messages delivered that this agent could not open.
    pub private_unopened: u64,
    /// Peers admitted.
    pub peers_admitted: u64,
    /// Peers refused.
    pub peers_refused: u64,
    /// Streams dropped for a bad length prefix.
    pub bad_streams: u64,
    /// Frames dropped because a peer's writer queue was full.
    pub frames_dropped_backpressure: u64,
    /// Store commits.
    pub commits: u64,
    /// Delivery latency histogram (cumulative counts per bucket), and the sum.
    pub latency_buckets: [u64; LATENCY_BUCKETS_MS.len()],
    /// Sum of observed latencies.
    pub latency_sum_ms: u64,
}

impl Metrics {
    /// Records one publish-to-delivery latency.
    pub fn observe_latency(&mut self, ms: u64) {
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.latency_buckets[i] += 1;
            }
        }
        self.latency_sum_ms += ms;
    }

    /// The Prometheus text format.
    pub fn render(&self, core: &starling_gossip::Stats, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP starling_{name} {help}\n# TYPE starling_{name} counter\nstarling_{name} {value}"
            );
        };
        counter(
            "published_total",
            "Messages published by the local agent.",
            self.published,
        );
        counter(
            "delivered_total",
            "Messages delivered to the local agent.",
            self.delivered,
        );
        counter(
            "directs_sent_total",
            "Sealed direct messages sent.",
            self.directs_sent,
        );
        counter(
            "directs_received_total",
            "Sealed direct messages received and opened.",
            self.directs_received,
        );
        counter(
            "directs_rejected_total",
            "Direct messages that failed to open.",
            self.directs_rejected,
        );
        counter(
            "private_unopened_total",
            "Private-topic messages this agent could not open (not a member, or tampered).",
            self.private_unopened,
        );
        counter(
            "peers_admitted_total",
            "Peers admitted after the handshake.",
            self.peers_admitted,
        );
        counter(
            "peers_refused_total",
            "Peers refused or cut off.",
            self.peers_refused,
        );
        counter(
            "bad_streams_total",
            "Streams dropped for an oversize or malformed length prefix.",
            self.bad_streams,
        );
        counter(
            "frames_dropped_backpressure_total",
            "Frames dropped on a full peer queue.",
            self.frames_dropped_backpressure,
        );
        counter(
            "store_commits_total",
            "Store transactions committed.",
            self.commits,
        );
        counter("frames_in_total", "Gossip frames received.", core.frames_in);
        counter("frames_out_total", "Gossip frames sent.", core.frames_out);
        counter("bytes_in_total", "Gossip bytes received.", core.bytes_in);
        counter("bytes_out_total", "Gossip bytes sent.", core.bytes_out);
        counter(
            "items_accepted_total",
            "Items accepted the first time.",
            core.items_accepted,
        );
        counter(
            "items_duplicate_total",
            "Items received again.",
            core.items_duplicate,
        );
        counter(
            "grafts_sent_total",
            "Plumtree grafts sent.",
            core.grafts_sent,
        );
        counter(
            "neighbors_lost_total",
            "Active neighbours closed after they fell silent, probes unanswered.",
            core.neighbors_lost,
        );
        counter(
            "dropped_total",
            "Frames or items dropped, all reasons.",
            core.dropped(),
        );
        counter(
            "dropped_forged_total",
            "Dropped: signature did not verify.",
            core.dropped_forged,
        );
        counter(
            "dropped_refused_total",
            "Dropped: refused by mandate or policy.",
            core.dropped_refused,
        );
        counter(
            "dropped_rate_limited_total",
            "Dropped: over the peer's frame rate or the origin's ring rate.",
            core.dropped_rate_limited,
        );
        counter(
            "graylisted_total",
            "Identities graylisted for repeated misbehaviour.",
            core.graylisted,
        );
        counter(
            "violations_reported_total",
            "Violation records this node signed.",
            core.violations_reported,
        );
        let _ = writeln!(
            out,
            "# HELP starling_delivery_latency_ms Publish-to-delivery latency.\n# TYPE starling_delivery_latency_ms histogram"
        );
        for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(self.latency_buckets) {
            let _ = writeln!(
                out,
                "starling_delivery_latency_ms_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "starling_delivery_latency_ms_bucket{{le=\"+Inf\"}} {}",
            self.delivered
        );
        let _ = writeln!(
            out,
            "starling_delivery_latency_ms_sum {}",
            self.latency_sum_ms
        );
        let _ = writeln!(out, "starling_delivery_latency_ms_count {}", self.delivered);
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP starling_{name} {help}\n# TYPE starling_{name} gauge\nstarling_{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut m = super::Metrics::default();
        m.observe_latency(3);
        m.observe_latency(700);
        m.delivered = 2;
        let text = m.render(&Default::default(), &[("peers", "Connected peers.", 4)]);
        assert!(
            text.contains("starling_delivery_latency_ms_bucket{le=\"5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("starling_delivery_latency_ms_bucket{le=\"1000\"} 2"),
            "{text}"
        );
        assert!(text.contains("starling_delivery_latency_ms_sum 703"));
        assert!(text.contains("# TYPE starling_peers gauge\nstarling_peers 4"));
    }
}
