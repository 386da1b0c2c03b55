//! The trust side of a node: genesis, evidence, policy and current scores,
//! and the checks built from them.

use starling_trust::small_map::SmallMap;
use std::sync::Arc;

use starling_trust::keys::Domain;
use starling_trust::mandate::MandateError;
use starling_trust::policy::{
    Action, Actor, Applied, ChangeError, Policy, PolicyChange, PolicyError, Ring,
};
use starling_trust::wire::DecodeError;
use starling_trust::{
    Authority, Did, Evidence, EvidenceError, EvidenceStore, Genesis, Inserted, Record, ScoreTable,
    Succession, Tier,
};

use crate::broadcast::TreeKey;
use crate::memo::Memo;
use crate::message::SignedMessage;

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

/// The score table of `store` at `epoch`, computed once per process with a
/// memo; extended from `previous` instead where that is the table of
/// `store` before the agent records of the agents given with it arrived
/// (see [`ScoreTable::with_newcomers`]) and has not outgrown it.
fn score(
    store: &EvidenceStore,
    epoch: u64,
    memo: Option<&Memo>,
    previous: Option<(&ScoreTable, &[Did])>,
) -> Arc<ScoreTable> {
    let extended = || {
        previous
            .filter(|(table, _)| table.epoch() == epoch && !table.outgrown(store))
            .and_then(|(table, agents)| table.with_newcomers(store, agents))
    };
    match memo {
        Some(m) => m.scores(store, epoch, extended),
        None => Arc::new(extended().unwrap_or_else(|| ScoreTable::compute(store, epoch))),
    }
}

/// Genesis, evidence, policy and scores of one node.
#[derive(Debug)]
pub struct TrustState {
    genesis: Arc<Genesis>,
    store: EvidenceStore,
    policy: Arc<Policy>,
    scores: Arc<ScoreTable>,
    scored_generation: u64,
    /// The agents whose agent records are all the evidence added since
    /// `scores` was computed, or `None` once anything else was added.
    newcomers: Option<Vec<Did>>,
    /// Agents admitted while the table was stale: newcomers until the next
    /// refresh.
    fresh: SmallMap<Did, ()>,
    memo: Option<Arc<Memo>>,
}

impl TrustState {
    /// The trust state of a new node of the mesh, sharing pure results
    /// through `memo` if given.
    pub fn new(genesis: Arc<Genesis>, now_ms: u64, memo: Option<Arc<Memo>>) -> Self {
        let store = memo
            .as_ref()
            .and_then(|m| m.evidence())
            .unwrap_or_else(|| EvidenceStore::new(Arc::clone(&genesis)));
        let epoch = genesis.epoch_at(now_ms);
        let scores = score(&store, epoch, memo.as_deref(), None);
        let policy = match &memo {
            Some(m) => m.genesis_policy(),
            None => Arc::new(Policy::from_genesis(&genesis)),
        };
        let scored_generation = store.generation();
        Self {
            genesis,
            store,
            policy,
            scores,
            scored_generation,
            newcomers: Some(Vec::new()),
            fresh: SmallMap::new(),
            memo,
        }
    }

    /// Decodes and verifies a record (once per process with a memo).
    pub fn decode_record(&self, bytes: &[u8]) -> Result<Arc<Record>, EvidenceError> {
        match &self.memo {
            Some(m) => m.record(bytes),
            None => Record::from_bytes(bytes, &self.genesis).map(Arc::new),
        }
    }

    /// Reads and verifies a policy change envelope (once per process with
    /// a memo).
    pub fn decode_policy_change(&self, bytes: &[u8]) -> Result<Arc<PolicyChange>, ChangeError> {
        match &self.memo {
            Some(m) => m.policy_change(bytes),
            None => PolicyChange::from_bytes(bytes, &self.genesis).map(Arc::new),
        }
    }

    /// `bytes` as a DID (checked once per process with a memo).
    pub fn did(&self, bytes: &[u8]) -> Result<Did, starling_trust::DidError> {
        match &self.memo {
            Some(m) => m.did(bytes),
            None => Did::from_bytes(bytes),
        }
    }

    /// `did` to keep, one copy for all the nodes of a process with a memo.
    pub fn shared_did(&self, did: Did) -> Arc<Did> {
        match &self.memo {
            Some(m) => m.shared_did(did),
            None => Arc::new(did),
        }
    }

    /// Decodes and verifies a signed message (once per process with a memo).
    pub fn open_message(
        &self,
        bytes: &[u8],
        max: usize,
        domain: Domain,
    ) -> Result<Arc<SignedMessage>, DecodeError> {
        match &self.memo {
            Some(m) => m.message(bytes, max, domain),
            None => SignedMessage::open(bytes, max, domain, &self.genesis.id()).map(Arc::new),
        }
    }

    /// Applies a verified policy change.
    pub fn apply_policy(&mut self, change: Arc<PolicyChange>) -> Result<Applied, PolicyError> {
        if self.policy.changes().contains_key(&change.hash()) {
            return Ok(Applied::Duplicate);
        }
        let Some(memo) = self.memo.clone() else {
            return Arc::make_mut(&mut self.policy).apply(change);
        };
        let before = self.policy.heads();
        let key = (before.clone(), change.hash());
        let current = Arc::clone(&self.policy);
        self.policy = memo.policy_after(key, || {
            let mut next = (*current).clone();
            next.apply(change)?;
            Ok(next)
        })?;
        Ok(match self.policy.heads() == before {
            true => Applied::Pending,
            false => Applied::Applied,
        })
    }

    /// An item's bytes to keep (`id` is their hash): shared with the other
    /// nodes of the process through the memo, if any.
    pub(crate) fn keep_item(&self, id: [u8; 32], bytes: Vec<u8>) -> Arc<Vec<u8>> {
        match &self.memo {
            Some(m) => m.item(id, bytes),
            None => Arc::new(bytes),
        }
    }

    /// One copy of a tree's key for every node that keeps the tree.
    pub(crate) fn shared_tree_key(&self, key: &TreeKey) -> Arc<TreeKey> {
        match &self.memo {
            Some(m) => m.tree_key(key),
            None => Arc::new(key.clone()),
        }
    }

    /// The genesis.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }
    /// The evidence store.
    pub fn store(&self) -> &EvidenceStore {
        &self.store
    }
    /// Re-expresses the evidence as an overlay on the later snapshot of
    /// `succession` if that leaves less held here (see
    /// [`EvidenceStore::rebased_along`]): nothing the node answers or
    /// computes changes, not even the store's generation.
    pub fn rebase_evidence(&mut self, succession: &Succession) {
        let rebased = self.store.rebased_along(succession);
        if rebased.difference_len() < self.store.difference_len() {
            self.store = rebased;
        }
    }

    /// Inserts a verified record (see [`EvidenceStore::insert`]).
    pub fn insert(&mut self, record: Arc<Record>) -> Inserted {
        let agent = matches!(record.evidence(), Evidence::Agent(_)).then(|| record.author());
        let inserted = self.store.insert(record);
        if matches!(inserted, Inserted::Added { .. }) {
            match (agent, self.newcomers.as_mut()) {
                (Some(did), Some(agents)) => agents.push(did),
                _ => self.newcomers = None,
            }
        }
        inserted
    }
    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
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
        let previous = (self.newcomers.as_deref()).map(|agents| (self.scores.as_ref(), agents));
        self.scores = score(&self.store, epoch, self.memo.as_deref(), previous);
        self.scored_generation = self.store.generation();
        self.newcomers = Some(Vec::new());
        self.fresh = SmallMap::new();
        true
    }

    /// Marks a just-admitted agent as a newcomer until scores are
    /// refreshed, if the table is stale at all (evidence changed or the
    /// epoch turned since): a current table already scores the agent as it
    /// should, and a set that only a refresh empties would otherwise
    /// collect every agent admitted while evidence is quiet.
    pub fn note_fresh(&mut self, did: Did, now_ms: u64) {
        let stale = self.store.generation() != self.scored_generation
            || self.scores.epoch() != self.genesis.epoch_at(now_ms);
        if stale {
            self.fresh.insert(did, ());
        }
    }

    /// The tier of an identity. An agent admitted here while the table was
    /// stale, or whose agent record arrived after the last score refresh,
    /// counts as a newcomer
    /// until scores catch up, rather than as the stranger the stale table
    /// would make it.
    pub fn tier(&self, did: &Did) -> Tier {
        let scored = self.scores.tier(did);
        let unscored_agent = !self.scores.contains(did) && self.store.agent(did).is_some();
        match self.fresh.contains_key(did) || unscored_agent {
            true => scored.max(Tier::of(self.genesis.params().newcomer_score)),
            false => scored,
        }
    }

    /// What an agent is authorised for now, from its agent record.
    pub fn authority(&self, did: &Did, now_ms: u64) -> Result<Authority, Refusal> {
        let record = self.store.agent(did).ok_or(Refusal::Unknown(*did))?;
        let Evidence::Agent(agent) = record.evidence() else {
            return Err(Refusal::Unknown(*did));
        };
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
    pub fn decide(
        &self,
        authority: &Authority,
        action: Action,
        resource: &str,
    ) -> Result<(), Refusal> {
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
