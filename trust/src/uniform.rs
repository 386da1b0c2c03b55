//! Searching sorted slices of evenly spread keys.
//!
//! Hashes and public keys are spread evenly over their range, so a key's
//! value says where it about sits in a sorted slice of them: in a slice of
//! ten thousand, a guess by proportion lands within a few dozen places. A
//! search widening outward from the guess reads a few neighbouring cache
//! lines, where a binary search reads a distant line for each of its first
//! halvings. In a simulated mesh the slices searched (seen ids, score
//! tables) belong to thousands of nodes and are rarely in cache, so those
//! misses are most of a lookup's cost.
//!
//! Keys spread unevenly (ids ground by an attacker) cost only time: the
//! window doubles until it brackets the key, so the answer is always a
//! binary search's and the work stays logarithmic.

use std::cmp::Ordering;

/// The leading 64 bits of a key, big-endian: ordered as the keys are, and
/// where among them the key sits (the `key_prefix` of [`search`]).
pub fn prefix(key: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&key[..8]);
    u64::from_be_bytes(head)
}

/// [`slice::binary_search_by`] for `sorted`, ordered by `cmp` (the order of
/// an element against the key looked for), whose elements' leading 64 bits
/// are spread evenly and ordered as `cmp` orders them; `key_prefix` is the
/// key's leading 64 bits.
pub fn search<T>(
    sorted: &[T],
    key_prefix: u64,
    cmp: impl Fn(&T) -> Ordering,
) -> Result<usize, usize> {
    let n = sorted.len();
    if n == 0 {
        return Err(0);
    }
    // In 0..n, as key_prefix < 2^64.
    let guess = ((u128::from(key_prefix) * n as u128) >> 64) as usize;
    let (mut low, mut high) = (guess, guess + 1);
    let mut step = 4;
    while low > 0 && cmp(&sorted[low]) == Ordering::Greater {
        low = low.saturating_sub(step);
        step *= 2;
    }
    step = 4;
    while high < n && cmp(&sorted[high - 1]) == Ordering::Less {
        high = (high + step).min(n);
        step *= 2;
    }
    // sorted[low] <= key (or low is 0) and sorted[high - 1] >= key (or
    // high is n): the key's place is in the window.
    match sorted[low..high].binary_search_by(cmp) {
        Ok(i) => Ok(low + i),
        Err(i) => Err(low + i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(mut keys: Vec<u64>, probes: Vec<u64>) {
        keys.sort_unstable();
        keys.dedup();
        for key in probes.iter().chain(&keys) {
            assert_eq!(
                search(&keys, *key, |k| k.cmp(key)),
                keys.binary_search(key),
                "key {key} in {keys:?}"
            );
        }
    }

    #[test]
    fn edges() {
        check(vec![], vec![0, u64::MAX]);
        check(vec![0], vec![0, 1, u64::MAX]);
        check(vec![u64::MAX], vec![0, u64::MAX - 1, u64::MAX]);
        check(vec![0, 1, 2, u64::MAX - 1, u64::MAX], vec![3, u64::MAX / 2]);
    }

    proptest! {
        #[test]
        fn agrees_with_binary_search_on_even_keys(
            keys in proptest::collection::vec(any::<u64>(), 0..300),
            probes in proptest::collection::vec(any::<u64>(), 0..20),
        ) {
            check(keys, probes);
        }

        /// Keys crowded into a corner of the range: the guess is far off.
        #[test]
        fn agrees_with_binary_search_on_clustered_keys(
            keys in proptest::collection::vec(0u64..1000, 0..300),
            high in proptest::collection::vec((u64::MAX - 1000)..=u64::MAX, 0..50),
            probes in proptest::collection::vec(any::<u64>(), 0..20),
        ) {
            check(keys.into_iter().chain(high).collect(), probes);
        }
    }
}
