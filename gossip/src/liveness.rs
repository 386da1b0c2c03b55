//! Failure detection of active links, and asking lost neighbours back.
//!
//! HyParView and Plumtree assume a transport that reports a dead link.
//! A silent partition (frames dropped, no reset) or a stalled host is not
//! reported: TCP keeps retransmitting for about fifteen minutes, and until
//! then the active view keeps a neighbour that hears nothing, and the
//! broadcast trees keep eager links into the void. So each node watches
//! its own active links. One that carried nothing for `probe_after_ms` is
//! probed (a busy link, the common case, costs nothing); one silent for
//! `silence_max_ms` is lost: closed and replaced, like a failed link.
//!
//! Replacing is not enough when the silence was a partition: each side
//! then forgets the other, and when the partition heals no view holds a
//! peer across it. So a lost neighbour stays in the passive view, spared
//! when the view makes room, and is asked back with high priority after
//! a random wait, at most `lost_retry_ms`, then at most double that and
//! so on up to `lost_retry_max_ms`, `lost_retries_max` times (for about
//! a day with the defaults). A neighbour request that fails or goes
//! unanswered leaves it to be asked again. With many links lost at once
//! and their waits spread, some request comes soon after any heal; the
//! first that succeeds rejoins the two sides, and the two reconcile at
//! once, each sending what the other missed. A recent revocation or
//! termination among it goes on the evidence tree from there (`sync`),
//! so the far side has it within a second.

use rand_core::Rng;

use crate::config::Config;
use crate::node::Node;
use crate::peer::{Peer, below};
use crate::wire::{Body, Probe};

impl<P: Peer, R: Rng> Node<P, R> {
    /// Probes quiet active neighbours, loses silent ones, and asks lost
    /// ones back: once a housekeeping tick.
    pub(crate) fn check_liveness(&mut self, now_ms: u64) {
        // Checked once a tick, so a link is lost only after a tick that
        // probed it: never for a quiet spell that began just after a tick.
        let probe_after = self.config.probe_after_ms;
        let silence_max =
            (self.config.silence_max_ms).max(probe_after + self.config.score_refresh_ms);
        let quiet: Vec<(P, u64)> = (self.views.active().iter())
            .filter_map(|p| Some((*p, now_ms.saturating_sub(self.links.get(p)?.last_active_ms))))
            .collect();
        let mut silent = Vec::new();
        for (peer, quiet) in quiet {
            if quiet >= silence_max {
                silent.push(peer);
            } else if quiet >= probe_after {
                self.probe(peer, false);
            }
        }
        for peer in silent {
            self.lose(now_ms, peer);
        }
        self.ask_lost_back(now_ms);
    }

    pub(crate) fn on_probe(&mut self, from: P, probe: Probe) {
        if !probe.reply {
            self.probe(from, true);
        }
    }

    fn probe(&mut self, to: P, reply: bool) {
        self.send(to, Body::Probe(Probe { reply }));
    }

    /// Closes the link to a silent active neighbour and replaces it,
    /// keeping it in the passive view to be asked back.
    fn lose(&mut self, now_ms: u64, peer: P) {
        self.stats.neighbors_lost += 1;
        self.remove_neighbor(&peer);
        self.add_passive(peer);
        if self.views.passive().contains(&peer) {
            let retry_at = now_ms.saturating_add(wait(&self.config, &mut self.rng, 0));
            self.views.lost.insert(peer, (retry_at, 0));
        }
        self.drop_link(now_ms, peer);
        self.refill_active(now_ms);
    }

    /// Sends a high-priority neighbour request to each lost neighbour whose
    /// time has come, and gives up those asked often enough.
    fn ask_lost_back(&mut self, now_ms: u64) {
        let (config, rng) = (&self.config, &mut self.rng);
        let mut due = Vec::new();
        self.views.lost.retain(|peer, (at, tries)| {
            if now_ms < *at {
                return true;
            }
            if *tries >= config.lost_retries_max {
                return false;
            }
            *tries += 1;
            *at = now_ms.saturating_add(wait(config, rng, *tries));
            due.push(*peer);
            true
        });
        for peer in due {
            self.request_neighbor(now_ms, peer, true);
        }
    }
}

/// The wait before request `tries + 1` to a lost neighbour: uniform up to
/// `lost_retry_ms` doubled `tries` times, at most `lost_retry_max_ms`.
/// Links lost together (a partition) are asked back at times spread evenly
/// after the first few, so a heal at any moment soon meets a request:
/// waits drawn from the upper half of their length left the requests
/// bunched near their doubling times, and a heal between two bunches
/// waited up to 15 s for the next.
fn wait<R: Rng>(config: &Config, rng: &mut R, tries: u32) -> u64 {
    let doubled = config.lost_retry_ms.saturating_mul(1u64 << tries.min(32));
    let longest = doubled.min(config.lost_retry_max_ms.max(config.lost_retry_ms));
    let longest = usize::try_from(longest).unwrap_or(usize::MAX);
    below(rng, longest.saturating_add(1)) as u64
}
