//! Workloads that need identities: revocation, the kill switch, a policy
//! change, outcome evidence with hidden honesty, and the Sybil vouch ring.

use rand::RngExt;
use starling_gossip::Command;
use starling_trust::evidence::record::{Outcome, Revocation, Termination, Vouch};
use starling_trust::policy::{Edit, Policy, Rule};
use starling_trust::{Evidence, Keypair, Record};

use crate::engine::{Ev, Sim};

fn submit(sim: &mut Sim, record: &Record) -> Option<u32> {
    let at = sim.pick_live()?;
    sim.command(
        at,
        Command::SubmitEvidence {
            record: record.to_bytes().to_vec(),
        },
    );
    Some(at)
}

/// A live honest node that is not the submitter's only choice.
fn victim(sim: &mut Sim) -> Option<u32> {
    let honest: Vec<u32> = sim
        .live_nodes()
        .iter()
        .copied()
        .filter(|i| !sim.agents[*i as usize].sybil)
        .collect();
    (!honest.is_empty()).then(|| honest[sim.rng().random_range(0..honest.len())])
}

/// The organisation revokes a random agent's mandate.
pub(crate) fn revoke(sim: &mut Sim) {
    let Some(v) = victim(sim) else { return };
    let Evidence::Agent(agent) = sim.agents[v as usize].record.evidence() else {
        return;
    };
    let Some(mandate) = agent.chain.leaf().cloned() else {
        return;
    };
    let revocation = Revocation {
        mandate,
        reason: "simulated compromise".into(),
    };
    let org = sim.world.org().clone();
    let Ok(record) = Record::create(
        &org,
        &sim.world.genesis,
        sim.now,
        Evidence::Revocation(revocation),
    ) else {
        return;
    };
    sim.track_item("revocation", record.id(), v);
    submit(sim, &record);
}

/// A governor terminates a random agent; afterwards it tries to publish.
pub(crate) fn kill(sim: &mut Sim) {
    let Some(v) = victim(sim) else { return };
    let termination = Termination {
        subject: sim.did_of(v),
        reason: "kill switch".into(),
        mandate: None,
    };
    let governor = sim.world.governor.clone();
    let Ok(record) = Record::create(
        &governor,
        &sim.world.genesis,
        sim.now,
        Evidence::Termination(termination),
    ) else {
        return;
    };
    sim.track_item("termination", record.id(), v);
    sim.set_killed(v);
    submit(sim, &record);
    sim.schedule_in(2_000, Ev::KilledPublishes);
}

/// The killed agent's node tries to publish (it should be refused, and if
/// its node were malicious, its neighbours would drop the messages).
pub(crate) fn killed_publishes(sim: &mut Sim) {
    let Some(k) = sim.killed() else { return };
    let topic = sim
        .sc
        .publishers
        .first()
        .map(|p| p.topic.clone())
        .unwrap_or_else(|| "news".into());
    if sim.nodes.get(k as usize).is_some_and(Option::is_some) {
        sim.command(
            k,
            Command::Publish {
                topic,
                payload: b"from a killed agent".to_vec(),
            },
        );
    }
}

/// A governor adds a rule.
pub(crate) fn policy_change(sim: &mut Sim) {
    let policy = Policy::from_genesis(&sim.world.genesis);
    let Ok(rule) = Rule::parse(
        "sim-deny-secret",
        500,
        "*",
        "publish",
        "secret.*",
        "deny",
        "simulated rollout",
    ) else {
        return;
    };
    let governor = sim.world.governor.clone();
    let Ok(change) = policy.propose(
        &governor,
        &sim.world.genesis,
        sim.now,
        &[Edit::PutRule(rule)],
    ) else {
        return;
    };
    sim.start_policy_tracking();
    if let Some(at) = sim.pick_live() {
        sim.command(
            at,
            Command::ChangePolicy {
                change: change.to_bytes().to_vec(),
            },
        );
    }
}

/// One outcome summary: a random reporter works with a random subject.
/// Honest reporters tell the truth; Sybils praise Sybils and blame the
/// honest. The governor works with a fixed sample of agents.
pub(crate) fn outcome(sim: &mut Sim) {
    let Some(o) = sim.sc.outcomes.clone() else {
        return;
    };
    let gap = {
        let u: f64 = sim.rng().random_range(f64::EPSILON..1.0);
        (-u.ln() / o.rate_per_s * 1000.0) as u64
    };
    if sim.now + gap < sim.evidence_end() {
        sim.schedule_in(gap.max(1), Ev::Outcome);
    }
    let live = sim.live_nodes().len();
    if live < 2 {
        return;
    }
    let from_governor = sim.rng().random_range(0..10u32) == 0;
    let (reporter, subject) = if from_governor {
        let sample = o.governor_sample.min(sim.agents.len() as u32).max(1);
        (u32::MAX, sim.rng().random_range(0..sample))
    } else {
        let (x, y) = (
            sim.rng().random_range(0..live),
            sim.rng().random_range(0..live),
        );
        let (a, b) = (sim.live_nodes()[x], sim.live_nodes()[y]);
        (a, b)
    };
    if reporter == subject {
        return;
    }
    let subject_agent = &sim.agents[subject as usize];
    let (subject_honest, subject_sybil) = (subject_agent.honest, subject_agent.sybil);
    let reporter_sybil = reporter != u32::MAX && sim.agents[reporter as usize].sybil;
    let success = match (reporter_sybil, subject_sybil) {
        (true, true) => true,
        (true, false) => false,
        (false, _) => subject_honest && sim.rng().random_range(0..20u32) != 0,
    };
    let counts = sim
        .outcome_counts()
        .entry((reporter, subject))
        .or_insert((0, 0));
    match success {
        true => counts.0 += 1,
        false => counts.1 += 1,
    }
    let (successes, failures) = *counts;
    let key: Keypair = match reporter {
        u32::MAX => sim.world.governor.clone(),
        r => sim.agents[r as usize].key.as_ref().clone(),
    };
    let summary = Outcome {
        subject: sim.did_of(subject),
        successes,
        failures,
        failure_severity: failures,
        last_task: String::new(),
    };
    if let Ok(record) = Record::create(
        &key,
        &sim.world.genesis,
        sim.now,
        Evidence::Outcome(summary),
    ) {
        match reporter {
            u32::MAX => {
                submit(sim, &record);
            }
            r if sim.nodes.get(r as usize).is_some_and(Option::is_some) => {
                sim.command(
                    r,
                    Command::SubmitEvidence {
                        record: record.to_bytes().to_vec(),
                    },
                );
            }
            _ => {}
        }
    }
}

/// Every Sybil vouches for the next one.
pub(crate) fn sybil_ring(sim: &mut Sim) {
    let sybils: Vec<u32> = (0..sim.agents.len() as u32)
        .filter(|i| sim.agents[*i as usize].sybil)
        .collect();
    for (k, &s) in sybils.iter().enumerate() {
        let next = sybils[(k + 1) % sybils.len()];
        let vouch = Vouch {
            subject: sim.did_of(next),
            weight: 100,
            expires_ms: sim.now + 86_400_000,
        };
        let key = sim.agents[s as usize].key.clone();
        if let Ok(record) =
            Record::create(&key, &sim.world.genesis, sim.now, Evidence::Vouch(vouch))
            && sim.nodes.get(s as usize).is_some_and(Option::is_some)
        {
            sim.command(
                s,
                Command::SubmitEvidence {
                    record: record.to_bytes().to_vec(),
                },
            );
        }
    }
}
