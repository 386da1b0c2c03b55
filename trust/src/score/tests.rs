//! Exact-output tests of the score function.

use std::sync::Arc;

use super::*;
use crate::evidence::record::{AgentRecord, Outcome, Record, Violation, Vouch};
use crate::genesis::{GenesisSpec, Params};
use crate::keys::Keypair;
use crate::mandate::{Mandate, MandateChain, MandateSpec};
use crate::scope::Scope;

const HOUR_MS: u64 = 3_600_000;

struct Mesh {
    store: EvidenceStore,
    governor: Keypair,
    org: Keypair,
    org_link: Mandate,
}

impl Mesh {
    fn new() -> Self {
        let governor = Keypair::from_secret_bytes(&[1; 32]);
        let spec = GenesisSpec {
            name: "scores".into(),
            other_governors: vec![],
            created_ms: 0,
            params: Params::default(),
        };
        let genesis = Arc::new(Genesis::create(&governor, spec).unwrap());
        let org = Keypair::from_secret_bytes(&[2; 32]);
        let org_link = Mandate::issue(
            &governor,
            &self::spec(&genesis, org.did(), &["publish:*", "vouch", "delegate(2)"]),
            None,
        );
        Self {
            store: EvidenceStore::new(genesis),
            governor,
            org,
            org_link,
        }
    }

    fn genesis(&self) -> Arc<Genesis> {
        Arc::clone(self.store.genesis())
    }

    /// A new agent with a mandate from the org, and its agent record.
    fn admit(&mut self, seed: u64) -> Keypair {
        let agent = key(seed);
        let link = Mandate::issue(
            &self.org,
            &spec(&self.genesis(), agent.did(), &["publish:*", "vouch"]),
            Some(&self.org_link),
        );
        let chain = MandateChain::new(vec![self.org_link.clone(), link]);
        self.add(
            &agent.clone(),
            0,
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: Default::default(),
                addrs: vec![],
            }),
        );
        agent
    }

    fn add(&mut self, author: &Keypair, at_ms: u64, evidence: Evidence) {
        let record = Record::create(author, &self.genesis(), at_ms, evidence).unwrap();
        self.store.insert(Arc::new(record));
    }

    fn outcome(
        &mut self,
        reporter: &Keypair,
        subject: &Keypair,
        at_ms: u64,
        successes: u64,
        failures: u64,
    ) {
        let o = Outcome {
            subject: subject.did(),
            successes,
            failures,
            failure_severity: failures,
            last_task: String::new(),
        };
        self.add(reporter, at_ms, Evidence::Outcome(o));
    }

    fn vouch(&mut self, voucher: &Keypair, subject: &Keypair, weight: u32) {
        self.add(
            voucher,
            1,
            Evidence::Vouch(Vouch {
                subject: subject.did(),
                weight,
                expires_ms: 1_000 * HOUR_MS,
            }),
        );
    }

    fn violation(&mut self, witness: &Keypair, subject: &Keypair, at_ms: u64, severity: u32) {
        let v = Violation {
            subject: subject.did(),
            rule: "rate-limit".into(),
            severity,
            task: format!("t{at_ms}"),
        };
        self.add(witness, at_ms, Evidence::Violation(v));
    }

    fn score(&self, who: &Keypair, epoch: u64) -> u32 {
        ScoreTable::compute(&self.store, epoch).score(&who.did())
    }
}

fn key(seed: u64) -> Keypair {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[31] = 0x5a;
    Keypair::from_secret_bytes(&secret)
}

fn spec(genesis: &Genesis, subject: Did, scope: &[&str]) -> MandateSpec {
    MandateSpec {
        mesh: genesis.id(),
        subject,
        scope: Scope::parse(scope).unwrap(),
        not_before_ms: 0,
        expires_ms: 10_000 * HOUR_MS,
        nonce: [0; 16],
    }
}

#[test]
fn decay_halves_per_half_life() {
    assert_eq!(decay_q20(0, 24), Q20);
    assert_eq!(decay_q20(24, 24), Q20 / 2);
    assert_eq!(decay_q20(48, 24), Q20 / 4);
    assert_eq!(decay_q20(12, 24), 741455);
    assert_eq!(decay_q20(24 * 40, 24), 0);
}

#[test]
fn tiers_follow_the_thresholds() {
    let cases = [
        (0, Tier::Untrusted),
        (299, Tier::Untrusted),
        (300, Tier::Probationary),
        (499, Tier::Probationary),
        (500, Tier::Standard),
        (700, Tier::Trusted),
        (899, Tier::Trusted),
        (900, Tier::Verified),
        (1000, Tier::Verified),
    ];
    for (score, tier) in cases {
        assert_eq!(Tier::of(score), tier, "{score}");
    }
}

#[test]
fn newcomers_start_probationary_and_strangers_untrusted() {
    let mut mesh = Mesh::new();
    let agent = mesh.admit(10);
    let stranger = key(11);
    assert_eq!(mesh.score(&agent, 0), 400);
    assert_eq!(mesh.score(&stranger, 0), 100);
    assert_eq!(mesh.score(&mesh.governor.clone(), 0), 1000);
}

#[test]
fn steady_good_outcomes_climb_tiers() {
    let mut mesh = Mesh::new();
    let agent = mesh.admit(10);
    let governor = mesh.governor.clone();
    let mut seen = Vec::new();
    for (epoch, total) in [(1, 4), (2, 12), (3, 30), (4, 100)] {
        mesh.outcome(&governor, &agent, epoch * HOUR_MS, total, 0);
        let score = mesh.score(&agent, epoch);
        seen.push((score, Tier::of(score)));
    }
    assert_eq!(
        seen,
        [
            (533, Tier::Standard),
            (640, Tier::Standard),
            (715, Tier::Trusted),
            (770, Tier::Trusted)
        ]
    );
    // A vouch from the governor lifts a proven agent further.
    mesh.vouch(&governor, &agent, 100);
    assert_eq!(mesh.score(&agent, 4), 870);
}

#[test]
fn a_violation_drops_an_agent() {
    let mut mesh = Mesh::new();
    let agent = mesh.admit(10);
    let governor = mesh.governor.clone();
    mesh.outcome(&governor, &agent, HOUR_MS, 30, 0);
    assert_eq!(Tier::of(mesh.score(&agent, 1)), Tier::Trusted);
    mesh.violation(&governor, &agent, HOUR_MS, 5);
    let after = mesh.score(&agent, 1);
    assert_eq!(after, 415);
    assert_eq!(Tier::of(after), Tier::Probationary);
    // Slow to forgive: a month later half the penalty still stands, while the
    // good outcomes (half-life a week) have all but faded.
    assert_eq!(mesh.score(&agent, 1 + 720), 314);
}

#[test]
fn a_ring_of_a_thousand_sybils_stays_untrusted() {
    let mut mesh = Mesh::new();
    let sybils: Vec<Keypair> = (0..1000).map(|i| key(1_000 + i)).collect();
    for (i, s) in sybils.iter().enumerate() {
        let next = &sybils[(i + 1) % sybils.len()];
        mesh.vouch(s, next, 100);
        mesh.outcome(s, next, HOUR_MS, 1_000, 0);
    }
    let table = ScoreTable::compute(&mesh.store, 2);
    let best = sybils.iter().map(|s| table.score(&s.did())).max().unwrap();
    assert_eq!(best, 100);
    assert!(
        sybils
            .iter()
            .all(|s| table.tier(&s.did()) == Tier::Untrusted)
    );
}

#[test]
fn admitted_sybils_praising_each_other_do_not_rise() {
    let mut mesh = Mesh::new();
    let ring: Vec<Keypair> = (0..50).map(|i| mesh.admit(2_000 + i)).collect();
    for (i, s) in ring.iter().enumerate() {
        let next = &ring[(i + 1) % ring.len()];
        mesh.vouch(s, next, 100);
        mesh.outcome(s, next, HOUR_MS, 1_000, 0);
    }
    let table = ScoreTable::compute(&mesh.store, 2);
    assert!(ring.iter().all(|s| table.score(&s.did()) == 400));
}

#[test]
fn vouches_lapse_when_the_voucher_falls() {
    let mut mesh = Mesh::new();
    let governor = mesh.governor.clone();
    let voucher = mesh.admit(10);
    let agent = mesh.admit(11);
    mesh.outcome(&governor, &voucher, HOUR_MS, 100, 0);
    mesh.vouch(&voucher, &agent, 100);
    assert_eq!(mesh.score(&agent, 1), 461);
    mesh.violation(&governor, &voucher, HOUR_MS, 10);
    assert_eq!(mesh.score(&voucher, 1), 170);
    assert_eq!(mesh.score(&agent, 1), 400);
}

#[test]
fn terminated_and_revoked_agents_lose_standing() {
    let mut mesh = Mesh::new();
    let governor = mesh.governor.clone();
    let agent = mesh.admit(10);
    let other = mesh.admit(11);
    mesh.outcome(&governor, &agent, HOUR_MS, 100, 0);
    mesh.add(
        &governor,
        2,
        Evidence::Termination(crate::evidence::record::Termination {
            subject: agent.did(),
            reason: "kill switch".into(),
            mandate: None,
        }),
    );
    assert_eq!(mesh.score(&agent, 1), 0);
    let Some(Evidence::Agent(record)) =
        mesh.store.agent(&other.did()).map(|r| r.evidence().clone())
    else {
        unreachable!()
    };
    let link = record.chain.links()[1].clone();
    let org = mesh.org.clone();
    mesh.add(
        &org,
        3,
        Evidence::Revocation(crate::evidence::record::Revocation {
            mandate: link,
            reason: "left".into(),
        }),
    );
    assert_eq!(mesh.score(&other, 1), 100);
}

#[test]
fn merge_order_does_not_change_the_table() {
    let mut mesh = Mesh::new();
    let governor = mesh.governor.clone();
    let agents: Vec<Keypair> = (0..20).map(|i| mesh.admit(100 + i)).collect();
    for (i, a) in agents.iter().enumerate() {
        mesh.outcome(&governor, a, HOUR_MS, 3 + i as u64, (i % 3) as u64);
        mesh.vouch(a, &agents[(i + 7) % agents.len()], 40);
        if i % 4 == 0 {
            mesh.violation(&agents[(i + 1) % agents.len()], a, HOUR_MS, 2);
        }
    }
    let records: Vec<_> = mesh.store.records().cloned().collect();
    let mut forward = EvidenceStore::new(mesh.genesis());
    let mut backward = EvidenceStore::new(mesh.genesis());
    let (mut left, mut right) = (
        EvidenceStore::new(mesh.genesis()),
        EvidenceStore::new(mesh.genesis()),
    );
    for (i, r) in records.iter().enumerate() {
        forward.insert(Arc::clone(r));
        if i % 2 == 0 {
            left.insert(Arc::clone(r));
        } else {
            right.insert(Arc::clone(r));
        }
    }
    for r in records.iter().rev() {
        backward.insert(Arc::clone(r));
    }
    right.merge(&left);
    let tables = [&forward, &backward, &right].map(|s| ScoreTable::compute(s, 5));
    assert_eq!(tables[0], tables[1]);
    assert_eq!(tables[0].digest(), tables[2].digest());
    assert_eq!(tables[0].len(), 21);
}
