//! Cross-site request forgery defence for cookie-authenticated requests.
//!
//! Browsers attach the session cookie to cross-site requests (`SameSite=Lax` still allows
//! top-level navigations), so every state-changing request is checked here:
//!
//! 1. **Same origin.** `Sec-Fetch-Site` must be `same-origin` (or `none`: typed by the
//!    user), else `Origin` must be the public URL's origin. A request carrying neither is
//!    not from a browser (browsers send `Origin` on every cross-origin POST) and passes.
//!    This also refuses cross-site *login* (login CSRF), cookie or not.
//! 2. **Synchronizer token for HTML forms.** A form post that carries the session cookie
//!    must include `csrf_token` (or the `X-CSRF-Token` header) equal to the session's
//!    token, from `GET /v1/csrf`. The token is derived from the session token (SHA-256
//!    with a label), so it needs no storage and is useless without the cookie.
//!
//! Requests that carry a *bearer token* are exempt: a browser never adds one by itself, and
//! such a request is authenticated by the token alone. Any other `Authorization` scheme is
//! not an exemption (browsers do attach `Basic` credentials by themselves), and such a
//! request is never authenticated by the cookie either (see [`super::auth`]). No endpoint
//! sends CORS headers, so no other origin can read a response either.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::{AppState, MAX_BODY_BYTES};
use crate::error::ApiError;

/// The synchronizer token of the session whose token is `session_token`.
pub fn csrf_token(session_token: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("tessera-csrf\0{session_token}").as_bytes(),
    );
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

fn cross_site(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin") | Ok("none"));
    }
    match headers.get(ORIGIN) {
        Some(origin) => origin.to_str().map_or(true, |o| o != origin_of(public_url)),
        None => false,
    }
}

/// Whether the request carries a bearer token (well-formed or not: a malformed one is
/// refused by the extractor, never served by the cookie).
fn has_bearer(headers: &HeaderMap) -> bool {
    headers.get_all(AUTHORIZATION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b' ')
            .next()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"))
    })
}

fn refuse_cross_site(state: &AppState, req: &Request) -> Option<Response> {
    let exempt = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || has_bearer(req.headers());
    if !exempt && cross_site(req.headers(), &state.settings.public_url) {
        tracing::warn!(event = "csrf_rejected", path = %req.uri().path(), "cross-site request refused");
        return Some(ApiError::Forbidden("csrf_rejected").into_response());
    }
    None
}

/// Middleware for login and signup: same-origin check only (they run before any session).
pub async fn same_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match refuse_cross_site(&state, &req) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    }
}

/// Middleware for routes a session cookie can authenticate: same origin, and the
/// synchronizer token on form posts.
pub async fn protect(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || has_bearer(req.headers())
    {
        return next.run(req).await;
    }
    if let Some(refusal) = refuse_cross_site(&state, &req) {
        return refusal;
    }
    let Some(session) =
        super::auth::session_cookie(req.headers(), &state.cookie_name).map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/x-www-form-urlencoded")
                || ct.starts_with("multipart/form-data")
                || ct.starts_with("text/plain")
        });
    if !is_form {
        return next.run(req).await;
    }
    let expected = csrf_token(&session);
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let presented = header_token.or_else(|| {
        url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf_token")
            .map(|(_, v)| v.into_owned())
    });
    let valid = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if !valid {
        tracing::warn!(event = "csrf_rejected", path = %parts.uri.path(), "form post without a valid CSRF token");
        return ApiError::Forbidden("csrf_token_invalid").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
