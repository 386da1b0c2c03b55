//! Trust figures at the end of a run: the highest tier any Sybil reached in
//! honest nodes' score tables, how many nodes agree on the whole table and
//! how many of their entries agree, and the tier histogram.

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
    let tables: Vec<&starling_trust::ScoreTable> = honest
        .iter()
        .filter_map(|&n| sim.nodes[n as usize].as_ref())
        .map(|node| node.trust().scores().as_ref())
        .collect();
    let mut digests: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut sybil_max: Option<Tier> = None;
    let mut tiers: BTreeMap<String, u64> = BTreeMap::new();
    for (k, table) in tables.iter().enumerate() {
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
    let entries = entry_agreement(sim.agents.iter().map(|agent| {
        let did = agent.key.did();
        tables
            .iter()
            .map(|t| t.contains(&did).then(|| t.score(&did)))
            .collect()
    }));
    sim.metrics.score_entry_agreement = entries;
    let agreeing = digests.values().copied().max().unwrap_or(0);
    sim.metrics.score_agreement =
        (!honest.is_empty()).then(|| agreeing as f64 / honest.len() as f64);
    sim.metrics.sybil_tier_max = sybil_max.map(|t| t.name().to_string());
    sim.metrics.tier_counts = tiers;
}

/// The share of entries that equal the most common entry of their column,
/// over columns (one per agent: each sampled node's score for it, `None`
/// where the node does not know the agent) that some node fills. While
/// records and evidence still spread, whole tables differ at nearly every
/// node; this says how much of them does.
fn entry_agreement(columns: impl Iterator<Item = Vec<Option<u32>>>) -> Option<f64> {
    let (mut matching, mut entries) = (0u64, 0u64);
    for mut column in columns {
        if column.iter().all(Option::is_none) {
            continue;
        }
        column.sort_unstable();
        let most = column.chunk_by(|a, b| a == b).map(<[_]>::len).max();
        matching += most.unwrap_or(0) as u64;
        entries += column.len() as u64;
    }
    (entries > 0).then(|| matching as f64 / entries as f64)
}

#[cfg(test)]
mod tests {
    use super::entry_agreement;

    #[test]
    fn entries_agree_with_their_columns_majority() {
        let columns = vec![
            vec![Some(500), Some(500), Some(500)],
            // Unknown at one node: two of three agree.
            vec![Some(300), None, Some(300)],
            // Nobody knows this agent: not counted.
            vec![None, None, None],
            // All different: one of three.
            vec![Some(1), Some(2), Some(3)],
        ];
        assert_eq!(entry_agreement(columns.into_iter()), Some(6.0 / 9.0));
        assert_eq!(entry_agreement(Vec::new().into_iter()), None);
        assert_eq!(entry_agreement(vec![vec![None]].into_iter()), None);
    }
}
