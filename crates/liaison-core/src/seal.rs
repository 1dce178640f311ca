//! Sealing to a recipient's key (HPKE, RFC 9180: X25519-HKDF-SHA256,
//! HKDF-SHA256, ChaCha20-Poly1305, base mode). Used for messages a hub
//! relays: the hub carries them but cannot read them.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

pub type Kem = X25519HkdfSha256;
pub type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
pub type PublicKey = <Kem as hpke::Kem>::PublicKey;

const INFO: &[u8] = b"liaison relay v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("recipient has no valid sealing key")]
    BadKey,
    #[error("sealing failed")]
    Seal,
    #[error("sender and recipient must not contain NUL")]
    BadParty,
    #[error("the message does not open with this node's key (not for us, or altered)")]
    Open,
}

pub fn derive_keypair(seed: &[u8]) -> (PrivateKey, PublicKey) {
    let ikm = blake3::derive_key("liaison sealing key v1", seed);
    Kem::derive_keypair(&ikm)
}

pub fn public_key_bytes(pk: &PublicKey) -> Vec<u8> {
    pk.to_bytes().to_vec()
}

/// Binds sender and recipient into the ciphertext, so a sealed message
/// cannot be re-addressed. NUL separates them, so neither may contain one:
/// otherwise ("a\0b", "c") and ("a", "b\0c") would share a binding.
fn aad(sender: &str, recipient: &str) -> Option<Vec<u8>> {
    (!sender.contains('\0') && !recipient.contains('\0')).then(|| format!("{sender}\0{recipient}").into_bytes())
}

/// Seals `plaintext` to `recipient_pk`: (encapsulated key, ciphertext).
pub fn seal(
    recipient_pk: &[u8],
    sender: &str,
    recipient: &str,
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), SealError> {
    let pk = PublicKey::from_bytes(recipient_pk).map_err(|_| SealError::BadKey)?;
    let aad = aad(sender, recipient).ok_or(SealError::BadParty)?;
    let (enc, ct) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(&OpModeS::Base, &pk, INFO, plaintext, &aad)
            .map_err(|_| SealError::Seal)?;
    Ok((enc.to_bytes().to_vec(), ct))
}

pub fn open(
    sk: &PrivateKey,
    sender: &str,
    recipient: &str,
    encapped: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let aad = aad(sender, recipient).ok_or(SealError::Open)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped).map_err(|_| SealError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(&OpModeR::Base, sk, &enc, INFO, ciphertext, &aad)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let (sk, pk) = derive_keypair(&[7; 32]);
        let (enc, ct) = seal(&public_key_bytes(&pk), "th", "kh", b"secret").unwrap();
        assert!(!ct.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&sk, "th", "kh", &enc, &ct).unwrap(), b"secret");
        assert_eq!(open(&sk, "th", "la", &enc, &ct), Err(SealError::Open), "re-addressed");
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open(&sk, "th", "kh", &enc, &bad), Err(SealError::Open));
        let (other, _) = derive_keypair(&[8; 32]);
        assert_eq!(open(&other, "th", "kh", &enc, &ct), Err(SealError::Open), "not for us");
        assert_eq!(derive_keypair(&[7; 32]).1, pk, "deterministic");
    }

    /// Fuzzing finding (seal_open): with NUL allowed in an id, a message
    /// sealed from "\0x" to "y" opened as sent from "" to "x\0y".
    #[test]
    fn a_nul_in_an_id_cannot_move_the_binding() {
        let (sk, pk) = derive_keypair(&[7; 32]);
        let pk = public_key_bytes(&pk);
        assert_eq!(seal(&pk, "\0x", "y", b"m"), Err(SealError::BadParty));
        assert_eq!(seal(&pk, "x", "y\0", b"m"), Err(SealError::BadParty));
        let (enc, ct) = seal(&pk, "x", "y", b"m").unwrap();
        assert_eq!(open(&sk, "x\0", "y", &enc, &ct), Err(SealError::Open));
        assert_eq!(open(&sk, "", "x\0y", &enc, &ct), Err(SealError::Open));
        assert_eq!(open(&sk, "x", "y", &enc, &ct).unwrap(), b"m");
    }
}
