//! `starling bench vs-gossipsub`: N Starling nodes against N rust-libp2p
//! gossipsub nodes, on one machine in one run, with the same seeded topology
//! and workload (see [`starling_benches::vs`] for what is measured and how).
//!
//! Each system runs in a child process of its own (this binary, with
//! `--only`), one after the other, so CPU time and socket counters belong to
//! one system and neither competes with the other for the two cores.
//!
//! Starling nodes listen on TCP only here (the node also offers QUIC, whose
//! bytes the TCP socket counters would not see), dial exactly the peers the
//! workload names, and run with their default gossip parameters.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;
use starling_benches::vs::{
    Deliveries, SystemCounts, SystemFigures, TOPIC, Window, Workload, now_us,
};
use starling_node::localmesh::{AGENT_SCOPE, LocalMesh, settle};
use starling_node::{AgentEvent, NodeHandle, NodeOptions, Query, RunningNode, start};

/// Which system a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum System {
    /// Starling nodes.
    Starling,
    /// rust-libp2p gossipsub nodes.
    Gossipsub,
}

/// The goals of issue 6, beside the figures.
const GOAL_RATIO_LATENCY_P99_MAX: f64 = 1.0;
const GOAL_RATIO_WIRE_BYTES_MAX: f64 = 1.0 / 3.0;

/// The report.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    workload: Workload,
    starling: SystemFigures,
    gossipsub: SystemFigures,
    /// Starling p99 / gossipsub p99.
    ratio_latency_p99: f64,
    /// Starling wire bytes per delivery / gossipsub's.
    ratio_wire_bytes: f64,
    goal_ratio_latency_p99_max: f64,
    goal_ratio_wire_bytes_max: f64,
    goal_latency_met: bool,
    goal_wire_bytes_met: bool,
}

/// Runs both systems in child processes and compares them.
pub(crate) fn compare(workload: &Workload) -> Result<Comparison> {
    let starling = child(System::Starling, workload)?;
    let gossipsub = child(System::Gossipsub, workload)?;
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            (a / b * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    };
    let ratio_latency_p99 = ratio(starling.latency_ms_p99, gossipsub.latency_ms_p99);
    let ratio_wire_bytes = ratio(
        starling.wire_bytes_per_delivery,
        gossipsub.wire_bytes_per_delivery,
    );
    Ok(Comparison {
        workload: workload.clone(),
        ratio_latency_p99,
        ratio_wire_bytes,
        goal_ratio_latency_p99_max: GOAL_RATIO_LATENCY_P99_MAX,
        goal_ratio_wire_bytes_max: (GOAL_RATIO_WIRE_BYTES_MAX * 1000.0).round() / 1000.0,
        goal_latency_met: ratio_latency_p99 <= GOAL_RATIO_LATENCY_P99_MAX,
        goal_wire_bytes_met: ratio_wire_bytes <= GOAL_RATIO_WIRE_BYTES_MAX,
        starling,
        gossipsub,
    })
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
        System::Starling => runtime.block_on(starling(workload)),
        System::Gossipsub => runtime.block_on(starling_benches::vs::gossipsub::run(workload)),
    }
}

/// Items received again: the broadcast's redundancy (messages, and any
/// evidence or policy item that arrives twice in the window).
const DUPLICATES: &str = "starling_items_duplicate_total";
/// Gossip frame bytes sent.
const BYTES_OUT: &str = "starling_bytes_out_total";

/// The sum over nodes of a counter in each node's metrics text.
async fn counter_sum(handles: &[NodeHandle], name: &str) -> u64 {
    let mut sum = 0;
    for h in handles {
        let text = h.query(Query::Metrics).await.unwrap_or_default();
        sum += text
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    sum
}

async fn starling(w: &Workload) -> Result<SystemFigures> {
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!(
        "starling-bench-vs-{}-{:x}",
        std::process::id(),
        w.seed
    ));
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(root.clone(), w.seed, now)?;
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut addrs: Vec<libp2p::Multiaddr> = Vec::new();
    for (i, peers) in w.dials().iter().enumerate() {
        let (key, chain) = match i {
            0 => (mesh.governor.clone(), mesh.governor_chain(now)),
            _ => mesh.new_agent(&AGENT_SCOPE, now),
        };
        let mut options = NodeOptions::new(root.join(format!("node-{i}")));
        options.genesis = Some((*mesh.genesis).clone());
        options.key = Some(key);
        options.chain = Some(chain);
        options.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        options.bootstrap = peers.iter().map(|p| addrs[*p].clone()).collect();
        options.seed = Some(w.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let node = start(options).await?;
        addrs.push(
            node.listen
                .first()
                .cloned()
                .context("a TCP listen address")?,
        );
        nodes.push(node);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    for h in &handles {
        h.subscribe(TOPIC).await?;
    }
    let formed = settle(&handles, handles.len() as u64, 30_000).await;
    anyhow::ensure!(formed, "the Starling overlay did not form in 30 s");
    tokio::time::sleep(Duration::from_secs(w.settle_s)).await;
    let setup_s = started.elapsed().as_secs_f64();

    let deliveries = Deliveries::default();
    let listeners: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut rx = h.events();
            let deliveries = deliveries.clone();
            tokio::spawn(async move {
                while let Ok(e) = rx.recv().await {
                    if let AgentEvent::Message {
                        topic, payload_hex, ..
                    } = e
                        && topic == TOPIC
                        && let Ok(payload) = hex::decode(payload_hex)
                    {
                        deliveries.record(i, &payload);
                    }
                }
            })
        })
        .collect();
    let duplicates_before = counter_sum(&handles, DUPLICATES).await;
    let bytes_before = counter_sum(&handles, BYTES_OUT).await;
    let window = Window::open()?;
    let mut publish_errors = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(w.pace_ms));
    for m in 0..w.messages {
        tick.tick().await;
        let payload = w.payload(m, now_us());
        if handles[w.publisher(m)]
            .publish(TOPIC, &payload, "bench")
            .await
            .is_err()
        {
            publish_errors += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(w.drain_s)).await;
    let totals = window.close()?;
    let counted = SystemCounts {
        duplicates: counter_sum(&handles, DUPLICATES)
            .await
            .saturating_sub(duplicates_before),
        protocol_bytes: Some(
            counter_sum(&handles, BYTES_OUT)
                .await
                .saturating_sub(bytes_before),
        ),
        publish_errors,
    };
    for l in listeners {
        l.abort();
    }
    for n in nodes {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(SystemFigures::new(w, &deliveries, totals, counted, setup_s))
}
