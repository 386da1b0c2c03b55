//! The genesis document: the one signed statement that names a mesh.
//!
//! It lists the governors (the root principals), the score parameters and
//! the initial policy document. The SHA-256 of its signed body is the mesh
//! id: nodes with different genesis documents refuse each other, and every
//! mandate, record and policy change names the mesh it belongs to. There is
//! no other authority.

use prost::Message;

use crate::did::Did;
use crate::keys::{Domain, Keypair};
use crate::wire::{self, DecodeError, Hash, SignedProto};

/// Largest genesis document accepted, in bytes (it carries the initial policy).
pub const GENESIS_BYTES_MAX: usize = 1 << 20;
/// Most governors a mesh can name.
pub const GOVERNORS_MAX: usize = 64;
const WHAT: &str = "genesis";

/// A mesh id: the SHA-256 of the genesis body.
pub type MeshId = Hash;

/// The parameters of the score function, fixed for the life of a mesh.
///
/// Scores are in points (0..=1000); weights are in thousandths ("milli").
/// `Params::default()` gives the defaults written on each field.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Params {
    /// Length of a score epoch; decay steps once per epoch.
    #[prost(uint64, tag = "1", default = "3600000")]
    pub epoch_ms: u64,
    /// Longest mandate chain, governor link included.
    #[prost(uint32, tag = "2", default = "4")]
    pub chain_depth_max: u32,
    /// Starting score of an agent with a valid mandate chain (probationary).
    #[prost(uint32, tag = "3", default = "400")]
    pub newcomer_score: u32,
    /// Score of an identity with no valid mandate chain (untrusted).
    #[prost(uint32, tag = "4", default = "100")]
    pub unanchored_score: u32,
    /// Most points outcome behaviour can add or take away.
    #[prost(uint32, tag = "5", default = "400")]
    pub behaviour_span: u32,
    /// Prior mass: how many weighted outcomes it takes to move halfway.
    #[prost(uint32, tag = "6", default = "8")]
    pub prior_outcomes: u32,
    /// Half-life of outcome evidence, in epochs.
    #[prost(uint32, tag = "7", default = "168")]
    pub outcome_half_life_epochs: u32,
    /// Half-life of violations, in epochs (long: slow to forgive).
    #[prost(uint32, tag = "8", default = "720")]
    pub violation_half_life_epochs: u32,
    /// Points one violation of severity 1 costs at full witness weight.
    #[prost(uint32, tag = "9", default = "60")]
    pub violation_points: u32,
    /// Points a full-weight vouch from a full-weight voucher adds.
    #[prost(uint32, tag = "10", default = "100")]
    pub vouch_points: u32,
    /// Most points vouches can add in total.
    #[prost(uint32, tag = "11", default = "150")]
    pub vouch_cap: u32,
    /// Rounds of trust propagation from the governors.
    #[prost(uint32, tag = "12", default = "6")]
    pub iterations: u32,
    /// Weight (milli) of a violation reported by an anchored witness that has
    /// not yet earned reporter weight.
    #[prost(uint32, tag = "13", default = "250")]
    pub witness_floor_milli: u32,
}

impl Params {
    /// Checks every parameter is in its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str); 10] = [
            (self.epoch_ms >= 1_000, "epoch_ms must be at least 1000"),
            (
                (1..=16).contains(&self.chain_depth_max),
                "chain_depth_max must be 1..=16",
            ),
            (
                self.newcomer_score < 1000,
                "newcomer_score must be below 1000",
            ),
            (
                self.unanchored_score <= self.newcomer_score,
                "unanchored_score must not exceed newcomer_score",
            ),
            (
                self.behaviour_span <= 1000,
                "behaviour_span must be at most 1000",
            ),
            (
                self.prior_outcomes >= 1,
                "prior_outcomes must be at least 1",
            ),
            (
                self.outcome_half_life_epochs >= 1 && self.violation_half_life_epochs >= 1,
                "half-lives must be at least 1 epoch",
            ),
            (
                self.vouch_cap <= 1000 && self.violation_points <= 1000,
                "points must be at most 1000",
            ),
            (
                (1..=32).contains(&self.iterations),
                "iterations must be 1..=32",
            ),
            (
                self.witness_floor_milli <= 1000,
                "witness_floor_milli must be at most 1000",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err((*why).to_string()),
            None => Ok(()),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct GenesisBody {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    governors: Vec<Vec<u8>>,
    #[prost(uint64, tag = "3")]
    created_ms: u64,
    #[prost(message, optional, tag = "4")]
    params: Option<Params>,
    #[prost(bytes = "vec", tag = "5")]
    policy: Vec<u8>,
}

/// A verified genesis document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    id: MeshId,
    name: String,
    governors: Vec<Did>,
    created_ms: u64,
    params: Params,
    policy: Vec<u8>,
    raw: Vec<u8>,
}

/// What a new genesis document says.
#[derive(Debug, Clone)]
pub struct GenesisSpec {
    /// A human name for the mesh.
    pub name: String,
    /// Governors besides the creator.
    pub other_governors: Vec<Did>,
    /// When it was made (Unix ms).
    pub created_ms: u64,
    /// Score parameters.
    pub params: Params,
}

impl Genesis {
    /// Creates and signs a genesis document. The creator is the first governor,
    /// and also writes the initial policy document.
    pub fn create(creator: &Keypair, spec: GenesisSpec) -> Result<Self, DecodeError> {
        let mut governors = vec![creator.did()];
        governors.extend(spec.other_governors.iter().filter(|g| **g != creator.did()));
        let policy = crate::policy::initial_document(&creator.did(), spec.created_ms);
        let body = GenesisBody {
            name: spec.name,
            governors: governors.iter().map(|g| g.as_bytes().to_vec()).collect(),
            created_ms: spec.created_ms,
            params: Some(spec.params),
            policy,
        };
        Self::from_bytes(&SignedProto::seal(creator, Domain::Genesis, &body))
    }

    /// Reads and verifies a genesis document: well-formed, sane parameters,
    /// a loadable policy, and signed by its first governor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope = SignedProto::open(bytes, GENESIS_BYTES_MAX, WHAT)?;
        let body: GenesisBody = envelope.body(WHAT)?;
        let field = |field: &'static str, reason: String| DecodeError::Field {
            what: WHAT,
            field,
            reason,
        };
        if body.governors.is_empty() || body.governors.len() > GOVERNORS_MAX {
            return Err(field(
                "governors",
                format!("must list 1..={GOVERNORS_MAX} governors"),
            ));
        }
        let governors = body
            .governors
            .iter()
            .map(|g| wire::did_field(g, WHAT, "governors"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut unique = governors.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != governors.len() {
            return Err(field("governors", "lists a governor twice".into()));
        }
        if body.name.is_empty() || body.name.len() > 128 {
            return Err(field("name", "must be 1..=128 bytes".into()));
        }
        let params = body
            .params
            .ok_or_else(|| field("params", "is missing".into()))?;
        params.validate().map_err(|why| field("params", why))?;
        crate::policy::Policy::load(&body.policy).map_err(|e| field("policy", e.to_string()))?;
        envelope.verify(&(&governors[0]).into(), Domain::Genesis, WHAT)?;
        Ok(Self {
            id: wire::sha256(&envelope.body),
            name: body.name,
            governors: unique,
            created_ms: body.created_ms,
            params,
            policy: body.policy,
            raw: bytes.to_vec(),
        })
    }

    /// The signed bytes, as stored and sent.
    pub fn to_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The mesh id.
    pub fn id(&self) -> MeshId {
        self.id
    }

    /// The mesh's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The governors, sorted by key bytes.
    pub fn governors(&self) -> &[Did] {
        &self.governors
    }

    /// Whether `did` is a governor.
    pub fn is_governor(&self, did: &Did) -> bool {
        self.governors.binary_search(did).is_ok()
    }

    /// When the mesh was created (Unix ms).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// Score parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The initial policy document (automerge bytes).
    pub fn policy_bytes(&self) -> &[u8] {
        &self.policy
    }

    /// The score epoch containing `time_ms`.
    pub fn epoch_at(&self, time_ms: u64) -> u64 {
        time_ms / self.params.epoch_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> GenesisSpec {
        GenesisSpec {
            name: "test".into(),
            other_governors: vec![],
            created_ms: 1_000,
            params: Params::default(),
        }
    }

    #[test]
    fn genesis_round_trips_and_names_the_mesh() {
        let creator = Keypair::from_secret_bytes(&[1; 32]);
        let other = Keypair::from_secret_bytes(&[2; 32]).did();
        let genesis = Genesis::create(
            &creator,
            GenesisSpec {
                other_governors: vec![other],
                ..spec()
            },
        )
        .unwrap();
        let again = Genesis::from_bytes(genesis.to_bytes()).unwrap();
        assert_eq!(again, genesis);
        assert!(genesis.is_governor(&creator.did()) && genesis.is_governor(&other));
        let renamed = Genesis::create(
            &creator,
            GenesisSpec {
                name: "other".into(),
                ..spec()
            },
        )
        .unwrap();
        assert_ne!(renamed.id(), genesis.id());
    }

    #[test]
    fn tampered_or_invalid_genesis_is_refused() {
        let creator = Keypair::from_secret_bytes(&[1; 32]);
        let genesis = Genesis::create(&creator, spec()).unwrap();
        let mut envelope = SignedProto::open(genesis.to_bytes(), GENESIS_BYTES_MAX, WHAT).unwrap();
        let mut body: GenesisBody = envelope.body(WHAT).unwrap();
        body.name = "forged".into();
        envelope.body = body.encode_to_vec().into();
        assert!(matches!(
            Genesis::from_bytes(&envelope.encode_to_vec()),
            Err(DecodeError::Signature { .. })
        ));
        let bad = GenesisSpec {
            params: Params {
                iterations: 0,
                ..Params::default()
            },
            ..spec()
        };
        assert_eq!(
            Genesis::create(&creator, bad).unwrap_err().to_string(),
            "genesis: field `params` iterations must be 1..=32"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = Genesis::from_bytes(&bytes);
        }
    }
}
