//! The Starling trust core: identity, mandates, evidence, scores and policy.
//!
//! Sans-IO: no clocks, no OS randomness, no sockets. Time is an argument
//! (Unix milliseconds or a score epoch), randomness comes from the caller,
//! and every function is deterministic, so every node — and the simulator —
//! computes the same answers from the same inputs.
//!
//! - [`did`]: `did:key` identities and their libp2p `PeerId`s.
//! - [`keys`]: signing keys and domain-separated signatures.
//! - [`scope`]: capabilities and patterns.
//! - [`mandate`]: signed delegation chains from a governor to an agent.
//! - [`genesis`]: the document that names a mesh.
//! - [`evidence`]: signed records, their CRDT store and reconciliation.
//! - [`score`]: the deterministic score function and tiers.
//! - [`policy`]: the governors' automerge policy document and `decide`.
//! - [`wire`]: the prost encoding shared by all of the above.
//! - [`small_map`] and [`uniform`]: compact maps, and searching sorted
//!   hashes and keys.

#![deny(missing_docs)]

pub mod did;
pub mod evidence;
pub mod genesis;
pub mod keys;
pub mod mandate;
pub mod policy;
pub mod scope;
pub mod score;
pub mod small_map;
pub mod uniform;
pub mod wire;

pub use did::{Did, DidError, KeyedDid};
pub use evidence::record::{Evidence, EvidenceError, Record, RecordId};
pub use evidence::store::{EvidenceStore, Inserted, Succession};
pub use genesis::{Genesis, GenesisSpec, MeshId, Params};
pub use keys::{Domain, Keypair};
pub use mandate::{Authority, Mandate, MandateChain, MandateError, MandateSpec};
pub use policy::{Action, Actor, Decision, Effect, Policy};
pub use scope::{Capability, Pattern, Scope};
pub use score::{ScoreTable, Tier};
