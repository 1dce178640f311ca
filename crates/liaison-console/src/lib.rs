//! liaison's web console: the daily work of officers, heads of unit,
//! secretariats and auditors in a browser.
//!
//! The console is an adapter. Every page and action calls the same
//! handlers the local gRPC API serves ([`liaison_node::api`]), in process,
//! as the signed-in user: roles, validation, the policy engine and the
//! audit log apply unchanged, and no rule lives here. What is here: sign-in
//! and sessions, CSRF checks, translations, and HTML.

#![forbid(unsafe_code)]

pub mod csrf;
pub mod ctx;
pub mod forms;
pub mod i18n;
pub mod imports;
pub mod pages;
pub mod session;

/// HTTPS listening, shared with the node's other HTTP listeners.
pub use liaison_node::https as listener;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use liaison_node::node::Node;
use liaison_node::serve::Sidecar;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub node: Arc<Node>,
    pub sessions: Arc<session::Sessions>,
    /// Cookies carry `Secure`.
    pub secure: bool,
    /// Bulk imports running or finished, per user.
    pub imports: Arc<imports::Imports>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console listener {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("console TLS: {0}")]
    Tls(String),
}

impl App {
    pub fn new(node: Arc<Node>) -> App {
        let cfg = &node.config().console;
        let idle = Duration::from_secs(cfg.idle_minutes.saturating_mul(60));
        App { secure: cfg.secure(), sessions: Arc::new(session::Sessions::new(idle)), imports: Arc::default(), node }
    }
}

/// The console's routes and layers.
pub fn router(app: App) -> Router {
    pages::routes()
        .layer(axum::middleware::from_fn_with_state(app.clone(), csrf::guard))
        .layer(axum::middleware::from_fn(csrf::headers))
        .with_state(app)
}

/// The console as a listener beside the node's (None when disabled).
pub async fn sidecar(node: Arc<Node>) -> Result<Option<Sidecar>, ConsoleError> {
    let cfg = node.config().console.clone();
    if !cfg.enabled {
        return Ok(None);
    }
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ConsoleError::Bind { addr: cfg.listen, source })?;
    let addr = tcp.local_addr().map_err(|source| ConsoleError::Bind { addr: cfg.listen, source })?;
    let tls = listener::configured(&node, cfg.tls, cfg.cert.as_deref(), cfg.key.as_deref())
        .map_err(|e| ConsoleError::Tls(e.0))?;
    let app = router(App::new(node));
    let run = Box::new(move |stop: liaison_node::serve::BoxFuture<'static, ()>| {
        Box::pin(async move {
            let svc = app.into_make_service_with_connect_info::<listener::Remote>();
            let r = match tls {
                None => axum::serve(tcp, svc).with_graceful_shutdown(stop).await,
                Some(cfg) => axum::serve(listener::Tls::new(tcp, cfg), svc).with_graceful_shutdown(stop).await,
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "console stopped with an error");
            }
        }) as liaison_node::serve::BoxFuture<'static, ()>
    });
    Ok(Some(Sidecar { name: "console", addr, run }))
}
