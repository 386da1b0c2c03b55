//! Evidence records: signed statements about agents.
//!
//! Six kinds, each signed by its author over the exact bytes carried:
//! outcome summaries (a reporter's running totals about one subject),
//! violations (witnessed policy breaches), vouches and withdrawals (a vouch
//! of weight 0), mandate revocations, terminations (the kill switch) and
//! agent records (an agent's mandate chain and sealing key). Validation
//! here is everything that does not depend on other records or the clock, so
//! every honest node accepts exactly the same records.

use bytes::Bytes;
use prost::Message;

use crate::did::Did;
use crate::genesis::Genesis;
use crate::keys::{Domain, Keypair};
use crate::mandate::{Mandate, MandateChain, MandateError};
use crate::wire::{self, DecodeError, Hash, SignedProto, Verify};

/// Largest encoded record, in bytes (an agent record carries a chain and a KEM key).
pub const RECORD_BYTES_MAX: usize = 64 * 1024;
/// Longest free-text field (task ids, rule names, reasons), in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// Largest KEM public key in an agent record, in bytes.
pub const KEM_KEY_BYTES_MAX: usize = 2048;
/// Most listen addresses in an agent record.
pub const ADDRS_MAX: usize = 8;
/// Highest vouch weight.
pub const VOUCH_WEIGHT_MAX: u32 = 100;
/// Highest severity of a violation or failed outcome.
pub const SEVERITY_MAX: u32 = 10;
const WHAT: &str = "evidence record";

/// A record's id: SHA-256 of its signed envelope.
pub type RecordId = Hash;

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// Not a well-formed, correctly signed record.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Made for another mesh.
    #[error("evidence record is for another mesh")]
    WrongMesh,
    /// A field value is out of range.
    #[error("evidence record: {0}")]
    Invalid(String),
    /// The author may not sign this kind of record.
    #[error("evidence record: {0}")]
    NotAuthorised(String),
    /// An embedded mandate or chain is invalid.
    #[error("evidence record: embedded mandate: {0}")]
    Mandate(#[from] MandateError),
}

/// A reporter's running totals of outcomes with one subject. Counters only
/// grow, so the newest summary from a reporter carries all earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Who the outcomes are about.
    pub subject: Did,
    /// Successful tasks so far.
    pub successes: u64,
    /// Failed tasks so far.
    pub failures: u64,
    /// Sum of the failed tasks' severities (each 1..=10).
    pub failure_severity: u64,
    /// The last task counted, for audit.
    pub last_task: String,
}

/// A witnessed breach of policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Who broke the rule.
    pub subject: Did,
    /// The rule or check that was broken.
    pub rule: String,
    /// 1..=10.
    pub severity: u32,
    /// The task or message id, for audit.
    pub task: String,
}

/// A vouch (weight 1..=100) or its withdrawal (weight 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouch {
    /// Who is vouched for.
    pub subject: Did,
    /// 0 withdraws, 1..=100.
    pub weight: u32,
    /// When the vouch lapses (Unix ms).
    pub expires_ms: u64,
}

/// Revocation of one mandate, by its issuer or a governor. Final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked mandate, so anyone can check who issued it.
    pub mandate: Mandate,
    /// Why.
    pub reason: String,
}

/// The kill switch: an identity is cut off mesh-wide, for good. Signed by a
/// governor, or by the agent's principal, who shows the mandate they issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Who is terminated.
    pub subject: Did,
    /// Why.
    pub reason: String,
    /// For a principal: the mandate it issued to `subject`.
    pub mandate: Option<Mandate>,
}

/// An agent's public record: its mandate chain and end-to-end sealing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The chain from a governor to this agent.
    pub chain: MandateChain,
    /// The agent's hybrid KEM public key (X25519 || ML-KEM-768), or empty.
    pub kem_public_key: Bytes,
    /// Where the agent's node listens (multiaddrs).
    pub addrs: Vec<String>,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Outcome summary.
    Outcome(Outcome),
    /// Policy violation.
    Violation(Violation),
    /// Vouch or withdrawal.
    Vouch(Vouch),
    /// Mandate revocation.
    Revocation(Revocation),
    /// Kill switch.
    Termination(Termination),
    /// Agent record.
    Agent(AgentRecord),
}

/// A verified evidence record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    id: RecordId,
    author: Did,
    issued_ms: u64,
    evidence: Evidence,
    /// The signed bytes; what the record holds besides (mandates, the KEM
    /// key) are views of them rather than copies.
    raw: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct RecordBody {
    #[prost(bytes = "vec", tag = "1")]
    mesh: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    author: Vec<u8>,
    #[prost(uint64, tag = "3")]
    issued_ms: u64,
    #[prost(oneof = "Kind", tags = "10, 11, 12, 13, 14, 15")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(message, tag = "10")]
    Outcome(OutcomeProto),
    #[prost(message, tag = "11")]
    Violation(ViolationProto),
    #[prost(message, tag = "12")]
    Vouch(VouchProto),
    #[prost(message, tag = "13")]
    Revocation(RevocationProto),
    #[prost(message, tag = "14")]
    Termination(TerminationProto),
    #[prost(message, tag = "15")]
    Agent(AgentProto),
}

#[derive(Clone, PartialEq, Message)]
struct OutcomeProto {
    #[prost(bytes = "vec", tag = "1")]
    subject: Vec<u8>,
    #[prost(uint64, tag = "2")]
    successes: u64,
    #[prost(uint64, tag = "3")]
    failures: u64,
    #[prost(uint64, tag = "4")]
    failure_severity: u64,
    #[prost(string, tag = "5")]
    last_task: String,
}

#[derive(Clone, PartialEq, Message)]
struct ViolationProto {
    #[prost(bytes = "vec", tag = "1")]
    subject: Vec<u8>,
    #[prost(string, tag = "2")]
    rule: String,
    #[prost(uint32, tag = "3")]
    severity: u32,
    #[prost(string, tag = "4")]
    task: String,
}

#[derive(Clone, PartialEq, Message)]
struct VouchProto {
    #[prost(bytes = "vec", tag = "1")]
    subject: Vec<u8>,
    #[prost(uint32, tag = "2")]
    weight: u32,
    #[prost(uint64, tag = "3")]
    expires_ms: u64,
}

#[derive(Clone, PartialEq, Message)]
struct RevocationProto {
    #[prost(bytes = "bytes", tag = "1")]
    mandate: Bytes,
    #[prost(string, tag = "2")]
    reason: String,
}

#[derive(Clone, PartialEq, Message)]
struct TerminationProto {
    #[prost(bytes = "vec", tag = "1")]
    subject: Vec<u8>,
    #[prost(string, tag = "2")]
    reason: String,
    #[prost(bytes = "bytes", tag = "3")]
    mandate: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct AgentProto {
    #[prost(bytes = "bytes", tag = "1")]
    chain: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    kem_public_key: Bytes,
    #[prost(string, repeated, tag = "3")]
    addrs: Vec<String>,
}

impl Evidence {
    /// The kind's short name: `outcome`, `violation`, `vouch`, `revocation`,
    /// `termination` or `agent`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Outcome(_) => "outcome",
            Self::Violation(_) => "violation",
            Self::Vouch(_) => "vouch",
            Self::Revocation(_) => "revocation",
            Self::Termination(_) => "termination",
            Self::Agent(_) => "agent",
        }
    }

    /// Whether it ends an authority: a revocation or a termination, which
    /// nodes act on at once (links re-checked, spread with urgency).
    pub fn ends_authority(&self) -> bool {
        matches!(self, Self::Revocation(_) | Self::Termination(_))
    }

    /// The identity the record is about.
    pub fn subject(&self) -> Did {
        match self {
            Self::Outcome(o) => o.subject,
            Self::Violation(v) => v.subject,
            Self::Vouch(v) => v.subject,
            Self::Revocation(r) => r.mandate.subject(),
            Self::Termination(t) => t.subject,
            Self::Agent(a) => a
                .chain
                .leaf()
                .map(Mandate::subject)
                .unwrap_or_else(|| unreachable!("validated")),
        }
    }

    fn to_kind(&self) -> Kind {
        let did = |d: &Did| d.as_bytes().to_vec();
        match self {
            Self::Outcome(o) => Kind::Outcome(OutcomeProto {
                subject: did(&o.subject),
                successes: o.successes,
                failures: o.failures,
                failure_severity: o.failure_severity,
                last_task: o.last_task.clone(),
            }),
            Self::Violation(v) => Kind::Violation(ViolationProto {
                subject: did(&v.subject),
                rule: v.rule.clone(),
                severity: v.severity,
                task: v.task.clone(),
            }),
            Self::Vouch(v) => Kind::Vouch(VouchProto {
                subject: did(&v.subject),
                weight: v.weight,
                expires_ms: v.expires_ms,
            }),
            Self::Revocation(r) => Kind::Revocation(RevocationProto {
                mandate: r.mandate.shared_bytes(),
                reason: r.reason.clone(),
            }),
            Self::Termination(t) => Kind::Termination(TerminationProto {
                subject: did(&t.subject),
                reason: t.reason.clone(),
                mandate: t
                    .mandate
                    .as_ref()
                    .map(|m| m.shared_bytes())
                    .unwrap_or_default(),
            }),
            Self::Agent(a) => Kind::Agent(AgentProto {
                chain: a.chain.to_bytes().into(),
                kem_public_key: a.kem_public_key.clone(),
                addrs: a.addrs.clone(),
            }),
        }
    }
}

impl Record {
    /// Signs a record. Fails if the record would not pass validation.
    pub fn create(
        author: &Keypair,
        genesis: &Genesis,
        issued_ms: u64,
        evidence: Evidence,
    ) -> Result<Self, EvidenceError> {
        let body = RecordBody {
            mesh: genesis.id().to_vec(),
            author: author.did().as_bytes().to_vec(),
            issued_ms,
            kind: Some(evidence.to_kind()),
        };
        // The links above an agent's own are its issuers' mandates, which
        // head the chains of many records: the record shares them.
        let issuers = match &evidence {
            Evidence::Agent(a) => a.chain.links().split_last().map_or(&[][..], |(_, up)| up),
            _ => &[],
        };
        Self::decode(
            SignedProto::seal(author, Domain::Evidence, &body).into(),
            genesis,
            Verify::Skip,
            issuers,
        )
    }

    /// Reads and validates a record for the mesh of `genesis`.
    pub fn from_bytes(bytes: &[u8], genesis: &Genesis) -> Result<Self, EvidenceError> {
        Self::decode(
            Bytes::copy_from_slice(bytes),
            genesis,
            Verify::Signature,
            &[],
        )
    }

    /// Reads a record; a mandate link whose bytes are those of one of
    /// `shared` is shared rather than decoded (see [`MandateChain::decode`]).
    fn decode(
        bytes: Bytes,
        genesis: &Genesis,
        verify: Verify,
        shared: &[Mandate],
    ) -> Result<Self, EvidenceError> {
        let envelope = SignedProto::open(bytes.clone(), RECORD_BYTES_MAX, WHAT)?;
        let body: RecordBody = envelope.body(WHAT)?;
        if body.mesh != genesis.id() {
            return Err(EvidenceError::WrongMesh);
        }
        let signer = wire::signer_field(&body.author, WHAT, "author")?;
        let author = signer.did();
        let kind = body
            .kind
            .ok_or_else(|| EvidenceError::Invalid("has no kind".into()))?;
        let evidence = decode_kind(kind, &author, body.issued_ms, genesis, verify, shared)?;
        if verify == Verify::Signature {
            envelope.verify(&signer, Domain::Evidence, WHAT)?;
        }
        Ok(Self {
            id: wire::sha256(&bytes),
            author,
            issued_ms: body.issued_ms,
            evidence,
            raw: bytes,
        })
    }

    /// The record's id.
    pub fn id(&self) -> RecordId {
        self.id
    }
    /// Who signed it.
    pub fn author(&self) -> Did {
        self.author
    }
    /// When its author says it was made (Unix ms).
    pub fn issued_ms(&self) -> u64 {
        self.issued_ms
    }
    /// What it says.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    /// The signed bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.raw
    }
}

fn text(value: String, field: &str) -> Result<String, EvidenceError> {
    match value.len() <= TEXT_BYTES_MAX {
        true => Ok(value),
        false => Err(EvidenceError::Invalid(format!(
            "{field} is longer than {TEXT_BYTES_MAX} bytes"
        ))),
    }
}

fn subject(bytes: &[u8], author: &Did) -> Result<Did, EvidenceError> {
    let subject = wire::did_field(bytes, WHAT, "subject")?;
    match subject == *author {
        true => Err(EvidenceError::Invalid(
            "an agent cannot report on itself".into(),
        )),
        false => Ok(subject),
    }
}

fn decode_kind(
    kind: Kind,
    author: &Did,
    issued_ms: u64,
    genesis: &Genesis,
    verify: Verify,
    shared: &[Mandate],
) -> Result<Evidence, EvidenceError> {
    let invalid = |why: &str| Err(EvidenceError::Invalid(why.to_string()));
    Ok(match kind {
        Kind::Outcome(o) => {
            if o.successes
                .checked_add(o.failures)
                .is_none_or(|n| n == 0 || n > u32::MAX as u64)
            {
                return invalid("an outcome summary counts 1..=2^32 tasks");
            }
            if o.failure_severity < o.failures
                || o.failure_severity > o.failures * SEVERITY_MAX as u64
            {
                return invalid("failure_severity must be between failures and 10 x failures");
            }
            Evidence::Outcome(Outcome {
                subject: subject(&o.subject, author)?,
                successes: o.successes,
                failures: o.failures,
                failure_severity: o.failure_severity,
                last_task: text(o.last_task, "last_task")?,
            })
        }
        Kind::Violation(v) => {
            if !(1..=SEVERITY_MAX).contains(&v.severity) {
                return invalid("violation severity must be 1..=10");
            }
            Evidence::Violation(Violation {
                subject: subject(&v.subject, author)?,
                rule: text(v.rule, "rule")?,
                severity: v.severity,
                task: text(v.task, "task")?,
            })
        }
        Kind::Vouch(v) => {
            if v.weight > VOUCH_WEIGHT_MAX {
                return invalid("vouch weight must be 0..=100");
            }
            if v.weight > 0 && v.expires_ms <= issued_ms {
                return invalid("a vouch must expire after it is issued");
            }
            Evidence::Vouch(Vouch {
                subject: subject(&v.subject, author)?,
                weight: v.weight,
                expires_ms: v.expires_ms,
            })
        }
        Kind::Revocation(r) => {
            let mandate = Mandate::decode(r.mandate, verify)?;
            if mandate.mesh() != genesis.id() {
                return Err(EvidenceError::WrongMesh);
            }
            if mandate.issuer() != *author && !genesis.is_governor(author) {
                return Err(EvidenceError::NotAuthorised(
                    "only the mandate's issuer or a governor may revoke it".into(),
                ));
            }
            Evidence::Revocation(Revocation {
                mandate,
                reason: text(r.reason, "reason")?,
            })
        }
        Kind::Termination(t) => {
            let subject = subject(&t.subject, author)?;
            let mandate = match t.mandate.is_empty() {
                true => None,
                false => Some(Mandate::decode(t.mandate, verify)?),
            };
            let principal = mandate.as_ref().is_some_and(|m| {
                m.issuer() == *author && m.subject() == subject && m.mesh() == genesis.id()
            });
            if !genesis.is_governor(author) && !principal {
                return Err(EvidenceError::NotAuthorised(
                    "only a governor or the agent's principal (showing the mandate it issued) may terminate an agent"
                        .into(),
                ));
            }
            Evidence::Termination(Termination {
                subject,
                reason: text(t.reason, "reason")?,
                mandate,
            })
        }
        Kind::Agent(a) => {
            let chain = MandateChain::decode(a.chain, verify, shared)?;
            let authority = chain.verify_structure(genesis)?;
            if authority.agent != *author {
                return Err(EvidenceError::NotAuthorised(
                    "an agent record must be signed by the agent itself".into(),
                ));
            }
            if a.kem_public_key.len() > KEM_KEY_BYTES_MAX || a.addrs.len() > ADDRS_MAX {
                return invalid("agent record: KEM key at most 2048 bytes and at most 8 addresses");
            }
            let addrs = a
                .addrs
                .into_iter()
                .map(|s| text(s, "addr"))
                .collect::<Result<_, _>>()?;
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: a.kem_public_key,
                addrs,
            })
        }
    })
}
