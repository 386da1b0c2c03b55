//! The audit log: append-only, hash-chained, signed by the node.
//!
//! Each entry names who acted (agent DID and its principal), the task, the
//! action and the decision. Its stored form is `body_len (u32 LE) || body
//! (JSON) || signature (64)`, the signature by the node's key over the body
//! under `Domain::Audit`. The body carries its sequence number and the
//! SHA-256 of the previous entry's stored form, so editing an entry breaks
//! its signature, and removing or reordering entries breaks the sequence or
//! the chain. The newest (sequence, hash) is also kept as a signed *head* in
//! the store's meta table, so cutting entries off the end is caught too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use starling_trust::keys::{self, Domain};
use starling_trust::{Did, Keypair};

use crate::store::{Batch, Store, StoreError};

/// The meta key of the signed head.
pub const HEAD_KEY: &str = "audit_head";
const HEAD_TAG: &[u8] = b"starling-audit-head\0";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// SHA-256 (hex) of the previous entry's stored form; zeros for the first.
    pub prev: String,
    /// When (the node's clock, Unix ms).
    pub time_ms: u64,
    /// The node that wrote it.
    pub node: String,
    /// The agent that acted.
    pub agent: String,
    /// Its principal, if known.
    pub principal: String,
    /// The task or message id.
    pub task: String,
    /// What was done (`publish:<topic>`, `deliver:<topic>`, `vouch`, ...).
    pub action: String,
    /// `allow`, `deny: <reason>`, `accepted`, `rejected: <reason>`.
    pub decision: String,
}

/// What to record; the log fills in sequence, chain, time and node.
#[derive(Debug, Clone, Default)]
pub struct Fact {
    /// The agent that acted.
    pub agent: String,
    /// Its principal.
    pub principal: String,
    /// Task or message id.
    pub task: String,
    /// Action.
    pub action: String,
    /// Decision.
    pub decision: String,
}

/// The writer side: the chain's head, kept in memory.
#[derive(Debug)]
pub struct AuditLog {
    key: Keypair,
    /// The node's DID as every entry names it, formatted once.
    node: String,
    next_seq: u64,
    prev: [u8; 32],
}

impl AuditLog {
    /// Resumes the log from the store (verifying nothing; see [`verify`]).
    pub fn resume(key: Keypair, store: &Store) -> Result<Self, StoreError> {
        let (next_seq, prev) = match store.meta(HEAD_KEY)? {
            Some(head) if head.len() == 8 + 32 + 64 => {
                let seq = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&head[8..40]);
                (seq + 1, hash)
            }
            _ => (0, [0u8; 32]),
        };
        Ok(Self {
            node: key.did().to_string(),
            key,
            next_seq,
            prev,
        })
    }

    /// Appends an entry to `batch` (it is in the log once the batch is
    /// sealed and commits). Signing the entry is the whole cost; the head
    /// is signed once a batch, by [`AuditLog::seal`].
    pub fn append(&mut self, batch: &mut Batch, time_ms: u64, fact: Fact) -> u64 {
        let entry = Entry {
            seq: self.next_seq,
            prev: hex::encode(self.prev),
            time_ms,
            node: self.node.clone(),
            agent: fact.agent,
            principal: fact.principal,
            task: fact.task.chars().take(256).collect(),
            action: fact.action.chars().take(256).collect(),
            decision: fact.decision.chars().take(512).collect(),
        };
        let body = serde_json::to_vec(&entry)
            .unwrap_or_else(|_| unreachable!("an entry of strings always serialises"));
        let signature = self.key.sign(Domain::Audit, &body);
        let mut stored = Vec::with_capacity(4 + body.len() + 64);
        stored.extend_from_slice(&(body.len() as u32).to_le_bytes());
        stored.extend_from_slice(&body);
        stored.extend_from_slice(&signature);
        let hash: [u8; 32] = Sha256::digest(&stored).into();
        batch.audit.push((entry.seq, stored));
        batch.meta.retain(|(k, _)| *k != HEAD_KEY);
        self.prev = hash;
        self.next_seq += 1;
        entry.seq
    }

    /// Signs the head (the newest entry's sequence and hash) into a batch
    /// with entries, which the store requires before it commits them.
    pub fn seal(&self, batch: &mut Batch) {
        if batch.is_sealed() {
            return;
        }
        let seq = self.next_seq - 1;
        batch
            .meta
            .push((HEAD_KEY, signed_head(&self.key, seq, &self.prev)));
    }

    /// How many entries the log has (committed or in a pending batch).
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

fn head_body(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut body = HEAD_TAG.to_vec();
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(hash);
    body
}

fn signed_head(key: &Keypair, seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut head = seq.to_le_bytes().to_vec();
    head.extend_from_slice(hash);
    head.extend_from_slice(&key.sign(Domain::Audit, &head_body(seq, hash)));
    head
}

/// Splits a stored entry and checks its signature by `node`.
pub fn decode(stored: &[u8], node: &Did) -> Result<Entry, String> {
    let len = stored
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("truncated")?;
    if stored.len() != 4 + len + 64 {
        return Err("truncated or padded".into());
    }
    let (body, signature) = stored[4..].split_at(len);
    keys::verify(node, Domain::Audit, body, signature)
        .map_err(|_| "signature does not verify (edited)".to_string())?;
    serde_json::from_slice(body).map_err(|e| format!("unreadable body: {e}"))
}

/// The result of checking a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// The first problem: (sequence number, what is wrong).
    pub first_bad: Option<(u64, String)>,
}

/// Checks the whole log in `store` against `node`'s key.
pub fn verify(store: &Store, node: &Did) -> Result<Report, StoreError> {
    let mut expected = 0u64;
    let mut prev = [0u8; 32];
    let page = 1024;
    loop {
        let rows = store.audit(expected, page)?;
        let done = rows.len() < page;
        for (seq, stored) in rows {
            let fail = |what: String| {
                Ok(Report {
                    entries: expected,
                    first_bad: Some((expected, what)),
                })
            };
            if seq != expected {
                return fail(format!(
                    "entry {expected} is missing (removed); the next stored is {seq}"
                ));
            }
            let entry = match decode(&stored, node) {
                Ok(e) => e,
                Err(e) => return fail(e),
            };
            if entry.seq != seq {
                return fail(format!(
                    "entry stored at {seq} says it is {} (reordered)",
                    entry.seq
                ));
            }
            if entry.prev != hex::encode(prev) {
                return fail(format!(
                    "entry {seq} does not follow entry {} (reordered or replaced)",
                    seq.wrapping_sub(1)
                ));
            }
            prev = Sha256::digest(&stored).into();
            expected += 1;
        }
        if done {
            break;
        }
    }
    let head = store.meta(HEAD_KEY)?;
    let problem = match head {
        None if expected == 0 => None,
        None => Some("the signed head is missing".to_string()),
        Some(h) if h.len() != 8 + 32 + 64 => Some("the signed head is malformed".to_string()),
        Some(h) => {
            let seq = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&h[8..40]);
            if keys::verify(node, Domain::Audit, &head_body(seq, &hash), &h[40..]).is_err() {
                Some("the signed head does not verify (edited)".to_string())
            } else if seq + 1 != expected || hash != prev {
                Some(format!(
                    "the log ends at entry {} but the signed head names entry {seq} (entries removed from the end)",
                    expected.wrapping_sub(1)
                ))
            } else {
                None
            }
        }
    };
    Ok(Report {
        entries: expected,
        first_bad: problem.map(|p| (expected, p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(i: u64) -> Fact {
        Fact {
            agent: "did:key:agent".into(),
            principal: "did:key:org".into(),
            task: format!("task-{i}"),
            action: "publish:news".into(),
            decision: "allow".into(),
        }
    }

    fn log_of(n: u64) -> (tempfile::TempDir, Store, Did) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Keypair::from_secret_bytes(&[5; 32]);
        let did = key.did();
        let mut log = AuditLog::resume(key, &store).unwrap();
        for i in 0..n {
            let mut batch = Batch::default();
            log.append(&mut batch, 1_000 + i, fact(i));
            assert!(matches!(
                store.commit(&batch, false),
                Err(StoreError::UnsealedAudit)
            ));
            log.seal(&mut batch);
            store.commit(&batch, false).unwrap();
        }
        (dir, store, did)
    }

    #[test]
    fn an_intact_log_verifies_and_resumes() {
        let (_dir, store, did) = log_of(5);
        assert_eq!(
            verify(&store, &did).unwrap(),
            Report {
                entries: 5,
                first_bad: None
            }
        );
        let mut log = AuditLog::resume(Keypair::from_secret_bytes(&[5; 32]), &store).unwrap();
        let mut batch = Batch::default();
        assert_eq!(log.append(&mut batch, 9, fact(9)), 5);
        log.seal(&mut batch);
        store.commit(&batch, true).unwrap();
        assert_eq!(verify(&store, &did).unwrap().first_bad, None);
    }

    #[test]
    fn edits_removals_reorders_and_truncation_are_caught_at_the_right_entry() {
        let (_d, store, did) = log_of(6);
        let mut third = store.audit(3, 1).unwrap().remove(0).1;
        let at = 4 + third[4..].iter().position(|b| *b == b'3').unwrap();
        third[at] = b'4';
        store.tamper_audit(3, Some(&third)).unwrap();
        let report = verify(&store, &did).unwrap();
        assert_eq!(
            report.first_bad.as_ref().map(|b| b.0),
            Some(3),
            "{report:?}"
        );
        assert!(report.first_bad.unwrap().1.contains("edited"));

        let (_d, store, did) = log_of(6);
        store.tamper_audit(2, None).unwrap();
        let bad = verify(&store, &did).unwrap().first_bad.unwrap();
        assert_eq!(bad.0, 2);
        assert!(bad.1.contains("removed"), "{bad:?}");

        let (_d, store, did) = log_of(6);
        let (e1, e2) = (
            store.audit(1, 1).unwrap().remove(0).1,
            store.audit(2, 1).unwrap().remove(0).1,
        );
        store.tamper_audit(1, Some(&e2)).unwrap();
        store.tamper_audit(2, Some(&e1)).unwrap();
        let bad = verify(&store, &did).unwrap().first_bad.unwrap();
        assert_eq!(bad.0, 1);
        assert!(bad.1.contains("reordered"), "{bad:?}");

        let (_d, store, did) = log_of(6);
        store.tamper_audit(5, None).unwrap();
        let bad = verify(&store, &did).unwrap().first_bad.unwrap();
        assert!(bad.1.contains("removed from the end"), "{bad:?}");

        let (_d, store, _) = log_of(3);
        let other = Keypair::from_secret_bytes(&[6; 32]).did();
        assert_eq!(
            verify(&store, &other).unwrap().first_bad.map(|b| b.0),
            Some(0)
        );
    }
}
