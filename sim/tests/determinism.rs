//! Every built-in, shrunk, runs twice with the same trace hash; a failure
//! prints the scenario and seed.

#![allow(clippy::unwrap_used)]

use starling_sim::{BUILT_INS, Scenario};

fn small(name: &str, seed: u64) -> Scenario {
    let mut sets: Vec<String> = [
        "nodes=60",
        "duration_s=8",
        "settle_s=4",
        "join_interval_ms=20",
    ]
    .map(String::from)
    .to_vec();
    if name == "attacks" {
        sets.push("attacks.at_s=1".into());
    }
    let mut s = Scenario::built_in_with(name, &sets).unwrap();
    s.seed = seed;
    if let Some(c) = s.churn.as_mut() {
        c.arrivals_per_s = 2.0;
    }
    s
}

#[test]
fn each_built_in_is_reproducible() {
    let seed = 7u64;
    for (name, _) in BUILT_INS {
        let (_, a) = starling_sim::run(small(name, seed), &mut |_, _, _| {});
        let (_, b) = starling_sim::run(small(name, seed), &mut |_, _, _| {});
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "scenario {name}, seed {seed}: traces differ"
        );
        assert_eq!(a.events, b.events, "scenario {name}, seed {seed}");
        assert!(a.complete, "scenario {name}, seed {seed}: {:?}", a.stopped);
    }
}

#[test]
fn seeds_change_the_trace_and_the_figures_hold_up_at_small_scale() {
    let (_, a) = starling_sim::run(small("steady", 1), &mut |_, _, _| {});
    let (_, b) = starling_sim::run(small("steady", 2), &mut |_, _, _| {});
    assert_ne!(a.trace_hash, b.trace_hash);
    for r in [&a, &b] {
        assert!(r.messages > 20, "seed {}: {} messages", r.seed, r.messages);
        assert!(
            r.delivered_ratio > 0.99,
            "seed {}: delivered {}",
            r.seed,
            r.delivered_ratio
        );
    }
    let (_, kill) = starling_sim::run(small("kill-switch", 3), &mut |_, _, _| {});
    assert!(
        kill.reach_ms
            .get("termination")
            .copied()
            .flatten()
            .is_some(),
        "seed 3: {:?}",
        kill.reach_ms
    );
    assert_eq!(
        kill.killed_deliveries_after, 0,
        "seed 3: the killed agent's messages were delivered"
    );
}

#[test]
fn attacks_get_nothing_forged_or_replayed_through() {
    for seed in [1u64, 2] {
        let mut s = small("attacks", seed);
        s.duration_s = 12.0;
        if let Some(a) = s.attacks.as_mut() {
            a.replay_window_s = Some(3.0);
        }
        let (_, r) = starling_sim::run(s, &mut |_, _, _| {});
        let a = r.attacks.expect("the attacks scenario reports its figures");
        assert!(
            a.forged_sent > 0 && a.replayed_stale_sent > 0,
            "seed {seed}: {a:?}"
        );
        assert_eq!(a.forged_delivered, 0, "seed {seed}: {a:?}");
        assert_eq!(a.replayed_delivered, 0, "seed {seed}: {a:?}");
        assert!(a.spam_sent > 100, "seed {seed}: {a:?}");
        assert!(a.attackers_cut_off > 0.0, "seed {seed}: {a:?}");
        // Not asserted, because they do not hold yet (see the simulator
        // issue's note): honest delivery under spam, and the eclipse share
        // at this size, where the victim's view is not full.
    }
}

/// Nodes that join while messages spread may receive them, but a message
/// counts as delivered only to the nodes live when it was sent: the ratio
/// of a growing mesh stays at most 1 (it was 1.011 in this run when
/// newcomers counted).
#[test]
fn newcomers_do_not_count_as_deliveries() {
    let sets = [
        "nodes=100",
        "duration_s=20",
        "settle_s=4",
        "join_interval_ms=20",
        "churn.arrivals_per_s=40",
        "churn.returning=0",
        "churn.sessions.scale_s=100000",
    ]
    .map(String::from);
    let s = Scenario::built_in_with("churn", &sets).unwrap();
    let (_, r) = starling_sim::run(s, &mut |_, _, _| {});
    assert!(
        r.delivered_ratio > 0.99 && r.delivered_ratio <= 1.0,
        "seed {}: delivered {}",
        r.seed,
        r.delivered_ratio
    );
}

/// A silent partition (frames vanish, connections stay open): nodes lose
/// the neighbours they cannot hear, ask them back, and the revocation
/// issued inside the partition reaches 99.9% of nodes within 3 s of the
/// heal. At 20 s: 4.4 and 3.8 s at these seeds before nodes noticed
/// silence, 9.8 and 12.3 s when they noticed it but reconciliation alone
/// carried the revocation across. At 3 minutes: never, when lost
/// neighbours were asked back for a minute only; at 48 s and 3 minutes:
/// not within 20 s, when the waits between requests were not random.
#[test]
fn a_silent_partition_heals_within_seconds() {
    // 20 s, as the built-in; 48 s, which fell between two bunches of
    // requests when their waits were not spread; 3 minutes, long after the
    // sides forgot each other.
    for (seed, heal_s) in [1u64, 2]
        .into_iter()
        .flat_map(|s| [(s, 22), (s, 50), (s, 182)])
    {
        let sets = [
            "nodes=300".into(),
            format!("partition.heal_s={heal_s}"),
            format!("duration_s={}", heal_s + 20),
        ];
        let mut s = Scenario::built_in_with("partition-heal", &sets).unwrap();
        s.seed = seed;
        let (_, r) = starling_sim::run(s, &mut |_, _, _| {});
        let case = format!("seed {seed}, heal at {heal_s} s");
        let heal = r.heal_ms.unwrap_or_else(|| panic!("{case}: never healed"));
        assert!(heal <= 3_000, "{case}: healed in {heal} ms");
        let lost = r.drops.get("neighbors_lost").copied().unwrap_or(0);
        assert!(lost > 0, "{case}: no neighbour lost");
    }
}
