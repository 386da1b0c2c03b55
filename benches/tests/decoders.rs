//! The in-suite smoke run of the fuzz targets: every decoder driver of
//! `fuzz/` (the very same file) over arbitrary bytes and over mutations of
//! a valid encoding, in debug, in well under a second per decoder. The
//! long runs are `scripts/fuzz.sh`.

// The fuzz crate's public items are crate-private here.
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/lib.rs"]
mod decoders;

use proptest::prelude::*;

/// Every driver (one per fuzz target).
const DRIVERS: [fn(&[u8]); 7] = [
    decoders::wire_frame,
    decoders::mandate,
    decoders::evidence_record,
    decoders::policy_change,
    decoders::genesis,
    decoders::gossip_message,
    decoders::api_request,
];

/// A valid encoding to mutate: the fixed genesis (an envelope that carries
/// an automerge document, the deepest thing any of the decoders reads).
fn valid() -> Vec<u8> {
    decoders::mesh().1.to_bytes().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for drive in DRIVERS {
            drive(&data);
        }
    }

    #[test]
    fn decoders_never_panic_on_a_mutated_valid_encoding(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = valid();
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] ^= byte;
        }
        data.truncate(cut.index(data.len() + 1));
        for drive in DRIVERS {
            drive(&data);
        }
    }
}

#[test]
fn the_valid_encoding_decodes() {
    assert!(starling_trust::Genesis::from_bytes(&valid()).is_ok());
}
