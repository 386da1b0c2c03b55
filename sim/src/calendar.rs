//! The event queue: a calendar of one bucket per millisecond.
//!
//! Events are due at whole milliseconds and almost all of them within a
//! few seconds (link latency, graft and flush timers, anti-entropy), so a
//! ring of per-millisecond FIFO buckets pops in O(1) where a binary heap of
//! millions of pending events pays a cache miss per level. The order is
//! exactly a heap's over (due time, insertion sequence): within a bucket
//! events leave in the order they came, and events due beyond the ring
//! wait in a sorted map that enters them into their bucket before anything
//! else can be pushed there.

use std::collections::{BTreeMap, VecDeque};

/// Milliseconds the ring covers.
const SPAN: u64 = 8_192;
/// Room an emptied bucket keeps (events).
const KEPT: usize = 64;

/// Events by due time (ms), first due first, ties in insertion order.
#[derive(Debug)]
pub(crate) struct Calendar<T> {
    /// The time of the bucket being drained: no event is due earlier.
    now: u64,
    /// Bucket `t % SPAN` holds the events due at `t`, for `now <= t < now + SPAN`.
    ring: Vec<VecDeque<T>>,
    /// Events in the ring.
    in_ring: usize,
    /// Events due at or after `now + SPAN` when pushed, by (due, sequence).
    later: BTreeMap<(u64, u64), T>,
    seq: u64,
}

impl<T> Default for Calendar<T> {
    fn default() -> Self {
        Self {
            now: 0,
            ring: (0..SPAN).map(|_| VecDeque::new()).collect(),
            in_ring: 0,
            later: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T> Calendar<T> {
    /// Queues `item` due at `at` (at the current time if earlier).
    pub(crate) fn push(&mut self, at: u64, item: T) {
        let at = at.max(self.now);
        if at < self.now + SPAN {
            self.ring[(at % SPAN) as usize].push_back(item);
            self.in_ring += 1;
        } else {
            self.seq += 1;
            self.later.insert((at, self.seq), item);
        }
    }

    /// The first event due, with its due time.
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        loop {
            let bucket = &mut self.ring[(self.now % SPAN) as usize];
            if let Some(item) = bucket.pop_front() {
                self.in_ring -= 1;
                return Some((self.now, item));
            }
            // A burst's room is not kept for the millisecond this bucket
            // serves next, SPAN ms later.
            if bucket.capacity() > KEPT {
                *bucket = VecDeque::new();
            }
            self.now = if self.in_ring == 0 {
                self.later.first_key_value()?.0.0
            } else {
                self.now + 1
            };
            // Bring what the ring now covers in before anything new is
            // pushed behind it.
            while let Some(entry) = self.later.first_entry() {
                let at = entry.key().0;
                if at >= self.now + SPAN {
                    break;
                }
                let item = entry.remove();
                self.ring[(at % SPAN) as usize].push_back(item);
                self.in_ring += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn pops_by_due_time_then_arrival() {
        let mut c = Calendar::default();
        c.push(20_000, "far");
        c.push(5, "b");
        c.push(3, "a");
        c.push(5, "c");
        assert_eq!(c.pop(), Some((3, "a")));
        c.push(0, "now");
        c.push(20_000, "far too");
        assert_eq!(c.pop(), Some((3, "now")));
        assert_eq!(c.pop(), Some((5, "b")));
        assert_eq!(c.pop(), Some((5, "c")));
        assert_eq!(c.pop(), Some((20_000, "far")));
        assert_eq!(c.pop(), Some((20_000, "far too")));
        assert_eq!(c.pop(), None);
    }

    proptest! {
        /// Any interleaving of pushes (near, far, in the past) and pops
        /// gives the order of a heap over (due, sequence).
        #[test]
        fn same_order_as_a_heap(ops in prop::collection::vec((0u64..45_000, 0u8..3), 1..400)) {
            let mut c = Calendar::default();
            let mut heap = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (i, (delay, pops)) in ops.into_iter().enumerate() {
                seq += 1;
                let at = (now + delay).saturating_sub(5_000);
                c.push(at, i);
                heap.push(Reverse((at.max(now), seq, i)));
                for _ in 0..pops {
                    let want = heap.pop().map(|Reverse((at, _, i))| (at, i));
                    prop_assert_eq!(c.pop(), want);
                    if let Some((at, _)) = want {
                        now = at;
                    }
                }
            }
            while let Some(Reverse((at, _, i))) = heap.pop() {
                prop_assert_eq!(c.pop(), Some((at, i)));
            }
            prop_assert_eq!(c.pop(), None);
        }
    }
}
