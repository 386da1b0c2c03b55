//! Criterion benches of end-to-end sealing (hybrid X25519 + ML-KEM-768,
//! HKDF, ChaCha20-Poly1305): seal and open one 1 KiB direct message.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use starling_node::seal::{KemSecret, seal};
use starling_trust::Keypair;

fn sealing(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(6);
    let (sender, recipient) = (
        Keypair::from_secret_bytes(&[1; 32]).did(),
        Keypair::from_secret_bytes(&[2; 32]).did(),
    );
    let secret = KemSecret::generate(&mut rng);
    let public = secret.public_key();
    let plaintext = vec![7u8; 1024];
    c.bench_function("seal_1KiB", |b| {
        b.iter(|| seal(&mut rng, &public, &sender, &recipient, &plaintext))
    });
    let sealed = seal(&mut rng, &public, &sender, &recipient, &plaintext)
        .expect("the bench key is a valid recipient key");
    c.bench_function("open_1KiB", |b| {
        b.iter(|| secret.open(&sealed, &sender, &recipient))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = sealing
}
criterion_main!(benches);
