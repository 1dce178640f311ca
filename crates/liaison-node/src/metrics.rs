//! Prometheus metrics: an exporter on a configurable address, a tower layer
//! counting RPCs by listener, method and status, and periodic gauges.
//! Metric names are documented in docs/OPERATIONS.md.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::node::Node;
use crate::store::Tree;

/// Starts the Prometheus exporter. Must run inside the tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("metrics exporter on {addr}: {e}"))
}

/// Tower layer recording `liaison_rpc_total` and `liaison_rpc_duration_seconds`.
#[derive(Clone, Copy)]
pub struct RpcLayer {
    pub listener: &'static str,
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner, listener: self.listener }
    }
}

#[derive(Clone)]
pub struct Rpc<S> {
    inner: S,
    listener: &'static str,
}

fn code_label(code: &str) -> &'static str {
    match code {
        "0" => "ok",
        "1" => "cancelled",
        "2" => "unknown",
        "3" => "invalid_argument",
        "4" => "deadline_exceeded",
        "5" => "not_found",
        "6" => "already_exists",
        "7" => "permission_denied",
        "8" => "resource_exhausted",
        "9" => "failed_precondition",
        "10" => "aborted",
        "11" => "out_of_range",
        "12" => "unimplemented",
        "13" => "internal",
        "14" => "unavailable",
        "15" => "data_loss",
        "16" => "unauthenticated",
        _ => "other",
    }
}

/// Paths of every RPC this node serves ("/liaison.v1.RecordService/GetRecord", …).
fn known_methods() -> &'static std::collections::HashSet<String> {
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut set = std::collections::HashSet::new();
        let mut add = |bytes: &[u8]| {
            if let Ok(fds) = <prost_types::FileDescriptorSet as prost::Message>::decode(bytes) {
                for f in fds.file {
                    for svc in &f.service {
                        for m in &svc.method {
                            set.insert(format!("/{}.{}/{}", f.package(), svc.name(), m.name()));
                        }
                    }
                }
            }
        };
        add(crate::pb::FILE_DESCRIPTOR_SET);
        add(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for svc in ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] {
            set.insert(format!("/{svc}/ServerReflectionInfo"));
        }
        set
    })
}

/// The metric label for a request path: the path itself for an RPC this
/// node serves, "unknown" for anything else, so callers cannot grow the
/// label set (the path is chosen by the caller before authentication).
pub fn method_label(path: &str) -> String {
    if known_methods().contains(path) {
        path.to_string()
    } else {
        "unknown".into()
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let listener = self.listener;
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            // Errors travel in the headers of a trailers-only response; a
            // successful unary call carries its status in trailers (ok).
            let code = match &res {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map_or("ok", code_label),
                Err(_) => "transport_error",
            };
            metrics::counter!("liaison_rpc_total", "listener" => listener, "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!("liaison_rpc_duration_seconds", "listener" => listener, "method" => method)
                .record(started.elapsed().as_secs_f64());
            res
        })
    }
}

/// Refreshes gauges derived from the store every few seconds.
pub fn spawn_gauges(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Counts are kept by the store (no walk); the disk size is a
        // directory listing, on the blocking pool.
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            let n = Arc::clone(&node);
            let _ = tokio::task::spawn_blocking(move || store_gauges(&n)).await;
        }
    })
}

fn store_gauges(node: &Node) {
    let st = node.db.store();
    if let Ok(n) = st.size_on_disk() {
        metrics::gauge!("liaison_store_bytes").set(n as f64);
    }
    for (tree, name) in [
        (Tree::Records, "records"),
        (Tree::Peers, "peers"),
        (Tree::Audit, "audit"),
        (Tree::Outbox, "outbox"),
        (Tree::Relay, "relay"),
    ] {
        if let Ok(n) = st.len(tree) {
            metrics::gauge!("liaison_store_entries", "tree" => name).set(n as f64);
            if tree == Tree::Audit {
                metrics::gauge!("liaison_audit_length").set(n as f64);
            }
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::method_label;

    #[test]
    fn only_served_methods_become_labels() {
        assert_eq!(method_label("/liaison.v1.RecordService/GetRecord"), "/liaison.v1.RecordService/GetRecord");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(
            method_label("/liaison.v1.FederationService/QueryRecords"),
            "/liaison.v1.FederationService/QueryRecords"
        );
        assert_eq!(method_label("/liaison.v1.RecordService/x1234"), "unknown");
        assert_eq!(method_label("/anything/at-all"), "unknown");
    }
}
