//! Requests: inbox and sent, the shared timeline with verified receipts,
//! the steps, and new requests (from a hit, pre-filled).

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use liaison_node::api;
use liaison_node::convert::ProtoEnum;
use liaison_node::pb::{self, request_service_server::RequestService};
use serde::Deserialize;

use super::{choices, req};
use crate::ctx::{back, page, Ctx, Problem};

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    #[serde(default)]
    r#box: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    peer: String,
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    overdue: String,
}

pub(crate) struct Row {
    pub href: String,
    pub subject: String,
    pub peer: String,
    pub kind: String,
    pub state: String,
    pub due: String,
    pub overdue: bool,
    pub urgent: bool,
}

#[derive(askama::Template)]
#[template(path = "requests.html")]
struct List {
    c: Ctx,
    title: String,
    nav: &'static str,
    inbox: bool,
    rows: Vec<Row>,
    states: Vec<(String, String, bool)>,
    peers: Vec<(String, bool)>,
    types: Vec<(String, bool)>,
    overdue: bool,
    error: String,
}

pub(crate) async fn list(c: Ctx, Query(f): Query<Filters>) -> Response {
    let inbox = f.r#box != "sent";
    let b = if inbox { pb::RequestBox::Inbox } else { pb::RequestBox::Outbox };
    let overdue = !f.overdue.is_empty();
    let api = api::RequestApi::new(Arc::clone(&c.node));
    let (all, error) = match api
        .list_requests(req(
            &c,
            pb::ListRequestsRequest { r#box: b as i32, overdue_only: overdue, page_size: 1000, ..Default::default() },
        ))
        .await
    {
        Ok(r) => (r.into_inner().requests, String::new()),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let peer_of = |r: &pb::Request| {
        let h = r.header.clone().unwrap_or_default();
        if inbox {
            h.from_node
        } else {
            h.to_node
        }
    };
    let mut peers: Vec<String> = all.iter().map(peer_of).collect();
    peers.sort();
    peers.dedup();
    let mut types: Vec<String> = all.iter().map(|r| r.header.clone().unwrap_or_default().request_type).collect();
    types.sort();
    types.dedup();
    // The filters combine: each one given narrows the list.
    let mut shown: Vec<pb::Request> = all
        .into_iter()
        .filter(|r| f.state.is_empty() || pb::RequestState::word_of(r.state) == f.state)
        .filter(|r| f.peer.is_empty() || peer_of(r) == f.peer)
        .filter(|r| f.r#type.is_empty() || r.header.as_ref().is_some_and(|h| h.request_type == f.r#type))
        .collect();
    super::home::by_due(&mut shown);
    let rows = shown
        .iter()
        .map(|r| {
            let d = super::home::due(&c, r);
            Row {
                href: d.href,
                subject: d.subject,
                peer: peer_of(r),
                kind: r.header.as_ref().map(|h| h.request_type.clone()).unwrap_or_default(),
                state: d.state,
                due: d.due,
                overdue: d.overdue,
                urgent: d.urgent,
            }
        })
        .collect();
    let states = (1..=5)
        .filter_map(pb::RequestState::of)
        .map(|s| (s.to_word(), c.word::<pb::RequestState>(s as i32), s.to_word() == f.state))
        .collect();
    let title = c.t("requests-title");
    page(List {
        title,
        nav: "requests",
        inbox,
        rows,
        states,
        peers: peers.into_iter().map(|p| (p.clone(), p == f.peer)).collect(),
        types: types.into_iter().map(|t| (t.clone(), t == f.r#type)).collect(),
        overdue,
        error,
        c,
    })
}

pub(crate) struct Step {
    pub what: String,
    pub actor: String,
    pub when: String,
    pub text: String,
    pub attached: Vec<String>,
}

pub(crate) struct ReceiptView {
    pub receiver: String,
    pub when: String,
    pub delivered: bool,
    pub verified: bool,
    pub reason: String,
}

/// The signed receipts kept for `key`, each shown verified or not.
pub(crate) fn receipts(c: &Ctx, key: &str) -> Vec<ReceiptView> {
    liaison_node::exchange::outbox::checked_receipts(&c.node, key)
        .unwrap_or_default()
        .into_iter()
        .map(|(rc, ok)| ReceiptView {
            when: c.when(&rc.time),
            receiver: rc.receiver,
            delivered: rc.delivered,
            verified: ok,
            reason: rc.reason,
        })
        .collect()
}

#[derive(askama::Template)]
#[template(path = "request.html")]
struct Show {
    c: Ctx,
    title: String,
    nav: &'static str,
    id: String,
    header: pb::RequestHeader,
    purpose: String,
    state: String,
    ack_due: String,
    answer_due: String,
    overdue: bool,
    incoming: bool,
    open: bool,
    timeline: Vec<Step>,
    receipts: Vec<ReceiptView>,
    escalations: Vec<String>,
}

pub(crate) async fn show(c: Ctx, Path(id): Path<String>) -> Response {
    let api = api::RequestApi::new(Arc::clone(&c.node));
    let r = match api.get_request(req(&c, pb::GetRequestRequest { id: id.clone() })).await {
        Ok(r) => r.into_inner().request.unwrap_or_default(),
        Err(s) => return back(&c, "/requests", &s),
    };
    let header = r.header.clone().unwrap_or_default();
    let timeline = r
        .timeline
        .iter()
        .map(|e| Step {
            what: c.word::<pb::Transition>(e.transition),
            actor: e.actor.clone(),
            when: c.when(&e.time),
            text: e.text.clone(),
            attached: e.attached_record_ids.clone(),
        })
        .collect();
    let receipts = receipts(&c, &r.id);
    let escalations = r
        .escalations
        .iter()
        .map(|e| format!("{} · {} · {}", e.deadline, c.word::<pb::ContactRole>(e.role), e.contact_name))
        .collect();
    let incoming = header.to_node == c.node_id;
    let open = r.state == pb::RequestState::Submitted as i32 || r.state == pb::RequestState::Acknowledged as i32;
    page(Show {
        title: header.subject.clone(),
        nav: "requests",
        id: r.id.clone(),
        purpose: c.word::<pb::Purpose>(header.purpose),
        state: c.word::<pb::RequestState>(r.state),
        ack_due: c.when(&r.ack_due),
        answer_due: c.when(&r.answer_due),
        overdue: r.overdue,
        incoming,
        open,
        timeline,
        receipts,
        escalations,
        header,
        c,
    })
}

#[derive(Deserialize)]
pub(crate) struct StepForm {
    transition: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    attach: String,
}

pub(crate) async fn step(c: Ctx, Path(id): Path<String>, Form(f): Form<StepForm>) -> Response {
    let t = pb::Transition::from_word(&f.transition).map_or(0, |t| t as i32);
    let attach = f.attach.split([',', '\n', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let msg = pb::TransitionRequestRequest {
        id: id.clone(),
        transition: t,
        text: f.text,
        attach_record_ids: attach,
        ..Default::default()
    };
    let to = format!("/requests/{id}");
    match api::RequestApi::new(Arc::clone(&c.node)).transition_request(req(&c, msg)).await {
        Ok(_) => {
            c.flash(c.t1("request-step-done", "step", c.word::<pb::Transition>(t)));
            Redirect::to(&to).into_response()
        }
        Err(s) => back(&c, &to, &s),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct NewQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    hit: String,
    #[serde(default)]
    subject: String,
}

#[derive(askama::Template)]
#[template(path = "request_new.html")]
struct New {
    c: Ctx,
    title: String,
    nav: &'static str,
    to: String,
    subject: String,
    body: String,
    refs: String,
    request_type: String,
    purposes: Vec<(i32, String, bool)>,
    urgent: bool,
    problem: Problem,
    peers: Vec<String>,
}

fn new_page(c: Ctx, f: SendForm, problem: Problem) -> Response {
    let purposes = choices::<pb::Purpose>(&c, f.purpose);
    let peers = liaison_node::exchange::peer_ids(&c.node).unwrap_or_default();
    let title = c.t("request-new-title");
    page(New {
        title,
        nav: "requests",
        to: f.to,
        subject: f.subject,
        body: f.body,
        refs: f.refs,
        request_type: f.request_type,
        purposes,
        urgent: f.urgent.is_some(),
        problem,
        peers,
        c,
    })
}

pub(crate) async fn new_form(c: Ctx, Query(q): Query<NewQuery>) -> Response {
    // From a hit: the hit reference goes in the request, which lets the
    // receiving node find its own record again.
    let body = if q.hit.is_empty() { String::new() } else { c.t1("request-from-hit", "reference", &q.hit) };
    let f = SendForm {
        to: q.to,
        subject: q.subject,
        body,
        refs: q.hit,
        request_type: "information".into(),
        purpose: pb::Purpose::Investigation as i32,
        urgent: None,
    };
    new_page(c, f, Problem::default())
}

#[derive(Deserialize)]
pub(crate) struct SendForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    refs: String,
    #[serde(default)]
    request_type: String,
    #[serde(default)]
    purpose: i32,
    urgent: Option<String>,
}

pub(crate) async fn send(c: Ctx, Form(f): Form<SendForm>) -> Response {
    let msg = pb::SendRequestRequest {
        to: f.to.trim().to_string(),
        request_type: f.request_type.trim().to_string(),
        purpose: f.purpose,
        urgent: f.urgent.is_some(),
        subject: f.subject.clone(),
        body: f.body.clone(),
        refs: f.refs.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        agreement_id: String::new(),
        ..Default::default()
    };
    match api::RequestApi::new(Arc::clone(&c.node)).send_request(req(&c, msg)).await {
        Ok(r) => {
            let id = r.into_inner().request.map(|r| r.id).unwrap_or_default();
            c.flash(c.t("request-sent"));
            Redirect::to(&format!("/requests/{id}")).into_response()
        }
        Err(s) => {
            let p = Problem::of(&c.tr, &s);
            new_page(c, f, p)
        }
    }
}
