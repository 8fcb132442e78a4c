//! JWT mode and OAuth: the token endpoint (RFC 6749), revocation (RFC 7009),
//! introspection (RFC 7662), the JWKS (RFC 7517) and the server metadata (RFC 8414).
//!
//! Client credentials are read here (HTTP Basic, RFC 6749 §2.3.1); checking them, and
//! every grant, is the core's.

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tessera_core::clients::ClientCredentials;
use tessera_core::store::Client;
use tessera_core::tokens::Introspection;

use super::auth::RequestOrigin;
use super::extract::OAuthForm;
use super::{AppState, public_cache};
use crate::error::ApiError;

/// How long clients may cache the JWKS. Key rotation must publish a new key at least this
/// long before it signs anything.
pub const JWKS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

type Form = std::collections::HashMap<String, String>;

fn no_store(body: Value) -> Response {
    (
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response()
}

/// Basic credentials were sent and cannot be read.
fn invalid_client() -> ApiError {
    ApiError::oauth("invalid_client", "client authentication failed").challenging_basic(true)
}

/// The id and secret of the request's `Authorization: Basic` header; `Ok(None)` when there
/// is no Basic header; `invalid_client` when there is one and it cannot be read.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::oauth(
            "invalid_request",
            "more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| invalid_client())?;
    let Some((scheme, creds)) = value.split_once(' ') else {
        return Err(invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(creds.trim())
        .map_err(|_| invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Ok(Some((
        decode(id).ok_or_else(invalid_client)?,
        decode(secret).ok_or_else(invalid_client)?,
    )))
}

fn param<'f>(form: &'f Form, name: &str, missing: &'static str) -> Result<&'f str, ApiError> {
    form.get(name)
        .map(String::as_str)
        .ok_or(ApiError::oauth("invalid_request", missing))
}

/// The token endpoint: `grant_type=password` (RFC 6749 §4.3) and `refresh_token` (§6).
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RequestOrigin(client): RequestOrigin,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let grant = param(&form, "grant_type", "grant_type is required")?;
    let creds = ClientCredentials {
        basic: basic_credentials(&headers)?,
        client_id: form.get("client_id").cloned(),
    };
    let core = &state.core;
    let tried_basic = creds.basic.is_some();
    let client_id = core
        .token_client(&creds)
        .await
        .map_err(|e| ApiError::from_oauth(e).challenging_basic(tried_basic))?;
    let pair = match grant {
        "password" => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return Err(ApiError::oauth(
                    "invalid_request",
                    "username and password are required",
                ));
            };
            core.password_grant(username, password.clone(), &client_id, client)
                .await
        }
        "refresh_token" => {
            let presented = param(&form, "refresh_token", "refresh_token is required")?;
            core.refresh(presented, &client_id).await
        }
        _ => {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                "supported: password, refresh_token",
            ));
        }
    }
    .map_err(ApiError::from_oauth)?;
    Ok(no_store(json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    })))
}

/// Endpoints for resource servers require an authenticated confidential client.
async fn require_client(state: &AppState, headers: &HeaderMap) -> Result<Client, ApiError> {
    let Some((id, secret)) = basic_credentials(headers)? else {
        return Err(ApiError::oauth(
            "invalid_client",
            "client authentication (HTTP Basic) is required",
        ));
    };
    state
        .core
        .authenticate_client(&id, &secret)
        .await
        .map_err(|e| ApiError::from(e).challenging_basic(true))
}

/// Token revocation (RFC 7009). Unknown, invalid or already-expired tokens get 200.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let client = require_client(&state, &headers).await?;
    let token = param(&form, "token", "token is required")?;
    state.core.revoke_token(&client.id, token).await?;
    Ok(no_store(json!({})))
}

/// Token introspection (RFC 7662). Anything not currently valid — expired, revoked,
/// forged, foreign, malformed, spent — is exactly `{"active": false}`.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    require_client(&state, &headers).await?;
    let token = param(&form, "token", "token is required")?;
    let tokens = &state.core.policy.tokens;
    Ok(no_store(match state.core.introspect(token).await? {
        Introspection::Inactive => json!({"active": false}),
        Introspection::Access(c) => json!({
            "active": true, "sub": c.sub, "username": c.username, "role": c.role,
            "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "jti": c.jti,
            "client_id": c.client_id, "token_type": "Bearer", "sid": c.sid,
        }),
        Introspection::Refresh {
            token: rt,
            family,
            user,
        } => json!({
            "active": true, "sub": user.user_id, "username": user.username, "role": user.role,
            "exp": family.idle_expires_at.min(family.expires_at), "iat": rt.created_at,
            "iss": tokens.issuer, "aud": tokens.audience, "jti": rt.id,
            "client_id": family.client_id, "token_type": "refresh_token", "sid": family.id,
        }),
    }))
}

/// The public signing keys (RFC 7517). Never contains private members.
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            ),
            (CACHE_CONTROL, public_cache(JWKS_MAX_AGE)),
        ],
        state.core.keys.ring().jwks_json().to_string(),
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
        "revocation_endpoint": format!("{base}/v1/revoke"),
        "introspection_endpoint": format!("{base}/v1/introspect"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "access_token_signing_alg_values_supported": state.core.keys.ring().algorithms(),
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
