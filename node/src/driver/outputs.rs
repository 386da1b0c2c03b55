//! Performing the core's outputs, in order: frames to send, dials,
//! disconnects, timers, deliveries (opening private and relayed direct
//! messages), and events, each decision audited.

use libp2p::PeerId;
use rand::rngs::StdRng;
use starling_gossip::{Event, Node, Output};
use starling_trust::Did;

use super::Driver;
use crate::audit::Fact;
use crate::handle::AgentEvent;
use crate::session::WriterMsg;

/// Most graylisted identities listed by `/v1/peers`.
pub const GRAYLIST_SHOWN_MAX: usize = 1024;
/// Longest refusal reason kept in the audit log and events.
pub const REASON_CHARS_MAX: usize = 256;

impl Driver {
    /// Performs every queued output of the core, in order.
    pub(crate) fn drain(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { to, frame } => self.send_frame(to, frame),
                Output::Connect(peer) => self.dial(peer),
                Output::Disconnect(peer) => {
                    // Let the writer flush (a Refuse frame, say) before closing.
                    match self.writers.remove(&peer) {
                        Some(w) if w.try_send(WriterMsg::Close).is_ok() => {}
                        _ => {
                            let _ = self.swarm.disconnect_peer_id(peer);
                        }
                    }
                    self.connected.remove(&peer);
                    if self.swarm.is_connected(&peer) {
                        self.cut.insert(peer, self.now_ms + super::CUT_GRACE_MS);
                    }
                }
                Output::SetTimer { at_ms, timer } => {
                    self.timer_seq += 1;
                    self.timers.insert((at_ms, self.timer_seq), timer);
                }
                Output::Deliver(d) => self.on_deliver(d),
                Output::DeliverDirect { from, payload } => self.on_direct(from, payload),
                Output::Event(event) => self.on_core_event(event),
            }
        }
        self.persist_policy();
    }

    pub(super) fn on_deliver(&mut self, d: starling_gossip::Delivery) {
        if d.topic == crate::seal::inbox_topic(&self.key.did()) {
            // A direct message relayed through the overlay.
            return self.on_direct(d.origin, d.payload);
        }
        self.metrics.delivered += 1;
        let latency = self.now_ms.saturating_sub(d.sent_ms);
        self.metrics.observe_latency(latency);
        let origin_peer = d.origin.to_peer_id();
        self.traffic.entry(origin_peer).or_default().messages_from += 1;
        let principal = self
            .core
            .trust()
            .authority_principal(&d.origin)
            .map(|p| p.to_string())
            .unwrap_or_default();
        let id = hex::encode(d.id);
        let origin = d.origin.to_string();
        let me = self.key.did();
        let inbox = d.topic.starts_with(crate::seal::INBOX_PREFIX);
        let (payload, decision) = match crate::private::is_private(&d.topic) {
            false if inbox => {
                let why = "a direct message for another agent";
                (
                    Err((d.payload.len(), why.to_string())),
                    format!("sealed: {why}"),
                )
            }
            false => (Ok(d.payload), "accepted".to_string()),
            true => {
                match crate::private::open_as(&self.kem, &me, &d.origin, &d.topic, &d.payload) {
                    Ok(plain) => (Ok(plain), "accepted (opened as a member)".into()),
                    Err(e) => {
                        self.metrics.private_unopened += 1;
                        (
                            Err((d.payload.len(), e.to_string())),
                            format!("sealed: {e}"),
                        )
                    }
                }
            }
        };
        self.audit.append(
            &mut self.batch,
            self.now_ms,
            Fact {
                agent: origin.clone(),
                principal,
                task: id.clone(),
                action: format!("deliver:{}", d.topic),
                decision,
            },
        );
        let event = match payload {
            Ok(payload) => AgentEvent::Message {
                topic: d.topic,
                origin,
                id,
                sent_ms: d.sent_ms,
                hops: d.hops,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                payload_hex: hex::encode(&payload),
            },
            Err((sealed_bytes, reason)) => AgentEvent::Sealed {
                topic: d.topic,
                origin,
                id,
                sealed_bytes,
                reason,
            },
        };
        let _ = self.events.send(event);
    }

    pub(super) fn on_direct(&mut self, from: Did, sealed: Vec<u8>) {
        let me = self.key.did();
        let principal = self
            .core
            .trust()
            .authority_principal(&from)
            .map(|p| p.to_string())
            .unwrap_or_default();
        let (decision, event) = match self.kem.open(&sealed, &from, &me) {
            Ok(plain) => (
                "accepted".to_string(),
                Some(AgentEvent::Direct {
                    from: from.to_string(),
                    payload: String::from_utf8_lossy(&plain).into_owned(),
                    payload_hex: hex::encode(&plain),
                    sealed_bytes: sealed.len(),
                }),
            ),
            Err(e) => {
                self.metrics.directs_rejected += 1;
                (format!("rejected: {e}"), None)
            }
        };
        self.audit.append(
            &mut self.batch,
            self.now_ms,
            Fact {
                agent: from.to_string(),
                principal,
                task: String::new(),
                action: "direct:receive".into(),
                decision,
            },
        );
        if let Some(e) = event {
            self.metrics.directs_received += 1;
            let _ = self.events.send(e);
        }
    }

    pub(super) fn on_core_event(&mut self, event: Event<PeerId>) {
        match event {
            Event::PeerAdmitted { peer, did } => {
                self.metrics.peers_admitted += 1;
                self.audit_peer(did, "peer:admit", "accepted".into());
                let addrs: Vec<String> = self
                    .addrs
                    .get(&peer)
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                self.batch.peers.push((peer.to_bytes(), addrs.join("\n")));
                let _ = self.events.send(AgentEvent::PeerAdmitted {
                    did: did.to_string(),
                });
            }
            Event::PeerRefused { peer, reason } => {
                self.metrics.peers_refused += 1;
                tracing::info!(%peer, "peer refused: {reason}");
                // A peer's own Refuse reason is its text: keep the log bounded.
                let reason: String = reason.chars().take(REASON_CHARS_MAX).collect();
                if let Ok(did) = Did::from_peer_id(&peer) {
                    self.audit_peer(did, "peer:refuse", format!("refused: {reason}"));
                }
                let _ = self.events.send(AgentEvent::PeerRefused {
                    peer: peer.to_string(),
                    reason,
                });
            }
            Event::EvidenceApplied {
                id,
                kind,
                author,
                subject,
            } => {
                if let Some(record) = self.core.trust().store().get(&id)
                    && self.persisted_evidence.insert(id)
                {
                    self.batch.evidence.push((id, record.to_bytes().to_vec()));
                }
                let _ = self.events.send(AgentEvent::Evidence {
                    kind: kind.to_string(),
                    author: author.to_string(),
                    subject: subject.to_string(),
                });
            }
            Event::PolicyChanged { author } => {
                let _ = self.events.send(AgentEvent::PolicyChanged {
                    author: author.to_string(),
                });
            }
            Event::Graylisted { peer, did } => {
                tracing::warn!(%peer, %did, "graylisted");
                let until_ms = self.now_ms + self.core.config().graylist_ms;
                if self.graylisted.len() >= GRAYLIST_SHOWN_MAX {
                    self.graylisted.pop_first();
                }
                self.graylisted.insert(did, until_ms);
                self.audit_peer(did, "peer:graylist", format!("graylisted until {until_ms}"));
            }
            Event::NeighborUp(_) | Event::NeighborDown(_) | Event::Dropped { .. } => {}
        }
    }

    /// Audits a decision about a peer's agent.
    pub(super) fn audit_peer(&mut self, did: Did, action: &str, decision: String) {
        let principal = self
            .core
            .trust()
            .authority_principal(&did)
            .map(|p| p.to_string())
            .unwrap_or_default();
        let fact = Fact {
            agent: did.to_string(),
            principal,
            task: String::new(),
            action: action.into(),
            decision,
        };
        self.audit.append(&mut self.batch, self.now_ms, fact);
    }
}

/// Shared with the request handlers: the agent record's KEM key of `did`.
pub(crate) fn kem_key_of(core: &Node<PeerId, StdRng>, did: &Did) -> Option<Vec<u8>> {
    let record = core.trust().store().agent(did)?;
    match record.evidence() {
        starling_trust::Evidence::Agent(a) if !a.kem_public_key.is_empty() => {
            Some(a.kem_public_key.to_vec())
        }
        _ => None,
    }
}
