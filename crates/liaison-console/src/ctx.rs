//! The signed-in user's context for a page, and how results become pages.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::request::Parts;
use http::StatusCode;
use liaison_node::api::Caller;
use liaison_node::convert::ProtoEnum;
use liaison_node::node::Node;
use liaison_node::pb::UserRole;

use crate::i18n::{self, Tr};
use crate::session::{cookie, COOKIE};
use crate::App;

/// Everything a page template needs about who is looking.
pub struct Ctx {
    pub tr: Tr,
    pub user: String,
    pub role: UserRole,
    /// The caller the node's handlers see (the user's scopes).
    pub caller: Caller,
    pub csrf: String,
    pub tz: jiff::tz::TimeZone,
    pub tz_name: String,
    pub node_id: String,
    pub node_name: String,
    pub hub: bool,
    pub flash: Vec<String>,
    pub node: Arc<Node>,
    pub app: App,
    pub sid: String,
}

impl Ctx {
    pub fn caller(&self) -> Caller {
        self.caller.clone()
    }

    pub fn t(&self, key: &str) -> String {
        self.tr.t(key)
    }

    pub fn t1(&self, key: &str, name: &str, v: impl std::fmt::Display) -> String {
        self.tr.t1(key, name, v)
    }

    /// An enum's label from its proto number.
    pub fn word<E: ProtoEnum>(&self, v: i32) -> String {
        self.tr.word(&crate::forms::enum_key::<E>(), &E::word_of(v))
    }

    pub fn when(&self, ts: &Option<pbjson_types::Timestamp>) -> String {
        i18n::when(ts.as_ref(), &self.tz)
    }

    pub fn admin(&self) -> bool {
        self.role == UserRole::Admin
    }

    /// May write records, share and answer requests (officers and admins).
    pub fn officer(&self) -> bool {
        matches!(self.role, UserRole::Admin | UserRole::Officer)
    }

    /// May read the audit log.
    pub fn auditor(&self) -> bool {
        matches!(self.role, UserRole::Admin | UserRole::Auditor)
    }

    pub fn role_word(&self) -> String {
        self.word::<UserRole>(self.role as i32)
    }

    /// Shows `msg` once on the next page.
    pub fn flash(&self, msg: String) {
        self.app.sessions.flash(&self.sid, msg);
    }
}

/// Not signed in: off to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/signin").into_response()
    }
}

impl FromRequestParts<App> for Ctx {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let sid = cookie(&parts.headers, COOKIE).ok_or(SignIn)?;
        let session = app.sessions.get(&sid).ok_or(SignIn)?;
        // Read the user on every request: a deleted user or a changed role
        // applies at once.
        let Ok(Some(user)) = liaison_node::account::user(&app.node, &session.user) else {
            app.sessions.end(&sid);
            return Err(SignIn);
        };
        let role = UserRole::of(user.role).unwrap_or(UserRole::Unspecified);
        if matches!(role, UserRole::Integrator | UserRole::Partner | UserRole::Unspecified) {
            // Integrators use the API and partners TAXII, not the console.
            app.sessions.end(&sid);
            return Err(SignIn);
        }
        let tr = if user.language.is_empty() {
            Tr::negotiate(parts.headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
        } else {
            Tr::new(&user.language)
        };
        let cfg = app.node.config();
        Ok(Ctx {
            tr,
            user: user.name.clone(),
            role,
            caller: Caller::of_user(&user),
            csrf: session.csrf,
            tz: i18n::zone(&user.time_zone),
            tz_name: if user.time_zone.is_empty() { "UTC".into() } else { user.time_zone.clone() },
            node_id: cfg.id.clone(),
            node_name: cfg.name.clone(),
            hub: cfg.role == liaison_node::config::Role::Hub,
            flash: app.sessions.take_flash(&sid),
            node: Arc::clone(&app.node),
            app: app.clone(),
            sid,
        })
    }
}

impl OptionalFromRequestParts<App> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Ctx as FromRequestParts<App>>::from_request_parts(parts, app).await.ok())
    }
}

/// A refused or failed call, as a person reads it: what went wrong and,
/// for invalid input, the field it names.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    pub message: String,
    pub field: String,
}

impl Problem {
    pub fn of(tr: &Tr, s: &tonic::Status) -> Problem {
        use tonic_types::StatusExt;
        let field = s
            .get_details_bad_request()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
            .unwrap_or_default();
        let kind = match s.code() {
            tonic::Code::PermissionDenied => "error-permission",
            tonic::Code::InvalidArgument => "error-invalid",
            tonic::Code::NotFound => "error-not-found",
            tonic::Code::FailedPrecondition => "error-precondition",
            tonic::Code::AlreadyExists => "error-exists",
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => "error-unavailable",
            tonic::Code::ResourceExhausted => "error-exhausted",
            tonic::Code::Unauthenticated => "error-unauthenticated",
            _ => "error-failed",
        };
        Problem { message: format!("{}: {}", tr.t(kind), s.message()), field }
    }

    /// The message when it names `field` (or a part of it), else "".
    pub fn at(&self, field: &str) -> String {
        let f = self.field.strip_prefix("record.").unwrap_or(&self.field);
        if !f.is_empty() && (f == field || f.starts_with(&format!("{field}.")) || f.starts_with(&format!("{field}["))) {
            self.message.clone()
        } else {
            String::new()
        }
    }
}

/// A rendered template, or a plain error page when rendering fails.
pub fn page(t: impl askama::Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// A failed call on a page that has nowhere to show it: back to `to` with
/// the message shown once.
pub fn back(c: &Ctx, to: &str, s: &tonic::Status) -> Response {
    c.flash(Problem::of(&c.tr, s).message);
    Redirect::to(to).into_response()
}

/// Done: back to `to` with a confirmation shown once.
pub fn done(c: &Ctx, to: &str, msg: String) -> Response {
    c.flash(msg);
    Redirect::to(to).into_response()
}
