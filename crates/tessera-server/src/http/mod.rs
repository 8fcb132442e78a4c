//! The HTTP API: routes, shared state, and the layers every request passes through.
//!
//! [`router`] builds the whole app from an [`AppState`] without binding a socket, so it can
//! be served by [`crate::startup::Application`] or driven directly.

mod account;
mod admin;
pub mod auth;
pub mod csrf;
pub mod extract;
mod oauth;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, Request};
use axum::middleware;
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use tessera_core::Core;

use crate::config::Settings;
use crate::error::ApiError;

/// Largest request body accepted, in bytes. Every tessera request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler can reach. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`]: the core every handler calls, and what only HTTP needs.
pub struct Inner {
    /// Every use case.
    pub core: Arc<Core>,
    /// Validated settings (public URL, cookie attributes, trusted proxies).
    pub settings: Settings,
    /// The session cookie's name (computed once from the settings).
    pub cookie_name: String,
    /// The data directory's instance lock, held for the life of the server when this
    /// instance is the SQLite file's only writer.
    pub instance_lock: Option<std::fs::File>,
}

impl AppState {
    /// Bundle the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Ready when every configured store answers: the durable store, and Redis if configured.
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let r = state.core.readiness().await;
    let (ready, durable, redis) = (r.ready(), r.database, r.redis);
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"ready": ready, "database": durable, "redis": redis});
    let mut res = (status, axum::Json(body)).into_response();
    if !ready {
        res.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(1));
    }
    res
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::Internal("handler panicked".into()).into_response()
}

/// The application's routes and layers.
pub fn router(state: AppState) -> Router {
    // Reads need no CSRF check (a cross-site page cannot read the answer: no CORS), and
    // stay off the middleware so that the hot path (`GET /v1/me`) pays nothing for it.
    let reads = Router::new()
        .route("/v1/me", get(account::me))
        .route("/v1/sessions", get(sessions::list))
        .route("/v1/csrf", get(sessions::csrf))
        .route("/v1/admin/users", get(admin::list_users))
        .route("/v1/admin/audit", get(admin::audit));
    // State-changing routes a session cookie can authenticate: same-origin check and, for
    // form posts, the synchronizer token.
    let session_routes = Router::new()
        .route("/v1/logout", post(sessions::logout))
        .route("/v1/logout-all", post(sessions::logout_all))
        .route("/v1/sessions/{id}", delete(sessions::delete))
        .route("/v1/password", post(sessions::change_password))
        .route("/v1/admin/users/{id}/role", post(admin::set_role))
        .route("/v1/admin/users/{id}/disable", post(admin::disable))
        .route("/v1/admin/users/{id}/enable", post(admin::enable))
        .route("/v1/admin/users/{id}/revoke", post(admin::revoke))
        .route_layer(middleware::from_fn_with_state(state.clone(), csrf::protect));
    // Login and signup run before any session: same-origin check (login CSRF).
    let entry_routes = Router::new()
        .route("/v1/signup", post(account::signup))
        .route("/v1/login", post(sessions::login))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            csrf::same_origin,
        ));
    // OAuth endpoints: never cookie-authenticated.
    let oauth_routes = Router::new()
        .route("/v1/token", post(oauth::token))
        .route("/v1/revoke", post(oauth::revoke))
        .route("/v1/introspect", post(oauth::introspect));
    let v1 = Router::new()
        .merge(reads)
        .merge(session_routes)
        .merge(entry_routes)
        .merge(oauth_routes)
        // Nothing under /v1 may be cached: responses carry credentials or personal data.
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(v1)
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/.well-known/oauth-authorization-server", get(oauth::metadata))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        // Method and path only: query strings and headers may carry credentials. At debug
        // level, so that the span costs nothing on the hot path unless asked for
        // (RUST_LOG=tower_http=debug,tessera_server=debug).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// `Cache-Control` for public, cacheable documents (JWKS, metadata).
pub(crate) fn public_cache(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}
