//! Counters a node keeps about itself: for metrics, benchmarks and tests.

/// Why a frame or item was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Not a decodable frame, or a frame that makes no sense here.
    Malformed(String),
    /// Larger than allowed.
    Oversize,
    /// A signature does not verify.
    Forged,
    /// Outside the freshness window: a replay.
    Replayed,
    /// The peer has not completed the handshake.
    NotAdmitted,
    /// The sender's agent may not do this.
    Refused(String),
    /// Over the sender's rate.
    RateLimited,
}

impl DropReason {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Oversize => "oversize",
            Self::Forged => "forged",
            Self::Replayed => "replayed",
            Self::NotAdmitted => "not_admitted",
            Self::Refused(_) => "refused",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// Counters. All only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages delivered to the agent.
    pub delivered: u64,
    /// Items (messages, records, changes) accepted the first time.
    pub items_accepted: u64,
    /// Items received again (the broadcast's redundancy).
    pub items_duplicate: u64,
    /// Items pushed eagerly.
    pub gossip_sent: u64,
    /// Grafts sent (repairs).
    pub grafts_sent: u64,
    /// Dropped: malformed.
    pub dropped_malformed: u64,
    /// Dropped: oversize.
    pub dropped_oversize: u64,
    /// Dropped: forged.
    pub dropped_forged: u64,
    /// Dropped: replayed.
    pub dropped_replayed: u64,
    /// Dropped: from a peer not admitted.
    pub dropped_not_admitted: u64,
    /// Dropped: refused by mandate or policy.
    pub dropped_refused: u64,
    /// Dropped: over rate.
    pub dropped_rate_limited: u64,
    /// Peers refused at the handshake.
    pub peers_refused: u64,
    /// Identities graylisted.
    pub graylisted: u64,
    /// Violation records this node witnessed and signed.
    pub violations_reported: u64,
    /// Active neighbours lost to silence (see `liveness`).
    pub neighbors_lost: u64,
}

impl Stats {
    pub(crate) fn count_drop(&mut self, reason: &DropReason) {
        let counter = match reason {
            DropReason::Malformed(_) => &mut self.dropped_malformed,
            DropReason::Oversize => &mut self.dropped_oversize,
            DropReason::Forged => &mut self.dropped_forged,
            DropReason::Replayed => &mut self.dropped_replayed,
            DropReason::NotAdmitted => &mut self.dropped_not_admitted,
            DropReason::Refused(_) => &mut self.dropped_refused,
            DropReason::RateLimited => &mut self.dropped_rate_limited,
        };
        *counter += 1;
    }

    /// Every drop counted.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_oversize
            + self.dropped_forged
            + self.dropped_replayed
            + self.dropped_not_admitted
            + self.dropped_refused
            + self.dropped_rate_limited
    }
}
