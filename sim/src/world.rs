//! The identities of a simulated mesh: a governor, an organisation for
//! honest agents, a rogue one for Sybils, and every agent's key and record.

use std::sync::Arc;

use starling_trust::evidence::record::AgentRecord;
use starling_trust::{
    Evidence, Genesis, GenesisSpec, Keypair, Mandate, MandateChain, MandateSpec, Params, Record,
    Scope, wire,
};

/// Virtual time zero: an arbitrary Unix time, so mandates look ordinary.
pub(crate) const START_MS: u64 = 1_800_000_000_000;
const CENTURY_MS: u64 = 100 * 365 * 24 * 3_600_000;

/// One simulated agent.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    /// Its key (shared with its node).
    pub(crate) key: Arc<Keypair>,
    /// Its signed agent record.
    pub(crate) record: Arc<Record>,
    /// One of the rogue principal's Sybils.
    pub(crate) sybil: bool,
    /// Hidden ground truth: its tasks succeed.
    pub(crate) honest: bool,
}

/// The mesh's authorities.
#[derive(Debug)]
pub(crate) struct World {
    /// The genesis.
    pub(crate) genesis: Arc<Genesis>,
    /// The governor.
    pub(crate) governor: Keypair,
    org: Keypair,
    org_link: Mandate,
    rogue: Keypair,
    rogue_link: Mandate,
    seed: u64,
}

fn key_of(seed: u64, tag: &[u8], i: u64) -> Keypair {
    let mut input = seed.to_le_bytes().to_vec();
    input.extend_from_slice(tag);
    input.extend_from_slice(&i.to_le_bytes());
    Keypair::from_secret_bytes(&wire::sha256(&input))
}

impl World {
    /// The authorities of a run, derived from its seed.
    pub(crate) fn new(seed: u64) -> Self {
        let governor = key_of(seed, b"governor", 0);
        let spec = GenesisSpec {
            name: "sim".into(),
            other_governors: vec![],
            created_ms: START_MS,
            params: Params::default(),
        };
        let genesis = Arc::new(
            Genesis::create(&governor, spec).unwrap_or_else(|e| unreachable!("sim genesis: {e}")),
        );
        let org = key_of(seed, b"org", 0);
        let rogue = key_of(seed, b"rogue", 0);
        let scope = ["publish:*", "subscribe:*", "vouch", "delegate(2)"];
        let org_link = Mandate::issue(&governor, &spec_of(&genesis, org.did(), &scope), None);
        let rogue_link = Mandate::issue(&governor, &spec_of(&genesis, rogue.did(), &scope), None);
        Self {
            genesis,
            governor,
            org,
            org_link,
            rogue,
            rogue_link,
            seed,
        }
    }

    /// Agent `i`: its key from the seed, a mandate from the organisation
    /// (or the rogue principal for a Sybil) and its signed record.
    pub(crate) fn agent(&self, i: u32, sybil: bool, honest: bool) -> Agent {
        let key = key_of(self.seed, b"agent", u64::from(i));
        let (issuer, parent) = match sybil {
            true => (&self.rogue, &self.rogue_link),
            false => (&self.org, &self.org_link),
        };
        let link = Mandate::issue(
            issuer,
            &spec_of(
                &self.genesis,
                key.did(),
                &["publish:*", "subscribe:*", "vouch"],
            ),
            Some(parent),
        );
        let chain = MandateChain::new(vec![parent.clone(), link]);
        let record = Record::create(
            &key,
            &self.genesis,
            START_MS,
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: Default::default(),
                addrs: vec![],
            }),
        )
        .unwrap_or_else(|e| unreachable!("sim agent record: {e}"));
        Agent {
            key: Arc::new(key),
            record: Arc::new(record),
            sybil,
            honest,
        }
    }

    /// The organisation that issued honest agents' mandates.
    pub(crate) fn org(&self) -> &Keypair {
        &self.org
    }
}

fn spec_of(genesis: &Genesis, subject: starling_trust::Did, scope: &[&str]) -> MandateSpec {
    MandateSpec {
        mesh: genesis.id(),
        subject,
        scope: Scope::parse(scope).unwrap_or_else(|e| unreachable!("sim scope: {e}")),
        not_before_ms: START_MS - 1,
        expires_ms: START_MS + CENTURY_MS,
        nonce: [0; 16],
    }
}
