//! The Starling gossip core: a sans-IO state machine per node.
//!
//! One [`Node`] per agent runs the whole protocol: admission (a handshake
//! exchanging mesh id and mandate chain), HyParView membership made
//! trust-aware ([`membership`]), Plumtree broadcast per topic
//! ([`broadcast`]), the checks every item passes ([`items`]), and
//! anti-entropy of evidence and policy ([`sync`]). It never reads a clock,
//! draws OS randomness or touches IO: the libp2p node and the simulator
//! drive this same code through [`Node::handle`] and [`Node::poll_output`]
//! (see [`node`] for the calling contract). Frames are prost messages
//! ([`wire`]); application messages are signed by their origin
//! ([`message`]).

#![deny(missing_docs)]

mod admission;
pub mod broadcast;
pub mod config;
mod dispatch;
pub mod items;
pub mod limits;
mod liveness;
pub mod membership;
pub mod memo;
pub mod message;
pub mod node;
pub mod peer;
mod recent;
pub mod stats;
pub mod sync;
pub mod trust_state;
pub mod wire;

pub use config::Config;
pub use memo::Memo;
pub use message::{MessageId, SignedMessage};
pub use node::{Command, CommandError, Delivery, Event, Input, Node, NodeError, Output, Timer};
pub use peer::Peer;
pub use stats::{DropReason, Stats};
