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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use crate::did::Did;
use crate::genesis::Genesis;
use crate::mandate::{MandateId, RevocationCheck};
use crate::small_map::SmallMap;

use super::fingerprint::{Accumulator, Fingerprints};
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

/// What of a store a score table can be extended by rather than computed
/// over (see [`EvidenceStore::periphery`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Periphery {
    /// Lone agents, with their record's id, in DID order: agents the
    /// bottom snapshot does not name, not governors, not terminated, and
    /// named by no other record held save inert ones. Each has no edges,
    /// so it scores its base and moves no one else.
    pub lone: Vec<(Did, RecordId)>,
    /// Outcome, vouch and violation slots about terminated identities, in
    /// slot order. A terminated identity scores 0 and lends no weight, and
    /// these slots only add to their subject's sums, so they move no
    /// score; they only make their author known.
    pub inert: Vec<InertSlot>,
}

/// An inert slot (see [`Periphery::inert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InertSlot {
    /// The slot.
    pub slot: Slot,
    /// Its author, who reported on or vouched for the terminated subject.
    pub author: Did,
    /// The records it keeps.
    pub ids: Vec<RecordId>,
}

impl Periphery {
    /// The ids of every record listed.
    pub fn record_ids(&self) -> impl Iterator<Item = &RecordId> {
        let inert = self.inert.iter().flat_map(|s| &s.ids);
        self.lone.iter().map(|(_, id)| id).chain(inert)
    }
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
///
/// A store may grow from a shared snapshot (its *base*, see
/// [`EvidenceStore::overlay`]): it then holds only what it added since, and
/// the base records it displaced, and reads fall through to the base. A
/// million simulated nodes that start from one converged roster share it
/// instead of holding a million copies; a real node holds no base.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    genesis: Arc<Genesis>,
    base: Option<Arc<EvidenceStore>>,
    /// Records added here (never also visible in the base).
    records: SmallMap<RecordId, Arc<Record>>,
    /// Base records not held here: displaced here, or never received
    /// (see [`EvidenceStore::rebased`]).
    shadowed: SmallMap<RecordId, ()>,
    /// Slots changed here, whole (possibly emptied); the others are the
    /// base's.
    slots: SmallMap<Slot, Kept>,
    /// Identities numbered here, after the base's. Numbers are local:
    /// they differ between replicas, and between a store and its rebased
    /// form, whose base may number identities the store never saw. They
    /// never affect an output: they only make the score function's passes
    /// array-indexed (scores cover only identities the evidence holds).
    /// Lookups only, never iterated.
    index: HashMap<Did, u32>,
    dids: Vec<Did>,
    /// Revoked mandates and terminated agents, the base's included: one
    /// copy shared with the base until this store adds to them.
    revoked: SharedSet<MandateId>,
    terminated: SharedSet<Did>,
    /// Fingerprints of the difference from the base.
    fingerprints: Fingerprints,
    generation: u64,
    /// Every identity numbered here, sorted, once asked for (by the score
    /// tables of the stores over this one; emptied on a change).
    sorted_identities: OnceLock<Arc<[Did]>>,
    /// Agent records by the first 8 bytes of their DID (`None` where two
    /// agents share them), once an overlay reads through this store and it
    /// holds [`AGENT_INDEX_SLOTS_MIN`] slots or more (emptied on a change).
    /// Every node of a large simulated mesh looks peers' agent records up
    /// in one shared snapshot, and a hash probe there is one cache miss
    /// where a search of the ordered slots is dozens.
    agents: OnceLock<AgentIndex>,
}

/// Slots from which a store read through by overlays indexes its agents:
/// a snapshot of what a simulated mesh added in a few seconds holds
/// hundreds, and each search of them was a dozen DID comparisons.
const AGENT_INDEX_SLOTS_MIN: usize = 64;

/// Agent records by the first 8 bytes of their DID ([`Did::prefix`], see
/// `EvidenceStore::agents`).
type AgentIndex = HashMap<u64, Option<Arc<Record>>, BuildHasherDefault<KeyHasher>>;

/// Hashes a DID's first 8 bytes to themselves: they are a public key's,
/// as good as random, and a store read through by overlays (the only kind
/// indexed) is a simulator's, whose keys are drawn from its seed; SipHash
/// cost a lookup more than the probe.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl PartialEq for EvidenceStore {
    fn eq(&self, other: &Self) -> bool {
        self.genesis.id() == other.genesis.id() && self.ids().eq(other.ids())
    }
}

/// A slot, its (author, subject) numbers, and its kept records best first.
pub type InternedSlot<'a> = (&'a Slot, (u32, u32), &'a [(Rank, Arc<Record>)]);

type Entries<'a> = Box<dyn Iterator<Item = (&'a RecordId, &'a Arc<Record>)> + 'a>;
type SlotEntries<'a> = Box<dyn Iterator<Item = (&'a Slot, &'a Kept)> + 'a>;

/// Whether two slots keep the same records.
fn same_records(a: &[(Rank, Arc<Record>)], b: &[(Rank, Arc<Record>)]) -> bool {
    a.iter().map(|(r, _)| r.id).eq(b.iter().map(|(r, _)| r.id))
}

/// One snapshot followed by another, with the slots in which they differ
/// found once: every store over the first moves to the second at the cost
/// of its own difference (see [`EvidenceStore::rebased_along`]), not of
/// everything either snapshot holds beyond their common base.
#[derive(Debug, Clone)]
pub struct Succession {
    from: Arc<EvidenceStore>,
    to: Arc<EvidenceStore>,
    slots: BTreeSet<Slot>,
}

impl Succession {
    /// `from` followed by `to`.
    pub fn new(from: Arc<EvidenceStore>, to: Arc<EvidenceStore>) -> Self {
        let slots = (from.differing_slots(&to).into_iter())
            .filter(|slot| !same_records(from.kept_records(slot), to.kept_records(slot)))
            .collect();
        Self { from, to, slots }
    }
}

/// Merges two key-ordered iterators; on equal keys the second wins.
fn merge_by_key<'a, K: Ord + 'a, V: 'a>(
    first: impl Iterator<Item = (&'a K, &'a V)> + 'a,
    second: impl Iterator<Item = (&'a K, &'a V)> + 'a,
) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
    let mut first = first.peekable();
    let mut second = second.peekable();
    std::iter::from_fn(move || match (first.peek(), second.peek()) {
        (Some((a, _)), Some((b, _))) => match a.cmp(b) {
            std::cmp::Ordering::Less => first.next(),
            std::cmp::Ordering::Equal => {
                first.next();
                second.next()
            }
            std::cmp::Ordering::Greater => second.next(),
        },
        (Some(_), None) => first.next(),
        (None, _) => second.next(),
    })
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
            base: None,
            records: SmallMap::new(),
            shadowed: SmallMap::new(),
            slots: SmallMap::new(),
            index,
            dids,
            revoked: SharedSet::default(),
            terminated: SharedSet::default(),
            fingerprints: Fingerprints::default(),
            generation: 0,
            sorted_identities: OnceLock::new(),
            agents: OnceLock::new(),
        }
    }

    /// A store holding exactly what `base` holds, sharing it: it costs a
    /// few words until it diverges, then what it added or displaced.
    pub fn overlay(base: Arc<EvidenceStore>) -> Self {
        Self {
            genesis: Arc::clone(&base.genesis),
            records: SmallMap::new(),
            shadowed: SmallMap::new(),
            slots: SmallMap::new(),
            index: HashMap::new(),
            dids: Vec::new(),
            revoked: base.revoked.clone(),
            terminated: base.terminated.clone(),
            fingerprints: Fingerprints::default(),
            generation: base.generation,
            sorted_identities: OnceLock::new(),
            agents: OnceLock::new(),
            base: Some(base),
        }
    }

    /// This store's exact state expressed as an overlay on `base`: the same
    /// records, slots, revocations, terminations and generation, holding
    /// only what differs from `base` (records it adds, base records it
    /// lacks, and the slots where the two differ). Simulated nodes that
    /// have all caught up with a later snapshot share it again, instead of
    /// each holding its own copy of everything that spread since the
    /// snapshot they started from. Any store of the mesh can be expressed
    /// on any base of the same mesh; the closer the two, the smaller the
    /// result (see [`EvidenceStore::difference_len`]).
    ///
    /// # Panics
    /// If `base` belongs to another mesh.
    pub fn rebased(&self, base: Arc<EvidenceStore>) -> Self {
        let slots = self.differing_slots(&base);
        self.rebased_over(base, slots)
    }

    /// [`EvidenceStore::rebased`] onto the succession's later snapshot,
    /// for a store over its earlier one at the cost of the slots it changed
    /// itself and those in which the two snapshots differ (any other store
    /// is rebased in full).
    pub fn rebased_along(&self, succession: &Succession) -> Self {
        let to = Arc::clone(&succession.to);
        match self.base.as_ref() {
            Some(base) if Arc::ptr_eq(base, &succession.from) => {
                let own = self.slots.keys().copied();
                let slots = own.chain(succession.slots.iter().copied()).collect();
                self.rebased_over(to, slots)
            }
            _ => self.rebased(to),
        }
    }

    /// `rebased`, given every slot in which this store and `base` may
    /// differ.
    fn rebased_over(&self, base: Arc<EvidenceStore>, slots: BTreeSet<Slot>) -> Self {
        assert_eq!(
            self.genesis.id(),
            base.genesis.id(),
            "rebasing onto a store of another mesh"
        );
        let mut out = Self::overlay(base);
        for slot in slots {
            let (mine, theirs) = (self.kept_records(&slot), out.kept_records(&slot));
            if same_records(mine, theirs) {
                continue;
            }
            let Some((_, any)) = mine.first().or(theirs.first()) else {
                continue;
            };
            let ends = (any.author(), any.evidence().subject());
            let lacked: Vec<RecordId> = theirs
                .iter()
                .filter(|(r, _)| !mine.iter().any(|(m, _)| m.id == r.id))
                .map(|(r, _)| r.id)
                .collect();
            let added: Vec<(RecordId, Arc<Record>)> = mine
                .iter()
                .filter(|(r, _)| !theirs.iter().any(|(t, _)| t.id == r.id))
                .map(|(r, record)| (r.id, Arc::clone(record)))
                .collect();
            let kept = Kept {
                ends: (out.intern(ends.0), out.intern(ends.1)),
                records: mine.to_vec(),
            };
            for id in lacked {
                out.fingerprints.toggle(&id, false);
                out.shadowed.insert(id, ());
            }
            for (id, record) in added {
                out.fingerprints.toggle(&id, true);
                out.records.insert(id, record);
            }
            out.slots.insert(slot, kept);
        }
        for did in self.terminated.as_slice() {
            out.intern(*did);
        }
        if out.revoked != self.revoked {
            out.revoked = self.revoked.clone();
        }
        if out.terminated != self.terminated {
            out.terminated = self.terminated.clone();
        }
        out.generation = self.generation;
        out
    }

    /// Entries this store holds itself rather than reads from its base:
    /// what [`EvidenceStore::rebased`] makes small.
    pub fn difference_len(&self) -> usize {
        self.records.len() + self.shadowed.len() + self.slots.len()
    }

    /// This store and the stores it reads through, itself first.
    fn chain(&self) -> impl Iterator<Item = &EvidenceStore> {
        std::iter::successors(Some(self), |s| s.base.as_deref())
    }

    /// Slots in which this store and `other` may differ: those changed in
    /// either chain above the nearest store both read through, or every
    /// slot of both if they share none.
    fn differing_slots(&self, other: &EvidenceStore) -> BTreeSet<Slot> {
        let common = self
            .chain()
            .find(|s| other.chain().any(|o| std::ptr::eq(*s, o)));
        let above = |store: &EvidenceStore| -> Vec<Slot> {
            store
                .chain()
                .take_while(|s| !common.is_some_and(|c| std::ptr::eq(*s, c)))
                .flat_map(|s| s.slots.keys().copied())
                .collect()
        };
        above(self).into_iter().chain(above(other)).collect()
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
        if self.contains(&id) {
            return Inserted::Duplicate;
        }
        let slot = Slot::of(&record);
        let rank = Rank::of(&record);
        let at = self
            .kept(&slot)
            .map_or(0, |k| k.records.partition_point(|(r, _)| *r > rank));
        if at >= slot.capacity() {
            return Inserted::Stale;
        }
        let ends = (
            self.intern(record.author()),
            self.intern(record.evidence().subject()),
        );
        let base = self.base.as_deref();
        let kept = self.slots.get_or_insert_with(slot, || {
            base.and_then(|b| b.kept(&slot)).cloned().unwrap_or(Kept {
                ends,
                records: Vec::new(),
            })
        });
        // Room for exactly one more: most slots keep one record, for which
        // a vector's first growth (room for four) would cost 168 bytes more
        // in every store holding it.
        kept.records.reserve_exact(1);
        kept.records.insert(at, (rank, Arc::clone(&record)));
        let displaced = (kept.records.len() > slot.capacity())
            .then(|| kept.records.pop())
            .flatten()
            .map(|(r, _)| r.id);
        if let Some(old) = displaced {
            if self.records.remove(&old).is_none() {
                self.shadowed.insert(old, ());
            }
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
        self.agents = OnceLock::new();
        // A base record this store lacked (see `rebased`) is the base's
        // again once it arrives.
        if self.shadowed.remove(&id).is_none() {
            self.records.insert(id, record);
        }
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
        for record in other.records() {
            if !self.contains(&record.id()) {
                self.insert(Arc::clone(record));
            }
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        let base = self.base.as_ref().map_or(0, |b| b.len());
        base - self.shadowed.len() + self.records.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bumped on every change: a cheap "has anything changed" check.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A record by id.
    pub fn get(&self, id: &RecordId) -> Option<&Arc<Record>> {
        match self.records.get(id) {
            Some(record) => Some(record),
            None if self.shadowed.contains_key(id) => None,
            None => self.base.as_ref()?.get(id),
        }
    }

    /// Whether the record is held.
    pub fn contains(&self, id: &RecordId) -> bool {
        self.get(id).is_some()
    }

    /// All records in id order.
    pub fn records(&self) -> impl Iterator<Item = &Arc<Record>> {
        self.entries(None, None).map(|(_, r)| r)
    }

    fn ids(&self) -> impl Iterator<Item = &RecordId> {
        self.entries(None, None).map(|(id, _)| id)
    }

    /// Record ids in `[low, high)` (or to the end), in order.
    pub fn ids_in(&self, low: RecordId, high: Option<RecordId>) -> impl Iterator<Item = &RecordId> {
        self.entries(Some(low), high).map(|(id, _)| id)
    }

    fn entries(&self, low: Option<RecordId>, high: Option<RecordId>) -> Entries<'_> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let lower = low.map_or(Unbounded, Included);
        let upper = high.map_or(Unbounded, Excluded);
        let own = self.records.range((lower, upper));
        match &self.base {
            None => Box::new(own),
            Some(base) => {
                let visible = base
                    .entries(low, high)
                    .filter(|(id, _)| !self.shadowed.contains_key(*id));
                Box::new(merge_by_key(visible, own))
            }
        }
    }

    fn kept(&self, slot: &Slot) -> Option<&Kept> {
        match self.slots.get(slot) {
            Some(kept) => Some(kept),
            None => self.base.as_ref()?.kept(slot),
        }
    }

    fn kept_records(&self, slot: &Slot) -> &[(Rank, Arc<Record>)] {
        self.kept(slot).map_or(&[], |k| &k.records)
    }

    fn all_slots(&self) -> SlotEntries<'_> {
        match &self.base {
            None => Box::new(self.slots.iter()),
            Some(base) => Box::new(merge_by_key(base.all_slots(), self.slots.iter())),
        }
    }

    /// The records kept in each slot, best first, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = (&Slot, impl Iterator<Item = &Arc<Record>>)> {
        self.all_slots()
            .filter(|(_, kept)| !kept.records.is_empty())
            .map(|(slot, kept)| (slot, kept.records.iter().map(|(_, r)| r)))
    }

    /// Like [`EvidenceStore::slots`], with the slot's author and subject as
    /// numbers (see [`EvidenceStore::identity`]).
    pub fn slots_interned(&self) -> impl Iterator<Item = InternedSlot<'_>> {
        self.all_slots()
            .filter(|(_, kept)| !kept.records.is_empty())
            .map(|(slot, kept)| (slot, kept.ends, kept.records.as_slice()))
    }

    /// How many identities have been seen: they are numbered `0..count`.
    pub fn identity_count(&self) -> u32 {
        self.base_identity_count() + self.dids.len() as u32
    }

    /// The identity of a local number (see `slots_interned`).
    pub fn identity(&self, number: u32) -> Option<&Did> {
        let base = self.base_identity_count();
        match (number.checked_sub(base), &self.base) {
            (Some(own), _) => self.dids.get(own as usize),
            (None, Some(b)) => b.identity(number),
            (None, None) => None,
        }
    }

    /// The local number of an identity, if numbered (seen here or in the
    /// base).
    pub fn identity_number(&self, did: &Did) -> Option<u32> {
        match self.base.as_ref().and_then(|b| b.identity_number(did)) {
            Some(number) => Some(number),
            None => self.index.get(did).copied(),
        }
    }

    /// The identities of this store's base, sorted and shared by every
    /// store over it (empty without a base).
    pub fn base_identities(&self) -> Arc<[Did]> {
        match &self.base {
            None => Arc::from([]),
            Some(base) => Arc::clone(base.sorted_identities.get_or_init(|| {
                let mut dids: Vec<Did> = (0..base.identity_count())
                    .filter_map(|n| base.identity(n).copied())
                    .collect();
                dids.sort_unstable();
                dids.into()
            })),
        }
    }

    fn base_identity_count(&self) -> u32 {
        self.base.as_ref().map_or(0, |b| b.identity_count())
    }

    fn intern(&mut self, did: Did) -> u32 {
        if let Some(number) = self.identity_number(&did) {
            return number;
        }
        let number = self.identity_count();
        self.sorted_identities = OnceLock::new();
        self.index.insert(did, number);
        self.dids.push(did);
        number
    }

    /// The best record in a slot.
    pub fn best(&self, slot: &Slot) -> Option<&Arc<Record>> {
        self.kept(slot)?.records.first().map(|(_, r)| r)
    }

    /// An agent's current record.
    pub fn agent(&self, did: &Did) -> Option<&Arc<Record>> {
        match self.slots.get(&Slot::Agent(*did)) {
            Some(kept) => kept.records.first().map(|(_, r)| r),
            None => self.base.as_ref()?.agent_read_through(did),
        }
    }

    /// [`EvidenceStore::agent`], asked by an overlay of this store: from
    /// the index of agents if this store is large.
    fn agent_read_through(&self, did: &Did) -> Option<&Arc<Record>> {
        if self.slots.len() < AGENT_INDEX_SLOTS_MIN {
            return self.agent(did);
        }
        let agents = self.agents.get_or_init(|| {
            let mut agents = AgentIndex::default();
            for (slot, kept) in self.all_slots() {
                let (Slot::Agent(did), Some((_, record))) = (slot, kept.records.first()) else {
                    continue;
                };
                (agents.entry(did.prefix()))
                    .and_modify(|shared: &mut Option<Arc<Record>>| *shared = None)
                    .or_insert_with(|| Some(Arc::clone(record)));
            }
            agents
        });
        match agents.get(&did.prefix()) {
            None => None,
            Some(Some(record)) => (record.author() == *did).then_some(record),
            Some(None) => self.agent(did),
        }
    }

    /// What a score table can be extended by rather than computed over
    /// (see [`ScoreTable::compute_around_periphery`](crate::ScoreTable::compute_around_periphery)),
    /// among the slots changed above the bottom snapshot this store grew
    /// from (a store without a base has none). These are the usual
    /// differences between replicas of a large mesh: agents that joined
    /// since, and what agents said of one just terminated, heard of by
    /// some nodes and not yet by others. Costs a pass over those slots.
    pub fn periphery(&self) -> Periphery {
        let Some(bottom) = self.chain().last().filter(|b| !std::ptr::eq(*b, self)) else {
            return Periphery::default();
        };
        let first_new = bottom.identity_count();
        let changed: BTreeSet<Slot> = (self.chain())
            .take_while(|s| !std::ptr::eq(*s, bottom))
            .flat_map(|s| s.slots.keys().copied())
            .collect();
        let mut lone = Vec::new();
        let mut inert = Vec::new();
        let mut named = HashSet::new();
        for slot in changed {
            let Some(kept) = self.kept(&slot) else {
                continue;
            };
            let Some((rank, _)) = kept.records.first() else {
                continue;
            };
            match slot {
                Slot::Agent(did) if kept.ends.0 >= first_new && !self.genesis.is_governor(&did) => {
                    lone.push((did, kept.ends.0, rank.id));
                }
                Slot::Outcome(author, subject)
                | Slot::Vouch(author, subject)
                | Slot::Violation(author, subject)
                    if self.terminated.contains(&subject) =>
                {
                    let ids = kept.records.iter().map(|(rank, _)| rank.id).collect();
                    inert.push(InertSlot { slot, author, ids });
                }
                _ => {
                    named.insert(kept.ends.0);
                    named.insert(kept.ends.1);
                }
            }
        }
        let lone = (lone.into_iter())
            .filter(|(did, number, _)| !named.contains(number) && !self.terminated.contains(did))
            .map(|(did, _, id)| (did, id))
            .collect();
        Periphery { lone, inert }
    }

    /// Identities terminated so far, in order.
    pub fn terminated(&self) -> &[Did] {
        self.terminated.as_slice()
    }

    /// The fingerprint sum of buckets `[first, first + n)`.
    pub(super) fn buckets(&self, first: usize, n: usize) -> Accumulator {
        let mut acc = self.fingerprints.buckets(first, n, self.base.is_none());
        if let Some(base) = &self.base {
            acc.absorb(&base.buckets(first, n));
        }
        acc
    }

    /// Adds to `parts[i]` the sum of the `i`-th of `parts.len()` equal
    /// slices of buckets `[first, first + n)`.
    pub(super) fn buckets_split(&self, first: usize, n: usize, parts: &mut [Accumulator]) {
        (self.fingerprints).split(first, n, self.base.is_none(), parts);
        if let Some(base) = &self.base {
            base.buckets_split(first, n, parts);
        }
    }
}

/// A sorted set shared by a snapshot and the stores over it until one adds
/// to it, then copied at exactly its size. Revocations and terminations are
/// rare, and a `BTreeSet` copied into every node of a simulated million
/// that heard of one cost a node of eleven slots each (360 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SharedSet<T>(Arc<[T]>);

impl<T> Default for SharedSet<T> {
    fn default() -> Self {
        Self(Arc::new([]))
    }
}

impl<T> SharedSet<T> {
    /// The members, in order.
    pub(super) fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<T: Ord + Clone> SharedSet<T> {
    pub(super) fn contains(&self, x: &T) -> bool {
        self.0.binary_search(x).is_ok()
    }

    pub(super) fn insert(&mut self, x: T) {
        if let Err(at) = self.0.binary_search(&x) {
            let (before, after) = self.0.split_at(at);
            let set: Vec<T> = before
                .iter()
                .cloned()
                .chain(std::iter::once(x))
                .chain(after.iter().cloned())
                .collect();
            self.0 = set.into();
        }
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
