//! JWT mode and OAuth: the token endpoint (RFC 6749), revocation (RFC 7009),
//! introspection (RFC 7662), the JWKS (RFC 7517) and the server metadata (RFC 8414).

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::ClientInfo;
use super::extract::OAuthForm;
use super::{AppState, public_cache};
use crate::clients;
use crate::error::ApiError;
use crate::session;
use crate::store::Client;
use crate::tokens::{self, PUBLIC_CLIENT};

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

fn no_store(body: Value) -> Response {
    (
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response()
}

/// The client making a token request: an authenticated confidential client, or the
/// built-in public client when no credentials are sent. A confidential client's id sent
/// without its secret is refused: it must authenticate.
async fn token_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<String, ApiError> {
    if let Some(client) = clients::authenticate(state.stores.clients.as_ref(), headers).await? {
        if form.get("client_id").is_some_and(|id| *id != client.id) {
            return Err(oauth(
                "invalid_request",
                "client_id does not match the authenticated client",
            ));
        }
        return Ok(client.id);
    }
    match form.get("client_id").map(String::as_str) {
        None | Some(PUBLIC_CLIENT) => Ok(PUBLIC_CLIENT.to_owned()),
        Some(_) => Err(ApiError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: "confidential clients must authenticate with HTTP Basic",
        }),
    }
}

/// The token endpoint: `grant_type=password` (RFC 6749 §4.3) and `refresh_token` (§6).
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let grant = form
        .get("grant_type")
        .ok_or(oauth("invalid_request", "grant_type is required"))?;
    let client_id = token_client(&state, &headers, &form).await?;
    let pair = match grant.as_str() {
        "password" => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return Err(oauth(
                    "invalid_request",
                    "username and password are required",
                ));
            };
            let user = super::sessions::check_credentials(
                &state,
                username,
                password.clone(),
                &client,
                "jwt",
            )
            .await
            .map_err(|e| match e {
                ApiError::BadRequest { .. } => {
                    oauth("invalid_request", "malformed username or password")
                }
                other => other,
            })?;
            let Some(user) = user else {
                return Err(oauth("invalid_grant", "invalid username or password"));
            };
            let pair = tokens::issue_for_login(&state, &user, &client_id, client).await?;
            tracing::info!(event = "login", mode = "jwt", user_id = %user.id, "refresh family opened");
            pair
        }
        "refresh_token" => {
            let presented = form
                .get("refresh_token")
                .ok_or(oauth("invalid_request", "refresh_token is required"))?;
            tokens::refresh(&state, presented, &client_id).await?
        }
        _ => {
            return Err(oauth(
                "unsupported_grant_type",
                "supported: password, refresh_token",
            ));
        }
    };
    Ok(no_store(json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    })))
}

/// Endpoints for resource servers require an authenticated confidential client.
async fn require_client(state: &AppState, headers: &HeaderMap) -> Result<Client, ApiError> {
    clients::authenticate(state.stores.clients.as_ref(), headers)
        .await?
        .ok_or(ApiError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: "client authentication (HTTP Basic) is required",
        })
}

fn token_param(form: &std::collections::HashMap<String, String>) -> Result<&str, ApiError> {
    form.get("token")
        .map(String::as_str)
        .ok_or(oauth("invalid_request", "token is required"))
}

/// Token revocation (RFC 7009). The hint is only a hint: the token's shape decides (a JWT
/// is an access token, anything else is looked up as a refresh token). Unknown, invalid
/// or already-expired tokens get 200: there is nothing left to revoke.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let client = require_client(&state, &headers).await?;
    let token = token_param(&form)?;
    let now = state.clock.now();
    let not_yours = || {
        oauth(
            "unauthorized_client",
            "the token was not issued to this client",
        )
    };
    if token.contains('.') {
        if let Ok(claims) = state.keys.ring().verifier().verify(token, now) {
            if claims.client_id != client.id {
                return Err(not_yours());
            }
            state
                .revocations
                .revoke_jti(&state.stores, &claims.jti, claims.exp)
                .await?;
            state.stores.audit.record(now, "revoke", Some(&claims.sub), &json!({"token_type": "access_token", "jti": claims.jti, "client_id": client.id})).await?;
        }
    } else if let Some((_, family)) = state
        .stores
        .refresh
        .find_refresh_token(&session::hash_token(token))
        .await?
    {
        if family.client_id != client.id {
            return Err(not_yours());
        }
        if state
            .revocations
            .revoke_family(&state.stores, &family.id, family.expires_at, now)
            .await?
        {
            state.stores.audit.record(now, "revoke", Some(&family.user_id), &json!({"token_type": "refresh_token", "family_id": family.id, "client_id": client.id})).await?;
        }
    }
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
    let token = token_param(&form)?;
    let now = state.clock.now();
    let inactive = || no_store(json!({"active": false}));
    if token.contains('.') {
        let Ok(c) = state
            .keys
            .ring()
            .verifier()
            .verify_with(token, now, &state.revocations.list)
        else {
            return Ok(inactive());
        };
        return Ok(no_store(json!({
            "active": true, "sub": c.sub, "username": c.username, "role": c.role,
            "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "jti": c.jti,
            "client_id": c.client_id, "token_type": "Bearer", "sid": c.sid,
        })));
    }
    let Some((rt, family)) = state
        .stores
        .refresh
        .find_refresh_token(&session::hash_token(token))
        .await?
    else {
        return Ok(inactive());
    };
    if rt.spent_at.is_some()
        || !family.is_live(now)
        || state.revocations.list.family_revoked(&family.id)
    {
        return Ok(inactive());
    }
    let Some(user) = state
        .stores
        .users
        .user_by_id(&family.user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(inactive());
    };
    Ok(no_store(json!({
        "active": true, "sub": user.id, "username": user.username, "role": user.role,
        "exp": family.idle_expires_at.min(family.expires_at), "iat": rt.created_at,
        "iss": state.settings.public_url, "aud": state.settings.audience, "jti": rt.id,
        "client_id": family.client_id, "token_type": "refresh_token", "sid": family.id,
    })))
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
        state.keys.ring().jwks_json().to_string(),
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
        "access_token_signing_alg_values_supported": state.keys.ring().algorithms(),
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
