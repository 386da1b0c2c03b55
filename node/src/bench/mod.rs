//! `starling bench`: measurements of the cores (benchmarks, never tests).

mod node;
mod vs_gossipsub;

use anyhow::Result;
use clap::Subcommand;

use starling_benches::vs::Workload;
use starling_node::files;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Real nodes on loopback: publish-to-delivery latency, accept rate, memory per node.
    Node {
        /// Nodes in the mesh.
        #[arg(long, default_value_t = 16)]
        nodes: usize,
        /// Paced messages for the latency measurement.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Messages in the accept-rate burst.
        #[arg(long, default_value_t = 2_000)]
        burst: usize,
        /// Seed of the identities.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// N Starling nodes against N rust-libp2p gossipsub nodes: same machine,
    /// run, seeded topology and workload; TCP + TLS + yamux on 127.0.0.1.
    VsGossipsub {
        /// Nodes in each system.
        #[arg(long, default_value_t = Workload::default().nodes)]
        nodes: usize,
        /// Messages published (by the nodes other than node 0, in turn).
        #[arg(long, default_value_t = Workload::default().messages)]
        messages: usize,
        /// Payload bytes per message.
        #[arg(long, default_value_t = Workload::default().size)]
        size: usize,
        /// Seed of the topology, identities and payloads.
        #[arg(long, default_value_t = Workload::default().seed)]
        seed: u64,
        /// Peers each node dials.
        #[arg(long, default_value_t = Workload::default().dials)]
        dials: usize,
        /// Time between publishes, in ms (kept under the probationary ring's
        /// publish rate, so Starling's rate limit never drops a message).
        #[arg(long, default_value_t = Workload::default().pace_ms)]
        pace_ms: u64,
        /// Warm-up after every node has a neighbour, before measuring.
        #[arg(long, default_value_t = Workload::default().settle_s)]
        settle_s: u64,
        /// Time after the last publish before the window closes.
        #[arg(long, default_value_t = Workload::default().drain_s)]
        drain_s: u64,
        /// Runs of each system: the figures are medians over them, beside
        /// each run's ratios.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Run one system in this process and print its figures (used by
        /// the parent run, which starts one child per system).
        #[arg(long, hide = true)]
        only: Option<vs_gossipsub::System>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Policy decide latency, score recompute, evidence merge and signature verification.
    Trust {
        /// Agents in the evidence workload (ten records each).
        #[arg(long, default_value_t = 100_000)]
        agents: usize,
        /// Rules in the policy.
        #[arg(long, default_value_t = 1_000)]
        rules: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One gossip node's accept-and-forward and publish rates, and memory per node.
    GossipCore {
        /// Messages on each path.
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        /// Nodes in the memory measurement.
        #[arg(long, default_value_t = 2_000)]
        nodes: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Node {
            nodes,
            messages,
            burst,
            seed,
            json,
        } => {
            anyhow::ensure!((4..=64).contains(&nodes), "--nodes must be 4..=64");
            anyhow::ensure!(
                messages >= 10 && burst >= 10,
                "--messages and --burst must be at least 10"
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let f = runtime.block_on(node::run(nodes, messages, burst, seed))?;
            match json {
                true => files::say(serde_json::to_string(&f)?),
                false => files::say(serde_json::to_string_pretty(&f)?),
            }
        }
        BenchCommand::VsGossipsub {
            nodes,
            messages,
            size,
            seed,
            dials,
            pace_ms,
            settle_s,
            drain_s,
            runs,
            only,
            json,
        } => {
            anyhow::ensure!((4..=64).contains(&nodes), "--nodes must be 4..=64");
            anyhow::ensure!((1..=25).contains(&runs), "--runs must be 1..=25");
            anyhow::ensure!(messages >= 10, "--messages must be at least 10");
            anyhow::ensure!(
                (starling_benches::vs::PAYLOAD_HEADER_BYTES..=60_000).contains(&size),
                "--size must be {}..=60000 bytes",
                starling_benches::vs::PAYLOAD_HEADER_BYTES
            );
            anyhow::ensure!(
                dials >= 1 && pace_ms >= 1,
                "--dials and --pace-ms must be at least 1"
            );
            let workload = starling_benches::vs::Workload {
                nodes,
                messages,
                size,
                seed,
                dials,
                pace_ms,
                settle_s,
                drain_s,
            };
            let text = match only {
                Some(system) => serde_json::to_string(&vs_gossipsub::run_one(system, &workload)?)?,
                None if json => serde_json::to_string(&vs_gossipsub::compare(&workload, runs)?)?,
                None => serde_json::to_string_pretty(&vs_gossipsub::compare(&workload, runs)?)?,
            };
            files::say(text);
        }
        BenchCommand::Trust {
            agents,
            rules,
            json,
        } => {
            anyhow::ensure!(agents >= 16, "--agents must be at least 16");
            anyhow::ensure!(rules >= 1, "--rules must be at least 1");
            #[allow(clippy::print_stderr)]
            let mut progress = |step: &str| eprintln!("bench trust: {step}");
            let f = starling_benches::trust::run(agents, rules, &mut progress);
            if json {
                files::say(serde_json::to_string(&f)?);
            } else {
                files::say(format!(
                    "policy decide ({} rules): p50 {} ns, p99 {} ns",
                    f.rules, f.decide_ns_p50, f.decide_ns_p99
                ));
                files::say(format!(
                    "score recompute ({} agents, {} records): {:.1} ms",
                    f.agents, f.records, f.score_recompute_ms
                ));
                files::say(format!(
                    "evidence merge: {:.0} records/s",
                    f.merge_records_per_s
                ));
                files::say(format!(
                    "signature verify: {:.0}/s single, {:.0}/s batched",
                    f.verify_sigs_per_s, f.verify_batch_sigs_per_s
                ));
                files::say(format!("(workload signed and built in {:.1} s)", f.build_s));
            }
        }
        BenchCommand::GossipCore {
            messages,
            nodes,
            json,
        } => {
            anyhow::ensure!(messages >= 100, "--messages must be at least 100");
            anyhow::ensure!(nodes >= 8, "--nodes must be at least 8");
            #[allow(clippy::print_stderr)]
            let mut progress = |step: &str| eprintln!("bench gossip-core: {step}");
            let f = starling_benches::gossip::run(messages, nodes, &mut progress);
            if json {
                files::say(serde_json::to_string(&f)?);
            } else {
                files::say(format!(
                    "accept and forward: {:.0} messages/s (real signatures)",
                    f.msgs_per_s
                ));
                files::say(format!("publish: {:.0} messages/s", f.publish_msgs_per_s));
                files::say(format!(
                    "state per node ({} nodes, 5 active, 30 passive): {:.0} bytes",
                    f.nodes, f.state_bytes_per_node
                ));
            }
        }
    }
    Ok(())
}
