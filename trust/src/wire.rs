//! The wire and storage encoding: prost messages derived in Rust.
//!
//! Every signed object travels as a [`SignedProto`] carrying the exact body
//! bytes that were signed; decoders verify those bytes and keep them, and
//! never re-encode before verifying. Every decoder takes a size cap first and
//! reports what was wrong in words a user can act on.

use bytes::{Buf, Bytes};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::did::{Did, DidError, KeyedDid};
use crate::keys::{self, Domain, Keypair, SignatureError};

/// The only envelope version this build reads and writes.
pub const WIRE_VERSION: u32 = 1;

/// A SHA-256 digest: record ids, mandate ids, mesh ids.
pub type Hash = [u8; 32];

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// Why bytes could not be read as a Starling object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than the cap for this kind of object.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not a valid protobuf encoding of the object.
    #[error("{what} is not well-formed: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf decoder's complaint.
        reason: String,
    },
    /// Written by an incompatible version.
    #[error("{what} has wire version {got}; this build reads version {WIRE_VERSION}")]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        got: u32,
    },
    /// A field holds an invalid value.
    #[error("{what}: field `{field}` {reason}")]
    Field {
        /// What was being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A DID field is not a valid Ed25519 key.
    #[error("{what}: field `{field}`: {source}")]
    Did {
        /// What was being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// Why the key is invalid.
        source: DidError,
    },
    /// The signature does not verify.
    #[error("{what}: {source}")]
    Signature {
        /// What was being decoded.
        what: &'static str,
        /// Why the signature failed.
        source: SignatureError,
    },
}

/// Whether a decoder checks signatures. Only bytes this process has just
/// signed skip the check: anything received is always verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Check every signature.
    Signature,
    /// The bytes were signed a moment ago by this process.
    Skip,
}

/// Decodes a protobuf message after checking its size.
pub fn decode_capped<M: Message + Default>(
    bytes: impl Buf,
    max: usize,
    what: &'static str,
) -> Result<M, DecodeError> {
    if bytes.remaining() > max {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.remaining(),
            max,
        });
    }
    M::decode(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// Reads a DID from a 32-byte field.
pub fn did_field(
    bytes: &[u8],
    what: &'static str,
    field: &'static str,
) -> Result<Did, DecodeError> {
    signer_field(bytes, what, field).map(|k| k.did())
}

/// Reads a DID field naming who signed, its point kept for the check.
pub fn signer_field(
    bytes: &[u8],
    what: &'static str,
    field: &'static str,
) -> Result<KeyedDid, DecodeError> {
    KeyedDid::from_bytes(bytes).map_err(|source| DecodeError::Did {
        what,
        field,
        source,
    })
}

/// Reads a 32-byte hash field.
pub fn hash_field(
    bytes: &[u8],
    what: &'static str,
    field: &'static str,
) -> Result<Hash, DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::Field {
        what,
        field,
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    })
}

/// A signed object: the exact body bytes, and a signature over them.
#[derive(Clone, PartialEq, Message)]
pub struct SignedProto {
    /// Envelope version, [`WIRE_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The encoded body, exactly as signed. Opened from [`Bytes`], it is a
    /// view of them, as are the byte fields of a body read from it (see
    /// [`SignedProto::body`]).
    #[prost(bytes = "bytes", tag = "2")]
    pub body: Bytes,
    /// Ed25519 signature over `domain || body`.
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}

impl SignedProto {
    /// Encodes `body`, signs it for `domain` and returns the envelope bytes.
    pub fn seal(key: &Keypair, domain: Domain, body: &impl Message) -> Vec<u8> {
        Self::seal_bound(key, domain, &[], body)
    }

    /// As [`SignedProto::seal`], but the signature covers `context` (a mesh
    /// id, say) before the body: bound to it without carrying it.
    pub fn seal_bound(
        key: &Keypair,
        domain: Domain,
        context: &[u8],
        body: &impl Message,
    ) -> Vec<u8> {
        let body = body.encode_to_vec();
        let signature = key.sign(domain, &bound(context, &body)).to_vec();
        Self {
            version: WIRE_VERSION,
            body: body.into(),
            signature,
        }
        .encode_to_vec()
    }

    /// Decodes an envelope of at most `max` bytes and checks its version.
    pub fn open(bytes: impl Buf, max: usize, what: &'static str) -> Result<Self, DecodeError> {
        let envelope: Self = decode_capped(bytes, max, what)?;
        if envelope.version != WIRE_VERSION {
            return Err(DecodeError::Version {
                what,
                got: envelope.version,
            });
        }
        Ok(envelope)
    }

    /// Decodes the body as `M`.
    pub fn body<M: Message + Default>(&self, what: &'static str) -> Result<M, DecodeError> {
        M::decode(self.body.clone()).map_err(|e| DecodeError::Malformed {
            what,
            reason: e.to_string(),
        })
    }

    /// Checks the signature over the body by `signer`.
    pub fn verify(
        &self,
        signer: &KeyedDid,
        domain: Domain,
        what: &'static str,
    ) -> Result<(), DecodeError> {
        self.verify_bound(signer, domain, &[], what)
    }

    /// Checks a signature made by [`SignedProto::seal_bound`] for `context`.
    pub fn verify_bound(
        &self,
        signer: &KeyedDid,
        domain: Domain,
        context: &[u8],
        what: &'static str,
    ) -> Result<(), DecodeError> {
        keys::verify_keyed(signer, domain, &bound(context, &self.body), &self.signature)
            .map_err(|source| DecodeError::Signature { what, source })
    }
}

/// What a signature covers: `context`, then the body (the body alone, not
/// copied, without a context).
fn bound<'a>(context: &[u8], body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match context.is_empty() {
        true => std::borrow::Cow::Borrowed(body),
        false => std::borrow::Cow::Owned([context, body].concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn envelope_decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = SignedProto::open(bytes.as_slice(), 256, "envelope");
        }

        #[test]
        fn envelope_round_trips(body in proptest::collection::vec(proptest::num::u8::ANY, 0..100), sig in proptest::collection::vec(proptest::num::u8::ANY, 0..70)) {
            let env = SignedProto { version: WIRE_VERSION, body: body.into(), signature: sig };
            let bytes = env.encode_to_vec();
            proptest::prop_assert_eq!(SignedProto::open(bytes.as_slice(), 1024, "envelope").unwrap(), env);
        }
    }

    #[test]
    fn caps_and_versions_are_enforced() {
        let env = SignedProto {
            version: 2,
            body: vec![1, 2].into(),
            signature: vec![],
        }
        .encode_to_vec();
        assert_eq!(
            SignedProto::open(env.as_slice(), 1024, "thing"),
            Err(DecodeError::Version {
                what: "thing",
                got: 2
            })
        );
        assert_eq!(
            SignedProto::open(env.as_slice(), 3, "thing"),
            Err(DecodeError::TooLarge {
                what: "thing",
                len: env.len(),
                max: 3
            })
        );
    }
}
