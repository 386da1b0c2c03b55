//! The evidence store: a state-based CRDT of signed records.
//!
//! State is a set of records keyed by id, organised in *slots*. Each record
//! belongs to exactly one slot (for example "outcomes reported by R about S")
//! and each slot keeps its best `capacity` records under a total order
//! (its *rank*): counters first for outcome summaries, then issue time, then
//! record id. The state is therefore a join-semilattice: merging keeps, per
//! slot, the top records of the union, which is commutative, associative and
//! idempotent, and any order or duplication of deliveries gives the same
//! state. Superseded records are dropped, so the store grows with the number
//! of (author, subject) edges, not with the number of events.
//!
//! Revocations and terminations sit in slots of their own keyed by what they
//! end, so once a mandate is revoked or an agent terminated it stays so.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::did::Did;
use crate::genesis::Genesis;
use crate::mandate::{MandateId, RevocationCheck};

use super::fingerprint::Fingerprints;
use super::record::{Evidence, EvidenceError, Record, RecordId};

/// Violations kept per (witness, subject) pair.
pub const VIOLATIONS_PER_PAIR_MAX: usize = 16;

/// Which slot a record competes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// An agent's own record.
    Agent(Did),
    /// Outcomes reported by the first about the second.
    Outcome(Did, Did),
    /// The first's vouch for the second.
    Vouch(Did, Did),
    /// Violations witnessed by the first against the second.
    Violation(Did, Did),
    /// Revocations of a mandate, by author.
    Revocation(MandateId, Did),
    /// Terminations of the first, by the second.
    Termination(Did, Did),
}

impl Slot {
    /// The slot of a record.
    pub fn of(record: &Record) -> Self {
        let author = record.author();
        match record.evidence() {
            Evidence::Agent(_) => Self::Agent(author),
            Evidence::Outcome(o) => Self::Outcome(author, o.subject),
            Evidence::Vouch(v) => Self::Vouch(author, v.subject),
            Evidence::Violation(v) => Self::Violation(author, v.subject),
            Evidence::Revocation(r) => Self::Revocation(r.mandate.id(), author),
            Evidence::Termination(t) => Self::Termination(t.subject, author),
        }
    }

    /// How many records the slot keeps.
    pub fn capacity(&self) -> usize {
        match self {
            Self::Violation(..) => VIOLATIONS_PER_PAIR_MAX,
            _ => 1,
        }
    }
}

/// The total order within a slot: higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// For outcome summaries the number of tasks counted; otherwise 0.
    pub count: u64,
    /// Issue time.
    pub issued_ms: u64,
    /// Record id, the final tie-breaker.
    pub id: RecordId,
}

impl Rank {
    /// The rank of a record.
    pub fn of(record: &Record) -> Self {
        let count = match record.evidence() {
            Evidence::Outcome(o) => o.successes + o.failures,
            _ => 0,
        };
        Self {
            count,
            issued_ms: record.issued_ms(),
            id: record.id(),
        }
    }
}

/// A slot's kept records, best first, and its two identities interned.
#[derive(Debug, Clone)]
struct Kept {
    ends: (u32, u32),
    records: Vec<(Rank, Arc<Record>)>,
}

/// What inserting a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record is new and kept; it may have displaced an older one.
    Added {
        /// The record it superseded, if any.
        displaced: Option<RecordId>,
    },
    /// Already held.
    Duplicate,
    /// Outranked by what its slot already holds; not kept.
    Stale,
}

/// The replicated evidence set of one mesh.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    genesis: Arc<Genesis>,
    records: BTreeMap<RecordId, Arc<Record>>,
    slots: BTreeMap<Slot, Kept>,
    /// Every identity named by a kept record or the genesis, numbered in
    /// order of first sight. Numbers are local (they differ between
    /// replicas) and never affect an output: they only make the score
    /// function's passes array-indexed. Lookups only, never iterated.
    index: HashMap<Did, u32>,
    dids: Vec<Did>,
    revoked: BTreeSet<MandateId>,
    terminated: BTreeSet<Did>,
    fingerprints: Fingerprints,
    generation: u64,
}

impl PartialEq for EvidenceStore {
    fn eq(&self, other: &Self) -> bool {
        self.genesis.id() == other.genesis.id() && self.records.keys().eq(other.records.keys())
    }
}

impl EvidenceStore {
    /// An empty store for the mesh of `genesis`.
    pub fn new(genesis: Arc<Genesis>) -> Self {
        let dids = genesis.governors().to_vec();
        let index = dids
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, i as u32))
            .collect();
        Self {
            genesis,
            records: BTreeMap::new(),
            slots: BTreeMap::new(),
            index,
            dids,
            revoked: BTreeSet::new(),
            terminated: BTreeSet::new(),
            fingerprints: Fingerprints::default(),
            generation: 0,
        }
    }

    /// The mesh's genesis.
    pub fn genesis(&self) -> &Arc<Genesis> {
        &self.genesis
    }

    /// Decodes, validates and inserts a record received as bytes.
    pub fn insert_bytes(&mut self, bytes: &[u8]) -> Result<Inserted, EvidenceError> {
        let record = Record::from_bytes(bytes, &self.genesis)?;
        Ok(self.insert(Arc::new(record)))
    }

    /// Inserts an already validated record of this mesh.
    pub fn insert(&mut self, record: Arc<Record>) -> Inserted {
        let id = record.id();
        if self.records.contains_key(&id) {
            return Inserted::Duplicate;
        }
        let slot = Slot::of(&record);
        let rank = Rank::of(&record);
        let ends = (
            self.intern(record.author()),
            self.intern(record.evidence().subject()),
        );
        let kept = self.slots.entry(slot).or_insert_with(|| Kept {
            ends,
            records: Vec::new(),
        });
        let at = kept.records.partition_point(|(r, _)| *r > rank);
        if at >= slot.capacity() {
            if kept.records.is_empty() {
                self.slots.remove(&slot);
            }
            return Inserted::Stale;
        }
        kept.records.insert(at, (rank, Arc::clone(&record)));
        let displaced = (kept.records.len() > slot.capacity())
            .then(|| kept.records.pop())
            .flatten()
            .map(|(r, _)| r.id);
        if let Some(old) = displaced {
            self.records.remove(&old);
            self.fingerprints.toggle(&old, false);
        }
        match record.evidence() {
            Evidence::Revocation(r) => {
                self.revoked.insert(r.mandate.id());
            }
            Evidence::Termination(t) => {
                self.terminated.insert(t.subject);
            }
            _ => {}
        }
        self.fingerprints.toggle(&id, true);
        self.records.insert(id, record);
        self.generation += 1;
        Inserted::Added { displaced }
    }

    /// Merges another replica of the same mesh into this one (join).
    ///
    /// # Panics
    /// If `other` belongs to another mesh.
    pub fn merge(&mut self, other: &EvidenceStore) {
        assert_eq!(
            self.genesis.id(),
            other.genesis.id(),
            "merging stores of different meshes"
        );
        for (id, record) in &other.records {
            if !self.records.contains_key(id) {
                self.insert(Arc::clone(record));
            }
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bumped on every change: a cheap "has anything changed" check.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A record by id.
    pub fn get(&self, id: &RecordId) -> Option<&Arc<Record>> {
        self.records.get(id)
    }

    /// Whether the record is held.
    pub fn contains(&self, id: &RecordId) -> bool {
        self.records.contains_key(id)
    }

    /// All records in id order.
    pub fn records(&self) -> impl Iterator<Item = &Arc<Record>> {
        self.records.values()
    }

    /// Record ids in `[low, high)` (or to the end), in order.
    pub fn ids_in(&self, low: RecordId, high: Option<RecordId>) -> impl Iterator<Item = &RecordId> {
        let upper = match high {
            Some(h) => std::ops::Bound::Excluded(h),
            None => std::ops::Bound::Unbounded,
        };
        self.records
            .range((std::ops::Bound::Included(low), upper))
            .map(|(id, _)| id)
    }

    /// The records kept in each slot, best first, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = (&Slot, impl Iterator<Item = &Arc<Record>>)> {
        self.slots
            .iter()
            .map(|(slot, kept)| (slot, kept.records.iter().map(|(_, r)| r)))
    }

    /// Like [`EvidenceStore::slots`], with the slot's author and subject as
    /// numbers into [`EvidenceStore::identities`].
    pub fn slots_interned(
        &self,
    ) -> impl Iterator<Item = (&Slot, (u32, u32), &[(Rank, Arc<Record>)])> {
        self.slots
            .iter()
            .map(|(slot, kept)| (slot, kept.ends, kept.records.as_slice()))
    }

    /// Every identity seen, in local numbering (see `slots_interned`).
    pub fn identities(&self) -> &[Did] {
        &self.dids
    }

    /// The local number of an identity, if seen.
    pub fn identity_number(&self, did: &Did) -> Option<u32> {
        self.index.get(did).copied()
    }

    fn intern(&mut self, did: Did) -> u32 {
        let next = self.dids.len() as u32;
        let number = *self.index.entry(did).or_insert(next);
        if number == next {
            self.dids.push(did);
        }
        number
    }

    /// The best record in a slot.
    pub fn best(&self, slot: &Slot) -> Option<&Arc<Record>> {
        self.slots.get(slot)?.records.first().map(|(_, r)| r)
    }

    /// An agent's current record.
    pub fn agent(&self, did: &Did) -> Option<&Arc<Record>> {
        self.best(&Slot::Agent(*did))
    }

    /// Identities terminated so far, in order.
    pub fn terminated(&self) -> &BTreeSet<Did> {
        &self.terminated
    }

    pub(super) fn fingerprints(&self) -> &Fingerprints {
        &self.fingerprints
    }
}

impl RevocationCheck for EvidenceStore {
    fn is_revoked(&self, mandate: &MandateId) -> bool {
        self.revoked.contains(mandate)
    }

    fn is_terminated(&self, did: &Did) -> bool {
        self.terminated.contains(did)
    }
}
