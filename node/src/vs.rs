//! The Starling side of `starling bench vs-gossipsub` (see
//! [`starling_benches::vs`] for what is measured and how): N nodes on
//! 127.0.0.1 over TCP only (the node also offers QUIC, whose bytes the TCP
//! socket counters would not see), dialling exactly the peers the workload
//! names, with their default gossip parameters. In the library so that the
//! `starling` binary and the plain bench in `benches/` run the same code.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use starling_benches::vs::{Deliveries, SystemCounts, SystemFigures, TOPIC, Window, Workload};

use crate::localmesh::{AGENT_SCOPE, LocalMesh, counter_sum, settle};
use crate::{AgentEvent, NodeHandle, NodeOptions, RunningNode, start};

/// Items received again: the broadcast's redundancy (messages, and any
/// evidence or policy item that arrives twice in the window).
const DUPLICATES: &str = "starling_items_duplicate_total";
/// Gossip frame bytes sent.
const BYTES_OUT: &str = "starling_bytes_out_total";

/// Runs `w` on Starling nodes in this process (each with its own event
/// loop on the current tokio runtime) and measures it.
///
/// # Errors
/// A node that does not start, or an overlay that does not form in 30 s.
pub async fn run(w: &Workload) -> Result<SystemFigures> {
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!(
        "starling-bench-vs-{}-{:x}",
        std::process::id(),
        w.seed
    ));
    let now = crate::files::now_ms();
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
    let handles_ref = &handles;
    let publish_errors = w
        .publish_paced(|i, payload| async move {
            let taken = handles_ref[i].publish(TOPIC, &payload, "bench").await;
            taken.is_ok()
        })
        .await;
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
