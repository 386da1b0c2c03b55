//! The decoder drivers behind the fuzz targets, one function per decoder.
//!
//! The same file is compiled into the normal test suite (a proptest over
//! arbitrary bytes in `benches/tests/decoders.rs`, via `#[path]`), so the
//! fuzz targets and the in-suite smoke run call exactly the same code.
//!
//! Every decoder here verifies an Ed25519 signature, which random bytes never
//! pass. So each driver feeds the input twice: as raw envelope bytes, and as
//! the *body* of an envelope correctly signed by the mesh's governor, which
//! takes the fuzzer past the signature wall into the body decoders (the
//! automerge change parser, the evidence kinds, the mandate chain rules).
//! The API driver does the same for JSON: the input as a raw body, and as
//! a string placed in every field of a well-formed body, so it reaches the
//! DID, hex, action and rule parsers. The contract checked is the house
//! rule: bad input returns an error and never panics.

use std::sync::{Arc, OnceLock};

use prost::Message;
use starling_gossip::SignedMessage;
use starling_gossip::wire::{Frame, decode_delimited};
use starling_trust::genesis::Params;
use starling_trust::policy::PolicyChange;
use starling_trust::wire::{SignedProto, WIRE_VERSION};
use starling_trust::{Domain, Genesis, GenesisSpec, Keypair, Mandate, MandateChain, Record};

/// The largest frame the drivers accept (the gossip default).
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// A fixed governor and the genesis it created, built once.
pub fn mesh() -> &'static (Keypair, Arc<Genesis>) {
    static MESH: OnceLock<(Keypair, Arc<Genesis>)> = OnceLock::new();
    MESH.get_or_init(|| {
        let governor = Keypair::from_secret_bytes(&[7; 32]);
        let spec = GenesisSpec {
            name: "fuzz".into(),
            other_governors: vec![],
            created_ms: 1_800_000_000_000,
            params: Params::default(),
        };
        let genesis = Genesis::create(&governor, spec)
            .unwrap_or_else(|e| unreachable!("a fixed genesis is valid: {e}"));
        (governor, Arc::new(genesis))
    })
}

/// `body` in an envelope signed by the governor for `domain`.
pub fn signed(domain: Domain, body: &[u8]) -> Vec<u8> {
    signed_over(domain, body, body)
}

/// An envelope carrying `body` whose signature covers `covered` (a
/// message's signature covers the mesh id, then its body).
fn signed_over(domain: Domain, body: &[u8], covered: &[u8]) -> Vec<u8> {
    SignedProto {
        version: WIRE_VERSION,
        body: body.to_vec().into(),
        signature: mesh().0.sign(domain, covered).to_vec(),
    }
    .encode_to_vec()
}

/// Gossip wire: length-delimited framing, then frame decoding.
pub fn wire_frame(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((frame, used))) = decode_delimited(rest, FRAME_BYTES_MAX) {
        let _ = Frame::decode_capped(frame, FRAME_BYTES_MAX);
        rest = &rest[used..];
    }
    let _ = Frame::decode_capped(data, FRAME_BYTES_MAX);
}

/// Mandate links and chains.
pub fn mandate(data: &[u8]) {
    let _ = Mandate::from_bytes(data);
    let _ = MandateChain::from_bytes(data);
    let _ = Mandate::from_bytes(&signed(Domain::Mandate, data));
}

/// Evidence records of the fixed mesh.
pub fn evidence_record(data: &[u8]) {
    let genesis = &mesh().1;
    let _ = Record::from_bytes(data, genesis);
    let _ = Record::from_bytes(&signed(Domain::Evidence, data), genesis);
}

/// Policy change envelopes of the fixed mesh.
pub fn policy_change(data: &[u8]) {
    let genesis = &mesh().1;
    let _ = PolicyChange::from_bytes(data, genesis);
    let _ = PolicyChange::from_bytes(&signed(Domain::PolicyChange, data), genesis);
}

/// Genesis documents.
pub fn genesis(data: &[u8]) {
    let _ = Genesis::from_bytes(data);
    let _ = Genesis::from_bytes(&signed(Domain::Genesis, data));
}

/// Signed gossip messages and direct messages of the fixed mesh.
pub fn gossip_message(data: &[u8]) {
    let mesh_id = mesh().1.id();
    for domain in [Domain::Message, Domain::Direct] {
        let _ = SignedMessage::open(data, FRAME_BYTES_MAX, domain, &mesh_id);
        let envelope = signed_over(domain, data, &[mesh_id.as_slice(), data].concat());
        let _ = SignedMessage::open(&envelope, FRAME_BYTES_MAX, domain, &mesh_id);
    }
}

/// The local API's POST bodies, for every endpoint.
pub fn api_request(data: &[u8]) {
    use starling_node::api::request::{POST_PATHS, decode};
    const NOW_MS: u64 = 1_800_000_000_000;
    for path in POST_PATHS {
        let _ = decode(path, data, NOW_MS);
    }
    let s = String::from_utf8_lossy(data);
    let n = data
        .iter()
        .fold(0u64, |n, b| n.rotate_left(8) ^ u64::from(*b));
    let rule = serde_json::json!({
        "id": s, "priority": n, "actor": s, "action": s, "resource": s, "effect": s, "reason": s,
    });
    let bodies = [
        serde_json::json!({ "topic": s, "payload_hex": s, "members": [s], "task": s }),
        serde_json::json!({ "to": s, "payload": s }),
        serde_json::json!({ "record_hex": s }),
        serde_json::json!({ "kind": "outcome", "subject": s, "success": n % 2 == 0, "severity": n }),
        serde_json::json!({ "subject": s, "weight": n, "expires_ms": n }),
        serde_json::json!({ "subject": s, "reason": s }),
        serde_json::json!({ "did": s, "action": s, "resource": s }),
        serde_json::json!({ "change_hex": s }),
        serde_json::json!({ "put_rules": [rule], "remove_rules": [s] }),
    ];
    for body in bodies {
        let body = body.to_string();
        for path in POST_PATHS {
            let _ = decode(path, body.as_bytes(), NOW_MS);
        }
    }
}
