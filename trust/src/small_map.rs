//! An ordered map for the many small maps a node keeps: per peer, per
//! request, per tree, and an evidence store's difference from its base.
//!
//! A `BTreeMap` allocates a node of eleven slots for its first entry (for
//! a link's state, 1.5 KB), and a million simulated nodes each holding a
//! dozen such maps pay that a dozen million times. Up to [`FEW_MAX`]
//! entries this map is a sorted boxed slice at its exact size (a doubled
//! vector would be a third empty on average), reallocated on each insert
//! and removal: those are rarer than lookups, and the entries after the
//! change move anyway. Past that it becomes a boxed `BTreeMap`, so a large
//! map (a real node's evidence) keeps logarithmic inserts. The map is two
//! words (a `Vec` and a bare `BTreeMap` made it four), and a node holds
//! about twenty, mostly empty. Iteration is in key order either way, as a
//! `BTreeMap`'s, so one can replace the other without changing any output.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

/// Most entries kept in the slice form: inserting into a sorted slice
/// moves the entries after it, which stays cheaper than a tree's node
/// allocations up to a few dozen entries.
pub const FEW_MAX: usize = 64;

/// A small ordered map (see the module docs).
#[derive(Debug, Clone)]
pub enum SmallMap<K, V> {
    /// At most [`FEW_MAX`] entries, sorted by key.
    Few(Box<[(K, V)]>),
    /// Grew past [`FEW_MAX`] entries.
    Many(Box<BTreeMap<K, V>>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> SmallMap<K, V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        Self::Few(Box::default())
    }
}

/// Changes a slice as a vector, boxing it again at its exact size.
fn edit<T, R>(few: &mut Box<[T]>, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut entries = std::mem::take(few).into_vec();
    let out = change(&mut entries);
    *few = entries.into_boxed_slice();
    out
}

fn find<K: Borrow<Q>, Q: Ord + ?Sized, V>(few: &[(K, V)], k: &Q) -> Result<usize, usize> {
    few.binary_search_by(|(q, _)| q.borrow().cmp(k))
}

impl<K: Ord, V> SmallMap<K, V> {
    /// The value under `k`.
    pub fn get<Q: Ord + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.get_key_value(k).map(|(_, v)| v)
    }

    /// The key and value under `k`.
    pub fn get_key_value<Q: Ord + ?Sized>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        match self {
            Self::Few(few) => find(few, k).ok().map(|i| (&few[i].0, &few[i].1)),
            Self::Many(many) => many.get_key_value(k),
        }
    }

    /// The value under `k`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self {
            Self::Few(few) => find(few, k).ok().map(|i| &mut few[i].1),
            Self::Many(many) => many.get_mut(k),
        }
    }

    /// Whether `k` has a value.
    pub fn contains_key<Q: Ord + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.get_key_value(k).is_some()
    }

    /// The value under `k`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        if let Self::Few(few) = self
            && few.len() == FEW_MAX
            && find(few, &k).is_err()
        {
            *self = Self::Many(Box::new(std::mem::take(few).into_iter().collect()));
        }
        match self {
            Self::Few(few) => {
                let i = match find(few, &k) {
                    Ok(i) => i,
                    Err(i) => {
                        let v = make();
                        edit(few, |entries| {
                            entries.reserve_exact(1);
                            entries.insert(i, (k, v));
                        });
                        i
                    }
                };
                &mut few[i].1
            }
            Self::Many(many) => many.entry(k).or_insert_with(make),
        }
    }

    /// Inserts, returning the value replaced.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.get_mut(&k) {
            Some(old) => Some(std::mem::replace(old, v)),
            None => {
                self.get_or_insert_with(k, || v);
                None
            }
        }
    }

    /// Removes the value under `k`.
    pub fn remove<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        match self {
            Self::Few(few) => {
                let i = find(few, k).ok()?;
                Some(edit(few, |entries| entries.remove(i).1))
            }
            Self::Many(many) => many.remove(k),
        }
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        match self {
            Self::Few(few) => edit(few, |entries| entries.retain_mut(|(k, v)| keep(k, v))),
            Self::Many(many) => many.retain(keep),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Self::Few(few) => few.len(),
            Self::Many(many) => many.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.range(..)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    /// Values in key order, to change.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        let (few, many) = match self {
            Self::Few(few) => (Some(few.iter_mut().map(|(_, v)| v)), None),
            Self::Many(many) => (None, Some(many.values_mut())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// Entries with keys in `range`, in key order.
    pub fn range(&self, range: impl RangeBounds<K>) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        let (few, many) = match self {
            Self::Few(few) => {
                let start = match range.start_bound() {
                    Bound::Included(s) => few.partition_point(|(k, _)| k < s),
                    Bound::Excluded(s) => few.partition_point(|(k, _)| k <= s),
                    Bound::Unbounded => 0,
                };
                let end = match range.end_bound() {
                    Bound::Included(e) => few.partition_point(|(k, _)| k <= e),
                    Bound::Excluded(e) => few.partition_point(|(k, _)| k < e),
                    Bound::Unbounded => few.len(),
                };
                let entries = few.get(start..end.max(start)).unwrap_or_default();
                (Some(entries.iter().map(|(k, v)| (k, v))), None)
            }
            Self::Many(many) => (None, Some(many.range(range))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::option::IntoIter<std::vec::IntoIter<(K, V)>>>,
        std::iter::Flatten<std::option::IntoIter<std::collections::btree_map::IntoIter<K, V>>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let (few, many) = match self {
            Self::Few(few) => (Some(few.into_vec().into_iter()), None),
            Self::Many(many) => (None, Some((*many).into_iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of changes leaves the same entries, in the same
        /// order, as a `BTreeMap`, on either side of the switch to a tree.
        #[test]
        fn behaves_as_a_btree_map(
            ops in prop::collection::vec((0u8..7, 0u8..100, any::<u16>()), 0..400),
        ) {
            let mut ours = SmallMap::new();
            let mut theirs = BTreeMap::new();
            for (op, k, v) in ops {
                match op {
                    0..=2 => prop_assert_eq!(ours.insert(k, v), theirs.insert(k, v)),
                    3 => prop_assert_eq!(ours.remove(&k), theirs.remove(&k)),
                    4 => {
                        let a = ours.get_or_insert_with(k, || v);
                        let b = theirs.entry(k).or_insert(v);
                        prop_assert_eq!(*a, *b);
                        *a = a.wrapping_add(1);
                        *b = b.wrapping_add(1);
                    }
                    5 => {
                        let keep = |q: &u8, x: &mut u16| !(u16::from(*q) ^ *x).is_multiple_of(7);
                        ours.retain(keep);
                        theirs.retain(keep);
                    }
                    _ => {
                        let (low, high) = (k.min(v as u8), k.max(v as u8));
                        prop_assert!(ours.range(low..high).eq(theirs.range(low..high)));
                        prop_assert!(ours.range(low..=high).rev().eq(theirs.range(low..=high).rev()));
                        prop_assert!(ours.range(..high).eq(theirs.range(..high)));
                    }
                }
                prop_assert_eq!(ours.len(), theirs.len());
                prop_assert_eq!(ours.get_key_value(&k), theirs.get_key_value(&k));
                prop_assert_eq!(ours.contains_key(&k), theirs.contains_key(&k));
                prop_assert!(matches!(ours, SmallMap::Many(_)) || ours.len() <= FEW_MAX);
            }
            prop_assert!(ours.iter().eq(theirs.iter()));
            prop_assert!(ours.values_mut().map(|v| *v).eq(theirs.values().copied()));
            prop_assert!(ours.into_iter().eq(theirs));
        }
    }

    #[test]
    fn turns_into_a_tree_past_few_max_entries_and_stays_one() {
        let mut map: SmallMap<usize, usize> = (0..FEW_MAX).map(|k| (k, k)).collect();
        assert!(matches!(map, SmallMap::Few(_)));
        map.insert(FEW_MAX - 1, 0);
        assert!(matches!(map, SmallMap::Few(_)), "replacing adds no entry");
        map.insert(FEW_MAX, FEW_MAX);
        assert!(matches!(map, SmallMap::Many(_)));
        map.retain(|k, _| *k < 3);
        assert!(matches!(map, SmallMap::Many(_)));
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            [(0, 0), (1, 1), (2, 2)]
        );
    }
}
