//! Signed application messages: topic messages and direct messages.
//!
//! Each is signed by its origin agent over the mesh id followed by the
//! exact body bytes carried, and carries the origin's send time (checked
//! against a window to refuse replays once the id has left the dedupe
//! cache) and a sequence number that makes every message unique. The mesh
//! id is signed but not sent: every node knows it, so a message from
//! another mesh fails its signature here, and each hop of each message is
//! 34 bytes shorter. Its id is the SHA-256 of the signed envelope.

use starling_trust::keys::{Domain, Keypair};
use starling_trust::wire::{self, DecodeError, Hash, SignedProto};
use starling_trust::{Did, MeshId};

const WHAT: &str = "message";
/// Longest topic name, in bytes.
pub const TOPIC_BYTES_MAX: usize = 256;
/// Prefix of the reserved system trees.
pub const SYSTEM_PREFIX: &str = "_starling/";

/// A message id: SHA-256 of the signed envelope.
pub type MessageId = Hash;

#[derive(Clone, PartialEq, prost::Message)]
struct MessageBody {
    // Tag 1 was the mesh id, now signed but not sent.
    #[prost(bytes = "vec", tag = "2")]
    origin: Vec<u8>,
    #[prost(string, tag = "3")]
    topic: String,
    #[prost(uint64, tag = "4")]
    seq: u64,
    #[prost(uint64, tag = "5")]
    sent_ms: u64,
    #[prost(bytes = "vec", tag = "6")]
    payload: Vec<u8>,
}

/// A verified message. For a direct message `topic` holds the recipient's DID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    /// Its id.
    pub id: MessageId,
    /// Who signed it.
    pub origin: Did,
    /// The topic (or, for a direct message, the recipient DID).
    pub topic: String,
    /// The origin's sequence number.
    pub seq: u64,
    /// When the origin sent it (Unix ms).
    pub sent_ms: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The signed envelope.
    pub raw: Vec<u8>,
}

impl SignedMessage {
    /// Signs a message on `topic` (or with `domain` Direct, to a recipient).
    pub fn sign(
        origin: &Keypair,
        domain: Domain,
        mesh: &MeshId,
        topic: &str,
        seq: u64,
        sent_ms: u64,
        payload: Vec<u8>,
    ) -> Self {
        let body = MessageBody {
            origin: origin.did().as_bytes().to_vec(),
            topic: topic.to_string(),
            seq,
            sent_ms,
            payload,
        };
        let raw = SignedProto::seal_bound(origin, domain, mesh, &body);
        Self {
            id: wire::sha256(&raw),
            origin: origin.did(),
            topic: body.topic,
            seq,
            sent_ms,
            payload: body.payload,
            raw,
        }
    }

    /// Reads and verifies a message of at most `max` bytes for `mesh`.
    pub fn open(
        bytes: &[u8],
        max: usize,
        domain: Domain,
        mesh: &MeshId,
    ) -> Result<Self, DecodeError> {
        let envelope = SignedProto::open(bytes, max, WHAT)?;
        let body: MessageBody = envelope.body(WHAT)?;
        if body.topic.is_empty() || body.topic.len() > TOPIC_BYTES_MAX {
            return Err(DecodeError::Field {
                what: WHAT,
                field: "topic",
                reason: "must be 1..=256 bytes".into(),
            });
        }
        let origin = wire::signer_field(&body.origin, WHAT, "origin")?;
        envelope.verify_bound(&origin, domain, mesh, WHAT)?;
        Ok(Self {
            id: wire::sha256(bytes),
            origin: origin.did(),
            topic: body.topic,
            seq: body.seq,
            sent_ms: body.sent_ms,
            payload: body.payload,
            raw: bytes.to_vec(),
        })
    }

    /// Encoded size.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the envelope is empty (never, for a signed message).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Checks the body encodes back to what was signed (used by tests).
#[cfg(test)]
fn body_of(message: &SignedMessage) -> MessageBody {
    let env = SignedProto::open(message.raw.as_slice(), usize::MAX, WHAT).unwrap();
    prost::Message::decode(env.body).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_verify_and_forgeries_do_not() {
        let key = Keypair::from_secret_bytes(&[5; 32]);
        let mesh = [1u8; 32];
        let m = SignedMessage::sign(&key, Domain::Message, &mesh, "news", 1, 100, b"hi".to_vec());
        let opened = SignedMessage::open(&m.raw, 1024, Domain::Message, &mesh).unwrap();
        assert_eq!(opened, m);
        assert_eq!(body_of(&m).topic, "news");
        assert!(SignedMessage::open(&m.raw, 1024, Domain::Direct, &mesh).is_err());
        assert!(matches!(
            SignedMessage::open(&m.raw, 1024, Domain::Message, &[2u8; 32]),
            Err(DecodeError::Signature { .. })
        ));
        let mut forged = m.raw.clone();
        let at = forged.len() - 70;
        forged[at] ^= 1;
        assert!(SignedMessage::open(&forged, 1024, Domain::Message, &mesh).is_err());
        assert!(matches!(
            SignedMessage::open(&m.raw, 10, Domain::Message, &mesh),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = SignedMessage::open(&bytes, 256, Domain::Message, &[0; 32]);
        }
    }
}
