//! The Starling node: the libp2p + tokio driver of the gossip and trust
//! cores, its storage, audit log, end-to-end sealing and local API.
//!
//! - [`runtime`]: starting a node from its data dir and options.
//! - [`driver`]: the one event loop (core + swarm + store), [`requests`] and
//!   [`queries`] its answers to the agent.
//! - [`net`]: the libp2p swarm (QUIC, TCP + TLS + yamux, identify, ping,
//!   Kademlia, optional mDNS), [`session`]: gossip frames over streams.
//! - [`store`]: redb; [`audit`]: the hash-chained signed log.
//! - [`seal`]: X25519 + ML-KEM-768 end-to-end sealing; [`private`]: private
//!   topics sealed for their members.
//! - [`api`]: the local HTTP API; [`handle`]: its in-process twin.

pub mod api;
pub mod audit;
pub mod driver;
pub mod files;
pub mod handle;
pub mod localmesh;
pub mod metrics;
pub mod net;
pub mod private;
pub mod queries;
pub mod requests;
pub mod runtime;
pub mod seal;
pub mod session;
pub mod store;
pub mod story;
pub mod vs;

pub use handle::{AgentEvent, ApiError, EvidenceInput, NodeHandle, PolicyInput, Query};
pub use runtime::{NodeOptions, RunningNode, StartError, start};
