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
use starling_trust::policy::{Edit, Rule};
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

/// Nodes sharing a memo verify a policy change once between them, get
/// the change a node alone reads, and refuse a tampered copy as it does.
#[test]
fn nodes_sharing_a_memo_verify_a_policy_change_once() {
    let mesh = Mesh::new();
    let memo = Memo::new(Arc::clone(&mesh.genesis));
    let node = |memo| TrustState::new(Arc::clone(&mesh.genesis), START_MS, memo);
    let (a, b) = (node(Some(Arc::clone(&memo))), node(Some(Arc::clone(&memo))));
    let alone = node(None);
    let rule = Rule::parse("quiet", 10, "*", "publish", "secret.*", "deny", "test").unwrap();
    let change = (a.policy())
        .propose(
            &mesh.governor,
            &mesh.genesis,
            START_MS,
            &[Edit::PutRule(rule)],
        )
        .unwrap();
    let bytes = change.to_bytes().to_vec();
    let (first, second) = (
        a.decode_policy_change(&bytes),
        b.decode_policy_change(&bytes),
    );
    assert!(Arc::ptr_eq(
        first.as_ref().unwrap(),
        second.as_ref().unwrap()
    ));
    let read_alone = alone.decode_policy_change(&bytes).unwrap();
    assert_eq!(first.unwrap().hash(), read_alone.hash());
    let mut forged = bytes;
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refused = a.decode_policy_change(&forged).unwrap_err();
    assert_eq!(refused, alone.decode_policy_change(&forged).unwrap_err());
    assert!(refused.to_string().contains("signature"), "{refused}");
}
