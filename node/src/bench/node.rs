//! `starling bench node`: real nodes on loopback, measured (a benchmark,
//! never a test: it reports wall-clock figures and asserts nothing).
//!
//! - latency: publishers take turns (paced under the probationary ring's
//!   rate) and every other node records `now - sent_ms` on delivery.
//! - accept rate: the governor's node (verified ring) publishes a burst;
//!   one receiving node's deliveries per second over the burst, each
//!   message signature-checked, deduplicated and audited on the way.
//! - memory: the process's RSS growth divided by the number of nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use starling_node::AgentEvent;
use starling_node::localmesh::{LocalMesh, settle};
use tokio::sync::Mutex;

/// The figures.
#[derive(Debug, Serialize)]
pub(crate) struct NodeFigures {
    nodes: usize,
    messages: usize,
    deliveries: usize,
    latency_ms_p50: u64,
    latency_ms_p99: u64,
    latency_ms_max: u64,
    publish_errors: usize,
    last_publish_error: String,
    accept_msgs_per_s: f64,
    burst_messages: usize,
    burst_received: usize,
    rss_mb_per_node: f64,
    setup_ms: u64,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn run(
    nodes: usize,
    messages: usize,
    burst: usize,
    seed: u64,
) -> Result<NodeFigures> {
    let root = std::env::temp_dir().join(format!(
        "starling-bench-node-{}-{seed:x}",
        std::process::id()
    ));
    let started = Instant::now();
    let rss_before = rss_kb();
    let now = starling_node::files::now_ms();
    let mut mesh = LocalMesh::new(root.clone(), seed, now)?;
    mesh.add_governor_node(now, false).await?;
    for i in 1..nodes {
        mesh.add_agent_node(Some((i * 7 + 3) % i), now, false)
            .await?;
    }
    for i in 0..nodes {
        mesh.handle(i).subscribe("bench").await?;
        mesh.handle(i).subscribe("burst").await?;
    }
    let handles: Vec<_> = (0..nodes).map(|i| mesh.handle(i).clone()).collect();
    let formed = settle(&handles, nodes as u64, 30_000).await;
    anyhow::ensure!(formed, "the {nodes}-node overlay did not form in 30 s");
    let settle_s = std::env::var("STARLING_BENCH_SETTLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    tokio::time::sleep(Duration::from_secs(settle_s)).await;
    let rss_after = rss_kb();
    let setup_ms = started.elapsed().as_millis() as u64;

    // Latency: record every delivery of "bench" at every node.
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for h in &handles {
        let mut rx = h.events();
        let latencies = Arc::clone(&latencies);
        tasks.push(tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                if let AgentEvent::Message { topic, sent_ms, .. } = e
                    && topic == "bench"
                {
                    let l = starling_node::files::now_ms().saturating_sub(sent_ms);
                    latencies.lock().await.push(l);
                }
            }
        }));
    }
    let (mut publish_errors, mut last_error) = (0usize, String::new());
    for m in 0..messages {
        let from = 1 + m % (nodes - 1);
        if let Err(e) = handles[from]
            .publish("bench", format!("m{m}").as_bytes(), "bench")
            .await
        {
            publish_errors += 1;
            last_error = e.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if std::env::var_os("STARLING_BENCH_DEBUG").is_some() {
        let ids: Vec<String> = (0..nodes)
            .map(|i| mesh.did(i).to_peer_id().to_string())
            .collect();
        for (i, h) in handles.iter().enumerate() {
            let p = h
                .query(starling_node::Query::Peers)
                .await
                .unwrap_or_default();
            let indices = |view: &str| -> Vec<usize> {
                p[view]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| ids.iter().position(|id| x == id.as_str()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (active, passive) = (indices("active_view"), indices("passive_view"));
            #[allow(clippy::print_stderr)]
            {
                eprintln!("node {i}: active {active:?} passive {passive:?}");
            }
        }
        for (i, h) in handles.iter().enumerate() {
            let m = h
                .query(starling_node::Query::Metrics)
                .await
                .unwrap_or_default();
            let text = m.as_str().unwrap_or_default();
            let pick: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    l.contains("delivered_total")
                        || l.contains("dropped")
                        || l.contains("grafts")
                        || l.contains("active_view")
                        || l.contains("admitted_peers")
                        || l.contains("items_")
                })
                .collect();
            #[allow(clippy::print_stderr)]
            {
                eprintln!("node {i}: {pick:?}");
            }
        }
    }
    let mut lat = latencies.lock().await.clone();
    for t in &tasks {
        t.abort();
    }
    lat.sort_unstable();

    // Accept rate: a burst from the governor's node, counted at node 1.
    let mut rx = handles[1].events();
    let counter = tokio::spawn(async move {
        let (mut first, mut last, mut n) = (None, None, 0usize);
        while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
            if matches!(&e, AgentEvent::Message { topic, .. } if topic == "burst") {
                let t = Instant::now();
                first.get_or_insert(t);
                last = Some(t);
                n += 1;
            }
        }
        (first, last, n)
    });
    let publishers: Vec<_> = (0..4)
        .map(|k| {
            let h = handles[0].clone();
            tokio::spawn(async move {
                for m in (k..burst).step_by(4) {
                    let _ = h
                        .publish("burst", format!("b{m}").as_bytes(), "bench")
                        .await;
                }
            })
        })
        .collect();
    for p in publishers {
        let _ = p.await;
    }
    let (first, last, received) = counter.await.context("counter")?;
    let accept = match (first, last) {
        (Some(a), Some(b)) if received > 1 => {
            (received - 1) as f64 / b.duration_since(a).as_secs_f64().max(1e-6)
        }
        _ => 0.0,
    };
    mesh.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    Ok(NodeFigures {
        nodes,
        messages,
        deliveries: lat.len(),
        latency_ms_p50: percentile(&lat, 0.50),
        latency_ms_p99: percentile(&lat, 0.99),
        latency_ms_max: lat.last().copied().unwrap_or(0),
        publish_errors,
        last_publish_error: last_error,
        accept_msgs_per_s: (accept * 10.0).round() / 10.0,
        burst_messages: burst,
        burst_received: received,
        rss_mb_per_node: ((rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / nodes as f64
            * 10.0)
            .round()
            / 10.0,
        setup_ms,
    })
}
