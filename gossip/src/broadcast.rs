//! Plumtree broadcast: an eager-push spanning tree repaired by lazy push.
//!
//! Every origin gets its own tree per topic (the system trees for evidence
//! and policy are shared by all origins), so each fits the paths from that
//! origin instead of one shared tree that suits no sender and keeps being
//! regrafted. An item received twice prunes the second sender to *lazy*,
//! so the eager links settle into a spanning tree and each node receives
//! each item about once. Lazy neighbours get batched IHAVE digests instead
//! (short ids and hop counts, see [`IHave`]); a node that hears of an item
//! it lacks waits `graft_first_ms` for the tree to deliver it, then GRAFTs
//! an announcer, which sends the item and makes the link eager again: loss
//! and churn are repaired within a round trip. Every item is verified
//! once, deduplicated by id, and every cache is bounded. (Leitão, Pereira,
//! Rodrigues, "Epidemic Broadcast Trees", SRDS 2007.)
//!
//! A tree that starts with every neighbour eager floods its first item:
//! each node sends it on every link, so about (view size - 2) copies a
//! node are duplicates. With one tree per origin that flood is paid once
//! per origin, which at 10^4 simulated nodes with 10 publishers was the
//! whole of the redundancy (RMR 0.110), and in `bench vs-gossipsub` at 48
//! nodes the largest part of Starling's wire bytes and latency tail. So only
//! a topic's first tree floods. A later origin's tree starts as a copy of
//! the topic's tree with the lowest origin, which every node that holds
//! the same trees picks alike, so the copies join into one spanning tree
//! and the first item crosses each node once (where nodes hold different
//! trees, as when origins start together, a copy can leave a node out
//! until a graft brings it in). The copy suits the other
//! origin, so the tree then moves toward its own: an IHAVE carries the
//! hops the announcer's copy took, and a node whose copy took at least
//! `optimize_hops` more makes the announcer its parent (a link-only GRAFT)
//! and prunes its old parent, whether the announcement came before the
//! item or after it (the paper's optimisation, on hop counts). Each move
//! shortens a node's path, so moves stop. Hop counts are not signed: a
//! neighbour that claims fewer hops can make itself a node's parent in one
//! tree and then withhold that tree's items, which costs the node a graft
//! (a quarter second) for each item, as any eager neighbour that withholds
//! does; it delivers nothing less.

use std::collections::VecDeque;
use std::sync::Arc;

use rand_core::Rng;
use starling_trust::small_map::SmallMap;

use crate::message::MessageId;
use crate::node::{Node, Timer};
use crate::peer::Peer;
use crate::recent::Recent;
use crate::wire::{Body, Gossip, Graft, IHave, Prune};

/// Most trees kept; the least recently used is forgotten (it starts again
/// as a copy if its origin speaks again).
const TREES_MAX: usize = 1_024;
/// Most announcers remembered for one missing item.
const ANNOUNCERS_MAX: usize = 8;
/// Grafts sent for one missing item before giving up (announcers are tried
/// in turn, so a lost graft or reply is retried).
const GRAFT_ATTEMPTS_MAX: u8 = 6;

/// A tree: its name (topic or system tree) and origin (empty for one
/// shared tree).
pub(crate) type TreeKey = (String, Vec<u8>);

/// A tree's links: every active neighbour is in every tree, eager unless
/// listed here as lazy. (Neighbours join all trees eager and leave all of
/// them at once, so a tree needs to hold only its exceptions: a handful
/// of ids, where two sets would cost a few hundred bytes a tree.)
#[derive(Debug, Clone, Default)]
struct Tree<P> {
    lazy: Vec<P>,
    /// The neighbour the tree's latest item came from first, or the
    /// announcer this node moved to since.
    parent: Option<P>,
    used_ms: u64,
}

impl<P: Peer> Tree<P> {
    fn is_eager(&self, p: &P, active: &[P]) -> bool {
        active.contains(p) && !self.lazy.contains(p)
    }
    fn make_eager(&mut self, p: &P) {
        self.lazy.retain(|q| q != p);
    }
    fn make_lazy(&mut self, p: P) {
        if !self.lazy.contains(&p) {
            self.lazy.push(p);
        }
    }
}

/// An item kept to answer grafts.
#[derive(Debug, Clone)]
struct Cached {
    tree: Arc<TreeKey>,
    kind: i32,
    round: u32,
    item: Arc<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Missing<P> {
    /// Who announced the item, with the hops their copies took (255:
    /// unknown).
    announcers: VecDeque<(P, u8)>,
    attempts: u8,
}

/// Per-tree lazy links, the item cache and the repair state.
#[derive(Debug, Clone)]
pub struct Broadcast<P> {
    /// Trees by key; the key is shared with the items cached from the tree
    /// (and, with a memo, with every node of the process).
    trees: SmallMap<Arc<TreeKey>, Tree<P>>,
    /// Items by their first 64 bits (see [`short_id`]); a graft, which
    /// names only those, is answered with the item cached under them.
    cache: Recent<Cached>,
    /// Ids seen, by their first 64 bits (see [`short_id`]).
    seen: Recent<()>,
    /// Announced items not received yet, by short id.
    missing: SmallMap<u64, Missing<P>>,
    /// Announcements waiting for the next IHAVE flush: to whom, the short
    /// id, and the hops the item took to reach this node. One vector
    /// grouped by peer at the flush, not one per peer grown item by item.
    ihave: Vec<(P, u64, u8)>,
    flush_pending: bool,
}

/// The first 64 bits of an id: enough to recognise duplicates. Ids are
/// SHA-256 of signed bytes, so two distinct ids agree here only by chance
/// (2^-64 a pair) or when one signer grinds its own items against each
/// other (2^32 work, and it only suppresses its own second item); matching
/// someone else's item would take a 64-bit second preimage. A quarter of
/// the memory of whole ids, which matters at a million nodes.
pub(crate) fn short_id(id: &MessageId) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&id[..8]);
    u64::from_le_bytes(prefix)
}

impl<P> Broadcast<P> {
    /// Empty, keeping items and seen ids as `config` says.
    pub(crate) fn new(config: &crate::Config) -> Self {
        Self {
            trees: SmallMap::new(),
            cache: Recent::new(config.message_cache_ms, config.message_cache_max),
            seen: Recent::new(config.seen_ms, config.seen_max),
            missing: SmallMap::new(),
            ihave: Vec::new(),
            flush_pending: false,
        }
    }
}

impl<P: Peer> Broadcast<P> {
    /// A neighbour left the active view. (One that joins it needs nothing:
    /// it is eager in every tree, as it is in none's lazy list.)
    pub(crate) fn neighbor_down(&mut self, peer: &P) {
        for tree in self.trees.values_mut() {
            tree.make_eager(peer);
            if tree.parent.as_ref() == Some(peer) {
                tree.parent = None;
            }
        }
        self.ihave.retain(|(p, _, _)| p != peer);
        for missing in self.missing.values_mut() {
            missing.announcers.retain(|(p, _)| p != peer);
        }
    }

    /// The tree `key`, made (all eager) if new; `shared` gives the key to
    /// keep for a new tree.
    fn tree(
        &mut self,
        key: &TreeKey,
        shared: impl FnOnce() -> Arc<TreeKey>,
        now_ms: u64,
    ) -> (Arc<TreeKey>, &mut Tree<P>) {
        if !self.trees.contains_key(key) {
            if self.trees.len() >= TREES_MAX {
                let stalest = self
                    .trees
                    .iter()
                    .min_by_key(|(_, t)| t.used_ms)
                    .map(|(k, _)| Arc::clone(k));
                if let Some(k) = stalest {
                    self.trees.remove(&k);
                }
            }
            // A topic's first tree, and a shared tree, start all eager;
            // a later origin's starts as a copy (see the module's docs).
            let lazy = match key.1.is_empty() {
                true => Vec::new(),
                false => self
                    .trees
                    .iter()
                    .find(|(k, _)| k.0 == key.0 && !k.1.is_empty())
                    .map(|(_, t)| t.lazy.clone())
                    .unwrap_or_default(),
            };
            let tree = Tree {
                lazy,
                parent: None,
                used_ms: now_ms,
            };
            self.trees.insert(shared(), tree);
        }
        let key = self
            .trees
            .get_key_value(key)
            .map(|(k, _)| Arc::clone(k))
            .unwrap_or_else(|| unreachable!("inserted above"));
        let tree = self
            .trees
            .get_mut(&key)
            .unwrap_or_else(|| unreachable!("inserted above"));
        tree.used_ms = tree.used_ms.max(now_ms);
        (key, tree)
    }

    /// Whether an item id has been seen (accepted or refused).
    pub(crate) fn is_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(short_id(id))
    }

    /// The tree `item` travelled, if this very item is cached (not another
    /// that shares its short id: a signer who ground two of its own items
    /// to collide must not prune honest links in another tree).
    pub(crate) fn tree_of(&self, id: &MessageId, item: &[u8]) -> Option<Arc<TreeKey>> {
        self.cache
            .get(short_id(id))
            .filter(|c| c.item.as_slice() == item)
            .map(|c| Arc::clone(&c.tree))
    }

    /// Marks `id` seen. Returns the neighbour that announced it over the
    /// fewest hops before it came, if any did, with those hops.
    pub(crate) fn mark_seen(&mut self, id: MessageId, now_ms: u64) -> Option<(P, u8)> {
        self.seen.insert(now_ms, short_id(&id), ());
        let missing = self.missing.remove(&short_id(&id))?;
        missing.announcers.into_iter().min_by_key(|(_, hops)| *hops)
    }

    /// Forgets expired cache entries and ids.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        self.cache.expire(now_ms);
        self.seen.expire(now_ms);
    }

    /// Items cached for grafts.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Ids remembered.
    pub fn seen(&self) -> usize {
        self.seen.len()
    }

    /// Eager and lazy link counts summed over the trees named `tree`, for
    /// a node whose active view is `active`.
    pub fn links(&self, tree: &str, active: &[P]) -> (usize, usize) {
        self.trees
            .iter()
            .filter(|(key, _)| key.0 == tree)
            .fold((0, 0), |(e, l), (_, t)| {
                (e + active.len() - t.lazy.len(), l + t.lazy.len())
            })
    }

    /// Trees held.
    pub fn trees(&self) -> usize {
        self.trees.len()
    }
}

impl<P: Peer, R: Rng> Node<P, R> {
    /// The broadcast state (for inspection).
    pub fn broadcast(&self) -> &Broadcast<P> {
        &self.broadcast
    }

    /// Pushes an accepted item along `tree`: eagerly to eager links, as an
    /// announcement to lazy ones, never back to `from`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_item(
        &mut self,
        now_ms: u64,
        from: Option<P>,
        tree: &TreeKey,
        kind: i32,
        round: u32,
        item: Vec<u8>,
        id: MessageId,
    ) {
        let item = self.trust.keep_item(id, item);
        let active = self.views.active().to_vec();
        let b = &mut self.broadcast;
        let (key, t) = b.tree(tree, || self.trust.shared_tree_key(tree), now_ms);
        if let Some(f) = from.filter(|f| active.contains(f)) {
            t.make_eager(&f);
            t.parent = Some(f);
        }
        let (eager, lazy): (Vec<P>, Vec<P>) = active
            .iter()
            .filter(|p| Some(**p) != from)
            .partition(|p| !t.lazy.contains(p));
        let cached = Cached {
            tree: key,
            kind,
            round,
            item: Arc::clone(&item),
        };
        b.cache.insert(now_ms, short_id(&id), cached);
        let frame = crate::wire::Frame::new(Body::Gossip(Gossip {
            kind,
            round: round + 1,
            item: item.as_ref().clone(),
        }))
        .encode();
        // One buffer for every eager copy: a flood of a million nodes
        // holds one frame per sender in flight, not one per link.
        let frame = bytes::Bytes::from(frame);
        for p in eager {
            self.stats.gossip_sent += 1;
            self.send_encoded(p, frame.clone());
        }
        let hops = u8::try_from(round).unwrap_or(u8::MAX);
        let short = short_id(&id);
        (self.broadcast.ihave).extend(lazy.into_iter().map(|p| (p, short, hops)));
        if !self.broadcast.ihave.is_empty() && !self.broadcast.flush_pending {
            self.broadcast.flush_pending = true;
            self.set_timer(now_ms + self.config.ihave_flush_ms, Timer::IHaveFlush);
        }
    }

    /// A second copy of an item arrived from `from`: prune that link in the
    /// item's tree. The tree is unknown for an item no longer cached, or
    /// never cached because it was refused; such a copy prunes nothing.
    pub(crate) fn on_duplicate(&mut self, from: P, tree: Option<&TreeKey>) {
        self.stats.items_duplicate += 1;
        let Some((tree, t)) =
            tree.and_then(|tree| Some((tree, self.broadcast.trees.get_mut(tree)?)))
        else {
            return;
        };
        // Pruned even if already lazy here: the sender still has this node
        // eager (a graft answered after the tree delivered, say). Not the
        // parent this node just chose, whose answer to a graft can trail
        // the copy that made this node choose it.
        if self.views.is_active(&from) && t.parent != Some(from) {
            t.make_lazy(from);
            let prune = Prune {
                tree: tree.0.clone(),
                origin: tree.1.clone(),
            };
            self.send(from, Body::Prune(prune));
        }
    }

    /// Announcements: an item not seen yet starts the graft timer; one
    /// received over more hops than the announcer's may move this node to
    /// it (see [`Self::move_closer`]).
    pub(crate) fn on_ihave(&mut self, now_ms: u64, from: P, ihave: IHave) {
        let max = self.config.ihave_ids_max;
        for (i, id) in ihave.ids.into_iter().take(max).enumerate() {
            if self.broadcast.seen.contains(id) {
                if let Some(&hops) = ihave.hops.get(i) {
                    self.move_closer(now_ms, from, id, u32::from(hops));
                }
                continue;
            }
            let fresh = !self.broadcast.missing.contains_key(&id);
            let missing = self.broadcast.missing.get_or_insert_with(id, || Missing {
                announcers: VecDeque::new(),
                attempts: 0,
            });
            let known = missing.announcers.iter().any(|(p, _)| *p == from);
            if !known && missing.announcers.len() < ANNOUNCERS_MAX {
                let hops = ihave.hops.get(i).copied().unwrap_or(u8::MAX);
                missing.announcers.push_back((from, hops));
            }
            if fresh {
                self.set_timer(now_ms + self.config.graft_first_ms, Timer::Graft(id));
            }
        }
    }

    /// Plumtree's tree optimisation: `from` announced item `id`, which it
    /// got over `hops` hops. If this node's copy took at least
    /// `optimize_hops` more, the lazy link to `from` becomes the tree's
    /// parent link (a link-only graft) and the old parent link is pruned,
    /// so the tree moves toward the shortest paths from its origin.
    pub(crate) fn move_closer(&mut self, now_ms: u64, from: P, id: u64, hops: u32) {
        let threshold = self.config.optimize_hops;
        if threshold == 0 || !self.views.is_active(&from) {
            return;
        }
        let Some(c) = self.broadcast.cache.get(id) else {
            return;
        };
        // Shared trees serve many origins: what is closer for one is
        // farther for another, so only an origin's own tree moves.
        if c.tree.1.is_empty() || c.round < hops.saturating_add(threshold) {
            return;
        }
        let key = Arc::clone(&c.tree);
        let Some(t) = self.broadcast.trees.get_mut(&key) else {
            return;
        };
        if !t.lazy.contains(&from) {
            return;
        }
        t.make_eager(&from);
        t.used_ms = t.used_ms.max(now_ms);
        let old = t
            .parent
            .replace(from)
            .filter(|p| *p != from && self.views.is_active(p));
        if let Some(old) = old {
            t.make_lazy(old);
        }
        let graft = Graft {
            id,
            link_only: true,
        };
        self.send(from, Body::Graft(graft));
        if let Some(old) = old {
            let prune = Prune {
                tree: key.0.clone(),
                origin: key.1.clone(),
            };
            self.send(old, Body::Prune(prune));
        }
    }

    /// An announced item did not come: graft the next announcer. Its link
    /// turns eager when the item arrives through it.
    pub(crate) fn on_graft_timer(&mut self, now_ms: u64, id: u64) {
        if self.broadcast.seen.contains(id) {
            self.broadcast.missing.remove(&id);
            return;
        }
        let Some(missing) = self.broadcast.missing.get_mut(&id) else {
            return;
        };
        let Some((announcer, hops)) = missing.announcers.pop_front() else {
            self.broadcast.missing.remove(&id);
            return;
        };
        missing.announcers.push_back((announcer, hops));
        missing.attempts += 1;
        match missing.attempts < GRAFT_ATTEMPTS_MAX {
            true => self.set_timer(now_ms + self.config.graft_next_ms, Timer::Graft(id)),
            false => {
                self.broadcast.missing.remove(&id);
            }
        }
        self.stats.grafts_sent += 1;
        let graft = Graft {
            id,
            link_only: false,
        };
        self.send(announcer, Body::Graft(graft));
    }

    /// A graft: send the item (to any admitted peer that asks), and make the
    /// link eager in its tree if it is a neighbour's. An item no longer
    /// cached is not answered; the grafter tries its next announcer.
    pub(crate) fn on_graft(&mut self, now_ms: u64, from: P, graft: Graft) {
        let Some(c) = self.broadcast.cache.get(graft.id).cloned() else {
            return;
        };
        if self.views.is_active(&from) {
            let shared = || Arc::clone(&c.tree);
            self.broadcast
                .tree(&c.tree, shared, now_ms)
                .1
                .make_eager(&from);
        }
        if graft.link_only {
            return;
        }
        self.stats.gossip_sent += 1;
        let gossip = Gossip {
            kind: c.kind,
            round: c.round + 1,
            item: c.item.as_ref().clone(),
        };
        self.send(from, Body::Gossip(gossip));
    }

    pub(crate) fn on_prune(&mut self, from: P, prune: Prune) {
        if let Some(t) = self.broadcast.trees.get_mut(&(prune.tree, prune.origin))
            && t.is_eager(&from, self.views.active())
        {
            t.make_lazy(from);
        }
    }

    pub(crate) fn flush_ihave(&mut self) {
        self.broadcast.flush_pending = false;
        let mut pending = std::mem::take(&mut self.broadcast.ihave);
        // Stable: each peer's announcements keep the order of the items.
        pending.sort_by_key(|(p, _, _)| *p);
        for to_one in pending.chunk_by(|a, b| a.0 == b.0) {
            for chunk in to_one.chunks(self.config.ihave_ids_max.max(1)) {
                let (ids, hops) = chunk.iter().map(|(_, id, h)| (*id, *h)).unzip();
                self.send(to_one[0].0, Body::IHave(IHave { ids, hops }));
            }
        }
    }
}
