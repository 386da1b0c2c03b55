//! Read-only answers: trust, decisions, audit, peers, the traffic graph,
//! metrics and status. None of them changes anything.

use serde_json::{Value, json};
use starling_trust::mandate::RevocationCheck;
use starling_trust::policy::Actor;
use starling_trust::{Did, Evidence};

use crate::driver::{Driver, SESSION_QUEUE_MAX};
use crate::handle::{ApiError, Query};
use crate::session::WRITER_QUEUE_MAX;

/// Most audit entries returned at once.
pub const AUDIT_PAGE_MAX: usize = 1000;

impl Driver {
    pub(crate) fn query(&self, query: Query) -> Result<Value, ApiError> {
        match query {
            Query::Trust(did) => Ok(self.trust_of(&did)),
            Query::Decide {
                did,
                action,
                resource,
            } => self.decide(did, action, &resource),
            Query::Audit { from, limit } => self.audit_page(from, limit),
            Query::Peers => Ok(self.peers()),
            Query::Graph => Ok(self.graph()),
            Query::Metrics => Ok(Value::String(self.metrics_text())),
            Query::Evidence(id) => {
                let stored = self
                    .store
                    .has_evidence(&id)
                    .map_err(|e| ApiError::unavailable(e.to_string()))?;
                let held = self.core.trust().store().get(&id);
                if !stored && held.is_none() {
                    return Err(ApiError::not_found(format!(
                        "no evidence record {}",
                        hex::encode(id)
                    )));
                }
                Ok(json!({
                    "id": hex::encode(id),
                    "stored": stored,
                    "in_force": held.is_some(),
                    "kind": held.map(|r| r.evidence().kind()),
                }))
            }
            Query::Status => Ok(json!({
                "did": self.key.did().to_string(),
                "peer_id": self.key.did().to_peer_id().to_string(),
                "mesh_id": hex::encode(self.core.trust().genesis().id()),
                "listen": self.listen_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "evidence_records": self.core.trust().store().len(),
                "policy_heads": self.core.trust().policy().heads().iter().map(|h| hex::encode(h.0)).collect::<Vec<_>>(),
                "policy_rules": self.core.trust().policy().compiled().rules().iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                "audit_entries": self.audit.len(),
                "subscriptions": self.core.subscriptions().collect::<Vec<_>>(),
            })),
        }
    }

    fn trust_of(&self, did: &Did) -> Value {
        let trust = self.core.trust();
        let scores = trust.scores();
        let record = trust.store().agent(did);
        let authority = trust.authority(did, self.now_ms);
        let kem = matches!(record.map(|r| r.evidence()), Some(Evidence::Agent(a)) if !a.kem_public_key.is_empty());
        json!({
            "did": did.to_string(),
            "score": scores.score(did),
            "tier": trust.tier(did).name(),
            "known": record.is_some(),
            "governor": trust.genesis().is_governor(did),
            "terminated": trust.store().is_terminated(did),
            "principal": trust.authority_principal(did).map(|p| p.to_string()),
            "mandate_valid": authority.is_ok(),
            "mandate_error": authority.err().map(|e| e.to_string()),
            "sealing_key": kem,
            "epoch": scores.epoch(),
        })
    }

    fn decide(
        &self,
        did: Option<Did>,
        action: starling_trust::Action,
        resource: &str,
    ) -> Result<Value, ApiError> {
        let did = did.unwrap_or_else(|| self.key.did());
        let trust = self.core.trust();
        let authority = match trust.authority(&did, self.now_ms) {
            Ok(a) => a,
            Err(e) => {
                return Ok(
                    json!({ "did": did.to_string(), "allowed": false, "reason": e.to_string() }),
                );
            }
        };
        let actor = Actor {
            did: &authority.agent,
            principal: &authority.principal,
            tier: trust.tier(&did),
            scope: &authority.scope,
        };
        let decision = trust.policy().decide(&actor, action, resource);
        Ok(json!({
            "did": did.to_string(),
            "action": action.name(),
            "resource": resource,
            "allowed": decision.is_allowed(),
            "reason": decision.reason.to_string(),
            "tier": trust.tier(&did).name(),
        }))
    }

    fn audit_page(&self, from: u64, limit: usize) -> Result<Value, ApiError> {
        let limit = limit.clamp(1, AUDIT_PAGE_MAX);
        let rows = self
            .store
            .audit(from, limit)
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let me = self.key.did();
        let entries: Vec<Value> = rows
            .iter()
            .map(|(seq, stored)| match crate::audit::decode(stored, &me) {
                Ok(entry) => serde_json::to_value(entry).unwrap_or(Value::Null),
                Err(e) => json!({ "seq": seq, "error": e }),
            })
            .collect();
        Ok(json!({ "entries": entries, "total": self.audit.len() }))
    }

    fn peers(&self) -> Value {
        let admitted: Vec<Value> = self
            .core
            .admitted()
            .map(|(p, d)| {
                json!({
                    "peer_id": p.to_string(),
                    "did": d.to_string(),
                    "tier": self.core.trust().tier(d).name(),
                    "addrs": self.addrs.get(p).map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
                })
            })
            .collect();
        json!({
            "admitted": admitted,
            "active_view": self.core.active_view().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "passive_view": self.core.passive_view().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "connections": self.swarm.connected_peers().count(),
            "graylisted": self.graylisted.iter().map(|(did, until_ms)| json!({
                "did": did.to_string(),
                "peer_id": did.to_peer_id().to_string(),
                "until_ms": until_ms,
            })).collect::<Vec<_>>(),
        })
    }

    fn graph(&self) -> Value {
        let me = self.key.did().to_string();
        let edges: Vec<Value> = self
            .traffic
            .iter()
            .map(|(peer, t)| {
                let did = Did::from_peer_id(peer)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|_| peer.to_string());
                json!({ "from": me, "to": did, "traffic": t })
            })
            .collect();
        json!({ "node": me, "edges": edges })
    }

    pub(crate) fn metrics_text(&self) -> String {
        let gauges = [
            (
                "connected_peers",
                "Peers with an open connection.",
                self.swarm.connected_peers().count() as u64,
            ),
            (
                "admitted_peers",
                "Peers admitted by the handshake.",
                self.core.admitted().count() as u64,
            ),
            (
                "active_view",
                "Size of the HyParView active view.",
                self.core.active_view().len() as u64,
            ),
            (
                "passive_view",
                "Size of the HyParView passive view.",
                self.core.passive_view().len() as u64,
            ),
            (
                "evidence_records",
                "Evidence records held.",
                self.core.trust().store().len() as u64,
            ),
            ("audit_entries", "Audit log entries.", self.audit.len()),
            (
                "inbound_queue_frames",
                "Received frames queued for the event loop.",
                (SESSION_QUEUE_MAX - self.sessions_tx.capacity()) as u64,
            ),
            (
                "inbound_queue_bytes",
                "Bytes of received frames queued for the event loop.",
                self.inbound.queued_bytes() as u64,
            ),
            (
                "outbound_queue_frames",
                "Frames queued in the per-peer writers.",
                self.writers
                    .values()
                    .map(|w| (WRITER_QUEUE_MAX - w.capacity()) as u64)
                    .sum(),
            ),
            (
                "graylisted_peers",
                "Identities graylisted now.",
                self.graylisted.len() as u64,
            ),
        ];
        let mut text = self.metrics.render(self.core.stats(), &gauges);
        if let Some(rss) = resident_bytes() {
            text.push_str(&format!(
                "# HELP starling_process_resident_bytes Resident memory of the whole process.\n# TYPE starling_process_resident_bytes gauge\nstarling_process_resident_bytes {rss}\n"
            ));
        }
        text
    }
}

/// The process's resident set size, where the OS tells it (Linux `/proc`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
