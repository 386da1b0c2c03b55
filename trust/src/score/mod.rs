//! Trust scores: a pure, deterministic function of (genesis, evidence, epoch).
//!
//! Every honest node that holds the same evidence computes the same table,
//! because the function uses integer arithmetic only, a fixed iteration
//! count, inputs in DID order, and the epoch passed in (never a clock).
//!
//! # The formula
//!
//! Each identity `j` gets a *base*: 1000 for a governor (the trust root), 0
//! once terminated, `newcomer_score` (probationary) when its agent record
//! holds a mandate chain from a governor that is valid at the epoch's last
//! millisecond and unrevoked (*anchored*), and `unanchored_score`
//! (untrusted) otherwise. (The last millisecond, so a mandate issued during
//! an epoch anchors its agent at once; what an agent may do at any moment is
//! still checked against its chain at that moment, outside the score.)
//!
//! Trust then flows outward from the governors for `iterations` rounds. In
//! each round every identity `i` has a *reporter weight*
//! `w(i) = (score(i) - newcomer)+ / (1000 - newcomer)` in thousandths
//! (governors 1000): an agent's reports and vouches count only in so far as
//! it has earned standing above a newcomer's. So agents vouching for and
//! praising each other gain nothing until someone already trusted, and in
//! the end a governor, vouches for or works with them (EigenTrust-style
//! propagation from pre-trusted peers, Kamvar et al. 2003; Appleseed's
//! bounded spreading, Ziegler & Lausen 2004).
//!
//! ```text
//! decay(age, h)  = 2^(-age / h)                      (age in epochs, Q20 fixed point)
//! S_j = Σ_i w(i) · successes_ij        · decay(age_ij, outcome_half_life)
//! F_j = Σ_i w(i) · failure_severity_ij · decay(age_ij, outcome_half_life)
//! behaviour_j = behaviour_span · (S_j − F_j) / (S_j + F_j + prior_outcomes)
//! vouch_j     = min(vouch_cap, Σ_i w(i) · weight_ij / 100 · vouch_points)
//! penalty_j   = violation_points · Σ_i wv(i) · min(10, Σ severity · decay(age, violation_half_life))
//! score_j     = clamp(base_j + behaviour_j + vouch_j − penalty_j, 0, 1000)
//! ```
//!
//! `wv(i)` is `w(i)` raised to `witness_floor_milli` for anchored witnesses,
//! so any admitted agent's report of a violation counts a little, but one
//! witness can cost an agent at most ten severity units. A vouch counts
//! while unexpired and not withdrawn; when the voucher falls to newcomer
//! standing its vouches stop counting. Tiers: untrusted < 300 <=
//! probationary < 500 <= standard < 700 <= trusted < 900 <= verified.
//!
//! Cost: one pass over the store's slots, whose identities the store keeps
//! numbered as records arrive, then O(edges + agents) per round. A store
//! that grew only by agent records of identities the table does not score
//! yet (newcomers joining, the common change in a large mesh) needs no
//! pass at all: such an identity has no edges, so it scores its base and
//! moves no one else ([`ScoreTable::with_newcomers`]). For the same
//! reason, replicas whose evidence differs only in such agents, or in
//! what agents said of an identity already terminated (it scores 0 and
//! lends no weight, so nothing said of it moves a score), can share one
//! computation of the rest ([`ScoreTable::compute_around_periphery`]).

use std::fmt;
use std::sync::Arc;

use crate::did::Did;
use crate::evidence::reconcile::Fingerprint;
use crate::evidence::record::Evidence;
use crate::evidence::store::{EvidenceStore, Slot};
use crate::genesis::{Genesis, Params};
use crate::mandate::check_current;
use crate::uniform;
use crate::wire::{Hash, sha256};

/// Highest score.
pub const SCORE_MAX: u32 = 1000;
const Q20: u64 = 1 << 20;
const MILLI: u64 = 1000;
const PAIR_SEVERITY_MAX: u64 = 10;

/// `2^(-i/64)` in Q20, for the fractional part of the decay exponent.
const DECAY_FRACTION_Q20: [u64; 64] = [
    1048576, 1037281, 1026107, 1015054, 1004120, 993303, 982604, 972019, //
    961548, 951191, 940944, 930809, 920782, 910863, 901051, 891345, //
    881744, 872246, 862850, 853555, 844361, 835265, 826268, 817367, //
    808563, 799853, 791237, 782714, 774282, 765942, 757691, 749529, //
    741455, 733468, 725567, 717752, 710020, 702372, 694806, 687321, //
    679917, 672593, 665348, 658181, 651091, 644078, 637140, 630276, //
    623487, 616771, 610127, 603555, 597053, 590622, 584260, 577966, //
    571740, 565581, 559489, 553462, 547500, 541603, 535768, 529997, //
];

/// `2^(-age / half_life)` in Q20 fixed point.
pub fn decay_q20(age_epochs: u64, half_life_epochs: u32) -> u64 {
    let half_life = u64::from(half_life_epochs.max(1));
    let halvings = age_epochs / half_life;
    if halvings >= 40 {
        return 0;
    }
    let fraction = ((age_epochs % half_life) * 64 / half_life) as usize;
    (Q20 >> halvings) * DECAY_FRACTION_Q20[fraction] / Q20
}

/// The five trust tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Below 300.
    Untrusted,
    /// 300..500: where a new agent starts.
    Probationary,
    /// 500..700.
    Standard,
    /// 700..900.
    Trusted,
    /// 900 and above.
    Verified,
}

impl Tier {
    /// All tiers, lowest first.
    pub const ALL: [Tier; 5] = [
        Self::Untrusted,
        Self::Probationary,
        Self::Standard,
        Self::Trusted,
        Self::Verified,
    ];

    /// The tier of a score.
    pub fn of(score: u32) -> Self {
        match score {
            0..300 => Self::Untrusted,
            300..500 => Self::Probationary,
            500..700 => Self::Standard,
            700..900 => Self::Trusted,
            _ => Self::Verified,
        }
    }

    /// The lowercase name used in policy documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Probationary => "probationary",
            Self::Standard => "standard",
            Self::Trusted => "trusted",
            Self::Verified => "verified",
        }
    }

    /// The tier of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every known identity's score at one epoch.
///
/// Identities are looked up in two sorted lists: one shared with every
/// table computed over the same base store (see
/// [`EvidenceStore::overlay`]), with this table's scores beside it, and
/// this table's own for identities beyond it. A simulated node's table
/// then costs two bytes an identity, not 34; a real node's store has no
/// base, and its table only its own list.
#[derive(Debug, Clone)]
pub struct ScoreTable {
    epoch: u64,
    shared: Arc<[Did]>,
    /// Scores of `shared`, [`NOT_SCORED`] for identities this table lacks
    /// (shareable too, see [`ScoreTable::share_scores`]).
    shared_scores: Arc<Vec<u16>>,
    /// Scored identities not scored in `shared` (beyond it, or added by
    /// [`ScoreTable::with_newcomers`] without copying `shared_scores`).
    own: Vec<Did>,
    own_scores: Vec<u16>,
    len: usize,
    unknown: u16,
}

/// In `shared_scores`: an identity of the shared list that this table
/// does not score (scores are at most [`SCORE_MAX`]).
const NOT_SCORED: u16 = u16::MAX;

impl PartialEq for ScoreTable {
    fn eq(&self, other: &Self) -> bool {
        (self.epoch, self.unknown, self.len) == (other.epoch, other.unknown, other.len)
            && self.iter().eq(other.iter())
    }
}

impl Eq for ScoreTable {}

impl ScoreTable {
    /// The epoch the table is for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lookup(&self, did: &Did) -> Option<u16> {
        let find = |sorted: &[Did]| uniform::search(sorted, did.prefix(), |d| d.cmp(did)).ok();
        match find(&self.shared).map(|i| self.shared_scores[i]) {
            Some(NOT_SCORED) | None => Some(self.own_scores[find(&self.own)?]),
            scored => scored,
        }
    }

    /// A score; identities with no evidence get the unanchored score.
    pub fn score(&self, did: &Did) -> u32 {
        u32::from(self.lookup(did).unwrap_or(self.unknown))
    }

    /// Whether the identity was scored (appeared in the evidence).
    pub fn contains(&self, did: &Did) -> bool {
        self.lookup(did).is_some()
    }

    /// A tier.
    pub fn tier(&self, did: &Did) -> Tier {
        Tier::of(self.score(did))
    }

    /// (identity, score) in DID order.
    pub fn iter(&self) -> impl Iterator<Item = (&Did, u32)> {
        let mut shared = (self.shared.iter().zip(self.shared_scores.iter()))
            .filter(|(_, s)| **s != NOT_SCORED)
            .peekable();
        let mut own = self.own.iter().zip(&self.own_scores).peekable();
        std::iter::from_fn(move || {
            let next = match (shared.peek(), own.peek()) {
                (Some((a, _)), Some((b, _))) if a < b => shared.next(),
                (Some(_), None) => shared.next(),
                _ => own.next(),
            };
            next.map(|(did, score)| (did, u32::from(*score)))
        })
    }

    /// Hands the scores of the shared identities to `intern`, which may
    /// give back an equal copy already held: the tables of replicas that
    /// agree on every shared identity's score (all but the few whose
    /// evidence is still spreading) then hold one copy between them.
    pub fn share_scores(&mut self, intern: impl FnOnce(&Arc<Vec<u16>>) -> Arc<Vec<u16>>) {
        let shared = intern(&self.shared_scores);
        if shared == self.shared_scores {
            self.shared_scores = shared;
        }
    }

    /// Number of identities scored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A digest of the whole table: equal digests mean equal tables.
    pub fn digest(&self) -> Hash {
        let mut bytes = Vec::with_capacity(8 + self.len * 34);
        bytes.extend_from_slice(&self.epoch.to_le_bytes());
        for (did, score) in self.iter() {
            bytes.extend_from_slice(did.as_bytes());
            bytes.extend_from_slice(&(score as u16).to_le_bytes());
        }
        sha256(&bytes)
    }

    /// Computes the table for `epoch` from `store` (see the module docs).
    pub fn compute(store: &EvidenceStore, epoch: u64) -> Self {
        Graph::gather(store, epoch, &[]).solve(epoch)
    }

    /// The table [`ScoreTable::compute`] gives, computed as the table of
    /// `store` without its periphery (see [`EvidenceStore::periphery`]:
    /// lone agents, and what was said of identities just terminated)
    /// extended by the identities only the periphery names, each at its
    /// base. `core` is handed the digest of that smaller evidence set (see
    /// [`EvidenceStore::digest_without`]) and its computation, and may
    /// answer with a table it already holds for an equal digest at this
    /// epoch: replicas that differ only in which new agents and which
    /// reports on a terminated agent they have heard of then compute the
    /// rest once between them.
    pub fn compute_around_periphery(
        store: &EvidenceStore,
        epoch: u64,
        core: impl FnOnce((u64, Fingerprint), &dyn Fn() -> Self) -> Arc<Self>,
    ) -> Arc<Self> {
        let periphery = store.periphery();
        let digest = store.digest_without(periphery.record_ids());
        let mut skip: Vec<Slot> = (periphery.lone.iter())
            .map(|(did, _)| Slot::Agent(*did))
            .chain(periphery.inert.iter().map(|s| s.slot))
            .collect();
        skip.sort_unstable();
        let table = core(digest, &|| Graph::gather(store, epoch, &skip).solve(epoch));
        let mut named: Vec<Did> = (periphery.lone.iter().map(|(did, _)| *did))
            .chain(periphery.inert.iter().map(|s| s.author))
            .filter(|did| !table.contains(did))
            .collect();
        if named.is_empty() {
            return table;
        }
        named.sort_unstable();
        named.dedup();
        Arc::new(table.with_bases(store, named))
    }

    /// Whether this table's own identities outgrew a sixteenth of its
    /// shared ones (plus 64) while `store`'s base names more identities
    /// than it shares: computing afresh over `store` would then share most
    /// of them at two bytes each, where extending it would copy them all
    /// (see [`ScoreTable::with_newcomers`]).
    pub fn outgrown(&self, store: &EvidenceStore) -> bool {
        self.own.len() > 64 + self.shared.len() / 16
            && store.base_identities().len() > self.shared.len()
    }

    /// The table [`ScoreTable::compute`] would give for `store` at this
    /// table's epoch, where `store` is the store this table was computed
    /// from plus agent records of `agents` and nothing else. Each of them
    /// that this table does not score has no edges in `store`, so it
    /// scores its base (newcomer if its chain is current, else unanchored)
    /// and changes no other score. `None`, and the caller computes in full,
    /// if one of them is already scored (its standing may move others) or
    /// has no agent record in `store`.
    pub fn with_newcomers(&self, store: &EvidenceStore, agents: &[Did]) -> Option<Self> {
        let mut agents = agents.to_vec();
        agents.sort_unstable();
        agents.dedup();
        if (agents.iter()).any(|did| self.contains(did) || store.agent(did).is_none()) {
            return None;
        }
        Some(self.with_bases(store, agents))
    }

    /// This table and `dids` (sorted, distinct, none scored here), each
    /// at its base: newcomer if its agent record in `store` holds a chain
    /// current at the epoch's last millisecond, else unanchored. That is
    /// the score [`ScoreTable::compute`] gives an identity with no edges
    /// in `store`, and such an identity moves no one else.
    fn with_bases(&self, store: &EvidenceStore, dids: Vec<Did>) -> Self {
        let params = store.genesis().params();
        let last_ms = epoch_last_ms(params, self.epoch);
        let added = dids.into_iter().map(|did| {
            let anchored = store
                .agent(&did)
                .is_some_and(|record| match record.evidence() {
                    Evidence::Agent(agent) => {
                        check_current(agent.chain.links(), last_ms, store).is_ok()
                    }
                    _ => unreachable!("an agent slot holds agent records"),
                });
            let score = match anchored {
                true => params.newcomer_score,
                false => params.unanchored_score,
            };
            (did, score as u16)
        });
        let mut own: Vec<(Did, u16)> = (self.own.iter().copied())
            .zip(self.own_scores.iter().copied())
            .chain(added)
            .collect();
        own.sort_unstable_by_key(|entry| entry.0);
        let len = self.len + own.len() - self.own.len();
        let (own, own_scores) = own.into_iter().unzip();
        Self {
            epoch: self.epoch,
            shared: Arc::clone(&self.shared),
            shared_scores: Arc::clone(&self.shared_scores),
            own,
            own_scores,
            len,
            unknown: self.unknown,
        }
    }
}

/// The last millisecond of `epoch`: a mandate is current for the epoch's
/// scores if it is current then (see the module docs).
fn epoch_last_ms(params: &Params, epoch: u64) -> u64 {
    epoch
        .saturating_mul(params.epoch_ms)
        .saturating_add(params.epoch_ms - 1)
}

/// Per-identity fixed points of the propagation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Standing {
    Governor,
    Terminated,
    Anchored,
    Unanchored,
}

/// The evidence of one epoch, as dense edge lists over interned identities.
struct Graph<'a> {
    params: &'a Params,
    dids: Vec<Did>,
    /// Whether an identity appears in what the store holds (a slot's
    /// author or subject, a termination, a governor): only those are
    /// scored, so the table is a function of the evidence alone and not of
    /// which identities a replica happened to number on the way.
    held: Vec<bool>,
    /// The sorted identities of the store's base, shared by its tables.
    shared: Arc<[Did]>,
    standing: Vec<Standing>,
    /// (reporter, subject, successes·decay, failure_severity·decay)
    outcomes: Vec<(u32, u32, u64, u64)>,
    /// (voucher, subject, weight)
    vouches: Vec<(u32, u32, u64)>,
    /// (witness, subject, min(10, Σ severity·decay) in Q20)
    violations: Vec<(u32, u32, u64)>,
}

impl<'a> Graph<'a> {
    /// The evidence of `store`, less the slots in `skip` (sorted).
    fn gather(store: &'a EvidenceStore, epoch: u64, skip: &[Slot]) -> Self {
        let genesis: &Genesis = store.genesis();
        let params = genesis.params();
        let epoch_start_ms = epoch.saturating_mul(params.epoch_ms);
        let epoch_last_ms = epoch_last_ms(params, epoch);
        let age = |issued_ms: u64| epoch.saturating_sub(issued_ms / params.epoch_ms);
        let dids: Vec<Did> = (0..store.identity_count())
            .filter_map(|n| store.identity(n).copied())
            .collect();
        let mut standing = vec![Standing::Unanchored; dids.len()];
        let mut held = vec![false; dids.len()];
        let mut outcomes = Vec::new();
        let mut vouches = Vec::new();
        let mut violations = Vec::new();
        for (slot, (from, to), kept) in store.slots_interned() {
            let Some((_, best)) = kept.first() else {
                continue;
            };
            if !skip.is_empty() && skip.binary_search(slot).is_ok() {
                continue;
            }
            held[from as usize] = true;
            held[to as usize] = true;
            match (slot, best.evidence()) {
                (Slot::Agent(_), Evidence::Agent(a))
                    if check_current(a.chain.links(), epoch_last_ms, store).is_ok() =>
                {
                    standing[from as usize] = Standing::Anchored;
                }
                (Slot::Outcome(..), Evidence::Outcome(o)) => {
                    let d = decay_q20(age(best.issued_ms()), params.outcome_half_life_epochs);
                    outcomes.push((from, to, o.successes * d, o.failure_severity * d));
                }
                (Slot::Vouch(..), Evidence::Vouch(v))
                    if v.weight > 0 && v.expires_ms > epoch_start_ms =>
                {
                    vouches.push((from, to, u64::from(v.weight)));
                }
                (Slot::Violation(..), _) => {
                    let severity: u64 = kept
                        .iter()
                        .filter_map(|(_, r)| match r.evidence() {
                            Evidence::Violation(v) => Some(
                                u64::from(v.severity)
                                    * decay_q20(
                                        age(r.issued_ms()),
                                        params.violation_half_life_epochs,
                                    ),
                            ),
                            _ => None,
                        })
                        .sum();
                    violations.push((from, to, severity.min(PAIR_SEVERITY_MAX * Q20)));
                }
                _ => {}
            }
        }
        let number = |did: &Did| {
            store
                .identity_number(did)
                .unwrap_or_else(|| unreachable!("seen identities are numbered"))
        };
        for did in store.terminated() {
            standing[number(did) as usize] = Standing::Terminated;
            held[number(did) as usize] = true;
        }
        for did in genesis.governors() {
            standing[number(did) as usize] = Standing::Governor;
            held[number(did) as usize] = true;
        }
        Self {
            params,
            dids,
            held,
            shared: store.base_identities(),
            standing,
            outcomes,
            vouches,
            violations,
        }
    }

    fn base(&self, standing: Standing) -> i64 {
        match standing {
            Standing::Governor => SCORE_MAX as i64,
            Standing::Terminated => 0,
            Standing::Anchored => i64::from(self.params.newcomer_score),
            Standing::Unanchored => i64::from(self.params.unanchored_score),
        }
    }

    fn solve(self, epoch: u64) -> ScoreTable {
        let p = self.params;
        let n = self.dids.len();
        let newcomer = u64::from(p.newcomer_score);
        let mut scores: Vec<i64> = self.standing.iter().map(|s| self.base(*s)).collect();
        let (mut good, mut bad, mut vouched, mut penalty) = (
            vec![0u128; n],
            vec![0u128; n],
            vec![0u128; n],
            vec![0u128; n],
        );
        for _ in 0..p.iterations {
            let weight: Vec<u64> = scores
                .iter()
                .zip(&self.standing)
                .map(|(score, standing)| match standing {
                    Standing::Governor => MILLI,
                    Standing::Terminated => 0,
                    _ => {
                        (*score as u64).saturating_sub(newcomer) * MILLI
                            / (u64::from(SCORE_MAX) - newcomer)
                    }
                })
                .collect();
            for v in [&mut good, &mut bad, &mut vouched, &mut penalty] {
                v.fill(0);
            }
            for &(from, to, s, f) in &self.outcomes {
                let w = u128::from(weight[from as usize]);
                good[to as usize] += w * u128::from(s);
                bad[to as usize] += w * u128::from(f);
            }
            for &(from, to, v) in &self.vouches {
                vouched[to as usize] += u128::from(weight[from as usize]) * u128::from(v);
            }
            for &(from, to, severity) in &self.violations {
                let w = match self.standing[from as usize] {
                    Standing::Anchored => {
                        weight[from as usize].max(u64::from(p.witness_floor_milli))
                    }
                    _ => weight[from as usize],
                };
                penalty[to as usize] += u128::from(w) * u128::from(severity);
            }
            for j in 0..n {
                if matches!(self.standing[j], Standing::Governor | Standing::Terminated) {
                    continue;
                }
                let (s, f) = (good[j] as i128, bad[j] as i128);
                let prior = i128::from(p.prior_outcomes) * (MILLI * Q20) as i128;
                let behaviour = i128::from(p.behaviour_span) * (s - f) / (s + f + prior);
                let boost = (vouched[j] * u128::from(p.vouch_points) / (u128::from(MILLI) * 100))
                    .min(u128::from(p.vouch_cap));
                let cost = penalty[j] * u128::from(p.violation_points)
                    / (u128::from(MILLI) * u128::from(Q20));
                let score = i128::from(self.base(self.standing[j])) + behaviour + boost as i128
                    - cost as i128;
                scores[j] = score.clamp(0, i128::from(SCORE_MAX)) as i64;
            }
        }
        let shared = self.shared;
        let mut shared_scores = vec![NOT_SCORED; shared.len()];
        let mut own: Vec<(Did, u16)> = Vec::new();
        let held = (self.dids.into_iter().zip(scores).zip(self.held))
            .filter_map(|(entry, held)| held.then_some(entry));
        let mut len = 0;
        for (did, score) in held {
            len += 1;
            match shared.binary_search(&did) {
                Ok(i) => shared_scores[i] = score as u16,
                Err(_) => own.push((did, score as u16)),
            }
        }
        own.sort_unstable_by_key(|entry| entry.0);
        let (own, own_scores) = own.into_iter().unzip();
        ScoreTable {
            epoch,
            shared,
            shared_scores: Arc::new(shared_scores),
            own,
            own_scores,
            len,
            unknown: p.unanchored_score as u16,
        }
    }
}

#[cfg(test)]
mod tests;
