//! The event loop: one task that owns the gossip core, the swarm and the
//! store, and translates between them.
//!
//! It follows the core's calling contract (see `starling_gossip::node`):
//! every swarm event, frame, timer and agent request becomes one
//! `Node::handle` call, after which all outputs are drained and performed in
//! order. The clock is the system's Unix time, clamped so it never goes
//! backwards. A peer is reported `Connected` with the DID derived from the
//! PeerId the TLS/QUIC handshake authenticated, never from anything it says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use rand::rngs::StdRng;
use starling_gossip::{Event, Input, Node, Output, Timer};
use starling_trust::{Did, Keypair};
use tokio::sync::{broadcast, mpsc};

use crate::audit::{AuditLog, Fact};
use crate::handle::{AgentEvent, ApiError, Request};
use crate::metrics::Metrics;
use crate::net::{Behaviour, BehaviourEvent};
use crate::seal::KemSecret;
use crate::session::{self, InboundBudget, SessionEvent, WRITER_QUEUE_MAX, WriterMsg};
use crate::store::{Batch, Store};

/// Most queued requests handled under one durable commit.
pub const REQUEST_BATCH_MAX: usize = 64;
/// Frames and session reports queued for the loop.
pub const SESSION_QUEUE_MAX: usize = 4096;
/// Housekeeping period of the driver itself.
pub const HOUSEKEEPING_MS: u64 = 250;
/// Most addresses remembered per peer.
pub const ADDRS_PER_PEER_MAX: usize = 8;
/// Most peers in the address book.
pub const ADDRESS_BOOK_MAX: usize = 4096;
/// Most graylisted identities listed by `/v1/peers`.
pub const GRAYLIST_SHOWN_MAX: usize = 1024;
/// Longest refusal reason kept in the audit log and events.
pub const REASON_CHARS_MAX: usize = 256;

/// Per-peer traffic for the graph.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Traffic {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages delivered whose origin is this peer's agent.
    pub messages_from: u64,
}

/// The event loop's state.
pub struct Driver {
    pub(crate) core: Node<PeerId, StdRng>,
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) control: libp2p_stream::Control,
    pub(crate) store: Store,
    pub(crate) audit: AuditLog,
    pub(crate) batch: Batch,
    pub(crate) key: Keypair,
    pub(crate) kem: KemSecret,
    pub(crate) rng: StdRng,
    pub(crate) now_ms: u64,
    pub(crate) timers: BTreeMap<(u64, u64), Timer>,
    pub(crate) timer_seq: u64,
    pub(crate) writers: HashMap<PeerId, mpsc::Sender<WriterMsg>>,
    pub(crate) connected: BTreeSet<PeerId>,
    /// Peers the core disconnected whose connection has not closed yet:
    /// frames still arriving from them are dropped, not taken for a new
    /// session (which would hand a graylisted flooder a fresh link).
    pub(crate) cut: BTreeSet<PeerId>,
    pub(crate) addrs: BTreeMap<PeerId, Vec<Multiaddr>>,
    pub(crate) join_dials: BTreeSet<ConnectionId>,
    pub(crate) sessions_tx: mpsc::Sender<SessionEvent>,
    /// Bytes of received frames the loop has not handled yet.
    pub(crate) inbound: InboundBudget,
    pub(crate) events: broadcast::Sender<AgentEvent>,
    pub(crate) traffic: BTreeMap<PeerId, Traffic>,
    pub(crate) metrics: Metrics,
    pub(crate) persisted_policy: BTreeSet<[u8; 32]>,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) housekeeping_at_ms: u64,
    /// Peers whose last connection closed, reported to the core after a grace period.
    pub(crate) closing: BTreeMap<PeerId, u64>,
    /// When the driver may next ask the core to rejoin (see `housekeeping`).
    pub(crate) rejoin_at_ms: u64,
    /// Peers to dial and join through once their old connection is gone.
    pub(crate) reconnect_at: BTreeMap<PeerId, u64>,
    /// Record ids known to be in the store.
    pub(crate) persisted_evidence: std::collections::HashSet<[u8; 32]>,
    /// The evidence store generation last scanned for unpersisted records.
    pub(crate) scanned_generation: u64,
    /// Identities the core graylisted, until when (Unix ms), for `/v1/peers`.
    pub(crate) graylisted: BTreeMap<Did, u64>,
    /// Answers waiting for the next durable commit.
    pub(crate) acks: Vec<(
        crate::handle::Reply<serde_json::Value>,
        Result<serde_json::Value, ApiError>,
    )>,
}

/// Least time between rejoin attempts of a poorly connected node.
pub const REJOIN_MS: u64 = 2_000;
/// Fewer active neighbours than this and the node joins again.
pub const ACTIVE_MIN: usize = 2;

/// How long after a connection closes its last in-flight frames are still
/// handed to the core (they are read by another task and may trail the
/// close event), before the core hears `Disconnected`.
pub const CLOSE_GRACE_MS: u64 = 300;

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Driver({})", self.key.did())
    }
}

/// Unix milliseconds.
pub fn unix_ms() -> u64 {
    crate::files::now_ms()
}

impl Driver {
    /// Runs until shutdown or until the store fails.
    pub(crate) async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut sessions: mpsc::Receiver<SessionEvent>,
        mut incoming: libp2p_stream::IncomingStreams,
    ) {
        self.housekeeping_at_ms = self.now_ms + HOUSEKEEPING_MS;
        self.drain();
        let mut shutdown = false;
        loop {
            let next = self
                .timers
                .keys()
                .next()
                .map(|(at, _)| *at)
                .unwrap_or(u64::MAX)
                .min(self.housekeeping_at_ms);
            let next = match self.closing.is_empty() {
                true => next,
                false => next.min(self.now_ms + 50),
            };
            let wait = Duration::from_millis(next.saturating_sub(unix_ms()));
            tokio::select! {
                biased;
                Some(req) = requests.recv() => {
                    self.tick();
                    if matches!(req, Request::Shutdown) {
                        break;
                    }
                    self.on_request(req);
                    // Take what else is queued, so one fsync acknowledges them all.
                    for _ in 0..REQUEST_BATCH_MAX {
                        match requests.try_recv() {
                            Ok(Request::Shutdown) => {
                                shutdown = true;
                                break;
                            }
                            Ok(req) => self.on_request(req),
                            Err(_) => break,
                        }
                    }
                }
                Some(event) = sessions.recv() => {
                    self.tick();
                    self.on_session(event);
                }
                event = self.swarm.select_next_some() => {
                    self.tick();
                    self.on_swarm(event);
                }
                Some((peer, stream)) = incoming.next() => {
                    session::spawn_reader(
                        peer,
                        stream,
                        self.core_frame_max(),
                        self.inbound.clone(),
                        self.sessions_tx.clone(),
                    );
                }
                _ = tokio::time::sleep(wait) => {}
            }
            // Due timers fire after any event too, so a busy swarm or a
            // stream of requests can never starve them (the select is biased).
            self.tick();
            self.fire_timers();
            self.drain();
            if let Err(e) = self.commit_and_answer() {
                tracing::error!("store failed, stopping the node: {e}");
                break;
            }
            if shutdown {
                break;
            }
        }
        let _ = self.commit_and_answer();
        let _ = self.flush(true);
    }

    /// Commits pending writes (durably if any request waits for it) and
    /// then answers the waiting requests.
    fn commit_and_answer(&mut self) -> Result<(), crate::store::StoreError> {
        if self.acks.is_empty() {
            return self.flush(false);
        }
        let acks = std::mem::take(&mut self.acks);
        match self.flush(true) {
            Ok(()) => {
                for (reply, answer) in acks {
                    let _ = reply.send(answer);
                }
                Ok(())
            }
            Err(e) => {
                for (reply, _) in acks {
                    let _ = reply.send(Err(ApiError::unavailable(format!(
                        "not stored, try again: {e}"
                    ))));
                }
                // Stay up: the next request may succeed (a full disk freed).
                Ok(())
            }
        }
    }

    fn core_frame_max(&self) -> usize {
        self.core.config().frame_bytes_max
    }

    /// Advances the clock (never backwards).
    pub(crate) fn tick(&mut self) {
        self.now_ms = self.now_ms.max(unix_ms());
    }

    fn fire_timers(&mut self) {
        while let Some((&(at, seq), _)) = self.timers.first_key_value() {
            if at > self.now_ms {
                break;
            }
            let Some(timer) = self.timers.remove(&(at, seq)) else {
                break;
            };
            let _ = self.core.handle(self.now_ms, Input::Timer(timer));
        }
        if self.housekeeping_at_ms <= self.now_ms {
            self.housekeeping();
        }
    }

    fn rejoin(&mut self, now: u64) {
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
            .filter(|p| !all_admitted.contains(p) && !self.swarm.is_connected(p))
            .filter(|p| Did::from_peer_id(p).is_ok_and(|d| trust.authority(&d, now_ms).is_ok()))
            .collect();
        let turn = (now / REJOIN_MS) as usize;
        if !known.is_empty() {
            self.dial_and_join(known[turn % known.len()]);
        } else if !admitted.is_empty() {
            // The core's `Join` only takes effect on a fresh handshake: an
            // already-admitted contact adds us but we never add it (see the
            // closing note). Reconnecting makes the handshake fresh.
            let peer = admitted[turn % admitted.len()];
            let _ = self.swarm.disconnect_peer_id(peer);
            self.reconnect_at.insert(peer, now + CLOSE_GRACE_MS * 2);
        }
    }

    fn housekeeping(&mut self) {
        self.housekeeping_at_ms = self.now_ms + HOUSEKEEPING_MS;
        let now = self.now_ms;
        self.persist_evidence_scan();
        self.graylisted.retain(|_, until_ms| *until_ms > now);
        // HyParView refills the active view only from the passive view, and
        // only forcefully when it is empty. In a small mesh a node (or a
        // pair) can be left with one neighbour and a passive view of full
        // nodes: a separate component for good. Below `ACTIVE_MIN`
        // neighbours, join again through a peer outside the active view.
        if self.core.active_view().len() < ACTIVE_MIN && now >= self.rejoin_at_ms {
            self.rejoin_at_ms = now + REJOIN_MS;
            self.rejoin(now);
        }
        let closed: Vec<PeerId> = self
            .closing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in closed {
            self.closing.remove(&peer);
            if !self.swarm.is_connected(&peer) {
                self.on_disconnected(peer);
            }
        }
        let due: Vec<PeerId> = self
            .reconnect_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.reconnect_at.remove(&peer);
            if !self.connected.contains(&peer) {
                self.dial_and_join(peer);
            }
        }
    }

    /// Reports `Connected` once per peer, with the transport-authenticated DID.
    fn ensure_connected(&mut self, peer: PeerId) -> bool {
        if self.connected.contains(&peer) {
            return true;
        }
        if self.cut.contains(&peer) || !self.swarm.is_connected(&peer) {
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

    fn on_disconnected(&mut self, peer: PeerId) {
        self.writers.remove(&peer);
        self.closing.remove(&peer);
        if self.connected.remove(&peer) {
            let _ = self.core.handle(self.now_ms, Input::Disconnected { peer });
        }
    }

    fn on_session(&mut self, event: SessionEvent) {
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

    fn learn_addr(&mut self, peer: PeerId, addr: Multiaddr) {
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

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
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
                self.ensure_connected(peer_id);
                if self.join_dials.remove(&connection_id) {
                    let _ = self.core.handle(
                        self.now_ms,
                        Input::Command(starling_gossip::Command::Join {
                            contacts: vec![peer_id],
                        }),
                    );
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
                self.join_dials.remove(&connection_id);
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

    /// Dials `peer` and joins the overlay through it once connected.
    pub(crate) fn dial_and_join(&mut self, peer: PeerId) {
        let addrs = self.addrs.get(&peer).cloned().unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .build();
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_ok() {
            self.join_dials.insert(id);
        }
    }

    /// Dials an address (a bootstrap contact) and joins through whoever answers.
    pub(crate) fn dial_addr_and_join(&mut self, addr: Multiaddr) {
        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.join_dials.insert(id);
            }
            Err(e) => tracing::warn!(%addr, "cannot dial bootstrap address: {e}"),
        }
    }

    fn dial(&mut self, peer: PeerId) {
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
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "cannot dial: {e}");
            let _ = self.core.handle(self.now_ms, Input::Disconnected { peer });
        }
    }

    fn send_frame(&mut self, peer: PeerId, frame: Vec<u8>) {
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
                        self.cut.insert(peer);
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

    fn on_deliver(&mut self, d: starling_gossip::Delivery) {
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
                agent: d.origin.to_string(),
                principal,
                task: id.clone(),
                action: format!("deliver:{}", d.topic),
                decision,
            },
        );
        let event = match payload {
            Ok(payload) => AgentEvent::Message {
                topic: d.topic,
                origin: d.origin.to_string(),
                id,
                sent_ms: d.sent_ms,
                hops: d.hops,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                payload_hex: hex::encode(&payload),
            },
            Err((sealed_bytes, reason)) => AgentEvent::Sealed {
                topic: d.topic,
                origin: d.origin.to_string(),
                id,
                sealed_bytes,
                reason,
            },
        };
        let _ = self.events.send(event);
    }

    fn on_direct(&mut self, from: Did, sealed: Vec<u8>) {
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

    fn on_core_event(&mut self, event: Event<PeerId>) {
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
    fn audit_peer(&mut self, did: Did, action: &str, decision: String) {
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

    /// Stores every record the core holds that the store does not yet. The
    /// core announces most new records with `EvidenceApplied`, but not all
    /// (agent records arriving in a handshake), so the driver also scans
    /// whenever the evidence store's generation moved.
    fn persist_evidence_scan(&mut self) {
        let generation = self.core.trust().store().generation();
        if generation == self.scanned_generation {
            return;
        }
        self.scanned_generation = generation;
        for record in self.core.trust().store().records() {
            let id = record.id();
            if self.persisted_evidence.insert(id) {
                self.batch.evidence.push((id, record.to_bytes().to_vec()));
            }
        }
    }

    /// Stores policy envelopes the core holds that the store does not yet.
    fn persist_policy(&mut self) {
        let changes = self.core.trust().policy().changes();
        if changes.len() == self.persisted_policy.len() {
            return;
        }
        for (hash, change) in changes {
            if self.persisted_policy.insert(hash.0) {
                self.batch
                    .policy
                    .push((hash.0.to_vec(), change.to_bytes().to_vec()));
            }
        }
    }

    /// Commits pending writes; `durable` waits for the disk.
    pub(crate) fn flush(&mut self, durable: bool) -> Result<(), crate::store::StoreError> {
        if self.batch.is_empty() && !durable {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let result = self.store.commit(&batch, durable);
        if result.is_err() {
            // Keep the in-memory chain in step with what is on disk.
            if let Ok(log) = AuditLog::resume(self.key.clone(), &self.store) {
                self.audit = log;
            }
        }
        self.metrics.commits += 1;
        result
    }
}

/// Shared with the request handlers: the agent record's KEM key of `did`.
pub(crate) fn kem_key_of(core: &Node<PeerId, StdRng>, did: &Did) -> Option<Vec<u8>> {
    let record = core.trust().store().agent(did)?;
    match record.evidence() {
        starling_trust::Evidence::Agent(a) if !a.kem_public_key.is_empty() => {
            Some(a.kem_public_key.clone())
        }
        _ => None,
    }
}
