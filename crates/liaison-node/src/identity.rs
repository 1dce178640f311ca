//! A node's identity: its Ed25519 signing key, its TLS key and self-signed
//! certificate, and the signed node card that binds them to its id.
//!
//! Peers pin the exact certificate from the card; there is no CA. A card is
//! only accepted when its signature verifies against the key inside it
//! (self-signed), so whoever imports it binds id, key and certificate at once.

use crate::convert::ProtoEnum;
use std::fs;

use ed25519_dalek::SigningKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError, Layout, NodeConfig};
use crate::envelope::{self, payload, EnvelopeError};
use crate::pb;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error("card: {0}")]
    Card(#[from] EnvelopeError),
    #[error("card.{field}: {reason}")]
    CardField { field: &'static str, reason: String },
}

pub struct Identity {
    pub config: NodeConfig,
    pub signing_key: SigningKey,
    pub tls_cert: CertificateDer<'static>,
    pub tls_key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            signing_key: self.signing_key.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone_key(),
        }
    }
}

/// SHA-256 of a DER certificate: the pin.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!("lsn_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh TLS key and self-signed certificate for the node (PEM key, PEM cert).
fn new_tls(cfg: &NodeConfig) -> Result<(String, String), IdentityError> {
    let key_pair = rcgen::KeyPair::generate().map_err(|e| IdentityError::Invalid(format!("TLS key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(vec![format!("{}.liaison", cfg.id)])
        .map_err(|e| IdentityError::Invalid(format!("certificate: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cfg.id.clone());
    params.distinguished_name.push(rcgen::DnType::OrganizationName, cfg.organisation.clone());
    let cert = params.self_signed(&key_pair).map_err(|e| IdentityError::Invalid(format!("certificate: {e}")))?;
    Ok((key_pair.serialize_pem(), cert.pem()))
}

impl Identity {
    /// Replaces the TLS key and certificate of a stopped node; the signing key
    /// (the node's identity) stays. Returns the new certificate's fingerprint.
    /// Peers pin the new certificate when they import the new card.
    pub fn rotate_tls(layout: &Layout) -> Result<[u8; 32], IdentityError> {
        let old = Self::load(layout)?;
        let (key, cert) = new_tls(&old.config)?;
        // Certificate first: a node that stops between the two writes fails to
        // start with a clear key mismatch instead of serving a stale pair.
        config::replace_private(&layout.tls_cert(), cert.as_bytes())?;
        config::replace_private(&layout.tls_key(), key.as_bytes())?;
        let new = Self::load(layout)?;
        Ok(fingerprint(&new.tls_cert))
    }

    /// Creates a new node in `layout.dir`: config, keys, certificate and admin
    /// token, all owner-only. Refuses to touch a directory that already holds a node.
    /// Returns the admin token.
    pub fn init(layout: &Layout, cfg: &NodeConfig) -> Result<String, IdentityError> {
        cfg.validate()?;
        if layout.exists() {
            return Err(IdentityError::Invalid(format!(
                "{} already holds a node; refusing to overwrite it",
                layout.dir.display()
            )));
        }
        config::create_private_dir(&layout.dir)?;
        let signing = SigningKey::generate(&mut rand::rng());
        let (tls_key, tls_cert) = new_tls(cfg)?;
        let token = new_token();
        let text = toml::to_string(cfg).map_err(|e| IdentityError::Invalid(e.to_string()))?;
        // Keys first, config last: a directory without node.toml is not a node yet.
        config::write_private(&layout.signing_key(), hex::encode(signing.to_bytes()).as_bytes())?;
        config::write_private(&layout.tls_key(), tls_key.as_bytes())?;
        config::write_private(&layout.tls_cert(), tls_cert.as_bytes())?;
        config::write_private(&layout.admin_token(), token.as_bytes())?;
        config::write_private(&layout.config(), text.as_bytes())?;
        Ok(token)
    }

    pub fn load(layout: &Layout) -> Result<Self, IdentityError> {
        let config = NodeConfig::load(layout)?;
        let read = |p: std::path::PathBuf| fs::read(&p).map_err(|e| IdentityError::Config(ConfigError::io(&p, e)));
        let key_hex = read(layout.signing_key())?;
        let key_bytes: [u8; 32] = hex::decode(String::from_utf8_lossy(&key_hex).trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| IdentityError::Invalid("signing.key is not 32 hex-encoded bytes".into()))?;
        let signing_key = SigningKey::from_bytes(&key_bytes);
        let tls_cert = CertificateDer::from_pem_slice(&read(layout.tls_cert())?)
            .map_err(|e| IdentityError::Invalid(format!("tls.crt: {e}")))?;
        let tls_key = PrivateKeyDer::from_pem_slice(&read(layout.tls_key())?)
            .map_err(|e| IdentityError::Invalid(format!("tls.key: {e}")))?;
        Ok(Self { config, signing_key, tls_cert, tls_key })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// This node's card for the given published endpoint, signed with its key.
    pub fn card(&self, endpoint: &str, now: pbjson_types::Timestamp) -> (pb::NodeCard, pb::Envelope) {
        let c = &self.config;
        let card = pb::NodeCard {
            node_id: c.id.clone(),
            display_name: c.name.clone(),
            organisation: c.organisation.clone(),
            country: c.country.clone(),
            region: c.region.clone(),
            role: c.role.to_pb() as i32,
            federation_endpoint: endpoint.to_string(),
            tls_certificate: self.tls_cert.to_vec(),
            signing_public_key: self.signing_key.verifying_key().to_bytes().to_vec(),
            issue_time: Some(now),
            sealing_public_key: crate::seal::public_key_bytes(&self.sealing_keypair().1),
        };
        let env = envelope::seal(payload::NODE_CARD, &card, &c.id, &self.signing_key);
        (card, env)
    }

    /// The X25519 key pair messages relayed through hubs are sealed to. It is
    /// derived from the signing key (domain-separated), so it needs no file of its own.
    pub fn sealing_keypair(&self) -> (crate::seal::PrivateKey, crate::seal::PublicKey) {
        crate::seal::derive_keypair(&self.signing_key.to_bytes())
    }
}

/// Verifies a self-signed card: type, size, the signature by the id inside
/// over the exact bytes, and the fields. Decoding happens only to learn which
/// key to check; the signature is checked over the received bytes, and
/// nothing from the card is used unless it verifies.
pub fn verify_card(env: &pb::Envelope) -> Result<pb::NodeCard, IdentityError> {
    if env.payload_type != payload::NODE_CARD {
        return Err(
            EnvelopeError::WrongType { expected: payload::NODE_CARD.into(), found: env.payload_type.clone() }.into()
        );
    }
    if env.body.len() > 64 * 1024 {
        return Err(EnvelopeError::TooLarge(env.body.len()).into());
    }
    // A self-signed statement names its own key, so the body must be read
    // before the check; it is discarded if the check fails.
    let card: pb::NodeCard = envelope::decode(env)?;
    let key = envelope::verifying_key(&card.signing_public_key)?;
    envelope::verify_signer(env, payload::NODE_CARD, &card.node_id, &key)?;
    if !config::valid_node_id(&card.node_id) {
        return Err(IdentityError::CardField {
            field: "node_id",
            reason: format!("{:?} is not a valid node id", card.node_id),
        });
    }
    if card.tls_certificate.is_empty() || card.tls_certificate.len() > 16 * 1024 {
        return Err(IdentityError::CardField { field: "tls_certificate", reason: "missing or too large".into() });
    }
    // Peers dial this endpoint: a card that could not be dialled (or that
    // smuggles a scheme or path into the URI built from it) is refused.
    config::check_endpoint(&card.federation_endpoint)
        .map_err(|reason| IdentityError::CardField { field: "federation_endpoint", reason })?;
    if pb::NodeRole::of(card.role).is_none_or(|r| r == pb::NodeRole::Unspecified) {
        return Err(IdentityError::CardField { field: "role", reason: "unknown role".into() });
    }
    if card.display_name.trim().is_empty() || card.display_name.chars().count() > 200 {
        return Err(IdentityError::CardField { field: "display_name", reason: "must be 1-200 characters".into() });
    }
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, Role};

    fn cfg(id: &str) -> NodeConfig {
        NodeConfig {
            id: id.into(),
            name: "Unit".into(),
            organisation: "Police".into(),
            country: "TH".into(),
            region: String::new(),
            role: Role::National,
            listen: "127.0.0.1:0".parse().unwrap(),
            api: "127.0.0.1:0".parse().unwrap(),
            endpoint: String::new(),
            log_format: LogFormat::Human,
            metrics: None,
            intervals: Default::default(),
            limits: Default::default(),
            storage: Some(crate::config::Storage::key_file(crate::config::STORE_KEY_FILE)),
            console: Default::default(),
            taxii: Default::default(),
        }
    }

    #[test]
    fn init_load_and_card_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("n"));
        let token = Identity::init(&layout, &cfg("th-atpd")).unwrap();
        assert!(token.starts_with("lsn_"));
        assert!(Identity::init(&layout, &cfg("th-atpd")).is_err(), "must refuse to overwrite");
        let id = Identity::load(&layout).unwrap();
        let (card, env) = id.card("127.0.0.1:1", Default::default());
        assert_eq!(verify_card(&env).unwrap(), card);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [layout.signing_key(), layout.tls_key(), layout.admin_token(), layout.config()] {
                assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
            }
        }
    }

    #[test]
    fn a_card_edited_after_signing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("n"));
        Identity::init(&layout, &cfg("th-atpd")).unwrap();
        let id = Identity::load(&layout).unwrap();
        let (mut card, env) = id.card("127.0.0.1:1", Default::default());
        // Re-encode with another id but keep the old signature.
        card.node_id = "kh-antht".into();
        let forged = pb::Envelope { body: prost::Message::encode_to_vec(&card), ..env.clone() };
        assert!(verify_card(&forged).is_err());
        let mut flipped = env;
        let last = flipped.body.len() - 1;
        flipped.body[last] ^= 1;
        assert!(verify_card(&flipped).is_err());
    }

    #[test]
    fn a_card_with_an_endpoint_peers_cannot_dial_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("n"));
        Identity::init(&layout, &cfg("th-atpd")).unwrap();
        let id = Identity::load(&layout).unwrap();
        for bad in ["th.example", "th.example:0", "https://th.example:7443/x", "th atpd:7443"] {
            let (_, env) = id.card(bad, Default::default());
            match verify_card(&env) {
                Err(IdentityError::CardField { field: "federation_endpoint", .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
