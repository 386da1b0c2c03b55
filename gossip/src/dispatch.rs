//! Routing inputs to the sub-protocols.

use rand_core::Rng;
use starling_trust::keys::Domain;

use crate::message::{MessageId, SignedMessage};
use crate::node::{Command, CommandError, Event, Node, Output, Timer};
use crate::peer::Peer;
use crate::stats::DropReason;
use crate::wire::{Body, Direct, Frame, FrameError};

impl<P: Peer, R: Rng> Node<P, R> {
    pub(crate) fn on_frame(&mut self, now_ms: u64, from: P, bytes: &[u8]) {
        self.stats.frames_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let (rate, burst) = (self.config.peer_frames_per_s, self.config.peer_frames_burst);
        let Some(link) = self.links.get_mut(&from) else {
            self.dropped(from, DropReason::NotAdmitted);
            return;
        };
        link.last_active_ms = now_ms;
        if !link.bucket.take(now_ms, rate, burst) {
            self.strike(now_ms, from, DropReason::RateLimited);
            return;
        }
        let admitted = link.admitted;
        let body = match Frame::decode_capped(bytes, self.config.frame_bytes_max) {
            Ok(body) => body,
            Err(FrameError::TooLarge { .. }) => {
                return self.strike(now_ms, from, DropReason::Oversize);
            }
            Err(e) => return self.strike(now_ms, from, DropReason::Malformed(e.to_string())),
        };
        match (admitted, body) {
            (false, Body::Hello(hello)) => self.on_hello(now_ms, from, hello),
            (_, Body::Refuse(refuse)) => {
                self.event(Event::PeerRefused {
                    peer: from,
                    reason: format!("refused by peer: {}", refuse.reason),
                });
                // Not asked back, even if lost: it will refuse again.
                self.views.forget_passive(&from);
                self.drop_link(now_ms, from);
            }
            (false, _) => self.dropped(from, DropReason::NotAdmitted),
            (true, Body::Hello(_)) => {
                self.strike(now_ms, from, DropReason::Malformed("second hello".into()))
            }
            (true, Body::Join(_)) => self.on_join(from),
            (true, Body::ForwardJoin(fj)) => self.on_forward_join(now_ms, from, fj),
            (true, Body::Neighbor(n)) => self.on_neighbor(from, n),
            (true, Body::NeighborReply(r)) => self.on_neighbor_reply(now_ms, from, r),
            (true, Body::Disconnect(d)) => self.on_disconnect_frame(now_ms, from, d),
            (true, Body::Shuffle(s)) => self.on_shuffle(from, s),
            (true, Body::ShuffleReply(r)) => self.on_shuffle_reply(r),
            (true, Body::Gossip(g)) => self.on_gossip(now_ms, from, g),
            (true, Body::IHave(i)) => self.on_ihave(now_ms, from, i),
            (true, Body::Graft(g)) => self.on_graft(now_ms, from, g),
            (true, Body::Prune(p)) => self.on_prune(from, p),
            (true, Body::Reconcile(r)) => self.on_reconcile(now_ms, from, r),
            (true, Body::Want(w)) => self.on_want(now_ms, from, w),
            (true, Body::Records(r)) => self.on_records(now_ms, from, r),
            (true, Body::PolicyHeads(h)) => self.on_policy_heads(from, h),
            (true, Body::PolicyHave(h)) => self.on_policy_have(from, h),
            (true, Body::PolicyChanges(c)) => self.on_policy_changes(now_ms, from, c),
            (true, Body::Direct(d)) => self.on_direct(now_ms, from, d),
            (true, Body::WantAgents(w)) => self.on_want_agents(from, w),
            (true, Body::Probe(probe)) => self.on_probe(from, probe),
        }
    }

    fn on_direct(&mut self, now_ms: u64, from: P, d: Direct) {
        let message =
            match self
                .trust
                .open_message(&d.message, self.config.frame_bytes_max, Domain::Direct)
            {
                Ok(m) => m,
                Err(starling_trust::wire::DecodeError::Signature { .. }) => {
                    return self.strike(now_ms, from, DropReason::Forged);
                }
                Err(e) => return self.strike(now_ms, from, DropReason::Malformed(e.to_string())),
            };
        if message.topic != self.did().to_string() {
            return self.strike(
                now_ms,
                from,
                DropReason::Malformed("direct message for another agent".into()),
            );
        }
        let stale = message.sent_ms + self.config.message_age_max_ms < now_ms
            || message.sent_ms > now_ms + self.config.clock_skew_max_ms;
        if stale || self.broadcast.is_seen(&message.id) {
            return self.dropped(from, DropReason::Replayed);
        }
        if let Err(e) = self.trust.authority(&message.origin, now_ms) {
            return self.dropped(from, DropReason::Refused(e.to_string()));
        }
        self.broadcast.mark_seen(message.id, now_ms);
        self.outbox.push_back(Output::DeliverDirect {
            from: message.origin,
            payload: message.payload.clone(),
        });
    }

    pub(crate) fn on_command(
        &mut self,
        now_ms: u64,
        command: Command<P>,
    ) -> Result<Option<MessageId>, CommandError> {
        match command {
            Command::Join { contacts } => self.start_join(now_ms, contacts),
            Command::Subscribe { topic } => {
                let me = self.did();
                let authority = self.trust.authority(&me, now_ms)?;
                self.trust.decide(
                    &authority,
                    starling_trust::policy::Action::Subscribe,
                    &topic,
                )?;
                self.subscriptions.insert(topic, ());
            }
            Command::Unsubscribe { topic } => {
                self.subscriptions.remove(&topic);
            }
            Command::Publish { topic, payload } => {
                return self.publish(now_ms, topic, payload).map(Some);
            }
            Command::SubmitEvidence { record } => {
                let record = self.trust.decode_record(&record)?;
                self.spread_record(now_ms, record);
            }
            Command::ChangePolicy { change } => self.change_policy(now_ms, change)?,
            Command::Direct { to, payload } => {
                let Some(to_did) = self.links.get(&to).filter(|l| l.admitted).map(|l| *l.did)
                else {
                    return Err(CommandError::UnknownPeer);
                };
                let me = self.did();
                self.trust.authority(&me, now_ms)?;
                self.seq += 1;
                let mesh = self.trust.genesis().id();
                let message = SignedMessage::sign(
                    &self.key,
                    Domain::Direct,
                    &mesh,
                    &to_did.to_string(),
                    self.seq,
                    now_ms,
                    payload,
                );
                self.send(
                    to,
                    Body::Direct(Direct {
                        message: message.raw,
                    }),
                );
            }
        }
        Ok(None)
    }

    pub(crate) fn on_timer(&mut self, now_ms: u64, timer: Timer) {
        match timer {
            Timer::Shuffle => self.on_shuffle_timer(now_ms),
            Timer::AntiEntropy => self.on_anti_entropy_timer(now_ms),
            Timer::IHaveFlush => self.flush_ihave(),
            Timer::Graft(id) => self.on_graft_timer(now_ms, id),
            Timer::Tick => {
                self.set_timer(now_ms + self.config.score_refresh_ms, Timer::Tick);
                if self.trust.refresh_scores(now_ms) {
                    self.recheck_links(now_ms, &[]);
                }
                self.broadcast.expire(now_ms);
                self.graylist.expire(now_ms);
                self.origins.forget_full(now_ms);
                self.sweep_links(now_ms);
                self.check_liveness(now_ms);
                self.expire_requests(now_ms);
            }
        }
    }
}
