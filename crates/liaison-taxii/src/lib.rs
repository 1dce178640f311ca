//! liaison's read-only TAXII 2.1 server: for a partner's own systems (its
//! threat-intelligence platform), one collection per agreement and purpose
//! under which that partner may query this node, holding the STIX 2.1 form
//! of the intelligence reports and entities it may receive.
//!
//! An adapter, like the console: each page is decided record by record by
//! the same code that answers a peer's `QueryRecords`
//! ([`liaison_node::exchange::query::release`]), so the policy engine,
//! redaction and the audit log apply unchanged. A caller authenticates with
//! the token of a `partner` account, which names the peer it reads as; the
//! collections are that peer's and vanish when its agreement ends.

#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use liaison_node::convert::ProtoEnum;
use liaison_node::exchange::query::{self, Collection, Wanted};
use liaison_node::https::{self, Remote};
use liaison_node::node::Node;
use liaison_node::pb::{self, UserRole};
use liaison_node::scope::{Scope, Scopes};
use liaison_node::serve::Sidecar;
use liaison_node::store::records::Filter;
use serde_json::{json, Value};

/// The media type of every TAXII 2.1 response.
pub const TAXII: &str = "application/taxii+json;version=2.1";
const STIX: &str = "application/stix+json;version=2.1";
/// The one API root.
const ROOT: &str = "api1";
/// Objects per page: default and most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TaxiiError {
    #[error("TAXII listener {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("TAXII TLS: {0}")]
    Tls(String),
}

#[derive(Clone)]
struct App {
    node: Arc<Node>,
    scheme: &'static str,
}

/// The routes, for a listener serving with `scheme` (`http` or `https`).
pub fn router(node: Arc<Node>, scheme: &'static str) -> Router {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route(&format!("/{ROOT}/"), get(api_root))
        .route(&format!("/{ROOT}/collections/"), get(collections))
        .route(&format!("/{ROOT}/collections/{{id}}/"), get(collection))
        .route(&format!("/{ROOT}/collections/{{id}}/objects/"), get(objects))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such TAXII resource") })
        .with_state(App { node, scheme })
}

/// The TAXII server as a listener beside the node's (None when disabled).
pub async fn sidecar(node: Arc<Node>) -> Result<Option<Sidecar>, TaxiiError> {
    let cfg = node.config().taxii.clone();
    if !cfg.enabled {
        return Ok(None);
    }
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| TaxiiError::Bind { addr: cfg.listen, source })?;
    let addr = tcp.local_addr().map_err(|source| TaxiiError::Bind { addr: cfg.listen, source })?;
    let tls =
        https::configured(&node, cfg.tls, cfg.cert.as_deref(), cfg.key.as_deref()).map_err(|e| TaxiiError::Tls(e.0))?;
    let app = router(node, if tls.is_some() { "https" } else { "http" });
    let run = Box::new(move |stop: liaison_node::serve::BoxFuture<'static, ()>| {
        Box::pin(async move {
            let svc = app.into_make_service_with_connect_info::<Remote>();
            let r = match tls {
                None => axum::serve(tcp, svc).with_graceful_shutdown(stop).await,
                Some(cfg) => axum::serve(https::Tls::new(tcp, cfg), svc).with_graceful_shutdown(stop).await,
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "TAXII server stopped with an error");
            }
        }) as liaison_node::serve::BoxFuture<'static, ()>
    });
    Ok(Some(Sidecar { name: "taxii", addr, run }))
}

/// A TAXII error message with its status.
fn problem(status: StatusCode, title: &str) -> Response {
    let body = json!({ "title": title, "http_status": status.as_u16().to_string() });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"taxii\""));
    }
    resp
}

fn taxii_json(v: Value) -> Response {
    let mut resp = v.to_string().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII));
    resp
}

/// The token in `Authorization: Bearer <token>` or `Basic <user:token>`,
/// with the user name Basic names.
fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some((None, rest.trim().to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let (user, token) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
        return Some((Some(user.to_string()), token.to_string()));
    }
    None
}

/// A partner's system: the account, and the peer it reads as.
struct Partner {
    user: String,
    peer: String,
}

impl FromRequestParts<App> for Partner {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let node = &app.node;
        let remote = parts.extensions.get::<ConnectInfo<Remote>>().map(|c| c.0 .0);
        let source = liaison_node::refusal::addr(remote);
        let slowed = |_| problem(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
        if !(accept.contains("application/taxii+json") || accept.contains("*/*")) {
            return Err(problem(StatusCode::NOT_ACCEPTABLE, "this server answers application/taxii+json;version=2.1"));
        }
        let Some((named, token)) = credentials(&parts.headers) else {
            node.refuse(&source, liaison_node::refusal::Kind::NoToken, "TAXII request without credentials");
            node.gate.failed_token(&source).map_err(slowed)?;
            return Err(problem(StatusCode::UNAUTHORIZED, "a partner account's token is required"));
        };
        let user = liaison_node::store::users::by_token(node.db.store(), &token)
            .map_err(|_| problem(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read"))?;
        let Some(user) = user.filter(|u| named.as_ref().is_none_or(|n| *n == u.name)) else {
            node.refuse(&source, liaison_node::refusal::Kind::Token, "TAXII request with an unknown token");
            node.gate.failed_token(&source).map_err(slowed)?;
            return Err(problem(StatusCode::UNAUTHORIZED, "unknown or revoked token"));
        };
        node.gate.token(&user.name).map_err(slowed)?;
        let role = UserRole::of(user.role).unwrap_or(UserRole::Unspecified);
        // Only a partner account names a peer; the scope may be narrowed away.
        if role != UserRole::Partner
            || user.peer.is_empty()
            || !Scopes::of_user(role, &user.scopes).contains(Scope::Taxii)
        {
            return Err(problem(StatusCode::FORBIDDEN, "only a partner account reads TAXII collections"));
        }
        Ok(Partner { user: user.name, peer: user.peer })
    }
}

fn base(app: &App, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("{}://{host}", app.scheme)
}

async fn discovery(State(app): State<App>, _: Partner, headers: HeaderMap) -> Response {
    let root = format!("{}/{ROOT}/", base(&app, &headers));
    taxii_json(json!({
        "title": format!("liaison node {}", app.node.id()),
        "description": "Read-only TAXII 2.1 collections, one per agreement and purpose under which the caller may query this node.",
        "default": root,
        "api_roots": [root],
    }))
}

async fn api_root(State(app): State<App>, _: Partner) -> Response {
    taxii_json(json!({
        "title": format!("{} shared intelligence", app.node.id()),
        "versions": [TAXII],
        "max_content_length": 4 * 1024 * 1024,
    }))
}

fn describe(c: &Collection) -> Value {
    json!({
        "id": c.id(),
        "title": format!("{} — {}", c.agreement_title, liaison_node::convert::purpose_word(c.purpose)),
        "description": format!(
            "Intelligence reports and entities this node releases under agreement {} for {}, as the policy engine decides for each.",
            c.agreement_id,
            liaison_node::convert::purpose_word(c.purpose)
        ),
        "can_read": true,
        "can_write": false,
        "media_types": [STIX],
    })
}

/// The caller's collection `id`; the status and title of why not.
fn find(app: &App, who: &Partner, id: &str) -> Result<Collection, (StatusCode, &'static str)> {
    let all = query::collections(&app.node, &who.peer)
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "agreements cannot be read"))?;
    all.into_iter().find(|c| c.id() == id).ok_or((StatusCode::NOT_FOUND, "no such collection"))
}

async fn collections(State(app): State<App>, who: Partner) -> Response {
    match query::collections(&app.node, &who.peer) {
        Ok(all) => taxii_json(json!({ "collections": all.iter().map(describe).collect::<Vec<_>>() })),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "agreements cannot be read"),
    }
}

async fn collection(State(app): State<App>, who: Partner, Path(id): Path<String>) -> Response {
    match find(&app, &who, &id) {
        Ok(c) => taxii_json(describe(&c)),
        Err((status, title)) => problem(status, title),
    }
}

#[derive(serde::Deserialize)]
struct Paging {
    limit: Option<String>,
    next: Option<String>,
    added_after: Option<String>,
}

async fn objects(State(app): State<App>, who: Partner, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let c = match find(&app, &who, &id) {
        Ok(c) => c,
        Err((status, title)) => return problem(status, title),
    };
    let limit = match p.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n >= 1 => n.min(MAX_LIMIT),
        Some(_) => return problem(StatusCode::BAD_REQUEST, "limit: a positive number"),
    };
    let at = match p.next.as_deref().filter(|n| !n.is_empty()).map(Position::parse) {
        None => Position::Definition(0),
        Some(Some(at)) => at,
        Some(None) => return problem(StatusCode::BAD_REQUEST, "next: not a value from a previous page"),
    };
    let since = match p.added_after.as_deref() {
        None => None,
        Some(t) => match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
            Ok(at) => Some(at),
            Err(_) => return problem(StatusCode::BAD_REQUEST, "added_after: an RFC 3339 timestamp"),
        },
    };
    // The collection starts with what its objects refer to, then one object
    // per record; a page holds exactly `limit` of them unless it is the last.
    let definitions = liaison_node::formats::stix::definitions(app.node.id());
    let (mut out, after, first) = match at {
        Position::Definition(i) => (definitions.into_iter().skip(i).take(limit).collect::<Vec<_>>(), None, i),
        Position::After(key) => (Vec::new(), Some(key), 0),
    };
    let records = limit.saturating_sub(out.len());
    if records == 0 {
        // A page of definitions only (after a record, `out` is empty).
        let next = Position::Definition(first.saturating_add(limit)).token();
        return taxii_json(json!({ "more": true, "next": next, "objects": out }));
    }
    let wanted = Wanted {
        kinds: query::STIX_KINDS.to_vec(),
        purpose: c.purpose,
        filter: Filter { updated_since: since, ..Filter::default() },
        agreement: Some(c.agreement_id.clone()),
    };
    let (hits, next) = match query::release(&app.node, &who.peer, wanted, after, records).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "TAXII page failed");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "the collection cannot be read now");
        }
    };
    let actor = format!("peer:{}", who.peer);
    let summary = liaison_node::audit::Event::new(&actor, "exchange.taxii.objects")
        .agreement(&c.agreement_id)
        .purpose(liaison_node::convert::purpose_word(c.purpose))
        .reason(format!("{} records to {} (collection {})", hits.len(), who.user, c.id()));
    if let Err(e) = query::record_release(&app.node, &actor, &who.peer, &hits, vec![summary]).await {
        // Nothing is served that was not audited.
        tracing::warn!(error = %e, "TAXII page not audited");
        return problem(StatusCode::SERVICE_UNAVAILABLE, "the collection cannot be read now");
    }
    let views: Vec<pb::Record> = hits.into_iter().map(|h| h.view).collect();
    out.extend(liaison_node::formats::stix::objects(&views, app.node.id(), app.node.now()));
    let mut envelope = json!({ "more": next.is_some(), "objects": out });
    if let Some(key) = next {
        envelope["next"] = json!(Position::After(key).token());
    }
    taxii_json(envelope)
}

/// Where a page starts: at a definition, or after a record's key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    Definition(usize),
    After(String),
}

impl Position {
    fn token(&self) -> String {
        hex::encode(match self {
            Position::Definition(i) => format!("d:{i}"),
            Position::After(key) => format!("r:{key}"),
        })
    }

    fn parse(token: &str) -> Option<Position> {
        let raw = String::from_utf8(hex::decode(token).ok()?).ok()?;
        match raw.split_once(':')? {
            ("d", i) => Some(Position::Definition(i.parse().ok()?)),
            ("r", key) if !key.is_empty() => Some(Position::After(key.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_anything_else() {
        for p in [Position::Definition(0), Position::Definition(7), Position::After("th-atpd/ir-1".into())] {
            assert_eq!(Position::parse(&p.token()), Some(p));
        }
        for bad in ["", "zz", &hex::encode("x:1"), &hex::encode("d:-1"), &hex::encode("r:"), &hex::encode([0xff, 0xfe])]
        {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_come_from_bearer_or_basic() {
        let mut h = HeaderMap::new();
        assert!(credentials(&h).is_none());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc "));
        assert_eq!(credentials(&h), Some((None, "abc".into())));
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("kh-cti:tok:en"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&basic).unwrap());
        assert_eq!(credentials(&h), Some((Some("kh-cti".into()), "tok:en".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert!(credentials(&h).is_none());
    }
}
