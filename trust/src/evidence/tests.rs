//! Laws of the evidence CRDT and of reconciliation.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::reconcile::{Part, Range};
use super::record::*;
use super::store::{EvidenceStore, Inserted, SharedSet, Succession};
use crate::keys::Keypair;
use crate::mandate::tests::{World, chain, spec, world};
use crate::mandate::{Mandate, MandateChain, RevocationCheck};

fn outcome(subject: &Keypair, successes: u64, failures: u64) -> Evidence {
    Evidence::Outcome(Outcome {
        subject: subject.did(),
        successes,
        failures,
        failure_severity: failures,
        last_task: format!("task-{}", successes + failures),
    })
}

fn vouch(subject: &Keypair, weight: u32) -> Evidence {
    Evidence::Vouch(Vouch {
        subject: subject.did(),
        weight,
        expires_ms: 1_000_000,
    })
}

fn violation(subject: &Keypair, task: u32) -> Evidence {
    Evidence::Violation(Violation {
        subject: subject.did(),
        rule: "rate".into(),
        severity: 2,
        task: format!("t{task}"),
    })
}

/// A fixed pool of records with competing versions in several slots.
fn pool() -> &'static (World, Vec<Arc<Record>>) {
    static POOL: OnceLock<(World, Vec<Arc<Record>>)> = OnceLock::new();
    POOL.get_or_init(|| {
        let w = world();
        let g = &w.genesis;
        let mut records = Vec::new();
        let mut add = |author: &Keypair, at: u64, e: Evidence| {
            records.push(Arc::new(Record::create(author, g, at, e).unwrap()));
        };
        for n in 1..=4 {
            add(&w.org, 10 * n, outcome(&w.agent, n, n / 2));
            add(&w.agent, 10 * n, outcome(&w.org, n, 0));
        }
        for (at, weight) in [(5, 50), (6, 0), (7, 100)] {
            add(&w.org, at, vouch(&w.agent, weight));
        }
        for task in 0..18 {
            add(&w.org, 100 + u64::from(task % 5), violation(&w.sub, task));
        }
        let c = chain(&w);
        let kem = vec![7u8; 32];
        add(
            &w.sub,
            1,
            Evidence::Agent(AgentRecord {
                chain: c.clone(),
                kem_public_key: kem.into(),
                addrs: vec![],
            }),
        );
        let agent_chain = MandateChain::new(c.links()[..2].to_vec());
        add(
            &w.agent,
            1,
            Evidence::Agent(AgentRecord {
                chain: agent_chain,
                kem_public_key: Default::default(),
                addrs: vec![],
            }),
        );
        let revoked = Revocation {
            mandate: c.links()[2].clone(),
            reason: "left".into(),
        };
        add(&w.agent, 50, Evidence::Revocation(revoked));
        add(
            &w.governor,
            60,
            Evidence::Termination(Termination {
                subject: w.org.did(),
                reason: "x".into(),
                mandate: None,
            }),
        );
        (w, records)
    })
}

/// A mandate from the governor to the pool's org that outlives epoch 2,000
/// (an hour each).
fn long_org() -> Mandate {
    let (w, _) = pool();
    let scope: &[&str] = &["publish:*", "delegate(3)"];
    Mandate::issue(
        &w.governor,
        &spec(w, w.org.did(), scope, 10_000_000_000),
        None,
    )
}

/// A mandate from the pool's org to `key`.
fn under_org(org: &Mandate, key: &Keypair, expires_ms: u64) -> Mandate {
    let (w, _) = pool();
    let scope: &[&str] = &["publish:x", "delegate(1)"];
    Mandate::issue(&w.org, &spec(w, key.did(), scope, expires_ms), Some(org))
}

/// `key`'s agent record holding `chain`.
fn agent_record(key: &Keypair, chain: Vec<Mandate>) -> Arc<Record> {
    let (w, _) = pool();
    let evidence = Evidence::Agent(AgentRecord {
        chain: MandateChain::new(chain),
        kem_public_key: Default::default(),
        addrs: vec![],
    });
    Arc::new(Record::create(key, &w.genesis, 200, evidence).unwrap())
}

#[test]
fn created_agent_records_share_their_issuers_mandates() {
    let (w, _) = pool();
    let org = long_org();
    let records: Vec<Arc<Record>> = [30u8, 31]
        .iter()
        .map(|n| {
            let key = Keypair::from_secret_bytes(&[*n; 32]);
            agent_record(
                &key,
                vec![org.clone(), under_org(&org, &key, 2_000_000_000)],
            )
        })
        .collect();
    let chains: Vec<&MandateChain> = (records.iter())
        .map(|r| match r.evidence() {
            Evidence::Agent(a) => &a.chain,
            other => unreachable!("{other:?}"),
        })
        .collect();
    assert!(chains[0].links()[0].is_same_copy(&org));
    assert!(chains[1].links()[0].is_same_copy(&org));
    for record in &records {
        let read = Record::from_bytes(record.to_bytes(), &w.genesis).unwrap();
        assert_eq!(read, **record, "sharing changes nothing a reader sees");
    }
}

#[test]
fn an_overlay_finds_agents_through_its_bases_index() {
    let org = long_org();
    let keys: Vec<Keypair> = (0..80u8)
        .map(|n| {
            Keypair::from_secret_bytes(&[
                n, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                7, 7, 7, 7,
            ])
        })
        .collect();
    let mut base = EvidenceStore::new(Arc::new(pool().0.genesis.clone()));
    for key in &keys[..70] {
        base.insert(agent_record(
            key,
            vec![org.clone(), under_org(&org, key, 2_000_000_000)],
        ));
    }
    let base = Arc::new(base);
    let overlay = EvidenceStore::overlay(Arc::clone(&base));
    for (i, key) in keys.iter().enumerate() {
        let found = overlay.agent(&key.did()).map(|r| r.author());
        assert_eq!(found, base.agent(&key.did()).map(|r| r.author()));
        assert_eq!(found, (i < 70).then(|| key.did()));
    }
}

/// Agent records of identities outside the pool, under [`long_org`], with
/// agent mandates that expire before epoch 1,000, before 2,000 or after
/// it; the last is a sub-agent of the first. The pool's termination of the
/// org unanchors them all. Then a second agent record for the pool's agent.
fn newcomers() -> &'static Vec<Arc<Record>> {
    static NEWCOMERS: OnceLock<Vec<Arc<Record>>> = OnceLock::new();
    NEWCOMERS.get_or_init(|| {
        let (w, _) = pool();
        let org = long_org();
        let keys: Vec<Keypair> = (20..25)
            .map(|n| Keypair::from_secret_bytes(&[n; 32]))
            .collect();
        let expiries = [2_000_000_000, 5_000_000_000, 10_000_000_000, 10_000_000_000];
        let mut out: Vec<_> = (keys.iter().zip(expiries))
            .map(|(key, expires_ms)| {
                agent_record(key, vec![org.clone(), under_org(&org, key, expires_ms)])
            })
            .collect();
        let first = under_org(&org, &keys[0], expiries[0]);
        let sub = Mandate::issue(
            &keys[0],
            &spec(w, keys[4].did(), &["publish:x"], 1_000_000_000),
            Some(&first),
        );
        out.push(agent_record(&keys[4], vec![org.clone(), first, sub]));
        let again = under_org(&org, &w.agent, expiries[3]);
        out.push(agent_record(&w.agent, vec![org, again]));
        out
    })
}

/// Reports on the pool's terminated org, by the first two newcomers (a
/// violation, an outcome) and by an identity with no agent record (a
/// vouch).
fn reports_on_terminated() -> &'static Vec<Arc<Record>> {
    static REPORTS: OnceLock<Vec<Arc<Record>>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let (w, _) = pool();
        let key = |n: u8| Keypair::from_secret_bytes(&[n; 32]);
        [
            (key(20), violation(&w.org, 1)),
            (key(21), outcome(&w.org, 3, 1)),
            (key(30), vouch(&w.org, 50)),
        ]
        .into_iter()
        .map(|(author, e)| Arc::new(Record::create(&author, &w.genesis, 70, e).unwrap()))
        .collect()
    })
}

fn store_of(indices: &[usize]) -> EvidenceStore {
    let (w, records) = pool();
    let mut store = EvidenceStore::new(Arc::new(w.genesis.clone()));
    for &i in indices {
        store.insert(Arc::clone(&records[i % records.len()]));
    }
    store
}

/// Whether two stores give the same answers: records, slots, counts,
/// fingerprints, reconciliation with `other`'s store, scores, terminations.
fn indistinguishable(
    a: &EvidenceStore,
    b: &EvidenceStore,
    other: &[usize],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a, b);
    prop_assert_eq!(a.len(), b.len());
    prop_assert_eq!(a.digest(), b.digest());
    let slots = |s: &EvidenceStore| -> Vec<(super::store::Slot, Vec<RecordId>)> {
        s.slots()
            .map(|(slot, kept)| (*slot, kept.map(|r| r.id()).collect()))
            .collect()
    };
    prop_assert_eq!(slots(a), slots(b));
    let other = store_of(other);
    prop_assert_eq!(
        a.reconcile(&other.reconcile_start()),
        b.reconcile(&other.reconcile_start())
    );
    let (w, records) = pool();
    for epoch in [0, 1_000] {
        let (ta, tb) = (
            crate::ScoreTable::compute(a, epoch),
            crate::ScoreTable::compute(b, epoch),
        );
        prop_assert_eq!(ta.digest(), tb.digest());
        for did in [&w.governor, &w.org, &w.agent, &w.sub].map(|k| k.did()) {
            prop_assert_eq!(
                (ta.score(&did), ta.contains(&did)),
                (tb.score(&did), tb.contains(&did))
            );
        }
        prop_assert_eq!(ta, tb);
    }
    prop_assert_eq!(a.terminated(), b.terminated());
    for r in records.iter() {
        prop_assert_eq!(a.contains(&r.id()), b.contains(&r.id()));
        prop_assert_eq!(
            a.get(&r.id()).map(|r| r.id()),
            b.get(&r.id()).map(|r| r.id())
        );
    }
    Ok(())
}

fn merged(a: &EvidenceStore, b: &EvidenceStore) -> EvidenceStore {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// The pool's records `root`, then `held` added (over `root` shared as a
/// base, if `overlay`).
fn root_and_held(root: &[usize], held: &[usize], overlay: bool) -> EvidenceStore {
    let (_, records) = pool();
    let mut store = match overlay {
        false => store_of(root),
        true => EvidenceStore::overlay(Arc::new(store_of(root))),
    };
    for &i in held {
        store.insert(Arc::clone(&records[i % records.len()]));
    }
    store
}

fn subset() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..64, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn merge_is_commutative(a in subset(), b in subset()) {
        let (a, b) = (store_of(&a), store_of(&b));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in subset(), b in subset(), c in subset()) {
        let (a, b, c) = (store_of(&a), store_of(&b), store_of(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent(a in subset()) {
        let a = store_of(&a);
        prop_assert_eq!(merged(&a, &a), a);
    }

    #[test]
    fn any_delivery_order_or_duplication_gives_one_state(order in subset(), seed in any::<u64>()) {
        let mut shuffled: Vec<usize> = order.iter().chain(order.iter()).copied().collect();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(store_of(&order), store_of(&shuffled));
    }

    #[test]
    fn reconciliation_converges_to_the_merge(a in subset(), b in subset()) {
        let (mut a, mut b) = (store_of(&a), store_of(&b));
        let want = merged(&a, &b);
        let mut message = a.reconcile_start();
        let mut from_a = true;
        for _round in 0..20 {
            if message.is_empty() { break; }
            let (responder, other) = if from_a { (&b, &a) } else { (&a, &b) };
            let reply = responder.reconcile(&message);
            let sends: Vec<_> = reply.send.iter().map(|id| Arc::clone(responder.get(id).unwrap())).collect();
            let wants: Vec<_> = reply.want.iter().map(|id| Arc::clone(other.get(id).unwrap())).collect();
            let (responder, other) = if from_a { (&mut b, &mut a) } else { (&mut a, &mut b) };
            for r in sends { other.insert(r); }
            for r in wants { responder.insert(r); }
            message = reply.parts;
            from_a = !from_a;
        }
        prop_assert!(message.is_empty(), "reconciliation did not finish");
        prop_assert_eq!(&a, &want);
        prop_assert_eq!(&b, &want);
    }

    /// An overlay is indistinguishable from a store that holds its base's
    /// records and then its own.
    #[test]
    fn an_overlay_behaves_as_the_store_it_stands_for(base in subset(), more in subset(), other in subset()) {
        let shared = Arc::new(store_of(&base));
        let mut overlay = EvidenceStore::overlay(Arc::clone(&shared));
        let mut whole = store_of(&base);
        let (_, records) = pool();
        for &i in &more {
            let r = &records[i % records.len()];
            prop_assert_eq!(overlay.insert(Arc::clone(r)), whole.insert(Arc::clone(r)));
        }
        indistinguishable(&overlay, &whole, &other)?;
    }

    /// A store rebased onto another of the mesh (a snapshot grown from the
    /// same base, one itself rebased as the simulator makes them, or an
    /// unrelated store), in full or along a succession of snapshots, is
    /// the store it was: the same answers, and the same answers to the
    /// same later inserts, also after a second rebase.
    #[test]
    fn a_rebased_store_is_the_store_it_was(
        root in subset(),
        first in subset(),
        mine in subset(),
        theirs in subset(),
        later in subset(),
        shape in 0..3u8,
    ) {
        let (_, records) = pool();
        let grown = |base: &Arc<EvidenceStore>, extra: &[usize]| {
            let mut store = EvidenceStore::overlay(Arc::clone(base));
            for &i in extra {
                store.insert(Arc::clone(&records[i % records.len()]));
            }
            store
        };
        let root = Arc::new(store_of(&root));
        let first = Arc::new(grown(&root, &first).rebased(Arc::clone(&root)));
        let mut node = grown(&first, &mine);
        let snapshot = Arc::new(match shape {
            0 => grown(&root, &theirs),
            1 => grown(&root, &theirs).rebased(Arc::clone(&root)),
            _ => store_of(&theirs),
        });
        let mut rebased = node.rebased(Arc::clone(&snapshot));
        let along = node.rebased_along(&Succession::new(Arc::clone(&first), Arc::clone(&snapshot)));
        indistinguishable(&rebased, &node, &theirs)?;
        indistinguishable(&along, &node, &theirs)?;
        prop_assert_eq!(along.difference_len(), rebased.difference_len());
        prop_assert_eq!(rebased.generation(), node.generation());
        for &i in &later {
            let r = &records[i % records.len()];
            prop_assert_eq!(rebased.insert(Arc::clone(r)), node.insert(Arc::clone(r)));
        }
        indistinguishable(&rebased, &node, &mine)?;
        let mut again = rebased.rebased(Arc::new(grown(&root, &later)));
        for &i in &mine {
            let r = &records[i % records.len()];
            prop_assert_eq!(again.insert(Arc::clone(r)), node.insert(Arc::clone(r)));
        }
        indistinguishable(&again, &node, &later)?;
        prop_assert_eq!(again.generation(), node.generation());
        prop_assert_eq!(node.rebased(Arc::new(node.clone())).difference_len(), 0);
    }

    /// A table extended by newcomers' agent records is the table computed
    /// from the grown store, whether the store has no base, a base, or a
    /// base holding some of the newcomers that the store lacks (so the
    /// table lists them unscored among its shared identities); it declines
    /// (and the caller computes in full) only when one of them was scored
    /// before.
    #[test]
    fn a_table_with_newcomers_is_the_table_computed(
        root in subset(),
        held in subset(),
        added in proptest::collection::vec(0usize..6, 1..6),
        in_base in proptest::collection::vec(0usize..6, 0..6),
        shape in 0..3u8,
        epoch in prop::sample::select(vec![0u64, 1_000, 2_000]),
    ) {
        let mut store = root_and_held(&root, &held, shape > 0);
        if shape == 2 {
            let mut base = store_of(&root);
            for &i in &in_base {
                base.insert(Arc::clone(&newcomers()[i]));
            }
            store = store.rebased(Arc::new(base));
        }
        let table = crate::ScoreTable::compute(&store, epoch);
        let mut agents = Vec::new();
        for &i in &added {
            let record = &newcomers()[i];
            store.insert(Arc::clone(record));
            agents.push(record.author());
        }
        let full = crate::ScoreTable::compute(&store, epoch);
        match table.with_newcomers(&store, &agents) {
            Some(extended) => {
                prop_assert_eq!(extended.digest(), full.digest());
                prop_assert_eq!(extended.len(), full.len());
                for did in &agents {
                    prop_assert_eq!(extended.score(did), full.score(did));
                }
                prop_assert_eq!(extended, full);
            }
            None => prop_assert!(agents.iter().any(|did| table.contains(did))),
        }
    }

    /// A table computed around a store's periphery is the table computed
    /// in full, whatever the store's shape (no base, an overlay, a rebased
    /// one, an overlay of an overlay), and the digest handed over for the
    /// rest is the digest of the store rebuilt without the periphery's
    /// records. Each lone agent is named by its own record and inert ones
    /// alone, and every inert slot is about a terminated identity.
    #[test]
    fn a_table_around_the_periphery_is_the_table_computed(
        root in subset(),
        held in subset(),
        added in proptest::collection::vec(0usize..6, 0..6),
        reports in proptest::collection::vec(0usize..3, 0..3),
        shape in 0..4u8,
        epoch in prop::sample::select(vec![0u64, 1_000, 2_000]),
    ) {
        let (w, _) = pool();
        let mut store = root_and_held(&root, &held, shape > 0);
        if shape == 2 {
            store = store.rebased(Arc::new(store_of(&held)));
        }
        for (n, &i) in added.iter().enumerate() {
            // Shape 3: a node over a snapshot that already holds some of
            // the new agents, over the root.
            if shape == 3 && n == added.len() / 2 {
                store = EvidenceStore::overlay(Arc::new(store));
            }
            store.insert(Arc::clone(&newcomers()[i]));
        }
        for &i in &reports {
            store.insert(Arc::clone(&reports_on_terminated()[i]));
        }
        let mut handed = None;
        let table = crate::ScoreTable::compute_around_periphery(&store, epoch, |digest, compute| {
            handed = Some(digest);
            Arc::new(compute())
        });
        prop_assert_eq!(&*table, &crate::ScoreTable::compute(&store, epoch));
        let periphery = store.periphery();
        let aside: HashSet<RecordId> = periphery.record_ids().copied().collect();
        let mut rest = EvidenceStore::new(Arc::new(w.genesis.clone()));
        for record in store.records() {
            if !aside.contains(&record.id()) {
                rest.insert(Arc::clone(record));
            }
        }
        prop_assert_eq!(handed, Some(rest.digest()));
        let inert: HashSet<RecordId> = periphery.inert.iter().flat_map(|s| s.ids.clone()).collect();
        for (did, id) in &periphery.lone {
            let naming: Vec<_> = (store.records())
                .filter(|r| r.author() == *did || r.evidence().subject() == *did)
                .map(|r| r.id())
                .filter(|id| !inert.contains(id))
                .collect();
            prop_assert_eq!(naming, vec![*id]);
        }
        for slot in &periphery.inert {
            for record in slot.ids.iter().map(|id| store.get(id).unwrap()) {
                prop_assert_eq!(record.author(), slot.author);
                prop_assert!(store.is_terminated(&record.evidence().subject()));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
        let mut store = store_of(&[]);
        prop_assert!(store.insert_bytes(&bytes).is_err());
        prop_assert!(store.is_empty());
    }
}

#[test]
fn slots_keep_the_best_and_drop_the_rest() {
    let (w, records) = pool();
    let mut store = store_of(&[]);
    // Outcome summaries from org about agent: counts 1, 2, 3, 4 at indices 0, 2, 4, 6.
    assert_eq!(
        store.insert(Arc::clone(&records[4])),
        Inserted::Added { displaced: None }
    );
    assert_eq!(store.insert(Arc::clone(&records[2])), Inserted::Stale);
    assert_eq!(store.insert(Arc::clone(&records[4])), Inserted::Duplicate);
    assert_eq!(
        store.insert(Arc::clone(&records[6])),
        Inserted::Added {
            displaced: Some(records[4].id())
        }
    );
    assert_eq!(store.len(), 1);
    // 18 violations from org against sub: the pair keeps 16.
    let all: Vec<usize> = (0..records.len()).collect();
    let full = store_of(&all);
    let kept = full
        .slots()
        .filter(|(s, _)| matches!(s, super::store::Slot::Violation(..)))
        .map(|(_, r)| r.count())
        .sum::<usize>();
    assert_eq!(kept, 16);
    assert!(full.is_terminated(&w.org.did()));
    assert!(full.is_revoked(&chain(w).links()[2].id()));
}

#[test]
fn unauthorised_and_malformed_records_are_refused() {
    let (w, _) = pool();
    let g = &w.genesis;
    let kill = |by: &Keypair, mandate| {
        Record::create(
            by,
            g,
            1,
            Evidence::Termination(Termination {
                subject: w.sub.did(),
                reason: String::new(),
                mandate,
            }),
        )
    };
    assert!(matches!(
        kill(&w.org, None),
        Err(EvidenceError::NotAuthorised(_))
    ));
    let c = chain(w);
    // The agent issued the sub-agent's mandate, so it may terminate it by showing that mandate.
    assert!(kill(&w.agent, Some(c.links()[2].clone())).is_ok());
    assert!(matches!(
        kill(&w.org, Some(c.links()[2].clone())),
        Err(EvidenceError::NotAuthorised(_))
    ));
    let revoke = Revocation {
        mandate: c.links()[2].clone(),
        reason: String::new(),
    };
    assert!(matches!(
        Record::create(&w.org, g, 1, Evidence::Revocation(revoke)),
        Err(EvidenceError::NotAuthorised(_))
    ));
    assert_eq!(
        Record::create(&w.org, g, 1, vouch(&w.agent, 101))
            .unwrap_err()
            .to_string(),
        "evidence record: vouch weight must be 0..=100"
    );
    assert_eq!(
        Record::create(&w.org, g, 1, outcome(&w.org, 1, 0))
            .unwrap_err()
            .to_string(),
        "evidence record: an agent cannot report on itself"
    );
    let not_mine = AgentRecord {
        chain: c,
        kem_public_key: Default::default(),
        addrs: vec![],
    };
    assert!(matches!(
        Record::create(&w.agent, g, 1, Evidence::Agent(not_mine)),
        Err(EvidenceError::NotAuthorised(_))
    ));
}

#[test]
fn forged_records_change_nothing() {
    let (_, records) = pool();
    let mut store = store_of(&[0]);
    let mut bytes = records[3].to_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(store.insert_bytes(&bytes).is_err());
    assert!(store.insert_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert_eq!(store, store_of(&[0]));
}

#[test]
fn reconciling_equal_stores_is_one_message() {
    let all: Vec<usize> = (0..30).collect();
    let (a, b) = (store_of(&all), store_of(&all));
    let reply = b.reconcile(&a.reconcile_start());
    assert_eq!(reply, super::reconcile::Reply::default());
    let empty = store_of(&[]);
    let reply = a.reconcile(&empty.reconcile_start());
    assert_eq!(reply.send.len(), a.len());
    assert!(matches!(
        empty.reconcile_start()[0],
        Part::Fingerprint { count: 0, .. }
    ));
}

#[test]
fn a_table_takes_shared_scores_only_of_equal_content() {
    let all: Vec<usize> = (0..pool().1.len()).collect();
    let store = EvidenceStore::overlay(Arc::new(store_of(&all)));
    let table = crate::ScoreTable::compute(&store, 0);
    let mut offered = 0;
    let mut wrong = table.clone();
    wrong.share_scores(|scores| {
        offered = scores.len();
        Arc::new(vec![7; scores.len()])
    });
    assert!(offered > 0, "the shared identities' scores are offered");
    assert_eq!(wrong, table);
    let mut right = table.clone();
    right.share_scores(|scores| Arc::new(scores.as_ref().clone()));
    assert_eq!(right, table);
}

#[test]
fn a_table_outgrows_its_shared_identities_only_when_a_base_would_share_more() {
    let all: Vec<usize> = (0..pool().1.len()).collect();
    let root = Arc::new(store_of(&all));
    let org = long_org();
    let many: Vec<Arc<Record>> = (100..180u8)
        .map(|n| {
            let key = Keypair::from_secret_bytes(&[n; 32]);
            agent_record(
                &key,
                vec![org.clone(), under_org(&org, &key, 10_000_000_000)],
            )
        })
        .collect();
    let agents: Vec<_> = many.iter().map(|r| r.author()).collect();
    let mut plain = (*root).clone();
    let mut node = EvidenceStore::overlay(Arc::clone(&root));
    let (before_plain, before_node) = (
        crate::ScoreTable::compute(&plain, 0),
        crate::ScoreTable::compute(&node, 0),
    );
    for r in &many {
        plain.insert(Arc::clone(r));
        node.insert(Arc::clone(r));
    }
    let plain_table = before_plain.with_newcomers(&plain, &agents).unwrap();
    let node_table = before_node.with_newcomers(&node, &agents).unwrap();
    assert_eq!(plain_table, crate::ScoreTable::compute(&plain, 0));
    assert_eq!(node_table, crate::ScoreTable::compute(&node, 0));
    // No base to share: a plain store's table never outgrows.
    assert!(!plain_table.outgrown(&plain));
    // 80 own identities, but the base is the one the table shares.
    assert!(!node_table.outgrown(&node));
    // Moved onto a snapshot that holds them, the node would share them.
    let rebased = node.rebased(Arc::new(node.rebased(Arc::clone(&root))));
    assert!(node_table.outgrown(&rebased));
    assert!(!crate::ScoreTable::compute(&rebased, 0).outgrown(&rebased));
    // 64 own identities are not yet too many, 65 are.
    let fewer = |n: usize| {
        let mut store = EvidenceStore::overlay(Arc::clone(&root));
        for r in &many[..n] {
            store.insert(Arc::clone(r));
        }
        let table = before_node.with_newcomers(&store, &agents[..n]).unwrap();
        table.outgrown(&store.rebased(Arc::new(node.rebased(Arc::clone(&root)))))
    };
    assert!(!fewer(64));
    assert!(fewer(65));
}

/// Lone agents are the agents a store added over its bottom snapshot that
/// nothing else names: not an agent the snapshot knows, nor one named by
/// another record save reports on a terminated identity. Those reports
/// are the periphery's inert slots.
#[test]
fn the_periphery_is_new_agents_and_reports_on_the_terminated() {
    let (w, records) = pool();
    let all: Vec<usize> = (0..records.len()).collect();
    let root = Arc::new(store_of(&all));
    let mut node = EvidenceStore::overlay(Arc::clone(&root));
    assert_eq!(node.periphery(), Default::default());
    // A new agent, and a second record of the pool's own agent.
    let (fresh, again) = (&newcomers()[1], &newcomers()[5]);
    node.insert(Arc::clone(fresh));
    node.insert(Arc::clone(again));
    let lone = |store: &EvidenceStore| store.periphery().lone;
    assert_eq!(lone(&node), vec![(fresh.author(), fresh.id())]);
    // The first newcomer's sub-agent names it as its mandate's issuer, not
    // in a slot: both stay lone.
    let (first, sub) = (&newcomers()[0], &newcomers()[4]);
    node.insert(Arc::clone(first));
    node.insert(Arc::clone(sub));
    let mut expected: Vec<_> = [fresh, first, sub]
        .iter()
        .map(|r| (r.author(), r.id()))
        .collect();
    expected.sort();
    assert_eq!(lone(&node), expected);
    // Reports on the terminated org leave their authors lone; each is a
    // slot of its own.
    let reports = reports_on_terminated();
    for report in reports {
        node.insert(Arc::clone(report));
    }
    assert_eq!(lone(&node), expected);
    let inert: Vec<_> = (node.periphery().inert.into_iter())
        .map(|s| (s.author, s.ids))
        .collect();
    let mut reported: Vec<_> = (reports.iter())
        .map(|r| (r.author(), vec![r.id()]))
        .collect();
    reported.sort_by_key(|(_, ids)| super::store::Slot::of(&node.get(&ids[0]).unwrap().clone()));
    assert_eq!(inert, reported);
    // A report on anyone else names its author, and a report on a lone
    // agent names it: neither is lone any more.
    let report = |author: u8, subject: &Keypair| {
        let key = Keypair::from_secret_bytes(&[author; 32]);
        Arc::new(Record::create(&key, &w.genesis, 70, violation(subject, 1)).unwrap())
    };
    node.insert(report(21, &w.sub));
    expected.retain(|(did, _)| *did != fresh.author());
    assert_eq!(lone(&node), expected);
    node.insert(report(50, &Keypair::from_secret_bytes(&[20; 32])));
    expected.retain(|(did, _)| *did != first.author());
    assert_eq!(lone(&node), expected);
    // Counted from the bottom snapshot: the same over a snapshot of the
    // node, and none without a snapshot at all.
    let upper = EvidenceStore::overlay(Arc::new(node.clone()));
    assert_eq!(upper.periphery(), node.periphery());
    assert_eq!(store_of(&all).periphery(), Default::default());
    let around =
        crate::ScoreTable::compute_around_periphery(&node, 0, |_, compute| Arc::new(compute()));
    assert_eq!(*around, crate::ScoreTable::compute(&node, 0));
}

/// A large store read through by overlays answers agent lookups from its
/// index, as the store itself answers them: for its agents, for agents it
/// lacks, and for agents whose record an overlay replaced, also through an
/// overlay of an overlay.
#[test]
fn overlays_of_a_large_store_find_its_agents() {
    let (w, records) = pool();
    let org = long_org();
    let mut base = store_of(&(0..records.len()).collect::<Vec<_>>());
    let keys: Vec<Keypair> = (0..1100u32)
        .map(|i| {
            let mut secret = [9u8; 32];
            secret[..4].copy_from_slice(&i.to_le_bytes());
            Keypair::from_secret_bytes(&secret)
        })
        .collect();
    for key in &keys {
        base.insert(agent_record(
            key,
            vec![org.clone(), under_org(&org, key, 10_000_000_000)],
        ));
    }
    let base = Arc::new(base);
    let mut node = EvidenceStore::overlay(Arc::clone(&base));
    let again = &newcomers()[5];
    assert_eq!(again.author(), w.agent.did());
    assert!(matches!(
        node.insert(Arc::clone(again)),
        Inserted::Added { .. }
    ));
    let deeper = EvidenceStore::overlay(Arc::new(node.clone()));
    for store in [&node, &deeper] {
        for key in keys.iter().step_by(7) {
            assert_eq!(store.agent(&key.did()), base.agent(&key.did()));
            assert!(store.agent(&key.did()).is_some());
        }
        assert_eq!(store.agent(&w.agent.did()), Some(again));
        assert_ne!(base.agent(&w.agent.did()), Some(again));
        assert_eq!(store.agent(&w.sub.did()), base.agent(&w.sub.did()));
        assert_eq!(store.agent(&w.org.did()), None);
        assert_eq!(store.agent(&newcomers()[0].author()), None);
    }
}

/// A record read from bytes holds its mandates and KEM key as views of
/// those bytes, not as copies: a simulated agent's chain is 521 of its
/// record's 679 bytes, and a real agent's KEM key another 1,216.
#[test]
fn a_records_mandates_and_key_are_views_of_its_bytes() {
    let (w, records) = pool();
    let mut views = 0;
    for record in records {
        let read = Record::from_bytes(record.to_bytes(), &w.genesis).unwrap();
        assert_eq!(read.evidence(), record.evidence());
        let mut parts: Vec<&[u8]> = Vec::new();
        match read.evidence() {
            Evidence::Agent(a) => {
                parts.extend(a.chain.links().iter().map(Mandate::to_bytes));
                parts.push(&a.kem_public_key);
            }
            Evidence::Revocation(r) => parts.push(r.mandate.to_bytes()),
            _ => {}
        }
        let whole = read.to_bytes().as_ptr_range();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let range = part.as_ptr_range();
            assert!(whole.start <= range.start && range.end <= whole.end);
            views += 1;
        }
    }
    // Three links and a key, two links, one revoked mandate.
    assert_eq!(views, 7);
}

/// Every record is as large as its largest kind of evidence, so a mandate
/// (232 bytes) is boxed in the kinds that carry one: inline, it made every
/// record 384 bytes where 192 do.
#[test]
fn records_do_not_carry_a_mandate_inline() {
    let (evidence, record) = (size_of::<Evidence>(), size_of::<Record>());
    assert!(evidence <= 128 && record <= 224, "{evidence} and {record}");
}

proptest! {
    /// A shared set holds what a `BTreeSet` given the same inserts holds,
    /// in order; a copy taken before an insert keeps what it had.
    #[test]
    fn shared_sets_hold_what_a_btree_set_holds(xs in prop::collection::vec(0u8..40, 0..60)) {
        let (mut set, mut model) = (SharedSet::default(), std::collections::BTreeSet::new());
        for x in xs {
            let before = set.clone();
            set.insert(x);
            model.insert(x);
            prop_assert!(set.contains(&x));
            prop_assert_eq!(before.contains(&x), set == before);
        }
        prop_assert!(set.as_slice().iter().eq(model.iter()));
    }
}

/// The range of the first `bits` bits of `id`.
fn range_around(id: &RecordId, bits: u8) -> Range {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id[..8]);
    let prefix = match bits {
        0 => 0,
        _ => u64::from_be_bytes(first) >> (64 - bits) << (64 - bits),
    };
    Range { prefix, bits }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The children's fingerprints summed in one pass are each child's
    /// own, at every depth (buckets above 12 bits, ids below), in a store
    /// with or without a base.
    #[test]
    fn children_fingerprints_are_each_childs_own(
        root in subset(),
        held in subset(),
        overlay in any::<bool>(),
        around in 0usize..64,
        nibbles in 0u8..16,
    ) {
        let store = root_and_held(&root, &held, overlay);
        let (_, records) = pool();
        let range = range_around(&records[around % records.len()].id(), nibbles * 4);
        let each: Vec<Part> = range.children().map(|c| store.fingerprint_part(c)).collect();
        prop_assert_eq!(store.children_parts(range), each);
    }

    /// Answering a list of ids, the store sends what it holds in the range
    /// and the list lacks, and wants exactly the listed ids it lacks, also
    /// those a peer listed outside the range.
    #[test]
    fn a_listed_range_sends_and_wants_exactly_the_difference(
        root in subset(),
        held in subset(),
        overlay in any::<bool>(),
        listed in subset(),
        around in 0usize..64,
        nibbles in 0u8..4,
    ) {
        let store = root_and_held(&root, &held, overlay);
        let (_, records) = pool();
        let range = range_around(&records[around % records.len()].id(), nibbles * 4);
        let ids: Vec<RecordId> = listed.iter().map(|&i| records[i % records.len()].id()).collect();
        let reply = store.reconcile(&[Part::Ids { range, ids: ids.clone() }]);
        let want: Vec<RecordId> = ids.iter().copied().filter(|id| !store.contains(id)).collect();
        let send: Vec<RecordId> = store
            .records()
            .map(|r| r.id())
            .filter(|id| range_around(id, range.bits) == range && !ids.contains(id))
            .collect();
        prop_assert_eq!(reply.want, want);
        prop_assert_eq!(reply.send, send);
        prop_assert!(reply.parts.is_empty());
    }
}
