//! Evidence snapshots that simulated nodes share.
//!
//! Every node starts from one shared roster and holds only what it adds
//! (see `EvidenceStore::overlay`). Evidence created during a run (new
//! agents, outcomes) would otherwise be held once per node for the rest of
//! the run. So every few simulated seconds each live node's store is
//! re-expressed on the snapshot taken the time before, by when everything
//! in it has spread, and a new snapshot is taken from a live node. The
//! re-expression is exact (`EvidenceStore::rebased`): no node answers,
//! scores or sends anything differently, and the trace is unchanged; only
//! what each node holds by itself shrinks to what it learnt since.

use std::cmp::Reverse;
use std::sync::Arc;

use starling_trust::{EvidenceStore, Succession};

use crate::engine::SimNode;

/// Simulated time between re-expressions.
pub(crate) const RESHARE_MS: u64 = 5_000;

/// The root every snapshot is taken over, the snapshot nodes last moved
/// to, and the one they move to next.
#[derive(Debug)]
pub(crate) struct Snapshots {
    root: Arc<EvidenceStore>,
    current: Arc<EvidenceStore>,
    next: Option<Arc<EvidenceStore>>,
    /// Off only to show that resharing changes nothing.
    on: bool,
}

impl Snapshots {
    /// Snapshots over `root`, the store new nodes start from.
    pub(crate) fn new(root: Arc<EvidenceStore>) -> Self {
        Self {
            current: Arc::clone(&root),
            root,
            next: None,
            on: true,
        }
    }

    /// Moves every node in `live` onto the pending snapshot where that
    /// leaves it holding less, then takes the next snapshot from the live
    /// node holding the most records (the lowest index among equals).
    pub(crate) fn reshare<'a>(&mut self, live: impl Iterator<Item = (u32, &'a mut SimNode)>) {
        if !self.on {
            return;
        }
        let succession = (self.next.take()).map(|next| {
            let from = std::mem::replace(&mut self.current, Arc::clone(&next));
            Succession::new(from, next)
        });
        let mut model: Option<(usize, u32, &SimNode)> = None;
        for (i, node) in live {
            if let Some(succession) = &succession {
                node.rebase_evidence(succession);
            }
            let len = node.trust().store().len();
            if model.is_none_or(|(best, at, _)| (len, Reverse(i)) > (best, Reverse(at))) {
                model = Some((len, i, node));
            }
        }
        self.next = model
            .map(|(_, _, node)| Arc::new(node.trust().store().rebased(Arc::clone(&self.root))));
    }
}

#[cfg(test)]
mod tests {
    use crate::{Scenario, Sim};

    /// Held by live nodes themselves, summed.
    fn held(sim: &Sim) -> usize {
        let nodes = sim.nodes.iter().flatten();
        nodes.map(|n| n.trust().store().difference_len()).sum()
    }

    /// Churn (new agents) and the Sybil ring (outcome evidence), each run
    /// with and without resharing.
    #[test]
    fn resharing_changes_nothing_but_what_nodes_hold() {
        for (name, extra) in [
            ("churn", "churn.arrivals_per_s=4"),
            ("sybil-ring", "outcomes.rate_per_s=20"),
        ] {
            let sets = [
                "nodes=120",
                "duration_s=25",
                "settle_s=3",
                "join_interval_ms=20",
                extra,
            ]
            .map(String::from);
            let scenario = Scenario::built_in_with(name, &sets).unwrap();
            let mut shared = Sim::new(scenario.clone());
            let mut own = Sim::new(scenario);
            own.snapshots.on = false;
            assert_eq!(shared.run(&mut |_, _, _| {}), None, "{name}");
            assert_eq!(own.run(&mut |_, _, _| {}), None, "{name}");
            assert_eq!(shared.trace, own.trace, "{name}");
            assert_eq!(shared.events, own.events, "{name}");
            let (shared, own) = (held(&shared), held(&own));
            assert!(
                shared * 4 < own,
                "{name}: held {shared} with resharing, {own} without"
            );
        }
    }
}
