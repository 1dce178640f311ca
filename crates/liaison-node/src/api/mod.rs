//! The local API: bearer-token gRPC for officers' tools and integrators.
//! Handlers are thin: they check the caller's role, call the domain and
//! storage modules, and map errors through [`status`].

mod agreements;
mod changes;
mod exchange;
mod hub;
mod node;
pub mod page;
mod records;
mod requests;
mod retry;
pub mod status;

pub use agreements::{AgreementApi, AuditApi, PolicyApi};
pub use changes::{read_changes, ChangeApi};
pub use exchange::ExchangeApi;
pub use hub::HubApi;
pub use node::{NodeApi, PeerApi, UserApi};
pub use records::RecordApi;
pub use requests::{CaseApi, RequestApi};

use crate::api::status::OrStatus;
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic::{Request, Status};

use crate::node::Node;
use crate::pb;
use crate::pb::UserRole;
use crate::scope::{Scope, Scopes};
use crate::store;

/// The authenticated local user, put in request extensions by [`Auth`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: UserRole,
    /// What their token may do.
    pub scopes: Scopes,
}

impl Caller {
    /// The caller a stored user stands for.
    pub fn of_user(user: &pb::User) -> Caller {
        let role = UserRole::of(user.role).unwrap_or(UserRole::Unspecified);
        Caller { name: user.name.clone(), role, scopes: Scopes::of_user(role, &user.scopes) }
    }
}

/// Checks the bearer token on every call.
#[derive(Clone)]
pub struct Auth {
    node: Arc<Node>,
}

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // Refusals of unauthenticated callers are counted per address and
        // audited once per window, so they cannot grow the log without bound.
        let source = crate::refusal::addr(req.remote_addr());
        let limited = |retry| {
            metrics::counter!("liaison_rate_limited_total", "listener" => "api").increment(1);
            crate::api::status::exhausted("too many calls", retry)
        };
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
            tracing::warn!("local API call without a bearer token");
            self.node.refuse(&source, crate::refusal::Kind::NoToken, "missing bearer token");
            self.node.gate.failed_token(&source).map_err(limited)?;
            return Err(Status::unauthenticated("missing bearer token (authorization: Bearer <token>)"));
        };
        let user = store::users::by_token(self.node.db.store(), token.trim()).or_status()?;
        let Some(user) = user else {
            tracing::warn!("local API call with an unknown token");
            self.node.refuse(&source, crate::refusal::Kind::Token, "unknown or revoked token");
            // Guessing tokens is slowed per address.
            self.node.gate.failed_token(&source).map_err(limited)?;
            return Err(Status::unauthenticated("unknown or revoked token"));
        };
        self.node.gate.token(&user.name).map_err(limited)?;
        tracing::Span::current().record("user", user.name.as_str());
        req.extensions_mut().insert(Caller::of_user(&user));
        Ok(req)
    }
}

/// `msg` as an authenticated `caller` sent it: how an in-process adapter
/// (the web console) calls the same handlers as the gRPC listener, so
/// roles, validation, policy and audit apply unchanged.
pub fn as_caller<T>(msg: T, caller: Caller) -> Request<T> {
    let mut req = Request::new(msg);
    req.extensions_mut().insert(caller);
    req
}

/// The caller, if their token holds `scope`; otherwise PERMISSION_DENIED
/// with `ErrorInfo` reason `MISSING_SCOPE` and the scope in its metadata.
pub fn require<T>(req: &Request<T>, scope: Scope) -> Result<Caller, Status> {
    let caller =
        req.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("not authenticated"))?;
    if caller.scopes.contains(scope) {
        Ok(caller)
    } else {
        Err(status::missing_scope(scope, caller.role))
    }
}

pub fn router<L: Clone>(builder: Server<L>, node: Arc<Node>) -> Router<L> {
    let auth = Auth { node: Arc::clone(&node) };
    let mut builder = builder;
    builder
        .add_service(pb::node_service_server::NodeServiceServer::with_interceptor(
            node::NodeApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::peer_service_server::PeerServiceServer::with_interceptor(
            node::PeerApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::user_service_server::UserServiceServer::with_interceptor(
            node::UserApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::record_service_server::RecordServiceServer::with_interceptor(
            records::RecordApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::change_service_server::ChangeServiceServer::with_interceptor(
            changes::ChangeApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::agreement_service_server::AgreementServiceServer::with_interceptor(
            agreements::AgreementApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::policy_service_server::PolicyServiceServer::with_interceptor(
            agreements::PolicyApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::audit_service_server::AuditServiceServer::with_interceptor(
            agreements::AuditApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::exchange_service_server::ExchangeServiceServer::with_interceptor(
            exchange::ExchangeApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::request_service_server::RequestServiceServer::with_interceptor(
            requests::RequestApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::victim_case_service_server::VictimCaseServiceServer::with_interceptor(
            requests::CaseApi::new(Arc::clone(&node)),
            auth.clone(),
        ))
        .add_service(pb::hub_service_server::HubServiceServer::with_interceptor(hub::HubApi::new(node), auth))
}

/// The services this listener serves (health and reflection report these only).
pub const SERVICES: &[&str] = &[
    pb::node_service_server::SERVICE_NAME,
    pb::peer_service_server::SERVICE_NAME,
    pb::user_service_server::SERVICE_NAME,
    pb::record_service_server::SERVICE_NAME,
    pb::change_service_server::SERVICE_NAME,
    pb::agreement_service_server::SERVICE_NAME,
    pb::policy_service_server::SERVICE_NAME,
    pb::audit_service_server::SERVICE_NAME,
    pb::exchange_service_server::SERVICE_NAME,
    pb::request_service_server::SERVICE_NAME,
    pb::victim_case_service_server::SERVICE_NAME,
    pb::hub_service_server::SERVICE_NAME,
];
