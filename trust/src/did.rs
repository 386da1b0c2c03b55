//! Self-certifying identities: `did:key` for Ed25519 and its libp2p `PeerId`.
//!
//! A [`Did`] is an Ed25519 public key. Its text form follows the W3C `did:key`
//! method: `did:key:` + multibase base58btc (`z`) of the multicodec
//! `ed25519-pub` prefix (`0xed 0x01`) and the 32 key bytes, so every Starling
//! DID starts `did:key:z6Mk`. The same key, protobuf-encoded and wrapped in an
//! identity multihash, is the node's libp2p `PeerId`; the two forms convert
//! losslessly, which is what lets a transport-authenticated peer *be* the agent.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use libp2p_identity::PeerId;

/// Length of an Ed25519 public key.
pub const DID_KEY_BYTES: usize = 32;

const DID_KEY_PREFIX: &str = "did:key:";
const MULTICODEC_ED25519_PUB: [u8; 2] = [0xed, 0x01];
const MULTIHASH_IDENTITY: u64 = 0x00;
/// A `did:key` string for Ed25519 is 56 characters after the method prefix.
const DID_TEXT_MAX: usize = 128;

/// Why a string, byte slice or `PeerId` is not a Starling DID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// The text does not start with `did:key:`.
    #[error("not a did:key identifier (expected it to start with `did:key:`)")]
    NotDidKey,
    /// The text is far longer than any `did:key`.
    #[error("DID text is {0} bytes long; a did:key for Ed25519 is 56 characters after `did:key:`")]
    TooLong(usize),
    /// The multibase prefix is not `z` (base58btc).
    #[error("did:key must use multibase base58btc (the identifier must start with `z`)")]
    NotBase58Btc,
    /// The identifier contains characters outside the base58btc alphabet.
    #[error("did:key identifier is not valid base58btc: {0}")]
    Base58(String),
    /// The multicodec prefix names a key type other than Ed25519.
    #[error("did:key uses key type {0}; Starling identities are Ed25519 (`z6Mk…`)")]
    UnsupportedKeyType(String),
    /// The key has the wrong number of bytes.
    #[error("an Ed25519 public key is 32 bytes, got {0}")]
    WrongLength(usize),
    /// The bytes are not a valid Ed25519 point, or are a weak (small-order) key.
    #[error("the bytes are not a usable Ed25519 public key")]
    InvalidKey,
    /// The `PeerId` is not an inline (identity-multihash) Ed25519 key.
    #[error("PeerId does not embed an Ed25519 key: {0}")]
    PeerIdNotEd25519(String),
}

/// An agent's or principal's identity: an Ed25519 public key.
///
/// Ordering and equality are by key bytes, which is the tie-breaker the
/// score function uses. Constructing a `Did` checks the point is valid and
/// not of small order, so every `Did` can verify signatures.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Did([u8; DID_KEY_BYTES]);

/// By key bytes, settled by [`Did::prefix`] for nearly every pair: DIDs
/// are compared in every sorted map and search of the cores, and a
/// byte-wise compare of 32 bytes is a call to `memcmp`.
impl Ord for Did {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.prefix().cmp(&other.prefix())).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Did {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A `Did` is its key bytes (equality, order and hash agree), so sets of
/// DIDs can be searched by bytes without first checking them as a key.
impl std::borrow::Borrow<[u8; DID_KEY_BYTES]> for Did {
    fn borrow(&self) -> &[u8; DID_KEY_BYTES] {
        &self.0
    }
}

/// A DID with its curve point decompressed, as checking the DID left it:
/// a signature check by it that follows (reading a signed object names its
/// signer, then verifies) reuses the point rather than decompressing it
/// again, a square root in the field and about a fifth of a verification.
#[derive(Debug, Clone, Copy)]
pub struct KeyedDid {
    did: Did,
    key: VerifyingKey,
}

impl KeyedDid {
    /// The DID of a raw 32-byte Ed25519 public key, and its point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DidError> {
        let raw: [u8; DID_KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| DidError::WrongLength(bytes.len()))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| DidError::InvalidKey)?;
        if key.is_weak() {
            return Err(DidError::InvalidKey);
        }
        Ok(Self { did: Did(raw), key })
    }

    /// The DID.
    pub fn did(&self) -> Did {
        self.did
    }

    /// The key, ready to verify signatures.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl From<&Did> for KeyedDid {
    fn from(did: &Did) -> Self {
        Self {
            did: *did,
            key: did.verifying_key(),
        }
    }
}

impl Did {
    /// The DID of a raw 32-byte Ed25519 public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DidError> {
        KeyedDid::from_bytes(bytes).map(|k| k.did)
    }

    /// The DID of a signing key's own public key, which is a valid point of
    /// large order by construction: no decompression to check it.
    pub(crate) fn of_signing_key(key: &ed25519_dalek::SigningKey) -> Self {
        Self(key.verifying_key().to_bytes())
    }

    /// The raw 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; DID_KEY_BYTES] {
        &self.0
    }

    /// The first 8 key bytes as a number, ordered as DIDs are: keys are
    /// spread evenly, so it places a DID among sorted ones (see
    /// [`crate::uniform`]) and settles most comparisons without the rest.
    pub fn prefix(&self) -> u64 {
        crate::uniform::prefix(&self.0)
    }

    /// The key, ready to verify signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        // Checked at construction; a `Did` always holds a valid point.
        VerifyingKey::from_bytes(&self.0).unwrap_or_else(|_| unreachable!("Did holds a valid key"))
    }

    /// The libp2p `PeerId` of the same key.
    ///
    /// Written out rather than derived through libp2p's public key, which
    /// would decompress the curve point again (a node asks this for every
    /// message it delivers): an identity multihash (code 0, 36 bytes) of
    /// the key's protobuf form, type Ed25519 (field 1 = 1) and the 32 key
    /// bytes (field 2).
    pub fn to_peer_id(&self) -> PeerId {
        let mut bytes = [0u8; 38];
        bytes[..6].copy_from_slice(&[MULTIHASH_IDENTITY as u8, 36, 0x08, 0x01, 0x12, 32]);
        bytes[6..].copy_from_slice(&self.0);
        PeerId::from_bytes(&bytes)
            .unwrap_or_else(|_| unreachable!("an identity multihash of 36 bytes is a PeerId"))
    }

    /// The DID of a `PeerId`, which must inline an Ed25519 public key (as
    /// every libp2p Ed25519 `PeerId` does).
    pub fn from_peer_id(peer: &PeerId) -> Result<Self, DidError> {
        let multihash = peer.as_ref();
        if multihash.code() != MULTIHASH_IDENTITY {
            return Err(DidError::PeerIdNotEd25519(format!(
                "multihash code {:#x} is a hash, not an inline key",
                multihash.code()
            )));
        }
        let key = libp2p_identity::PublicKey::try_decode_protobuf(multihash.digest())
            .map_err(|e| DidError::PeerIdNotEd25519(e.to_string()))?
            .try_into_ed25519()
            .map_err(|e| DidError::PeerIdNotEd25519(e.to_string()))?;
        Self::from_bytes(&key.to_bytes())
    }

    /// A short form for logs: the last 8 characters of the DID.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[full.len() - 8..].to_string()
    }
}

impl FromStr for Did {
    type Err = DidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > DID_TEXT_MAX {
            return Err(DidError::TooLong(text.len()));
        }
        let ident = text
            .strip_prefix(DID_KEY_PREFIX)
            .ok_or(DidError::NotDidKey)?;
        let encoded = ident.strip_prefix('z').ok_or(DidError::NotBase58Btc)?;
        let decoded = bs58::decode(encoded)
            .into_vec()
            .map_err(|e| DidError::Base58(e.to_string()))?;
        let Some(key) = decoded.strip_prefix(&MULTICODEC_ED25519_PUB) else {
            let codec = decoded
                .get(..2)
                .map(hex_pair)
                .unwrap_or_else(|| "none".into());
            return Err(DidError::UnsupportedKeyType(format!(
                "multicodec prefix {codec}"
            )));
        };
        Self::from_bytes(key)
    }
}

fn hex_pair(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 2 + DID_KEY_BYTES];
        raw[..2].copy_from_slice(&MULTICODEC_ED25519_PUB);
        raw[2..].copy_from_slice(&self.0);
        write!(f, "{DID_KEY_PREFIX}z{}", bs58::encode(raw).into_string())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

impl TryFrom<&PeerId> for Did {
    type Error = DidError;

    fn try_from(peer: &PeerId) -> Result<Self, Self::Error> {
        Self::from_peer_id(peer)
    }
}

impl From<Did> for PeerId {
    fn from(did: Did) -> Self {
        did.to_peer_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    /// W3C CCG did-method-key `test-vectors/ed25519-x25519.json`:
    /// (seed, DID, publicKeyBase58).
    const W3C_VECTORS: [(&str, &str, &str); 5] = [
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
            "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
            "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000002",
            "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
            "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000003",
            "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
            "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000004",
            "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
            "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        ),
    ];

    #[test]
    fn w3c_vectors_encode_and_parse() {
        for (seed, did_text, key_b58) in W3C_VECTORS {
            let seed: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
            let keypair = Keypair::from_secret_bytes(&seed);
            let did = keypair.did();
            assert_eq!(did.to_string(), did_text);
            assert_eq!(bs58::encode(did.as_bytes()).into_string(), key_b58);
            let parsed: Did = did_text.parse().unwrap();
            assert_eq!(parsed, did);
        }
    }

    #[test]
    fn peer_id_round_trip_matches_libp2p() {
        for (seed, did_text, _) in W3C_VECTORS {
            let did: Did = did_text.parse().unwrap();
            let mut secret = hex::decode(seed).unwrap();
            let lib_key = libp2p_identity::ed25519::SecretKey::try_from_bytes(&mut secret).unwrap();
            let lib_peer = libp2p_identity::PublicKey::from(
                libp2p_identity::ed25519::Keypair::from(lib_key).public(),
            )
            .to_peer_id();
            assert_eq!(did.to_peer_id(), lib_peer);
            assert_eq!(Did::from_peer_id(&lib_peer).unwrap(), did);
            assert!(lib_peer.to_base58().starts_with("12D3KooW"));
        }
    }

    #[test]
    fn malformed_dids_are_refused_with_a_reason() {
        let cases: [(&str, DidError); 5] = [
            ("did:web:example.com", DidError::NotDidKey),
            ("did:key:f6MkiTBz", DidError::NotBase58Btc),
            (
                "did:key:z0OIl",
                DidError::Base58(
                    "provided string contained invalid character '0' at byte 0".into(),
                ),
            ),
            (
                "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
                DidError::UnsupportedKeyType("multicodec prefix e701".into()),
            ),
            ("did:key:", DidError::NotBase58Btc),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Did>(), Err(want), "{text}");
        }
        assert!("did:key:z6Mk".parse::<Did>().is_err());
        assert_eq!(Did::from_bytes(&[0u8; 31]), Err(DidError::WrongLength(31)));
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(Did::from_bytes(&identity), Err(DidError::InvalidKey));
        assert!(matches!(
            "x".repeat(500).parse::<Did>(),
            Err(DidError::TooLong(500))
        ));
    }

    #[test]
    fn hashed_peer_ids_are_not_dids() {
        let mut sha256_multihash = vec![0x12, 0x20];
        sha256_multihash.extend_from_slice(&[7u8; 32]);
        let peer = PeerId::from_bytes(&sha256_multihash).unwrap();
        assert!(matches!(
            Did::from_peer_id(&peer),
            Err(DidError::PeerIdNotEd25519(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = text.parse::<Did>();
            let _ = format!("did:key:z{text}").parse::<Did>();
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let _ = Did::from_bytes(&bytes);
        }

        #[test]
        fn text_and_peer_id_round_trip(seed in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let did = Keypair::from_secret_bytes(&seed).did();
            proptest::prop_assert_eq!(did.to_string().parse::<Did>().unwrap(), did);
            proptest::prop_assert_eq!(Did::from_peer_id(&did.to_peer_id()).unwrap(), did);
            let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(did.as_bytes()).unwrap();
            proptest::prop_assert_eq!(did.to_peer_id(), libp2p_identity::PublicKey::from(key).to_peer_id());
            proptest::prop_assert!(did.to_string().starts_with("did:key:z6Mk"));
        }

        /// Pairs of unrelated keys, and pairs sharing the first 8 bytes
        /// (a key with a later byte changed, when that is still a key).
        #[test]
        fn order_is_the_key_bytes_order(
            a in proptest::array::uniform32(proptest::num::u8::ANY),
            b in proptest::array::uniform32(proptest::num::u8::ANY),
            at in 8usize..32,
            byte in proptest::num::u8::ANY,
        ) {
            let (a, b) = (Keypair::from_secret_bytes(&a).did(), Keypair::from_secret_bytes(&b).did());
            let mut near = *a.as_bytes();
            near[at] = byte;
            let pairs = [Some((a, b)), Did::from_bytes(&near).ok().map(|n| (a, n))];
            for (x, y) in pairs.into_iter().flatten() {
                proptest::prop_assert_eq!(x.cmp(&y), x.as_bytes().cmp(y.as_bytes()));
                proptest::prop_assert_eq!(y.cmp(&x), y.as_bytes().cmp(x.as_bytes()));
                proptest::prop_assert_eq!(x.prefix() == y.prefix(), x.as_bytes()[..8] == y.as_bytes()[..8]);
            }
        }
    }
}
