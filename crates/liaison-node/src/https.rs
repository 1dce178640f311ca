//! HTTPS for the node's HTTP listeners (the web console, the TAXII server):
//! handshakes run beside the accept loop (bounded), so a slow client cannot
//! stall others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A certificate or key that cannot serve HTTPS.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Handshakes in progress at once.
const HANDSHAKES: usize = 64;

pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

pub fn tls_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let err = |p: &std::path::Path, e: &dyn std::fmt::Display| TlsError(format!("{}: {e}", p.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, &e))?;
    tls_config(chain, key)
}

/// The TLS a listener configured with `tls`, `cert` and `key` serves
/// (None: plain HTTP); paths are relative to the node directory.
pub fn configured(
    node: &crate::node::Node,
    tls: crate::config::ConsoleTls,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    use crate::config::ConsoleTls;
    Ok(match tls {
        ConsoleTls::Off => None,
        ConsoleTls::Node => Some(tls_config(vec![node.identity.tls_cert.clone()], node.identity.tls_key.clone_key())?),
        ConsoleTls::Files => {
            let dir = &node.layout.dir;
            let (cert, key) = (cert.unwrap_or(std::path::Path::new("")), key.unwrap_or(std::path::Path::new("")));
            Some(tls_files(&dir.join(cert), &dir.join(key))?)
        }
    })
}

/// A TLS listener for `axum::serve`.
pub struct Tls {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accept: tokio::task::JoinHandle<()>,
}

impl Tls {
    pub fn new(tcp: TcpListener, cfg: Arc<rustls::ServerConfig>) -> Tls {
        let local = tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(HANDSHAKES);
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let permits = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else { continue };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        let _ = tx.send((s, remote)).await;
                    }
                });
            }
        });
        Tls { rx, local, _accept: accept }
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        self._accept.abort();
    }
}

impl axum::serve::Listener for Tls {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task never ends on its own; if it did, wait forever
            // rather than spin (shutdown still ends the server).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, for either listener (`ConnectInfo<Remote>`).
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub SocketAddr);

impl<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, TcpListener>> for Remote {
    fn connect_info(stream: axum::serve::IncomingStream<'a, TcpListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

impl<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, Tls>> for Remote {
    fn connect_info(stream: axum::serve::IncomingStream<'a, Tls>) -> Self {
        Remote(*stream.remote_addr())
    }
}
