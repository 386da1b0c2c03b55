//! Criterion bench of one gossip state-machine step: the receiver accepts
//! and forwards one fresh signed message (decode, verify the origin's
//! signature and mandate, policy, rate, dedupe, forward, drain outputs).

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use starling_benches::gossip::ForwardPath;

fn gossip(c: &mut Criterion) {
    let mut path = ForwardPath::new(2_000);
    c.bench_function("gossip_step_accept_and_forward", |b| {
        // Frames are signed outside the timed loop: each step needs a fresh
        // message, or it would measure the duplicate path instead.
        b.iter_custom(|iters| {
            let frames = path.frames(iters as usize);
            let start = Instant::now();
            for (now, from, bytes) in frames {
                path.step(now, from, bytes);
            }
            start.elapsed()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = gossip
}
criterion_main!(benches);
