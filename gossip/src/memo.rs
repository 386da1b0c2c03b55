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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use automerge::ChangeHash;
use starling_trust::did::DidError;
use starling_trust::evidence::reconcile::Fingerprint;
use starling_trust::keys::Domain;
use starling_trust::policy::{ChangeError, Policy, PolicyChange};
use starling_trust::wire::{DecodeError, Hash, sha256};
use starling_trust::{Did, EvidenceError, EvidenceStore, Genesis, Record, ScoreTable};

use crate::broadcast::TreeKey;
use crate::message::SignedMessage;

type PolicyKey = (Vec<ChangeHash>, ChangeHash);
type ScoreKey = (u64, Fingerprint, u64);

/// Results most recently computed are also held strongly, this many per
/// kind: a message is received by every node over a second or so, long
/// after the node that first decoded it may have let go of it.
const RECENT: usize = 4_096;

/// Most DIDs remembered as checked; past it the set starts again (a full
/// set is about 200 MB; a million nodes' keys take a quarter of it).
const DIDS_MAX: usize = 4 * 1024 * 1024;

/// Score tables held strongly beyond their users: none is needed, as the
/// node that computed a table holds it until its next refresh, when nodes
/// with the same evidence compute theirs. (Tables are large: 34 bytes an
/// identity, so [`RECENT`] of them held 1.5 GB in a churn run.)
const RECENT_SCORES: usize = 0;

/// Tables of evidence without its periphery (see
/// [`ScoreTable::compute_around_periphery`]) held strongly: no node
/// holds one itself, only the tables extended from it, and the same few
/// (a snapshot's evidence with and without the records still spreading)
/// serve every node while new agents keep joining. Two bytes an identity
/// each at most, as they share their identities with the snapshot.
const RECENT_CORES: usize = 16;

/// One kind of shared result: weak by key, and the most recent strong.
#[derive(Debug)]
struct Shared<K, V> {
    by_key: HashMap<K, Weak<V>>,
    recent: VecDeque<Arc<V>>,
    recent_max: usize,
}

impl<K, V> Default for Shared<K, V> {
    fn default() -> Self {
        Self::keeping(RECENT)
    }
}

impl<K, V> Shared<K, V> {
    /// Holding the `recent_max` most recent results strongly.
    fn keeping(recent_max: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            recent: VecDeque::new(),
            recent_max,
        }
    }
}

/// A shared memo of pure results. Lookups only; never iterated.
#[derive(Debug)]
pub struct Memo {
    genesis: Arc<Genesis>,
    genesis_policy: Arc<Policy>,
    evidence: Option<Arc<EvidenceStore>>,
    records: Mutex<Shared<Hash, Record>>,
    messages: Mutex<Shared<(Hash, bool), SignedMessage>>,
    policies: Mutex<Shared<PolicyKey, Policy>>,
    changes: Mutex<Shared<Hash, PolicyChange>>,
    scores: Mutex<Shared<ScoreKey, ScoreTable>>,
    /// Tables of evidence without its periphery.
    cores: Mutex<Shared<ScoreKey, ScoreTable>>,
    /// Tables computed in full so far (see [`Memo::score_computations`]).
    cores_computed: AtomicU64,
    /// The scores tables give their base's identities, by content (see
    /// [`ScoreTable::share_scores`]).
    score_vectors: Mutex<Shared<(usize, Hash), Vec<u16>>>,
    items: Mutex<Shared<Hash, Vec<u8>>>,
    tree_keys: Mutex<Shared<TreeKey, TreeKey>>,
    /// Keys already checked to be valid DIDs (a curve-point
    /// decompression each, the costliest step of learning a peer).
    dids: Mutex<HashSet<Did>>,
    /// DIDs held by many nodes at once (their views' hints), one copy each.
    shared_dids: Mutex<Shared<Did, Did>>,
}

/// Looks `key` up, or computes, stores and returns the value.
fn memoised<K: std::hash::Hash + Eq, V, E>(
    shared: &Mutex<Shared<K, V>>,
    key: K,
    compute: impl FnOnce() -> Result<V, E>,
) -> Result<Arc<V>, E> {
    memoised_shared(shared, key, || compute().map(Arc::new))
}

/// [`memoised`] for a computation that may answer with a value it shares.
fn memoised_shared<K: std::hash::Hash + Eq, V, E>(
    shared: &Mutex<Shared<K, V>>,
    key: K,
    compute: impl FnOnce() -> Result<Arc<V>, E>,
) -> Result<Arc<V>, E> {
    if let Some(hit) = shared
        .lock()
        .ok()
        .and_then(|m| m.by_key.get(&key).and_then(Weak::upgrade))
    {
        return Ok(hit);
    }
    let value = compute()?;
    if let Ok(mut m) = shared.lock() {
        if m.by_key.len() > 4 * 1024 * 1024 {
            m.by_key.retain(|_, w| w.strong_count() > 0);
        }
        m.by_key.insert(key, Arc::downgrade(&value));
        if m.recent_max > 0 {
            if m.recent.len() == m.recent_max {
                m.recent.pop_front();
            }
            m.recent.push_back(Arc::clone(&value));
        }
    }
    Ok(value)
}

/// [`memoised`] for a computation that cannot fail.
fn memoised_total<K: std::hash::Hash + Eq, V>(
    shared: &Mutex<Shared<K, V>>,
    key: K,
    compute: impl FnOnce() -> V,
) -> Arc<V> {
    memoised(shared, key, || Ok::<_, std::convert::Infallible>(compute()))
        .unwrap_or_else(|e| match e {})
}

impl Memo {
    /// A memo for the nodes of one mesh.
    pub fn new(genesis: Arc<Genesis>) -> Arc<Self> {
        Self::with_evidence(genesis, None)
    }

    /// A memo whose nodes start from one shared evidence snapshot (each
    /// node's store overlays it, see [`EvidenceStore::overlay`]), as nodes
    /// that have already converged on it would hold.
    ///
    /// # Panics
    /// If the snapshot belongs to another mesh.
    pub fn with_evidence(genesis: Arc<Genesis>, evidence: Option<Arc<EvidenceStore>>) -> Arc<Self> {
        if let Some(e) = &evidence {
            assert_eq!(e.genesis().id(), genesis.id(), "evidence of another mesh");
        }
        let genesis_policy = Arc::new(Policy::from_genesis(&genesis));
        // The snapshot's records, as every node would decode them: the
        // snapshot holds them, so they stay.
        let mut records = Shared::default();
        for record in evidence.iter().flat_map(|e| e.records()) {
            records.by_key.insert(record.id(), Arc::downgrade(record));
        }
        Arc::new(Self {
            genesis,
            genesis_policy,
            evidence,
            records: Mutex::new(records),
            messages: Mutex::default(),
            policies: Mutex::default(),
            changes: Mutex::default(),
            scores: Mutex::new(Shared::keeping(RECENT_SCORES)),
            cores: Mutex::new(Shared::keeping(RECENT_CORES)),
            cores_computed: AtomicU64::new(0),
            score_vectors: Mutex::new(Shared::keeping(RECENT_SCORES)),
            items: Mutex::default(),
            tree_keys: Mutex::default(),
            dids: Mutex::default(),
            shared_dids: Mutex::new(Shared::keeping(0)),
        })
    }

    /// The mesh this memo serves.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }

    /// A new node's evidence store: an overlay of the shared snapshot, if any.
    pub(crate) fn evidence(&self) -> Option<EvidenceStore> {
        self.evidence.clone().map(EvidenceStore::overlay)
    }

    /// One copy of `did` for every node that keeps it.
    pub(crate) fn shared_did(&self, did: Did) -> Arc<Did> {
        memoised_total(&self.shared_dids, did, || did)
    }

    /// `bytes` as a DID, checked once per process.
    pub(crate) fn did(&self, bytes: &[u8]) -> Result<Did, DidError> {
        let known = <&[u8; 32]>::try_from(bytes)
            .ok()
            .and_then(|key| self.dids.lock().ok()?.get(key).copied());
        if let Some(did) = known {
            return Ok(did);
        }
        let did = Did::from_bytes(bytes)?;
        if let Ok(mut dids) = self.dids.lock() {
            if dids.len() >= DIDS_MAX {
                dids.clear();
            }
            dids.insert(did);
        }
        Ok(did)
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

    pub(crate) fn policy_change(&self, bytes: &[u8]) -> Result<Arc<PolicyChange>, ChangeError> {
        memoised(&self.changes, sha256(bytes), || {
            PolicyChange::from_bytes(bytes, &self.genesis)
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

    /// One copy of an item's bytes (`id` is their hash) for every node
    /// that caches it to answer grafts.
    pub(crate) fn item(&self, id: Hash, bytes: Vec<u8>) -> Arc<Vec<u8>> {
        memoised_total(&self.items, id, || bytes)
    }

    /// One copy of a tree's key (topic and origin) for every node.
    pub(crate) fn tree_key(&self, key: &TreeKey) -> Arc<TreeKey> {
        memoised_total(&self.tree_keys, key.clone(), || key.clone())
    }

    /// The score table of `store` at `epoch`: one computed for an equal
    /// store, else `extended` if it gives one, else one computed around
    /// the store's periphery (see
    /// [`ScoreTable::compute_around_periphery`]).
    pub(crate) fn scores(
        &self,
        store: &EvidenceStore,
        epoch: u64,
        extended: impl FnOnce() -> Option<ScoreTable>,
    ) -> Arc<ScoreTable> {
        let (count, fingerprint) = store.digest();
        let table = memoised_shared(&self.scores, (count, fingerprint, epoch), || {
            let table = match extended() {
                Some(table) => Arc::new(table),
                None => ScoreTable::compute_around_periphery(store, epoch, |core, compute| {
                    self.core_scores((core.0, core.1, epoch), compute)
                }),
            };
            Ok::<_, std::convert::Infallible>(table)
        });
        table.unwrap_or_else(|e| match e {})
    }

    /// How many score tables the nodes sharing this memo computed in full
    /// so far: the costly part of scoring, over every identity, which
    /// extending a table by newcomers avoids.
    pub fn score_computations(&self) -> u64 {
        self.cores_computed.load(Ordering::Relaxed)
    }

    /// The table of evidence without its periphery with this digest, its
    /// scores held once for every table that agrees on them.
    fn core_scores(&self, key: ScoreKey, compute: &dyn Fn() -> ScoreTable) -> Arc<ScoreTable> {
        memoised_total(&self.cores, key, || {
            self.cores_computed.fetch_add(1, Ordering::Relaxed);
            let mut table = compute();
            table.share_scores(|scores| {
                let bytes: Vec<u8> = scores.iter().flat_map(|s| s.to_le_bytes()).collect();
                let key = (scores.len(), sha256(&bytes));
                memoised_total(&self.score_vectors, key, || scores.as_ref().clone())
            });
            table
        })
    }
}
