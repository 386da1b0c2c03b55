//! Turning a finished run into figures, text, CSV and SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::engine::Sim;
use crate::metrics::Report;
use crate::world::START_MS;

/// Peak resident memory of this process, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Fewest hops a tree of out-degree `d` (first hop `d`, then `d - 1` per
/// node) needs to reach `n` nodes.
pub fn moore_hops(n: u64, d: u64) -> u32 {
    let (mut reached, mut level, mut hops) = (1u64, d, 0u32);
    while reached < n {
        reached = reached.saturating_add(level);
        level = level.saturating_mul(d.saturating_sub(1).max(1));
        hops += 1;
    }
    hops
}

impl Sim {
    /// The report of the run so far.
    pub fn report(&mut self, wall_s: f64, stopped: Option<String>) -> Report {
        let m = &mut self.metrics;
        let expected: u64 = m.published.values().map(|p| u64::from(p.expected)).sum();
        let delivered: u64 = m.published.values().map(|p| u64::from(p.delivered)).sum();
        let ldhs: Vec<u32> = m
            .published
            .values()
            .filter(|p| p.delivered > 0)
            .map(|p| p.ldh)
            .collect();
        let ratios: Vec<f64> = m
            .published
            .values()
            .filter_map(|p| {
                p.shortest_ms
                    .filter(|s| *s > 0 && p.delivered > 0)
                    .map(|s| p.last_ms as f64 / s as f64)
            })
            .collect();
        let reach_ms: BTreeMap<String, Option<u64>> = m
            .spreads
            .iter()
            .map(|(name, s)| (name.to_string(), s.reach_999_ms))
            .collect();
        let heal_ms = self.heal_at.and_then(|heal| {
            let s = m.spreads.get("revocation")?;
            s.reach_999_ms
                .map(|r| (s.started_ms + r).saturating_sub(heal))
        });
        let peak = peak_rss_mb();
        let nodes_total = self.agents.len() as u32;
        crate::trust_figures::measure(self);
        let attacks = crate::adversary::finish(self);
        let m = &self.metrics;
        Report {
            scenario: self.sc.name.clone(),
            nodes: self.sc.nodes,
            nodes_total,
            seed: self.sc.seed,
            trace_hash: format!("{:016x}", self.trace),
            complete: stopped.is_none(),
            stopped,
            messages: m.published.len() as u64,
            delivered_ratio: if expected == 0 {
                1.0
            } else {
                delivered as f64 / expected as f64
            },
            latency_ms_p50: m.latencies.quantile(0.50),
            latency_ms_p90: m.latencies.quantile(0.90),
            latency_ms_p99: m.latencies.quantile(0.99),
            latency_ms_max: m.latencies.max(),
            ldh_max: ldhs.iter().copied().max().unwrap_or(0),
            ldh_mean: if ldhs.is_empty() {
                0.0
            } else {
                ldhs.iter().map(|h| f64::from(*h)).sum::<f64>() / ldhs.len() as f64
            },
            moore_hops: moore_hops(u64::from(self.sc.nodes), 5),
            last_delivery_vs_shortest: (!ratios.is_empty())
                .then(|| ratios.iter().sum::<f64>() / ratios.len() as f64),
            rmr: if m.first_receptions == 0 {
                0.0
            } else {
                m.gossip_receptions as f64 / m.first_receptions as f64 - 1.0
            },
            bytes_per_node: m.bytes as f64 / f64::from(nodes_total.max(1)),
            reach_ms,
            heal_ms,
            sybil_tier_max: m.sybil_tier_max.clone(),
            score_agreement: m.score_agreement,
            score_entry_agreement: m.score_entry_agreement,
            killed_deliveries_after: m.killed_deliveries_after,
            attacks,
            drops: self.drops(),
            score_computations: self.memo.score_computations(),
            events: self.events,
            events_per_s: self.events as f64 / wall_s.max(1e-9),
            wall_s,
            peak_rss_mb: peak,
            bytes_per_node_rss: peak * 1024.0 * 1024.0 / f64::from(nodes_total.max(1)),
            simulated_s: (self.now - START_MS) as f64 / 1000.0,
        }
    }

    /// Writes CSV time series and SVG plots into `dir`.
    pub fn write_out(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut delivery = String::from("simulated_s,live_nodes,deliveries\n");
        for (t, live, d) in &self.metrics.series {
            let _ = writeln!(delivery, "{t:.1},{live},{d}");
        }
        std::fs::write(dir.join("delivery.csv"), &delivery)?;
        let mut cdf = String::from("latency_ms,fraction\n");
        let points = self.metrics.latencies.cdf(200);
        for (l, f) in &points {
            let _ = writeln!(cdf, "{l},{f:.4}");
        }
        std::fs::write(dir.join("latency_cdf.csv"), &cdf)?;
        let series: Vec<(f64, f64)> = self
            .metrics
            .series
            .iter()
            .map(|(t, _, d)| (*t, *d as f64))
            .collect();
        std::fs::write(
            dir.join("delivery.svg"),
            svg("deliveries over time", "simulated s", "deliveries", &series),
        )?;
        std::fs::write(
            dir.join("latency_cdf.svg"),
            svg("latency CDF", "latency ms", "fraction delivered", &points),
        )?;
        let live: Vec<(f64, f64)> = self
            .metrics
            .series
            .iter()
            .map(|(t, l, _)| (*t, f64::from(*l)))
            .collect();
        std::fs::write(
            dir.join("live_nodes.svg"),
            svg("live nodes", "simulated s", "nodes", &live),
        )?;
        let mut tiers = String::from("tier,agents\n");
        for (tier, count) in &self.metrics.tier_counts {
            let _ = writeln!(tiers, "{tier},{count}");
        }
        std::fs::write(dir.join("tiers.csv"), tiers)?;
        Ok(())
    }
}

/// A minimal line plot.
fn svg(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)]) -> String {
    let (w, h, pad) = (640.0, 400.0, 50.0);
    let x_max = points.iter().map(|p| p.0).fold(1e-9, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(1e-9, f64::max);
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                pad + x / x_max * (w - 2.0 * pad),
                h - pad - y / y_max * (h - 2.0 * pad)
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{tx}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{pad}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{yb}" stroke="black"/>
<text x="{tx}" y="{xl}" text-anchor="middle">{x_label} (max {x_max:.1})</text>
<text x="12" y="{ty}" transform="rotate(-90 12 {ty})" text-anchor="middle">{y_label} (max {y_max:.1})</text>
<polyline fill="none" stroke="steelblue" stroke-width="2" points="{points}"/>
</svg>
"##,
        tx = w / 2.0,
        yb = h - pad,
        xr = w - pad,
        xl = h - 15.0,
        ty = h / 2.0,
        points = path.join(" "),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn moore_bound() {
        assert_eq!(super::moore_hops(1, 5), 0);
        assert_eq!(super::moore_hops(6, 5), 1);
        assert_eq!(super::moore_hops(26, 5), 2);
        assert_eq!(super::moore_hops(10_000, 5), 7);
        assert_eq!(super::moore_hops(1_000_000, 5), 10);
    }
}
