//! Contacts: own, received and regional (through a hub) contact points,
//! reachable now from their hours and time zone, last verified.

use std::sync::Arc;

use axum::extract::Query;
use axum::response::Response;
use liaison_node::api;
use liaison_node::pb::{self, exchange_service_server::ExchangeService, record_service_server::RecordService};
use serde::Deserialize;

use super::req;
use crate::ctx::{page, Ctx, Problem};
use crate::i18n;

pub(crate) struct Contact {
    pub href: String,
    pub name: String,
    pub role: String,
    pub agency: String,
    pub country: String,
    pub channels: Vec<String>,
    pub languages: String,
    pub hours: String,
    /// `yes`, `no` or `unknown`.
    pub reachable: &'static str,
    pub reachable_word: String,
    pub verified: String,
    pub origin: String,
}

#[derive(askama::Template)]
#[template(path = "contacts.html")]
struct Contacts {
    c: Ctx,
    title: String,
    nav: &'static str,
    own: Vec<Contact>,
    received: Vec<Contact>,
    regional: Vec<Contact>,
    regional_error: String,
    text: String,
    country: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    #[serde(default)]
    text: String,
    #[serde(default)]
    country: String,
}

fn contact(c: &Ctx, r: &pb::Record, now: jiff::Timestamp) -> Option<Contact> {
    let Some(pb::record::Body::ContactPoint(p)) = &r.body else { return None };
    let a = p.availability.clone().unwrap_or_default();
    let reach = i18n::reachable(a.always, &a.hours, &a.time_zone, now);
    let (reachable, key) = match reach {
        Some(true) => ("yes", "contacts-reachable-yes"),
        Some(false) => ("no", "contacts-reachable-no"),
        None => ("unknown", "contacts-reachable-unknown"),
    };
    Some(Contact {
        href: super::record_href(&format!("{}/{}", r.originator, r.id)),
        name: p.name.clone(),
        role: c.word::<pb::ContactRole>(p.role),
        agency: p.agency.clone(),
        country: p.country.clone(),
        channels: p
            .channels
            .iter()
            .map(|ch| format!("{}: {}", c.word::<pb::ChannelType>(ch.r#type), ch.value))
            .collect(),
        languages: p.languages.join(", "),
        hours: if a.always { c.t("contacts-always") } else { format!("{} ({})", a.hours, a.time_zone) },
        reachable,
        reachable_word: c.t(key),
        verified: p.last_verified.clone(),
        origin: r.originator.clone(),
    })
}

pub(crate) async fn list(c: Ctx, Query(f): Query<Filters>) -> Response {
    let now = jiff::Timestamp::from_second(c.node.now().unix_timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let msg = pb::ListRecordsRequest {
        kind: pb::RecordKind::ContactPoint as i32,
        text: f.text.trim().to_string(),
        country: f.country.trim().to_uppercase(),
        page_size: 500,
        ..Default::default()
    };
    let (records, error) = match api::RecordApi::new(Arc::clone(&c.node)).list_records(req(&c, msg)).await {
        Ok(r) => (r.into_inner().records, String::new()),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let (mut own, mut received) = (Vec::new(), Vec::new());
    for r in &records {
        if let Some(x) = contact(&c, r, now) {
            if r.originator == c.node_id {
                own.push(x);
            } else {
                received.push(x);
            }
        }
    }
    let msg = pb::SearchRegionRequest { text: f.text.trim().to_string(), country: f.country.trim().to_uppercase() };
    let (regional, regional_error) = match api::ExchangeApi::new(Arc::clone(&c.node)).search_region(req(&c, msg)).await
    {
        Ok(r) => (r.into_inner().records.iter().filter_map(|r| contact(&c, r, now)).collect(), String::new()),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let title = c.t("contacts-title");
    page(Contacts {
        c,
        title,
        nav: "contacts",
        own,
        received,
        regional,
        regional_error,
        text: f.text,
        country: f.country,
        error,
    })
}
