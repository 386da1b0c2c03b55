//! Anti-entropy: periodic pairwise reconciliation with a neighbour.
//!
//! Every `anti_entropy_ms` a node opens a reconciliation of its evidence
//! set with a random active neighbour (range fingerprints, see
//! `starling_trust::evidence::reconcile`) and sends its policy heads. Each
//! side sends only what the other lacks, so late joiners and healed
//! partitions converge. The policy document is reconciled as the set of
//! governor-signed change envelopes (automerge's own sync protocol would
//! move unsigned changes): heads first, and only when they differ the
//! list of change hashes, then the missing envelopes.

use std::sync::Arc;

use automerge::ChangeHash;
use rand_core::Rng;
use starling_trust::RecordId;
use starling_trust::evidence::reconcile::{Part, Range};

use crate::node::{Node, Timer};
use crate::peer::{Peer, below};
use crate::stats::DropReason;
use crate::wire::{
    Body, PolicyChanges, PolicyHave, PolicyHeads, RangePart, Reconcile, Records, Want,
};

/// Most records or ids in one frame.
const RECORDS_PER_FRAME_MAX: usize = 512;
/// Most parts in one reconciliation frame.
const PARTS_MAX: usize = 4_096;

fn to_wire(parts: Vec<Part>) -> Vec<RangePart> {
    parts
        .into_iter()
        .map(|part| match part {
            Part::Fingerprint {
                range,
                count,
                fingerprint,
            } => RangePart {
                prefix: range.prefix,
                bits: u32::from(range.bits),
                count,
                fingerprint: Some(fingerprint),
                ..RangePart::default()
            },
            Part::Ids { range, ids } => RangePart {
                prefix: range.prefix,
                bits: u32::from(range.bits),
                ids,
                ..RangePart::default()
            },
        })
        .collect()
}

fn from_wire(parts: Vec<RangePart>) -> Option<Vec<Part>> {
    parts
        .into_iter()
        .take(PARTS_MAX)
        .map(|p| {
            let range = Range {
                prefix: p.prefix,
                bits: u8::try_from(p.bits).ok()?,
            };
            if !range.is_valid() || p.malformed {
                return None;
            }
            Some(match p.fingerprint {
                Some(fingerprint) => Part::Fingerprint {
                    range,
                    count: p.count,
                    fingerprint,
                },
                None => Part::Ids { range, ids: p.ids },
            })
        })
        .collect()
}

fn ids(raw: &[Vec<u8>]) -> Option<Vec<RecordId>> {
    raw.iter()
        .map(|id| RecordId::try_from(id.as_slice()).ok())
        .collect()
}

impl<P: Peer, R: Rng> Node<P, R> {
    pub(crate) fn on_anti_entropy_timer(&mut self, now_ms: u64) {
        self.set_timer(now_ms + self.config.anti_entropy_ms, Timer::AntiEntropy);
        let active = self.views.active();
        if active.is_empty() {
            return;
        }
        let peer = active[below(&mut self.rng, active.len())];
        self.reconcile_with(peer);
    }

    /// Opens a reconciliation of evidence and policy with `peer`.
    pub(crate) fn reconcile_with(&mut self, peer: P) {
        let parts = to_wire(self.trust.store().reconcile_start());
        self.send(peer, Body::Reconcile(Reconcile { parts }));
        let heads = self
            .trust
            .policy()
            .heads()
            .iter()
            .map(|h| h.0.to_vec())
            .collect();
        self.send(peer, Body::PolicyHeads(PolicyHeads { heads }));
    }

    pub(crate) fn on_reconcile(&mut self, now_ms: u64, from: P, r: Reconcile) {
        let Some(parts) = from_wire(r.parts) else {
            self.strike(
                now_ms,
                from,
                DropReason::Malformed("bad reconciliation range".into()),
            );
            return;
        };
        let reply = self.trust.store().reconcile(&parts);
        self.send_records(from, &reply.send);
        for chunk in reply.want.chunks(RECORDS_PER_FRAME_MAX) {
            self.send(
                from,
                Body::Want(Want {
                    ids: chunk.iter().map(|id| id.to_vec()).collect(),
                }),
            );
        }
        if !reply.parts.is_empty() {
            self.send(
                from,
                Body::Reconcile(Reconcile {
                    parts: to_wire(reply.parts),
                }),
            );
        }
    }

    fn send_records(&mut self, to: P, ids: &[RecordId]) {
        for chunk in ids.chunks(RECORDS_PER_FRAME_MAX) {
            let records: Vec<Vec<u8>> = chunk
                .iter()
                .filter_map(|id| self.trust.store().get(id))
                .map(|r| r.to_bytes().to_vec())
                .collect();
            if !records.is_empty() {
                self.send(to, Body::Records(Records { records }));
            }
        }
    }

    pub(crate) fn on_want(&mut self, now_ms: u64, from: P, w: Want) {
        match ids(&w.ids) {
            Some(wanted) => {
                self.send_records(from, &wanted[..wanted.len().min(RECORDS_PER_FRAME_MAX)])
            }
            None => self.strike(now_ms, from, DropReason::Malformed("bad record id".into())),
        }
    }

    pub(crate) fn on_records(&mut self, now_ms: u64, from: P, r: Records) {
        for bytes in r.records.iter().take(RECORDS_PER_FRAME_MAX) {
            match self.trust.decode_record(bytes) {
                Ok(record) => {
                    // A recent revocation or termination that reached this
                    // node by reconciliation, not by the tree, may have
                    // crossed a healed partition: the tree carries it on
                    // to this node's side at once, rather than round by
                    // round. Only recent ones (`urgent_age_max_ms`): a
                    // node back from a long absence does not push the
                    // mesh's history of them.
                    let urgent = record.evidence().ends_authority()
                        && now_ms.saturating_sub(record.issued_ms())
                            < self.config.urgent_age_max_ms;
                    if self.apply_record(now_ms, Arc::clone(&record)) && urgent {
                        self.broadcast_record(now_ms, &record);
                    }
                }
                Err(starling_trust::EvidenceError::Decode(
                    starling_trust::wire::DecodeError::Signature { .. },
                )) => self.strike(now_ms, from, DropReason::Forged),
                Err(e) => self.strike(now_ms, from, DropReason::Malformed(e.to_string())),
            }
        }
    }

    pub(crate) fn on_policy_heads(&mut self, from: P, h: PolicyHeads) {
        let mine: Vec<Vec<u8>> = self
            .trust
            .policy()
            .heads()
            .iter()
            .map(|c| c.0.to_vec())
            .collect();
        let mut theirs = h.heads;
        theirs.sort();
        if theirs != mine {
            self.send(
                from,
                Body::PolicyHave(PolicyHave {
                    hashes: self.change_hashes(),
                }),
            );
        }
    }

    fn change_hashes(&self) -> Vec<Vec<u8>> {
        self.trust
            .policy()
            .changes()
            .keys()
            .map(|h| h.0.to_vec())
            .collect()
    }

    pub(crate) fn on_policy_have(&mut self, from: P, h: PolicyHave) {
        let theirs: std::collections::BTreeSet<ChangeHash> = h
            .hashes
            .iter()
            .filter_map(|b| ChangeHash::try_from(b.as_slice()).ok())
            .collect();
        let missing: Vec<Vec<u8>> = self
            .trust
            .policy()
            .changes()
            .iter()
            .filter(|(hash, _)| !theirs.contains(hash))
            .map(|(_, c)| c.to_bytes().to_vec())
            .collect();
        for chunk in missing.chunks(RECORDS_PER_FRAME_MAX) {
            self.send(
                from,
                Body::PolicyChanges(PolicyChanges {
                    changes: chunk.to_vec(),
                }),
            );
        }
        let lacking = theirs
            .iter()
            .any(|hash| !self.trust.policy().changes().contains_key(hash));
        if lacking {
            self.send(
                from,
                Body::PolicyHave(PolicyHave {
                    hashes: self.change_hashes(),
                }),
            );
        }
    }

    pub(crate) fn on_policy_changes(&mut self, now_ms: u64, from: P, c: PolicyChanges) {
        for bytes in c.changes.iter().take(RECORDS_PER_FRAME_MAX) {
            match self.trust.decode_policy_change(bytes) {
                Ok(change) => {
                    if let Err(e) = self.apply_policy(change) {
                        self.strike(now_ms, from, DropReason::Malformed(e.to_string()));
                    }
                }
                Err(e) => self.strike(now_ms, from, DropReason::Malformed(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn part() -> impl Strategy<Value = Part> {
        let range = (0u8..=16).prop_flat_map(|nibbles| {
            let bits = nibbles * 4;
            any::<u64>().prop_map(move |p| Range {
                prefix: if bits == 0 {
                    0
                } else {
                    p >> (64 - bits) << (64 - bits)
                },
                bits,
            })
        });
        prop_oneof![
            (
                range.clone(),
                any::<u64>(),
                any::<starling_trust::evidence::reconcile::Fingerprint>()
            )
                .prop_map(|(range, count, fingerprint)| Part::Fingerprint {
                    range,
                    count,
                    fingerprint,
                }),
            (range, proptest::collection::vec(any::<RecordId>(), 0..4))
                .prop_map(|(range, ids)| Part::Ids { range, ids }),
        ]
    }

    proptest! {
        /// Parts survive the wire, and a malformed part or a bad range
        /// refuses the whole step.
        #[test]
        fn parts_cross_the_wire(parts in proptest::collection::vec(part(), 1..5), bad in 0usize..5) {
            let wire = to_wire(parts.clone());
            prop_assert_eq!(from_wire(wire.clone()), Some(parts));
            let mut malformed = wire.clone();
            let at = bad % malformed.len();
            malformed[at].malformed = true;
            prop_assert_eq!(from_wire(malformed), None);
            let mut misaligned = wire;
            misaligned[at].bits = 3;
            prop_assert_eq!(from_wire(misaligned), None);
        }
    }
}
