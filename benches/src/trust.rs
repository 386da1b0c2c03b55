//! The trust core workload: a mesh of signed evidence and a large policy.
//!
//! Every record is really signed; the store is built the way a node builds
//! it. The shape: each agent has an agent record (a mandate chain from the
//! governor through one organisation), reports outcomes about six others,
//! vouches for two and witnessed one violation, so `agents` agents make
//! `10 × agents` records. One agent in a hundred also has outcomes reported
//! by the governor, so trust has somewhere to flow from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use starling_trust::evidence::record::{AgentRecord, Outcome, Violation, Vouch};
use starling_trust::keys::{self, Domain};
use starling_trust::policy::{Edit, Rule};
use starling_trust::{
    Action, Actor, Did, Evidence, EvidenceStore, Genesis, GenesisSpec, Keypair, Mandate,
    MandateChain, MandateSpec, Params, Policy, Record, Scope, ScoreTable, Tier,
};

/// Records per agent in the workload.
pub const RECORDS_PER_AGENT: usize = 10;
const HOUR_MS: u64 = 3_600_000;

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct TrustFigures {
    /// Rules in the policy.
    pub rules: usize,
    /// Median `decide` latency.
    pub decide_ns_p50: u64,
    /// 99th percentile `decide` latency.
    pub decide_ns_p99: u64,
    /// Agents scored.
    pub agents: usize,
    /// Evidence records held.
    pub records: usize,
    /// Median time to compute the whole score table.
    pub score_recompute_ms: f64,
    /// Records merged per second (state-based merge of two halves).
    pub merge_records_per_s: f64,
    /// Ed25519 signatures verified per second, one at a time (`verify_strict`).
    pub verify_sigs_per_s: f64,
    /// Ed25519 signatures verified per second in batches of 64.
    pub verify_batch_sigs_per_s: f64,
    /// Time spent signing and building the workload.
    pub build_s: f64,
}

/// A mesh, its governor and organisation, and a deterministic key per agent.
#[derive(Debug)]
pub struct Mesh {
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// Its governor.
    pub governor: Keypair,
    org: Keypair,
    org_link: Mandate,
}

impl Mesh {
    /// A mesh with one governor and one organisation.
    pub fn new(params: Params) -> Self {
        let governor = Keypair::from_secret_bytes(&[1; 32]);
        let spec = GenesisSpec {
            name: "bench".into(),
            other_governors: vec![],
            created_ms: 0,
            params,
        };
        let genesis =
            Arc::new(Genesis::create(&governor, spec).expect("the bench genesis is valid"));
        let org = Keypair::from_secret_bytes(&[2; 32]);
        let org_link = Mandate::issue(
            &governor,
            &self::mandate(
                &genesis,
                org.did(),
                &["publish:*", "subscribe:*", "vouch", "delegate(2)"],
            ),
            None,
        );
        Self {
            genesis,
            governor,
            org,
            org_link,
        }
    }

    /// The organisation every agent's mandate comes from, and its mandate.
    pub fn org(&self) -> (Keypair, Mandate) {
        (self.org.clone(), self.org_link.clone())
    }

    /// The key of agent `i`.
    pub fn agent_key(i: usize) -> Keypair {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
        secret[31] = 0xa5;
        Keypair::from_secret_bytes(&secret)
    }

    /// The records about and by agent `i` of `n`: see the module docs.
    pub fn agent_records(&self, i: usize, n: usize, key: &Keypair, dids: &[Did]) -> Vec<Record> {
        let g = &self.genesis;
        let link = Mandate::issue(
            &self.org,
            &mandate(g, key.did(), &["publish:*", "subscribe:*", "vouch"]),
            Some(&self.org_link),
        );
        let chain = MandateChain::new(vec![self.org_link.clone(), link]);
        let mut out = Vec::with_capacity(RECORDS_PER_AGENT + 1);
        let mut add = |author: &Keypair, at: u64, e: Evidence| {
            out.push(Record::create(author, g, at, e).expect("bench records are valid"));
        };
        add(
            key,
            0,
            Evidence::Agent(AgentRecord {
                chain,
                kem_public_key: Default::default(),
                addrs: vec![],
            }),
        );
        let other = |k: usize, stride: usize| {
            let j = (i + 1 + k * stride) % n;
            dids[if j == i { (j + 1) % n } else { j }]
        };
        for k in 0..6 {
            let (successes, failures) = (5 + (i * 7 + k) as u64 % 40, (i + k) as u64 % 4);
            let o = Outcome {
                subject: other(k, 7919),
                successes,
                failures,
                failure_severity: failures,
                last_task: String::new(),
            };
            add(key, HOUR_MS * (1 + k as u64), Evidence::Outcome(o));
        }
        for k in 0..2 {
            add(
                key,
                1,
                Evidence::Vouch(Vouch {
                    subject: other(k, 104_729),
                    weight: 60,
                    expires_ms: 10_000 * HOUR_MS,
                }),
            );
        }
        let v = Violation {
            subject: other(0, 15_485),
            rule: "rate".into(),
            severity: 1 + (i % 3) as u32,
            task: String::new(),
        };
        add(key, 2 * HOUR_MS, Evidence::Violation(v));
        if i.is_multiple_of(100) {
            let o = Outcome {
                subject: key.did(),
                successes: 50,
                failures: 1,
                failure_severity: 1,
                last_task: String::new(),
            };
            add(&self.governor, HOUR_MS, Evidence::Outcome(o));
        }
        out
    }

    /// Signs the whole workload on `threads` threads, in agent order.
    pub fn build(&self, agents: usize, threads: usize) -> (EvidenceStore, Vec<Arc<Record>>) {
        assert!(agents >= 16, "the workload needs at least 16 agents");
        let keys: Vec<Keypair> = (0..agents).map(Self::agent_key).collect();
        let dids: Vec<Did> = keys.iter().map(Keypair::did).collect();
        let chunk = agents.div_ceil(threads.max(1));
        let parts: Vec<Vec<Record>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..agents)
                .step_by(chunk)
                .map(|start| {
                    let (keys, dids) = (&keys, &dids);
                    s.spawn(move || {
                        (start..(start + chunk).min(agents))
                            .flat_map(|i| self.agent_records(i, agents, &keys[i], dids))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("signing thread"))
                .collect()
        });
        let records: Vec<Arc<Record>> = parts.into_iter().flatten().map(Arc::new).collect();
        let mut store = EvidenceStore::new(Arc::clone(&self.genesis));
        for r in &records {
            store.insert(Arc::clone(r));
        }
        (store, records)
    }
}

/// A mandate valid for the whole benchmark.
pub fn mandate(genesis: &Genesis, subject: Did, scope: &[&str]) -> MandateSpec {
    MandateSpec {
        mesh: genesis.id(),
        subject,
        scope: Scope::parse(scope).expect("bench scopes are valid"),
        not_before_ms: 0,
        expires_ms: u64::MAX / 2,
        nonce: [0; 16],
    }
}

/// A policy of `rules` rules of every kind, and the identities it names.
pub fn policy_with_rules(mesh: &Mesh, rules: usize, seed: u64) -> (Policy, Vec<Did>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dids: Vec<Did> = (0..256)
        .map(|i| Mesh::agent_key(1_000_000 + i).did())
        .collect();
    let tiers = [
        "untrusted",
        "probationary",
        "standard",
        "trusted",
        "verified",
    ];
    let edits: Vec<Edit> = (0..rules)
        .map(|i| {
            let action = Action::ALL[rng.random_range(0..Action::ALL.len())];
            let actor = match i % 4 {
                0 => dids[rng.random_range(0..dids.len())].to_string(),
                1 => format!("principal:{}", dids[rng.random_range(0..dids.len())]),
                2 => format!("tier>={}", tiers[rng.random_range(0..tiers.len())]),
                _ => "scope:publish:*".to_string(),
            };
            let resource = format!(
                "topic.{}.{}",
                rng.random_range(0..50),
                if i % 3 == 0 { "*" } else { "x" }
            );
            let effect = if rng.random_bool(0.3) {
                "deny"
            } else {
                "allow"
            };
            let rule = Rule::parse(
                &format!("r{i}"),
                rng.random_range(0..1000),
                &actor,
                action.name(),
                &resource,
                effect,
                "bench",
            )
            .expect("bench rules are valid");
            Edit::PutRule(rule)
        })
        .collect();
    let mut policy = Policy::from_genesis(&mesh.genesis);
    let change = policy
        .propose(&mesh.governor, &mesh.genesis, 1_000, &edits)
        .expect("bench policy change");
    policy
        .apply(Arc::new(change))
        .expect("bench policy applies");
    (policy, dids)
}

/// Times `decide` one call at a time over random queries; returns sorted ns.
pub fn decide_latencies_ns(policy: &Policy, dids: &[Did], calls: usize, seed: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let scope = Scope::parse(&["publish:*", "subscribe:*", "call:*", "vouch", "delegate(1)"])
        .expect("scope");
    let queries: Vec<(Did, Did, Tier, Action, String)> = (0..4096)
        .map(|_| {
            (
                dids[rng.random_range(0..dids.len())],
                dids[rng.random_range(0..dids.len())],
                Tier::ALL[rng.random_range(0..5)],
                Action::ALL[rng.random_range(0..Action::ALL.len())],
                format!("topic.{}.x", rng.random_range(0..60)),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(calls);
    let mut allowed = 0usize;
    for k in 0..calls {
        let (did, principal, tier, action, resource) = &queries[k % queries.len()];
        let actor = Actor {
            did,
            principal,
            tier: *tier,
            scope: &scope,
        };
        let start = Instant::now();
        let decision = policy.decide(&actor, *action, resource);
        out.push(start.elapsed().as_nanos() as u64);
        allowed += usize::from(decision.is_allowed());
    }
    std::hint::black_box(allowed);
    out.sort_unstable();
    out
}

/// Signatures verified per second, singly and in batches of 64.
pub fn verify_rates(records: &[Arc<Record>], sample: usize) -> (f64, f64) {
    let items: Vec<(Did, _, [u8; 64])> = records
        .iter()
        .take(sample)
        .map(|r| {
            let env = starling_trust::wire::SignedProto::open(r.to_bytes(), usize::MAX, "record")
                .expect("own record");
            (
                r.author(),
                env.body,
                env.signature.try_into().expect("64-byte signature"),
            )
        })
        .collect();
    let start = Instant::now();
    for (did, body, sig) in &items {
        keys::verify(did, Domain::Evidence, body, sig).expect("bench signatures verify");
    }
    let single = items.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for chunk in items.chunks(64) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|(d, b, s)| (*d, Domain::Evidence, b.as_ref(), *s))
            .collect();
        assert!(keys::verify_batch(&batch), "bench batch verifies");
    }
    let batch = items.len() as f64 / start.elapsed().as_secs_f64();
    (single, batch)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Runs every trust measurement. `progress` hears what is happening.
pub fn run(agents: usize, rules: usize, progress: &mut dyn FnMut(&str)) -> TrustFigures {
    let mesh = Mesh::new(Params::default());
    progress(&format!("policy: {rules} rules"));
    let (policy, dids) = policy_with_rules(&mesh, rules, 7);
    decide_latencies_ns(&policy, &dids, 20_000, 1);
    let latencies = decide_latencies_ns(&policy, &dids, 400_000, 2);
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];

    progress(&format!(
        "signing {} records for {agents} agents",
        agents * RECORDS_PER_AGENT
    ));
    let start = Instant::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (store, records) = mesh.build(agents, threads);
    let build_s = start.elapsed().as_secs_f64();

    progress("recomputing scores");
    let epoch = 24;
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(ScoreTable::compute(&store, epoch));
            start.elapsed()
        })
        .collect();

    progress("merging");
    let (left, right): (Vec<_>, Vec<_>) = records.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let mut a = EvidenceStore::new(Arc::clone(&mesh.genesis));
    let mut b = EvidenceStore::new(Arc::clone(&mesh.genesis));
    for (_, r) in left {
        a.insert(Arc::clone(r));
    }
    for (_, r) in right {
        b.insert(Arc::clone(r));
    }
    let merged = b.len();
    let start = Instant::now();
    a.merge(&b);
    let merge_records_per_s = merged as f64 / start.elapsed().as_secs_f64();

    progress("verifying signatures");
    let (verify_sigs_per_s, verify_batch_sigs_per_s) = verify_rates(&records, 20_000);
    TrustFigures {
        rules: policy.compiled().rules().len(),
        decide_ns_p50: pick(0.50),
        decide_ns_p99: pick(0.99),
        agents,
        records: store.len(),
        score_recompute_ms: median(runs).as_secs_f64() * 1e3,
        merge_records_per_s,
        verify_sigs_per_s,
        verify_batch_sigs_per_s,
        build_s,
    }
}
