//! The discrete-event engine: one queue of events ordered by (virtual time,
//! sequence), nodes in a `Vec` indexed by `u32`, each node's RNG derived
//! from (root seed, node id). It drives the unchanged gossip and trust
//! cores: every frame is the bytes the real codec produced, every
//! signature is real. Nodes share pure results (decoded items, policy
//! versions, score tables) through one [`Memo`], so a signature is verified
//! once per run rather than once per node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};
use starling_gossip::{Command, Config, Event, Input, Memo, Node, Output, Timer};
use starling_trust::{Did, EvidenceStore};

use crate::calendar::Calendar;
use crate::metrics::{Metrics, Published, Spread};
use crate::scenario::{Latency, Scenario, Sessions};
use crate::snapshots::{RESHARE_MS, Snapshots};
use crate::world::{Agent, START_MS, World};

pub(crate) type SimNode = Node<u32, SmallRng>;

#[derive(Debug)]
pub(crate) enum Ev {
    Input(u32, Input<u32>),
    /// A frame on connection `epoch` of a link (dropped if it closed
    /// meanwhile); its buffer is shared by every copy of a pushed item.
    Frame {
        to: u32,
        from: u32,
        epoch: u64,
        bytes: Bytes,
    },
    Close(u32, u32, u64),
    Spawn(u32),
    Publish(usize, u32),
    Arrive,
    Depart(u32),
    MassFailure,
    PartitionStart,
    PartitionHeal,
    Revoke,
    Kill,
    KilledPublishes,
    PolicyChange,
    Outcome,
    SybilRing,
    AttackStart,
    Spam,
    Inject,
    Eclipse,
    Sample,
}

/// Whether a frame is a Gossip frame carrying an application message, read
/// from its first bytes: version field, the Gossip body tag (11, length
/// delimited: 0x5a), the body's varint length, then the body, whose `kind`
/// field (tag 1: 0x08) is omitted exactly when the kind is Message (0).
fn is_message_gossip(frame: &[u8]) -> bool {
    if frame.get(2) != Some(&0x5a) {
        return false;
    }
    let length_bytes = frame[3..].iter().take_while(|b| **b & 0x80 != 0).count() + 1;
    frame.get(3 + length_bytes) != Some(&0x08)
}

fn link_key(a: u32, b: u32) -> u64 {
    (u64::from(a.min(b)) << 32) | u64::from(a.max(b))
}

/// An open connection: one entry for everything a frame on it looks up.
#[derive(Debug, Default, Clone, Copy)]
struct Link {
    /// Which connection of the link: frames of an earlier one are dropped.
    epoch: u64,
    /// When the last frame sent each way arrives (see [`direction`]):
    /// frames on a connection arrive in order, as over TCP.
    arrives: [u64; 2],
}

/// One direction of a link: which of [`Link::arrives`] it keeps.
fn direction(from: u32, to: u32) -> usize {
    usize::from(from > to)
}

/// A simulation in progress.
pub struct Sim {
    pub(crate) sc: Scenario,
    pub(crate) world: World,
    rng: SmallRng,
    pub(crate) now: u64,
    queue: Calendar<Ev>,
    /// Boxed: a departed node's slot costs a pointer, and the vector grows
    /// without copying node state.
    pub(crate) nodes: Vec<Option<Box<SimNode>>>,
    pub(crate) agents: Vec<Agent>,
    live: Vec<u32>,
    live_at: FxHashMap<u32, usize>,
    /// Open connections, by link key.
    links: FxHashMap<u64, Link>,
    /// Links with a close in flight.
    closing: FxHashSet<u64>,
    next_epoch: u64,
    coords: Vec<(f32, f32)>,
    side: Vec<bool>,
    /// When each node's current session started: a message counts as
    /// delivered to the nodes live when it was sent, once each (a node that
    /// joins or returns later may receive it too, and counting those put
    /// the delivered ratio above 1 under heavy churn).
    session_ms: Vec<u64>,
    partitioned: bool,
    pub(crate) memo: Arc<Memo>,
    pub(crate) snapshots: Snapshots,
    config: Arc<Config>,
    pub(crate) metrics: Metrics,
    pub(crate) trace: u64,
    pub(crate) events: u64,
    pub(crate) workload_ms: u64,
    topics: Vec<String>,
    outcome_counts: FxHashMap<(u32, u32), (u64, u64)>,
    killed: Option<u32>,
    spread_ids: HashMap<[u8; 32], &'static str>,
    policy_started: bool,
    pub(crate) heal_at: Option<u64>,
    /// Agents revoked or terminated: their nodes are cut off, so they are
    /// not counted among the nodes an item must reach.
    cut_off: std::collections::BTreeSet<u32>,
    pub(crate) adversaries: crate::adversary::Adversaries,
    /// Nodes that left and may return (churn).
    departed: Vec<u32>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sim({} nodes at {} ms)",
            self.nodes.len(),
            self.now - START_MS
        )
    }
}

impl Sim {
    /// Prepares a run: identities for the initial nodes, and the timeline.
    pub fn new(sc: Scenario) -> Self {
        let world = World::new(sc.seed);
        let memo = Memo::new(Arc::clone(&world.genesis));
        let root = Arc::new(EvidenceStore::new(Arc::clone(&world.genesis)));
        let defaults = Config::default();
        let config = Config {
            score_refresh_ms: 5_000,
            message_age_max_ms: sc
                .attacks
                .as_ref()
                .and_then(|a| a.replay_window_s)
                .map_or(defaults.message_age_max_ms, |s| (s * 1000.0) as u64),
            ..defaults
        };
        let mut sim = Self {
            rng: SmallRng::seed_from_u64(sc.seed),
            world,
            now: START_MS,
            queue: Calendar::default(),
            nodes: Vec::new(),
            agents: Vec::new(),
            live: Vec::new(),
            live_at: FxHashMap::default(),
            links: FxHashMap::default(),
            closing: FxHashSet::default(),
            next_epoch: 0,
            coords: Vec::new(),
            side: Vec::new(),
            session_ms: Vec::new(),
            partitioned: false,
            memo,
            snapshots: Snapshots::new(root),
            config: Arc::new(config),
            metrics: Metrics::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            events: 0,
            workload_ms: 0,
            topics: sc.publishers.iter().map(|p| p.topic.clone()).collect(),
            outcome_counts: FxHashMap::default(),
            killed: None,
            spread_ids: HashMap::new(),
            policy_started: false,
            heal_at: None,
            cut_off: std::collections::BTreeSet::new(),
            adversaries: Default::default(),
            departed: Vec::new(),
            sc,
        };
        sim.plan();
        sim
    }

    fn at(&self, seconds: f64) -> u64 {
        self.workload_ms + (seconds * 1000.0) as u64
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn plan(&mut self) {
        let n = self.sc.nodes;
        let sybils = self
            .sc
            .sybils
            .as_ref()
            .map(|s| (f64::from(n) * s.fraction) as u32)
            .unwrap_or(0);
        let honest_fraction = self
            .sc
            .outcomes
            .as_ref()
            .map(|o| o.honest_fraction)
            .unwrap_or(1.0);
        for i in 0..n {
            let sybil = i >= n - sybils;
            let honest = !sybil && self.rng.random_bool(honest_fraction);
            let agent = self.world.agent(i, sybil, honest);
            self.agents.push(agent);
            let at = START_MS + u64::from(i) * self.sc.join_interval_ms;
            self.schedule(at, Ev::Spawn(i));
        }
        if self.sc.preloaded_records {
            let genesis = Arc::clone(&self.world.genesis);
            let mut roster = EvidenceStore::new(Arc::clone(&genesis));
            for agent in &self.agents {
                roster.insert(Arc::clone(&agent.record));
            }
            let roster = Arc::new(roster);
            self.snapshots = Snapshots::new(Arc::clone(&roster));
            self.memo = Memo::with_evidence(genesis, Some(roster));
        }
        self.workload_ms =
            START_MS + u64::from(n) * self.sc.join_interval_ms + (self.sc.settle_s * 1000.0) as u64;
        let end = self.publish_end(f64::MAX);
        for (p, publishers) in self.sc.publishers.clone().iter().enumerate() {
            let honest: Vec<u32> = (0..n).filter(|i| !self.agents[*i as usize].sybil).collect();
            for _ in 0..publishers.count {
                let node = honest[self.rng.random_range(0..honest.len())];
                let period = (1000.0 / publishers.rate_per_s) as u64;
                let start = self.at(publishers.start_s) + self.rng.random_range(0..period.max(1));
                if start < end {
                    self.schedule(start, Ev::Publish(p, node));
                }
            }
        }
        if let Some(churn) = self.sc.churn.clone() {
            let start = self.at(churn.start_s);
            for i in 0..n {
                let session = self.session_ms(&churn.sessions);
                self.schedule(start + session, Ev::Depart(i));
            }
            if churn.arrivals_per_s > 0.0 {
                let gap = self.exponential_ms(churn.arrivals_per_s);
                self.schedule(start + gap, Ev::Arrive);
            }
        }
        if let Some(p) = self.sc.partition.clone() {
            self.schedule(self.at(p.at_s), Ev::PartitionStart);
            self.schedule(self.at(p.heal_s), Ev::PartitionHeal);
        }
        if let Some(m) = &self.sc.mass_failure {
            self.schedule(self.at(m.at_s), Ev::MassFailure);
        }
        if let Some(t) = self.sc.revoke_at_s {
            self.schedule(self.at(t), Ev::Revoke);
        }
        if let Some(t) = self.sc.kill_at_s {
            self.schedule(self.at(t), Ev::Kill);
        }
        if let Some(t) = self.sc.policy_change_at_s {
            self.schedule(self.at(t), Ev::PolicyChange);
        }
        if let Some(o) = self.sc.outcomes.clone()
            && o.rate_per_s > 0.0
        {
            let gap = self.exponential_ms(o.rate_per_s);
            self.schedule(self.workload_ms + gap, Ev::Outcome);
        }
        if let Some(a) = &self.sc.attacks {
            self.schedule(self.at(a.at_s), Ev::AttackStart);
        }
        if self.sc.sybils.as_ref().is_some_and(|s| s.vouch_ring) {
            self.schedule(self.workload_ms, Ev::SybilRing);
        }
        self.schedule(START_MS + 1_000, Ev::Sample);
    }

    /// Publishing stops a drain period (a third of the run, at most 3 s)
    /// before the end, so every message counted had time to arrive.
    fn publish_end(&self, stop_s: f64) -> u64 {
        let drain_s = (self.sc.duration_s / 3.0).min(3.0);
        self.at(stop_s.min(self.sc.duration_s - drain_s))
    }

    fn exponential_ms(&mut self, rate_per_s: f64) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-u.ln() / rate_per_s * 1000.0) as u64
    }

    fn session_ms(&mut self, sessions: &Sessions) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let seconds = match *sessions {
            Sessions::Weibull { shape, scale_s } => scale_s * (-u.ln()).powf(1.0 / shape),
            Sessions::LogNormal { median_s, sigma } => median_s * (sigma * self.normal(u)).exp(),
        };
        (seconds * 1000.0) as u64
    }

    /// A standard normal from a uniform and one more draw (Box-Muller).
    fn normal(&mut self, u: f64) -> f64 {
        let v: f64 = self.rng.random_range(0.0..1.0);
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn latency_ms(&mut self, from: u32, to: u32) -> u64 {
        match self.sc.network.latency {
            Latency::Constant { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => self.rng.random_range(min_ms..=max_ms),
            Latency::LogNormal { median_ms, sigma } => {
                let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
                (median_ms * (sigma * self.normal(u)).exp())
                    .round()
                    .max(1.0) as u64
            }
            Latency::Coordinates { base_ms, max_ms } => {
                let (a, b) = (self.coords[from as usize], self.coords[to as usize]);
                let d = f64::from(((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt())
                    / std::f64::consts::SQRT_2;
                base_ms + ((max_ms - base_ms) as f64 * d) as u64
            }
        }
    }

    fn mix(&mut self, words: [u64; 3]) {
        for w in words {
            self.trace = (self.trace ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn alive(&self, i: u32) -> bool {
        self.nodes.get(i as usize).is_some_and(Option::is_some)
    }

    fn random_live(&mut self) -> Option<u32> {
        (!self.live.is_empty()).then(|| self.live[self.rng.random_range(0..self.live.len())])
    }

    fn spawn(&mut self, i: u32) {
        let contact = self.random_live();
        self.spawn_with(i, contact);
    }

    fn spawn_with(&mut self, i: u32, contact: Option<u32>) {
        let agent = &self.agents[i as usize];
        let rng = SmallRng::seed_from_u64(
            self.sc.seed
                ^ u64::from(i)
                    .wrapping_add(1)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let node = Node::with_memo(
            Arc::clone(&self.config),
            Arc::clone(&self.world.genesis),
            Arc::clone(&agent.key),
            i,
            Arc::clone(&agent.record),
            rng,
            self.now,
            Some(Arc::clone(&self.memo)),
        )
        .unwrap_or_else(|e| unreachable!("sim node {i}: {e}"));
        while self.nodes.len() <= i as usize {
            self.nodes.push(None);
            self.coords.push((
                self.rng.random_range(0.0..1.0),
                self.rng.random_range(0.0..1.0),
            ));
            self.side.push(false);
            self.session_ms.push(0);
        }
        self.session_ms[i as usize] = self.now;
        self.nodes[i as usize] = Some(Box::new(node));
        self.live_at.insert(i, self.live.len());
        self.live.push(i);
        for topic in self.topics.clone() {
            self.command(i, Command::Subscribe { topic });
        }
        if let Some(c) = contact {
            self.command(i, Command::Join { contacts: vec![c] });
        }
        self.drain(i);
    }

    fn crash(&mut self, i: u32) {
        if self
            .nodes
            .get_mut(i as usize)
            .and_then(Option::take)
            .is_none()
        {
            return;
        }
        if let Some(at) = self.live_at.remove(&i) {
            let last = self.live.pop().unwrap_or(i);
            if last != i {
                self.live[at] = last;
                self.live_at.insert(last, at);
            }
        }
    }

    pub(crate) fn command(&mut self, node: u32, command: Command<u32>) -> Option<[u8; 32]> {
        let now = self.now;
        let result = self.nodes[node as usize]
            .as_mut()?
            .handle(now, Input::Command(command));
        self.drain(node);
        result.ok().flatten()
    }

    fn can_talk(&self, a: u32, b: u32) -> bool {
        !self.partitioned || self.side[a as usize] == self.side[b as usize]
    }

    fn drain(&mut self, node: u32) {
        loop {
            let Some(n) = self.nodes[node as usize].as_mut() else {
                return;
            };
            let Some(output) = n.poll_output() else {
                return;
            };
            match output {
                Output::Send { to, frame } => self.transmit(node, to, frame),
                Output::Connect(to) => self.connect(node, to),
                Output::Disconnect(to) => {
                    let key = link_key(node, to);
                    if let Some(&link) = self.links.get(&key) {
                        self.closing.insert(key);
                        let queued = link.arrives[direction(node, to)];
                        let at = (self.now + self.latency_ms(node, to)).max(queued);
                        self.schedule(at, Ev::Close(node, to, link.epoch));
                    }
                }
                Output::SetTimer { at_ms, timer } => {
                    self.schedule(at_ms, Ev::Input(node, Input::Timer(timer)))
                }
                Output::Deliver(d) => self.on_delivery(node, &d),
                Output::DeliverDirect { .. } => {}
                Output::Event(e) => self.on_event(node, &e),
            }
        }
    }

    /// Opens a connection. A dial while the old connection is still
    /// closing replaces it (the old one's close then affects nothing); a
    /// dial crossing the peer's own dial joins it.
    fn connect(&mut self, node: u32, to: u32) {
        let at = self.now + self.latency_ms(node, to);
        if !self.alive(to) || !self.can_talk(node, to) {
            self.schedule(at, Ev::Input(node, Input::Disconnected { peer: to }));
            return;
        }
        let key = link_key(node, to);
        if self.links.contains_key(&key) {
            if !self.closing.remove(&key) {
                return;
            }
            self.schedule(at, Ev::Input(to, Input::Disconnected { peer: node }));
        }
        self.next_epoch += 1;
        // A connection replacing a closing one keeps its order: its frames
        // arrive after the old one's.
        self.links.entry(key).or_default().epoch = self.next_epoch;
        let (a, b) = (
            self.agents[node as usize].key.did(),
            self.agents[to as usize].key.did(),
        );
        self.schedule(at, Ev::Input(node, Input::Connected { peer: to, did: b }));
        self.schedule(at, Ev::Input(to, Input::Connected { peer: node, did: a }));
    }

    fn transmit(&mut self, from: u32, to: u32, frame: Bytes) {
        let key = link_key(from, to);
        let Some(&link) = self.links.get(&key) else {
            return;
        };
        if !self.can_talk(from, to) {
            return;
        }
        let broadcast = matches!(frame.get(2), Some(0x5a | 0x62 | 0x6a));
        if broadcast && self.sc.network.loss > 0.0 && self.rng.random_bool(self.sc.network.loss) {
            return;
        }
        self.metrics.frames += 1;
        self.metrics.bytes += frame.len() as u64;
        let way = direction(from, to);
        let arrival = (self.now + self.latency_ms(from, to)).max(link.arrives[way]);
        if let Some(l) = self.links.get_mut(&key) {
            l.arrives[way] = arrival;
        }
        self.schedule(
            arrival,
            Ev::Frame {
                to,
                from,
                epoch: link.epoch,
                bytes: frame,
            },
        );
    }

    fn on_delivery(&mut self, node: u32, d: &starling_gossip::Delivery) {
        self.metrics.first_receptions += 1;
        let age_ms = self.now.saturating_sub(d.sent_ms);
        let window_ms = self.replay_window_ms();
        crate::adversary::on_delivery(&mut self.adversaries, &d.id, age_ms, window_ms);
        let now = self.now;
        let Some(p) = self.metrics.published.get_mut(&d.id) else {
            return;
        };
        if self.session_ms[node as usize] <= p.at_ms {
            p.delivered += 1;
            p.last_ms = p.last_ms.max(now - p.at_ms);
            p.ldh = p.ldh.max(d.hops);
            self.metrics.latencies.record((now - p.at_ms) as u32);
        }
        if Some(d.origin) == self.killed.map(|k| self.agents[k as usize].key.did()) {
            self.metrics.killed_deliveries_after += 1;
        }
        self.mix([now, u64::from(node), u64::from(d.hops)]);
    }

    fn on_event(&mut self, node: u32, e: &Event<u32>) {
        let live = self.live.len() as u32;
        let now = self.now;
        let cut_off = self.cut_off.len() as u32;
        let excluded = self.cut_off.contains(&node);
        let reached = |spread: &mut Spread| {
            if excluded {
                return;
            }
            let others = live.saturating_sub(cut_off);
            spread.reached += 1;
            if spread.reach_999_ms.is_none()
                && f64::from(spread.reached) >= 0.999 * f64::from(others)
            {
                spread.reach_999_ms = Some(now - spread.started_ms);
            }
        };
        match e {
            Event::EvidenceApplied { id, .. } => {
                if let Some(name) = self.spread_ids.get(id).copied()
                    && let Some(spread) = self.metrics.spreads.get_mut(name)
                {
                    reached(spread);
                }
            }
            Event::PolicyChanged { .. } if self.policy_started => {
                if let Some(spread) = self.metrics.spreads.get_mut("policy") {
                    reached(spread);
                }
            }
            _ => {}
        }
    }

    fn track(&mut self, name: &'static str, id: [u8; 32], about: u32) {
        self.spread_ids.insert(id, name);
        self.cut_off.insert(about);
        self.metrics.spreads.insert(
            name,
            Spread {
                started_ms: self.now,
                reached: 0,
                reach_999_ms: None,
            },
        );
    }

    /// Runs to the end or a limit; `progress` hears (simulated s, total s).
    pub fn run(&mut self, progress: &mut dyn FnMut(f64, f64, u64)) -> Option<String> {
        let end = self.at(self.sc.duration_s);
        let wall = Instant::now();
        let mut next_check = 0u64;
        while let Some((at, ev)) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now = at;
            self.events += 1;
            self.step(ev);
            if self.events >= next_check {
                next_check = self.events + 200_000;
                progress(
                    (self.now - START_MS) as f64 / 1000.0,
                    (end - START_MS) as f64 / 1000.0,
                    self.events,
                );
                if self.sc.limits.wall_s_max > 0.0
                    && wall.elapsed().as_secs_f64() > self.sc.limits.wall_s_max
                {
                    return Some(format!(
                        "wall-clock limit of {} s reached",
                        self.sc.limits.wall_s_max
                    ));
                }
                let rss = crate::report::peak_rss_mb();
                if self.sc.limits.memory_mb_max > 0.0 && rss > self.sc.limits.memory_mb_max {
                    return Some(format!(
                        "memory limit of {} MiB reached",
                        self.sc.limits.memory_mb_max
                    ));
                }
            }
        }
        self.now = self.now.max(end);
        None
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Frame {
                to,
                from,
                epoch,
                bytes,
            } => {
                if self.links.get(&link_key(to, from)).map(|l| l.epoch) != Some(epoch) {
                    return;
                }
                if is_message_gossip(&bytes) {
                    self.metrics.gossip_receptions += 1;
                    if self.adversaries.watches(to) {
                        self.adversaries.capture(self.now, &bytes);
                    }
                }
                // The last copy to arrive takes the buffer over uncopied.
                let bytes = Vec::from(bytes);
                self.step(Ev::Input(to, Input::Frame { from, bytes }));
            }
            Ev::Input(node, input) => {
                let kind = match &input {
                    Input::Connected { .. } => 1,
                    Input::Disconnected { .. } => 2,
                    Input::Frame { bytes, .. } => 3 + bytes.len() as u64,
                    Input::Command(_) => 4,
                    Input::Timer(Timer::Graft(_)) => 5,
                    Input::Timer(_) => 6,
                };
                self.mix([self.now, u64::from(node), kind]);
                let now = self.now;
                let Some(n) = self.nodes.get_mut(node as usize).and_then(Option::as_mut) else {
                    return;
                };
                let _ = n.handle(now, input);
                self.drain(node);
            }
            Ev::Close(from, to, epoch) => {
                let key = link_key(from, to);
                if self.links.get(&key).map(|l| l.epoch) != Some(epoch) {
                    return;
                }
                self.unlink(from, to);
                if self.alive(to) {
                    let now = self.now;
                    if let Some(n) = self.nodes[to as usize].as_mut() {
                        let _ = n.handle(now, Input::Disconnected { peer: from });
                    }
                    self.drain(to);
                }
            }
            Ev::Spawn(i) => self.spawn(i),
            Ev::Publish(p, node) => self.publish(p, node),
            Ev::Arrive => self.arrive(),
            Ev::Depart(i) => self.depart(i),
            Ev::MassFailure => {
                let fraction = self
                    .sc
                    .mass_failure
                    .as_ref()
                    .map(|m| m.fraction)
                    .unwrap_or(0.0);
                let victims: Vec<u32> = self
                    .live
                    .iter()
                    .copied()
                    .filter(|_| self.rng.random_bool(fraction))
                    .collect();
                for v in victims {
                    self.depart(v);
                }
            }
            Ev::PartitionStart => {
                let fraction = self
                    .sc
                    .partition
                    .as_ref()
                    .map(|p| p.fraction)
                    .unwrap_or(0.0);
                for s in 0..self.side.len() {
                    self.side[s] = self.rng.random_bool(fraction);
                }
                self.partitioned = true;
            }
            Ev::PartitionHeal => {
                self.partitioned = false;
                self.heal_at = Some(self.now);
            }
            Ev::Revoke => crate::workload::revoke(self),
            Ev::Kill => crate::workload::kill(self),
            Ev::KilledPublishes => crate::workload::killed_publishes(self),
            Ev::PolicyChange => crate::workload::policy_change(self),
            Ev::Outcome => crate::workload::outcome(self),
            Ev::SybilRing => crate::workload::sybil_ring(self),
            Ev::AttackStart => crate::adversary::start(self),
            Ev::Spam => crate::adversary::spam(self),
            Ev::Inject => crate::adversary::forge_and_replay(self),
            Ev::Eclipse => crate::adversary::eclipse(self),
            Ev::Sample => {
                let delivered = self.metrics.first_receptions;
                self.metrics.series.push((
                    (self.now - START_MS) as f64 / 1000.0,
                    self.live.len() as u32,
                    delivered,
                ));
                if (self.now - START_MS).is_multiple_of(RESHARE_MS) {
                    let live = self.nodes.iter_mut().enumerate();
                    let live = live.filter_map(|(i, n)| Some((i as u32, n.as_deref_mut()?)));
                    self.snapshots.reshare(live);
                }
                self.schedule(self.now + 1_000, Ev::Sample);
            }
        }
    }

    fn publish(&mut self, p: usize, node: u32) {
        let publishers = self.sc.publishers[p].clone();
        let period = (1000.0 / publishers.rate_per_s) as u64;
        let next = self.now + period.max(1);
        if next < self.publish_end(publishers.stop_s) {
            self.schedule(next, Ev::Publish(p, node));
        }
        if !self.alive(node) {
            return;
        }
        let expected = self.live.len() as u32 - 1;
        let shortest_ms = self.shortest_path_ms(node);
        let payload = vec![0x42; publishers.size_bytes as usize];
        if let Some(id) = self.command(
            node,
            Command::Publish {
                topic: publishers.topic,
                payload,
            },
        ) {
            let published = Published {
                at_ms: self.now,
                expected,
                delivered: 0,
                last_ms: 0,
                ldh: 0,
                shortest_ms,
            };
            self.metrics.published.insert(id, published);
        }
    }

    /// The latency of the slowest shortest path from `origin` over the
    /// active views, for constant latency only (sampled: one message in 8).
    fn shortest_path_ms(&mut self, origin: u32) -> Option<u64> {
        let Latency::Constant { ms } = self.sc.network.latency else {
            return None;
        };
        if !self.metrics.published.len().is_multiple_of(8) || self.partitioned {
            return None;
        }
        let mut hops: HashMap<u32, u32> = HashMap::new();
        let mut frontier = vec![origin];
        hops.insert(origin, 0);
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            let mut next = Vec::new();
            for n in frontier {
                let Some(node) = self.nodes[n as usize].as_ref() else {
                    continue;
                };
                for &p in node.active_view() {
                    if self.alive(p) && !hops.contains_key(&p) {
                        hops.insert(p, depth);
                        next.push(p);
                    }
                }
            }
            frontier = next;
        }
        hops.values().max().map(|h| u64::from(*h) * ms)
    }

    fn arrive(&mut self) {
        let Some(churn) = self.sc.churn.clone() else {
            return;
        };
        let honest = self.rng.random_bool(
            self.sc
                .outcomes
                .as_ref()
                .map(|o| o.honest_fraction)
                .unwrap_or(1.0),
        );
        let returning = !self.departed.is_empty() && self.rng.random_bool(churn.returning);
        let i = match returning {
            true => {
                let k = self.rng.random_range(0..self.departed.len());
                self.departed.swap_remove(k)
            }
            false => self.add_agent(false, honest),
        };
        self.spawn(i);
        let session = self.session_ms(&churn.sessions);
        self.schedule(self.now + session, Ev::Depart(i));
        let gap = self.exponential_ms(churn.arrivals_per_s);
        self.schedule(self.now + gap, Ev::Arrive);
    }

    /// Forgets a connection, and the order of frames on it (which only
    /// frames of the same connection need).
    fn unlink(&mut self, a: u32, b: u32) {
        self.links.remove(&link_key(a, b));
        self.closing.remove(&link_key(a, b));
    }

    fn depart(&mut self, i: u32) {
        let Some(node) = self.nodes.get(i as usize).and_then(Option::as_ref) else {
            return;
        };
        let peers: Vec<u32> = node.admitted().map(|(p, _)| *p).collect();
        self.crash(i);
        self.departed.push(i);
        for p in peers {
            self.unlink(i, p);
            let at = self.now + self.latency_ms(i, p);
            self.schedule(at, Ev::Input(p, Input::Disconnected { peer: i }));
        }
    }

    /// A new identity (its record spreads by gossip when its node joins).
    pub(crate) fn add_agent(&mut self, sybil: bool, honest: bool) -> u32 {
        let i = self.agents.len() as u32;
        let agent = self.world.agent(i, sybil, honest);
        self.agents.push(agent);
        i
    }

    /// Starts node `i` now, joining through `contact`.
    pub(crate) fn spawn_via(&mut self, i: u32, contact: u32) {
        self.spawn_with(i, Some(contact));
    }

    /// Starts node `i` now, joining through a random live node.
    pub(crate) fn spawn_now(&mut self, i: u32) {
        self.spawn(i);
    }

    /// Node `i` leaves now.
    pub(crate) fn depart_now(&mut self, i: u32) {
        self.depart(i);
    }

    /// Writes a frame onto the link from `from` to `to`, if it is open.
    pub(crate) fn send_raw(&mut self, from: u32, to: u32, frame: Bytes) {
        self.transmit(from, to, frame);
    }

    /// Messages older than this are refused as replays.
    pub(crate) fn replay_window_ms(&self) -> u64 {
        self.config.message_age_max_ms
    }

    /// Attacks stop when publishing does, so the end is quiet.
    pub(crate) fn attack_end(&self) -> u64 {
        self.publish_end(f64::MAX)
    }

    /// Outcome evidence stops a spread and a score refresh (plus a second)
    /// before the end, so score tables are compared once they can agree.
    pub(crate) fn evidence_end(&self) -> u64 {
        let quiet = self.config.score_refresh_ms + 2_000;
        self.at(self.sc.duration_s).saturating_sub(quiet)
    }

    pub(crate) fn schedule_in(&mut self, after_ms: u64, ev: Ev) {
        self.schedule(self.now + after_ms, ev);
    }

    /// The gossip cores' counters of what they turned away, summed over
    /// live nodes (where a run loses traffic, and to whom).
    pub(crate) fn drops(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in self.nodes.iter().flatten().map(|n| n.stats()) {
            for (name, n) in [
                ("items_duplicate", s.items_duplicate),
                ("dropped_malformed", s.dropped_malformed),
                ("dropped_oversize", s.dropped_oversize),
                ("dropped_forged", s.dropped_forged),
                ("dropped_replayed", s.dropped_replayed),
                ("dropped_not_admitted", s.dropped_not_admitted),
                ("dropped_refused", s.dropped_refused),
                ("dropped_rate_limited", s.dropped_rate_limited),
                ("peers_refused", s.peers_refused),
                ("graylisted", s.graylisted),
                ("violations_reported", s.violations_reported),
                ("neighbors_lost", s.neighbors_lost),
            ] {
                *out.entry(name.to_string()).or_default() += n;
            }
        }
        out
    }

    /// (item, nodes reached) of the timed items.
    pub fn reached(&self) -> Vec<(&'static str, u32, usize)> {
        self.metrics
            .spreads
            .iter()
            .map(|(k, s)| (*k, s.reached, self.live.len()))
            .collect()
    }

    pub(crate) fn live_nodes(&self) -> &[u32] {
        &self.live
    }

    pub(crate) fn pick_live(&mut self) -> Option<u32> {
        self.random_live()
    }

    pub(crate) fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    pub(crate) fn track_item(&mut self, name: &'static str, id: [u8; 32], origin: u32) {
        self.track(name, id, origin);
    }

    pub(crate) fn start_policy_tracking(&mut self) {
        self.policy_started = true;
        self.metrics.spreads.insert(
            "policy",
            Spread {
                started_ms: self.now,
                reached: 0,
                reach_999_ms: None,
            },
        );
    }

    pub(crate) fn set_killed(&mut self, node: u32) {
        self.killed = Some(node);
    }

    pub(crate) fn killed(&self) -> Option<u32> {
        self.killed
    }

    pub(crate) fn outcome_counts(&mut self) -> &mut FxHashMap<(u32, u32), (u64, u64)> {
        &mut self.outcome_counts
    }

    pub(crate) fn did_of(&self, i: u32) -> Did {
        self.agents[i as usize].key.did()
    }
}
