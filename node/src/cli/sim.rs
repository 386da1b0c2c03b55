//! `starling sim`: the deterministic simulator.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use starling_sim::{BUILT_INS, Scenario};

use starling_node::files;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SimArgs {
    #[command(subcommand)]
    sweep: Option<SweepCommand>,
    /// A scenario file (TOML) or a built-in: steady, churn, partition-heal,
    /// mass-failure, sybil-ring, kill-switch, policy-rollout, attacks, million.
    scenario: Option<String>,
    /// Root seed (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a scenario field, e.g. --set nodes=100000 --set network.loss=0.1
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Write CSV time series and SVG plots here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SweepCommand {
    /// Run a parameter grid on every core; one CSV row per run.
    Sweep {
        /// The sweep file.
        file: PathBuf,
    },
}

fn scenario_of(name: &str, sets: &[String]) -> Result<Scenario> {
    if BUILT_INS.iter().any(|(n, _)| *n == name) {
        return Ok(Scenario::built_in_with(name, sets)?);
    }
    let text = std::fs::read_to_string(name).with_context(|| {
        let names: Vec<&str> = BUILT_INS.iter().map(|(n, _)| *n).collect();
        format!(
            "`{name}` is neither a scenario file nor a built-in ({})",
            names.join(", ")
        )
    })?;
    Ok(Scenario::from_toml(&text, sets)?)
}

pub(crate) fn run(args: SimArgs) -> Result<()> {
    with_huge_pages();
    if let Some(SweepCommand::Sweep { file }) = args.sweep {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let runs = starling_sim::sweep::plan(&text, &|path| {
            std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
        })?;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        for (i, (sets, report)) in starling_sim::sweep::run(runs, threads).iter().enumerate() {
            let (header, row) = starling_sim::sweep::csv_row(sets, report);
            if i == 0 {
                files::say(header);
            }
            files::say(row);
        }
        return Ok(());
    }
    let name = args
        .scenario
        .context("name a scenario file or built-in (for example: starling sim steady)")?;
    let mut sets = args.sets;
    if let Some(seed) = args.seed {
        sets.push(format!("seed={seed}"));
    }
    let scenario = scenario_of(&name, &sets)?;
    let mut last_shown = std::time::Instant::now();
    #[allow(clippy::print_stderr)]
    let mut progress = |t: f64, total: f64, events: u64| {
        if last_shown.elapsed().as_millis() >= 500 {
            last_shown = std::time::Instant::now();
            let width = 30;
            let done = ((t / total.max(1e-9)) * width as f64).min(width as f64) as usize;
            eprint!(
                "\rsim [{}{}] {t:.1}/{total:.0} s simulated, {events} events",
                "#".repeat(done),
                ".".repeat(width - done)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let (sim, report) = starling_sim::run(scenario, &mut progress);
    #[allow(clippy::print_stderr)]
    {
        eprintln!();
    }
    if let Some(dir) = &args.out {
        sim.write_out(dir)
            .with_context(|| format!("cannot write {}", dir.display()))?;
    }
    if args.json {
        files::say(serde_json::to_string(&report)?);
    } else {
        files::say(text(&report));
    }
    Ok(())
}

/// Runs this command again with glibc told to back its heap with
/// transparent huge pages, unless `GLIBC_TUNABLES` is set already (by the
/// user, or by this function in the parent: it runs once).
///
/// A simulation touches a million small node states in random order, so
/// most of its memory accesses miss the TLB. Linux in its common `madvise`
/// mode gives huge pages only to memory that asks, and glibc (2.35 and
/// later) asks for its heap only when this tunable, read at start-up, says
/// so: `sim million` at 5x10^4 nodes ran 19% to 28% more events a second
/// with it, in 0.6% more memory, with the same trace. Older glibc ignores
/// the tunable.
/// `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` opts out.
fn with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
            .exec();
        // `exec` returns only when it failed: run on without huge pages.
        tracing::debug!("running without huge pages: {error}");
    }
}

fn text(r: &starling_sim::Report) -> String {
    let mut lines = vec![
        format!(
            "scenario {} — {} nodes ({} in all), seed {}, trace {}",
            r.scenario, r.nodes, r.nodes_total, r.seed, r.trace_hash
        ),
        format!(
            "messages {}, delivered {:.4}%",
            r.messages,
            r.delivered_ratio * 100.0
        ),
        format!(
            "latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            r.latency_ms_p50, r.latency_ms_p90, r.latency_ms_p99, r.latency_ms_max
        ),
        format!(
            "last delivery hop: max {}, mean {:.1} (Moore bound {})",
            r.ldh_max, r.ldh_mean, r.moore_hops
        ),
        format!(
            "relative message redundancy {:.3}, {:.0} bytes sent per node",
            r.rmr, r.bytes_per_node
        ),
    ];
    if let Some(ratio) = r.last_delivery_vs_shortest {
        lines.push(format!(
            "last delivery latency / shortest path over the overlay: {ratio:.2}"
        ));
    }
    for (item, reach) in &r.reach_ms {
        match reach {
            Some(ms) => lines.push(format!("{item} reached 99.9% of live nodes in {ms} ms")),
            None => lines.push(format!("{item} did not reach 99.9% of live nodes")),
        }
    }
    if let Some(h) = r.heal_ms {
        lines.push(format!(
            "after the partition healed, the revocation reached 99.9% in {h} ms"
        ));
    }
    if let Some(t) = &r.sybil_tier_max {
        lines.push(format!("highest tier any Sybil reached: {t}"));
    }
    lines.push(format!(
        "score tables computed in full: {}",
        r.score_computations
    ));
    if let Some(a) = r.score_agreement {
        lines.push(format!(
            "score tables agreeing: {:.1}% of sampled nodes",
            a * 100.0
        ));
    }
    if let Some(a) = r.score_entry_agreement {
        lines.push(format!(
            "score entries agreeing: {:.2}% of sampled nodes' entries",
            a * 100.0
        ));
    }
    if let Some(a) = &r.attacks {
        lines.push(format!(
            "spam: {} messages sent, {:.1} deliveries each; forged: {} sent, {} delivered; \
             replayed: {} sent, {} delivered; attackers cut off by {:.0}% of their neighbours",
            a.spam_sent,
            a.spam_deliveries_per_message,
            a.forged_sent,
            a.forged_delivered,
            a.replayed_sent,
            a.replayed_delivered,
            a.attackers_cut_off * 100.0
        ));
        lines.push(format!(
            "eclipse: attackers held at most {:.0}% of the victim's active view \
             ({} slots); whitewashing: highest tier before {}, after {}",
            a.eclipse_share_max * 100.0,
            a.eclipse_slots_max,
            a.whitewash_tier_before.as_deref().unwrap_or("-"),
            a.whitewash_tier_after.as_deref().unwrap_or("-")
        ));
    }
    lines.push(format!(
        "{} events in {:.1} s ({:.0}/s), peak {:.0} MiB ({:.0} bytes/node){}",
        r.events,
        r.wall_s,
        r.events_per_s,
        r.peak_rss_mb,
        r.bytes_per_node_rss,
        r.stopped
            .as_ref()
            .map(|s| format!(" — stopped early: {s}"))
            .unwrap_or_default()
    ));
    lines.join("\n")
}
