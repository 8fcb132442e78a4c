//! JWT mode and OAuth metadata: `POST /v1/token` (RFC 6749), the JWKS (RFC 7517) and the
//! authorization server metadata (RFC 8414).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tessera_verify::{AccessClaims, Audience};

use super::extract::OAuthForm;
use super::{AppState, public_cache};
use crate::error::ApiError;
use crate::users;

/// How long clients may cache the JWKS. Key rotation must publish a new key at least this
/// long before it signs anything.
pub const JWKS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

fn oauth(code: &'static str, description: &'static str) -> ApiError {
    ApiError::OAuth {
        status: StatusCode::BAD_REQUEST,
        code,
        description,
    }
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// The token endpoint. Supports `grant_type=password` (RFC 6749 §4.3).
pub async fn token(
    State(state): State<AppState>,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let grant = form
        .get("grant_type")
        .ok_or(oauth("invalid_request", "grant_type is required"))?;
    if grant != "password" {
        return Err(oauth("unsupported_grant_type", "supported: password"));
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Err(oauth(
            "invalid_request",
            "username and password are required",
        ));
    };
    let user = users::authenticate(
        state.stores.users.as_ref(),
        &state.passwords,
        username,
        password.clone(),
    )
    .await
    .map_err(|e| match e {
        ApiError::BadRequest { .. } => oauth("invalid_request", "malformed username or password"),
        other => other,
    })?
    .ok_or_else(|| {
        tracing::info!(
            event = "login_failed",
            grant = "password",
            "password grant failed"
        );
        oauth("invalid_grant", "invalid username or password")
    })?;
    let now = state.clock.now();
    let ttl = state.settings.access_token_ttl.as_secs();
    let client_id = form
        .get("client_id")
        .cloned()
        .unwrap_or_else(|| "tessera".into());
    let claims = AccessClaims {
        iss: state.settings.public_url.clone(),
        sub: user.id.clone(),
        aud: Audience::One(state.settings.audience.clone()),
        exp: now + ttl as i64,
        iat: now,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id,
        role: user.role,
        username: user.username,
        sid: None,
    };
    let access_token = state.keys.sign(&claims)?;
    tracing::info!(event = "token_issued", user_id = %user.id, jti = %claims.jti, "access token issued");
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
    };
    Ok((
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response())
}

/// The public signing keys (RFC 7517). Never contains private members.
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [
            (
                CONTENT_TYPE,
                "application/jwk-set+json"
                    .parse()
                    .unwrap_or(axum::http::HeaderValue::from_static("application/json")),
            ),
            (CACHE_CONTROL, public_cache(JWKS_MAX_AGE)),
        ],
        state.keys.jwks_json().to_string(),
    )
        .into_response()
}

/// Authorization server metadata (RFC 8414). `issuer` is exactly the configured public URL.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let base = &state.settings.public_url;
    let body = json!({
        "issuer": base,
        "token_endpoint": format!("{base}/v1/token"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": ["password"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "access_token_signing_alg_values_supported": state.keys.algorithms(),
    });
    (
        [(
            CACHE_CONTROL,
            public_cache(std::time::Duration::from_secs(3600)),
        )],
        Json(body),
    )
        .into_response()
}
