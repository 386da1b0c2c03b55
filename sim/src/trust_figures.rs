//! Trust figures at the end of a run: the highest tier any Sybil reached in
//! honest nodes' score tables, how many nodes agree on the table, and the
//! tier histogram.

use std::collections::BTreeMap;

use starling_trust::Tier;

use crate::engine::Sim;

/// Honest nodes whose tables are sampled.
const SAMPLE: usize = 32;

pub(crate) fn measure(sim: &mut Sim) {
    let honest: Vec<u32> = sim
        .live_nodes()
        .iter()
        .copied()
        .filter(|i| !sim.agents[*i as usize].sybil)
        .take(SAMPLE)
        .collect();
    let mut digests: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut sybil_max: Option<Tier> = None;
    let mut tiers: BTreeMap<String, u64> = BTreeMap::new();
    for (k, &n) in honest.iter().enumerate() {
        let Some(node) = sim.nodes[n as usize].as_ref() else {
            continue;
        };
        let table = node.trust().scores();
        *digests.entry(table.digest()).or_default() += 1;
        for agent in sim.agents.iter().filter(|a| a.sybil) {
            let tier = table.tier(&agent.key.did());
            sybil_max = Some(sybil_max.map_or(tier, |t| t.max(tier)));
        }
        if k == 0 {
            for agent in &sim.agents {
                *tiers
                    .entry(table.tier(&agent.key.did()).name().to_string())
                    .or_default() += 1;
            }
        }
    }
    let agreeing = digests.values().copied().max().unwrap_or(0);
    sim.metrics.score_agreement =
        (!honest.is_empty()).then(|| agreeing as f64 / honest.len() as f64);
    sim.metrics.sybil_tier_max = sybil_max.map(|t| t.name().to_string());
    sim.metrics.tier_counts = tiers;
}
