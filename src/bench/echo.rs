//! The baseline every figure is compared with: a bare tonic unary echo
//! over the same mutual TLS as the federation port (the same rustls
//! configuration, certificates and pinning), served by its own process so
//! that it pays for the same process boundary as a node.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Server};

use crate::config::Layout;
use crate::identity::Identity;

/// The echo's message: bytes, as `google.protobuf.BytesValue` on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesValue {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
}

const PATH: &str = "/liaison.bench.Echo/Echo";

/// The echo service: answers every request with its own payload.
#[derive(Clone, Default)]
struct EchoService;

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "liaison.bench.Echo";
}

struct Unary;

impl tonic::server::UnaryService<BytesValue> for Unary {
    type Response = BytesValue;
    type Future = std::future::Ready<Result<tonic::Response<BytesValue>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<BytesValue>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != PATH {
                let mut res = http::Response::new(tonic::body::Body::default());
                res.headers_mut().insert(tonic::Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
                return Ok(res);
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<BytesValue, BytesValue>::default());
            Ok(grpc.unary(Unary, req).await)
        })
    }
}

/// Serves the echo with `server`'s certificate, accepting only `client`'s,
/// until the process is stopped. Prints the bound address on stdout.
pub async fn serve(server: &Layout, client: &Layout) -> Result<(), String> {
    let id = Identity::load(server).map_err(|e| format!("{}: {e}", server.dir.display()))?;
    let peer = Identity::load(client).map_err(|e| format!("{}: {e}", client.dir.display()))?;
    let pins = crate::tls::PinSet::default();
    pins.insert(&peer.tls_cert, peer.id());
    let cfg =
        crate::tls::server_config(id.tls_cert.clone(), id.tls_key.clone_key(), pins).map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{addr}");
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                }
            });
        }
    });
    Server::builder()
        .add_service(EchoService)
        .serve_with_incoming(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())
}

/// A client of the echo at `addr`, presenting `client`'s certificate and
/// accepting only `server`'s (as a node dials a pinned peer).
pub fn client(client: &Identity, server: &Identity, addr: std::net::SocketAddr) -> Result<Echo, String> {
    let cfg = crate::tls::client_config(client.tls_cert.clone(), client.tls_key.clone_key(), &server.tls_cert)
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name =
        rustls::pki_types::ServerName::try_from(format!("{}.liaison", server.id())).map_err(|e| e.to_string())?;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Ok::<_, std::io::Error>(TokioIo::new(connector.connect(name, tcp).await?))
            }
        }));
    Ok(Echo { grpc: tonic::client::Grpc::new(channel) })
}

#[derive(Clone)]
pub struct Echo {
    grpc: tonic::client::Grpc<Channel>,
}

impl Echo {
    pub async fn echo(&mut self, payload: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        self.grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<BytesValue, BytesValue>::default();
        let path = http::uri::PathAndQuery::from_static(PATH);
        let res = self.grpc.unary(tonic::Request::new(BytesValue { value: payload }), path, codec).await?;
        Ok(res.into_inner().value)
    }
}
