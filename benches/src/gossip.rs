//! The gossip core workload: one node's publish and forward paths with real
//! signatures, and the memory a node holds in a settled mesh.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use starling_gossip::wire::{Body, Frame, Gossip, ItemKind, PeerRef, ShuffleReply};
use starling_gossip::{Command, Config, Input, Node, Output, SignedMessage, Timer};
use starling_trust::evidence::record::AgentRecord;
use starling_trust::keys::Domain;
use starling_trust::{Evidence, Keypair, Mandate, MandateChain, Params, Record};

use crate::trust::{Mesh, mandate};

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct GossipFigures {
    /// Messages one node accepts and forwards per second: decode, verify the
    /// origin's signature and mandate, policy, rate, dedupe, forward.
    pub msgs_per_s: f64,
    /// Messages one node signs and pushes per second.
    pub publish_msgs_per_s: f64,
    /// Messages measured on each path.
    pub messages: usize,
    /// Resident memory per node in a settled mesh of `nodes` nodes with the
    /// default view sizes (5 active, 30 passive), everything included:
    /// views, caches, the evidence store with every agent's record, the
    /// policy document and the score table.
    pub state_bytes_per_node: f64,
    /// Nodes in the memory measurement.
    pub nodes: usize,
}

type GNode = Node<u32, StdRng>;

const START_MS: u64 = 1_800_000_000_000;

fn agent(mesh: &Mesh, org: &Keypair, org_link: &Mandate, i: usize) -> (Keypair, Arc<Record>) {
    let key = Mesh::agent_key(i);
    let link = Mandate::issue(
        org,
        &mandate(&mesh.genesis, key.did(), &["publish:*", "subscribe:*"]),
        Some(org_link),
    );
    let chain = MandateChain::new(vec![org_link.clone(), link]);
    let record = Record::create(
        &key,
        &mesh.genesis,
        START_MS,
        Evidence::Agent(AgentRecord {
            chain,
            kem_public_key: Default::default(),
            addrs: vec![],
        }),
    )
    .expect("bench agent record");
    (key, Arc::new(record))
}

fn new_node(mesh: &Mesh, key: Keypair, me: u32, record: Arc<Record>) -> GNode {
    Node::new(
        Config::default(),
        Arc::clone(&mesh.genesis),
        key,
        me,
        record,
        StdRng::seed_from_u64(u64::from(me)),
        START_MS,
    )
    .expect("bench node")
}

/// Delivers frames between nodes until quiet; ignores timers and dials.
fn pump(nodes: &mut [GNode], dids: &[starling_trust::Did], now: u64) {
    let mut queue: VecDeque<(u32, Input<u32>)> = VecDeque::new();
    loop {
        for i in 0..nodes.len() {
            while let Some(out) = nodes[i].poll_output() {
                match out {
                    Output::Send { to, frame } => queue.push_back((
                        to,
                        Input::Frame {
                            from: i as u32,
                            bytes: frame.into(),
                        },
                    )),
                    Output::Connect(to) => {
                        queue.push_back((
                            i as u32,
                            Input::Connected {
                                peer: to,
                                did: dids[to as usize],
                            },
                        ));
                        queue.push_back((
                            to,
                            Input::Connected {
                                peer: i as u32,
                                did: dids[i],
                            },
                        ));
                    }
                    _ => {}
                }
            }
        }
        if queue.is_empty() {
            return;
        }
        while let Some((to, input)) = queue.pop_front() {
            let _ = nodes[to as usize].handle(now, input);
        }
    }
}

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0
}

/// One receiver with five neighbours that knows every origin's agent
/// record, and a stream of fresh signed messages from those origins: the
/// forward path, one state-machine step at a time.
#[derive(Debug)]
pub struct ForwardPath {
    mesh: Mesh,
    agents: Vec<(Keypair, Arc<Record>)>,
    /// The receiver (0) and its neighbours (1..=5).
    ring: Vec<GNode>,
    /// Messages signed so far.
    next: usize,
}

/// Messages per ms of virtual time on the forward path.
const FORWARD_PER_MS: usize = 10;

impl ForwardPath {
    /// Builds the ring and teaches the receiver `origins` agent records.
    ///
    /// # Panics
    /// If `origins` is under 16 (the ring takes six).
    pub fn new(origins: usize) -> Self {
        assert!(origins >= 16, "the forward path needs at least 16 origins");
        let mesh = Mesh::new(Params::default());
        let (org, org_link) = mesh.org();
        let agents: Vec<(Keypair, Arc<Record>)> = (0..origins)
            .map(|i| agent(&mesh, &org, &org_link, i))
            .collect();
        let mut ring: Vec<GNode> = (0..6)
            .map(|i| {
                new_node(
                    &mesh,
                    agents[i].0.clone(),
                    i as u32,
                    Arc::clone(&agents[i].1),
                )
            })
            .collect();
        let dids: Vec<_> = agents.iter().map(|(k, _)| k.did()).collect();
        for i in 1..6u32 {
            let _ = ring[0].handle(
                START_MS,
                Input::Command(Command::Join { contacts: vec![i] }),
            );
        }
        pump(&mut ring, &dids, START_MS);
        for (_, record) in &agents[6..] {
            let _ = ring[0].handle(
                START_MS,
                Input::Command(Command::SubmitEvidence {
                    record: record.to_bytes().to_vec(),
                }),
            );
        }
        // The periodic tick refreshes the score table, which now knows every origin.
        let _ = ring[0].handle(START_MS, Input::Timer(Timer::Tick));
        while ring[0].poll_output().is_some() {}
        Self {
            mesh,
            agents,
            ring,
            next: 0,
        }
    }

    /// Signs the next `n` messages (origins in turn): (virtual time, neighbour, frame).
    pub fn frames(&mut self, n: usize) -> Vec<(u64, u32, Vec<u8>)> {
        let origins = self.agents.len() - 6;
        (self.next..self.next + n)
            .map(|k| {
                let (key, _) = &self.agents[6 + k % origins];
                let sent = START_MS + (k / FORWARD_PER_MS) as u64;
                let m = SignedMessage::sign(
                    key,
                    Domain::Message,
                    &self.mesh.genesis.id(),
                    "bench",
                    k as u64,
                    sent,
                    vec![7; 256],
                );
                let frame = Frame::new(Body::Gossip(Gossip {
                    kind: ItemKind::Message as i32,
                    round: 1,
                    item: m.raw,
                }))
                .encode();
                (sent, 1 + (k % 5) as u32, frame)
            })
            .inspect(|_| self.next += 1)
            .collect()
    }

    /// One step: the receiver handles one frame and its outputs are drained.
    pub fn step(&mut self, now: u64, from: u32, bytes: Vec<u8>) {
        let receiver = &mut self.ring[0];
        let _ = receiver.handle(now, Input::Frame { from, bytes });
        while receiver.poll_output().is_some() {}
    }

    /// Items the receiver accepted so far.
    pub fn accepted(&self) -> u64 {
        self.ring[0].stats().items_accepted
    }
}

/// Runs both measurements.
pub fn run(messages: usize, nodes: usize, progress: &mut dyn FnMut(&str)) -> GossipFigures {
    let origins = 2_000usize;
    progress(&format!("signing {origins} agent records"));
    let mut path = ForwardPath::new(origins);
    progress(&format!("signing {messages} messages"));
    let frames = path.frames(messages);

    progress("forward path");
    let accepted_before = path.accepted();
    let start = Instant::now();
    for (now, from, bytes) in frames {
        path.step(now, from, bytes);
    }
    let forward_s = start.elapsed().as_secs_f64();
    let accepted = path.accepted() - accepted_before;
    assert_eq!(
        accepted as usize,
        messages,
        "every bench message is accepted: {:?}",
        path.ring[0].stats()
    );

    progress("publish path");
    let publisher = &mut path.ring[1];
    let _ = publisher.handle(START_MS, Input::Timer(Timer::Tick));
    let start = Instant::now();
    let mut published = 0usize;
    for k in 0..messages / 10 {
        let now = START_MS + 1_000_000 + (k as u64) * 100;
        if publisher
            .handle(
                now,
                Input::Command(Command::Publish {
                    topic: "bench".into(),
                    payload: vec![7; 256],
                }),
            )
            .is_ok()
        {
            published += 1;
        }
        while publisher.poll_output().is_some() {}
    }
    let publish_s = start.elapsed().as_secs_f64();

    progress(&format!("memory of {nodes} settled nodes"));
    let mesh = &path.mesh;
    let (org, org_link) = mesh.org();
    let keys: Vec<(Keypair, Arc<Record>)> = (0..nodes)
        .map(|i| agent(mesh, &org, &org_link, origins + i))
        .collect();
    let dids: Vec<_> = keys.iter().map(|(k, _)| k.did()).collect();
    let before = rss_bytes();
    let mut mesh_nodes: Vec<GNode> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, r))| new_node(mesh, k.clone(), i as u32, Arc::clone(r)))
        .collect();
    for i in 1..nodes {
        let contact = (i * 7919 % i) as u32;
        let _ = mesh_nodes[i].handle(
            START_MS,
            Input::Command(Command::Join {
                contacts: vec![contact],
            }),
        );
        pump(&mut mesh_nodes, &dids, START_MS);
    }
    for i in 0..nodes {
        let peers = (1..=30)
            .map(|k| PeerRef {
                peer: (((i + k * 31) % nodes) as u32).to_le_bytes().to_vec(),
                did: dids[(i + k * 31) % nodes].as_bytes().to_vec(),
            })
            .collect();
        let from = mesh_nodes[i].active_view().first().copied().unwrap_or(0);
        let frame = Frame::new(Body::ShuffleReply(ShuffleReply { peers })).encode();
        let _ = mesh_nodes[i].handle(START_MS, Input::Frame { from, bytes: frame });
    }
    pump(&mut mesh_nodes, &dids, START_MS);
    let after = rss_bytes();
    std::hint::black_box(&mesh_nodes);
    GossipFigures {
        msgs_per_s: messages as f64 / forward_s,
        publish_msgs_per_s: published as f64 / publish_s,
        messages,
        state_bytes_per_node: (after - before) / nodes as f64,
        nodes,
    }
}
