//! Session mode: `POST /v1/login` and `POST /v1/logout`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::account::{Credentials, UserView};
use super::auth::{ClientInfo, Credential, Principal};
use super::extract::JsonOrForm;
use serde_json::json;

use crate::error::ApiError;
use crate::revocation::{self, Keep};
use crate::session;
use crate::store::SessionRecord;
use crate::users;

/// Check credentials and open a new server-side session. A session cookie the client may
/// already hold is never reused: every login gets a fresh token (no fixation).
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<Credentials>,
) -> Result<Response, ApiError> {
    let Some(user) = users::authenticate(
        state.stores.users.as_ref(),
        &state.passwords,
        &body.username,
        body.password,
    )
    .await?
    else {
        tracing::info!(event = "login_failed", "login failed");
        return Err(ApiError::InvalidCredentials);
    };
    let now = state.clock.now();
    let token = session::new_token().map_err(|_| ApiError::Internal("CSPRNG failure".into()))?;
    let settings = &state.settings;
    let record = SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: session::hash_token(&token),
        user_id: user.id.clone(),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + settings.session_idle_timeout.as_secs() as i64,
        expires_at: now + settings.session_absolute_timeout.as_secs() as i64,
        user_agent: client.user_agent,
        ip: client.ip,
    };
    state.stores.sessions.create_session(&record).await?;
    tracing::info!(event = "login", user_id = %user.id, session_id = %record.id, "session opened");
    let cookie = session::set_cookie(settings, &token);
    Ok(([(SET_COOKIE, cookie)], Json(UserView::from(user))).into_response())
}

/// End the caller's login. Session: deleted server-side, cookie cleared. Bearer: the
/// access token and its whole refresh family are revoked, so the same token is refused on
/// the very next request.
pub async fn logout(State(state): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    let now = state.clock.now();
    match p.credential {
        Credential::Session { token_hash, id } => {
            state.stores.sessions.delete_session(&token_hash).await?;
            state
                .stores
                .audit
                .record(now, "logout", Some(&p.user_id), &json!({"session_id": id}))
                .await?;
            tracing::info!(event = "logout", user_id = %p.user_id, session_id = %id, "session closed");
            let cookie = session::clear_cookie(&state.settings);
            Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response())
        }
        Credential::Jwt { jti, exp, sid } => {
            state.stores.revocations.revoke_jti(&jti, exp).await?;
            state.revocations.revoke_jti(&jti, exp);
            if let Some(sid) = &sid {
                state.stores.refresh.revoke_family(sid, now).await?;
                let expires_at = state
                    .stores
                    .refresh
                    .family(sid)
                    .await?
                    .map_or(exp, |f| f.expires_at);
                state.revocations.revoke_family(sid, expires_at);
            }
            state
                .stores
                .audit
                .record(
                    now,
                    "logout",
                    Some(&p.user_id),
                    &json!({"jti": jti, "family_id": sid}),
                )
                .await?;
            tracing::info!(event = "logout", user_id = %p.user_id, %jti, "access token and family revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

/// End every session, refresh family and outstanding access token of the caller, in both
/// modes, through the one revocation path.
pub async fn logout_all(State(state): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    let now = state.clock.now();
    revocation::revoke_user(
        &state.stores,
        &state.revocations,
        &p.user_id,
        Keep::NOTHING,
        now,
        "logout_all",
        Some(&p.user_id),
    )
    .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if matches!(p.credential, Credential::Session { .. })
        && let Ok(v) = session::clear_cookie(&state.settings).parse()
    {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(res)
}
