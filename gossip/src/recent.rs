//! Ids remembered for a while, compactly.
//!
//! A node remembers every item id it saw for `seen_ms` (so duplicates and
//! replays are dropped) and keeps recent items for `message_cache_ms` (to
//! answer grafts). A hash map with an expiry queue beside it costs about
//! 25 to 50 bytes an id for the bare ids and twice that for cached items,
//! and at a million simulated nodes those are most of what a node holds.
//!
//! Entries are kept instead in *generations*, each opened for a quarter of
//! the lifetime (or a sixteenth of the most entries kept, whichever fills
//! first): the open generation is a [`SmallMap`], as it is written to (a
//! sorted vector while it holds a few dozen entries, as a simulated node's
//! usually does, where a hash map would be half empty; a B-tree past
//! that); a closed one is frozen into a slice sorted by id, read by binary
//! search, at its bare size (8 bytes an id plus the value). A generation
//! is forgotten as a whole once its newest entry has lived the lifetime,
//! so an entry lives the lifetime and at most a quarter more (until the
//! next look after that); over the most kept, the oldest generation goes
//! first, so a flood of ids forgets at most a sixteenth of the most kept
//! before its time.

use std::collections::VecDeque;

use starling_trust::small_map::SmallMap;
use starling_trust::uniform;

/// Generations per lifetime (the open one closes after a quarter of it).
const GENERATIONS: u64 = 4;
/// The open generation also closes at this fraction of the most kept.
const SIZE_PARTS: usize = 16;

/// A closed generation: entries sorted by id.
#[derive(Debug, Clone)]
struct Frozen<V> {
    /// When it closed: no entry in it is younger.
    closed_ms: u64,
    entries: Box<[(u64, V)]>,
}

/// Ids (with a value each) kept for at least `keep_ms`, at most `max` of them.
#[derive(Debug, Clone)]
pub(crate) struct Recent<V> {
    keep_ms: u64,
    max: usize,
    open: SmallMap<u64, V>,
    opened_ms: u64,
    /// Oldest first.
    frozen: VecDeque<Frozen<V>>,
    len: usize,
}

impl<V> Recent<V> {
    /// Keeps entries for at least `keep_ms`, at most `max` (at least 16) at once.
    pub(crate) fn new(keep_ms: u64, max: usize) -> Self {
        Self {
            keep_ms,
            max: max.max(SIZE_PARTS),
            open: SmallMap::new(),
            opened_ms: 0,
            frozen: VecDeque::new(),
            len: 0,
        }
    }

    /// The value kept for `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        self.open.get(&id).or_else(|| {
            self.frozen.iter().rev().find_map(|g| {
                // Ids are hashes, spread evenly: searched from a guess.
                let at = uniform::search(&g.entries, id, |(k, _)| k.cmp(&id)).ok()?;
                Some(&g.entries[at].1)
            })
        })
    }

    /// Whether `id` is kept.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Keeps `id` with `value` from `now_ms`; false (and nothing changes
    /// but expiry) if it is kept already.
    pub(crate) fn insert(&mut self, now_ms: u64, id: u64, value: V) -> bool {
        self.expire(now_ms);
        if self.contains(id) {
            return false;
        }
        if self.open.len() >= self.max / SIZE_PARTS {
            self.close(now_ms);
        }
        self.open.insert(id, value);
        self.len += 1;
        while self.len > self.max {
            match self.frozen.pop_front() {
                Some(oldest) => self.len -= oldest.entries.len(),
                None => break,
            }
        }
        true
    }

    /// Forgets the generations that have lived their time, and closes the
    /// open one once it has been open a quarter of it.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        if now_ms >= self.opened_ms.saturating_add(self.keep_ms / GENERATIONS) {
            self.close(now_ms);
        }
        while let Some(oldest) = self.frozen.front() {
            if now_ms < oldest.closed_ms.saturating_add(self.keep_ms) {
                break;
            }
            self.len -= oldest.entries.len();
            self.frozen.pop_front();
        }
    }

    fn close(&mut self, now_ms: u64) {
        self.opened_ms = now_ms;
        if self.open.is_empty() {
            return;
        }
        // In id order already.
        let entries = std::mem::take(&mut self.open).into_iter().collect();
        self.frozen.push_back(Frozen {
            closed_ms: now_ms,
            entries,
        });
    }

    /// How many are kept.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_their_time_and_a_quarter_at_most() {
        let mut r = Recent::new(1_000, 100);
        assert!(r.insert(0, 7, 'a'));
        assert!(!r.insert(10, 7, 'b'), "kept already");
        assert_eq!(r.get(7), Some(&'a'));
        assert!(r.insert(300, 8, 'c'));
        r.expire(999);
        assert_eq!((r.get(7), r.get(8), r.len()), (Some(&'a'), Some(&'c'), 2));
        // 7 closed with the first generation at 300: kept until 1,300.
        r.expire(1_299);
        assert!(r.contains(7));
        r.expire(1_300);
        assert_eq!((r.contains(7), r.contains(8), r.len()), (false, true, 1));
        // 8 closed at 999, the first look a quarter after 300: kept until 1,999.
        r.expire(1_998);
        assert!(r.contains(8));
        r.expire(1_999);
        assert_eq!((r.contains(8), r.len()), (false, 0));
    }

    #[test]
    fn over_the_most_kept_the_oldest_sixteenth_goes() {
        let mut r = Recent::new(u64::MAX, 32);
        for id in 0..32 {
            assert!(r.insert(0, id, ()));
        }
        assert_eq!(r.len(), 32);
        assert!(r.insert(0, 32, ()));
        assert_eq!(r.len(), 31);
        assert!(!r.contains(0) && !r.contains(1));
        assert!((2..=32).all(|id| r.contains(id)));
        for id in 33..1_000 {
            r.insert(0, id, ());
            assert!((30..=32).contains(&r.len()));
        }
        assert!((970..1_000).all(|id| r.contains(id)) && !r.contains(960));
    }
}
