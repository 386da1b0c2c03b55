//! The per-node state machine and its calling contract.
//!
//! # Calling contract
//!
//! A [`Node`] is driven by exactly two calls, in the style of quinn-proto:
//!
//! - [`Node::handle`]`(now_ms, input)` feeds one input: a transport
//!   connection opened or closed, a frame from a peer, a command from the
//!   local agent, or a timer the node asked for. `now_ms` is the caller's
//!   clock (Unix ms in the node, virtual in the simulator) and must never go
//!   backwards. Commands answer synchronously (`Ok` or a typed refusal);
//!   everything else the node wants done is queued.
//! - [`Node::poll_output`] drains the queue, in order: frames to send,
//!   connections to open or close, timers to set (each comes back as
//!   [`Input::Timer`] at or after its time), messages to deliver to the
//!   agent, and events to log or count.
//!
//! The driver must perform outputs in order, deliver every frame of a
//! connection in order, report [`Input::Connected`] only after it has
//! authenticated the peer's key (the `did` it passes is that key), and
//! report [`Input::Disconnected`] when a connection ends. The node never
//! reads a clock, never draws OS randomness (its RNG is injected) and never
//! touches IO, so the simulator drives this same code.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use rand_core::Rng;
use starling_trust::keys::Keypair;
use starling_trust::small_map::SmallMap;
use starling_trust::{Did, Evidence, Genesis, Record, Succession};

use crate::broadcast::Broadcast;
use crate::config::Config;
use crate::limits::{Bucket, Buckets, Graylist};
use crate::membership::Views;
use crate::message::MessageId;
use crate::peer::Peer;
use crate::stats::{DropReason, Stats};
use crate::trust_state::TrustState;
use crate::wire::{Body, Frame};

/// Something that happened to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// A transport connection to `peer`, whose key the driver authenticated as `did`.
    Connected {
        /// The peer.
        peer: P,
        /// Its authenticated identity.
        did: Did,
    },
    /// The connection to `peer` ended.
    Disconnected {
        /// The peer.
        peer: P,
    },
    /// A frame arrived.
    Frame {
        /// From whom.
        from: P,
        /// The frame, without its length prefix.
        bytes: Vec<u8>,
    },
    /// The local agent asks for something.
    Command(Command<P>),
    /// A timer the node set has fired.
    Timer(Timer),
}

/// What the local agent can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<P> {
    /// Join the mesh through these contacts.
    Join {
        /// Peers to connect to.
        contacts: Vec<P>,
    },
    /// Deliver messages on a topic.
    Subscribe {
        /// The topic.
        topic: String,
    },
    /// Stop delivering a topic.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// Publish a message.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Add a signed evidence record and spread it.
    SubmitEvidence {
        /// The signed record.
        record: Vec<u8>,
    },
    /// Apply a signed policy change and spread it.
    ChangePolicy {
        /// The signed envelope.
        change: Vec<u8>,
    },
    /// Send a direct message to a peer's agent.
    Direct {
        /// The peer.
        to: P,
        /// The payload (the node seals it end to end first).
        payload: Vec<u8>,
    },
}

/// Timers the node asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Time to shuffle.
    Shuffle,
    /// Time for an anti-entropy round.
    AntiEntropy,
    /// Housekeeping: scores, caches, idle links, graylist.
    Tick,
    /// Send batched IHAVE digests.
    IHaveFlush,
    /// An announced item (by short id) has not arrived: graft.
    Graft(u64),
}

/// A message for the local agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// Who published it.
    pub origin: Did,
    /// When the origin sent it (its clock, Unix ms).
    pub sent_ms: u64,
    /// Hops it travelled.
    pub hops: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Things worth logging or counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<P> {
    /// A peer completed the handshake.
    PeerAdmitted {
        /// The peer.
        peer: P,
        /// Its identity.
        did: Did,
    },
    /// A peer was refused at the handshake or cut off later.
    PeerRefused {
        /// The peer.
        peer: P,
        /// Why.
        reason: String,
    },
    /// An identity was graylisted for repeated misbehaviour.
    Graylisted {
        /// The peer it was connected as.
        peer: P,
        /// The identity.
        did: Did,
    },
    /// A peer joined the active view.
    NeighborUp(P),
    /// A peer left the active view.
    NeighborDown(P),
    /// A new evidence record was applied.
    EvidenceApplied {
        /// The record.
        id: MessageId,
        /// Its kind.
        kind: &'static str,
        /// Its author.
        author: Did,
        /// Who it is about.
        subject: Did,
    },
    /// A policy change was applied.
    PolicyChanged {
        /// The governor who made it.
        author: Did,
    },
    /// A frame or item was dropped.
    Dropped {
        /// Who sent it.
        from: P,
        /// Why.
        reason: DropReason,
    },
}

/// What the node asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send a frame (dial first if not connected).
    Send {
        /// To whom.
        to: P,
        /// The encoded frame (add the length prefix on a stream); one
        /// buffer shared by every peer an item is pushed to.
        frame: Bytes,
    },
    /// Open a connection.
    Connect(P),
    /// Close a connection.
    Disconnect(P),
    /// Call back with [`Input::Timer`] at `at_ms`.
    SetTimer {
        /// When.
        at_ms: u64,
        /// Which.
        timer: Timer,
    },
    /// A topic message for the agent.
    Deliver(Delivery),
    /// A direct message for the agent.
    DeliverDirect {
        /// Who sent it.
        from: Did,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Something happened.
    Event(Event<P>),
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The topic name is not allowed.
    #[error("bad topic `{0}`: 1..=256 bytes, and names starting `_starling/` are reserved")]
    Topic(String),
    /// This agent may not do it.
    #[error("{0}")]
    Refused(#[from] crate::trust_state::Refusal),
    /// This agent's ring does not allow more right now.
    #[error("rate limit of this agent's tier reached; try again shortly")]
    RateLimited,
    /// The payload is too big for this agent's ring.
    #[error("payload of {len} bytes exceeds this tier's {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The evidence record is invalid.
    #[error("evidence: {0}")]
    Evidence(#[from] starling_trust::EvidenceError),
    /// The policy change is invalid.
    #[error("policy change: {0}")]
    Policy(#[from] starling_trust::policy::PolicyError),
    /// The peer is not admitted and no connection is possible.
    #[error("peer is unknown")]
    UnknownPeer,
}

/// Why a node could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The agent record is not this node's, or is not an agent record.
    #[error("the agent record must be this node's own (signed by its key)")]
    NotOwnRecord,
    /// The record's mandate chain does not verify now.
    #[error("this node's mandate: {0}")]
    Mandate(#[from] starling_trust::MandateError),
}

/// One connection's state.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Shared with the views' hints (and, in a simulator, with the other
    /// nodes): a node holds a dozen links at a time.
    pub(crate) did: Arc<Did>,
    pub(crate) admitted: bool,
    pub(crate) connected_ms: u64,
    pub(crate) last_active_ms: u64,
    /// Frames to send once admitted; boxed, as a link is admitted within a
    /// round trip and then never queues again.
    #[allow(clippy::box_collection, reason = "one word for a rarely used queue")]
    pub(crate) queue: Option<Box<Vec<Bytes>>>,
    pub(crate) bucket: Bucket,
    pub(crate) strikes: u32,
}

/// A Starling node's gossip state machine. See the module docs for the
/// calling contract.
#[derive(Debug)]
pub struct Node<P: Peer, R: Rng> {
    /// Shared by the nodes of a process that use the same one.
    pub(crate) config: Arc<Config>,
    pub(crate) rng: R,
    /// Shared with the driver's copy, if it keeps one (a simulator does).
    pub(crate) key: Arc<Keypair>,
    pub(crate) me: P,
    pub(crate) record: Arc<Record>,
    pub(crate) trust: TrustState,
    /// Transport connections, admitted or handshaking.
    pub(crate) links: SmallMap<P, Link>,
    /// Peers we are dialling: since when, and frames to send once admitted.
    pub(crate) dialing: SmallMap<P, (u64, Vec<Bytes>)>,
    /// The time of the input being handled.
    pub(crate) now_ms: u64,
    pub(crate) views: Views<P>,
    pub(crate) broadcast: Broadcast<P>,
    /// A sorted vector while small: a `BTreeSet` gave each node's single
    /// topic a node of eleven slots (264 bytes).
    pub(crate) subscriptions: SmallMap<String, ()>,
    pub(crate) origins: Buckets,
    pub(crate) graylist: Graylist,
    /// Messages waiting for their origin's agent record, by origin.
    pub(crate) awaiting: SmallMap<Did, Vec<(P, crate::wire::Gossip)>>,
    /// When each origin was last reported for a violation.
    pub(crate) reported: SmallMap<Did, u64>,
    pub(crate) seq: u64,
    pub(crate) outbox: VecDeque<Output<P>>,
    pub(crate) stats: Stats,
}

impl<P: Peer, R: Rng> Node<P, R> {
    /// A node for the agent `key`, known to its driver as `me`, holding its
    /// own signed agent record. Sets its periodic timers.
    pub fn new(
        config: impl Into<Arc<Config>>,
        genesis: Arc<Genesis>,
        key: impl Into<Arc<Keypair>>,
        me: P,
        record: Arc<Record>,
        rng: R,
        now_ms: u64,
    ) -> Result<Self, NodeError> {
        Self::with_memo(config, genesis, key, me, record, rng, now_ms, None)
    }

    /// Like [`Node::new`], sharing pure results with the other nodes of this
    /// process through `memo` (see [`crate::memo`]).
    #[allow(clippy::too_many_arguments)]
    pub fn with_memo(
        config: impl Into<Arc<Config>>,
        genesis: Arc<Genesis>,
        key: impl Into<Arc<Keypair>>,
        me: P,
        record: Arc<Record>,
        mut rng: R,
        now_ms: u64,
        memo: Option<Arc<crate::memo::Memo>>,
    ) -> Result<Self, NodeError> {
        let config: Arc<Config> = config.into();
        let key: Arc<Keypair> = key.into();
        let Evidence::Agent(agent) = record.evidence() else {
            return Err(NodeError::NotOwnRecord);
        };
        if record.author() != key.did() {
            return Err(NodeError::NotOwnRecord);
        }
        agent
            .chain
            .verify(&genesis, now_ms, &starling_trust::mandate::NoRevocations)?;
        let mut trust = TrustState::new(genesis, now_ms, memo);
        trust.insert(Arc::clone(&record));
        trust.refresh_scores(now_ms);
        let jitter = |rng: &mut R, period: u64| {
            now_ms + 1 + crate::peer::below(rng, period.max(1) as usize) as u64
        };
        let shuffle_at = jitter(&mut rng, config.shuffle_ms);
        let entropy_at = jitter(&mut rng, config.anti_entropy_ms);
        let tick_at = jitter(&mut rng, config.score_refresh_ms);
        let origins = Buckets::new(config.origins_tracked_max);
        let mut node = Self {
            views: Views::default(),
            broadcast: Broadcast::new(&config),
            config,
            rng,
            key,
            me,
            record,
            trust,
            links: SmallMap::new(),
            dialing: SmallMap::new(),
            now_ms,
            subscriptions: SmallMap::new(),
            origins,
            graylist: Graylist::default(),
            reported: SmallMap::new(),
            awaiting: SmallMap::new(),
            seq: 0,
            outbox: VecDeque::new(),
            stats: Stats::default(),
        };
        node.set_timer(shuffle_at, Timer::Shuffle);
        node.set_timer(entropy_at, Timer::AntiEntropy);
        node.set_timer(tick_at, Timer::Tick);
        Ok(node)
    }

    /// Feeds one input. Only commands can fail (see [`CommandError`]); a
    /// publish answers with the message's id.
    pub fn handle(
        &mut self,
        now_ms: u64,
        input: Input<P>,
    ) -> Result<Option<MessageId>, CommandError> {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Connected { peer, did } => self.on_connected(now_ms, peer, did),
            Input::Disconnected { peer } => self.on_disconnected(now_ms, peer),
            Input::Frame { from, bytes } => self.on_frame(now_ms, from, &bytes),
            Input::Command(command) => return self.on_command(now_ms, command),
            Input::Timer(timer) => self.on_timer(now_ms, timer),
        }
        Ok(None)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        let output = self.outbox.pop_front();
        if output.is_none() && self.outbox.capacity() > 0 {
            // The room is given back once drained: a driver drains after
            // every input, so an empty outbox is the usual state, and a
            // million simulated nodes each keeping room for a few outputs
            // of 128 bytes would hold a GB for nothing.
            self.outbox = VecDeque::new();
        }
        output
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// This node's agent.
    pub fn did(&self) -> Did {
        self.key.did()
    }
    /// The driver's name for this node.
    pub fn peer(&self) -> P {
        self.me
    }
    /// Genesis, evidence, policy and scores.
    pub fn trust(&self) -> &TrustState {
        &self.trust
    }
    /// Re-expresses the evidence on a shared snapshot (see
    /// [`TrustState::rebase_evidence`]); nothing the node does changes.
    pub fn rebase_evidence(&mut self, succession: &Succession) {
        self.trust.rebase_evidence(succession);
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The active view.
    pub fn active_view(&self) -> &[P] {
        self.views.active()
    }
    /// Whether a neighbour request to `p` is in flight.
    pub fn views_pending(&self, p: &P) -> bool {
        self.views.is_pending(p)
    }
    /// The passive view.
    pub fn passive_view(&self) -> &[P] {
        self.views.passive()
    }
    /// Admitted peers and their identities.
    pub fn admitted(&self) -> impl Iterator<Item = (&P, &Did)> {
        self.links
            .iter()
            .filter(|(_, l)| l.admitted)
            .map(|(p, l)| (p, &*l.did))
    }
    /// Topics delivered to the agent.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.keys().map(String::as_str)
    }

    pub(crate) fn set_timer(&mut self, at_ms: u64, timer: Timer) {
        self.outbox.push_back(Output::SetTimer { at_ms, timer });
    }

    pub(crate) fn event(&mut self, event: Event<P>) {
        self.outbox.push_back(Output::Event(event));
    }

    /// Sends a frame to an admitted peer, or queues it and dials.
    pub(crate) fn send(&mut self, to: P, body: Body) {
        let frame = Frame::new(body).encode();
        self.send_encoded(to, frame.into());
    }

    pub(crate) fn send_encoded(&mut self, to: P, frame: Bytes) {
        if to == self.me {
            return;
        }
        match self.links.get_mut(&to) {
            Some(link) if link.admitted => {
                self.stats.frames_out += 1;
                self.stats.bytes_out += frame.len() as u64;
                self.outbox.push_back(Output::Send { to, frame });
            }
            Some(link) => {
                let queue = link.queue.get_or_insert_default();
                if queue.len() < self.config.queued_frames_max {
                    queue.push(frame);
                }
            }
            None => {
                let fresh = !self.dialing.contains_key(&to);
                let (_, queue) = self
                    .dialing
                    .get_or_insert_with(to, || (self.now_ms, Vec::new()));
                if queue.len() < self.config.queued_frames_max {
                    queue.push(frame);
                }
                if fresh {
                    self.outbox.push_back(Output::Connect(to));
                }
            }
        }
    }

    /// Records a misbehaviour; graylists and disconnects after too many.
    pub(crate) fn strike(&mut self, now_ms: u64, peer: P, reason: DropReason) {
        self.stats.count_drop(&reason);
        self.event(Event::Dropped { from: peer, reason });
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.strikes += 1;
        if link.strikes >= self.config.strikes_max {
            let did = *link.did;
            self.graylist.add(did, now_ms + self.config.graylist_ms);
            self.stats.graylisted += 1;
            self.event(Event::Graylisted { peer, did });
            self.drop_link(now_ms, peer);
        }
    }

    /// Counts a drop that is nobody's fault in particular.
    pub(crate) fn dropped(&mut self, peer: P, reason: DropReason) {
        self.stats.count_drop(&reason);
        self.event(Event::Dropped { from: peer, reason });
    }

    /// Closes a connection and forgets the peer's neighbourhood.
    pub(crate) fn drop_link(&mut self, now_ms: u64, peer: P) {
        self.outbox.push_back(Output::Disconnect(peer));
        self.on_disconnected(now_ms, peer);
    }
}
