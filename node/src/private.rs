//! Private topics: messages on `private/...` topics are sealed end to end
//! for a list of member agents.
//!
//! The publisher draws a fresh 32-byte content key, encrypts the payload
//! once with ChaCha20-Poly1305 under it, and wraps the key for each member
//! with the same hybrid KEM as direct messages ([`crate::seal`]: X25519 +
//! ML-KEM-768 through HKDF, bound to both DIDs). The member list and every
//! wrapped key are the body's associated data, together with the topic and
//! the publisher, so a member cannot be swapped, a key re-wrapped, or the
//! envelope moved to another topic without the body failing to open. The
//! gossip message carrying the envelope is signed by the publisher as any
//! other, so relaying nodes forward it but hold no key: they learn the
//! member DIDs and the size, never the content. A member opens its own
//! wrapped key and then the body; anyone else gets [`SealError::NotAMember`].
//!
//! Envelope: `version (1) || members (1) || members × (did (32) || wrapped
//! key (WRAPPED_BYTES)) || body`.

use chacha20poly1305::Key;
use rand::rand_core::CryptoRng;
use starling_trust::Did;
use starling_trust::did::DID_KEY_BYTES;

use crate::seal::{KemSecret, SealError, decrypt_body, encrypt_body, seal};

/// Topics whose messages are sealed for their members.
pub const PRIVATE_PREFIX: &str = "private/";
/// Most members of one private message (each adds `SLOT_BYTES`).
pub const MEMBERS_MAX: usize = 32;
const VERSION: u8 = 2;
const CONTENT_KEY_BYTES: usize = 32;
/// A wrapped content key: a sealed 32-byte message.
const WRAPPED_BYTES: usize = crate::seal::SEALED_OVERHEAD_BYTES + CONTENT_KEY_BYTES;
/// One member's slot.
const SLOT_BYTES: usize = DID_KEY_BYTES + WRAPPED_BYTES;
const TAG_BYTES: usize = 16;
const AAD_TAG: &[u8] = b"starling/v1/private";

/// Whether `topic` is a private topic.
pub fn is_private(topic: &str) -> bool {
    topic.starts_with(PRIVATE_PREFIX)
}

/// Seals `plaintext` from `sender` on `topic` for `members` (each a DID and
/// its KEM public key). The caller includes the sender if it should read it.
pub fn seal_for<R: CryptoRng + ?Sized>(
    rng: &mut R,
    sender: &Did,
    topic: &str,
    members: &[(Did, Vec<u8>)],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    if members.is_empty() || members.len() > MEMBERS_MAX {
        return Err(SealError::Members(members.len()));
    }
    let mut content_key = [0u8; CONTENT_KEY_BYTES];
    rng.fill_bytes(&mut content_key);
    let mut out = Vec::with_capacity(2 + members.len() * SLOT_BYTES + plaintext.len() + TAG_BYTES);
    out.push(VERSION);
    out.push(members.len() as u8);
    for (member, pk) in members {
        out.extend_from_slice(member.as_bytes());
        out.extend_from_slice(&seal(rng, pk, sender, member, &content_key)?);
    }
    let aad = aad(&out, sender, topic);
    out.extend_from_slice(&encrypt_body(&Key::from(content_key), plaintext, &aad)?);
    Ok(out)
}

/// Opens an envelope on `topic` from `sender` as member `me`.
pub fn open_as(
    kem: &KemSecret,
    me: &Did,
    sender: &Did,
    topic: &str,
    envelope: &[u8],
) -> Result<Vec<u8>, SealError> {
    let (&version, rest) = envelope.split_first().ok_or(SealError::Malformed)?;
    let (&count, rest) = rest.split_first().ok_or(SealError::Malformed)?;
    let count = usize::from(count);
    if version != VERSION || count == 0 || count > MEMBERS_MAX {
        return Err(SealError::Malformed);
    }
    let header_len = 2 + count * SLOT_BYTES;
    if rest.len() < count * SLOT_BYTES + TAG_BYTES {
        return Err(SealError::Malformed);
    }
    let mine = rest[..count * SLOT_BYTES]
        .chunks_exact(SLOT_BYTES)
        .find(|slot| slot[..DID_KEY_BYTES] == me.as_bytes()[..])
        .ok_or(SealError::NotAMember)?;
    let key = kem.open(&mine[DID_KEY_BYTES..], sender, me)?;
    let key: [u8; CONTENT_KEY_BYTES] = key.try_into().map_err(|_| SealError::Tampered)?;
    let aad = aad(&envelope[..header_len], sender, topic);
    decrypt_body(&Key::from(key), &envelope[header_len..], &aad)
}

fn aad(header: &[u8], sender: &Did, topic: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_TAG.len() + header.len() + DID_KEY_BYTES + topic.len());
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(sender.as_bytes());
    aad.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    aad.extend_from_slice(topic.as_bytes());
    aad.extend_from_slice(header);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use starling_trust::Keypair;

    #[test]
    fn members_read_others_cannot_and_tampering_is_caught() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let did = |n: u8| Keypair::from_secret_bytes(&[n; 32]).did();
        let (alice, bob, carol, relay) = (did(1), did(2), did(3), did(4));
        let keys: Vec<KemSecret> = (0..4).map(|_| KemSecret::generate(&mut rng)).collect();
        let members = vec![
            (alice, keys[0].public_key()),
            (bob, keys[1].public_key()),
            (carol, keys[2].public_key()),
        ];
        let topic = "private/ops";
        let env = seal_for(&mut rng, &alice, topic, &members, b"launch at dawn").unwrap();
        assert!(!env.windows(6).any(|w| w == b"launch"));
        for (i, m) in [alice, bob, carol].iter().enumerate() {
            assert_eq!(
                open_as(&keys[i], m, &alice, topic, &env).unwrap(),
                b"launch at dawn"
            );
        }
        assert_eq!(
            open_as(&keys[3], &relay, &alice, topic, &env),
            Err(SealError::NotAMember)
        );
        // A member slot taken by someone else's DID still needs the member's key.
        assert_eq!(
            open_as(&keys[3], &bob, &alice, topic, &env),
            Err(SealError::Tampered)
        );
        // Another topic, another claimed sender: refused.
        assert!(open_as(&keys[1], &bob, &alice, "private/other", &env).is_err());
        assert!(open_as(&keys[1], &bob, &carol, topic, &env).is_err());
        // Every byte matters, in every region: header, each slot, body, tag.
        let slot = 2 + SLOT_BYTES;
        for at in [
            0,
            1,
            2 + DID_KEY_BYTES + 3,
            slot + 40,
            env.len() - 20,
            env.len() - 1,
        ] {
            let mut bad = env.clone();
            bad[at] ^= 0x01;
            assert!(
                open_as(&keys[1], &bob, &alice, topic, &bad).is_err(),
                "tamper at {at}"
            );
        }
        assert_eq!(
            open_as(&keys[1], &bob, &alice, topic, &env[..5]),
            Err(SealError::Malformed)
        );
        assert_eq!(
            seal_for(&mut rng, &alice, topic, &[], b"x"),
            Err(SealError::Members(0))
        );
    }
}
