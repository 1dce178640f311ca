//! Mutual TLS for the federation port, by certificate pinning.
//!
//! There is no CA: a node trusts exactly the certificates in the cards it has
//! imported. The server's client verifier refuses any certificate that is not
//! pinned (so unknown machines fail the handshake), and the client only
//! accepts the one certificate pinned for the peer it meant to dial. The
//! handshake signatures themselves are still checked with rustls' own code.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::identity::fingerprint;

/// Installs the ring provider as the process default (idempotent).
pub fn install_provider() {
    let _ = ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Pinned certificate fingerprints → node id. Shared by the listener and the
/// peer registry so a `peer add` or `peer remove` takes effect at once.
#[derive(Clone, Default, Debug)]
pub struct PinSet {
    inner: Arc<RwLock<HashMap<[u8; 32], String>>>,
}

impl PinSet {
    pub fn insert(&self, cert_der: &[u8], node_id: &str) {
        if let Ok(mut m) = self.inner.write() {
            m.retain(|_, id| id != node_id);
            m.insert(fingerprint(cert_der), node_id.to_string());
        }
    }
    pub fn remove_node(&self, node_id: &str) {
        if let Ok(mut m) = self.inner.write() {
            m.retain(|_, id| id != node_id);
        }
    }
    /// The node id a certificate is pinned to, if any.
    pub fn node_for(&self, cert_der: &[u8]) -> Option<String> {
        self.inner.read().ok().and_then(|m| m.get(&fingerprint(cert_der)).cloned())
    }
    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
struct PinnedClients {
    pins: PinSet,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.pins.node_for(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::General("client certificate is not pinned by any imported card".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[derive(Debug)]
struct PinnedServer {
    expected: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("server certificate does not match the pinned card".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Server side of the federation port: TLS 1.3, client certificate required and pinned.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pins: PinSet,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let p = provider();
    let verifier = Arc::new(PinnedClients { pins, algs: p.signature_verification_algorithms });
    let mut cfg = rustls::ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// Client side: present our certificate, accept only `peer_cert`.
pub fn client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    peer_cert: &[u8],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let p = provider();
    let verifier =
        Arc::new(PinnedServer { expected: fingerprint(peer_cert), algs: p.signature_verification_algorithms });
    let mut cfg = rustls::ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}
