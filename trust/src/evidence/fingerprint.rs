//! Incremental range fingerprints over record ids.
//!
//! A range's fingerprint is a hash of (count, sum of its ids as 256-bit
//! integers mod 2^256). Addition is invertible, so the store keeps one
//! running sum per 12-bit id prefix and updates it in O(1) on every insert
//! and removal; ranges at or above that granularity are summed from the
//! buckets, finer ranges from the ids themselves. (The construction follows
//! range-based set reconciliation, Meyer 2023.)

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::reconcile::Fingerprint;
use super::record::RecordId;
use crate::small_map::SmallMap;

/// Bits of id prefix per bucket.
pub(super) const BUCKET_BITS: u8 = 12;
const BUCKETS: usize = 1 << BUCKET_BITS;
/// Non-empty buckets from which a whole store's range sums are read from
/// prefix sums (4,097 accumulators, 160 KiB) instead of summed bucket by
/// bucket: a large store answers every anti-entropy round's whole-range
/// fingerprint in O(1). An overlay's difference from its shared base (a
/// simulated node's own records) never keeps them: ten thousand of those
/// would cost 1.6 GB.
const PREFIX_MIN: usize = 256;

/// Count and wrapping sum of a set of ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Accumulator {
    count: u64,
    sum: [u64; 4],
}

impl Accumulator {
    /// Adds (or with `add` false, removes) one id.
    pub(super) fn toggle(&mut self, id: &RecordId, add: bool) {
        let limbs = limbs(id);
        let mut carry = false;
        for (acc, limb) in self.sum.iter_mut().zip(limbs) {
            let (value, c) = match add {
                true => carrying(acc, limb, carry, u64::overflowing_add),
                false => carrying(acc, limb, carry, u64::overflowing_sub),
            };
            *acc = value;
            carry = c;
        }
        // Wrapping: an overlay's difference from its base may remove more
        // than it adds; the sum with the base is a true count again.
        self.count = match add {
            true => self.count.wrapping_add(1),
            false => self.count.wrapping_sub(1),
        };
    }

    /// Adds another accumulator's ids.
    pub(super) fn absorb(&mut self, other: &Accumulator) {
        let mut carry = false;
        for (acc, limb) in self.sum.iter_mut().zip(other.sum) {
            let (value, c) = carrying(acc, limb, carry, u64::overflowing_add);
            *acc = value;
            carry = c;
        }
        self.count = self.count.wrapping_add(other.count);
    }

    /// Takes away another accumulator's ids (the inverse of `absorb`).
    fn subtract(&mut self, other: &Accumulator) {
        let mut borrow = false;
        for (acc, limb) in self.sum.iter_mut().zip(other.sum) {
            let (value, b) = carrying(acc, limb, borrow, u64::overflowing_sub);
            *acc = value;
            borrow = b;
        }
        self.count = self.count.wrapping_sub(other.count);
    }

    /// Number of ids.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// The range's fingerprint.
    pub(super) fn fingerprint(&self) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(self.count.to_le_bytes());
        for limb in self.sum {
            hasher.update(limb.to_le_bytes());
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let mut out = Fingerprint::default();
        out.copy_from_slice(&digest[..size_of::<Fingerprint>()]);
        out
    }
}

fn carrying(acc: &u64, limb: u64, carry: bool, op: fn(u64, u64) -> (u64, bool)) -> (u64, bool) {
    let (a, c1) = op(*acc, limb);
    let (b, c2) = op(a, carry as u64);
    (b, c1 || c2)
}

fn limbs(id: &RecordId) -> [u64; 4] {
    std::array::from_fn(|i| {
        let mut limb = [0u8; 8];
        limb.copy_from_slice(&id[i * 8..i * 8 + 8]);
        u64::from_le_bytes(limb)
    })
}

/// The bucket of an id: its first 12 bits.
pub(super) fn bucket_of(id: &RecordId) -> usize {
    ((id[0] as usize) << 4) | (id[1] as usize >> 4)
}

/// Per-bucket accumulators for a whole store, kept only for non-empty
/// buckets so a small store (a simulated node's) costs a few bytes, not
/// 4,096 accumulators; a large one also keeps prefix sums, built when a
/// range is first asked for after a change.
#[derive(Debug, Clone, Default)]
pub(super) struct Fingerprints {
    buckets: SmallMap<u16, Accumulator>,
    /// `prefix[i]`: the sum of buckets below `i` (see [`PREFIX_MIN`]).
    prefix: OnceLock<Vec<Accumulator>>,
}

impl Fingerprints {
    /// Records an insert or removal.
    pub(super) fn toggle(&mut self, id: &RecordId, add: bool) {
        let bucket = bucket_of(id) as u16;
        let acc = self
            .buckets
            .get_or_insert_with(bucket, Accumulator::default);
        acc.toggle(id, add);
        if *acc == Accumulator::default() {
            self.buckets.remove(&bucket);
        }
        self.prefix = OnceLock::new();
    }

    /// The sum of buckets `[first, first + n)`; `whole` for a store's
    /// own fingerprints, not an overlay's difference (see [`PREFIX_MIN`]).
    pub(super) fn buckets(&self, first: usize, n: usize, whole: bool) -> Accumulator {
        let (low, high) = (first.min(BUCKETS), (first + n).min(BUCKETS));
        if whole && self.buckets.len() >= PREFIX_MIN {
            let prefix = self.prefix.get_or_init(|| self.prefix_sums());
            let mut acc = prefix[high];
            acc.subtract(&prefix[low]);
            return acc;
        }
        let mut acc = Accumulator::default();
        for (_, bucket) in self.buckets.range(low as u16..high as u16) {
            acc.absorb(bucket);
        }
        acc
    }

    /// Adds to `parts[i]` the sum of the `i`-th of `parts.len()` equal
    /// slices of buckets `[first, first + n)` (`n` a multiple of the
    /// number of parts): [`Fingerprints::buckets`] of each slice, in one
    /// pass.
    pub(super) fn split(&self, first: usize, n: usize, whole: bool, parts: &mut [Accumulator]) {
        let width = n / parts.len();
        if whole && self.buckets.len() >= PREFIX_MIN {
            let prefix = self.prefix.get_or_init(|| self.prefix_sums());
            for (i, part) in parts.iter_mut().enumerate() {
                let low = (first + i * width).min(BUCKETS);
                let high = (first + (i + 1) * width).min(BUCKETS);
                let mut acc = prefix[high];
                acc.subtract(&prefix[low]);
                part.absorb(&acc);
            }
            return;
        }
        let (low, high) = (first.min(BUCKETS), (first + n).min(BUCKETS));
        for (&bucket, acc) in self.buckets.range(low as u16..high as u16) {
            parts[(usize::from(bucket) - first) / width].absorb(acc);
        }
    }

    fn prefix_sums(&self) -> Vec<Accumulator> {
        let mut sums = vec![Accumulator::default(); BUCKETS + 1];
        let mut running = Accumulator::default();
        let mut next = 0;
        for (&bucket, acc) in self.buckets.iter() {
            let bucket = usize::from(bucket);
            sums[next..=bucket].fill(running);
            running.absorb(acc);
            next = bucket + 1;
        }
        sums[next..].fill(running);
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggling_is_invertible_and_order_free() {
        let ids: Vec<RecordId> = (0..50u8).map(|i| crate::wire::sha256(&[i])).collect();
        let mut forward = Accumulator::default();
        let mut backward = Accumulator::default();
        for id in &ids {
            forward.toggle(id, true);
        }
        for id in ids.iter().rev() {
            backward.toggle(id, true);
        }
        assert_eq!(forward, backward);
        for id in &ids[10..] {
            forward.toggle(id, false);
        }
        let mut first_ten = Accumulator::default();
        for id in &ids[..10] {
            first_ten.toggle(id, true);
        }
        assert_eq!(forward, first_ten);
        assert_eq!(forward.count(), 10);
    }

    proptest::proptest! {
        /// Range sums read from prefix sums (a large store) equal the sums
        /// of the ids themselves, before and after removals.
        #[test]
        fn prefix_sums_agree_with_the_ids(
            seeds in proptest::collection::vec(proptest::num::u16::ANY, 300..600),
            removed in 0usize..300,
            first in 0usize..BUCKETS,
            n in 1usize..=BUCKETS,
        ) {
            let ids: Vec<RecordId> = seeds.iter().map(|s| crate::wire::sha256(&s.to_le_bytes())).collect();
            let ids: Vec<RecordId> = ids.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let mut fps = Fingerprints::default();
            for id in &ids {
                fps.toggle(id, true);
            }
            for id in ids.iter().take(removed) {
                fps.toggle(id, false);
            }
            let mut direct = Accumulator::default();
            for id in ids.iter().skip(removed) {
                if (first..first + n).contains(&bucket_of(id)) {
                    direct.toggle(id, true);
                }
            }
            proptest::prop_assert_eq!(fps.buckets(first, n, true), direct);
            proptest::prop_assert_eq!(fps.buckets(first, n, false), direct);
            // Split in 16, from prefix sums and from the buckets, each
            // slice is its own sum.
            let width = n.div_ceil(16);
            let each: Vec<Accumulator> = (0..16)
                .map(|i| fps.buckets(first + i * width, width, false))
                .collect();
            for whole in [true, false] {
                let mut parts = [Accumulator::default(); 16];
                fps.split(first, 16 * width, whole, &mut parts);
                proptest::prop_assert_eq!(&parts[..], &each[..]);
            }
        }
    }

    #[test]
    fn bucket_is_the_first_twelve_bits() {
        let mut id = [0u8; 32];
        id[0] = 0xab;
        id[1] = 0xcd;
        assert_eq!(bucket_of(&id), 0xabc);
    }
}
