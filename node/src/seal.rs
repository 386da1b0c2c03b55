//! End-to-end sealing of direct messages (and of private topics' content
//! keys, see [`crate::private`]): hybrid KEM X25519 + ML-KEM-768.
//!
//! Each agent publishes a KEM public key in its signed agent record:
//! `x25519_pk (32) || ml_kem_768_ek (1184)`. To seal, the sender makes a
//! fresh X25519 key and an ML-KEM encapsulation to the recipient, and
//! derives one ChaCha20-Poly1305 key with HKDF-SHA256 from *both* shared
//! secrets, bound to the ephemeral key, the ML-KEM ciphertext, the
//! recipient's public key and both DIDs (the "X-Wing" style combiner, so the
//! seal holds while either primitive holds). A node relaying the frame holds
//! neither secret and cannot read it; any change to any byte fails the AEAD
//! tag. The key is used for one message only, so the nonce is fixed at zero.
//!
//! Sealed form: `version (1) || x25519 ephemeral pk (32) || ml-kem ct (1088) || aead ciphertext`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use ml_kem::kem::{Decapsulate, Encapsulate, KeyExport};
use ml_kem::{DecapsulationKey, EncapsulationKey, MlKem768};
use rand::rand_core::CryptoRng;
use sha2::Sha256;
use starling_trust::Did;
use x25519_dalek::{PublicKey, StaticSecret};

/// Length of the X25519 part of a KEM public key.
pub const X25519_BYTES: usize = 32;
/// Length of an ML-KEM-768 encapsulation key.
pub const ML_KEM_EK_BYTES: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const ML_KEM_CT_BYTES: usize = 1088;
/// Length of a hybrid public key.
pub const PUBLIC_KEY_BYTES: usize = X25519_BYTES + ML_KEM_EK_BYTES;
/// Length of the secret seed a node stores: X25519 secret (32) || ML-KEM seed (64).
pub const SECRET_BYTES: usize = 32 + 64;
const VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + X25519_BYTES + ML_KEM_CT_BYTES;
const TAG_BYTES: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const SEALED_OVERHEAD_BYTES: usize = HEADER_BYTES + TAG_BYTES;
const KDF_SALT: &[u8] = b"starling/v1/seal";

/// Where a direct message travels when its recipient is not a neighbour:
/// a topic of its own, which only the recipient's node delivers.
pub const INBOX_PREFIX: &str = "inbox/";

/// The inbox topic of `did`.
pub fn inbox_topic(did: &Did) -> String {
    format!("{INBOX_PREFIX}{did}")
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The recipient's public key is malformed or missing.
    #[error(
        "the recipient's KEM public key is invalid (expected {PUBLIC_KEY_BYTES} bytes, got {0})"
    )]
    BadPublicKey(usize),
    /// The sealed bytes are too short or of an unknown version.
    #[error("not a sealed message (too short or unknown version)")]
    Malformed,
    /// The tag did not verify: tampered, or sealed for someone else.
    #[error("sealed message failed authentication (tampered, or sealed for another agent)")]
    Tampered,
    /// A private message names 0 or too many members.
    #[error("a private message needs 1..={max} members, got {0}", max = crate::private::MEMBERS_MAX)]
    Members(usize),
    /// This agent is not among a private message's members.
    #[error("this agent is not a member of the private message")]
    NotAMember,
}

/// A node's hybrid KEM secret.
pub struct KemSecret {
    x25519: StaticSecret,
    ml_kem: DecapsulationKey<MlKem768>,
    seed: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for KemSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KemSecret(..)")
    }
}

impl KemSecret {
    /// A fresh secret from a cryptographic RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// The secret with this stored seed.
    pub fn from_seed(seed: &[u8; SECRET_BYTES]) -> Self {
        let mut x = [0u8; 32];
        x.copy_from_slice(&seed[..32]);
        let mut m = [0u8; 64];
        m.copy_from_slice(&seed[32..]);
        Self {
            x25519: StaticSecret::from(x),
            ml_kem: DecapsulationKey::<MlKem768>::from_seed(m.into()),
            seed: *seed,
        }
    }

    /// The seed to store.
    pub fn seed(&self) -> &[u8; SECRET_BYTES] {
        &self.seed
    }

    /// The public key published in the agent record.
    pub fn public_key(&self) -> Vec<u8> {
        let mut pk = Vec::with_capacity(PUBLIC_KEY_BYTES);
        pk.extend_from_slice(PublicKey::from(&self.x25519).as_bytes());
        pk.extend_from_slice(&self.ml_kem.encapsulation_key().to_bytes());
        pk
    }

    /// Opens a message sealed for this key by `sender` to `recipient` (this agent).
    pub fn open(&self, sealed: &[u8], sender: &Did, recipient: &Did) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_BYTES + TAG_BYTES || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let eph: [u8; 32] = sealed[1..33].try_into().map_err(|_| SealError::Malformed)?;
        let ct_bytes = &sealed[33..HEADER_BYTES];
        let ct =
            ml_kem::Ciphertext::<MlKem768>::try_from(ct_bytes).map_err(|_| SealError::Malformed)?;
        let ss_pq = self.ml_kem.decapsulate(&ct);
        let ss_x = self.x25519.diffie_hellman(&PublicKey::from(eph));
        let key = derive(
            ss_x.as_bytes(),
            ss_pq.as_slice(),
            &sealed[..HEADER_BYTES],
            &self.public_key(),
            sender,
            recipient,
        );
        let aad = aad(&sealed[..HEADER_BYTES], sender, recipient);
        decrypt_body(&key, &sealed[HEADER_BYTES..], &aad)
    }
}

/// Seals `plaintext` from `sender` for `recipient`, whose KEM public key is `recipient_pk`.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    recipient_pk: &[u8],
    sender: &Did,
    recipient: &Did,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    if recipient_pk.len() != PUBLIC_KEY_BYTES {
        return Err(SealError::BadPublicKey(recipient_pk.len()));
    }
    let x_pk: [u8; 32] = recipient_pk[..32]
        .try_into()
        .map_err(|_| SealError::BadPublicKey(recipient_pk.len()))?;
    let ek_bytes = ml_kem::Key::<EncapsulationKey<MlKem768>>::try_from(&recipient_pk[32..])
        .map_err(|_| SealError::BadPublicKey(recipient_pk.len()))?;
    let ek = EncapsulationKey::<MlKem768>::new(&ek_bytes)
        .map_err(|_| SealError::BadPublicKey(recipient_pk.len()))?;
    let mut eph_secret = [0u8; 32];
    rng.fill_bytes(&mut eph_secret);
    let eph = StaticSecret::from(eph_secret);
    let ss_x = eph.diffie_hellman(&PublicKey::from(x_pk));
    let (ct, ss_pq) = ek.encapsulate_with_rng(rng);
    let mut out = Vec::with_capacity(HEADER_BYTES + plaintext.len() + TAG_BYTES);
    out.push(VERSION);
    out.extend_from_slice(PublicKey::from(&eph).as_bytes());
    out.extend_from_slice(ct.as_slice());
    let key = derive(
        ss_x.as_bytes(),
        ss_pq.as_slice(),
        &out,
        recipient_pk,
        sender,
        recipient,
    );
    let aad = aad(&out, sender, recipient);
    out.extend_from_slice(&encrypt_body(&key, plaintext, &aad)?);
    Ok(out)
}

/// Encrypts `plaintext` under a key used for this one message only (so the
/// fixed nonce never repeats under a key), authenticating `aad`.
pub(crate) fn encrypt_body(key: &Key, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    ChaCha20Poly1305::new(key)
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::Malformed)
}

/// Decrypts what [`encrypt_body`] produced; any change is `Tampered`.
pub(crate) fn decrypt_body(key: &Key, body: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    ChaCha20Poly1305::new(key)
        .decrypt(&Nonce::default(), Payload { msg: body, aad })
        .map_err(|_| SealError::Tampered)
}

fn aad(header: &[u8], sender: &Did, recipient: &Did) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 64);
    aad.extend_from_slice(header);
    aad.extend_from_slice(sender.as_bytes());
    aad.extend_from_slice(recipient.as_bytes());
    aad
}

fn derive(
    ss_x: &[u8],
    ss_pq: &[u8],
    header: &[u8],
    recipient_pk: &[u8],
    sender: &Did,
    recipient: &Did,
) -> Key {
    let mut ikm = Vec::with_capacity(64);
    ikm.extend_from_slice(ss_pq);
    ikm.extend_from_slice(ss_x);
    let hk = Hkdf::<Sha256>::new(Some(KDF_SALT), &ikm);
    let mut info = aad(header, sender, recipient);
    info.extend_from_slice(recipient_pk);
    let mut key = [0u8; 32];
    hk.expand(&info, &mut key)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
    Key::from(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use starling_trust::Keypair;

    fn parties() -> (Did, Did) {
        (
            Keypair::from_secret_bytes(&[1; 32]).did(),
            Keypair::from_secret_bytes(&[2; 32]).did(),
        )
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (alice, bob) = parties();
        let bob_key = KemSecret::generate(&mut rng);
        let pk = bob_key.public_key();
        assert_eq!(pk.len(), PUBLIC_KEY_BYTES);
        let sealed = seal(&mut rng, &pk, &alice, &bob, b"meet at noon").unwrap();
        assert!(
            !sealed.windows(12).any(|w| w == b"meet at noon"),
            "plaintext visible in the sealed form"
        );
        assert_eq!(
            bob_key.open(&sealed, &alice, &bob).unwrap(),
            b"meet at noon"
        );
        // Every region tampered: header, ML-KEM ciphertext, body, tag.
        for at in [0, 5, 40, HEADER_BYTES + 1, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            assert!(
                bob_key.open(&bad, &alice, &bob).is_err(),
                "tamper at byte {at} went unnoticed"
            );
        }
        // Another agent's key, or a claimed other sender, cannot open it.
        let eve = KemSecret::generate(&mut rng);
        assert_eq!(eve.open(&sealed, &alice, &bob), Err(SealError::Tampered));
        assert_eq!(bob_key.open(&sealed, &bob, &bob), Err(SealError::Tampered));
        assert_eq!(
            bob_key.open(&sealed[..10], &alice, &bob),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn seed_round_trip_gives_the_same_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let key = KemSecret::generate(&mut rng);
        let again = KemSecret::from_seed(key.seed());
        assert_eq!(key.public_key(), again.public_key());
        assert!(seal(&mut rng, &[0; 10], &parties().0, &parties().1, b"x").is_err());
    }
}
