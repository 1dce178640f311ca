//! Every POST carries the session's CSRF token in a form field named
//! `csrf` (before sign-in: the value of the `liaison_pre` cookie, a double
//! submit). Checked here, for every route at once, so no handler can
//! forget it. Also the security headers every response carries.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};

use crate::i18n::Tr;
use crate::session::{cookie, same, COOKIE, PRE_COOKIE};
use crate::App;

/// The largest form body (a bulk import of JSON lines is the largest).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The `csrf` field of a form body, urlencoded or multipart.
pub async fn token_in(content_type: &str, body: &[u8]) -> Option<String> {
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    }
    let boundary = multer::parse_boundary(content_type).ok()?;
    let bytes = bytes_of(body);
    let mut mp = multer::Multipart::new(futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) }), boundary);
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some("csrf") {
            return field.text().await.ok();
        }
    }
    None
}

fn bytes_of(b: &[u8]) -> axum::body::Bytes {
    axum::body::Bytes::copy_from_slice(b)
}

pub async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let tr = Tr::negotiate(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""));
    let expected = match cookie(req.headers(), COOKIE).and_then(|id| app.sessions.get(&id)) {
        Some(s) => Some(s.csrf),
        None => cookie(req.headers(), PRE_COOKIE),
    };
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, tr.t("error-too-large")).into_response();
    };
    let given = token_in(&ct, &bytes).await;
    match (expected, given) {
        (Some(e), Some(g)) if !e.is_empty() && same(&e, &g) => {
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        _ => {
            tracing::warn!(path = %parts.uri.path(), "console form refused: missing or wrong CSRF token");
            (StatusCode::FORBIDDEN, tr.t("error-csrf")).into_response()
        }
    }
}

/// Headers on every response: no framing, no sniffing, nothing cached, no
/// referrer, nothing loaded from anywhere but the console itself.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_is_found_in_either_kind_of_form() {
        assert_eq!(token_in("application/x-www-form-urlencoded", b"a=1&csrf=xy%2Bz").await.as_deref(), Some("xy+z"));
        assert_eq!(token_in("application/x-www-form-urlencoded", b"a=1").await, None);
        let body = "--B\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--B--\r\n";
        assert_eq!(token_in("multipart/form-data; boundary=B", body.as_bytes()).await.as_deref(), Some("tok"));
        assert_eq!(token_in("text/plain", b"csrf=tok").await, None, "only form encodings count");
    }
}
