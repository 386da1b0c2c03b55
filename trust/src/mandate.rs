//! Mandates: signed delegations principal -> agent -> sub-agent.
//!
//! A mandate says "issuer lets subject act within scope, between not-before
//! and expiry, in this mesh". A chain starts at a governor named in the
//! genesis and ends at the agent. It verifies only if every link is signed
//! by its issuer, issued by the previous link's subject, names its parent by
//! hash, stays within its parent's scope (attenuation), is granted by a
//! `delegate(N)` with room left, is in time, and nothing in it has been
//! revoked or terminated. Links carry the exact bytes that were signed.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::did::Did;
use crate::genesis::{Genesis, MeshId};
use crate::keys::{Domain, Keypair};
use crate::scope::{Capability, Scope, ScopeError};
use crate::wire::{self, DecodeError, Hash, SignedProto, Verify};

/// Largest encoded mandate link, in bytes.
pub const MANDATE_BYTES_MAX: usize = 8 * 1024;
/// Largest encoded chain, in bytes.
pub const CHAIN_BYTES_MAX: usize = 16 * MANDATE_BYTES_MAX;
/// Length of a mandate nonce.
pub const NONCE_BYTES: usize = 16;
const WHAT: &str = "mandate";

/// The id of a mandate: SHA-256 of its signed envelope.
pub type MandateId = Hash;

/// Where revocations and terminations are looked up while verifying.
pub trait RevocationCheck {
    /// Whether the mandate has been revoked.
    fn is_revoked(&self, mandate: &MandateId) -> bool;
    /// Whether the identity has been terminated (kill switch).
    fn is_terminated(&self, did: &Did) -> bool;
}

/// No revocations known: for checking a chain before any evidence exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocations;

impl RevocationCheck for NoRevocations {
    fn is_revoked(&self, _: &MandateId) -> bool {
        false
    }
    fn is_terminated(&self, _: &Did) -> bool {
        false
    }
}

/// Why a mandate or chain does not verify. `link` counts from 0 at the
/// governor's link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MandateError {
    /// The bytes are not a mandate, or its signature fails.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A scope string is invalid.
    #[error("link {link}: {source}")]
    Scope {
        /// Which link.
        link: usize,
        /// The scope problem.
        source: ScopeError,
    },
    /// The chain has no links.
    #[error("the mandate chain is empty")]
    Empty,
    /// More links than the mesh allows.
    #[error("the mandate chain has {len} links; this mesh allows at most {max}")]
    TooDeep {
        /// Links present.
        len: usize,
        /// Links allowed.
        max: usize,
    },
    /// Issued for another mesh.
    #[error("link {link} is for another mesh (its genesis differs from this mesh's)")]
    WrongMesh {
        /// Which link.
        link: usize,
    },
    /// The first link is not issued by a governor.
    #[error("the chain starts at {0}, which is not a governor of this mesh")]
    NotRootedAtGovernor(Did),
    /// A link issued to itself.
    #[error("link {link}: issuer and subject are the same identity")]
    SelfIssued {
        /// Which link.
        link: usize,
    },
    /// A link's issuer is not the previous link's subject.
    #[error("link {link} is issued by {issuer}, but the previous link was granted to {expected}")]
    BrokenLink {
        /// Which link.
        link: usize,
        /// Its issuer.
        issuer: Did,
        /// Who it should be issued by.
        expected: Did,
    },
    /// A link's parent hash does not name the previous link.
    #[error("link {link} does not name the previous link as its parent")]
    ParentMismatch {
        /// Which link.
        link: usize,
    },
    /// The previous link grants no `delegate(N)`.
    #[error("link {link}: its issuer holds no delegate capability")]
    NoDelegation {
        /// Which link.
        link: usize,
    },
    /// A link grants a capability its parent does not hold.
    #[error("link {link} grants `{capability}`, which its parent does not hold")]
    Escalation {
        /// Which link.
        link: usize,
        /// The capability granted beyond the parent's.
        capability: String,
    },
    /// A link grants deeper delegation than its parent left room for.
    #[error(
        "link {link} grants delegate({granted}) but its parent allows at most delegate({allowed})"
    )]
    DelegationTooDeep {
        /// Which link.
        link: usize,
        /// Depth granted.
        granted: u8,
        /// Depth allowed.
        allowed: u8,
    },
    /// The validity window is empty.
    #[error("link {link}: not-before is not before expiry")]
    EmptyWindow {
        /// Which link.
        link: usize,
    },
    /// A link expires after its parent.
    #[error("link {link} expires after its parent")]
    OutlivesParent {
        /// Which link.
        link: usize,
    },
    /// A link is not valid yet.
    #[error("link {link} is not valid until {not_before_ms} ms (now {now_ms} ms)")]
    NotYetValid {
        /// Which link.
        link: usize,
        /// When it becomes valid.
        not_before_ms: u64,
        /// The time checked.
        now_ms: u64,
    },
    /// A link has expired.
    #[error("link {link} expired at {expires_ms} ms (now {now_ms} ms)")]
    Expired {
        /// Which link.
        link: usize,
        /// When it expired.
        expires_ms: u64,
        /// The time checked.
        now_ms: u64,
    },
    /// A link has been revoked.
    #[error("link {link} has been revoked")]
    Revoked {
        /// Which link.
        link: usize,
    },
    /// An identity in the chain has been terminated.
    #[error("{0} has been terminated by the kill switch")]
    Terminated(Did),
}

#[derive(Clone, PartialEq, Message)]
struct MandateBody {
    #[prost(bytes = "vec", tag = "1")]
    mesh: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    issuer: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    subject: Vec<u8>,
    #[prost(string, repeated, tag = "4")]
    scope: Vec<String>,
    #[prost(uint64, tag = "5")]
    not_before_ms: u64,
    #[prost(uint64, tag = "6")]
    expires_ms: u64,
    #[prost(bytes = "vec", tag = "7")]
    nonce: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    parent: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ChainProto {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    links: Vec<Bytes>,
}

/// What a new mandate grants.
#[derive(Debug, Clone)]
pub struct MandateSpec {
    /// The mesh it is for.
    pub mesh: MeshId,
    /// Who receives it.
    pub subject: Did,
    /// What it allows.
    pub scope: Scope,
    /// Valid from (Unix ms).
    pub not_before_ms: u64,
    /// Valid until (Unix ms, exclusive).
    pub expires_ms: u64,
    /// Random bytes making each mandate unique.
    pub nonce: [u8; NONCE_BYTES],
}

/// One signed delegation link. A clone shares it: an organisation's
/// mandate heads the chain of every agent it authorised, and a simulated
/// million agents' records share one decoded copy (see
/// [`MandateChain::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate(Arc<Link>);

/// A mandate's fields, read from its signed bytes.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    id: MandateId,
    mesh: MeshId,
    issuer: Did,
    subject: Did,
    scope: Scope,
    not_before_ms: u64,
    expires_ms: u64,
    parent: Option<MandateId>,
    raw: Bytes,
}

impl Mandate {
    /// Signs a mandate; `parent` is the issuer's own mandate, if the issuer is
    /// not a governor.
    pub fn issue(issuer: &Keypair, spec: &MandateSpec, parent: Option<&Mandate>) -> Self {
        let body = MandateBody {
            mesh: spec.mesh.to_vec(),
            issuer: issuer.did().as_bytes().to_vec(),
            subject: spec.subject.as_bytes().to_vec(),
            scope: spec.scope.to_strings(),
            not_before_ms: spec.not_before_ms,
            expires_ms: spec.expires_ms,
            nonce: spec.nonce.to_vec(),
            parent: parent.map(|p| p.id().to_vec()).unwrap_or_default(),
        };
        Self::decode(
            SignedProto::seal(issuer, Domain::Mandate, &body).into(),
            Verify::Skip,
        )
        .unwrap_or_else(|e| unreachable!("a freshly signed mandate decodes: {e}"))
    }

    /// Reads one link and checks its signature by its issuer.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MandateError> {
        Self::decode(Bytes::copy_from_slice(bytes), Verify::Signature)
    }

    /// Reads one link from `bytes`, which it keeps as its signed form: a
    /// link read out of a larger object (a chain, an evidence record) is a
    /// view of that object's bytes, not a second copy of its own.
    pub(crate) fn decode(bytes: Bytes, verify: Verify) -> Result<Self, MandateError> {
        let envelope = SignedProto::open(bytes.clone(), MANDATE_BYTES_MAX, WHAT)?;
        let body: MandateBody = envelope.body(WHAT)?;
        let signer = wire::signer_field(&body.issuer, WHAT, "issuer")?;
        let issuer = signer.did();
        let subject = wire::did_field(&body.subject, WHAT, "subject")?;
        let mesh = wire::hash_field(&body.mesh, WHAT, "mesh")?;
        let parent = match body.parent.is_empty() {
            true => None,
            false => Some(wire::hash_field(&body.parent, WHAT, "parent")?),
        };
        if body.nonce.len() != NONCE_BYTES {
            return Err(DecodeError::Field {
                what: WHAT,
                field: "nonce",
                reason: "must be 16 bytes".into(),
            }
            .into());
        }
        let scope =
            Scope::parse(&body.scope).map_err(|source| MandateError::Scope { link: 0, source })?;
        if verify == Verify::Signature {
            envelope.verify(&signer, Domain::Mandate, WHAT)?;
        }
        Ok(Self(Arc::new(Link {
            id: wire::sha256(&bytes),
            mesh,
            issuer,
            subject,
            scope,
            not_before_ms: body.not_before_ms,
            expires_ms: body.expires_ms,
            parent,
            raw: bytes,
        })))
    }

    /// The signed bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.0.raw
    }

    /// Whether `other` is this very copy (not merely equal).
    #[cfg(test)]
    pub(crate) fn is_same_copy(&self, other: &Mandate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The signed bytes, shared: a record carrying this link encodes it
    /// without a copy.
    pub(crate) fn shared_bytes(&self) -> Bytes {
        self.0.raw.clone()
    }

    /// This link's id.
    pub fn id(&self) -> MandateId {
        self.0.id
    }
    /// The mesh it is for.
    pub fn mesh(&self) -> MeshId {
        self.0.mesh
    }
    /// Who signed it.
    pub fn issuer(&self) -> Did {
        self.0.issuer
    }
    /// Who it is for.
    pub fn subject(&self) -> Did {
        self.0.subject
    }
    /// What it allows.
    pub fn scope(&self) -> &Scope {
        &self.0.scope
    }
    /// Valid from (Unix ms).
    pub fn not_before_ms(&self) -> u64 {
        self.0.not_before_ms
    }
    /// Valid until (Unix ms, exclusive).
    pub fn expires_ms(&self) -> u64 {
        self.0.expires_ms
    }
    /// The parent link's id.
    pub fn parent(&self) -> Option<MandateId> {
        self.0.parent
    }
}

/// What a verified chain establishes about its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The agent (the last link's subject).
    pub agent: Did,
    /// Who authorised the agent (the last link's issuer).
    pub principal: Did,
    /// The governor the chain starts at.
    pub governor: Did,
    /// What the agent may do.
    pub scope: Scope,
    /// When the first link becomes valid (Unix ms).
    pub not_before_ms: u64,
    /// When the chain stops being valid: the earliest expiry (Unix ms).
    pub expires_ms: u64,
    /// Link ids, governor's first.
    pub links: Vec<MandateId>,
}

/// A chain of mandates from a governor to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateChain(Vec<Mandate>);

impl MandateChain {
    /// A chain of these links, governor's first.
    pub fn new(links: Vec<Mandate>) -> Self {
        Self(links)
    }

    /// The links, governor's first.
    pub fn links(&self) -> &[Mandate] {
        &self.0
    }

    /// The agent's own link.
    pub fn leaf(&self) -> Option<&Mandate> {
        self.0.last()
    }

    /// This chain extended by `link`.
    pub fn extended(&self, link: Mandate) -> Self {
        let mut links = self.0.clone();
        links.push(link);
        Self(links)
    }

    /// Encodes the chain.
    pub fn to_bytes(&self) -> Vec<u8> {
        ChainProto {
            links: self.0.iter().map(|m| m.shared_bytes()).collect(),
        }
        .encode_to_vec()
    }

    /// Reads a chain and checks each link's signature (not yet the chain rules).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MandateError> {
        Self::decode(Bytes::copy_from_slice(bytes), Verify::Signature, &[])
    }

    /// Reads a chain whose links stay views of `bytes` (see
    /// [`Mandate::decode`]), except a link whose bytes are those of one of
    /// `shared`: that one is shared instead of decoded again.
    pub(crate) fn decode(
        bytes: Bytes,
        verify: Verify,
        shared: &[Mandate],
    ) -> Result<Self, MandateError> {
        let proto: ChainProto = wire::decode_capped(bytes, CHAIN_BYTES_MAX, "mandate chain")?;
        if proto.links.len() > 16 {
            return Err(MandateError::TooDeep {
                len: proto.links.len(),
                max: 16,
            });
        }
        // At its exact size: collecting through `Result` starts at room for
        // four links, and every agent record holds a chain.
        let mut links = Vec::with_capacity(proto.links.len());
        for (link, bytes) in proto.links.into_iter().enumerate() {
            if let Some(known) = shared.iter().find(|m| m.0.raw == bytes) {
                links.push(known.clone());
                continue;
            }
            links.push(Mandate::decode(bytes, verify).map_err(|e| match e {
                MandateError::Scope { source, .. } => MandateError::Scope { link, source },
                other => other,
            })?);
        }
        Ok(Self(links))
    }

    /// Checks the rules that do not depend on time or revocation: mesh, depth,
    /// governor root, linkage, attenuation and delegation depth.
    pub fn verify_structure(&self, genesis: &Genesis) -> Result<Authority, MandateError> {
        let max = genesis.params().chain_depth_max as usize;
        let (first, last) = match (self.0.first(), self.0.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => return Err(MandateError::Empty),
        };
        if self.0.len() > max {
            return Err(MandateError::TooDeep {
                len: self.0.len(),
                max,
            });
        }
        if !genesis.is_governor(&first.issuer()) {
            return Err(MandateError::NotRootedAtGovernor(first.issuer()));
        }
        for (link, m) in self.0.iter().enumerate() {
            if m.mesh() != genesis.id() {
                return Err(MandateError::WrongMesh { link });
            }
            if m.issuer() == m.subject() {
                return Err(MandateError::SelfIssued { link });
            }
            if m.not_before_ms() >= m.expires_ms() {
                return Err(MandateError::EmptyWindow { link });
            }
        }
        if first.parent().is_some() {
            return Err(MandateError::ParentMismatch { link: 0 });
        }
        for (index, pair) in self.0.windows(2).enumerate() {
            check_link(index + 1, &pair[0], &pair[1])?;
        }
        Ok(Authority {
            agent: last.subject(),
            principal: last.issuer(),
            governor: first.issuer(),
            scope: last.scope().clone(),
            not_before_ms: self.0.iter().map(|m| m.not_before_ms()).max().unwrap_or(0),
            expires_ms: self.0.iter().map(|m| m.expires_ms()).min().unwrap_or(0),
            links: self.0.iter().map(|m| m.id()).collect(),
        })
    }

    /// Verifies the whole chain at `now_ms` against revocations and terminations.
    pub fn verify(
        &self,
        genesis: &Genesis,
        now_ms: u64,
        revocations: &impl RevocationCheck,
    ) -> Result<Authority, MandateError> {
        let authority = self.verify_structure(genesis)?;
        check_current(&self.0, now_ms, revocations)?;
        Ok(authority)
    }
}

/// Checks time windows, revocations and terminations of structurally valid links.
pub fn check_current(
    links: &[Mandate],
    now_ms: u64,
    revocations: &impl RevocationCheck,
) -> Result<(), MandateError> {
    for (link, m) in links.iter().enumerate() {
        if now_ms < m.not_before_ms() {
            return Err(MandateError::NotYetValid {
                link,
                not_before_ms: m.not_before_ms(),
                now_ms,
            });
        }
        if now_ms >= m.expires_ms() {
            return Err(MandateError::Expired {
                link,
                expires_ms: m.expires_ms(),
                now_ms,
            });
        }
        if revocations.is_revoked(&m.id()) {
            return Err(MandateError::Revoked { link });
        }
        for did in [m.issuer(), m.subject()] {
            if revocations.is_terminated(&did) {
                return Err(MandateError::Terminated(did));
            }
        }
    }
    Ok(())
}

fn check_link(link: usize, parent: &Mandate, child: &Mandate) -> Result<(), MandateError> {
    if child.issuer() != parent.subject() {
        return Err(MandateError::BrokenLink {
            link,
            issuer: child.issuer(),
            expected: parent.subject(),
        });
    }
    if child.parent() != Some(parent.id()) {
        return Err(MandateError::ParentMismatch { link });
    }
    let allowed = parent.scope().delegate_depth();
    if allowed == 0 {
        return Err(MandateError::NoDelegation { link });
    }
    let granted = child.scope().delegate_depth();
    if granted >= allowed {
        return Err(MandateError::DelegationTooDeep {
            link,
            granted,
            allowed: allowed - 1,
        });
    }
    let undelegated: Vec<Capability> = child
        .scope()
        .capabilities()
        .iter()
        .filter(|c| !matches!(c, Capability::Delegate(_)))
        .cloned()
        .collect();
    let narrowed =
        Scope::new(undelegated).map_err(|source| MandateError::Scope { link, source })?;
    if let Some(capability) = narrowed.first_outside(parent.scope()) {
        return Err(MandateError::Escalation {
            link,
            capability: capability.to_string(),
        });
    }
    if child.expires_ms() > parent.expires_ms() {
        return Err(MandateError::OutlivesParent { link });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::genesis::{GenesisSpec, Params};

    pub(crate) struct World {
        pub genesis: Genesis,
        pub governor: Keypair,
        pub org: Keypair,
        pub agent: Keypair,
        pub sub: Keypair,
    }

    pub(crate) fn world() -> World {
        let governor = Keypair::from_secret_bytes(&[1; 32]);
        let spec = GenesisSpec {
            name: "t".into(),
            other_governors: vec![],
            created_ms: 0,
            params: Params::default(),
        };
        World {
            genesis: Genesis::create(&governor, spec).unwrap(),
            governor,
            org: Keypair::from_secret_bytes(&[2; 32]),
            agent: Keypair::from_secret_bytes(&[3; 32]),
            sub: Keypair::from_secret_bytes(&[4; 32]),
        }
    }

    pub(crate) fn spec(w: &World, subject: Did, scope: &[&str], expires_ms: u64) -> MandateSpec {
        MandateSpec {
            mesh: w.genesis.id(),
            subject,
            scope: Scope::parse(scope).unwrap(),
            not_before_ms: 100,
            expires_ms,
            nonce: [9; NONCE_BYTES],
        }
    }

    /// governor -> org -> agent -> sub-agent.
    pub(crate) fn chain(w: &World) -> MandateChain {
        let org = Mandate::issue(
            &w.governor,
            &spec(
                w,
                w.org.did(),
                &["publish:*", "vouch", "delegate(3)"],
                10_000,
            ),
            None,
        );
        let agent = Mandate::issue(
            &w.org,
            &spec(
                w,
                w.agent.did(),
                &["publish:billing.*", "delegate(1)"],
                9_000,
            ),
            Some(&org),
        );
        let sub = Mandate::issue(
            &w.agent,
            &spec(w, w.sub.did(), &["publish:billing.invoices"], 8_000),
            Some(&agent),
        );
        MandateChain::new(vec![org, agent, sub])
    }

    #[test]
    fn a_good_chain_verifies_and_round_trips() {
        let w = world();
        let chain = chain(&w);
        let authority = chain.verify(&w.genesis, 500, &NoRevocations).unwrap();
        assert_eq!(authority.agent, w.sub.did());
        assert_eq!(authority.principal, w.agent.did());
        assert_eq!(authority.governor, w.governor.did());
        assert_eq!(authority.scope.to_string(), "publish:billing.invoices");
        assert_eq!(authority.expires_ms, 8_000);
        assert_eq!(MandateChain::from_bytes(&chain.to_bytes()).unwrap(), chain);
    }

    #[test]
    fn time_is_checked_per_link() {
        let w = world();
        let chain = chain(&w);
        assert_eq!(
            chain.verify(&w.genesis, 50, &NoRevocations),
            Err(MandateError::NotYetValid {
                link: 0,
                not_before_ms: 100,
                now_ms: 50
            })
        );
        assert_eq!(
            chain.verify(&w.genesis, 8_500, &NoRevocations),
            Err(MandateError::Expired {
                link: 2,
                expires_ms: 8_000,
                now_ms: 8_500
            })
        );
    }

    #[test]
    fn over_scoped_and_too_deep_links_are_refused() {
        let w = world();
        let base = chain(&w);
        let [org, agent, _] = base.links() else {
            unreachable!()
        };
        let wide = Mandate::issue(
            &w.agent,
            &spec(&w, w.sub.did(), &["publish:*"], 8_000),
            Some(agent),
        );
        assert_eq!(
            MandateChain::new(vec![org.clone(), agent.clone(), wide]).verify(
                &w.genesis,
                500,
                &NoRevocations
            ),
            Err(MandateError::Escalation {
                link: 2,
                capability: "publish:*".into()
            })
        );
        let deep = Mandate::issue(
            &w.agent,
            &spec(&w, w.sub.did(), &["delegate(1)"], 8_000),
            Some(agent),
        );
        assert_eq!(
            MandateChain::new(vec![org.clone(), agent.clone(), deep]).verify(
                &w.genesis,
                500,
                &NoRevocations
            ),
            Err(MandateError::DelegationTooDeep {
                link: 2,
                granted: 1,
                allowed: 0
            })
        );
        let late = Mandate::issue(
            &w.agent,
            &spec(&w, w.sub.did(), &["publish:billing.x"], 9_500),
            Some(agent),
        );
        assert_eq!(
            MandateChain::new(vec![org.clone(), agent.clone(), late]).verify(
                &w.genesis,
                500,
                &NoRevocations
            ),
            Err(MandateError::OutlivesParent { link: 2 })
        );
        let short_params = Params {
            chain_depth_max: 2,
            ..Params::default()
        };
        let spec2 = GenesisSpec {
            name: "t".into(),
            other_governors: vec![],
            created_ms: 0,
            params: short_params,
        };
        let small = Genesis::create(&w.governor, spec2).unwrap();
        assert_eq!(
            base.verify(&small, 500, &NoRevocations),
            Err(MandateError::TooDeep { len: 3, max: 2 })
        );
    }

    #[test]
    fn chains_must_start_at_a_governor_and_link_up() {
        let w = world();
        let rogue = Mandate::issue(
            &w.org,
            &spec(&w, w.agent.did(), &["publish:*"], 9_000),
            None,
        );
        assert_eq!(
            MandateChain::new(vec![rogue]).verify(&w.genesis, 500, &NoRevocations),
            Err(MandateError::NotRootedAtGovernor(w.org.did()))
        );
        let base = chain(&w);
        let [org, _, sub] = base.links() else {
            unreachable!()
        };
        assert!(matches!(
            MandateChain::new(vec![org.clone(), sub.clone()]).verify(
                &w.genesis,
                500,
                &NoRevocations
            ),
            Err(MandateError::BrokenLink { link: 1, .. })
        ));
        assert_eq!(
            MandateChain::new(vec![]).verify(&w.genesis, 500, &NoRevocations),
            Err(MandateError::Empty)
        );
    }

    #[test]
    fn forged_and_truncated_links_are_refused() {
        let w = world();
        let base = chain(&w);
        let bytes = base.links()[1].to_bytes().to_vec();
        let mut envelope = SignedProto::open(bytes.as_slice(), MANDATE_BYTES_MAX, WHAT).unwrap();
        let mut body: MandateBody = envelope.body(WHAT).unwrap();
        body.scope = vec!["publish:*".into(), "delegate(8)".into()];
        envelope.body = body.encode_to_vec().into();
        assert!(matches!(
            Mandate::from_bytes(&envelope.encode_to_vec()),
            Err(MandateError::Decode(DecodeError::Signature { .. }))
        ));
        assert!(Mandate::from_bytes(&bytes[..bytes.len() - 3]).is_err());
    }

    struct Revoked(MandateId, Option<Did>);
    impl RevocationCheck for Revoked {
        fn is_revoked(&self, m: &MandateId) -> bool {
            *m == self.0
        }
        fn is_terminated(&self, d: &Did) -> bool {
            Some(*d) == self.1
        }
    }

    #[test]
    fn revocation_and_termination_end_a_chain() {
        let w = world();
        let chain = chain(&w);
        let agent_link = chain.links()[1].id();
        assert_eq!(
            chain.verify(&w.genesis, 500, &Revoked(agent_link, None)),
            Err(MandateError::Revoked { link: 1 })
        );
        assert_eq!(
            chain.verify(&w.genesis, 500, &Revoked([0; 32], Some(w.agent.did()))),
            Err(MandateError::Terminated(w.agent.did()))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Mandate::from_bytes(&bytes);
            let _ = MandateChain::from_bytes(&bytes);
        }
    }
}
