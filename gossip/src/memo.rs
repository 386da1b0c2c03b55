//! Results shared between nodes in one process: pure functions, memoised.
//!
//! Decoding and verifying a signed item, applying a policy change to a
//! document with given heads, and computing a score table from a given
//! evidence set are pure functions of their inputs. Nodes in one process
//! (the simulator's million, or the demo's five) can therefore share the
//! results instead of each recomputing and storing its own copy: a node
//! with a [`Memo`] gets exactly what it would have computed, only sooner
//! and without a copy. Entries are held weakly, so memory is freed once no
//! node holds a result. A node without a memo computes everything itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use automerge::ChangeHash;
use starling_trust::keys::Domain;
use starling_trust::policy::Policy;
use starling_trust::wire::{DecodeError, Hash};
use starling_trust::{EvidenceError, Genesis, Record, ScoreTable};

use crate::message::SignedMessage;

type PolicyKey = (Vec<ChangeHash>, ChangeHash);
type ScoreKey = (u64, [u8; 16], u64);

/// A shared memo of pure results. Lookups only; never iterated.
#[derive(Debug)]
pub struct Memo {
    genesis: Arc<Genesis>,
    genesis_policy: Arc<Policy>,
    records: Mutex<HashMap<Hash, Weak<Record>>>,
    messages: Mutex<HashMap<(Hash, bool), Weak<SignedMessage>>>,
    policies: Mutex<HashMap<PolicyKey, Weak<Policy>>>,
    scores: Mutex<HashMap<ScoreKey, Weak<ScoreTable>>>,
}

/// Looks `key` up in a weak map, or computes, stores and returns the value.
fn memoised<K: std::hash::Hash + Eq, V, E>(
    map: &Mutex<HashMap<K, Weak<V>>>,
    key: K,
    compute: impl FnOnce() -> Result<V, E>,
) -> Result<Arc<V>, E> {
    if let Some(hit) = map
        .lock()
        .ok()
        .and_then(|m| m.get(&key).and_then(Weak::upgrade))
    {
        return Ok(hit);
    }
    let value = Arc::new(compute()?);
    if let Ok(mut m) = map.lock() {
        if m.len() > 4 * 1024 * 1024 {
            m.retain(|_, w| w.strong_count() > 0);
        }
        m.insert(key, Arc::downgrade(&value));
    }
    Ok(value)
}

impl Memo {
    /// A memo for the nodes of one mesh.
    pub fn new(genesis: Arc<Genesis>) -> Arc<Self> {
        let genesis_policy = Arc::new(Policy::from_genesis(&genesis));
        Arc::new(Self {
            genesis,
            genesis_policy,
            records: Mutex::default(),
            messages: Mutex::default(),
            policies: Mutex::default(),
            scores: Mutex::default(),
        })
    }

    /// The mesh this memo serves.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }

    pub(crate) fn genesis_policy(&self) -> Arc<Policy> {
        Arc::clone(&self.genesis_policy)
    }

    pub(crate) fn record(&self, bytes: &[u8]) -> Result<Arc<Record>, EvidenceError> {
        let id = starling_trust::wire::sha256(bytes);
        memoised(&self.records, id, || {
            Record::from_bytes(bytes, &self.genesis)
        })
    }

    pub(crate) fn message(
        &self,
        bytes: &[u8],
        max: usize,
        domain: Domain,
    ) -> Result<Arc<SignedMessage>, DecodeError> {
        let id = starling_trust::wire::sha256(bytes);
        memoised(&self.messages, (id, domain == Domain::Direct), || {
            SignedMessage::open(bytes, max, domain, &self.genesis.id())
        })
    }

    pub(crate) fn policy_after(
        &self,
        key: PolicyKey,
        apply: impl FnOnce() -> Result<Policy, starling_trust::policy::PolicyError>,
    ) -> Result<Arc<Policy>, starling_trust::policy::PolicyError> {
        memoised(&self.policies, key, apply)
    }

    pub(crate) fn scores(
        &self,
        key: ScoreKey,
        compute: impl FnOnce() -> ScoreTable,
    ) -> Arc<ScoreTable> {
        memoised(&self.scores, key, || {
            Ok::<_, std::convert::Infallible>(compute())
        })
        .unwrap_or_else(|e| match e {})
    }
}
