//! What travels the broadcast trees: messages, evidence and policy changes,
//! and the checks each passes before it is delivered or forwarded.
//!
//! A message is accepted once: signature, mesh, freshness window (replays
//! of ids that left the dedupe cache are outside it), the origin's mandate
//! now, the policy for `publish` on its topic at the origin's tier, and the
//! origin's ring rate. Evidence and policy changes are verified by the
//! trust core. A forged or malformed item is the forwarding peer's fault
//! (it should have checked) and earns it a strike; an item that is
//! authentic but not allowed is the origin's, and this node signs a
//! violation record about it. Nothing refused is forwarded.

use starling_trust::small_map::SmallMap;
use std::sync::Arc;

use rand_core::Rng;
use starling_trust::evidence::record::Violation;
use starling_trust::keys::Domain;
use starling_trust::mandate::RevocationCheck;
use starling_trust::policy::{Action, Applied, PolicyChange, PolicyError};
use starling_trust::{Did, Evidence, Inserted, Record, wire};

use crate::broadcast::TreeKey;
use crate::message::{MessageId, SYSTEM_PREFIX, SignedMessage, TOPIC_BYTES_MAX};
use crate::node::{CommandError, Delivery, Event, Node, Output};
use crate::peer::Peer;
use crate::stats::DropReason;
use crate::wire::{Body, Gossip, ItemKind, WantAgents};

/// The broadcast tree of evidence records.
pub const EVIDENCE_TREE: &str = "_starling/evidence";
/// The broadcast tree of policy changes.
pub const POLICY_TREE: &str = "_starling/policy";
/// Most origins whose messages wait for their agent record.
const AWAITING_ORIGINS_MAX: usize = 64;
/// Most messages held per such origin.
const AWAITING_PER_ORIGIN_MAX: usize = 16;
/// At most one violation report per origin per this long.
const VIOLATION_COOLDOWN_MS: u64 = 10_000;
const REPORTED_MAX: usize = 4_096;

/// What happened to an item.
enum Verdict {
    /// New and valid: forward it along this tree, then deliver it (if it
    /// is a message on a subscribed topic) once the forwards are queued,
    /// so that nothing the local agent does with it delays the next hop.
    Accepted(TreeKey, Option<Delivery>),
    /// Valid but already known (superseded evidence, an applied change).
    Known(TreeKey),
    /// The forwarding peer sent something invalid.
    Bad(DropReason),
    /// Authentic, but its origin may not do this.
    Refused {
        origin: Did,
        reason: DropReason,
        rule: &'static str,
        severity: u32,
    },
    /// Authentic, but its origin's agent record has not reached this node
    /// yet: nobody's fault, and a later copy may be accepted.
    Unknown(Did),
}

/// A system tree's key.
fn system_tree(name: &str) -> TreeKey {
    (name.to_string(), Vec::new())
}

impl<P: Peer, R: Rng> Node<P, R> {
    pub(crate) fn on_gossip(&mut self, now_ms: u64, from: P, g: Gossip) {
        let id = wire::sha256(&g.item);
        if self.broadcast.is_seen(&id) {
            let tree = self.broadcast.tree_of(&id, &g.item);
            self.on_duplicate(from, tree.as_deref());
            return;
        }
        let verdict = match ItemKind::try_from(g.kind) {
            Ok(ItemKind::Message) => self.accept_message(now_ms, &g.item, g.round),
            Ok(ItemKind::Evidence) => self.accept_evidence(now_ms, &g.item),
            Ok(ItemKind::Policy) => self.accept_policy(&g.item),
            _ => Verdict::Bad(DropReason::Malformed("unknown item kind".into())),
        };
        if let Verdict::Unknown(origin) = verdict {
            self.await_origin(from, origin, g);
            return;
        }
        let announced = self.broadcast.mark_seen(id, now_ms);
        match verdict {
            Verdict::Accepted(tree, delivery) => {
                self.stats.items_accepted += 1;
                self.push_item(now_ms, Some(from), &tree, g.kind, g.round, g.item, id);
                if let Some((announcer, hops)) = announced {
                    let short = crate::broadcast::short_id(&id);
                    self.move_closer(now_ms, announcer, short, u32::from(hops));
                }
                if let Some(d) = delivery {
                    self.stats.delivered += 1;
                    self.outbox.push_back(Output::Deliver(d));
                }
            }
            Verdict::Known(tree) => self.on_duplicate(from, Some(&tree)),
            Verdict::Bad(reason) => self.strike(now_ms, from, reason),
            Verdict::Refused {
                origin,
                reason,
                rule,
                severity,
            } => {
                self.dropped(from, reason);
                self.report_violation(now_ms, origin, rule, severity, &id);
            }
            Verdict::Unknown(_) => {}
        }
    }

    /// Holds a message whose origin's agent record has not arrived, and asks
    /// the peer that forwarded it (which had to check it, so holds the
    /// record) for the record. Bounded: excess messages are dropped.
    fn await_origin(&mut self, from: P, origin: Did, gossip: Gossip) {
        let first = !self.awaiting.contains_key(&origin);
        if first && self.awaiting.len() >= AWAITING_ORIGINS_MAX {
            return self.dropped(
                from,
                DropReason::Refused(format!("no agent record is known for {origin}")),
            );
        }
        let held = self.awaiting.get_or_insert_with(origin, Vec::new);
        if held.len() < AWAITING_PER_ORIGIN_MAX {
            held.push((from, gossip));
        }
        if first {
            self.send(
                from,
                Body::WantAgents(WantAgents {
                    dids: vec![origin.as_bytes().to_vec()],
                }),
            );
        }
    }

    /// An agent record arrived: messages held for it are processed again.
    pub(crate) fn release_awaiting(&mut self, now_ms: u64, agent: &Did) {
        for (from, gossip) in self.awaiting.remove(agent).unwrap_or_default() {
            if self.trust.store().agent(agent).is_some() {
                self.on_gossip(now_ms, from, gossip);
            }
        }
    }

    pub(crate) fn on_want_agents(&mut self, from: P, want: WantAgents) {
        let records: Vec<Vec<u8>> = want
            .dids
            .iter()
            .take(AWAITING_ORIGINS_MAX)
            .filter_map(|d| self.trust.did(d).ok())
            .filter_map(|d| self.trust.store().agent(&d).map(|r| r.to_bytes().to_vec()))
            .collect();
        if !records.is_empty() {
            self.send(from, Body::Records(crate::wire::Records { records }));
        }
    }

    fn accept_message(&mut self, now_ms: u64, item: &[u8], round: u32) -> Verdict {
        let message =
            match self
                .trust
                .open_message(item, self.config.frame_bytes_max, Domain::Message)
            {
                Ok(m) => m,
                Err(wire::DecodeError::Signature { .. }) => {
                    return Verdict::Bad(DropReason::Forged);
                }
                Err(e) => return Verdict::Bad(DropReason::Malformed(e.to_string())),
            };
        if message.topic.starts_with(SYSTEM_PREFIX) {
            return Verdict::Bad(DropReason::Malformed(
                "a message on a reserved system topic".into(),
            ));
        }
        if message.sent_ms + self.config.message_age_max_ms < now_ms
            || message.sent_ms > now_ms + self.config.clock_skew_max_ms
        {
            return Verdict::Bad(DropReason::Replayed);
        }
        let origin = message.origin;
        let authority = match self.trust.authority(&origin, now_ms) {
            Ok(a) => a,
            Err(crate::trust_state::Refusal::Unknown(_)) => return Verdict::Unknown(origin),
            Err(e) => {
                let reason = DropReason::Refused(e.to_string());
                return Verdict::Refused {
                    origin,
                    reason,
                    rule: "mandate",
                    severity: 3,
                };
            }
        };
        if let Err(e) = self
            .trust
            .decide(&authority, Action::Publish, &message.topic)
        {
            let reason = DropReason::Refused(e.to_string());
            return Verdict::Refused {
                origin,
                reason,
                rule: "policy:publish",
                severity: 2,
            };
        }
        let ring = self.trust.ring(&origin);
        if message.payload.len() > ring.message_bytes_max as usize {
            return Verdict::Refused {
                origin,
                reason: DropReason::Oversize,
                rule: "ring:size",
                severity: 1,
            };
        }
        if !self
            .origins
            .take(origin, now_ms, ring.rate_per_s, ring.burst)
        {
            return Verdict::Refused {
                origin,
                reason: DropReason::RateLimited,
                rule: "ring:rate",
                severity: 1,
            };
        }
        let delivery = self
            .subscriptions
            .contains_key(&message.topic)
            .then(|| Delivery {
                id: message.id,
                topic: message.topic.clone(),
                origin,
                sent_ms: message.sent_ms,
                hops: round,
                payload: message.payload.clone(),
            });
        Verdict::Accepted(
            (message.topic.clone(), origin.as_bytes().to_vec()),
            delivery,
        )
    }

    fn accept_evidence(&mut self, now_ms: u64, item: &[u8]) -> Verdict {
        let record = match self.trust.decode_record(item) {
            Ok(r) => r,
            Err(starling_trust::EvidenceError::Decode(wire::DecodeError::Signature { .. })) => {
                return Verdict::Bad(DropReason::Forged);
            }
            Err(e) => return Verdict::Bad(DropReason::Malformed(e.to_string())),
        };
        let tree = system_tree(EVIDENCE_TREE);
        // A record held already costs its author nothing: copies of an old
        // one (pushed after a reconciliation, or by a second path of the
        // tree) must not spend the author's budget, nor get the author
        // reported for a rate it never sent at.
        if self.trust.store().contains(&record.id()) {
            return Verdict::Known(tree);
        }
        let author = record.author();
        if !self.trust.genesis().is_governor(&author) {
            let ring = self.trust.ring(&author);
            let (rate, burst) = (ring.rate_per_s.max(1), ring.burst.max(4));
            if !self.origins.take(author, now_ms, rate, burst) {
                return Verdict::Refused {
                    origin: author,
                    reason: DropReason::RateLimited,
                    rule: "ring:rate",
                    severity: 1,
                };
            }
        }
        match self.apply_record(now_ms, record) {
            true => Verdict::Accepted(tree, None),
            false => Verdict::Known(tree),
        }
    }

    /// Inserts a verified record; returns whether it was new.
    pub(crate) fn apply_record(&mut self, now_ms: u64, record: Arc<Record>) -> bool {
        let kind = record.evidence().kind();
        let (id, author, subject) = (record.id(), record.author(), record.evidence().subject());
        let ending = (record.evidence().ends_authority()).then(|| record.to_bytes().to_vec());
        if !matches!(self.trust.insert(record), Inserted::Added { .. }) {
            return false;
        }
        self.event(Event::EvidenceApplied {
            id,
            kind,
            author,
            subject,
        });
        if kind == "agent" {
            self.release_awaiting(now_ms, &author);
        }
        if let Some(bytes) = ending {
            self.recheck_links(now_ms, &[bytes]);
        }
        true
    }

    fn accept_policy(&mut self, item: &[u8]) -> Verdict {
        let change = match self.trust.decode_policy_change(item) {
            Ok(c) => c,
            Err(starling_trust::policy::ChangeError::Decode(wire::DecodeError::Signature {
                ..
            })) => {
                return Verdict::Bad(DropReason::Forged);
            }
            Err(e) => return Verdict::Bad(DropReason::Malformed(e.to_string())),
        };
        let tree = system_tree(POLICY_TREE);
        match self.apply_policy(change) {
            Ok(true) => Verdict::Accepted(tree, None),
            Ok(false) => Verdict::Known(tree),
            Err(e) => Verdict::Bad(DropReason::Malformed(e.to_string())),
        }
    }

    /// Applies a verified change; returns whether it was new.
    pub(crate) fn apply_policy(&mut self, change: Arc<PolicyChange>) -> Result<bool, PolicyError> {
        let author = change.author();
        match self.trust.apply_policy(change) {
            Ok(Applied::Applied) => {
                self.event(Event::PolicyChanged { author });
                Ok(true)
            }
            Ok(Applied::Pending) => Ok(true),
            Ok(Applied::Duplicate) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Signs and spreads a violation by `origin`, at most once per
    /// cooldown, unless `origin` is terminated: what is said of a
    /// terminated identity moves no score (it scores 0 and lends no
    /// weight), and at a million nodes every neighbour that refused a
    /// killed agent's message flooded its own report of it to all.
    fn report_violation(
        &mut self,
        now_ms: u64,
        origin: Did,
        rule: &str,
        severity: u32,
        id: &MessageId,
    ) {
        if origin == self.did() || self.trust.store().is_terminated(&origin) {
            return;
        }
        let reported = self.reported.get(&origin).copied();
        if reported.is_some_and(|at| now_ms < at + VIOLATION_COOLDOWN_MS) {
            return;
        }
        if self.reported.len() >= REPORTED_MAX {
            self.reported = SmallMap::new();
        }
        self.reported.insert(origin, now_ms);
        let task: String = id.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let violation = Violation {
            subject: origin,
            rule: rule.to_string(),
            severity,
            task,
        };
        if let Ok(record) = Record::create(
            &self.key,
            self.trust.genesis(),
            now_ms,
            Evidence::Violation(violation),
        ) {
            self.stats.violations_reported += 1;
            self.spread_record(now_ms, Arc::new(record));
        }
    }

    /// Applies a local record and spreads it on the evidence tree.
    pub(crate) fn spread_record(&mut self, now_ms: u64, record: Arc<Record>) -> bool {
        if !self.apply_record(now_ms, Arc::clone(&record)) {
            return false;
        }
        self.broadcast_record(now_ms, &record);
        true
    }

    /// Starts a record (already applied here) down the evidence tree.
    pub(crate) fn broadcast_record(&mut self, now_ms: u64, record: &Record) {
        let id = record.id();
        self.broadcast.mark_seen(id, now_ms);
        let tree = system_tree(EVIDENCE_TREE);
        self.push_item(
            now_ms,
            None,
            &tree,
            ItemKind::Evidence as i32,
            0,
            record.to_bytes().to_vec(),
            id,
        );
    }

    /// Publishes a message from the local agent.
    pub(crate) fn publish(
        &mut self,
        now_ms: u64,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<MessageId, CommandError> {
        if topic.is_empty() || topic.len() > TOPIC_BYTES_MAX || topic.starts_with(SYSTEM_PREFIX) {
            return Err(CommandError::Topic(topic.chars().take(64).collect()));
        }
        let me = self.did();
        let authority = self.trust.authority(&me, now_ms)?;
        self.trust.decide(&authority, Action::Publish, &topic)?;
        let ring = self.trust.ring(&me);
        if payload.len() > ring.message_bytes_max as usize {
            return Err(CommandError::TooLarge {
                len: payload.len(),
                max: ring.message_bytes_max,
            });
        }
        if !self.origins.take(me, now_ms, ring.rate_per_s, ring.burst) {
            return Err(CommandError::RateLimited);
        }
        self.seq += 1;
        let mesh = self.trust.genesis().id();
        let message = SignedMessage::sign(
            &self.key,
            Domain::Message,
            &mesh,
            &topic,
            self.seq,
            now_ms,
            payload,
        );
        self.broadcast.mark_seen(message.id, now_ms);
        let tree = (topic, me.as_bytes().to_vec());
        self.push_item(
            now_ms,
            None,
            &tree,
            ItemKind::Message as i32,
            0,
            message.raw,
            message.id,
        );
        Ok(message.id)
    }

    /// Applies and spreads a local policy change.
    pub(crate) fn change_policy(
        &mut self,
        now_ms: u64,
        bytes: Vec<u8>,
    ) -> Result<(), CommandError> {
        let change = (self.trust.decode_policy_change(&bytes)).map_err(PolicyError::from)?;
        let id = wire::sha256(&bytes);
        if self.apply_policy(change)? {
            self.broadcast.mark_seen(id, now_ms);
            self.push_item(
                now_ms,
                None,
                &system_tree(POLICY_TREE),
                ItemKind::Policy as i32,
                0,
                bytes,
                id,
            );
        }
        Ok(())
    }
}
