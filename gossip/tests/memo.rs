//! Nodes sharing a memo get the results they would compute alone, and
//! compute the costly ones once between them.

// Test helpers may unwrap: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;

use harness::{Mesh, START_MS};
use starling_gossip::Memo;
use starling_gossip::trust_state::TrustState;
use starling_trust::evidence::record::Revocation;
use starling_trust::{Evidence, EvidenceStore, Record, ScoreTable};

/// Two nodes over one snapshot hear of different new agents and of the
/// same revocation: each gets the table of its own evidence, and the part
/// of it that does not depend on those agents is computed once.
#[test]
fn replicas_differing_in_new_agents_share_one_score_computation() {
    let mesh = Mesh::new();
    let mut snapshot = EvidenceStore::new(Arc::clone(&mesh.genesis));
    for i in 0..20 {
        snapshot.insert(mesh.agent(i, &["publish:*"]).1);
    }
    let memo = Memo::with_evidence(Arc::clone(&mesh.genesis), Some(Arc::new(snapshot)));
    let node = || TrustState::new(Arc::clone(&mesh.genesis), START_MS, Some(Arc::clone(&memo)));
    let (mut a, mut b) = (node(), node());
    // Both start from the snapshot's table: one computation.
    assert_eq!(memo.score_computations(), 1);
    let (_, revoked) = mesh.agent(5, &["publish:*"]);
    let Evidence::Agent(agent) = revoked.evidence() else {
        panic!("not an agent record")
    };
    let revocation = Arc::new(
        Record::create(
            &mesh.org,
            &mesh.genesis,
            START_MS,
            Evidence::Revocation(Revocation {
                mandate: agent.chain.leaf().unwrap().clone(),
                reason: "left".into(),
            }),
        )
        .unwrap(),
    );
    for (state, newcomer) in [(&mut a, 100), (&mut b, 101)] {
        state.insert(mesh.agent(newcomer, &["publish:*"]).1);
        state.insert(Arc::clone(&revocation));
        assert!(state.refresh_scores(START_MS + 1));
        assert_eq!(
            **state.scores(),
            ScoreTable::compute(state.store(), state.scores().epoch())
        );
    }
    assert_ne!(a.scores(), b.scores());
    assert_eq!(memo.score_computations(), 2);
    // The revoked agent dropped below a newcomer in both.
    let (newcomer, _) = mesh.agent(100, &["publish:*"]);
    let revoked = revoked.author();
    assert!(a.scores().score(&revoked) < a.scores().score(&newcomer.did()));
    assert_eq!(a.scores().score(&revoked), b.scores().score(&revoked));
}
