//! The baseline: N rust-libp2p 0.57 gossipsub nodes with the default
//! gossipsub config, on TCP + TLS + yamux over 127.0.0.1, given the
//! [`Workload`]'s topology and messages.
//!
//! Each node is one swarm in one tokio task, driven by a bounded command
//! channel. Duplicates come from gossipsub's own metrics (messages received
//! before and after duplicate filtering).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MetricsConfig};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};

use super::{Deliveries, SystemCounts, SystemFigures, TOPIC, Window, Workload};

/// Commands a node's task takes.
#[derive(Debug)]
enum Cmd {
    Dial(Multiaddr),
    Publish(Vec<u8>, oneshot::Sender<bool>),
    MeshPeers(oneshot::Sender<usize>),
    Duplicates(oneshot::Sender<u64>),
}

/// Bound of each node's command queue.
const COMMANDS_MAX: usize = 64;

fn build(rng: &mut StdRng) -> Result<(Swarm<gossipsub::Behaviour>, Registry)> {
    let mut secret = [0u8; 32];
    rand::Rng::fill_bytes(rng, &mut secret);
    let key = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .context("ed25519 key from 32 bytes")?;
    let mut registry = Registry::default();
    let behaviour = gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(key.clone()),
        gossipsub::Config::default(),
    )
    .map_err(|e| anyhow::anyhow!("gossipsub behaviour: {e}"))?
    .with_metrics(&mut registry, MetricsConfig::default());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::tls::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|_| behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok((swarm, registry))
}

/// Copies received beyond the first: gossipsub's unfiltered receive count
/// minus its filtered one, summed over topics.
fn duplicates(registry: &Registry) -> u64 {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return 0;
    }
    let sum = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    sum("topic_msg_recv_counts_unfiltered_total").saturating_sub(sum("topic_msg_recv_counts_total"))
}

async fn node_task(
    index: usize,
    mut swarm: Swarm<gossipsub::Behaviour>,
    registry: Registry,
    mut commands: mpsc::Receiver<Cmd>,
    deliveries: Deliveries,
) {
    let topic = IdentTopic::new(TOPIC);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Cmd::Dial(addr)) => {
                    if let Err(e) = swarm.dial(addr) {
                        tracing::warn!(index, "gossipsub dial: {e}");
                    }
                }
                Some(Cmd::Publish(payload, reply)) => {
                    let ok = swarm.behaviour_mut().publish(topic.clone(), payload).is_ok();
                    let _ = reply.send(ok);
                }
                Some(Cmd::MeshPeers(reply)) => {
                    let _ = reply.send(swarm.behaviour().mesh_peers(&topic.hash()).count());
                }
                Some(Cmd::Duplicates(reply)) => {
                    let _ = reply.send(duplicates(&registry));
                }
            },
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event {
                    deliveries.record(index, &message.data);
                }
            }
        }
    }
}

async fn ask<T>(
    node: &mpsc::Sender<Cmd>,
    make: impl FnOnce(oneshot::Sender<T>) -> Cmd,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    node.send(make(tx)).await.ok()?;
    rx.await.ok()
}

/// Runs the baseline and measures it.
pub async fn run(workload: &Workload) -> Result<SystemFigures> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(workload.seed ^ 0x6773_7562);
    let deliveries = Deliveries::default();
    let dials = workload.dials();
    let mut nodes = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut tasks = Vec::new();
    for (i, peers) in dials.iter().enumerate() {
        let (mut swarm, registry) = build(&mut rng)?;
        swarm
            .behaviour_mut()
            .subscribe(&IdentTopic::new(TOPIC))
            .map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer = *swarm.local_peer_id();
        addrs.push(
            addr.with_p2p(peer)
                .map_err(|a| anyhow::anyhow!("bad address {a}"))?,
        );
        let (tx, rx) = mpsc::channel(COMMANDS_MAX);
        tasks.push(tokio::spawn(node_task(
            i,
            swarm,
            registry,
            rx,
            deliveries.clone(),
        )));
        for p in peers {
            tx.send(Cmd::Dial(addrs[*p].clone())).await?;
        }
        nodes.push(tx);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut formed = false;
    while !formed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        formed = true;
        for n in &nodes {
            formed &= ask(n, Cmd::MeshPeers).await.unwrap_or(0) > 0;
        }
    }
    anyhow::ensure!(formed, "the gossipsub mesh did not form in 30 s");
    tokio::time::sleep(Duration::from_secs(workload.settle_s)).await;
    let setup_s = started.elapsed().as_secs_f64();

    let mut duplicates_before = 0;
    for n in &nodes {
        duplicates_before += ask(n, Cmd::Duplicates).await.unwrap_or(0);
    }
    let window = Window::open()?;
    let nodes_ref = &nodes;
    let publish_errors = workload
        .publish_paced(|i, payload| async move {
            let taken = ask(&nodes_ref[i], |r| Cmd::Publish(payload, r)).await;
            taken.unwrap_or(false)
        })
        .await;
    let totals = window.close()?;
    let mut duplicates_after = 0;
    for n in &nodes {
        duplicates_after += ask(n, Cmd::Duplicates).await.unwrap_or(0);
    }
    drop(nodes);
    for t in tasks {
        let _ = t.await;
    }
    Ok(SystemFigures::new(
        workload,
        &deliveries,
        totals,
        SystemCounts {
            duplicates: duplicates_after.saturating_sub(duplicates_before),
            protocol_bytes: None,
            publish_errors,
        },
        setup_s,
    ))
}
