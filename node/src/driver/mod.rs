//! The event loop: one task that owns the gossip core, the swarm and the
//! store, and translates between them.
//!
//! It follows the core's calling contract (see `starling_gossip::node`):
//! every swarm event, frame, timer and agent request becomes one
//! `Node::handle` call, after which all outputs are drained and performed in
//! order. The clock is the system's Unix time, clamped so it never goes
//! backwards. A peer is reported `Connected` with the DID derived from the
//! PeerId the TLS/QUIC handshake authenticated, never from anything it says.
//!
//! - this module: the loop itself, timers, housekeeping and what the
//!   store is yet to hold;
//! - `commits`: group commits of the store, off the loop;
//! - `links`: swarm events, sessions, dialling and sending frames;
//! - `outputs`: performing the core's outputs (deliveries, direct
//!   messages, events) and auditing them.

mod commits;
mod links;
mod outputs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Swarm};
use rand::rngs::StdRng;
use starling_gossip::{Input, Node, Timer};
use starling_trust::{Did, Keypair};
use tokio::sync::{broadcast, mpsc};

use crate::audit::AuditLog;
use crate::handle::{AgentEvent, Request};
use crate::metrics::Metrics;
use crate::net::Behaviour;
use crate::seal::KemSecret;
use crate::session::{self, InboundBudget, SessionEvent, WriterMsg};
use crate::store::{Batch, Store};

pub use commits::PENDING_WRITES_MAX;
pub use links::{ACTIVE_MIN, ADDRESS_BOOK_MAX, ADDRS_PER_PEER_MAX, CLOSE_GRACE_MS, REJOIN_MS};
pub(crate) use outputs::kem_key_of;
pub use outputs::{GRAYLIST_SHOWN_MAX, REASON_CHARS_MAX};

/// Most queued requests handled under one durable commit.
pub const REQUEST_BATCH_MAX: usize = 64;
/// Most queued session events (received frames) handled after the one that
/// woke the loop, before it looks at its timers again. Each is forwarded
/// as soon as it is handled.
pub const SESSION_BATCH_MAX: usize = 64;
/// Writes nobody waits for (audit entries of deliveries, records from the
/// mesh) are committed this often, durably, in one transaction: a crash
/// loses at most the last period of them. A request that is acknowledged
/// waits for a durable commit of everything before it, and a read of the
/// store for a commit of every write before it (see `commits`). Before,
/// they were committed every 50 ms without the disk, which redb keeps only
/// until the process ends unless a durable commit follows (an
/// acknowledged request's, if any came), at a tenth of the node's CPU in
/// `bench vs-gossipsub`.
pub const COMMIT_EVERY_MS: u64 = 1000;
/// Frames and session reports queued for the loop.
pub const SESSION_QUEUE_MAX: usize = 4096;
/// Housekeeping period of the driver itself.
pub const HOUSEKEEPING_MS: u64 = 250;
/// How long a connection the core cut has to close by itself, its writer
/// flushing a last frame (a refusal, say), before it is closed by force.
/// A peer the core lost to silence may not read: its writer would wait on
/// the flush for as long as TCP retransmits, and the dead connection would
/// be taken up again when the core asks the peer back.
pub const CUT_GRACE_MS: u64 = 2_000;

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
    pub(crate) store: std::sync::Arc<Store>,
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
    /// Peers the core disconnected whose connection has not closed yet,
    /// with when it is closed by force (see [`CUT_GRACE_MS`]): frames
    /// still arriving from them are dropped, not taken for a new session
    /// (which would hand a graylisted flooder a fresh link).
    pub(crate) cut: BTreeMap<PeerId, u64>,
    pub(crate) addrs: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// The configured contacts, dialled again when the node is alone.
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// Connections dialled for the overlay, and whether to join through
    /// the peer once connected. Only these (and inbound connections, by
    /// their first gossip frame) become links of the core: a connection
    /// Kademlia or identify opened stays theirs, and closes when idle.
    pub(crate) gossip_dials: BTreeMap<ConnectionId, bool>,
    pub(crate) sessions_tx: mpsc::Sender<SessionEvent>,
    /// Bytes of received frames the loop has not handled yet.
    pub(crate) inbound: InboundBudget,
    pub(crate) events: broadcast::Sender<AgentEvent>,
    pub(crate) traffic: BTreeMap<PeerId, Traffic>,
    pub(crate) metrics: Metrics,
    pub(crate) persisted_policy: BTreeSet<[u8; 32]>,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) housekeeping_at_ms: u64,
    /// When the store was last committed to.
    pub(crate) committed_at_ms: u64,
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
    pub(crate) acks: Vec<commits::Ack>,
    /// Reads of the store waiting for the writes made before them.
    pub(crate) reads: Vec<commits::Read>,
    /// The commit running on the blocking pool, if any.
    pub(crate) committing: Option<commits::Commit>,
}

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
            let commit_at = match self.batch.is_empty() || self.committing.is_some() {
                true => u64::MAX,
                false => self.commit_due_ms(),
            };
            let next = self
                .timers
                .keys()
                .next()
                .map(|(at, _)| *at)
                .unwrap_or(u64::MAX)
                .min(self.housekeeping_at_ms)
                .min(commit_at);
            let next = match self.closing.is_empty() {
                true => next,
                false => next.min(self.now_ms + 50),
            };
            let wait = Duration::from_millis(next.saturating_sub(unix_ms()));
            let mut stored = Ok(());
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
                    for _ in 0..SESSION_BATCH_MAX {
                        let Ok(event) = sessions.try_recv() else {
                            break;
                        };
                        self.drain();
                        self.tick();
                        self.on_session(event);
                    }
                }
                event = self.swarm.select_next_some() => {
                    self.tick();
                    self.on_swarm(event);
                }
                done = commits::commit_done(&mut self.committing) => {
                    self.tick();
                    stored = self.on_committed(done);
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
            if stored.is_ok() {
                self.maybe_commit();
                stored = self.hold_back().await;
            }
            if let Err(e) = stored {
                tracing::error!("store failed, stopping the node: {e}");
                break;
            }
            if shutdown {
                break;
            }
        }
        self.finish_commits().await;
    }

    /// When writes nobody waits for are next committed.
    fn commit_due_ms(&self) -> u64 {
        self.committed_at_ms + COMMIT_EVERY_MS
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

    fn housekeeping(&mut self) {
        self.housekeeping_at_ms = self.now_ms + HOUSEKEEPING_MS;
        let now = self.now_ms;
        self.persist_evidence_scan();
        self.graylisted.retain(|_, until_ms| *until_ms > now);
        for (peer, close_at) in self.cut.iter_mut() {
            if *close_at <= now {
                *close_at = u64::MAX;
                let _ = self.swarm.disconnect_peer_id(*peer);
            }
        }
        // HyParView refills the active view only from the passive view, and
        // only forcefully when it is empty. In a small mesh a node (or a
        // pair, or a triangle) can be left with one neighbour and a passive
        // view of full nodes, or with a free slot and an empty passive view:
        // a separate component for good. Then join again through a peer
        // outside the active view: the join's random walks reach the rest
        // of the mesh.
        let active = self.core.active_view().len();
        let alone = active < ACTIVE_MIN;
        let stranded =
            active < self.core.config().active_size && self.core.passive_view().is_empty();
        if (alone || stranded) && now >= self.rejoin_at_ms {
            self.rejoin_at_ms = now + REJOIN_MS;
            self.rejoin(now, alone);
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
}
