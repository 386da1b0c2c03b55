//! HyParView membership, made trust-aware.
//!
//! Each node keeps a small *active view* (the neighbours it gossips with,
//! symmetric, with open connections) and a larger *passive view* (known
//! peers to replace failed neighbours). A new node joins through a contact,
//! which forwards the join on random walks; periodic shuffles on random
//! walks keep passive views fresh and mixed; a failed neighbour is replaced
//! from the passive view at once. (Leitão, Pereira, Rodrigues, "HyParView",
//! DSN 2007.)
//!
//! Trust-aware: when a view is full the lowest-tier peer is evicted first;
//! at most `untrusted_active_max` active peers may be untrusted; no
//! principal may hold more than `principal_active_max` active or
//! `principal_passive_max` passive slots; replacements are the best of a
//! few random passive candidates. So a flood of identities minted by one
//! principal, or of untrusted ones, cannot eclipse a node.

use std::sync::Arc;

use rand_core::Rng;
use starling_trust::small_map::SmallMap;
use starling_trust::{Did, Tier};

use crate::node::{Event, Node};
use crate::peer::{Peer, below, pick, shuffle};
use crate::wire::{
    Body, Disconnect, ForwardJoin, Join, Neighbor, NeighborReply, PeerRef, Shuffle, ShuffleReply,
};

/// The two views and the requests in flight.
#[derive(Debug, Clone)]
pub struct Views<P> {
    active: Vec<P>,
    passive: Vec<P>,
    /// The DIDs of the peers in the views or asked (a sorted vector: a
    /// few dozen entries, held by every node; each DID shared by the nodes
    /// of a process with a memo, as a simulated million's passive views
    /// hold 30 million of them).
    hints: SmallMap<P, Arc<Did>>,
    /// Neighbour requests in flight, with when they were sent.
    pending: SmallMap<P, u64>,
    /// Join requests in flight, with when they were sent.
    joining: SmallMap<P, u64>,
    /// Peers that refused a neighbour request, and when: not asked again
    /// for a shuffle period.
    refused: SmallMap<P, u64>,
    /// Active neighbours lost to silence, still in the passive view: when
    /// each is next asked back, and how often it was.
    pub(crate) lost: SmallMap<P, (u64, u32)>,
}

impl<P> Default for Views<P> {
    fn default() -> Self {
        Self {
            active: Vec::new(),
            passive: Vec::new(),
            hints: SmallMap::new(),
            pending: SmallMap::new(),
            joining: SmallMap::new(),
            refused: SmallMap::new(),
            lost: SmallMap::new(),
        }
    }
}

impl<P: Peer> Views<P> {
    /// The active view.
    pub fn active(&self) -> &[P] {
        &self.active
    }
    /// The passive view.
    pub fn passive(&self) -> &[P] {
        &self.passive
    }
    /// Whether `p` is an active neighbour.
    pub fn is_active(&self, p: &P) -> bool {
        self.active.contains(p)
    }
    /// Whether a neighbour request to `p` is in flight.
    pub fn is_pending(&self, p: &P) -> bool {
        self.pending.contains_key(p) || self.joining.contains_key(p)
    }
    pub(crate) fn remove_active(&mut self, p: &P) -> bool {
        let before = self.active.len();
        self.active.retain(|q| q != p);
        before != self.active.len()
    }
    /// Forgets `p` after a failed or unanswered request, unless it is a
    /// lost neighbour, which is asked again (see `liveness`).
    pub(crate) fn forget_unless_lost(&mut self, p: &P) {
        if !self.lost.contains_key(p) {
            self.forget_passive(p);
        }
    }
    pub(crate) fn forget_passive(&mut self, p: &P) {
        self.passive.retain(|q| q != p);
        self.lost.remove(p);
        if !self.active.contains(p) {
            self.hints.remove(p);
        }
    }
    pub(crate) fn cancel_pending(&mut self, p: &P) -> bool {
        self.pending.remove(p).is_some() | self.joining.remove(p).is_some()
    }

    /// Requests sent before `before_ms` that were never answered.
    pub(crate) fn stale_requests(&self, before_ms: u64) -> Vec<P> {
        self.pending
            .iter()
            .chain(self.joining.iter())
            .filter(|(_, at)| **at < before_ms)
            .map(|(p, _)| *p)
            .collect()
    }
    /// Records `p`'s DID.
    pub(crate) fn learn(&mut self, p: P, did: Arc<Did>) {
        self.hints.insert(p, did);
    }
    /// Whether anything is known of `p` (it is in a view or asked).
    pub(crate) fn knows(&self, p: &P) -> bool {
        self.hints.contains_key(p)
    }
    fn did(&self, p: &P) -> Option<Did> {
        self.hints.get(p).map(|did| **did)
    }
}

impl<P: Peer, R: Rng> Node<P, R> {
    fn tier_of(&self, p: &P) -> Tier {
        let did = self.links.get(p).map(|l| *l.did);
        match did.or_else(|| self.views.did(p)) {
            Some(did) => self.trust.tier(&did),
            None => Tier::Probationary,
        }
    }

    /// Who authorised `p`, from the agent record of its DID: the DID its
    /// link proved, else the one heard for it. (An admitted peer's record
    /// is in the store: its hello put it there.)
    fn principal_of(&self, p: &P) -> Option<Did> {
        let proved = self.links.get(p).filter(|l| l.admitted).map(|l| *l.did);
        self.trust
            .authority_principal(&proved.or_else(|| self.views.did(p))?)
    }

    pub(crate) fn peer_ref(&self, p: &P) -> PeerRef {
        let did = match *p == self.me {
            true => Some(self.did()),
            false => self.views.did(p),
        };
        PeerRef {
            peer: p.to_wire(),
            did: did.map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
        }
    }

    fn learn_ref(&mut self, r: &PeerRef) -> Option<P> {
        let p = P::from_wire(&r.peer)?;
        if p == self.me {
            return Some(p);
        }
        // What a link proved beats what the wire claims.
        if self.links.contains_key(&p) {
            self.remember_link(&p);
            return Some(p);
        }
        // Otherwise the first DID heard for a peer is kept, so a known
        // peer's is not parsed (a curve-point check) again.
        if self.views.knows(&p) {
            return Some(p);
        }
        if let Ok(did) = self.trust.did(&r.did) {
            let did = self.trust.shared_did(did);
            self.views.learn(p, did);
        }
        Some(p)
    }

    /// Join through `contacts`.
    pub(crate) fn start_join(&mut self, now_ms: u64, contacts: Vec<P>) {
        let me = self.me;
        for contact in contacts.into_iter().filter(|c| *c != me) {
            let admitted = self.links.get(&contact).is_some_and(|l| l.admitted);
            if !admitted {
                self.views.joining.insert(contact, now_ms);
            }
            self.send(contact, Body::Join(Join {}));
            if admitted {
                self.add_active(contact, true);
            }
        }
    }

    /// A peer finished its handshake.
    pub(crate) fn on_admitted(&mut self, _now_ms: u64, peer: P) {
        if self.views.joining.remove(&peer).is_some() {
            self.add_active(peer, true);
        }
    }

    pub(crate) fn on_join(&mut self, peer: P) {
        if !self.add_active(peer, true) {
            return;
        }
        let joiner = self.peer_ref(&peer);
        let ttl = u32::from(self.config.active_walk_len);
        for q in self.views.active.clone().into_iter().filter(|q| *q != peer) {
            self.send(
                q,
                Body::ForwardJoin(ForwardJoin {
                    peer: Some(joiner.clone()),
                    ttl,
                }),
            );
        }
    }

    pub(crate) fn on_forward_join(&mut self, now_ms: u64, from: P, fj: ForwardJoin) {
        let Some(joiner) = fj.peer.as_ref().and_then(|r| self.learn_ref(r)) else {
            return;
        };
        self.forward_join(now_ms, from, joiner, fj);
        self.forget_unless_viewed(&joiner);
    }

    fn forward_join(&mut self, now_ms: u64, from: P, joiner: P, fj: ForwardJoin) {
        if joiner == self.me || self.views.is_active(&joiner) {
            return;
        }
        let ttl = fj.ttl.min(u32::from(self.config.active_walk_len));
        let next: Vec<P> = self
            .views
            .active
            .iter()
            .copied()
            .filter(|q| *q != from && *q != joiner)
            .collect();
        if ttl == 0 || next.is_empty() {
            self.request_neighbor(now_ms, joiner, true);
            return;
        }
        if ttl == u32::from(self.config.passive_walk_len) {
            self.add_passive(joiner);
        }
        if let Some(&q) = pick(&mut self.rng, &next) {
            let peer = fj.peer.clone();
            self.send(q, Body::ForwardJoin(ForwardJoin { peer, ttl: ttl - 1 }));
        }
    }

    pub(crate) fn on_neighbor(&mut self, from: P, n: Neighbor) {
        // A peer already active here is accepted again, whatever the room:
        // refusing it would leave the two views disagreeing (the asker
        // would keep this node as passive only).
        let room = self.views.active.len() < self.config.active_size || self.views.is_active(&from);
        let accepted = (n.high_priority || room) && self.add_active(from, n.high_priority);
        self.send(from, Body::NeighborReply(NeighborReply { accepted }));
        if !accepted {
            self.add_passive(from);
        }
    }

    pub(crate) fn on_neighbor_reply(&mut self, now_ms: u64, from: P, reply: NeighborReply) {
        if !self.views.cancel_pending(&from) {
            return;
        }
        if reply.accepted {
            // A lost neighbour was asked with high priority, as the last
            // link to a partition's far side may be this one: it is taken
            // even into a full view (the view having been refilled since).
            let forced = self.views.lost.contains_key(&from);
            if !self.add_active(from, forced) {
                self.send(from, Body::Disconnect(Disconnect { alive: true }));
                self.forget_unless_viewed(&from);
            }
        } else {
            self.add_passive(from);
            self.views.refused.insert(from, now_ms);
            self.refill_active(now_ms);
        }
    }

    /// Takes `peer` out of the active view and the broadcast trees, if it
    /// was an active neighbour; returns whether it was.
    pub(crate) fn remove_neighbor(&mut self, peer: &P) -> bool {
        let was_active = self.views.remove_active(peer);
        if was_active {
            self.broadcast.neighbor_down(peer);
            self.event(Event::NeighborDown(*peer));
        }
        was_active
    }

    pub(crate) fn on_disconnect_frame(&mut self, now_ms: u64, from: P, d: Disconnect) {
        self.remove_neighbor(&from);
        match d.alive {
            true => self.add_passive(from),
            false => self.forget_unless_viewed(&from),
        }
        self.refill_active(now_ms);
    }

    pub(crate) fn request_neighbor(&mut self, now_ms: u64, peer: P, high_priority: bool) {
        if peer == self.me || self.views.is_active(&peer) || self.views.is_pending(&peer) {
            return;
        }
        self.views.pending.insert(peer, now_ms);
        self.send(peer, Body::Neighbor(Neighbor { high_priority }));
    }

    /// Tops the active view up from the passive view, best of three. Below
    /// half its size the request is high priority (the receiver must make
    /// room), so no node is left hanging by a single link.
    pub(crate) fn refill_active(&mut self, now_ms: u64) {
        let retry_after = now_ms.saturating_sub(self.config.shuffle_ms);
        self.views.refused.retain(|_, at| *at > retry_after);
        while self.views.active.len() + self.views.pending.len() < self.config.active_size {
            let usable = |p: &P| {
                *p != self.me
                    && !self.views.is_pending(p)
                    && !self.views.is_active(p)
                    && !self.views.refused.contains_key(p)
                    && !self.views.lost.contains_key(p)
            };
            let mut candidates: Vec<P> =
                self.views.passive.iter().copied().filter(usable).collect();
            if candidates.is_empty() {
                // An admitted link outside the views is a live peer too. In
                // a small mesh the passive views can empty out (entries
                // promoted, or dropped when a request failed) and leave two
                // components that never learn of each other again; their
                // open links are what joins them.
                candidates = (self.links.iter())
                    .filter(|(p, l)| l.admitted && usable(p))
                    .map(|(p, _)| *p)
                    .collect();
            }
            if candidates.is_empty() {
                return;
            }
            let mut best: Option<(Tier, P)> = None;
            for _ in 0..3 {
                let c = candidates[below(&mut self.rng, candidates.len())];
                let tier = self.tier_of(&c);
                if best.is_none_or(|(t, _)| tier > t) {
                    best = Some((tier, c));
                }
            }
            let Some((_, peer)) = best else { return };
            let high_priority = self.views.active.len() * 2 < self.config.active_size;
            self.request_neighbor(now_ms, peer, high_priority);
        }
    }

    /// Adds `peer` to the active view, evicting the lowest-tier peer among
    /// those it competes with; `forced` (a join or high-priority request)
    /// evicts even a better peer. Returns whether `peer` is now active.
    pub(crate) fn add_active(&mut self, peer: P, forced: bool) -> bool {
        if peer == self.me || !self.links.get(&peer).is_some_and(|l| l.admitted) {
            return false;
        }
        if self.views.is_active(&peer) {
            return true;
        }
        let tier = self.tier_of(&peer);
        let full = self.views.active.len() >= self.config.active_size;
        let untrusted: Vec<P> = self
            .views
            .active
            .iter()
            .copied()
            .filter(|q| self.tier_of(q) == Tier::Untrusted)
            .collect();
        let competitors =
            if tier == Tier::Untrusted && untrusted.len() >= self.config.untrusted_active_max {
                untrusted
            } else if full {
                let principals = self.principals(&self.views.active);
                let principal = self.principal_of(&peer);
                crowded(
                    &self.views.active,
                    &principals,
                    principal,
                    self.config.principal_active_max,
                )
            } else {
                Vec::new()
            };
        if !competitors.is_empty() {
            let lowest = competitors
                .iter()
                .map(|q| self.tier_of(q))
                .min()
                .unwrap_or(Tier::Verified);
            if !forced && lowest >= tier {
                return false;
            }
            let worst: Vec<P> = competitors
                .into_iter()
                .filter(|q| self.tier_of(q) == lowest)
                .collect();
            let victim = worst[below(&mut self.rng, worst.len())];
            self.remove_neighbor(&victim);
            self.send(victim, Body::Disconnect(Disconnect { alive: true }));
            self.add_passive(victim);
        }
        self.views.passive.retain(|q| *q != peer);
        let was_lost = self.views.lost.remove(&peer).is_some();
        self.views.cancel_pending(&peer);
        self.remember_link(&peer);
        // Its silence is counted from now (see `liveness`): a forwarded
        // join makes active a peer whose link may have been quiet.
        if let Some(link) = self.links.get_mut(&peer) {
            link.last_active_ms = link.last_active_ms.max(self.now_ms);
        }
        self.views.active.push(peer);
        self.event(Event::NeighborUp(peer));
        if was_lost {
            // Back from a silence, perhaps across a healed partition: each
            // side may hold what the other missed, so they reconcile now
            // rather than when a periodic round happens to pick the link.
            self.reconcile_with(peer);
        }
        true
    }

    /// The principals of `view`'s peers, in its order.
    fn principals(&self, view: &[P]) -> Vec<Option<Did>> {
        view.iter().map(|q| self.principal_of(q)).collect()
    }

    /// Adds `peer` to the passive view; when full, evicts a peer it competes
    /// with (see `crowded`).
    pub(crate) fn add_passive(&mut self, peer: P) {
        self.add_passive_with(peer, &mut None);
    }

    /// [`Self::add_passive`] for one of several peers added in a row:
    /// `principals`, once filled, holds the passive view's principals in
    /// its order and is kept so, as each is a lookup in the evidence store
    /// and a full view of thirty would otherwise be looked up again for
    /// every peer a shuffle brings.
    fn add_passive_with(&mut self, peer: P, principals: &mut Option<Vec<Option<Did>>>) {
        if peer == self.me || self.views.is_active(&peer) || self.views.passive.contains(&peer) {
            return;
        }
        if self.views.passive.len() >= self.config.passive_size {
            let passive = &self.views.passive;
            let known = principals.get_or_insert_with(|| self.principals(passive));
            let principal = self.principal_of(&peer);
            let mut crowded = crowded(passive, known, principal, self.config.principal_passive_max);
            // A lost neighbour is kept to be asked back (see `liveness`):
            // the last the view knows of a partition's far side. Only while
            // lost ones hold at most half the view, so peers that go
            // silent on purpose cannot pin it (a partition loses a node
            // at most its active view, five).
            let lost = &self.views.lost;
            let spare = lost.len() * 2 <= self.config.passive_size;
            if spare && crowded.iter().any(|q| !lost.contains_key(q)) {
                crowded.retain(|q| !lost.contains_key(q));
            }
            let victim = crowded[below(&mut self.rng, crowded.len())];
            if let Some(at) = self.views.passive.iter().position(|q| *q == victim) {
                known.remove(at);
            }
            self.views.forget_passive(&victim);
        }
        self.remember_link(&peer);
        self.views.passive.push(peer);
        if let Some(known) = principals {
            known.push(self.principal_of(&peer));
        }
    }

    /// Keeps what the link to `peer` (if any) proved about it, for when the
    /// link is gone and `peer` is still in a view.
    pub(crate) fn remember_link(&mut self, peer: &P) {
        if let Some(l) = self.links.get(peer)
            && self.views.did(peer) != Some(*l.did)
        {
            self.views.learn(*peer, Arc::clone(&l.did));
        }
    }

    /// Forgets what was heard of `peer` unless it is in a view or a request
    /// to it is in flight: peers merely passed along by a walk or offered
    /// in a shuffle that did not make it into a view are not kept.
    fn forget_unless_viewed(&mut self, peer: &P) {
        let v = &self.views;
        if !v.is_active(peer) && !v.passive.contains(peer) && !v.is_pending(peer) {
            self.views.hints.remove(peer);
        }
    }

    /// Gives up on neighbour and join requests unanswered for twice the
    /// handshake time (a lost reply, a dial that never completed), so they
    /// stop holding active-view slots.
    pub(crate) fn expire_requests(&mut self, now_ms: u64) {
        let before = now_ms.saturating_sub(2 * self.config.handshake_ms);
        for peer in self.views.stale_requests(before) {
            self.views.cancel_pending(&peer);
            self.views.forget_unless_lost(&peer);
        }
        self.refill_active(now_ms);
    }

    pub(crate) fn on_shuffle_timer(&mut self, now_ms: u64) {
        self.set_timer(now_ms + self.config.shuffle_ms, crate::node::Timer::Shuffle);
        if self.views.active.is_empty() {
            self.refill_active(now_ms);
            return;
        }
        let target = self.views.active[below(&mut self.rng, self.views.active.len())];
        let mut peers = vec![self.peer_ref(&self.me)];
        let mut active: Vec<P> = self
            .views
            .active
            .iter()
            .copied()
            .filter(|p| *p != target)
            .collect();
        let mut passive = self.views.passive.clone();
        shuffle(&mut self.rng, &mut active);
        shuffle(&mut self.rng, &mut passive);
        peers.extend(
            active
                .iter()
                .take(self.config.shuffle_active)
                .map(|p| self.peer_ref(p)),
        );
        peers.extend(
            passive
                .iter()
                .take(self.config.shuffle_passive)
                .map(|p| self.peer_ref(p)),
        );
        let origin = Some(self.peer_ref(&self.me));
        let ttl = u32::from(self.config.active_walk_len);
        self.send(target, Body::Shuffle(Shuffle { origin, ttl, peers }));
    }

    pub(crate) fn on_shuffle(&mut self, from: P, s: Shuffle) {
        let Some(origin) = s.origin.as_ref().and_then(|r| self.learn_ref(r)) else {
            return;
        };
        self.answer_shuffle(from, origin, s);
        self.forget_unless_viewed(&origin);
    }

    fn answer_shuffle(&mut self, from: P, origin: P, s: Shuffle) {
        let limit = self.config.shuffle_active + self.config.shuffle_passive + 1;
        let ttl = s
            .ttl
            .min(u32::from(self.config.active_walk_len))
            .saturating_sub(1);
        let next: Vec<P> = self
            .views
            .active
            .iter()
            .copied()
            .filter(|q| *q != from && *q != origin)
            .collect();
        if ttl > 0 && !next.is_empty() {
            let q = next[below(&mut self.rng, next.len())];
            self.send(q, Body::Shuffle(Shuffle { ttl, ..s }));
            return;
        }
        if origin == self.me {
            return;
        }
        let mut passive = self.views.passive.clone();
        shuffle(&mut self.rng, &mut passive);
        let reply: Vec<PeerRef> = passive
            .iter()
            .take(s.peers.len().min(limit))
            .map(|p| self.peer_ref(p))
            .collect();
        self.send(origin, Body::ShuffleReply(ShuffleReply { peers: reply }));
        self.integrate(&s.peers[..s.peers.len().min(limit)]);
    }

    pub(crate) fn on_shuffle_reply(&mut self, r: ShuffleReply) {
        let limit = self.config.shuffle_active + self.config.shuffle_passive + 1;
        self.integrate(&r.peers[..r.peers.len().min(limit)]);
    }

    fn integrate(&mut self, refs: &[PeerRef]) {
        let mut principals: Option<Vec<Option<Did>>> = None;
        for r in refs {
            let Some(p) = self.learn_ref(r) else {
                continue;
            };
            // Learning `p` may have replaced what was known of it.
            if let Some(known) = principals.as_mut()
                && let Some(at) = self.views.passive.iter().position(|q| *q == p)
            {
                known[at] = self.principal_of(&p);
            }
            self.add_passive_with(p, &mut principals);
            self.forget_unless_viewed(&p);
        }
    }
}

/// Which peers of a full `view` a newcomer of `principal` competes with.
/// Counting the newcomer, if some principal holds more than `cap`
/// slots, the most represented principal gives one up, the newcomer's
/// own on a tie (so a principal's Sybils cannot displace an incumbent
/// to draw level and take more of a victim's view); otherwise everyone
/// competes. So one principal can never crowd out the others, yet a
/// mesh with a single principal still fills its views.
fn crowded<P: Copy>(
    view: &[P],
    principals: &[Option<Did>],
    principal: Option<Did>,
    cap: usize,
) -> Vec<P> {
    let mut sorted: Vec<Did> = principals
        .iter()
        .flatten()
        .chain(&principal)
        .copied()
        .collect();
    sorted.sort_unstable();
    let counts: Vec<(Did, usize)> = sorted
        .chunk_by(|a, b| a == b)
        .map(|run| (run[0], run.len()))
        .collect();
    let most = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
    if most <= cap {
        return view.to_vec();
    }

    let leaders: Vec<Did> = counts
        .iter()
        .filter(|(_, c)| *c == most)
        .map(|(pr, _)| *pr)
        .collect();
    let losers = match principal.filter(|pr| leaders.contains(pr)) {
        Some(own) => vec![own],
        None => leaders,
    };
    view.iter()
        .zip(principals)
        .filter(|(_, pr)| pr.is_some_and(|pr| losers.contains(&pr)))
        .map(|(q, _)| *q)
        .collect()
}
