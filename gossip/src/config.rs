//! Protocol parameters, with units in their names.

/// Everything a node's gossip core can be tuned by. The defaults follow the
/// HyParView and Plumtree papers, scaled for meshes of 10..10^6 agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Active view size (HyParView: log10(n) + 1; 5 covers a million nodes).
    pub active_size: usize,
    /// Passive view size.
    pub passive_size: usize,
    /// Active random walk length for ForwardJoin and Shuffle.
    pub active_walk_len: u8,
    /// Walk length at which a ForwardJoin'd peer enters the passive view.
    pub passive_walk_len: u8,
    /// Peers from the active view sent in a shuffle.
    pub shuffle_active: usize,
    /// Peers from the passive view sent in a shuffle.
    pub shuffle_passive: usize,
    /// Time between shuffles.
    pub shuffle_ms: u64,
    /// Most active peers at the untrusted tier.
    pub untrusted_active_max: usize,
    /// Most active peers sharing one principal.
    pub principal_active_max: usize,
    /// Most passive peers sharing one principal.
    pub principal_passive_max: usize,
    /// Wait after an IHAVE before grafting the first announcer.
    pub graft_first_ms: u64,
    /// Wait before grafting each further announcer.
    pub graft_next_ms: u64,
    /// Batching delay for IHAVE digests. Every flush costs each lazy link a
    /// frame (and its TLS record and yamux header), so a longer window
    /// trades repair delay, which `graft_first_ms` already makes a quarter
    /// second, for fewer frames: 50 ms cut wire bytes per delivery by 8% in
    /// `bench vs-gossipsub` (a message every 20 ms) against 10 ms.
    pub ihave_flush_ms: u64,
    /// Most ids in one IHAVE frame.
    pub ihave_ids_max: usize,
    /// A lazy neighbour that announces an item over at least this many
    /// fewer hops than this node's copy took becomes its parent in the
    /// item's tree (0: never). 2 moves a node whenever that brings it at
    /// least one hop closer to the origin.
    pub optimize_hops: u32,
    /// How long received messages are kept to answer grafts. A node
    /// announces an item within `ihave_flush_ms` of receiving it, and whoever
    /// misses it grafts within `graft_first_ms` plus a `graft_next_ms` for
    /// each further announcer, so grafts for an item come within about a
    /// second of its receipt; 10 s leaves room for slow links and is twice
    /// gossipsub's message cache (5 heartbeats of 1 s). At a million
    /// simulated nodes each second kept costs about 64 bytes a node.
    pub message_cache_ms: u64,
    /// Most messages kept for grafts.
    pub message_cache_max: usize,
    /// How long message ids are remembered to drop duplicates and replays.
    pub seen_ms: u64,
    /// Most ids remembered.
    pub seen_max: usize,
    /// Messages older than this (by their signed send time) are replays.
    pub message_age_max_ms: u64,
    /// Messages this far in the future are refused.
    pub clock_skew_max_ms: u64,
    /// Time between anti-entropy rounds.
    pub anti_entropy_ms: u64,
    /// Time between score table refreshes (when evidence changed).
    pub score_refresh_ms: u64,
    /// A peer must complete the handshake within this time.
    pub handshake_ms: u64,
    /// Largest frame accepted, in bytes.
    pub frame_bytes_max: usize,
    /// Frames per second one peer may send (sustained).
    pub peer_frames_per_s: u32,
    /// Frames one peer may send in a burst.
    pub peer_frames_burst: u32,
    /// Misbehaviours (forged, malformed, refused, flooding) before a peer is graylisted.
    pub strikes_max: u32,
    /// How long a graylisted identity stays refused.
    pub graylist_ms: u64,
    /// Most origins whose rate is tracked at once.
    pub origins_tracked_max: usize,
    /// Most frames queued for a peer still handshaking.
    pub queued_frames_max: usize,
    /// An active neighbour that sent nothing for this long is probed, once
    /// a housekeeping tick while it stays quiet. A busy link never is:
    /// gossip, IHAVE batches and anti-entropy rounds all count.
    pub probe_after_ms: u64,
    /// An active neighbour that sent nothing for this long (at least
    /// `probe_after_ms` plus a housekeeping tick, `score_refresh_ms`, so
    /// a probe went unanswered) is lost: a silent partition or a stalled
    /// host, which a transport may not notice for many minutes (TCP
    /// retransmits for about fifteen). It is replaced, and kept to be
    /// asked back (see `lost_retry_ms`).
    pub silence_max_ms: u64,
    /// The longest wait before the first request to a lost neighbour to
    /// be one again, so the two sides of a healed partition find each
    /// other: their passive views forgot the other side while it could
    /// not be reached. Each wait is drawn uniformly up to its longest, so
    /// nodes that lost their neighbours together do not ask together; the
    /// longest doubles after each request, up to `lost_retry_max_ms`.
    pub lost_retry_ms: u64,
    /// The longest wait between requests to a lost neighbour.
    pub lost_retry_max_ms: u64,
    /// How old a revocation or termination may be and still be pushed on
    /// the evidence tree by a node that learned it by reconciliation, not
    /// by the tree: it may have crossed a healed partition, and the tree
    /// carries it across the node's side at once rather than round by
    /// round. Older ones are left to reconciliation, so a node back from a
    /// long absence does not push the mesh's history of them. A day, as
    /// long as lost neighbours are asked back.
    pub urgent_age_max_ms: u64,
    /// Requests to a lost neighbour before it is given up. With the
    /// defaults (5 s doubling to 60 s, 2,880 requests) a partition of up
    /// to about a day heals by itself, as in Serf (which reconnects to a
    /// failed member every 30 s for 24 hours); a lost peer costs a request
    /// every 30 s on average meanwhile, and at most half the passive view
    /// is kept for lost peers.
    pub lost_retries_max: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            active_size: 5,
            passive_size: 30,
            active_walk_len: 6,
            passive_walk_len: 3,
            shuffle_active: 3,
            shuffle_passive: 4,
            shuffle_ms: 10_000,
            untrusted_active_max: 1,
            principal_active_max: 2,
            principal_passive_max: 8,
            graft_first_ms: 250,
            graft_next_ms: 100,
            ihave_flush_ms: 50,
            ihave_ids_max: 256,
            optimize_hops: 2,
            message_cache_ms: 10_000,
            message_cache_max: 4_096,
            seen_ms: 120_000,
            seen_max: 65_536,
            message_age_max_ms: 60_000,
            clock_skew_max_ms: 30_000,
            anti_entropy_ms: 2_000,
            score_refresh_ms: 1_000,
            handshake_ms: 5_000,
            frame_bytes_max: 1 << 20,
            peer_frames_per_s: 2_000,
            peer_frames_burst: 4_000,
            strikes_max: 8,
            graylist_ms: 600_000,
            origins_tracked_max: 8_192,
            queued_frames_max: 64,
            probe_after_ms: 2_000,
            silence_max_ms: 6_000,
            lost_retry_ms: 5_000,
            lost_retry_max_ms: 60_000,
            lost_retries_max: 2_880,
            urgent_age_max_ms: 86_400_000,
        }
    }
}
