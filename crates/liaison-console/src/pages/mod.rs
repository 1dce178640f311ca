//! One module per screen. Handlers call the node's API handlers in process
//! ([`call`]) and render templates from plain view values.

mod account;
mod admin;
mod agreements;
mod cases;
mod contacts;
mod home;
mod hub;
mod records;
mod requests;
mod search;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use liaison_node::convert::ProtoEnum;
use liaison_node::pb;

use crate::ctx::Ctx;
use crate::App;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(home::show))
        .route("/assets/style.css", get(style))
        .route("/signin", get(account::signin_form).post(account::signin))
        .route("/signout", post(account::signout))
        .route("/welcome/{token}", get(account::welcome_form).post(account::welcome))
        .route("/account", get(account::prefs_form).post(account::prefs))
        .route("/requests", get(requests::list).post(requests::send))
        .route("/requests/new", get(requests::new_form))
        .route("/requests/{id}", get(requests::show))
        .route("/requests/{id}/step", post(requests::step))
        .route("/search", get(search::show))
        .route("/search/query", post(search::query))
        .route("/search/check", post(search::check))
        .route("/records/new", get(records::new_form).post(records::create))
        // A bulk import may be as large as the CSRF check reads (16 MB);
        // other forms keep axum's 2 MB.
        .route(
            "/records/import",
            get(records::import_form).post(records::import).layer(DefaultBodyLimit::max(crate::csrf::MAX_BODY)),
        )
        .route("/records/import/{job}", get(records::import_status))
        .route("/records/{origin}/{id}", get(records::show))
        .route("/records/{origin}/{id}/reveal", post(records::reveal))
        .route("/records/{origin}/{id}/edit", get(records::edit_form).post(records::update))
        .route("/records/{origin}/{id}/preview", post(records::preview))
        .route("/records/{origin}/{id}/share", post(records::share))
        .route("/records/{origin}/{id}/withdraw", post(records::withdraw))
        .route("/cases", get(cases::list))
        .route("/cases/{id}", get(cases::show))
        .route("/cases/{id}/advance", post(cases::advance))
        .route("/agreements", get(agreements::list))
        .route("/agreements/{id}", get(agreements::show))
        .route("/agreements/{id}/act", post(agreements::act))
        .route("/contacts", get(contacts::list))
        .route("/hub", get(hub::show))
        .route("/admin", get(admin::show))
        .route("/admin/peers", post(admin::add_peer))
        .route("/admin/peers/{id}/test", post(admin::test_peer))
        .route("/admin/users", post(admin::add_user))
        .route("/admin/users/{name}/link", post(admin::link))
        .route("/admin/audit", get(admin::audit))
        .fallback(not_found)
}

async fn style() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/css; charset=utf-8"), (http::header::CACHE_CONTROL, "max-age=3600")],
        include_str!("../../assets/style.css"),
    )
}

pub(crate) async fn not_found() -> impl IntoResponse {
    (http::StatusCode::NOT_FOUND, "not found")
}

/// `msg` as the signed-in user sends it to the node's handlers.
pub(crate) fn req<T>(c: &Ctx, msg: T) -> tonic::Request<T> {
    liaison_node::api::as_caller(msg, c.caller())
}

/// Each option of an enum as (proto number, label, selected).
pub(crate) fn choices<E: ProtoEnum>(c: &Ctx, selected: i32) -> Vec<(i32, String, bool)> {
    (1..64).filter(|i| E::of(*i).is_some()).map(|n| (n, c.word::<E>(n), n == selected)).collect()
}

/// A record's key as the console links to it.
pub(crate) fn record_href(key: &str) -> String {
    format!("/records/{key}")
}

/// A record's one-line title, without protected fields.
pub(crate) fn title_of(r: &pb::Record) -> String {
    use pb::record::Body;
    match &r.body {
        Some(Body::ContactPoint(c)) => c.name.clone(),
        Some(Body::IntelligenceReport(i)) => i.title.clone(),
        Some(Body::Entity(e)) => e.names.first().cloned().unwrap_or_default(),
        Some(Body::VictimReferral(v)) => v.pseudonym.clone(),
        Some(Body::StatisticsReport(s)) => format!("{} {}–{}", s.country, s.period_start, s.period_end),
        Some(Body::RegionalAggregate(a)) => format!("{} {}–{}", a.region, a.period_start, a.period_end),
        None => String::new(),
    }
}

pub(crate) fn kind_of(r: &pb::Record) -> pb::RecordKind {
    liaison_node::record::kind(r).unwrap_or(pb::RecordKind::Unspecified)
}

/// The TLP 2.0 label and its CSS class for a handling code.
pub(crate) fn tlp(handling: i32) -> (&'static str, &'static str) {
    match pb::HandlingCode::of(handling) {
        Some(pb::HandlingCode::Red) => ("TLP:RED", "tlp-red"),
        Some(pb::HandlingCode::AmberStrict) => ("TLP:AMBER+STRICT", "tlp-amber"),
        Some(pb::HandlingCode::Amber) => ("TLP:AMBER", "tlp-amber"),
        Some(pb::HandlingCode::Green) => ("TLP:GREEN", "tlp-green"),
        _ => ("TLP:CLEAR", "tlp-clear"),
    }
}
