//! Range-based set reconciliation of evidence (anti-entropy).
//!
//! Two replicas find what each lacks without listing everything they hold.
//! A range of the id space is named by an id prefix. One side sends the
//! fingerprint of a range; the other compares it with its own. Equal ranges
//! are done. A differing range is either listed id by id (when small) or
//! split into 16 sub-ranges whose fingerprints go back. A listed range is
//! settled in one step: each side learns exactly which records the other
//! lacks. Rounds grow with log16(n / 16); bytes with the difference, not the
//! set. (Meyer, "Range-Based Set Reconciliation", 2023.)

use super::fingerprint::{Accumulator, BUCKET_BITS, bucket_of};
use super::record::RecordId;
use super::store::EvidenceStore;
use crate::uniform::prefix;

/// A range is listed id by id when the responder holds at most this many.
pub const IDS_PER_RANGE_MAX: u64 = 16;
/// Deepest prefix used, in bits.
pub const PREFIX_BITS_MAX: u8 = 64;
/// Sub-ranges a differing range splits into.
pub const FANOUT: u64 = 16;

/// A range's fingerprint: the first 16 bytes of a hash of its ids' count
/// and sum (see `fingerprint`).
pub type Fingerprint = [u8; 16];

/// The ids whose first `bits` bits equal the first `bits` bits of `prefix`
/// (big-endian). `bits` is a multiple of 4, at most [`PREFIX_BITS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// Prefix bits, left-aligned.
    pub prefix: u64,
    /// How many leading bits of `prefix` count.
    pub bits: u8,
}

impl Range {
    /// Every id.
    pub const ALL: Range = Range { prefix: 0, bits: 0 };

    /// Whether the range is well-formed.
    pub fn is_valid(&self) -> bool {
        self.bits <= PREFIX_BITS_MAX
            && self.bits.is_multiple_of(4)
            && (self.bits == 64 || self.prefix << self.bits == 0)
    }

    fn low(&self) -> RecordId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&self.prefix.to_be_bytes());
        id
    }

    /// The first id after the range, or `None` when it runs to the end.
    fn high(&self) -> Option<RecordId> {
        if self.bits == 0 {
            return None;
        }
        let step = 1u64 << (64 - self.bits);
        let next = self.prefix.checked_add(step)?;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&next.to_be_bytes());
        Some(id)
    }

    pub(super) fn children(&self) -> impl Iterator<Item = Range> + '_ {
        let bits = self.bits + 4;
        (0..FANOUT).map(move |i| Range {
            prefix: self.prefix | (i << (64 - bits)),
            bits,
        })
    }

    /// Whether `id` lies in the range.
    fn holds(&self, id: &RecordId) -> bool {
        let shift = 64 - u32::from(self.bits);
        self.bits == 0 || prefix(id) >> shift == self.prefix >> shift
    }

    /// Which of the range's children `id` (in the range) lies in.
    fn child_of(&self, id: &RecordId) -> usize {
        (prefix(id) >> (60 - u32::from(self.bits)) & (FANOUT - 1)) as usize
    }
}

/// One part of a reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// "My ids in this range have this count and fingerprint."
    Fingerprint {
        /// The range.
        range: Range,
        /// How many ids.
        count: u64,
        /// Their fingerprint.
        fingerprint: Fingerprint,
    },
    /// "These are all my ids in this range."
    Ids {
        /// The range.
        range: Range,
        /// The ids, in order.
        ids: Vec<RecordId>,
    },
}

/// The answer to a reconciliation message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Parts to send back (empty when every range is settled).
    pub parts: Vec<Part>,
    /// Records the peer lacks: send them.
    pub send: Vec<RecordId>,
    /// Ids the peer holds and this store lacks: ask for them.
    pub want: Vec<RecordId>,
}

impl EvidenceStore {
    /// A digest of the whole set: equal digests mean equal stores (up to a
    /// 2^-128 collision), so results computed from the set can be shared.
    pub fn digest(&self) -> (u64, Fingerprint) {
        self.digest_without([])
    }

    /// The digest the store would have without the records `ids` (which
    /// it holds): the key of a result computed from the rest alone.
    pub fn digest_without<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a RecordId>,
    ) -> (u64, Fingerprint) {
        let mut rest = self.accumulate(Range::ALL);
        for id in ids {
            rest.toggle(id, false);
        }
        (rest.count(), rest.fingerprint())
    }

    /// The opening message: the fingerprint of everything.
    pub fn reconcile_start(&self) -> Vec<Part> {
        vec![self.fingerprint_part(Range::ALL)]
    }

    /// Answers a peer's reconciliation message. Invalid ranges are ignored.
    pub fn reconcile(&self, parts: &[Part]) -> Reply {
        let mut reply = Reply::default();
        for part in parts {
            match part {
                Part::Fingerprint {
                    range,
                    count,
                    fingerprint,
                } if range.is_valid() => {
                    let mine = self.accumulate(*range);
                    if mine.count() == *count && mine.fingerprint() == *fingerprint {
                        continue;
                    }
                    if *count == 0 {
                        reply.send.extend(self.range_ids(*range));
                    } else if mine.count() <= IDS_PER_RANGE_MAX || range.bits >= PREFIX_BITS_MAX {
                        reply.parts.push(Part::Ids {
                            range: *range,
                            ids: self.range_ids(*range).collect(),
                        });
                    } else {
                        reply.parts.extend(self.children_parts(*range));
                    }
                }
                Part::Ids { range, ids } if range.is_valid() => {
                    let mut theirs = ids.clone();
                    theirs.sort_unstable();
                    let mine: Vec<RecordId> = self.range_ids(*range).collect();
                    reply
                        .send
                        .extend(mine.iter().filter(|id| theirs.binary_search(id).is_err()));
                    // `mine` is what the store holds in the range: asking
                    // it is a search in one slice, not in every layer.
                    let held = |id: &RecordId| match range.holds(id) {
                        true => mine.binary_search(id).is_ok(),
                        false => self.contains(id),
                    };
                    reply.want.extend(ids.iter().filter(|id| !held(id)));
                }
                _ => {}
            }
        }
        reply
    }

    fn range_ids(&self, range: Range) -> impl Iterator<Item = RecordId> + '_ {
        self.ids_in(range.low(), range.high()).copied()
    }

    pub(super) fn fingerprint_part(&self, range: Range) -> Part {
        Self::part_of(range, &self.accumulate(range))
    }

    fn part_of(range: Range, acc: &Accumulator) -> Part {
        Part::Fingerprint {
            range,
            count: acc.count(),
            fingerprint: acc.fingerprint(),
        }
    }

    /// The fingerprints of `range`'s children, summed in one pass over
    /// the range's buckets (or ids, below bucket size) rather than one
    /// per child.
    pub(super) fn children_parts(&self, range: Range) -> Vec<Part> {
        let mut sums = [Accumulator::default(); FANOUT as usize];
        if range.bits + 4 <= BUCKET_BITS {
            let n = 1usize << (BUCKET_BITS - range.bits);
            self.buckets_split(bucket_of(&range.low()), n, &mut sums);
        } else {
            for id in self.range_ids(range) {
                sums[range.child_of(&id)].toggle(&id, true);
            }
        }
        range
            .children()
            .zip(sums)
            .map(|(child, acc)| Self::part_of(child, &acc))
            .collect()
    }

    fn accumulate(&self, range: Range) -> Accumulator {
        if range.bits <= BUCKET_BITS {
            let first = bucket_of(&range.low());
            let n = 1usize << (BUCKET_BITS - range.bits);
            return self.buckets(first, n);
        }
        let mut acc = Accumulator::default();
        for id in self.range_ids(range) {
            acc.toggle(&id, true);
        }
        acc
    }
}
