//! Signed envelopes: the one container for everything that claims an origin.
//!
//! An envelope carries the exact encoded body bytes, a payload type and
//! Ed25519 signatures over a domain-separated pre-authentication encoding
//! (PAE, as in DSSE): `"LIAISONv1" SP len(type) SP type SP len(body) SP body`.
//! Receivers verify the signatures over the bytes they received *before*
//! decoding the body, and never re-encode to verify: protobuf encoding is not
//! canonical, so only the received bytes are the signed statement.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::pb;

/// Payload types, one per kind of signed statement.
pub mod payload {
    pub const NODE_CARD: &str = "liaison.v1.NodeCard";
    pub const RECORD: &str = "liaison.v1.Record";
    pub const AGREEMENT: &str = "liaison.v1.Agreement";
    pub const AGREEMENT_NOTICE: &str = "liaison.v1.AgreementNotice";
    pub const AUDIT_CHECKPOINT: &str = "liaison.v1.AuditCheckpoint";
    pub const RECEIPT: &str = "liaison.v1.Receipt";
    pub const CONSENT: &str = "liaison.v1.Consent";
    pub const REQUEST_EVENT: &str = "liaison.v1.RequestEvent";
    pub const VICTIM_CASE: &str = "liaison.v1.VictimCase";
    pub const MEMBER_DIRECTORY: &str = "liaison.v1.MemberDirectory";
    pub const RELAYED_CALL: &str = "liaison.v1.RelayedCall";
    pub const HOLDING: &str = "liaison.v1.Holding";
    pub const WITNESS_STATEMENT: &str = "liaison.v1.WitnessStatement";
}

/// Largest body accepted inside an envelope (4 MiB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("payload type is {found:?}, expected {expected:?}")]
    WrongType { expected: String, found: String },
    #[error("envelope body is {0} bytes, above the limit")]
    TooLarge(usize),
    #[error("envelope has no signature by {0}")]
    MissingSignature(String),
    #[error("signature by {0} does not verify")]
    BadSignature(String),
    #[error("signature by {signer} uses key {found}, expected {expected}")]
    WrongKey { signer: String, expected: String, found: String },
    #[error("body does not decode as {0}: {1}")]
    Decode(String, String),
    #[error("public key is not a valid Ed25519 key")]
    BadKey,
}

/// The bytes that are actually signed.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(payload_type.len()).saturating_add(32));
    out.extend_from_slice(b"LIAISONv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// Short key id: hex of the first 8 bytes of SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}

pub fn verifying_key(bytes: &[u8]) -> Result<VerifyingKey, EnvelopeError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| EnvelopeError::BadKey)?;
    VerifyingKey::from_bytes(&arr).map_err(|_| EnvelopeError::BadKey)
}

/// Seals `body` (already encoded) with one signature.
pub fn seal_bytes(payload_type: &str, body: Vec<u8>, signer_id: &str, key: &SigningKey) -> pb::Envelope {
    let mut env = pb::Envelope { payload_type: payload_type.to_string(), body, signatures: Vec::new() };
    add_signature(&mut env, signer_id, key);
    env
}

/// Encodes `msg` once and seals the resulting bytes.
pub fn seal<M: Message>(payload_type: &str, msg: &M, signer_id: &str, key: &SigningKey) -> pb::Envelope {
    seal_bytes(payload_type, msg.encode_to_vec(), signer_id, key)
}

/// Adds (or replaces) `signer_id`'s signature over the envelope's exact bytes.
pub fn add_signature(env: &mut pb::Envelope, signer_id: &str, key: &SigningKey) {
    let sig = key.sign(&pae(&env.payload_type, &env.body));
    env.signatures.retain(|s| s.signer_id != signer_id);
    env.signatures.push(pb::Signature {
        signer_id: signer_id.to_string(),
        key_id: key_id(&key.verifying_key()),
        signature: sig.to_bytes().to_vec(),
    });
}

/// Checks the payload type and size, and that `signer_id` signed the exact bytes with `key`.
pub fn verify_signer(
    env: &pb::Envelope,
    expected_type: &str,
    signer_id: &str,
    key: &VerifyingKey,
) -> Result<(), EnvelopeError> {
    let sig = signature_of(env, expected_type, signer_id, &key_id(key))?;
    key.verify(&pae(&env.payload_type, &env.body), &sig).map_err(|_| EnvelopeError::BadSignature(signer_id.to_string()))
}

/// Everything [`verify_signer`] checks but the signature itself: the
/// type, the size, and a well-formed signature by `signer_id` under the
/// key `kid`; returns that signature.
fn signature_of(
    env: &pb::Envelope,
    expected_type: &str,
    signer_id: &str,
    kid: &str,
) -> Result<ed25519_dalek::Signature, EnvelopeError> {
    if env.payload_type != expected_type {
        return Err(EnvelopeError::WrongType { expected: expected_type.to_string(), found: env.payload_type.clone() });
    }
    if env.body.len() > MAX_BODY {
        return Err(EnvelopeError::TooLarge(env.body.len()));
    }
    let sig = env
        .signatures
        .iter()
        .find(|s| s.signer_id == signer_id)
        .ok_or_else(|| EnvelopeError::MissingSignature(signer_id.to_string()))?;
    if sig.key_id != kid {
        return Err(EnvelopeError::WrongKey {
            signer: signer_id.to_string(),
            expected: kid.to_string(),
            found: sig.key_id.clone(),
        });
    }
    let bytes: [u8; 64] =
        sig.signature.as_slice().try_into().map_err(|_| EnvelopeError::BadSignature(signer_id.to_string()))?;
    Ok(ed25519_dalek::Signature::from_bytes(&bytes))
}

/// [`verify_signer`] on every envelope of one signer (a page of records
/// from their originator), with one batched Ed25519 verification instead
/// of one each: about half the cost per signature. On failure, the
/// position and error of the first envelope [`verify_signer`] refuses.
///
/// Batch verification checks the cofactored equation, single verification
/// the cofactorless one; they can disagree only on a signature built with
/// the private key and a small-order component, so only by the signer,
/// who decides what its own records say anyway. A batch that fails is
/// checked envelope by envelope, so nothing the single check accepts is
/// refused.
pub fn verify_all(
    envs: &[&pb::Envelope],
    expected_type: &str,
    signer_id: &str,
    key: &VerifyingKey,
) -> Result<(), (usize, EnvelopeError)> {
    let kid = key_id(key);
    let mut messages = Vec::with_capacity(envs.len());
    let mut signatures = Vec::with_capacity(envs.len());
    for (i, env) in envs.iter().enumerate() {
        signatures.push(signature_of(env, expected_type, signer_id, &kid).map_err(|e| (i, e))?);
        messages.push(pae(&env.payload_type, &env.body));
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let keys = vec![*key; envs.len()];
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (i, env) in envs.iter().enumerate() {
        verify_signer(env, expected_type, signer_id, key).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Decodes the body. Call only after [`verify_signer`] succeeded.
pub fn decode<M: Message + Default>(env: &pb::Envelope) -> Result<M, EnvelopeError> {
    M::decode(env.body.as_slice()).map_err(|e| EnvelopeError::Decode(env.payload_type.clone(), e.to_string()))
}

/// Verifies and then decodes.
pub fn open<M: Message + Default>(
    env: &pb::Envelope,
    expected_type: &str,
    signer_id: &str,
    key: &VerifyingKey,
) -> Result<M, EnvelopeError> {
    verify_signer(env, expected_type, signer_id, key)?;
    decode(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn verify_all_accepts_what_each_alone_accepts_and_names_the_first_refused() {
        let k = key(1);
        let envs: Vec<pb::Envelope> = (0..20u8)
            .map(|i| seal(payload::RECORD, &pb::HelloRequest { node_id: format!("n{i}") }, "kh-ntf", &k))
            .collect();
        let all: Vec<&pb::Envelope> = envs.iter().collect();
        let vk = k.verifying_key();
        assert_eq!(verify_all(&all, payload::RECORD, "kh-ntf", &vk), Ok(()));
        assert_eq!(verify_all(&[], payload::RECORD, "kh-ntf", &vk), Ok(()));
        // One altered body among many: the batch fails, and the one is named.
        let mut bad = envs.clone();
        if let Some(b) = bad[13].body.last_mut() {
            *b ^= 1;
        }
        let refs: Vec<&pb::Envelope> = bad.iter().collect();
        assert_eq!(
            verify_all(&refs, payload::RECORD, "kh-ntf", &vk),
            Err((13, EnvelopeError::BadSignature("kh-ntf".into())))
        );
        // Signed by someone else, of another type, or under another key: the
        // same refusals as one by one, before any cryptography.
        let other = seal(payload::RECORD, &pb::HelloRequest::default(), "kh-ntf", &key(2));
        let typed = seal(payload::RECEIPT, &pb::HelloRequest::default(), "kh-ntf", &k);
        for (env, want) in [
            (&other, verify_signer(&other, payload::RECORD, "kh-ntf", &vk)),
            (&typed, verify_signer(&typed, payload::RECORD, "kh-ntf", &vk)),
        ] {
            let mut refs: Vec<&pb::Envelope> = envs.iter().take(3).collect();
            refs.push(env);
            assert!(want.is_err());
            assert_eq!(verify_all(&refs, payload::RECORD, "kh-ntf", &vk), Err((3, want.unwrap_err())));
        }
        assert!(matches!(
            verify_all(&all, payload::RECORD, "th-atpd", &vk),
            Err((0, EnvelopeError::MissingSignature(_)))
        ));
    }

    #[test]
    fn pae_is_length_prefixed() {
        assert_eq!(pae("t", b"ab"), b"LIAISONv1 1 t 2 ab".to_vec());
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key(1);
        let msg = pb::HelloRequest { node_id: "th-atpd".into() };
        let env = seal("x.Hello", &msg, "th-atpd", &k);
        let back: pb::HelloRequest = open(&env, "x.Hello", "th-atpd", &k.verifying_key()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn wrong_type_signer_or_key_is_refused() {
        let k = key(1);
        let env = seal_bytes("a", b"body".to_vec(), "n1", &k);
        assert!(matches!(verify_signer(&env, "b", "n1", &k.verifying_key()), Err(EnvelopeError::WrongType { .. })));
        assert!(matches!(verify_signer(&env, "a", "n2", &k.verifying_key()), Err(EnvelopeError::MissingSignature(_))));
        assert!(matches!(verify_signer(&env, "a", "n1", &key(2).verifying_key()), Err(EnvelopeError::WrongKey { .. })));
    }

    #[test]
    fn a_signature_cannot_be_moved_to_another_type() {
        let k = key(1);
        let mut env = seal_bytes("a", b"body".to_vec(), "n1", &k);
        env.payload_type = "b".into();
        assert_eq!(verify_signer(&env, "b", "n1", &k.verifying_key()), Err(EnvelopeError::BadSignature("n1".into())));
    }

    proptest! {
        #[test]
        fn any_body_change_breaks_the_signature(body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<usize>(), flip in 1u8..=255) {
            let k = key(7);
            let mut env = seal_bytes("t", body, "n", &k);
            let i = idx % env.body.len();
            env.body[i] ^= flip;
            prop_assert_eq!(verify_signer(&env, "t", "n", &k.verifying_key()), Err(EnvelopeError::BadSignature("n".into())));
        }

        #[test]
        fn multiple_signers_verify_independently(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (a, b) = (key(1), key(2));
            let mut env = seal_bytes("t", body, "a", &a);
            add_signature(&mut env, "b", &b);
            prop_assert!(verify_signer(&env, "t", "a", &a.verifying_key()).is_ok());
            prop_assert!(verify_signer(&env, "t", "b", &b.verifying_key()).is_ok());
        }
    }
}
