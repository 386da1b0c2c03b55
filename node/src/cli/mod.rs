//! Subcommands that create and inspect identities, genesis documents and mandates.

pub(crate) mod demo;
pub(crate) mod genesis;
pub(crate) mod id;
pub(crate) mod mandate;
pub(crate) mod node;
pub(crate) mod sim;
