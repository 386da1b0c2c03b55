//! Criterion benches of the trust core: policy decide, score recompute,
//! evidence merge and signature verification.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use starling_benches::trust::{Mesh, decide_latencies_ns, policy_with_rules};
use starling_trust::{EvidenceStore, Params, ScoreTable};

fn trust(c: &mut Criterion) {
    let mesh = Mesh::new(Params::default());
    let (policy, dids) = policy_with_rules(&mesh, 1_000, 7);
    c.bench_function("policy_decide_1000_rules_x1000", |b| {
        b.iter(|| decide_latencies_ns(&policy, &dids, 1_000, 3))
    });

    let (store, records) = mesh.build(5_000, 2);
    c.bench_function("score_recompute_5k_agents_50k_records", |b| {
        b.iter(|| ScoreTable::compute(&store, 24))
    });
    c.bench_function("evidence_merge_50k_records", |b| {
        b.iter(|| {
            let mut empty = EvidenceStore::new(Arc::clone(&mesh.genesis));
            empty.merge(&store);
            empty
        })
    });
    let key = starling_trust::Keypair::from_secret_bytes(&[3; 32]);
    let (did, body) = (key.did(), vec![5u8; 256]);
    let signature = key.sign(starling_trust::Domain::Message, &body);
    c.bench_function("signature_verify_256B", |b| {
        b.iter(|| {
            starling_trust::keys::verify(&did, starling_trust::Domain::Message, &body, &signature)
        })
    });
    c.bench_function("record_decode_and_verify", |b| {
        let bytes = records[1].to_bytes();
        b.iter(|| starling_trust::Record::from_bytes(bytes, &mesh.genesis))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = trust
}
criterion_main!(benches);
