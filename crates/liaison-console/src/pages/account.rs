//! Sign-in, sign-out, the one-time link, and the user's preferences.

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::{header, HeaderMap};
use liaison_node::account::{self, AccountError};
use serde::Deserialize;

use crate::ctx::{page, Ctx};
use crate::i18n::{Tr, LANGUAGES};
use crate::session::{cookie, random_token, set_cookie, COOKIE, PRE_COOKIE};
use crate::App;

/// A page shown before sign-in.
pub(crate) struct Pre {
    pub tr: Tr,
    pub csrf: String,
    /// (code, own name, current)
    pub languages: Vec<(&'static str, &'static str, bool)>,
}

#[derive(askama::Template)]
#[template(path = "signin.html")]
struct SignInPage {
    p: Pre,
    title: String,
    error: String,
    name: String,
}

#[derive(askama::Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    p: Pre,
    title: String,
    error: String,
    user: String,
    token: String,
}

#[derive(Deserialize)]
pub(crate) struct LangQuery {
    #[serde(default)]
    lang: String,
}

fn tr_for(headers: &HeaderMap, lang: &str) -> Tr {
    if !lang.is_empty() {
        return Tr::new(lang);
    }
    Tr::negotiate(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
}

/// The pre-sign-in context, reusing the browser's pre cookie or making one.
fn pre(app: &App, headers: &HeaderMap, lang: &str) -> (Pre, Option<String>) {
    let tr = tr_for(headers, lang);
    let (csrf, set) = match cookie(headers, PRE_COOKIE).filter(|c| c.len() == 43) {
        Some(c) => (c, None),
        None => {
            let c = random_token();
            (c.clone(), Some(set_cookie(PRE_COOKIE, &c, app.secure, false)))
        }
    };
    let languages = LANGUAGES.iter().map(|(c, n, _)| (*c, *n, *c == tr.code())).collect();
    (Pre { tr, csrf, languages }, set)
}

fn with_cookie(mut r: Response, set: Option<String>) -> Response {
    if let Some(v) = set.and_then(|s| s.parse().ok()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn signin_form(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    signed: Option<Ctx>,
) -> Response {
    if signed.is_some() {
        return Redirect::to("/").into_response();
    }
    let (p, set) = pre(&app, &headers, &q.lang);
    let title = p.tr.t("signin-title");
    with_cookie(page(SignInPage { p, title, error: String::new(), name: String::new() }), set)
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    lang: String,
}

fn source(addr: std::net::SocketAddr) -> String {
    liaison_node::refusal::addr(Some(addr))
}

/// Starts a session: a new id (never one the browser brought), the pre
/// cookie cleared.
fn start(app: &App, user: &str, to: &str) -> Response {
    let id = app.sessions.start(user);
    let mut r = Redirect::to(to).into_response();
    for c in [set_cookie(COOKIE, &id, app.secure, false), set_cookie(PRE_COOKIE, "", app.secure, true)] {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

pub(crate) async fn signin(
    State(app): State<App>,
    ConnectInfo(crate::listener::Remote(addr)): ConnectInfo<crate::listener::Remote>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let result = account::sign_in(&app.node, &source(addr), f.name.trim(), &f.password).await;
    let (p, set) = pre(&app, &headers, &f.lang);
    let error = match result {
        Ok(user) => {
            let role = liaison_node::pb::UserRole::try_from(user.role).unwrap_or_default();
            if role == liaison_node::pb::UserRole::Integrator {
                p.tr.t("signin-integrator")
            } else {
                return start(&app, &user.name, "/");
            }
        }
        Err(AccountError::Throttled(wait)) => p.tr.t1("signin-throttled", "seconds", wait.as_secs().max(1)),
        Err(AccountError::Refused) => p.tr.t("signin-refused"),
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in failed");
            p.tr.t("error-failed")
        }
    };
    let title = p.tr.t("signin-title");
    let mut r = page(SignInPage { p, title, error, name: f.name });
    *r.status_mut() = http::StatusCode::UNAUTHORIZED;
    with_cookie(r, set)
}

pub(crate) async fn signout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        app.sessions.end(&id);
    }
    let mut r = Redirect::to("/signin").into_response();
    if let Ok(v) = set_cookie(COOKIE, "", app.secure, true).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn welcome_form(
    State(app): State<App>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let (p, set) = pre(&app, &headers, &q.lang);
    let title = p.tr.t("welcome-title");
    let (user, error) = match account::link_user(&app.node, &token) {
        Ok(u) => (u.name, String::new()),
        Err(_) => (String::new(), p.tr.t("welcome-spent")),
    };
    with_cookie(page(WelcomePage { p, title, error, user, token }), set)
}

#[derive(Deserialize)]
pub(crate) struct WelcomeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    lang: String,
}

pub(crate) async fn welcome(
    State(app): State<App>,
    ConnectInfo(crate::listener::Remote(addr)): ConnectInfo<crate::listener::Remote>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<WelcomeForm>,
) -> Response {
    let (p, set) = pre(&app, &headers, &f.lang);
    let user = account::link_user(&app.node, &token).map(|u| u.name).unwrap_or_default();
    let error = if f.password != f.repeat {
        p.tr.t("welcome-mismatch")
    } else {
        match account::redeem_link(&app.node, &source(addr), &token, &f.password).await {
            Ok(u) => return start(&app, &u.name, "/account"),
            Err(AccountError::Invalid { .. }) => {
                p.tr.ta("password-rule", &[("min", account::MIN_PASSWORD.to_string())])
            }
            Err(_) => p.tr.t("welcome-spent"),
        }
    };
    let title = p.tr.t("welcome-title");
    with_cookie(page(WelcomePage { p, title, error, user, token }), set)
}

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Ctx,
    title: String,
    nav: &'static str,
    error_field: String,
    error: String,
    languages: Vec<(&'static str, &'static str, bool)>,
    time_zone: String,
    zones: Vec<String>,
}

fn account_page(c: Ctx, error_field: &str, error: String, time_zone: String) -> Response {
    let title = c.t("account-title");
    let current = c.tr.code();
    let languages = LANGUAGES.iter().map(|(code, n, _)| (*code, *n, *code == current)).collect();
    let zones = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
    page(AccountPage { c, title, nav: "account", error_field: error_field.into(), error, languages, time_zone, zones })
}

pub(crate) async fn prefs_form(c: Ctx) -> Response {
    let tz = c.tz_name.clone();
    account_page(c, "", String::new(), tz)
}

#[derive(Deserialize)]
pub(crate) struct PrefsForm {
    #[serde(default)]
    language: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn prefs(c: Ctx, Form(f): Form<PrefsForm>) -> Response {
    let tz = f.time_zone.trim().to_string();
    if let Err(e) = account::set_preferences(&c.node, &c.user, &f.language, &tz).await {
        let field = match &e {
            AccountError::Invalid { field, .. } => *field,
            _ => "",
        };
        let msg = e.to_string();
        return account_page(c, field, msg, tz);
    }
    if !f.password.is_empty() {
        let actor = format!("user:{}", c.user);
        if let Err(e) = account::set_password(&c.node, &actor, &c.user, &f.password).await {
            let msg = match e {
                AccountError::Invalid { .. } => c.tr.ta("password-rule", &[("min", account::MIN_PASSWORD.to_string())]),
                e => e.to_string(),
            };
            return account_page(c, "password", msg, tz);
        }
    }
    let tr = Tr::new(&f.language);
    c.flash(tr.t("account-saved"));
    Redirect::to("/account").into_response()
}
