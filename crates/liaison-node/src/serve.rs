//! A running node's two listeners and its background tasks.
//!
//! The federation listener speaks gRPC over mutual TLS with pinned
//! certificates; the local API listener speaks gRPC with bearer tokens. Each
//! serves health and reflection (v1 and v1alpha) for its own services only.
//! This is the top of the node's module graph: it wires every adapter to the
//! shared state in `node`, and nothing imports it but the CLI and the demo.

use std::future::Future;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::api;
use crate::config::Runtime;
use crate::federation;
use crate::node::{Node, NodeError};
use crate::pb;
use crate::refusal;
use crate::store::{self, StoreError};
use crate::tls;

/// The part of `set` a listener serving `services` describes: the files that
/// define those services and everything they import, with every other
/// service left out (and its source locations with it).
pub fn scope_descriptors(set: &prost_types::FileDescriptorSet, services: &[&str]) -> prost_types::FileDescriptorSet {
    use std::collections::BTreeSet;
    let full = |f: &prost_types::FileDescriptorProto, s: &prost_types::ServiceDescriptorProto| {
        format!("{}.{}", f.package(), s.name())
    };
    let mut wanted: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.service.iter().any(|s| services.contains(&full(f, s).as_str())))
        .map(|f| f.name().to_string())
        .collect();
    // Close over imports.
    let mut todo: Vec<String> = wanted.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        for f in set.file.iter().filter(|f| f.name() == name) {
            for dep in &f.dependency {
                if wanted.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
    }
    // Field number of `service` in FileDescriptorProto, the first element of
    // a source location's path inside a service.
    const SERVICE_FIELD: i32 = 6;
    let file = set
        .file
        .iter()
        .filter(|f| wanted.contains(f.name()))
        .map(|f| {
            let mut f = f.clone();
            // Old index → new index of each service, None for those left out.
            let mut next = 0;
            let kept: Vec<Option<i32>> = f
                .service
                .iter()
                .map(|s| {
                    let own = services.contains(&full(&f, s).as_str());
                    own.then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            let mut old = kept.iter();
            f.service.retain(|_| old.next().is_some_and(Option::is_some));
            if let Some(info) = f.source_code_info.as_mut() {
                info.location.retain_mut(|l| match l.path.as_slice() {
                    [SERVICE_FIELD, idx, ..] => {
                        match usize::try_from(*idx).ok().and_then(|i| kept.get(i).copied().flatten()) {
                            Some(new) => {
                                l.path[1] = new;
                                true
                            }
                            None => false,
                        }
                    }
                    _ => true,
                });
            }
            f
        })
        .collect();
    prost_types::FileDescriptorSet { file }
}

/// Health and reflection (v1 and v1alpha) for a listener serving `services`.
async fn introspection(
    services: &[&str],
) -> Result<
    (
        tonic_health::server::HealthReporter,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    NodeError,
> {
    let all = <prost_types::FileDescriptorSet as prost::Message>::decode(pb::FILE_DESCRIPTOR_SET)
        .map_err(|e| NodeError::Serve(format!("descriptor set: {e}")))?;
    let own = scope_descriptors(&all, services);
    let v1 = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(own.clone())
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(own)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    let (health, health_svc) = tonic_health::server::health_reporter();
    let introspection =
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
    for name in services.iter().chain(&introspection) {
        health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    Ok((health, health_svc, v1, v1alpha))
}

/// Every name a listener reports health for ("" is the server as a whole).
fn health_names(services: &'static [&'static str]) -> Vec<&'static str> {
    let mut names = vec![""];
    names.extend_from_slice(services);
    names
}

/// Keeps both listeners' health in step with the store: `NOT_SERVING` while
/// the disk is below its reserve (writes are refused) or after a failed
/// write, `SERVING` again once space returns.
fn spawn_store_health(
    node: Arc<Node>,
    reporters: Vec<(tonic_health::server::HealthReporter, Vec<&'static str>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = store::Health::Serving;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let db = Arc::clone(&node);
            let Ok(now) = tokio::task::spawn_blocking(move || db.db.health()).await else { continue };
            if now == last {
                continue;
            }
            match &now {
                store::Health::Serving => tracing::info!("store accepts writes again: serving"),
                store::Health::Full { free, reserve } => {
                    tracing::warn!(free, reserve, "disk below its reserve: writes refused, health NOT_SERVING")
                }
                store::Health::Failed(why) => tracing::error!(error = %why, "store failed: NOT_SERVING"),
            }
            let status = if now == store::Health::Serving {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            for (reporter, names) in &reporters {
                for name in names {
                    reporter.set_service_status(*name, status).await;
                }
            }
            last = now;
        }
    })
}

fn rpc_span(req: &http::Request<()>) -> tracing::Span {
    tracing::info_span!("rpc", path = %req.uri().path(), peer = tracing::field::Empty, user = tracing::field::Empty)
}

/// A listener served beside the node's own (the web console, from its own
/// crate): bound by its maker, started once the node's listeners are,
/// and stopped with them.
pub struct Sidecar {
    pub name: &'static str,
    pub addr: std::net::SocketAddr,
    /// Serves until the given future resolves.
    pub run: Box<dyn FnOnce(BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send>,
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Serves both listeners until `shutdown` resolves.
pub async fn serve(node: Arc<Node>, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
    serve_with(node, Vec::new(), shutdown).await
}

/// Serves the node's listeners and `sidecars` until `shutdown` resolves.
pub async fn serve_with(
    node: Arc<Node>,
    sidecars: Vec<Sidecar>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
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
    let node_accept = Arc::clone(&node);
    // Handshakes in progress are bounded: beyond the bound a new connection
    // is closed at once (and counted), so a flood of slow handshakes cannot
    // take unbounded tasks and memory.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_handshakes));
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
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                metrics::counter!("liaison_rate_limited_total", "listener" => "handshake").increment(1);
                node_accept.refuse(
                    &refusal::addr(Some(remote)),
                    refusal::Kind::Handshake,
                    "too many handshakes at once",
                );
                drop(tcp);
                continue;
            };
            let acceptor = acceptor.clone();
            let conn_tx = conn_tx.clone();
            let node_accept = Arc::clone(&node_accept);
            // Handshakes run beside the accept loop so a slow client cannot stall others.
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = conn_tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "federation handshake refused");
                        node_accept.refuse(&refusal::addr(Some(remote)), refusal::Kind::Handshake, &e.to_string());
                    }
                    Err(_) => {
                        tracing::warn!(%remote, "federation handshake timed out");
                        let why = "handshake not finished within 10 s";
                        node_accept.refuse(&refusal::addr(Some(remote)), refusal::Kind::Handshake, why);
                    }
                }
            });
        }
    });

    let (fed_health, fed_health_svc, fed_refl_v1, fed_refl_v1a) = introspection(federation::SERVICES).await?;
    let (api_health, api_health_svc, api_refl_v1, api_refl_v1a) = introspection(api::SERVICES).await?;
    let store_health = spawn_store_health(
        Arc::clone(&node),
        vec![(fed_health, health_names(federation::SERVICES)), (api_health, health_names(api::SERVICES))],
    );

    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stop_fed = stop_tx.subscribe();
    let mut stop_api = stop_tx.subscribe();

    if let Some(addr) = cfg.metrics {
        crate::metrics::install(addr).map_err(NodeError::Serve)?;
        tracing::info!(%addr, "metrics exporter listening");
    }
    let mut background = vec![
        store_health,
        crate::delivery::spawn(Arc::clone(&node)),
        spawn_sync(Arc::clone(&node), Duration::from_secs(cfg.intervals.sync_secs.max(1))),
        crate::exchange::retention::spawn(
            Arc::clone(&node),
            Duration::from_secs(cfg.intervals.housekeeping_secs.max(1)),
        ),
        crate::sop::desk::spawn(Arc::clone(&node), Duration::from_secs(cfg.intervals.deadline_secs.max(1))),
        crate::hub::spawn_sweep(Arc::clone(&node), Duration::from_secs(cfg.intervals.housekeeping_secs.max(1))),
        crate::hub::relay::spawn(Arc::clone(&node)),
        spawn_refusal_flush(Arc::clone(&node), cfg.intervals.refusal_window_secs.max(1)),
        crate::witness::net::spawn(Arc::clone(&node)),
        spawn_catalogue_load(Arc::clone(&node)),
    ];
    // Gauges only where something collects them.
    if cfg.metrics.is_some() {
        background.push(crate::metrics::spawn_gauges(Arc::clone(&node)));
    }

    let fed_server = Server::builder()
        .concurrency_limit_per_connection(cfg.limits.max_calls_per_connection)
        .max_concurrent_streams(Some(cfg.limits.max_streams_per_connection))
        .trace_fn(rpc_span)
        .layer(crate::metrics::RpcLayer { listener: "federation" })
        .layer(api::status::UndecodableLayer)
        .add_service(fed_health_svc)
        .add_service(fed_refl_v1)
        .add_service(fed_refl_v1a)
        .add_service(federation::server(Arc::clone(&node)))
        .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async move {
            let _ = stop_fed.recv().await;
        });
    let api_builder = Server::builder()
        .concurrency_limit_per_connection(cfg.limits.max_calls_per_connection)
        .max_concurrent_streams(Some(cfg.limits.max_streams_per_connection))
        .trace_fn(rpc_span)
        .layer(crate::metrics::RpcLayer { listener: "api" })
        .layer(api::status::UndecodableLayer);
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

    let console = sidecars.iter().find(|s| s.name == "console").map(|s| s.addr);
    let taxii = sidecars.iter().find(|s| s.name == "taxii").map(|s| s.addr);
    let mut side_tasks = Vec::new();
    for sc in sidecars {
        let mut stop = stop_tx.subscribe();
        let stopped: BoxFuture<'static, ()> = Box::pin(async move {
            let _ = stop.recv().await;
        });
        tracing::info!(listener = sc.name, addr = %sc.addr, "listening");
        side_tasks.push((sc.name, tokio::spawn((sc.run)(stopped))));
    }
    let runtime = Runtime { federation: fed_addr, api: api_addr, pid: std::process::id(), console, taxii };
    let text = toml::to_string(&runtime).map_err(|e| NodeError::Serve(e.to_string()))?;
    crate::config::replace_private(&node.layout.runtime(), text.as_bytes())?;
    tracing::info!(node = %node.id(), federation = %fed_addr, api = %api_addr, "node is up");

    let fed = tokio::spawn(fed_server);
    let api = tokio::spawn(api_server);
    // A write that could not be made durable stops the node: restarted, it
    // serves exactly what is on disk (systemd's Restart=on-failure).
    let failure = Arc::clone(&node.db.failure);
    let failed = tokio::select! {
        _ = shutdown => false,
        _ = failure.notified() => true,
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    accept_task.abort();
    for task in &background {
        task.abort();
    }
    // Refusals counted in the window that had not ended yet, and a final
    // checkpoint: each bounded, so a node whose disk is full or failing
    // still stops.
    let last_writes = async {
        refusal::flush_all(&node.db, &node.refusals).await;
        node.db.checkpoint_now().await
    };
    match tokio::time::timeout(Duration::from_secs(10), last_writes).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "final audit checkpoint failed"),
        Err(_) => tracing::warn!("final writes did not finish within 10s"),
    }
    // The final checkpoint goes to the witnesses too (bounded: peers may be down).
    crate::witness::net::witness_now(&node, Duration::from_secs(3)).await;
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
    for (name, h) in side_tasks {
        if tokio::time::timeout(Duration::from_secs(10), h).await.is_err() {
            tracing::warn!(listener = name, "did not stop within 10s");
        }
    }
    let _ = std::fs::remove_file(node.layout.runtime());
    if failed {
        if let store::Health::Failed(why) = node.db.health() {
            return Err(NodeError::Store(StoreError::Failed(why)));
        }
    }
    Ok(())
}

/// Periodic sync with every peer.
/// Loads the search catalogue beside serving, so a start never waits for a
/// walk of every record; a listing that comes first waits for the load.
fn spawn_catalogue_load(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let db = &node.db;
        let started = std::time::Instant::now();
        match db.catalogue().ensure(|sink| crate::store::records::catalogue_entries(db.store(), sink)) {
            Ok(()) => tracing::info!(took_ms = started.elapsed().as_millis() as u64, "search catalogue loaded"),
            Err(e) => tracing::error!(error = %e, "could not load the search catalogue; the next listing tries again"),
        }
    })
}

fn spawn_sync(node: Arc<Node>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Each peer is pulled by its own worker: a slow peer delays only its
        // own sync, and is simply skipped by later rounds until it finishes.
        let mut workers = crate::workers::Workers::default();
        let never = tokio::sync::Notify::new();
        loop {
            // Reap finished pulls until the next round is due.
            workers.wait(&never, every).await;
            // Hub directories first, so new members are pinned before we sync with them.
            if let Err(e) = crate::hub::directory::refresh(&node).await {
                tracing::warn!(error = %e, "hub directory refresh failed");
            }
            let peers = crate::exchange::peer_ids(&node).unwrap_or_default();
            for p in peers {
                let n = Arc::clone(&node);
                let peer = p.clone();
                workers.start(&p, async move {
                    let r = crate::exchange::sync::pull(&n, "node", &peer).await;
                    if r.received > 0 || r.purged > 0 {
                        tracing::info!(peer = %peer, received = r.received, purged = r.purged, "sync");
                    }
                });
            }
        }
    })
}

/// Audits refusal tallies as their windows end.
fn spawn_refusal_flush(node: Arc<Node>, window_secs: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refusal::flush_every(window_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            refusal::flush_due(&node.db, &node.refusals, node.now()).await;
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> prost_types::FileDescriptorSet {
        prost::Message::decode(pb::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn services(set: &prost_types::FileDescriptorSet) -> Vec<String> {
        let mut v: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package(), s.name())))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_two_listeners_serve_every_service_once() {
        let mut both: Vec<String> = api::SERVICES.iter().chain(federation::SERVICES).map(|s| s.to_string()).collect();
        both.sort();
        let n = both.len();
        both.dedup();
        assert_eq!(both.len(), n, "a service on both listeners");
        assert_eq!(both, services(&all()));
    }

    #[test]
    fn each_listener_describes_its_own_services_only() {
        let all = all();
        for (own, other) in [(federation::SERVICES, api::SERVICES), (api::SERVICES, federation::SERVICES)] {
            let scoped = scope_descriptors(&all, own);
            let mut want: Vec<String> = own.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(services(&scoped), want);
            // Every import is there, so every message the services use resolves.
            let names: Vec<&str> = scoped.file.iter().map(|f| f.name()).collect();
            for f in &scoped.file {
                for dep in &f.dependency {
                    assert!(names.contains(&dep.as_str()), "{} imports {dep}", f.name());
                }
            }
            // Source locations follow their services (comments stay with the right one).
            for f in &scoped.file {
                let original = all.file.iter().find(|o| o.name() == f.name()).unwrap();
                for l in f.source_code_info.iter().flat_map(|i| &i.location) {
                    if let [6, i, ..] = l.path.as_slice() {
                        assert!((*i as usize) < f.service.len(), "{}: {:?}", f.name(), l.path);
                        let name = f.service[*i as usize].name();
                        let j = original.service.iter().position(|s| s.name() == name).unwrap();
                        let moved = [&[6, j as i32][..], &l.path[2..]].concat();
                        assert!(
                            original
                                .source_code_info
                                .iter()
                                .flat_map(|i| &i.location)
                                .any(|o| o.path == moved && o.leading_comments == l.leading_comments),
                            "{}: {:?}",
                            f.name(),
                            l.path
                        );
                    }
                }
            }
            assert!(other.iter().all(|o| !services(&scoped).contains(&o.to_string())));
        }
        // The second service of a file moves to the first place, its comments with it.
        let scoped = scope_descriptors(&all, &["liaison.v1.VictimCaseService"]);
        let f = scoped.file.iter().find(|f| f.service.len() == 1).unwrap();
        let original = all.file.iter().find(|o| o.name() == f.name()).unwrap();
        assert_eq!(original.service[1].name(), "VictimCaseService");
        let comment = |set: &prost_types::FileDescriptorProto, i: i32| {
            set.source_code_info
                .iter()
                .flat_map(|c| &c.location)
                .find(|l| l.path == [6, i])
                .and_then(|l| l.leading_comments.clone())
        };
        assert!(comment(original, 1).is_some_and(|c| !c.is_empty()));
        assert_eq!(comment(f, 0), comment(original, 1));
        assert_eq!(comment(f, 1), None);
        // The API listener does not even carry the federation's file.
        assert!(!scope_descriptors(&all, api::SERVICES).file.iter().any(|f| f.name().ends_with("federation.proto")));
    }
}
