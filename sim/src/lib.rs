//! The Starling simulator: a deterministic discrete-event engine that runs
//! the real gossip and trust cores for 10^3..10^6 nodes, with latency,
//! loss, partitions, churn, mass failure and adversaries, and reports the
//! figures a paper needs. A run is a pure function of (scenario, seed): its
//! trace hash proves it.

#![deny(missing_docs)]

mod adversary;
mod calendar;
mod engine;
mod metrics;
mod report;
pub mod scenario;
mod snapshots;
pub mod sweep;
mod trust_figures;
mod workload;
mod world;

use std::time::Instant;

pub use adversary::AttackFigures;
pub use engine::Sim;
pub use metrics::Report;
pub use report::{moore_hops, peak_rss_mb};
pub use scenario::{BUILT_INS, Scenario, ScenarioError};

/// Runs a scenario to the end (or a limit) and reports.
/// `progress` hears (simulated s, total simulated s, events).
pub fn run(scenario: Scenario, progress: &mut dyn FnMut(f64, f64, u64)) -> (Sim, Report) {
    let wall = Instant::now();
    let mut sim = Sim::new(scenario);
    let stopped = sim.run(progress);
    let report = sim.report(wall.elapsed().as_secs_f64(), stopped);
    (sim, report)
}
