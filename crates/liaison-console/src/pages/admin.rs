//! Administration: peers (pin a card by upload, connection test), users
//! (and their one-time sign-in links), the certificate, the audit log.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use liaison_node::api;
use liaison_node::pb::user_service_server::UserService;
use liaison_node::pb::{self, audit_service_server::AuditService, peer_service_server::PeerService};
use serde::Deserialize;

use super::{choices, req};
use crate::ctx::{back, page, Ctx, Problem};

pub(crate) struct PeerRow {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub fingerprint: String,
    pub source: String,
    pub pinned: String,
}

pub(crate) struct UserRow {
    pub name: String,
    pub role: String,
    pub password: bool,
    pub created: String,
}

#[derive(askama::Template)]
#[template(path = "admin.html")]
struct Admin {
    c: Ctx,
    title: String,
    nav: &'static str,
    peers: Vec<PeerRow>,
    users: Vec<UserRow>,
    roles: Vec<(i32, String, bool)>,
    certificate: String,
    certificate_soon: bool,
    fingerprint: String,
    shown_once: String,
    error: String,
}

async fn admin_page(c: Ctx, shown_once: String, error: String) -> Response {
    let peers = match api::PeerApi::new(Arc::clone(&c.node))
        .list_peers(req(&c, pb::ListPeersRequest { page_size: 1000, ..Default::default() }))
        .await
    {
        Ok(r) => r
            .into_inner()
            .peers
            .iter()
            .map(|p| {
                let card = p.card.clone().unwrap_or_default();
                PeerRow {
                    id: card.node_id,
                    name: card.display_name,
                    endpoint: card.federation_endpoint,
                    fingerprint: p.tls_fingerprint.chars().take(16).collect(),
                    source: p.source.clone(),
                    pinned: c.when(&p.pin_time),
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let users = match api::UserApi::new(Arc::clone(&c.node))
        .list_users(req(&c, pb::ListUsersRequest { page_size: 1000, ..Default::default() }))
        .await
    {
        Ok(r) => r
            .into_inner()
            .users
            .iter()
            .map(|u| UserRow {
                name: u.name.clone(),
                role: c.word::<pb::UserRole>(u.role),
                password: u.has_password,
                created: c.when(&u.create_time),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let (certificate, certificate_soon) = super::home::certificate(&c);
    let fingerprint: String =
        liaison_node::identity::fingerprint(&c.node.identity.tls_cert).iter().map(|b| format!("{b:02x}")).collect();
    // Partner accounts read TAXII as a peer: made with the CLI or API, which name the peer.
    let mut roles = choices::<pb::UserRole>(&c, pb::UserRole::Officer as i32);
    roles.retain(|(v, _, _)| *v != pb::UserRole::Partner as i32);
    let title = c.t("admin-title");
    page(Admin {
        title,
        nav: "admin",
        peers,
        users,
        roles,
        certificate,
        certificate_soon,
        fingerprint,
        shown_once,
        error,
        c,
    })
}

pub(crate) async fn show(c: Ctx) -> Response {
    admin_page(c, String::new(), String::new()).await
}

/// Pins a peer from an uploaded card file (the JSON `liaison card` writes).
pub(crate) async fn add_peer(c: Ctx, mut mp: Multipart) -> Response {
    let mut text = String::new();
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some("card") {
            text = field.text().await.unwrap_or_default();
        }
    }
    let env = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value::<pb::Envelope>(v.get("envelope").cloned().unwrap_or(v)).ok());
    let Some(env) = env else {
        let e = c.t("admin-card-unreadable");
        return admin_page(c, String::new(), e).await;
    };
    match api::PeerApi::new(Arc::clone(&c.node)).add_peer(req(&c, pb::AddPeerRequest { card: Some(env) })).await {
        Ok(r) => {
            let id = r.into_inner().peer.and_then(|p| p.card).map(|c| c.node_id).unwrap_or_default();
            c.flash(c.t1("admin-peer-pinned", "peer", id));
            Redirect::to("/admin").into_response()
        }
        Err(s) => {
            let e = Problem::of(&c.tr, &s).message;
            admin_page(c, String::new(), e).await
        }
    }
}

/// A connection test, said plainly.
pub(crate) async fn test_peer(c: Ctx, Path(id): Path<String>) -> Response {
    let msg = pb::PingPeerRequest { node_id: id.clone() };
    let text = match api::PeerApi::new(Arc::clone(&c.node)).ping_peer(req(&c, msg)).await {
        Ok(r) => c.tr.ta("admin-ping-ok", &[("peer", id), ("ms", r.into_inner().round_trip_ms.to_string())]),
        Err(s) => {
            let key = match s.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => "admin-ping-down",
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => "admin-ping-refused",
                _ => "admin-ping-failed",
            };
            format!("{} ({})", c.t1(key, "peer", id), s.message())
        }
    };
    c.flash(text);
    Redirect::to("/admin").into_response()
}

#[derive(Deserialize)]
pub(crate) struct UserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: i32,
}

pub(crate) async fn add_user(c: Ctx, Form(f): Form<UserForm>) -> Response {
    let msg = pb::CreateUserRequest { name: f.name.trim().to_string(), role: f.role, ..Default::default() };
    match api::UserApi::new(Arc::clone(&c.node)).create_user(req(&c, msg)).await {
        Ok(_) => link_for(c, f.name.trim().to_string()).await,
        Err(s) => {
            let e = Problem::of(&c.tr, &s).message;
            admin_page(c, String::new(), e).await
        }
    }
}

async fn link_for(c: Ctx, name: String) -> Response {
    let msg = pb::IssueSignInLinkRequest { name: name.clone() };
    match api::UserApi::new(Arc::clone(&c.node)).issue_sign_in_link(req(&c, msg)).await {
        Ok(r) => {
            let r = r.into_inner();
            let base = c.node.config().console.base_url(None);
            let once = c.tr.ta(
                "admin-link-once",
                &[("user", name), ("link", format!("{base}{}", r.path)), ("until", c.when(&r.expire_time))],
            );
            admin_page(c, once, String::new()).await
        }
        Err(s) => {
            let e = Problem::of(&c.tr, &s).message;
            admin_page(c, String::new(), e).await
        }
    }
}

pub(crate) async fn link(c: Ctx, Path(name): Path<String>) -> Response {
    link_for(c, name).await
}

pub(crate) struct Entry {
    pub seq: u64,
    pub when: String,
    pub actor: String,
    pub action: String,
    pub record: String,
    pub decision: String,
    pub reason: String,
}

#[derive(askama::Template)]
#[template(path = "audit.html")]
struct Audit {
    c: Ctx,
    title: String,
    nav: &'static str,
    entries: Vec<Entry>,
    prefix: String,
    after: u64,
    next: u64,
    verified: String,
    verified_ok: bool,
    error: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    verify: String,
}

pub(crate) async fn audit(c: Ctx, Query(q): Query<AuditQuery>) -> Response {
    let api = api::AuditApi::new(Arc::clone(&c.node));
    let msg = pb::ListAuditEntriesRequest {
        after_seq: q.after,
        limit: 100,
        action_prefix: q.prefix.trim().to_string(),
        ..Default::default()
    };
    let (entries, next, error) = match api.list_audit_entries(req(&c, msg)).await {
        Ok(r) => {
            let r = r.into_inner();
            let e = r
                .entries
                .iter()
                .map(|e| Entry {
                    seq: e.seq,
                    when: c.when(&e.time),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    record: e.record_id.clone(),
                    decision: e.decision.clone(),
                    reason: e.reason.clone(),
                })
                .collect();
            (e, r.last_seq, String::new())
        }
        Err(s) => {
            if s.code() == tonic::Code::PermissionDenied {
                return back(&c, "/", &s);
            }
            (Vec::new(), 0, Problem::of(&c.tr, &s).message)
        }
    };
    let (verified, verified_ok) = if q.verify.is_empty() {
        (String::new(), false)
    } else {
        match api.verify_audit(req(&c, pb::VerifyAuditRequest {})).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.ok {
                    (
                        c.tr.ta(
                            "audit-verified",
                            &[("entries", r.entries.to_string()), ("checkpoints", r.checkpoints.to_string())],
                        ),
                        true,
                    )
                } else {
                    (c.tr.ta("audit-broken", &[("seq", r.first_bad_seq.to_string()), ("problem", r.problem)]), false)
                }
            }
            Err(s) => (Problem::of(&c.tr, &s).message, false),
        }
    };
    let title = c.t("audit-title");
    page(Audit {
        c,
        title,
        nav: "admin",
        entries,
        prefix: q.prefix,
        after: q.after,
        next,
        verified,
        verified_ok,
        error,
    })
}
