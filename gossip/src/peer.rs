//! How a driver names peers.
//!
//! The core is generic over the peer identifier: the node uses a libp2p
//! `PeerId`, the simulator a `u32`, so a million simulated nodes do not
//! carry a million 38-byte keys in their views. A peer id travels on the
//! wire (in joins and shuffles), so it has a byte form.

use std::fmt::Debug;
use std::hash::Hash;

/// A peer identifier the core can store, order and send.
pub trait Peer: Copy + Ord + Hash + Debug + 'static {
    /// The wire form.
    fn to_wire(&self) -> Vec<u8>;
    /// Reads the wire form; `None` if malformed.
    fn from_wire(bytes: &[u8]) -> Option<Self>;
}

impl Peer for u32 {
    fn to_wire(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }

    fn from_wire(bytes: &[u8]) -> Option<Self> {
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Peer for libp2p_identity::PeerId {
    fn to_wire(&self) -> Vec<u8> {
        self.to_bytes()
    }

    fn from_wire(bytes: &[u8]) -> Option<Self> {
        libp2p_identity::PeerId::from_bytes(bytes).ok()
    }
}

/// Uniform choice below `n` from the injected RNG (Lemire's multiply-shift;
/// the bias is below 2^-32 for the sizes used here).
///
/// # Panics
/// If `n` is zero.
pub(crate) fn below<R: rand_core::Rng>(rng: &mut R, n: usize) -> usize {
    assert!(n > 0, "choice from an empty set");
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// A uniformly chosen element.
pub(crate) fn pick<'a, T, R: rand_core::Rng>(rng: &mut R, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[below(rng, items.len())])
}

/// Fisher-Yates shuffle.
pub(crate) fn shuffle<T, R: rand_core::Rng>(rng: &mut R, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}
