//! Workloads and measurements shared by `starling bench` and the criterion
//! benches in `benches/`, so both measure the same thing.

#![deny(missing_docs)]

pub mod gossip;
pub mod trust;
pub mod vs;
