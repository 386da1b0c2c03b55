//! Policy: decisions, governor-only changes, convergence.

use std::sync::Arc;

use super::*;
use crate::genesis::{GenesisSpec, Params};
use crate::scope::Scope;

struct Fixture {
    genesis: Genesis,
    alice: Keypair,
    bob: Keypair,
    agent: Did,
    principal: Did,
    scope: Scope,
}

fn fixture() -> Fixture {
    let alice = Keypair::from_secret_bytes(&[1; 32]);
    let bob = Keypair::from_secret_bytes(&[2; 32]);
    let spec = GenesisSpec {
        name: "p".into(),
        other_governors: vec![bob.did()],
        created_ms: 5_000,
        params: Params::default(),
    };
    Fixture {
        genesis: Genesis::create(&alice, spec).unwrap(),
        alice,
        bob,
        agent: Keypair::from_secret_bytes(&[3; 32]).did(),
        principal: Keypair::from_secret_bytes(&[4; 32]).did(),
        scope: Scope::parse(&["publish:*", "subscribe:*", "call:search", "vouch"]).unwrap(),
    }
}

fn actor(f: &Fixture, tier: Tier) -> Actor<'_> {
    Actor {
        did: &f.agent,
        principal: &f.principal,
        tier,
        scope: &f.scope,
    }
}

fn rule(id: &str, priority: u64, actor: &str, action: &str, resource: &str, effect: &str) -> Rule {
    Rule::parse(
        id,
        priority,
        actor,
        action,
        resource,
        effect,
        &format!("because {id}"),
    )
    .unwrap()
}

#[test]
fn initial_policy_decides_by_tier_and_mandate() {
    let f = fixture();
    let policy = Policy::from_genesis(&f.genesis);
    let d = policy.decide(&actor(&f, Tier::Probationary), Action::Publish, "news");
    assert_eq!(
        d,
        Decision {
            effect: Effect::Allow,
            rule: Some("publish"),
            reason: "admitted agents may publish within their mandate"
        }
    );
    let d = policy.decide(&actor(&f, Tier::Untrusted), Action::Publish, "news");
    assert_eq!(
        d,
        Decision {
            effect: Effect::Deny,
            rule: None,
            reason: "no policy rule allows this (default deny)"
        }
    );
    let d = policy.decide(&actor(&f, Tier::Probationary), Action::Vouch, "x");
    assert_eq!(d.effect, Effect::Deny);
    assert!(
        policy
            .decide(&actor(&f, Tier::Standard), Action::Vouch, "x")
            .is_allowed()
    );
    let d = policy.decide(&actor(&f, Tier::Verified), Action::Call, "shell");
    assert_eq!(
        d,
        Decision {
            effect: Effect::Deny,
            rule: None,
            reason: "outside the agent's mandate scope"
        }
    );
    assert_eq!(
        policy.compiled().ring(Tier::Standard),
        Ring::default_for(Tier::Standard)
    );
    assert!(policy.compiled().problems().is_empty());
}

#[test]
fn priority_then_deny_then_specific_lists() {
    let f = fixture();
    let mut policy = Policy::from_genesis(&f.genesis);
    let edits = [
        Edit::PutRule(rule("deny-secret", 100, "*", "publish", "secret.*", "deny")),
        Edit::PutRule(rule(
            "agent-secret",
            200,
            &f.agent.to_string(),
            "publish",
            "secret.agent",
            "allow",
        )),
        Edit::PutRule(rule(
            "org-tie",
            100,
            &format!("principal:{}", f.principal),
            "publish",
            "secret.*",
            "allow",
        )),
    ];
    let change = policy
        .propose(&f.alice, &f.genesis, 10_000, &edits)
        .unwrap();
    assert_eq!(policy.apply(Arc::new(change)).unwrap(), Applied::Applied);
    let a = actor(&f, Tier::Trusted);
    assert_eq!(
        policy.decide(&a, Action::Publish, "secret.agent").rule,
        Some("agent-secret")
    );
    // Equal priority: deny wins over the principal's allow.
    assert_eq!(
        policy.decide(&a, Action::Publish, "secret.other").rule,
        Some("deny-secret")
    );
    assert_eq!(
        policy.decide(&a, Action::Publish, "news").rule,
        Some("publish")
    );
}

#[test]
fn only_governors_change_policy() {
    let f = fixture();
    let mut policy = Policy::from_genesis(&f.genesis);
    let mallory = Keypair::from_secret_bytes(&[9; 32]);
    let edit = [Edit::RemoveRule("publish".into())];
    assert_eq!(
        policy.propose(&mallory, &f.genesis, 1, &edit).unwrap_err(),
        PolicyError::NotGovernor(mallory.did())
    );
    // A change made under a governor's actor id but signed by someone else.
    let good = policy.propose(&f.alice, &f.genesis, 1, &edit).unwrap();
    let body_sig_swapped = {
        let mut env =
            crate::wire::SignedProto::open(good.to_bytes(), CHANGE_BYTES_MAX, "t").unwrap();
        env.signature = mallory
            .sign(crate::keys::Domain::PolicyChange, &env.body)
            .to_vec();
        prost::Message::encode_to_vec(&env)
    };
    assert!(matches!(
        policy.apply_bytes(&body_sig_swapped, &f.genesis),
        Err(PolicyError::Change(ChangeError::Decode(_)))
    ));
    let heads = policy.heads();
    assert!(policy.apply_bytes(&[1, 2, 3], &f.genesis).is_err());
    assert_eq!(policy.heads(), heads);
    assert_eq!(
        policy
            .propose(&f.alice, &f.genesis, 1, &[Edit::RemoveRule("nope".into())])
            .unwrap_err()
            .to_string(),
        "there is no rule `nope` to remove"
    );
    assert!(matches!(
        policy.propose(
            &f.alice,
            &f.genesis,
            1,
            &[Edit::PutRule(Rule {
                priority: 5000,
                ..rule("x", 1, "*", "join", "*", "allow")
            })]
        ),
        Err(PolicyError::Rule(_))
    ));
}

#[test]
fn concurrent_governor_changes_converge() {
    let f = fixture();
    let mut left = Policy::from_genesis(&f.genesis);
    let mut right = Policy::from_genesis(&f.genesis);
    let from_alice = left
        .propose(
            &f.alice,
            &f.genesis,
            20_000,
            &[Edit::PutRule(rule(
                "a-rule", 300, "*", "call", "search", "deny",
            ))],
        )
        .unwrap();
    let from_bob = right
        .propose(
            &f.bob,
            &f.genesis,
            20_000,
            &[
                Edit::PutRule(rule(
                    "b-rule",
                    300,
                    "tier>=trusted",
                    "call",
                    "search",
                    "allow",
                )),
                Edit::PutRing(
                    Tier::Standard,
                    Ring {
                        rate_per_s: 7,
                        burst: 9,
                        message_bytes_max: 1024,
                    },
                ),
                Edit::RemoveRule("vouch".into()),
            ],
        )
        .unwrap();
    let (a, b) = (Arc::new(from_alice), Arc::new(from_bob));
    left.apply(Arc::clone(&a)).unwrap();
    left.apply(Arc::clone(&b)).unwrap();
    right.apply(Arc::clone(&b)).unwrap();
    right.apply(Arc::clone(&a)).unwrap();
    assert_eq!(left.heads(), right.heads());
    assert_eq!(left.compiled().rules(), right.compiled().rules());
    let decision = left.decide(&actor(&f, Tier::Verified), Action::Call, "search");
    assert_eq!(decision.rule, Some("a-rule"));
    assert_eq!(right.compiled().ring(Tier::Standard).rate_per_s, 7);
    assert!(
        !left
            .decide(&actor(&f, Tier::Verified), Action::Vouch, "x")
            .is_allowed()
    );
    assert_eq!(left.apply(a).unwrap(), Applied::Duplicate);
}

#[test]
fn changes_wait_for_their_dependencies() {
    let f = fixture();
    let mut author = Policy::from_genesis(&f.genesis);
    let first = Arc::new(
        author
            .propose(&f.alice, &f.genesis, 1, &[Edit::RemoveRule("call".into())])
            .unwrap(),
    );
    author.apply(Arc::clone(&first)).unwrap();
    let second = Arc::new(
        author
            .propose(&f.alice, &f.genesis, 2, &[Edit::RemoveRule("join".into())])
            .unwrap(),
    );
    let mut late = Policy::from_genesis(&f.genesis);
    assert_eq!(late.apply(Arc::clone(&second)).unwrap(), Applied::Pending);
    assert_eq!(late.apply(first).unwrap(), Applied::Applied);
    author.apply(second).unwrap();
    assert_eq!(late.heads(), author.heads());
    assert_eq!(late.compiled().rules().len(), 4);
}

#[test]
fn rule_text_forms_round_trip() {
    let f = fixture();
    for actor in [
        "*",
        "tier>=standard",
        "scope:call:search",
        &f.agent.to_string(),
        &format!("principal:{}", f.principal),
    ] {
        assert_eq!(actor.parse::<ActorMatch>().unwrap().to_string(), actor);
    }
    assert!("tier>=gold".parse::<ActorMatch>().is_err());
    assert!(Rule::parse("Bad Id", 1, "*", "join", "*", "allow", "").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_change_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let f = fixture();
        let mut policy = Policy::from_genesis(&f.genesis);
        let heads = policy.heads();
        proptest::prop_assert!(policy.apply_bytes(&bytes, &f.genesis).is_err());
        proptest::prop_assert_eq!(policy.heads(), heads);
    }
}
