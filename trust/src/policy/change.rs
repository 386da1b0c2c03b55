//! Signed policy change envelopes.
//!
//! An automerge change travels inside an envelope signed by a governor, and
//! the change's actor id must be that governor's key, so a change can be
//! attributed and a governor cannot write under another's name. Nothing
//! else can change the policy document.

use automerge::{ActorId, Change, ChangeHash};
use prost::Message;

use crate::did::Did;
use crate::genesis::Genesis;
use crate::keys::{Domain, Keypair};
use crate::wire::{self, DecodeError, SignedProto};

/// Largest policy change envelope, in bytes.
pub const CHANGE_BYTES_MAX: usize = 256 * 1024;
const WHAT: &str = "policy change";

/// Why a policy change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Not a well-formed, correctly signed envelope.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Made for another mesh.
    #[error("policy change is for another mesh")]
    WrongMesh,
    /// Signed by someone who is not a governor.
    #[error("policy change signed by {0}, who is not a governor of this mesh")]
    NotGovernor(Did),
    /// The automerge change cannot be read.
    #[error("policy change does not hold a valid automerge change: {0}")]
    BadChange(String),
    /// The change's actor id is not its signer's key.
    #[error("policy change was written under another actor id than its signer's")]
    ActorMismatch,
}

#[derive(Clone, PartialEq, Message)]
struct ChangeBody {
    #[prost(bytes = "vec", tag = "1")]
    mesh: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    author: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    change: Vec<u8>,
}

/// A verified policy change.
#[derive(Debug, Clone)]
pub struct PolicyChange {
    author: Did,
    change: Change,
    raw: Vec<u8>,
}

impl PolicyChange {
    /// Wraps and signs an automerge change made by `governor`.
    pub fn seal(
        governor: &Keypair,
        genesis: &Genesis,
        change: &Change,
    ) -> Result<Self, ChangeError> {
        let body = ChangeBody {
            mesh: genesis.id().to_vec(),
            author: governor.did().as_bytes().to_vec(),
            change: change.raw_bytes().to_vec(),
        };
        Self::from_bytes(
            &SignedProto::seal(governor, Domain::PolicyChange, &body),
            genesis,
        )
    }

    /// Reads and verifies an envelope for the mesh of `genesis`.
    pub fn from_bytes(bytes: &[u8], genesis: &Genesis) -> Result<Self, ChangeError> {
        let envelope = SignedProto::open(bytes, CHANGE_BYTES_MAX, WHAT)?;
        let body: ChangeBody = envelope.body(WHAT)?;
        if body.mesh != genesis.id() {
            return Err(ChangeError::WrongMesh);
        }
        let signer = wire::signer_field(&body.author, WHAT, "author")?;
        let author = signer.did();
        if !genesis.is_governor(&author) {
            return Err(ChangeError::NotGovernor(author));
        }
        envelope.verify(&signer, Domain::PolicyChange, WHAT)?;
        let change =
            Change::from_bytes(body.change).map_err(|e| ChangeError::BadChange(e.to_string()))?;
        if *change.actor_id() != actor_of(&author) {
            return Err(ChangeError::ActorMismatch);
        }
        Ok(Self {
            author,
            change,
            raw: bytes.to_vec(),
        })
    }

    /// The signed bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.raw
    }
    /// The governor who made it.
    pub fn author(&self) -> Did {
        self.author
    }
    /// The automerge change hash.
    pub fn hash(&self) -> ChangeHash {
        self.change.hash()
    }
    /// The changes it depends on.
    pub fn deps(&self) -> &[ChangeHash] {
        self.change.deps()
    }
    pub(super) fn change(&self) -> &Change {
        &self.change
    }
}

/// The automerge actor id a governor writes under: its key bytes.
pub fn actor_of(did: &Did) -> ActorId {
    ActorId::from(did.as_bytes().as_slice())
}
