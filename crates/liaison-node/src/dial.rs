//! The client side of the federation: mutual-TLS channels to pinned peers,
//! presenting this node's certificate and accepting only the peer's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::identity::{fingerprint, Identity};
use crate::pb;
use crate::pb::federation_service_client::FederationServiceClient;
use crate::tls;

/// Deadline for a single federation call unless the caller sets a shorter one.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("peer {0} is not pinned")]
    UnknownPeer(String),
    #[error("peer {peer}: bad endpoint {endpoint:?}: {reason}")]
    Endpoint { peer: String, endpoint: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Open channels to peers, keyed by node id and the certificate they pin, so a
/// re-pinned peer never reuses a channel to its old certificate.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, ([u8; 32], Channel)>>,
}

impl Peers {
    /// A lazily connecting channel to `card`'s federation endpoint over
    /// mutual TLS, reused while the card pins the same certificate.
    pub fn channel(&self, identity: &Identity, card: &pb::NodeCard) -> Result<Channel, DialError> {
        let fp = fingerprint(&card.tls_certificate);
        if let Ok(m) = self.channels.lock() {
            if let Some((pinned, ch)) = m.get(&card.node_id) {
                if *pinned == fp {
                    return Ok(ch.clone());
                }
            }
        }
        let ch = dial(identity, card)?;
        if let Ok(mut m) = self.channels.lock() {
            m.insert(card.node_id.clone(), (fp, ch.clone()));
        }
        Ok(ch)
    }

    /// A federation client over [`Peers::channel`].
    pub fn client(
        &self,
        identity: &Identity,
        card: &pb::NodeCard,
    ) -> Result<FederationServiceClient<Channel>, DialError> {
        Ok(FederationServiceClient::new(self.channel(identity, card)?).max_decoding_message_size(16 * 1024 * 1024))
    }

    pub fn forget(&self, node_id: &str) {
        if let Ok(mut m) = self.channels.lock() {
            m.remove(node_id);
        }
    }
}

/// A lazily connecting channel to `card`'s federation endpoint over mutual
/// TLS, presenting `identity`'s certificate and accepting only the card's.
pub fn dial(identity: &Identity, card: &pb::NodeCard) -> Result<Channel, DialError> {
    let cfg = tls::client_config(identity.tls_cert.clone(), identity.tls_key.clone_key(), &card.tls_certificate)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let addr = card.federation_endpoint.clone();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| DialError::Endpoint { peer: card.node_id.clone(), endpoint: addr.clone(), reason: e.to_string() })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let server_name = rustls::pki_types::ServerName::try_from(format!("{}.liaison", card.node_id)).map_err(|e| {
        DialError::Endpoint { peer: card.node_id.clone(), endpoint: addr.clone(), reason: e.to_string() }
    })?;
    let ch = endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri: http::Uri| {
        let connector = connector.clone();
        let addr = addr.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    }));
    Ok(ch)
}
