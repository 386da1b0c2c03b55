//! Token buckets and the graylist: how floods are bounded.

use std::collections::BTreeMap;

use starling_trust::Did;
use starling_trust::small_map::SmallMap;

/// A token bucket in milli-tokens, refilled from the time passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    tokens_milli: u64,
    updated_ms: u64,
    /// When it will be full again at the rate and burst last taken with.
    full_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        Self {
            tokens_milli: u64::from(burst) * 1000,
            updated_ms: now_ms,
            full_ms: now_ms,
        }
    }

    /// Takes one token if there is one, after refilling at `rate_per_s` up to `burst`.
    pub fn take(&mut self, now_ms: u64, rate_per_s: u32, burst: u32) -> bool {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        let cap = u64::from(burst) * 1000;
        self.tokens_milli = (self.tokens_milli + elapsed * u64::from(rate_per_s)).min(cap);
        self.updated_ms = now_ms.max(self.updated_ms);
        let taken = self.tokens_milli >= 1000;
        if taken {
            self.tokens_milli -= 1000;
        }
        let missing = cap.saturating_sub(self.tokens_milli);
        self.full_ms = match (missing, u64::from(rate_per_s)) {
            (0, _) => self.updated_ms,
            (_, 0) => u64::MAX,
            (missing, rate) => self.updated_ms.saturating_add(missing.div_ceil(rate)),
        };
        taken
    }

    /// Whether it is full at `now_ms` (at the rate and burst last taken
    /// with): then it answers as a new bucket would.
    pub fn is_full(&self, now_ms: u64) -> bool {
        self.full_ms <= now_ms
    }
}

/// Per-key buckets, at most `max` keys; the least recently used is dropped.
#[derive(Debug, Clone)]
pub struct Buckets {
    buckets: SmallMap<Did, Bucket>,
    max: usize,
}

impl Buckets {
    /// Tracks at most `max` keys.
    pub fn new(max: usize) -> Self {
        Self {
            buckets: SmallMap::new(),
            max: max.max(1),
        }
    }

    /// Takes a token for `did`.
    pub fn take(&mut self, did: Did, now_ms: u64, rate_per_s: u32, burst: u32) -> bool {
        if let Some(bucket) = self.buckets.get_mut(&did) {
            return bucket.take(now_ms, rate_per_s, burst);
        }
        if self.buckets.len() >= self.max {
            let stalest = self
                .buckets
                .iter()
                .min_by_key(|(d, b)| (b.updated_ms, **d))
                .map(|(d, _)| *d);
            if let Some(d) = stalest {
                self.buckets.remove(&d);
            }
        }
        self.buckets
            .get_or_insert_with(did, || Bucket::full(burst, now_ms))
            .take(now_ms, rate_per_s, burst)
    }

    /// Forgets the buckets that are full again: each answers as the new
    /// bucket made on the next take would, so a node holds buckets only
    /// for the identities that sent lately, not for every author it ever
    /// heard from (a million simulated nodes each heard every new agent).
    /// An identity whose rate or burst changed meanwhile starts afresh at
    /// its new burst, as one never heard from does.
    pub fn forget_full(&mut self, now_ms: u64) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now_ms));
    }

    /// Number tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether none are tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Identities refused until a time.
#[derive(Debug, Clone, Default)]
pub struct Graylist(BTreeMap<Did, u64>);

impl Graylist {
    /// Refuses `did` until `until_ms`.
    pub fn add(&mut self, did: Did, until_ms: u64) {
        let entry = self.0.entry(did).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }

    /// Whether `did` is refused at `now_ms`.
    pub fn contains(&self, did: &Did, now_ms: u64) -> bool {
        self.0.get(did).is_some_and(|until| now_ms < *until)
    }

    /// Forgets expired entries.
    pub fn expire(&mut self, now_ms: u64) {
        self.0.retain(|_, until| now_ms < *until);
    }

    /// Number listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate() {
        let mut b = Bucket::full(2, 0);
        assert!(b.take(0, 10, 2) && b.take(0, 10, 2));
        assert!(!b.take(0, 10, 2));
        assert!(!b.take(50, 10, 2));
        assert!(b.take(100, 10, 2));
        assert!(b.take(10_000, 10, 2) && b.take(10_000, 10, 2) && !b.take(10_000, 10, 2));
    }

    /// A bucket is forgotten once refilled to its burst, and a take then
    /// answers as it would have with the bucket kept.
    #[test]
    fn full_buckets_are_forgotten() {
        let did = starling_trust::Keypair::from_secret_bytes(&[1; 32]).did();
        let (mut kept, mut forgetting) = (Bucket::full(3, 0), Buckets::new(8));
        let mut answers = Vec::new();
        let times = [
            0, 0, 0, 0, 150, 500, 700, 1_200, 1_300, 1_300, 1_300, 2_000, 2_000, 2_000,
        ];
        for now in times {
            forgetting.forget_full(now);
            let (a, b) = (kept.take(now, 4, 3), forgetting.take(did, now, 4, 3));
            assert_eq!(a, b, "at {now} ms");
            answers.push(a);
        }
        // Three tokens, then empty; one back every 250 ms; full again at
        // 2,000 ms (750 ms after the last take at 1,300 left it empty), so
        // forgotten there and made afresh.
        let expected = [
            true, true, true, false, false, true, true, true, true, true, false, true, true, true,
        ];
        assert_eq!(answers, expected);
        // Emptied again at 2,000 ms: full 750 ms later.
        forgetting.forget_full(2_749);
        assert_eq!(forgetting.len(), 1);
        forgetting.forget_full(2_750);
        assert!(forgetting.is_empty());
        // Without a rate it never refills, so it is never forgotten.
        let mut dry = Bucket::full(1, 0);
        assert!(dry.take(0, 0, 1));
        assert!(!dry.is_full(u64::MAX - 1));
    }

    #[test]
    fn buckets_stay_bounded() {
        let mut buckets = Buckets::new(3);
        for i in 0..10u8 {
            let did = starling_trust::Keypair::from_secret_bytes(&[i; 32]).did();
            buckets.take(did, u64::from(i), 1, 1);
        }
        assert_eq!(buckets.len(), 3);
    }

    #[test]
    fn graylist_expires() {
        let did = starling_trust::Keypair::from_secret_bytes(&[1; 32]).did();
        let mut g = Graylist::default();
        g.add(did, 100);
        assert!(g.contains(&did, 99) && !g.contains(&did, 100));
        g.expire(100);
        assert!(g.is_empty());
    }
}
