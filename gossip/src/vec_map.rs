//! A map kept as a sorted vector, for the handful of entries a node keeps
//! per peer, tree or request. A `BTreeMap` allocates a node of eleven
//! slots for its first entry, which for a link's state is 1.5 KB; a
//! million simulated nodes pay that a million times. Lookups are a binary
//! search over a few entries; iteration is in key order, as a
//! `BTreeMap`'s, so swapping one for the other changes no output.

use std::borrow::Borrow;

/// A small ordered map.
#[derive(Debug, Clone)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find<Q: Ord + ?Sized>(&self, k: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(q, _)| q.borrow().cmp(k))
    }

    pub(crate) fn get<Q: Ord + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_key_value<Q: Ord + ?Sized>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| (&self.0[i].0, &self.0[i].1))
    }

    pub(crate) fn get_mut<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn contains_key<Q: Ord + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(k).is_ok()
    }

    /// Makes room for one more entry. A map grows by an eighth, not by
    /// doubling: these maps grow one entry at a time to a few dozen and
    /// stay there, so a doubled vector would be a third empty on average.
    fn grow(&mut self) {
        if self.0.len() == self.0.capacity() {
            self.0.reserve_exact(1 + self.0.len() / 8);
        }
    }

    /// Inserts, returning the value replaced.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.grow();
                self.0.insert(i, (k, v));
                None
            }
        }
    }

    /// The value under `k`, inserting `make()` first if there is none.
    pub(crate) fn get_or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&k) {
            Ok(i) => i,
            Err(i) => {
                self.grow();
                self.0.insert(i, (k, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(k).ok()?;
        let (_, v) = self.0.remove(i);
        self.shrink();
        Some(v)
    }

    /// Keeps the entries `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
        self.shrink();
    }

    fn shrink(&mut self) {
        if self.0.capacity() > 2 * self.0.len() + 4 {
            self.0.shrink_to_fit();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Values in key order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of inserts and removes leaves the same entries, in
        /// the same order, as a `BTreeMap`.
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec((0u8..4, 0u8..16, any::<u16>()), 0..200)) {
            let mut ours = VecMap::default();
            let mut theirs = BTreeMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(k, v), theirs.insert(k, v)),
                    1 => prop_assert_eq!(ours.remove(&k), theirs.remove(&k)),
                    2 => {
                        let (a, b) = (ours.get_or_insert_with(k, || v), theirs.entry(k).or_insert(v));
                        prop_assert_eq!(*a, *b);
                        *a = a.wrapping_add(1);
                        *b = b.wrapping_add(1);
                    }
                    _ => {
                        ours.retain(|q, x| (q ^ *x as u8) & 1 == 0);
                        theirs.retain(|q, x| (q ^ *x as u8) & 1 == 0);
                    }
                }
                prop_assert_eq!(ours.len(), theirs.len());
                prop_assert_eq!(ours.get_key_value(&k), theirs.get_key_value(&k));
                prop_assert_eq!(ours.get(&k), theirs.get(&k));
                prop_assert_eq!(ours.contains_key(&k), theirs.contains_key(&k));
            }
            prop_assert!(ours.iter().eq(theirs.iter()));
        }
    }
}
