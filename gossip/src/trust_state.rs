//! The trust side of a node: genesis, evidence, policy and current scores,
//! and the checks built from them.

use std::collections::BTreeSet;
use std::sync::Arc;

use starling_trust::mandate::MandateError;
use starling_trust::policy::{Action, Actor, Policy, Ring};
use starling_trust::{Authority, Did, Evidence, EvidenceStore, Genesis, ScoreTable, Tier};

/// Why an agent may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No agent record for it has reached this node.
    #[error("no agent record is known for {0}")]
    Unknown(Did),
    /// Its mandate chain does not verify now.
    #[error("mandate: {0}")]
    Mandate(#[from] MandateError),
    /// The policy denies it.
    #[error("policy denies {action} on `{resource}`: {reason}")]
    Denied {
        /// The action.
        action: &'static str,
        /// The resource.
        resource: String,
        /// The rule's reason.
        reason: String,
    },
}

/// Genesis, evidence, policy and scores of one node.
#[derive(Debug)]
pub struct TrustState {
    genesis: Arc<Genesis>,
    store: EvidenceStore,
    policy: Policy,
    scores: Arc<ScoreTable>,
    scored_generation: u64,
    /// Agents admitted since the last score refresh: newcomers until then.
    fresh: BTreeSet<Did>,
}

impl TrustState {
    /// The trust state of a new node of the mesh.
    pub fn new(genesis: Arc<Genesis>, now_ms: u64) -> Self {
        let store = EvidenceStore::new(Arc::clone(&genesis));
        let scores = Arc::new(ScoreTable::compute(&store, genesis.epoch_at(now_ms)));
        let policy = Policy::from_genesis(&genesis);
        Self { genesis, store, policy, scores, scored_generation: 0, fresh: BTreeSet::new() }
    }

    /// The genesis.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }
    /// The evidence store.
    pub fn store(&self) -> &EvidenceStore {
        &self.store
    }
    /// The evidence store, for inserting.
    pub fn store_mut(&mut self) -> &mut EvidenceStore {
        &mut self.store
    }
    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The policy, for applying changes.
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }
    /// The current score table.
    pub fn scores(&self) -> &Arc<ScoreTable> {
        &self.scores
    }

    /// Recomputes scores if evidence changed or the epoch turned.
    pub fn refresh_scores(&mut self, now_ms: u64) -> bool {
        let epoch = self.genesis.epoch_at(now_ms);
        if self.store.generation() == self.scored_generation && self.scores.epoch() == epoch {
            return false;
        }
        self.scores = Arc::new(ScoreTable::compute(&self.store, epoch));
        self.scored_generation = self.store.generation();
        self.fresh.clear();
        true
    }

    /// Marks a just-admitted agent as a newcomer until scores are refreshed.
    pub fn note_fresh(&mut self, did: Did) {
        self.fresh.insert(did);
    }

    /// The tier of an identity: a fresh newcomer's until scores catch up.
    pub fn tier(&self, did: &Did) -> Tier {
        let scored = self.scores.tier(did);
        match self.fresh.contains(did) {
            true => scored.max(Tier::of(self.genesis.params().newcomer_score)),
            false => scored,
        }
    }

    /// What an agent is authorised for now, from its agent record.
    pub fn authority(&self, did: &Did, now_ms: u64) -> Result<Authority, Refusal> {
        let record = self.store.agent(did).ok_or(Refusal::Unknown(*did))?;
        let Evidence::Agent(agent) = record.evidence() else { return Err(Refusal::Unknown(*did)) };
        Ok(agent.chain.verify(&self.genesis, now_ms, &self.store)?)
    }

    /// Who authorised an agent, from its agent record (not checked for time).
    pub fn authority_principal(&self, did: &Did) -> Option<Did> {
        match self.store.agent(did)?.evidence() {
            Evidence::Agent(agent) => agent.chain.leaf().map(|m| m.issuer()),
            _ => None,
        }
    }

    /// Whether `authority`'s agent may do `action` on `resource`.
    pub fn decide(&self, authority: &Authority, action: Action, resource: &str) -> Result<(), Refusal> {
        let actor = Actor {
            did: &authority.agent,
            principal: &authority.principal,
            tier: self.tier(&authority.agent),
            scope: &authority.scope,
        };
        let decision = self.policy.decide(&actor, action, resource);
        match decision.is_allowed() {
            true => Ok(()),
            false => Err(Refusal::Denied {
                action: action.name(),
                resource: resource.chars().take(64).collect(),
                reason: decision.reason.to_string(),
            }),
        }
    }

    /// The ring (rate limits) of an identity's tier.
    pub fn ring(&self, did: &Did) -> Ring {
        self.policy.compiled().ring(self.tier(did))
    }
}
