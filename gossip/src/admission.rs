//! Connections and the handshake: who is let in.
//!
//! On connecting, each side sends `Hello` with its mesh id and its signed
//! agent record. A peer is admitted only if the mesh id is ours, the record
//! is signed by the very key the transport authenticated, its mandate chain
//! verifies now (rooted at a governor, in time, unrevoked, not terminated),
//! it is not graylisted, and the policy lets its agent `join`. Otherwise it
//! gets a `Refuse` with the reason and is disconnected. Until admitted, a
//! peer's other frames are dropped and frames for it wait in a short queue.

use rand_core::Rng;
use starling_trust::evidence::store::Slot;
use starling_trust::policy::Action;
use starling_trust::{Did, Evidence, Inserted, MandateError, Record};

use crate::limits::Bucket;
use crate::node::{Event, Link, Node, Output};
use crate::peer::Peer;
use crate::trust_state::Refusal;
use crate::wire::{Body, Hello, Records, Refuse};

impl<P: Peer, R: Rng> Node<P, R> {
    pub(crate) fn on_connected(&mut self, now_ms: u64, peer: P, did: Did) {
        if peer == self.me || self.links.contains_key(&peer) {
            return;
        }
        let queue = self
            .dialing
            .remove(&peer)
            .filter(|(_, q)| !q.is_empty())
            .map(|(_, q)| Box::new(q));
        let bucket = Bucket::full(self.config.peer_frames_burst, now_ms);
        self.links.insert(
            peer,
            Link {
                did: self.trust.shared_did(did),
                admitted: false,
                connected_ms: now_ms,
                last_active_ms: now_ms,
                queue,
                bucket,
                strikes: 0,
            },
        );
        let hello = Hello {
            mesh: self.trust.genesis().id().to_vec(),
            agent_record: self.record.to_bytes().to_vec(),
        };
        let frame = crate::wire::Frame::new(Body::Hello(hello)).encode();
        self.stats.frames_out += 1;
        self.stats.bytes_out += frame.len() as u64;
        self.outbox.push_back(Output::Send {
            to: peer,
            frame: frame.into(),
        });
    }

    /// A connection ended, or a dial failed: forget the peer's neighbourhood
    /// and requests, and refill the active view from the passive one.
    pub(crate) fn on_disconnected(&mut self, now_ms: u64, peer: P) {
        self.dialing.remove(&peer);
        let was_pending = self.views.cancel_pending(&peer);
        let was_active =
            self.links.remove(&peer).is_some_and(|l| l.admitted) && self.remove_neighbor(&peer);
        if was_active || was_pending {
            self.views.forget_unless_lost(&peer);
            self.refill_active(now_ms);
        }
    }

    pub(crate) fn on_hello(&mut self, now_ms: u64, peer: P, hello: Hello) {
        match self.check_hello(now_ms, peer, &hello) {
            Ok(()) => {
                let Some(link) = self.links.get_mut(&peer) else {
                    return;
                };
                link.admitted = true;
                let did = *link.did;
                let queued = link.queue.take().map(|q| *q).unwrap_or_default();
                // A peer already in a view now has its DID and principal
                // proved: they replace what shuffles said of it.
                if self.views.knows(&peer) {
                    self.remember_link(&peer);
                }
                self.event(Event::PeerAdmitted { peer, did });
                for frame in queued {
                    self.send_encoded(peer, frame);
                }
                self.on_admitted(now_ms, peer);
            }
            Err(reason) => {
                self.stats.peers_refused += 1;
                self.send_refuse(peer, &reason);
                self.event(Event::PeerRefused { peer, reason });
                // Not asked back, even if lost: it was found unfit.
                self.views.forget_passive(&peer);
                self.drop_link(now_ms, peer);
            }
        }
    }

    fn send_refuse(&mut self, peer: P, reason: &str) {
        let frame = crate::wire::Frame::new(Body::Refuse(Refuse {
            reason: reason.to_string(),
        }))
        .encode();
        self.outbox.push_back(Output::Send {
            to: peer,
            frame: frame.into(),
        });
    }

    /// Before refusing a peer whose mandate was revoked or terminated, sends
    /// it the records that did so, so its own node learns why (and can check
    /// them). They are found by slot: each author that may have signed one
    /// (a governor, or an identity in the peer's chain), so the cost is
    /// bounded by the chain and the genesis, never by the store.
    fn send_ending_records(&mut self, peer: P, record: &Record, refusal: &Refusal) {
        let (Refusal::Mandate(error), Evidence::Agent(agent)) = (refusal, record.evidence()) else {
            return;
        };
        let links = agent.chain.links();
        let authors: Vec<Did> = self
            .trust
            .genesis()
            .governors()
            .iter()
            .copied()
            .chain(links.iter().map(|m| m.issuer()))
            .collect();
        let slots: Vec<Slot> = match error {
            MandateError::Terminated(who) => authors
                .iter()
                .map(|a| Slot::Termination(*who, *a))
                .collect(),
            MandateError::Revoked { link } => match links.get(*link) {
                Some(m) => authors
                    .iter()
                    .map(|a| Slot::Revocation(m.id(), *a))
                    .collect(),
                None => return,
            },
            _ => return,
        };
        let mut records: Vec<Vec<u8>> = slots
            .iter()
            .filter_map(|slot| self.trust.store().best(slot))
            .map(|r| r.to_bytes().to_vec())
            .collect();
        records.dedup();
        if records.is_empty() {
            return;
        }
        let frame = crate::wire::Frame::new(Body::Records(Records { records })).encode();
        self.outbox.push_back(Output::Send {
            to: peer,
            frame: frame.into(),
        });
    }

    /// Checks a hello; on success the agent's record is in the store (from
    /// where anti-entropy spreads it, and any node holding a message of this
    /// agent pulls it).
    fn check_hello(&mut self, now_ms: u64, peer: P, hello: &Hello) -> Result<(), String> {
        let did = self
            .links
            .get(&peer)
            .map(|l| *l.did)
            .ok_or("not connected")?;
        if hello.mesh != self.trust.genesis().id() {
            return Err("wrong genesis: the peer belongs to another mesh".into());
        }
        if self.graylist.contains(&did, now_ms) {
            return Err("graylisted for repeated misbehaviour".into());
        }
        let record = self
            .trust
            .decode_record(&hello.agent_record)
            .map_err(|e| format!("invalid agent record: {e}"))?;
        if !matches!(record.evidence(), Evidence::Agent(_)) || record.author() != did {
            return Err("the agent record is not the connected peer's".into());
        }
        let fresh = matches!(
            self.trust.insert(std::sync::Arc::clone(&record)),
            Inserted::Added { .. }
        );
        let authority = match self.trust.authority(&did, now_ms) {
            Ok(a) => a,
            Err(refusal) => {
                self.send_ending_records(peer, &record, &refusal);
                return Err(refusal.to_string());
            }
        };
        self.trust.note_fresh(did, now_ms);
        self.trust
            .decide(&authority, Action::Join, "*")
            .map_err(|e| e.to_string())?;
        if fresh {
            let (id, kind, subject) = (
                record.id(),
                record.evidence().kind(),
                record.evidence().subject(),
            );
            self.event(Event::EvidenceApplied {
                id,
                kind,
                author: did,
                subject,
            });
            self.release_awaiting(now_ms, &did);
        }
        Ok(())
    }

    /// Cuts off admitted peers whose mandates no longer hold (after a
    /// revocation or termination arrives), first sending them `why` (the
    /// records that ended their mandate) so their own node knows.
    pub(crate) fn recheck_links(&mut self, now_ms: u64, why: &[Vec<u8>]) {
        let admitted: Vec<(P, Did)> = self
            .links
            .iter()
            .filter(|(_, l)| l.admitted)
            .map(|(p, l)| (*p, *l.did))
            .collect();
        for (peer, did) in admitted {
            if let Err(refusal) = self.trust.authority(&did, now_ms) {
                if !why.is_empty() {
                    self.send(
                        peer,
                        Body::Records(Records {
                            records: why.to_vec(),
                        }),
                    );
                }
                let reason = refusal.to_string();
                self.stats.peers_refused += 1;
                self.send_refuse(peer, &reason);
                self.event(Event::PeerRefused { peer, reason });
                self.drop_link(now_ms, peer);
            }
        }
    }

    /// Closes handshakes that took too long and links idle outside the views.
    pub(crate) fn sweep_links(&mut self, now_ms: u64) {
        let handshake_ms = self.config.handshake_ms;
        // A link outside the views that carried nothing for two handshake
        // times is a shuffle's or a refused request's, done with. (Closing
        // such links the moment their work was done cut frames the other
        // end still sent; idling them 30 s cost 1.4 KB a simulated node.)
        let idle_ms = handshake_ms * 2;
        let stale: Vec<(P, bool)> = self
            .links
            .iter()
            .filter(|(p, l)| {
                let handshaking = !l.admitted && now_ms >= l.connected_ms + handshake_ms;
                let idle = l.admitted
                    && !self.views.is_active(p)
                    && !self.views.is_pending(p)
                    && now_ms >= l.last_active_ms + idle_ms;
                handshaking || idle
            })
            .map(|(p, l)| (*p, l.admitted))
            .collect();
        for (peer, admitted) in stale {
            if !admitted {
                self.event(Event::PeerRefused {
                    peer,
                    reason: "handshake timed out".into(),
                });
            }
            self.drop_link(now_ms, peer);
        }
        let dials: Vec<P> = self
            .dialing
            .iter()
            .filter(|(_, (since, _))| now_ms >= since + handshake_ms)
            .map(|(p, _)| *p)
            .collect();
        for peer in dials {
            self.on_disconnected(now_ms, peer);
        }
    }
}
