//! A map kept as a sorted vector, for the handful of entries a node keeps
//! per peer. A `BTreeMap` allocates a node of eleven slots for its first
//! entry, which for a link's state is 1.5 KB; a million simulated nodes
//! pay that a million times. Lookups are a binary search over a few
//! entries; iteration is in key order, as a `BTreeMap`'s.

/// A small ordered map.
#[derive(Debug, Clone)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find(&self, k: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(q, _)| q.cmp(k))
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.find(k).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.find(k).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.find(k).is_ok()
    }

    /// Inserts, returning the value replaced.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (k, v));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.find(k).ok()?;
        let (_, v) = self.0.remove(i);
        if self.0.capacity() > 2 * self.0.len() + 4 {
            self.0.shrink_to_fit();
        }
        Some(v)
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
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
        fn behaves_as_a_btree_map(ops in prop::collection::vec((any::<bool>(), 0u8..16, any::<u16>()), 0..200)) {
            let mut ours = VecMap::default();
            let mut theirs = BTreeMap::new();
            for (insert, k, v) in ops {
                match insert {
                    true => prop_assert_eq!(ours.insert(k, v), theirs.insert(k, v)),
                    false => prop_assert_eq!(ours.remove(&k), theirs.remove(&k)),
                }
                prop_assert_eq!(ours.get(&k), theirs.get(&k));
                prop_assert_eq!(ours.contains_key(&k), theirs.contains_key(&k));
            }
            prop_assert!(ours.iter().eq(theirs.iter()));
        }
    }
}
