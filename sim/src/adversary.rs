//! Adversaries that do not follow the protocol: spammers flooding their
//! neighbours with their own signed messages, forgers injecting messages in
//! an honest agent's name with a broken signature, replayers re-sending a
//! captured message after the replay window, an eclipse attempt (Sybils of
//! one rogue principal all dialling one victim), and whitewashers (agents
//! with a bad record that return under fresh identities).
//!
//! A misbehaving node is still a real node admitted by the handshake; the
//! simulator writes its attack frames straight onto its open links,
//! bypassing its own node's checks, as a modified binary would. Honest
//! nodes run the unchanged core and the figures say what got through.

use std::collections::{BTreeSet, HashSet};

use rand::RngExt;
use serde::Serialize;
use starling_gossip::wire::{Body, Frame, Gossip};
use starling_gossip::{Command, SignedMessage};
use starling_trust::Tier;
use starling_trust::keys::Domain;

use crate::engine::{Ev, Sim};

/// Attack frames sent per second by each forger and replayer.
const INJECTIONS_PER_S: u64 = 4;

/// Who attacks, and what they have done so far.
#[derive(Debug, Default)]
pub(crate) struct Adversaries {
    spammers: Vec<u32>,
    forgers: Vec<u32>,
    replayers: Vec<u32>,
    eclipsers: Vec<u32>,
    victim: Option<u32>,
    whitewashed: Vec<(u32, u32)>,
    /// The attackers' neighbours when the attack started.
    neighbours: Vec<(u32, u32)>,
    seq: u64,
    /// Ids of attack messages: their deliveries count against the mesh.
    spam_ids: HashSet<[u8; 32]>,
    forged_ids: HashSet<[u8; 32]>,
    /// Replayed ids, with the time of their first replay.
    replayed_ids: HashSet<[u8; 32]>,
    /// Messages replayers saw on their links: (when, item).
    captured: Vec<(u64, Vec<u8>)>,
    replays: usize,
    pub(crate) figures: AttackFigures,
}

/// What the attacks achieved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackFigures {
    /// Spam messages sent (each to every neighbour of its spammer).
    pub spam_sent: u64,
    /// Deliveries of spam at honest nodes, per spam message sent.
    pub spam_deliveries_per_message: f64,
    /// Deliveries of spam, in all.
    pub spam_deliveries: u64,
    /// Forged messages injected.
    pub forged_sent: u64,
    /// Forged messages any node delivered (must be 0).
    pub forged_delivered: u64,
    /// Replays injected after the replay window.
    pub replayed_sent: u64,
    /// Deliveries of replays older than the replay window (must be 0).
    /// A younger replay may still reach a node that never had the message
    /// (one that joined since): that is a late delivery, not a replay, and
    /// nodes that had it drop the copy as a duplicate.
    pub replayed_delivered: u64,
    /// Replays sent of messages already older than the replay window.
    pub replayed_stale_sent: u64,
    /// Share of the attackers' neighbours at the start that no longer
    /// admit them at the end (graylisted and cut off).
    pub attackers_cut_off: f64,
    /// Highest share of the eclipse victim's active view held by attackers.
    pub eclipse_share_max: f64,
    /// Most slots of the victim's active view the attackers held at once
    /// (they share one principal, so the cap is `principal_active_max`).
    pub eclipse_slots_max: u64,
    /// The whitewashers' highest tier before they changed identity.
    pub whitewash_tier_before: Option<String>,
    /// The highest tier their fresh identities reached.
    pub whitewash_tier_after: Option<String>,
}

fn pick(sim: &mut Sim, n: u32, taken: &BTreeSet<u32>) -> Vec<u32> {
    let mut candidates: Vec<u32> = sim
        .live_nodes()
        .iter()
        .copied()
        .filter(|i| !taken.contains(i) && !sim.agents[*i as usize].sybil)
        .collect();
    candidates.sort_unstable();
    let mut out = Vec::new();
    while out.len() < n as usize && !candidates.is_empty() {
        let k = sim.rng().random_range(0..candidates.len());
        out.push(candidates.swap_remove(k));
    }
    out
}

/// Starts every attack the scenario names.
pub(crate) fn start(sim: &mut Sim) {
    let Some(a) = sim.sc.attacks.clone() else {
        return;
    };
    let mut taken = BTreeSet::new();
    let mut roles = Vec::new();
    for n in [a.spammers, a.forgers, a.replayers] {
        let chosen = pick(sim, n, &taken);
        taken.extend(chosen.iter().copied());
        roles.push(chosen);
    }
    let victim = pick(sim, 1, &taken).first().copied();
    let mut neighbours = Vec::new();
    for &attacker in roles.iter().flatten() {
        if let Some(node) = sim.nodes[attacker as usize].as_ref() {
            neighbours.extend(node.admitted().map(|(p, _)| (attacker, *p)));
        }
    }
    let adv = &mut sim.adversaries;
    adv.replayers = roles.pop().unwrap_or_default();
    adv.forgers = roles.pop().unwrap_or_default();
    adv.spammers = roles.pop().unwrap_or_default();
    adv.neighbours = neighbours;
    adv.victim = victim;
    let (spam, inject) = (
        !adv.spammers.is_empty(),
        !adv.forgers.is_empty() || !adv.replayers.is_empty(),
    );
    if spam {
        sim.schedule_in(0, Ev::Spam);
    }
    if inject {
        sim.schedule_in(0, Ev::Inject);
    }
    if let Some(v) = victim {
        for _ in 0..a.eclipse_attackers {
            let i = sim.add_agent(true, false);
            sim.spawn_via(i, v);
            sim.adversaries.eclipsers.push(i);
        }
        sim.schedule_in(1_000, Ev::Eclipse);
    }
    let bad: Vec<u32> = sim
        .live_nodes()
        .iter()
        .copied()
        .filter(|i| !sim.agents[*i as usize].honest && !taken.contains(i))
        .take(a.whitewashers as usize)
        .collect();
    for old in bad {
        sim.depart_now(old);
        let fresh = sim.add_agent(false, false);
        sim.spawn_now(fresh);
        sim.adversaries.whitewashed.push((old, fresh));
    }
}

fn topic(sim: &Sim) -> String {
    sim.sc
        .publishers
        .first()
        .map_or_else(|| "news".into(), |p| p.topic.clone())
}

/// Writes a gossip frame carrying `item` from `attacker` to every peer it
/// is connected to.
fn inject(sim: &mut Sim, attacker: u32, item: Vec<u8>) {
    let frame = Frame::new(Body::Gossip(Gossip {
        kind: 0,
        round: 0,
        item,
    }))
    .encode();
    let frame = bytes::Bytes::from(frame);
    let peers: Vec<u32> = match sim.nodes.get(attacker as usize).and_then(Option::as_ref) {
        Some(node) => node.admitted().map(|(p, _)| *p).collect(),
        None => return,
    };
    for p in peers {
        sim.send_raw(attacker, p, frame.clone());
    }
}

/// A message on the attacked topic in agent `signer`'s name.
fn sign_as(sim: &mut Sim, signer: u32, payload: Vec<u8>) -> SignedMessage {
    sim.adversaries.seq += 1;
    SignedMessage::sign(
        &sim.agents[signer as usize].key,
        Domain::Message,
        &sim.world.genesis.id(),
        &topic(sim),
        sim.adversaries.seq,
        sim.now,
        payload,
    )
}

/// Each spammer sends one message of its own, validly signed, above any
/// rate its tier allows.
pub(crate) fn spam(sim: &mut Sim) {
    let Some(a) = sim.sc.attacks.clone() else {
        return;
    };
    let period = (1000.0 / a.spam_rate_per_s).max(1.0) as u64;
    if sim.now + period < sim.attack_end() {
        sim.schedule_in(period, Ev::Spam);
    }
    for attacker in sim.adversaries.spammers.clone() {
        let message = sign_as(sim, attacker, vec![0x5a; 64]);
        sim.adversaries.spam_ids.insert(message.id);
        sim.adversaries.figures.spam_sent += 1;
        inject(sim, attacker, message.raw);
    }
}

/// Forgers send a message in an honest agent's name with one signature
/// bit flipped; replayers re-send messages they captured at least a second
/// earlier (nodes still remembering the id drop it as a duplicate, the
/// others by its signed send time once it is past the replay window).
pub(crate) fn forge_and_replay(sim: &mut Sim) {
    if sim.now + 1000 / INJECTIONS_PER_S < sim.attack_end() {
        sim.schedule_in(1000 / INJECTIONS_PER_S, Ev::Inject);
    }
    for attacker in sim.adversaries.forgers.clone() {
        let Some(&name) = sim.live_nodes().first() else {
            return;
        };
        let mut message = sign_as(sim, name, b"forged".to_vec());
        if let Some(last) = message.raw.last_mut() {
            *last ^= 1;
        }
        sim.adversaries
            .forged_ids
            .insert(starling_trust::wire::sha256(&message.raw));
        sim.adversaries.figures.forged_sent += 1;
        inject(sim, attacker, message.raw);
    }
    let window = sim.replay_window_ms();
    for attacker in sim.adversaries.replayers.clone() {
        let old = sim
            .adversaries
            .captured_before(sim.now.saturating_sub(1_000));
        let Some((seen_ms, raw)) = old else {
            continue;
        };
        if sim.now - seen_ms > window {
            sim.adversaries.figures.replayed_stale_sent += 1;
        }
        sim.adversaries
            .replayed_ids
            .insert(starling_trust::wire::sha256(&raw));
        sim.adversaries.figures.replayed_sent += 1;
        inject(sim, attacker, raw);
    }
}

/// Eclipse attackers not in the victim's active view dial it again; the
/// share they hold is sampled.
pub(crate) fn eclipse(sim: &mut Sim) {
    let Some(victim) = sim.adversaries.victim else {
        return;
    };
    if sim.now + 1_000 < sim.attack_end() {
        sim.schedule_in(1_000, Ev::Eclipse);
    }
    let Some(node) = sim.nodes.get(victim as usize).and_then(Option::as_ref) else {
        return;
    };
    let active: Vec<u32> = node.active_view().to_vec();
    let held = active
        .iter()
        .filter(|p| sim.adversaries.eclipsers.contains(p))
        .count();
    if !active.is_empty() {
        let share = held as f64 / active.len() as f64;
        let f = &mut sim.adversaries.figures;
        f.eclipse_share_max = f.eclipse_share_max.max(share);
        f.eclipse_slots_max = f.eclipse_slots_max.max(held as u64);
    }
    for attacker in sim.adversaries.eclipsers.clone() {
        if !active.contains(&attacker) {
            sim.command(
                attacker,
                Command::Join {
                    contacts: vec![victim],
                },
            );
        }
    }
}

/// Counts a delivery if it was of an attack message; `age_ms` is how old
/// its signed send time is.
pub(crate) fn on_delivery(adv: &mut Adversaries, id: &[u8; 32], age_ms: u64, window_ms: u64) {
    if adv.spam_ids.contains(id) {
        adv.figures.spam_deliveries += 1;
    }
    if adv.forged_ids.contains(id) {
        adv.figures.forged_delivered += 1;
    }
    if adv.replayed_ids.contains(id) && age_ms > window_ms {
        adv.figures.replayed_delivered += 1;
    }
}

impl Adversaries {
    /// Whether frames arriving at `node` are watched by a replayer.
    pub(crate) fn watches(&self, node: u32) -> bool {
        self.replayers.contains(&node) && self.captured.len() < 64
    }

    /// Keeps a message a replayer saw on its link, to send it again later.
    pub(crate) fn capture(&mut self, at_ms: u64, frame: &[u8]) {
        if let Ok(Body::Gossip(g)) = Frame::decode_capped(frame, usize::MAX) {
            self.captured.push((at_ms, g.item));
        }
    }

    /// The next captured message seen at or before `before_ms`.
    fn captured_before(&mut self, before_ms: u64) -> Option<(u64, Vec<u8>)> {
        let old: Vec<_> = self.captured.iter().filter(|c| c.0 <= before_ms).collect();
        let (at, item) = old.get(self.replays % old.len().max(1))?;
        let out = (*at, item.clone());
        self.replays += 1;
        Some(out)
    }
}

/// The figures at the end of the run.
pub(crate) fn finish(sim: &mut Sim) -> Option<AttackFigures> {
    sim.sc.attacks.as_ref()?;
    let adv = &sim.adversaries;
    let cut = adv
        .neighbours
        .iter()
        .filter(|(attacker, peer)| {
            sim.nodes
                .get(*peer as usize)
                .and_then(Option::as_ref)
                .is_some_and(|n| n.admitted().all(|(p, _)| p != attacker))
        })
        .count();
    let live_neighbours = adv
        .neighbours
        .iter()
        .filter(|(_, peer)| sim.nodes.get(*peer as usize).is_some_and(Option::is_some))
        .count();
    let mut f = adv.figures.clone();
    f.attackers_cut_off = match live_neighbours {
        0 => 0.0,
        n => cut as f64 / n as f64,
    };
    f.spam_deliveries_per_message = match f.spam_sent {
        0 => 0.0,
        n => f.spam_deliveries as f64 / n as f64,
    };
    let observer = sim
        .live_nodes()
        .iter()
        .copied()
        .find(|i| !adv.whitewashed.iter().any(|(o, n)| o == i || n == i));
    if let Some(table) = observer
        .and_then(|o| sim.nodes[o as usize].as_ref())
        .map(|n| n.trust().scores().clone())
    {
        let tier = |i: u32| table.tier(&sim.agents[i as usize].key.did());
        let max = |xs: Vec<Tier>| xs.into_iter().max().map(|t| t.name().to_string());
        f.whitewash_tier_before = max(adv.whitewashed.iter().map(|(o, _)| tier(*o)).collect());
        f.whitewash_tier_after = max(adv.whitewashed.iter().map(|(_, n)| tier(*n)).collect());
    }
    Some(f)
}
