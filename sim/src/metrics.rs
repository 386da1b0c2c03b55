//! What a run measures, and the report it produces.

use std::collections::BTreeMap;

use serde::Serialize;

/// One published message.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) at_ms: u64,
    pub(crate) expected: u32,
    pub(crate) delivered: u32,
    pub(crate) last_ms: u64,
    pub(crate) ldh: u32,
    /// Shortest-path latency from the origin over the overlay at publish time.
    pub(crate) shortest_ms: Option<u64>,
}

/// An item whose spread is timed (a revocation, a termination, a policy change).
#[derive(Debug, Clone, Default)]
pub(crate) struct Spread {
    pub(crate) started_ms: u64,
    pub(crate) reached: u32,
    pub(crate) reach_999_ms: Option<u64>,
}

/// Running counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) published: BTreeMap<[u8; 32], Published>,
    pub(crate) latencies: Latencies,
    pub(crate) gossip_receptions: u64,
    pub(crate) first_receptions: u64,
    pub(crate) bytes: u64,
    pub(crate) frames: u64,
    pub(crate) spreads: BTreeMap<&'static str, Spread>,
    /// (simulated s, live nodes, deliveries so far)
    pub(crate) series: Vec<(f64, u32, u64)>,
    pub(crate) killed_deliveries_after: u64,
    pub(crate) sybil_tier_max: Option<String>,
    pub(crate) score_agreement: Option<f64>,
    pub(crate) score_entry_agreement: Option<f64>,
    pub(crate) tier_counts: BTreeMap<String, u64>,
}

/// Delivery latencies as a count per millisecond value: exact quantiles
/// in memory bounded by the longest latency, not by the deliveries (two
/// million a simulated second at 10^6 nodes, 8 MB a second as a list).
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    counts: BTreeMap<u32, u64>,
    len: u64,
}

impl Latencies {
    pub(crate) fn record(&mut self, ms: u32) {
        *self.counts.entry(ms).or_default() += 1;
        self.len += 1;
    }

    /// The `q`-quantile: the value at index `round((n - 1) q)` of the
    /// sorted list.
    pub(crate) fn quantile(&self, q: f64) -> u32 {
        let Some(last) = self.len.checked_sub(1) else {
            return 0;
        };
        let index = (last as f64 * q).round() as u64;
        let mut below = 0;
        for (&ms, &n) in &self.counts {
            below += n;
            if index < below {
                return ms;
            }
        }
        self.max()
    }

    pub(crate) fn max(&self) -> u32 {
        self.counts.keys().next_back().copied().unwrap_or(0)
    }

    /// (latency, fraction of deliveries by then), at most `points` of
    /// them, the last at the longest latency.
    pub(crate) fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        let step = (self.counts.len() / points.max(1)).max(1);
        let mut by_then = 0;
        let mut out = Vec::new();
        for (i, (&ms, &n)) in self.counts.iter().enumerate() {
            by_then += n;
            if i % step == 0 || i + 1 == self.counts.len() {
                out.push((f64::from(ms), by_then as f64 / self.len as f64));
            }
        }
        out
    }
}

/// The report of a run (`--json` prints it as one object).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes at the start.
    pub nodes: u32,
    /// Nodes ever created (with churn arrivals).
    pub nodes_total: u32,
    /// Root seed.
    pub seed: u64,
    /// Hash of every event processed: equal runs have equal hashes.
    pub trace_hash: String,
    /// Whether the run finished (false: stopped at a limit).
    pub complete: bool,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
    /// Messages published.
    pub messages: u64,
    /// Deliveries to the nodes live at publish (less the origin), each
    /// counted once, over their number; a node that joins or returns later
    /// and receives the message too is not counted.
    pub delivered_ratio: f64,
    /// Delivery latency percentiles.
    pub latency_ms_p50: u32,
    /// 90th percentile.
    pub latency_ms_p90: u32,
    /// 99th percentile.
    pub latency_ms_p99: u32,
    /// Slowest delivery.
    pub latency_ms_max: u32,
    /// Largest last delivery hop of any message.
    pub ldh_max: u32,
    /// Mean of each message's last delivery hop.
    pub ldh_mean: f64,
    /// Fewest hops any tree of out-degree 5 needs to reach every node (Moore bound).
    pub moore_hops: u32,
    /// Mean over messages of last-delivery latency / shortest-path latency over the overlay.
    pub last_delivery_vs_shortest: Option<f64>,
    /// Relative message redundancy: receptions / first receptions - 1.
    pub rmr: f64,
    /// Bytes sent per node over the run.
    pub bytes_per_node: f64,
    /// Time for timed items to reach 99.9% of live nodes, in ms (null: never).
    pub reach_ms: BTreeMap<String, Option<u64>>,
    /// After a partition heals, time until its revocation reached 99.9% of nodes.
    pub heal_ms: Option<u64>,
    /// Highest tier any Sybil reached in honest nodes' score tables.
    pub sybil_tier_max: Option<String>,
    /// Share of sampled nodes whose score table equals the most common one.
    pub score_agreement: Option<f64>,
    /// Share of the sampled nodes' score entries (one per node and agent,
    /// an unknown agent an entry too) that equal the most common entry for
    /// their agent.
    pub score_entry_agreement: Option<f64>,
    /// Deliveries of the killed agent's messages sent after the kill reached everyone.
    pub killed_deliveries_after: u64,
    /// What the adversaries achieved, if the scenario has any.
    pub attacks: Option<crate::adversary::AttackFigures>,
    /// What the live nodes' gossip cores turned away, by reason, summed.
    pub drops: BTreeMap<String, u64>,
    /// Score tables computed in full over every identity, by all nodes
    /// together: every other table was shared or extended by newcomers.
    pub score_computations: u64,
    /// Events processed.
    pub events: u64,
    /// Events per wall-clock second.
    pub events_per_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Peak resident memory.
    pub peak_rss_mb: f64,
    /// Peak resident memory per node.
    pub bytes_per_node_rss: f64,
    /// Simulated seconds.
    pub simulated_s: f64,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Latencies;

    proptest! {
        /// Quantiles, maximum and CDF from the counts are those of the
        /// sorted list of every latency.
        #[test]
        fn latencies_count_what_a_sorted_list_holds(
            values in proptest::collection::vec(0u32..5_000, 0..400),
            q in 0.0f64..=1.0,
        ) {
            let mut latencies = Latencies::default();
            for &v in &values {
                latencies.record(v);
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let at = |q: f64| match sorted.is_empty() {
                true => 0,
                false => sorted[((sorted.len() - 1) as f64 * q).round() as usize],
            };
            for q in [q, 0.0, 0.5, 0.99, 1.0] {
                prop_assert_eq!(latencies.quantile(q), at(q));
            }
            prop_assert_eq!(latencies.max(), sorted.last().copied().unwrap_or(0));
            let cdf = latencies.cdf(16);
            prop_assert!(cdf.len() <= 2 * 16 + 1);
            for (ms, fraction) in &cdf {
                let by_then = sorted.iter().filter(|v| f64::from(**v) <= *ms).count();
                prop_assert_eq!(*fraction, by_then as f64 / sorted.len() as f64);
            }
            prop_assert_eq!(cdf.last().map(|p| p.1), (!sorted.is_empty()).then_some(1.0));
        }
    }
}
