//! Evidence: signed records, the CRDT that holds them, and reconciliation.

mod fingerprint;
pub mod reconcile;
pub mod record;
pub mod store;

#[cfg(test)]
mod tests;
