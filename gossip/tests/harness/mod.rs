//! A deterministic in-process network of gossip nodes on virtual time.
//!
//! Events are ordered by (time, sequence); every random choice comes from
//! one seeded RNG or from each node's RNG derived from the same seed, so a
//! run is a pure function of its seed. A failing test prints its seed.

#![allow(dead_code, unreachable_pub)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use starling_gossip::wire::{Body, Frame};
use starling_gossip::{Command, Config, Delivery, Event, Input, Node, Output};
use starling_trust::evidence::record::AgentRecord;
use starling_trust::{
    Evidence, Genesis, GenesisSpec, Keypair, Mandate, MandateChain, MandateSpec, Params, Record,
    Scope,
};

pub const START_MS: u64 = 1_700_000_000_000;
const YEAR_MS: u64 = 365 * 24 * 3_600_000;

/// The identities of a test mesh.
pub struct Mesh {
    pub genesis: Arc<Genesis>,
    pub governor: Keypair,
    pub org: Keypair,
    pub org_link: Mandate,
}

impl Mesh {
    pub fn new() -> Self {
        let governor = Keypair::from_secret_bytes(&[1; 32]);
        let spec = GenesisSpec {
            name: "harness".into(),
            other_governors: vec![],
            created_ms: START_MS,
            params: Params::default(),
        };
        let genesis = Arc::new(Genesis::create(&governor, spec).unwrap());
        let org = Keypair::from_secret_bytes(&[2; 32]);
        let scope = ["publish:*", "subscribe:*", "vouch", "delegate(2)"];
        let org_link = Mandate::issue(&governor, &mandate_spec(&genesis, org.did(), &scope), None);
        Self {
            genesis,
            governor,
            org,
            org_link,
        }
    }

    /// Agent `i`'s key and signed agent record, with this scope.
    pub fn agent(&self, i: u32, scope: &[&str]) -> (Keypair, Arc<Record>) {
        self.agent_of(&self.org, &self.org_link, i, scope)
    }

    /// A second organisation's key and mandate, from the governor.
    pub fn other_org(&self, seed: u8) -> (Keypair, Mandate) {
        let org = Keypair::from_secret_bytes(&[seed; 32]);
        let scope = ["publish:*", "subscribe:*", "vouch", "delegate(2)"];
        let link = Mandate::issue(
            &self.governor,
            &mandate_spec(&self.genesis, org.did(), &scope),
            None,
        );
        (org, link)
    }

    /// Agent `i` with a mandate from `org`.
    pub fn agent_of(
        &self,
        org: &Keypair,
        org_link: &Mandate,
        i: u32,
        scope: &[&str],
    ) -> (Keypair, Arc<Record>) {
        let mut secret = [7u8; 32];
        secret[..4].copy_from_slice(&i.to_le_bytes());
        let key = Keypair::from_secret_bytes(&secret);
        let link = Mandate::issue(
            org,
            &mandate_spec(&self.genesis, key.did(), scope),
            Some(org_link),
        );
        let chain = MandateChain::new(vec![org_link.clone(), link]);
        let record = Record::create(
            &key,
            &self.genesis,
            START_MS,
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: Default::default(),
                addrs: vec![],
            }),
        )
        .unwrap();
        (key, Arc::new(record))
    }
}

pub fn mandate_spec(
    genesis: &Genesis,
    subject: starling_trust::Did,
    scope: &[&str],
) -> MandateSpec {
    MandateSpec {
        mesh: genesis.id(),
        subject,
        scope: Scope::parse(scope).unwrap(),
        not_before_ms: START_MS - 1_000,
        expires_ms: START_MS + YEAR_MS,
        nonce: [3; 16],
    }
}

#[derive(Debug)]
enum Scheduled {
    Input(u32, Input<u32>),
    /// A connection closes after the frames already sent on it arrive.
    Close(u32, u32),
}

/// The simulated network.
pub struct Net {
    pub seed: u64,
    pub now: u64,
    pub mesh: Mesh,
    pub nodes: Vec<Option<Node<u32, StdRng>>>,
    pub keys: Vec<Keypair>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    pending: BTreeMap<usize, Scheduled>,
    seq: u64,
    links: BTreeSet<(u32, u32)>,
    /// Pairs that cannot reach each other: frames between them vanish
    /// without a word and dials fail, as across a silent partition.
    severed: BTreeSet<(u32, u32)>,
    rng: StdRng,
    pub latency_ms: u64,
    /// Probability that a broadcast frame (gossip, ihave, graft) is lost.
    pub loss: f64,
    pub deliveries: Vec<(u32, u64, Delivery)>,
    pub events: Vec<(u32, u64, Event<u32>)>,
    pub config: Config,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            now: START_MS,
            mesh: Mesh::new(),
            nodes: Vec::new(),
            keys: Vec::new(),
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            links: BTreeSet::new(),
            severed: BTreeSet::new(),
            rng: StdRng::seed_from_u64(seed),
            latency_ms: 25,
            loss: 0.0,
            deliveries: Vec::new(),
            events: Vec::new(),
            config: Config::default(),
        }
    }

    /// Adds a node with this scope; returns its index.
    pub fn add_node(&mut self, scope: &[&str]) -> u32 {
        let i = self.nodes.len() as u32;
        let (key, record) = self.mesh.agent(i, scope);
        self.add_node_with(key, record)
    }

    pub fn add_node_with(&mut self, key: Keypair, record: Arc<Record>) -> u32 {
        let i = self.nodes.len() as u32;
        let rng = StdRng::seed_from_u64(
            self.seed ^ (u64::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let node = Node::new(
            self.config.clone(),
            Arc::clone(&self.mesh.genesis),
            key.clone(),
            i,
            record,
            rng,
            self.now,
        )
        .unwrap_or_else(|e| panic!("seed {}: node {i}: {e}", self.seed));
        self.nodes.push(Some(node));
        self.keys.push(key);
        self.drain(i);
        i
    }

    fn schedule(&mut self, at: u64, node: u32, input: Input<u32>) {
        self.seq += 1;
        let slot = self.seq as usize;
        self.pending.insert(slot, Scheduled::Input(node, input));
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    /// Feeds an input to a node now and performs its outputs.
    pub fn input(
        &mut self,
        node: u32,
        input: Input<u32>,
    ) -> Result<Option<[u8; 32]>, starling_gossip::CommandError> {
        let now = self.now;
        let Some(n) = self.nodes[node as usize].as_mut() else {
            return Ok(None);
        };
        let result = n.handle(now, input);
        self.drain(node);
        result
    }

    pub fn command(
        &mut self,
        node: u32,
        command: Command<u32>,
    ) -> Result<Option<[u8; 32]>, starling_gossip::CommandError> {
        self.input(node, Input::Command(command))
    }

    fn is_broadcast_frame(frame: &[u8]) -> bool {
        matches!(
            Frame::decode_capped(frame, usize::MAX),
            Ok(Body::Gossip(_) | Body::IHave(_) | Body::Graft(_))
        )
    }

    fn drain(&mut self, node: u32) {
        loop {
            let Some(n) = self.nodes[node as usize].as_mut() else {
                return;
            };
            let Some(output) = n.poll_output() else {
                return;
            };
            let at = self.now + self.latency_ms;
            match output {
                Output::Send { to, frame } => {
                    let pair = (node.min(to), node.max(to));
                    if !self.links.contains(&pair) || self.severed.contains(&pair) {
                        continue;
                    }
                    if self.loss > 0.0
                        && Self::is_broadcast_frame(&frame)
                        && self.rng.random_bool(self.loss)
                    {
                        continue;
                    }
                    self.schedule(
                        at,
                        to,
                        Input::Frame {
                            from: node,
                            bytes: frame.into(),
                        },
                    );
                }
                Output::Connect(to) => {
                    let up = self.nodes.get(to as usize).is_some_and(Option::is_some);
                    if !up || self.severed.contains(&(node.min(to), node.max(to))) {
                        self.schedule(at, node, Input::Disconnected { peer: to });
                        continue;
                    }
                    if self.links.insert((node.min(to), node.max(to))) {
                        let (a, b) = (self.keys[node as usize].did(), self.keys[to as usize].did());
                        self.schedule(at, node, Input::Connected { peer: to, did: b });
                        self.schedule(at, to, Input::Connected { peer: node, did: a });
                    }
                }
                Output::Disconnect(to) => {
                    self.seq += 1;
                    let slot = self.seq as usize;
                    self.pending.insert(slot, Scheduled::Close(node, to));
                    self.queue.push(Reverse((at, self.seq, slot)));
                }
                Output::SetTimer { at_ms, timer } => {
                    self.schedule(at_ms.max(self.now), node, Input::Timer(timer))
                }
                Output::Deliver(d) => self.deliveries.push((node, self.now, d)),
                Output::DeliverDirect { .. } => {}
                Output::Event(e) => self.events.push((node, self.now, e)),
            }
        }
    }

    /// Runs events until `until` (virtual ms).
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse((at, _, slot))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let (node, input) = match self.pending.remove(&slot) {
                Some(Scheduled::Input(node, input)) => (node, input),
                Some(Scheduled::Close(from, to)) => {
                    if !self.links.remove(&(from.min(to), from.max(to))) {
                        continue;
                    }
                    (to, Input::Disconnected { peer: from })
                }
                None => continue,
            };
            if let Input::Frame { from, .. } = &input
                && !self.links.contains(&(node.min(*from), node.max(*from)))
            {
                continue;
            }
            let _ = self.input(node, input);
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    /// Crashes a node: its connections end.
    pub fn crash(&mut self, node: u32) {
        self.nodes[node as usize] = None;
        let peers: Vec<(u32, u32)> = self
            .links
            .iter()
            .copied()
            .filter(|(a, b)| *a == node || *b == node)
            .collect();
        for (a, b) in peers {
            self.links.remove(&(a, b));
            let other = if a == node { b } else { a };
            self.schedule(
                self.now + self.latency_ms,
                other,
                Input::Disconnected { peer: node },
            );
        }
    }

    /// Splits the nodes into those `on_one_side` and the rest, silently:
    /// open connections stay open and carry nothing across.
    pub fn partition(&mut self, on_one_side: impl Fn(u32) -> bool) {
        let n = self.nodes.len() as u32;
        for a in 0..n {
            for b in a + 1..n {
                if on_one_side(a) != on_one_side(b) {
                    self.severed.insert((a, b));
                }
            }
        }
    }

    /// Ends a partition.
    pub fn heal(&mut self) {
        self.severed.clear();
    }

    pub fn has_link(&self, a: u32, b: u32) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    pub fn node(&self, i: u32) -> &Node<u32, StdRng> {
        self.nodes[i as usize].as_ref().unwrap()
    }

    pub fn live(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(|i| self.nodes[*i as usize].is_some())
    }

    /// Builds an `n`-node mesh: each node joins through a random earlier one,
    /// all subscribe to `topic`, then the overlay settles.
    pub fn grow(&mut self, n: u32, topic: &str) {
        for i in 0..n {
            self.add_node(&["publish:*", "subscribe:*"]);
            if i > 0 {
                let contact = self.rng.random_range(0..i);
                self.command(
                    i,
                    Command::Join {
                        contacts: vec![contact],
                    },
                )
                .unwrap();
            }
            self.command(
                i,
                Command::Subscribe {
                    topic: topic.into(),
                },
            )
            .unwrap();
            self.run_for(100);
        }
        self.run_for(20_000);
    }

    pub fn random_live(&mut self) -> u32 {
        let live: Vec<u32> = self.live().collect();
        live[self.rng.random_range(0..live.len())]
    }

    /// Publishes from `node` and returns the message id.
    pub fn publish(&mut self, node: u32, topic: &str, payload: &[u8]) -> [u8; 32] {
        let seed = self.seed;
        self.command(
            node,
            Command::Publish {
                topic: topic.into(),
                payload: payload.to_vec(),
            },
        )
        .unwrap_or_else(|e| panic!("seed {seed}: publish from {node}: {e}"))
        .unwrap_or_else(|| panic!("seed {seed}: publish returned no id"))
    }

    /// How many live nodes (other than the origin) delivered message `id`.
    pub fn delivered_count(&self, id: &[u8; 32]) -> usize {
        let receivers: BTreeSet<u32> = self
            .deliveries
            .iter()
            .filter(|(n, _, d)| &d.id == id && self.nodes[*n as usize].is_some())
            .map(|(n, _, _)| *n)
            .collect();
        receivers.len()
    }
}
