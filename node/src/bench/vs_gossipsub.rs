//! `starling bench vs-gossipsub`: N Starling nodes against N rust-libp2p
//! gossipsub nodes, on one machine in one run, with the same seeded topology
//! and workload (see [`starling_benches::vs`] for what is measured and how).
//!
//! Each system runs in a child process of its own (this binary, with
//! `--only`), one after the other, so CPU time and socket counters belong to
//! one system and neither competes with the other for the two cores.
//! The Starling side is `starling_node::vs`.

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;
use starling_benches::vs::{Repeated, SystemFigures, Workload};

/// Which system a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum System {
    /// Starling nodes.
    Starling,
    /// rust-libp2p gossipsub nodes.
    Gossipsub,
}

/// Runs both systems in child processes `runs` times, Starling first in
/// the even runs and gossipsub first in the odd ones, and compares them.
pub(crate) fn compare(workload: &Workload, runs: usize) -> Result<Repeated> {
    let mut figures = Vec::with_capacity(runs);
    for run in 0..runs {
        let (starling, gossipsub) = match run % 2 {
            0 => {
                let s = child(System::Starling, workload)?;
                (s, child(System::Gossipsub, workload)?)
            }
            _ => {
                let g = child(System::Gossipsub, workload)?;
                (child(System::Starling, workload)?, g)
            }
        };
        figures.push((starling, gossipsub));
    }
    Repeated::new(workload, &figures).context("no runs")
}

/// Runs this binary as `bench vs-gossipsub --only <system>` and reads its JSON.
fn child(system: System, w: &Workload) -> Result<SystemFigures> {
    let exe = std::env::current_exe().context("the path of this binary")?;
    let only = match system {
        System::Starling => "starling",
        System::Gossipsub => "gossipsub",
    };
    let out = std::process::Command::new(exe)
        .args(["bench", "vs-gossipsub", "--json", "--only", only])
        .args(["--nodes", &w.nodes.to_string()])
        .args(["--messages", &w.messages.to_string()])
        .args(["--size", &w.size.to_string()])
        .args(["--seed", &w.seed.to_string()])
        .args(["--dials", &w.dials.to_string()])
        .args(["--pace-ms", &w.pace_ms.to_string()])
        .args(["--settle-s", &w.settle_s.to_string()])
        .args(["--drain-s", &w.drain_s.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running the {only} child"))?;
    anyhow::ensure!(out.status.success(), "the {only} child failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("the {only} child printed {line:?}"))
}

/// Runs one system in this process.
pub(crate) fn run_one(system: System, workload: &Workload) -> Result<SystemFigures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match system {
        System::Starling => runtime.block_on(starling_node::vs::run(workload)),
        System::Gossipsub => runtime.block_on(starling_benches::vs::gossipsub::run(workload)),
    }
}
