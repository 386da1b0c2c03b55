//! Connections: swarm events, gossip sessions, the address book, dialling,
//! and writing frames to peers.

use bytes::Bytes;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, identify, kad, mdns};
use starling_gossip::Input;
use starling_gossip::trust_state::Refusal;
use starling_trust::Did;
use tokio::sync::mpsc;

use super::Driver;
use crate::net::BehaviourEvent;
use crate::session::{self, SessionEvent, WRITER_QUEUE_MAX, WriterMsg};

/// Most addresses remembered per peer.
pub const ADDRS_PER_PEER_MAX: usize = 8;
/// Most peers in the address book.
pub const ADDRESS_BOOK_MAX: usize = 4096;

/// Least time between rejoin attempts of a poorly connected node.
pub const REJOIN_MS: u64 = 2_000;
/// Fewer active neighbours than this and the node joins again.
pub const ACTIVE_MIN: usize = 2;

/// How long after a connection closes its last in-flight frames are still
/// handed to the core (they are read by another task and may trail the
/// close event), before the core hears `Disconnected`.
pub const CLOSE_GRACE_MS: u64 = 300;

impl Driver {
    /// Joins again through a known peer outside the overlay's links; when
    /// `alone` (below `ACTIVE_MIN`) and there is none, through an admitted
    /// peer outside the active view, or a configured contact.
    pub(super) fn rejoin(&mut self, now: u64, alone: bool) {
        let active = self.core.active_view().to_vec();
        let all_admitted: Vec<PeerId> = self.core.admitted().map(|(p, _)| *p).collect();
        let admitted: Vec<PeerId> = all_admitted
            .iter()
            .copied()
            .filter(|p| !active.contains(p))
            .collect();
        let now_ms = self.now_ms;
        let trust = self.core.trust();
        let known: Vec<PeerId> = self
            .addrs
            .keys()
            .copied()
            .filter(|p| !all_admitted.contains(p) && !self.connected.contains(p))
            // Not one known to be revoked, terminated or denied; one whose
            // record has not reached us is worth a try (an isolated node
            // learns records only by joining), its handshake will tell.
            .filter(|p| {
                Did::from_peer_id(p).is_ok_and(|d| {
                    matches!(
                        trust.authority(&d, now_ms),
                        Ok(_) | Err(Refusal::Unknown(_))
                    )
                })
            })
            .collect();
        let turn = (now / REJOIN_MS) as usize;
        if !known.is_empty() {
            self.dial_and_join(known[turn % known.len()]);
            return;
        }
        if !alone {
            return;
        }
        if !admitted.is_empty() {
            // The core's `Join` only takes effect on a fresh handshake: an
            // already-admitted contact adds us but we never add it (see the
            // closing note). Reconnecting makes the handshake fresh.
            let peer = admitted[turn % admitted.len()];
            let _ = self.swarm.disconnect_peer_id(peer);
            self.reconnect_at.insert(peer, now + CLOSE_GRACE_MS * 2);
        } else if active.is_empty() && !self.bootstrap.is_empty() {
            // Nobody known and admitted (a first handshake that timed out,
            // say): start over from the configured contacts.
            let addr = self.bootstrap[turn % self.bootstrap.len()].clone();
            self.dial_addr_and_join(addr);
        }
    }

    /// Reports `Connected` once per peer, with the transport-authenticated DID.
    pub(super) fn ensure_connected(&mut self, peer: PeerId) -> bool {
        if self.connected.contains(&peer) {
            return true;
        }
        if self.cut.contains_key(&peer) || !self.swarm.is_connected(&peer) {
            return false;
        }
        match Did::from_peer_id(&peer) {
            Ok(did) => {
                self.connected.insert(peer);
                let _ = self
                    .core
                    .handle(self.now_ms, Input::Connected { peer, did });
                true
            }
            Err(e) => {
                tracing::info!(%peer, "not an Ed25519 peer, disconnecting: {e}");
                let _ = self.swarm.disconnect_peer_id(peer);
                false
            }
        }
    }

    pub(super) fn on_disconnected(&mut self, peer: PeerId) {
        self.writers.remove(&peer);
        self.closing.remove(&peer);
        if self.connected.remove(&peer) {
            let _ = self.core.handle(self.now_ms, Input::Disconnected { peer });
        }
    }

    pub(super) fn on_session(&mut self, event: SessionEvent) {
        match event {
            // The permit is held until the core has handled the frame.
            SessionEvent::Frame(peer, bytes, _permit) => {
                if !self.ensure_connected(peer) {
                    return;
                }
                let t = self.traffic.entry(peer).or_default();
                t.frames_in += 1;
                t.bytes_in += bytes.len() as u64;
                let _ = self
                    .core
                    .handle(self.now_ms, Input::Frame { from: peer, bytes });
            }
            SessionEvent::BadStream(peer, reason) => {
                self.metrics.bad_streams += 1;
                tracing::info!(%peer, "bad frame stream, disconnecting: {reason}");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            SessionEvent::WriteFailed(peer, reason) => {
                tracing::debug!(%peer, "gossip stream failed: {reason}");
                self.writers.remove(&peer);
                if self.swarm.is_connected(&peer) {
                    let _ = self.swarm.disconnect_peer_id(peer);
                } else {
                    self.on_disconnected(peer);
                }
            }
            SessionEvent::Closed(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    pub(super) fn learn_addr(&mut self, peer: PeerId, addr: Multiaddr) {
        if self.addrs.len() >= ADDRESS_BOOK_MAX && !self.addrs.contains_key(&peer) {
            return;
        }
        let list = self.addrs.entry(peer).or_default();
        if !list.contains(&addr) {
            if list.len() >= ADDRS_PER_PEER_MAX {
                list.remove(0);
            }
            list.push(addr);
        }
    }

    pub(super) fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.learn_addr(peer_id, endpoint.get_remote_address().clone());
                }
                if self.closing.contains_key(&peer_id) {
                    // A new session: end the old one for the core first.
                    self.on_disconnected(peer_id);
                }
                match self.gossip_dials.remove(&connection_id) {
                    Some(true) => self.join_through(peer_id),
                    Some(false) => {
                        self.ensure_connected(peer_id);
                    }
                    None => {}
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.writers.remove(&peer_id);
                self.cut.remove(&peer_id);
                if self.connected.contains(&peer_id) {
                    self.closing.insert(peer_id, self.now_ms + CLOSE_GRACE_MS);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.gossip_dials.remove(&connection_id);
                tracing::debug!(?peer_id, "dial failed: {error}");
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    // Also clears the core's dialling state for a peer never connected.
                    self.writers.remove(&peer);
                    self.connected.remove(&peer);
                    let _ = self.core.handle(self.now_ms, Input::Disconnected { peer });
                }
            }
            SwarmEvent::NewListenAddr { address, .. } if !self.listen_addrs.contains(&address) => {
                self.listen_addrs.push(address);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                    self.learn_addr(peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                addresses,
                ..
            })) => {
                for addr in addresses.iter() {
                    self.learn_addr(peer, addr.clone());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    self.learn_addr(peer, addr);
                    if self.core.active_view().is_empty() && !self.swarm.is_connected(&peer) {
                        self.dial_and_join(peer);
                    }
                }
            }
            _ => {}
        }
    }

    /// Joins the overlay through `peer`, dialling it first unless a
    /// connection (Kademlia's, say) is already up.
    pub(crate) fn dial_and_join(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            self.join_through(peer);
            return;
        }
        let addrs = self.addrs.get(&peer).cloned().unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .build();
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_ok() {
            self.gossip_dials.insert(id, true);
        }
    }

    /// Makes the connection to `peer` a link of the core and joins through it.
    fn join_through(&mut self, peer: PeerId) {
        if self.ensure_connected(peer) {
            let _ = self.core.handle(
                self.now_ms,
                Input::Command(starling_gossip::Command::Join {
                    contacts: vec![peer],
                }),
            );
        }
    }

    /// Dials an address (a bootstrap contact) and joins through whoever answers.
    pub(crate) fn dial_addr_and_join(&mut self, addr: Multiaddr) {
        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.gossip_dials.insert(id, true);
            }
            Err(e) => tracing::warn!(%addr, "cannot dial bootstrap address: {e}"),
        }
    }

    pub(super) fn dial(&mut self, peer: PeerId) {
        // The core wants this peer again: what arrives now is a new session.
        self.cut.remove(&peer);
        if self.swarm.is_connected(&peer) {
            self.ensure_connected(peer);
            return;
        }
        let mut addrs = self.addrs.get(&peer).cloned().unwrap_or_default();
        if let Ok(did) = Did::from_peer_id(&peer)
            && let Some(record) = self.core.trust().store().agent(&did)
            && let starling_trust::Evidence::Agent(agent) = record.evidence()
        {
            addrs.extend(
                agent
                    .addrs
                    .iter()
                    .filter_map(|a| a.parse::<Multiaddr>().ok()),
            );
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.gossip_dials.insert(id, false);
            }
            Err(e) => {
                tracing::debug!(%peer, "cannot dial: {e}");
                let _ = self.core.handle(self.now_ms, Input::Disconnected { peer });
            }
        }
    }

    pub(super) fn send_frame(&mut self, peer: PeerId, frame: Bytes) {
        if !self.swarm.is_connected(&peer) {
            // Opening a stream would redial; the core dials with `Connect` when it wants to.
            self.metrics.frames_dropped_backpressure += 1;
            return;
        }
        let t = self.traffic.entry(peer).or_default();
        t.frames_out += 1;
        t.bytes_out += frame.len() as u64;
        let writer = match self.writers.get(&peer) {
            Some(w) if !w.is_closed() => w.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(WRITER_QUEUE_MAX);
                session::spawn_writer(peer, self.control.clone(), rx, self.sessions_tx.clone());
                self.writers.insert(peer, tx.clone());
                tx
            }
        };
        if writer.try_send(WriterMsg::Frame(frame)).is_err() {
            self.metrics.frames_dropped_backpressure += 1;
        }
    }
}
