//! Search own and received records; query one or all peers; hit/no-hit checks.

use std::sync::Arc;

use axum::extract::Query;
use axum::response::Response;
use axum::Form;
use liaison_node::api;
use liaison_node::pb::{self, exchange_service_server::ExchangeService, record_service_server::RecordService};
use serde::Deserialize;

use super::{choices, req};
use crate::ctx::{page, Ctx, Problem};

#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filters {
    #[serde(default)]
    kind: i32,
    #[serde(default)]
    text: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    origin: String,
}

pub(crate) struct Hit {
    pub href: String,
    pub title: String,
    pub kind: String,
    pub origin: String,
    pub updated: String,
    pub tlp: (&'static str, &'static str),
}

pub(crate) struct PeerOutcome {
    pub peer: String,
    pub outcome: String,
    pub answered: bool,
    pub error: String,
    pub records: Vec<Hit>,
    /// (identifier, hit, reference, request link)
    pub checks: Vec<(String, bool, String, String)>,
}

impl PeerOutcome {
    /// One peer's outcome, before its records or checks are added.
    fn of(c: &Ctx, peer: &str, outcome: i32, error: &str) -> PeerOutcome {
        PeerOutcome {
            peer: peer.to_string(),
            outcome: outcome_word(c, outcome),
            answered: outcome == pb::PeerOutcome::Answered as i32,
            error: error.to_string(),
            records: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// The call was refused or failed before any peer answered.
    fn refused(c: &Ctx, peer: &str, s: &tonic::Status) -> PeerOutcome {
        PeerOutcome {
            peer: peer.to_string(),
            outcome: Problem::of(&c.tr, s).message,
            answered: false,
            error: String::new(),
            records: Vec::new(),
            checks: Vec::new(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "search.html")]
struct SearchPage {
    c: Ctx,
    title: String,
    nav: &'static str,
    f: Filters,
    kinds: Vec<(i32, String, bool)>,
    results: Vec<Hit>,
    searched: bool,
    error: String,
    peers: Vec<String>,
    purposes: Vec<(i32, String, bool)>,
    id_types: Vec<(i32, String, bool)>,
    outcomes: Vec<PeerOutcome>,
    outcome_title: String,
}

pub(crate) fn hit(c: &Ctx, r: &pb::Record) -> Hit {
    Hit {
        href: super::record_href(&format!("{}/{}", r.originator, r.id)),
        title: super::title_of(r),
        kind: c.word::<pb::RecordKind>(super::kind_of(r) as i32),
        origin: r.originator.clone(),
        updated: c.when(&r.update_time),
        tlp: super::tlp(r.handling),
    }
}

async fn render(c: Ctx, f: Filters, outcomes: Vec<PeerOutcome>, outcome_title: String) -> Response {
    let searched =
        !(f.text.is_empty() && f.country.is_empty() && f.kind == 0 && f.from.is_empty() && f.origin.is_empty());
    let since = jiff::civil::Date::strptime("%Y-%m-%d", &f.from)
        .ok()
        .and_then(|d| d.to_zoned(c.tz.clone()).ok())
        .map(|z| pbjson_types::Timestamp { seconds: z.timestamp().as_second(), nanos: 0 });
    let until = jiff::civil::Date::strptime("%Y-%m-%d", &f.to)
        .ok()
        .and_then(|d| d.tomorrow().ok())
        .and_then(|d| d.to_zoned(c.tz.clone()).ok())
        .map(|z| z.timestamp().as_second());
    let msg = pb::ListRecordsRequest {
        kind: f.kind,
        country: f.country.trim().to_uppercase(),
        text: f.text.trim().to_string(),
        updated_since: since,
        include_withdrawn: false,
        page_size: 200,
        page_token: String::new(),
        ..Default::default()
    };
    let (results, error) = match api::RecordApi::new(Arc::clone(&c.node)).list_records(req(&c, msg)).await {
        Ok(r) => (
            r.into_inner()
                .records
                .iter()
                .filter(|r| match f.origin.as_str() {
                    "own" => r.originator == c.node_id,
                    "received" => r.originator != c.node_id,
                    _ => true,
                })
                .filter(|r| until.is_none_or(|u| r.update_time.as_ref().is_some_and(|t| t.seconds < u)))
                .map(|r| hit(&c, r))
                .collect(),
            String::new(),
        ),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let kinds = choices::<pb::RecordKind>(&c, f.kind);
    let purposes = choices::<pb::Purpose>(&c, pb::Purpose::Investigation as i32);
    let id_types = choices::<pb::IdentifierType>(&c, pb::IdentifierType::Passport as i32);
    let peers = liaison_node::exchange::peer_ids(&c.node).unwrap_or_default();
    let title = c.t("search-title");
    page(SearchPage {
        title,
        nav: "search",
        f,
        kinds,
        results,
        searched,
        error,
        peers,
        purposes,
        id_types,
        outcomes,
        outcome_title,
        c,
    })
}

pub(crate) async fn show(c: Ctx, Query(f): Query<Filters>) -> Response {
    render(c, f, Vec::new(), String::new()).await
}

#[derive(Deserialize)]
pub(crate) struct QueryForm {
    #[serde(default)]
    peer: String,
    #[serde(default)]
    kind: i32,
    #[serde(default)]
    text: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    purpose: i32,
}

fn outcome_word(c: &Ctx, o: i32) -> String {
    c.word::<pb::PeerOutcome>(o)
}

pub(crate) async fn query(c: Ctx, Form(q): Form<QueryForm>) -> Response {
    let msg = pb::QueryRequest {
        peer: q.peer.clone(),
        kind: q.kind,
        text: q.text.trim().to_string(),
        country: q.country.trim().to_uppercase(),
        purpose: q.purpose,
        deadline_ms: 5000,
        limit: 50,
    };
    let outcomes = match api::ExchangeApi::new(Arc::clone(&c.node)).query(req(&c, msg)).await {
        Ok(r) => r
            .into_inner()
            .peers
            .iter()
            .map(|p| PeerOutcome {
                records: p.records.iter().map(|r| hit(&c, r)).collect(),
                ..PeerOutcome::of(&c, &p.peer, p.outcome, &p.error)
            })
            .collect(),
        Err(s) => vec![PeerOutcome::refused(&c, &q.peer, &s)],
    };
    let title = c.t("search-query-results");
    render(c, Filters::default(), outcomes, title).await
}

#[derive(Deserialize)]
pub(crate) struct CheckForm {
    #[serde(default)]
    peer: String,
    #[serde(default)]
    id_type: i32,
    #[serde(default)]
    value: String,
    #[serde(default)]
    purpose: i32,
}

pub(crate) async fn check(c: Ctx, Form(q): Form<CheckForm>) -> Response {
    let msg = pb::CheckIdentifiersRequest {
        peer: q.peer.clone(),
        identifiers: vec![pb::IdentifierQuery { r#type: q.id_type, value: q.value.trim().to_string() }],
        purpose: q.purpose,
        deadline_ms: 5000,
    };
    let outcomes = match api::ExchangeApi::new(Arc::clone(&c.node)).check_identifiers(req(&c, msg)).await {
        Ok(r) => r
            .into_inner()
            .peers
            .iter()
            .map(|p| PeerOutcome {
                checks: p
                    .results
                    .iter()
                    .map(|h| {
                        let link = format!("/requests/new?to={}&hit={}", urlencode(&p.peer), urlencode(&h.reference));
                        (h.identifier.clone(), h.hit, h.reference.clone(), link)
                    })
                    .collect(),
                ..PeerOutcome::of(&c, &p.peer, p.outcome, &p.error)
            })
            .collect(),
        Err(s) => vec![PeerOutcome::refused(&c, &q.peer, &s)],
    };
    let title = c.t("search-check-results");
    render(c, Filters::default(), outcomes, title).await
}

pub(crate) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
