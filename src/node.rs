//! A running node's shared state and its two listeners.
//!
//! The federation listener speaks gRPC over mutual TLS with pinned
//! certificates; the local API listener speaks gRPC with bearer tokens. Both
//! serve health and reflection (v1 and v1alpha).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::api;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Layout, NodeConfig, Runtime};
use crate::convert::timestamp;
use crate::federation;
use crate::identity::{Identity, IdentityError};
use crate::pb;
use crate::store::{self, Db, SledStore, StoreError};
use crate::tls::{self, PinSet};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(String),
}

pub struct Node {
    pub identity: Identity,
    pub layout: Layout,
    pub db: Db,
    pub pins: PinSet,
    pub clock: Arc<dyn Clock>,
    pub peers: federation::Peers,
    /// Federation address actually bound (the config may say port 0).
    bound_federation: OnceLock<SocketAddr>,
    /// Wakes the outbox deliverer when something is queued.
    pub outbox_wake: tokio::sync::Notify,
    /// Wakes retention and revocation purges (e.g. on a revocation).
    pub housekeeping_wake: tokio::sync::Notify,
    /// Victim-case steps are read, checked and stored one at a time.
    pub case_steps: tokio::sync::Mutex<()>,
    /// Hub directory updates (pushed and pulled) apply one at a time.
    pub directory_updates: tokio::sync::Mutex<()>,
}

impl Node {
    /// Opens an initialised node directory.
    pub fn open(layout: Layout, clock: Arc<dyn Clock>) -> Result<Arc<Node>, NodeError> {
        let identity = Identity::load(&layout)?;
        let store = SledStore::open(&layout.store())?;
        let signer = store::db_signer(identity.id(), &identity.signing_key);
        let db = Db::new(Arc::new(store), Arc::clone(&clock), Some(signer))?;
        let pins = PinSet::default();
        for peer in store::peers::all(db.store())? {
            if let Some(card) = &peer.card {
                pins.insert(&card.tls_certificate, &card.node_id);
            }
        }
        Ok(Arc::new(Node {
            identity,
            layout,
            db,
            pins,
            clock,
            peers: federation::Peers::default(),
            bound_federation: OnceLock::new(),
            outbox_wake: tokio::sync::Notify::new(),
            housekeeping_wake: tokio::sync::Notify::new(),
            case_steps: tokio::sync::Mutex::new(()),
            directory_updates: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn id(&self) -> &str {
        self.identity.id()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.identity.config
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// This node's signed card, with the endpoint peers should dial.
    pub fn card(&self) -> (pb::NodeCard, pb::Envelope) {
        let bound = self.bound_federation.get().copied().unwrap_or(self.config().listen);
        let endpoint = self.config().advertised_endpoint(bound);
        self.identity.card(&endpoint, timestamp(self.now()))
    }
}

/// Creates a node directory: keys, certificate, config, and the admin user
/// whose token is also written to `admin.token`. Returns the admin token.
pub fn init(layout: &Layout, cfg: &NodeConfig) -> Result<String, NodeError> {
    let token = Identity::init(layout, cfg)?;
    let store = SledStore::open(&layout.store())?;
    let user = pb::User {
        name: "admin".into(),
        role: pb::UserRole::Admin as i32,
        create_time: Some(timestamp(time::OffsetDateTime::now_utc())),
    };
    let mut tx_batch = store::Batch::default();
    let hash = store::users::token_hash(&token);
    tx_batch.put(store::Tree::Tokens, hash.clone().into_bytes(), b"admin".to_vec());
    tx_batch.put(
        store::Tree::Users,
        b"admin".to_vec(),
        prost::Message::encode_to_vec(&store::users::StoredUser { user: Some(user), token_hash: hash }),
    );
    store::Store::apply(&store, &tx_batch)?;
    Ok(token)
}

/// Clock used by `run`: the system clock, shifted by the test-only
/// `LIAISON_CLOCK_OFFSET_SECS` in debug builds (see `clock::offset_from`).
pub fn default_clock() -> Result<Arc<dyn Clock>, String> {
    let value = std::env::var(crate::clock::OFFSET_VAR).ok();
    let offset = crate::clock::offset_from(value.as_deref(), cfg!(debug_assertions))?;
    if !offset.is_zero() {
        tracing::warn!(offset_secs = offset.whole_seconds(), "test-only clock offset in effect");
    }
    Ok(Arc::new(SystemClock { offset }))
}

fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    NodeError,
> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    Ok((v1, v1alpha))
}

fn rpc_span(req: &http::Request<()>) -> tracing::Span {
    tracing::info_span!("rpc", path = %req.uri().path(), peer = tracing::field::Empty, user = tracing::field::Empty)
}

/// Serves both listeners until `shutdown` resolves.
pub async fn serve(node: Arc<Node>, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
    let cfg = node.config().clone();
    let fed_listener = TcpListener::bind(cfg.listen).await.map_err(|e| NodeError::Bind {
        what: "federation listener",
        addr: cfg.listen,
        source: e,
    })?;
    let api_listener = TcpListener::bind(cfg.api).await.map_err(|e| NodeError::Bind {
        what: "API listener",
        addr: cfg.api,
        source: e,
    })?;
    let fed_addr = fed_listener.local_addr().map_err(|e| NodeError::Serve(e.to_string()))?;
    let api_addr = api_listener.local_addr().map_err(|e| NodeError::Serve(e.to_string()))?;
    let _ = node.bound_federation.set(fed_addr);

    let server_tls =
        tls::server_config(node.identity.tls_cert.clone(), node.identity.tls_key.clone_key(), node.pins.clone())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel(64);
    let accept_task = tokio::spawn(async move {
        loop {
            let (tcp, remote) = match fed_listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "federation accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let conn_tx = conn_tx.clone();
            // Handshakes run beside the accept loop so a slow client cannot stall others.
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = conn_tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "federation handshake refused")
                    }
                    Err(_) => tracing::warn!(%remote, "federation handshake timed out"),
                }
            });
        }
    });

    let (fed_health, fed_health_svc) = tonic_health::server::health_reporter();
    fed_health.set_serving::<pb::federation_service_server::FederationServiceServer<federation::FederationApi>>().await;
    let (fed_refl_v1, fed_refl_v1a) = reflection()?;
    let (api_health, api_health_svc) = tonic_health::server::health_reporter();
    api::set_serving(&api_health).await;
    let (api_refl_v1, api_refl_v1a) = reflection()?;

    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stop_fed = stop_tx.subscribe();
    let mut stop_api = stop_tx.subscribe();

    if let Some(addr) = cfg.metrics {
        crate::metrics::install(addr).map_err(NodeError::Serve)?;
        tracing::info!(%addr, "metrics exporter listening");
    }
    let gauges = crate::metrics::spawn_gauges(Arc::clone(&node));
    let background = [
        gauges,
        crate::exchange::outbox::spawn(Arc::clone(&node)),
        crate::exchange::sync::spawn(Arc::clone(&node), Duration::from_secs(cfg.intervals.sync_secs.max(1))),
        crate::exchange::retention::spawn(
            Arc::clone(&node),
            Duration::from_secs(cfg.intervals.housekeeping_secs.max(1)),
        ),
        crate::sop::desk::spawn(Arc::clone(&node), Duration::from_secs(cfg.intervals.deadline_secs.max(1))),
        crate::hub::relay::spawn(Arc::clone(&node)),
    ];

    let fed_server = Server::builder()
        .trace_fn(rpc_span)
        .layer(crate::metrics::RpcLayer { listener: "federation" })
        .add_service(fed_health_svc)
        .add_service(fed_refl_v1)
        .add_service(fed_refl_v1a)
        .add_service(federation::server(Arc::clone(&node)))
        .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async move {
            let _ = stop_fed.recv().await;
        });
    let api_builder = Server::builder().trace_fn(rpc_span).layer(crate::metrics::RpcLayer { listener: "api" });
    let api_router = api::router(api_builder, Arc::clone(&node))
        .add_service(api_health_svc)
        .add_service(api_refl_v1)
        .add_service(api_refl_v1a);
    let api_server = api_router.serve_with_incoming_shutdown(
        TcpListenerStream::new(api_listener).map(|r| {
            r.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        }),
        async move {
            let _ = stop_api.recv().await;
        },
    );

    let runtime = Runtime { federation: fed_addr, api: api_addr, pid: std::process::id() };
    let text = toml::to_string(&runtime).map_err(|e| NodeError::Serve(e.to_string()))?;
    crate::config::replace_private(&node.layout.runtime(), text.as_bytes())?;
    tracing::info!(node = %node.id(), federation = %fed_addr, api = %api_addr, "node is up");

    let fed = tokio::spawn(fed_server);
    let api = tokio::spawn(api_server);
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    accept_task.abort();
    for task in &background {
        task.abort();
    }
    if let Err(e) = node.db.checkpoint_now().await {
        tracing::warn!(error = %e, "final audit checkpoint failed");
    }
    for (name, h) in [("federation", fed), ("api", api)] {
        match tokio::time::timeout(Duration::from_secs(10), h).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(listener = name, error = %e, "server ended with an error")
            }
            Ok(Err(e)) => tracing::warn!(listener = name, error = %e, "server task failed"),
            Err(_) => tracing::warn!(listener = name, "server did not stop within 10s"),
        }
    }
    let _ = std::fs::remove_file(node.layout.runtime());
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
