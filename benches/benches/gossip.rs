//! Criterion bench of one gossip state-machine step: accepting and
//! forwarding a signed message.

use criterion::{Criterion, criterion_group, criterion_main};

fn gossip(c: &mut Criterion) {
    c.bench_function("gossip_forward_2000_messages", |b| {
        b.iter(|| starling_benches::gossip::run(2_000, 16, &mut |_| {}))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = gossip
}
criterion_main!(benches);
