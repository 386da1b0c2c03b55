//! What the event loop does for its agent: each request is checked against
//! the local mandate and policy first (the core refuses what the agent may
//! not do), audited, committed to disk, and only then answered.

use libp2p::PeerId;
use serde_json::json;
use starling_gossip::{Command, CommandError, Input};
use starling_trust::evidence::record::{Outcome, Revocation, Termination, Vouch};
use starling_trust::evidence::store::Slot;
use starling_trust::policy::Action;
use starling_trust::{Did, Evidence, Record};

use crate::audit::Fact;
use crate::driver::{Driver, kem_key_of};
use crate::handle::{ApiError, EvidenceInput, PolicyInput, Query, Reply, Request};

fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::Topic(_) | CommandError::Evidence(_) | CommandError::TooLarge { .. } => {
            ApiError::bad(e.to_string())
        }
        CommandError::Policy(_) => ApiError::bad(e.to_string()),
        CommandError::Refused(_) => ApiError::refused(e.to_string()),
        CommandError::RateLimited => ApiError::rate_limited(e.to_string()),
        CommandError::UnknownPeer => ApiError::not_found(e.to_string()),
    }
}

impl Driver {
    fn me(&self) -> Did {
        self.key.did()
    }

    fn my_principal(&self) -> String {
        self.core
            .trust()
            .authority_principal(&self.me())
            .map(|d| d.to_string())
            .unwrap_or_default()
    }

    fn fact(&self, task: &str, action: String, decision: String) -> Fact {
        Fact {
            agent: self.me().to_string(),
            principal: self.my_principal(),
            task: task.to_string(),
            action,
            decision,
        }
    }

    /// Appends an audit entry; the answer waits for the durable commit.
    fn commit_and_reply(
        &mut self,
        fact: Fact,
        reply: Reply<serde_json::Value>,
        answer: Result<serde_json::Value, ApiError>,
    ) {
        self.audit.append(&mut self.batch, self.now_ms, fact);
        // Answered after the loop's next durable commit (group commit).
        self.acks.push((reply, answer));
    }

    pub(crate) fn on_request(&mut self, request: Request) {
        match request {
            Request::Publish {
                topic,
                payload,
                members,
                task,
                reply,
            } => {
                let payload = match self.seal_for_members(&topic, payload, members) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let action = format!("publish:{}", topic.chars().take(64).collect::<String>());
                let command = Command::Publish { topic, payload };
                match self.core.handle(self.now_ms, Input::Command(command)) {
                    Ok(id) => {
                        self.metrics.published += 1;
                        let id = id.map(hex::encode).unwrap_or_default();
                        let fact = self.fact(&task, action, "allow".into());
                        self.commit_and_reply(fact, reply, Ok(json!({ "id": id })));
                    }
                    Err(e @ (CommandError::Refused(_) | CommandError::RateLimited)) => {
                        let fact = self.fact(&task, action, format!("deny: {e}"));
                        self.commit_and_reply(fact, reply, Err(command_error(e)));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(command_error(e)));
                    }
                }
            }
            Request::Subscribe { topic, reply } => {
                let result = self.core.handle(
                    self.now_ms,
                    Input::Command(Command::Subscribe {
                        topic: topic.clone(),
                    }),
                );
                let _ = reply.send(
                    result
                        .map(|_| json!({ "subscribed": topic }))
                        .map_err(command_error),
                );
            }
            Request::Direct {
                to,
                payload,
                task,
                reply,
            } => self.direct(to, payload, task, reply),
            Request::Evidence { input, task, reply } => self.evidence(input, task, reply),
            Request::Policy { input, reply } => self.policy(input, reply),
            // Reads of the store see every write made before them.
            Request::Query {
                query: query @ (Query::Audit { .. } | Query::Evidence(_)),
                reply,
            } => self.read_after_writes(query, reply),
            Request::Query { query, reply } => {
                let _ = reply.send(self.query(query));
            }
            Request::Shutdown => {}
        }
    }

    /// A private topic's payload sealed for its members (and this agent),
    /// each of whom must hold a valid mandate, a sealing key, and the
    /// policy's leave to subscribe to the topic. Other topics take no members.
    fn seal_for_members(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        mut members: Vec<Did>,
    ) -> Result<Vec<u8>, ApiError> {
        if !crate::private::is_private(topic) {
            return match members.is_empty() {
                true => Ok(payload),
                false => Err(ApiError::bad(format!(
                    "members are only for {}... topics",
                    crate::private::PRIVATE_PREFIX
                ))),
            };
        }
        if members.is_empty() {
            return Err(ApiError::bad(format!(
                "a {}... topic needs members: the DIDs who may read it",
                crate::private::PRIVATE_PREFIX
            )));
        }
        members.push(self.me());
        members.sort();
        members.dedup();
        let mut keyed = Vec::with_capacity(members.len());
        for member in members {
            let trust = self.core.trust();
            let authority = trust
                .authority(&member, self.now_ms)
                .map_err(|e| ApiError::refused(format!("member {member}: {e}")))?;
            trust
                .decide(&authority, Action::Subscribe, topic)
                .map_err(|e| ApiError::refused(format!("member {member}: {e}")))?;
            let pk = kem_key_of(&self.core, &member).ok_or_else(|| {
                ApiError::not_found(format!("no sealing key is known for member {member}"))
            })?;
            keyed.push((member, pk));
        }
        let me = self.me();
        crate::private::seal_for(&mut self.rng, &me, topic, &keyed, &payload)
            .map_err(|e| ApiError::bad(e.to_string()))
    }

    fn direct(&mut self, to: Did, payload: Vec<u8>, task: String, reply: Reply<serde_json::Value>) {
        if to == self.me() {
            let _ = reply.send(Err(ApiError::bad(
                "cannot send a direct message to this node's own agent",
            )));
            return;
        }
        if let Err(e) = self.core.trust().authority(&self.me(), self.now_ms) {
            let _ = reply.send(Err(ApiError::refused(e.to_string())));
            return;
        }
        let Some(pk) = kem_key_of(&self.core, &to) else {
            let _ = reply.send(Err(ApiError::not_found(format!(
                "no agent record with a sealing key is known for {to}; it must have joined this mesh"
            ))));
            return;
        };
        let me = self.me();
        let sealed = match crate::seal::seal(&mut self.rng, &pk, &me, &to, &payload) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(ApiError::bad(e.to_string())));
                return;
            }
        };
        let peer = to.to_peer_id();
        let principal = self
            .core
            .trust()
            .authority_principal(&to)
            .map(|d| d.to_string())
            .unwrap_or_default();
        let fact = Fact {
            agent: self.me().to_string(),
            principal: self.my_principal(),
            task,
            action: format!("direct:send:{to}"),
            decision: format!("allow (recipient principal {principal})"),
        };
        // An overlay neighbour gets it on the link; anyone else through the
        // overlay, broadcast on the recipient's inbox topic, which only its
        // node delivers: every relay forwards the sealed bytes and can read
        // none. Other open connections (Kademlia's, say) are not used: they
        // are transient, and a frame lost on one is never repaired, while
        // the broadcast repairs loss (Plumtree's IHAVE/GRAFT).
        let (command, route) = match self.core.active_view().contains(&peer) {
            true => (
                Command::Direct {
                    to: peer,
                    payload: sealed,
                },
                "direct",
            ),
            false => (
                Command::Publish {
                    topic: crate::seal::inbox_topic(&to),
                    payload: sealed,
                },
                "relayed",
            ),
        };
        self.send_direct(command, route, fact, reply);
    }

    fn send_direct(
        &mut self,
        command: Command<PeerId>,
        route: &str,
        mut fact: Fact,
        reply: Reply<serde_json::Value>,
    ) {
        let sealed_bytes = match &command {
            Command::Direct { payload, .. } | Command::Publish { payload, .. } => payload.len(),
            _ => 0,
        };
        match self.core.handle(self.now_ms, Input::Command(command)) {
            Ok(id) => {
                self.metrics.directs_sent += 1;
                fact.decision = format!("{} ({route})", fact.decision);
                // A relayed message has a gossip id; a link frame has none.
                let answer = json!({
                    "sent": true,
                    "sealed_bytes": sealed_bytes,
                    "route": route,
                    "id": id.map(hex::encode),
                });
                self.commit_and_reply(fact, reply, Ok(answer));
            }
            Err(e) => {
                let _ = reply.send(Err(command_error(e)));
            }
        }
    }

    /// Signs a record with this node's key.
    fn sign(&mut self, evidence: Evidence) -> Result<Record, ApiError> {
        let genesis = self.core.trust().genesis().clone();
        Record::create(&self.key, &genesis, self.now_ms, evidence).map_err(|e| match e {
            starling_trust::EvidenceError::NotAuthorised(m) => ApiError::refused(m),
            other => ApiError::bad(other.to_string()),
        })
    }

    fn make_record(&mut self, input: EvidenceInput) -> Result<(Record, &'static str), ApiError> {
        let genesis = self.core.trust().genesis().clone();
        let me = self.me();
        match input {
            EvidenceInput::Signed(bytes) => {
                let record = Record::from_bytes(&bytes, &genesis)
                    .map_err(|e| ApiError::bad(e.to_string()))?;
                Ok((record, "evidence"))
            }
            EvidenceInput::Outcome {
                subject,
                success,
                severity,
                task,
            } => {
                if !success && !(1..=10).contains(&severity) {
                    return Err(ApiError::bad("a failed outcome needs a severity of 1..=10"));
                }
                let previous = self
                    .core
                    .trust()
                    .store()
                    .best(&Slot::Outcome(me, subject))
                    .cloned();
                let mut totals = match previous.as_ref().map(|r| r.evidence()) {
                    Some(Evidence::Outcome(o)) => o.clone(),
                    _ => Outcome {
                        subject,
                        successes: 0,
                        failures: 0,
                        failure_severity: 0,
                        last_task: String::new(),
                    },
                };
                match success {
                    true => totals.successes += 1,
                    false => {
                        totals.failures += 1;
                        totals.failure_severity += u64::from(severity);
                    }
                }
                totals.last_task = task;
                Ok((self.sign(Evidence::Outcome(totals))?, "outcome"))
            }
            EvidenceInput::Vouch {
                subject,
                weight,
                expires_ms,
            } => {
                let authority = self
                    .core
                    .trust()
                    .authority(&me, self.now_ms)
                    .map_err(|e| ApiError::refused(e.to_string()))?;
                self.core
                    .trust()
                    .decide(&authority, Action::Vouch, &subject.to_string())
                    .map_err(|e| ApiError::refused(e.to_string()))?;
                Ok((
                    self.sign(Evidence::Vouch(Vouch {
                        subject,
                        weight,
                        expires_ms,
                    }))?,
                    "vouch",
                ))
            }
            EvidenceInput::Revoke { subject, reason } => {
                let mandate = self.leaf_mandate(&subject)?;
                Ok((
                    self.sign(Evidence::Revocation(Revocation { mandate, reason }))?,
                    "revoke",
                ))
            }
            EvidenceInput::Terminate { subject, reason } => {
                let mandate = match genesis.is_governor(&me) {
                    true => None,
                    false => Some(self.leaf_mandate(&subject)?),
                };
                Ok((
                    self.sign(Evidence::Termination(Termination {
                        subject,
                        reason,
                        mandate,
                    }))?,
                    "terminate",
                ))
            }
        }
    }

    fn leaf_mandate(&self, subject: &Did) -> Result<starling_trust::Mandate, ApiError> {
        let record = self.core.trust().store().agent(subject).ok_or_else(|| {
            ApiError::not_found(format!("no agent record is known for {subject}"))
        })?;
        match record.evidence() {
            Evidence::Agent(a) => a
                .chain
                .leaf()
                .cloned()
                .ok_or_else(|| ApiError::bad("the agent's chain is empty")),
            _ => Err(ApiError::bad("not an agent record")),
        }
    }

    fn evidence(&mut self, input: EvidenceInput, task: String, reply: Reply<serde_json::Value>) {
        let what = match &input {
            EvidenceInput::Signed(_) => "evidence".to_string(),
            EvidenceInput::Outcome { subject, .. } => format!("outcome:{subject}"),
            EvidenceInput::Vouch { subject, .. } => format!("vouch:{subject}"),
            EvidenceInput::Revoke { subject, .. } => format!("revoke:{subject}"),
            EvidenceInput::Terminate { subject, .. } => format!("terminate:{subject}"),
        };
        let (record, action) = match self.make_record(input) {
            Ok(r) => r,
            Err(e) if e.status == 403 => {
                // A refusal by mandate or policy is a decision: audit it.
                let fact = self.fact(&task, what, format!("deny: {}", e.message));
                self.commit_and_reply(fact, reply, Err(e));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let id = record.id();
        let bytes = record.to_bytes().to_vec();
        let subject = record.evidence().subject().to_string();
        let kind = record.evidence().kind();
        if let Err(e) = self.core.handle(
            self.now_ms,
            Input::Command(Command::SubmitEvidence {
                record: bytes.clone(),
            }),
        ) {
            let _ = reply.send(Err(command_error(e)));
            return;
        }
        let kept = self.core.trust().store().contains(&id);
        // Store what was acknowledged even if a better record in its slot
        // outranks it here, so the caller's record is never lost.
        self.batch.evidence.retain(|(i, _)| *i != id);
        self.batch.evidence.push((id, bytes));
        let fact = self.fact(
            &task,
            format!("{action}:{kind}:{subject}"),
            "accepted".into(),
        );
        self.commit_and_reply(
            fact,
            reply,
            Ok(json!({ "id": hex::encode(id), "kind": kind, "kept": kept })),
        );
    }

    fn policy(&mut self, input: PolicyInput, reply: Reply<serde_json::Value>) {
        let bytes = match input {
            PolicyInput::Signed(bytes) => bytes,
            PolicyInput::Edits(edits) => {
                let genesis = self.core.trust().genesis().clone();
                match self
                    .core
                    .trust()
                    .policy()
                    .propose(&self.key, &genesis, self.now_ms, &edits)
                {
                    Ok(change) => change.to_bytes().to_vec(),
                    Err(e @ starling_trust::policy::PolicyError::NotGovernor(_)) => {
                        let _ = reply.send(Err(ApiError::refused(e.to_string())));
                        return;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ApiError::bad(e.to_string())));
                        return;
                    }
                }
            }
        };
        let hash = starling_trust::wire::sha256(&bytes);
        match self.core.handle(
            self.now_ms,
            Input::Command(Command::ChangePolicy { change: bytes }),
        ) {
            Ok(_) => {
                let fact = self.fact("", "policy:change".into(), "accepted".into());
                self.commit_and_reply(fact, reply, Ok(json!({ "change": hex::encode(hash) })));
            }
            Err(e) => {
                let _ = reply.send(Err(command_error(e)));
            }
        }
    }
}
