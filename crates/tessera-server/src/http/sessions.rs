//! Session mode and self-service: login, logout, logout-all, the caller's sessions and
//! devices, password change, and the CSRF token for HTML forms.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::AppState;
use super::account::UserView;
use super::auth::{ClientInfo, Credential, Principal};
use super::extract::{ApiPath, JsonOrForm};
use crate::error::ApiError;
use crate::revocation::{self, Keep};
use crate::session;
use crate::store::{SessionRecord, User};
use crate::{throttle, users};

/// A checkbox or boolean: `true`, `"true"`, `"on"`, `"1"`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(t) => matches!(t.as_str(), "true" | "on" | "1" | "yes"),
    })
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// "Remember me": a longer absolute lifetime and a persistent cookie.
    #[serde(default, deserialize_with = "flag")]
    remember: bool,
}

/// Check credentials for any login path: input rules, throttling, then Argon2id. `None`
/// for every kind of failure, audited; the account's throttle count resets on success.
pub(crate) async fn check_credentials(
    state: &AppState,
    username: &str,
    password: String,
    client: &ClientInfo,
    mode: &str,
) -> Result<Option<User>, ApiError> {
    users::check_password_length(&password)?;
    let name = users::normalize_username(username)?;
    throttle::login_attempt(state, &name, client.ip.as_deref()).await?;
    let user = users::authenticate(
        state.stores.users.as_ref(),
        &state.passwords,
        &name,
        password,
    )
    .await?;
    let now = state.clock.now();
    match &user {
        Some(u) => {
            throttle::login_succeeded(state, &name).await?;
            state
                .stores
                .audit
                .record(
                    now,
                    "login",
                    Some(&u.id),
                    &json!({"mode": mode, "ip": client.ip}),
                )
                .await?;
        }
        None => {
            tracing::info!(event = "login_failed", mode, "login failed");
            state
                .stores
                .audit
                .record(
                    now,
                    "login_failed",
                    None,
                    &json!({"mode": mode, "username": name, "ip": client.ip}),
                )
                .await?;
        }
    }
    Ok(user)
}

/// Create a session for `user`; returns its token.
async fn open_session(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    absolute_secs: i64,
    now: i64,
) -> Result<(String, SessionRecord), ApiError> {
    let token = session::new_token().map_err(|_| ApiError::Internal("CSPRNG failure".into()))?;
    let settings = &state.settings;
    let expires_at = now + absolute_secs;
    let record = SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: session::hash_token(&token),
        user_id: user.id.clone(),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: (now + settings.session_idle_timeout.as_secs() as i64).min(expires_at),
        expires_at,
        user_agent: client.user_agent.clone(),
        ip: client.ip.clone(),
    };
    state.stores.sessions.create_session(&record).await?;
    Ok((token, record))
}

/// Check credentials and open a new server-side session. A session cookie the client may
/// already hold is never reused: every login gets a fresh token (no fixation).
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<LoginForm>,
) -> Result<Response, ApiError> {
    let Some(user) =
        check_credentials(&state, &body.username, body.password, &client, "session").await?
    else {
        return Err(ApiError::InvalidCredentials);
    };
    let now = state.clock.now();
    let s = &state.settings;
    let lifetime = if body.remember {
        s.session_remember_lifetime
    } else {
        s.session_absolute_timeout
    };
    let (token, record) =
        open_session(&state, &user, &client, lifetime.as_secs() as i64, now).await?;
    tracing::info!(event = "login", mode = "session", user_id = %user.id, session_id = %record.id, "session opened");
    let cookie = if body.remember {
        session::set_persistent_cookie(s, &token, lifetime.as_secs())
    } else {
        session::set_cookie(s, &token)
    };
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
                .revocations
                .drop_session(&state.stores, &token_hash)
                .await?;
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
            state
                .revocations
                .revoke_jti(&state.stores, &jti, exp)
                .await?;
            if let Some(sid) = &sid {
                let expires_at = state
                    .stores
                    .refresh
                    .family(sid)
                    .await?
                    .map_or(exp, |f| f.expires_at);
                state
                    .revocations
                    .revoke_family(&state.stores, sid, expires_at, now)
                    .await?;
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

fn with_cleared_cookie(state: &AppState, p: &Principal, mut res: Response) -> Response {
    if matches!(p.credential, Credential::Session { .. })
        && let Ok(v) = session::clear_cookie(&state.settings).parse()
    {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    res
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
    Ok(with_cleared_cookie(
        &state,
        &p,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

/// One of the caller's logins, as listed by `GET /v1/sessions`.
#[derive(Serialize)]
pub struct LoginView {
    id: String,
    /// `session` (cookie) or `refresh_family` (JWT mode).
    kind: &'static str,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    /// Whether this is the credential making the request.
    current: bool,
}

/// The caller's live sessions and refresh families.
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.clock.now();
    let (cur_session, cur_family) = current_ids(&p);
    let mut out: Vec<LoginView> = Vec::new();
    for s in state
        .stores
        .sessions
        .sessions_of_user(&p.user_id, now)
        .await?
    {
        out.push(LoginView {
            current: cur_session == Some(s.id.as_str()),
            id: s.id,
            kind: "session",
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.idle_expires_at.min(s.expires_at),
            user_agent: s.user_agent,
            ip: s.ip,
        });
    }
    for f in state
        .stores
        .refresh
        .families_of_user(&p.user_id, now)
        .await?
    {
        out.push(LoginView {
            current: cur_family == Some(f.id.as_str()),
            id: f.id,
            kind: "refresh_family",
            created_at: f.created_at,
            last_seen_at: f.last_used_at,
            expires_at: f.idle_expires_at.min(f.expires_at),
            user_agent: f.user_agent,
            ip: f.ip,
        });
    }
    Ok(Json(json!({ "sessions": out })))
}

fn current_ids(p: &Principal) -> (Option<&str>, Option<&str>) {
    match &p.credential {
        Credential::Session { id, .. } => (Some(id.as_str()), None),
        Credential::Jwt { sid, .. } => (None, sid.as_deref()),
    }
}

/// End one of the caller's own sessions or refresh families. Someone else's id is 404,
/// exactly like an id that does not exist.
pub async fn delete(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    if state
        .stores
        .sessions
        .delete_session_of_user(&id, &p.user_id)
        .await?
    {
        // The cache is keyed by token hash, which this request does not have: drop the
        // user's cached sessions; the live ones reload from the store.
        state
            .revocations
            .publish(&state.stores, "user", &p.user_id, 0)
            .await?;
        state
            .stores
            .audit
            .record(now, "logout", Some(&p.user_id), &json!({"session_id": id}))
            .await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    match state.stores.refresh.family(&id).await? {
        Some(f) if f.user_id == p.user_id && f.is_live(now) => {
            state
                .revocations
                .revoke_family(&state.stores, &f.id, f.expires_at, now)
                .await?;
            state
                .stores
                .audit
                .record(now, "revoke", Some(&p.user_id), &json!({"family_id": f.id}))
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::NotFound),
    }
}

/// The password change form.
#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Change the caller's password. Ends every *other* session, refresh family and access
/// token of the user; the current session gets a new token (fixation defence), the
/// current refresh family continues.
pub async fn change_password(
    State(state): State<AppState>,
    p: Principal,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<PasswordChange>,
) -> Result<Response, ApiError> {
    users::check_password_length(&body.current_password)?;
    users::check_new_password(&body.new_password)?;
    throttle::login_attempt(&state, &p.username, client.ip.as_deref()).await?;
    let user = state
        .stores
        .users
        .user_by_id(&p.user_id)
        .await?
        .ok_or(ApiError::Unauthorized {
            invalid_token: false,
        })?;
    if !state
        .passwords
        .verify(body.current_password, Some(user.password_hash.clone()))
        .await?
    {
        return Err(ApiError::BadRequest {
            code: "invalid_current_password",
            description: "the current password is wrong".into(),
        });
    }
    throttle::login_succeeded(&state, &p.username).await?;
    let hash = state.passwords.hash(body.new_password).await?;
    state
        .stores
        .users
        .set_password_hash(&user.id, &hash)
        .await?;
    let now = state.clock.now();
    let (cur_session, cur_family) = current_ids(&p);
    revocation::revoke_user(
        &state.stores,
        &state.revocations,
        &user.id,
        Keep {
            session: cur_session,
            family: cur_family,
        },
        now,
        "password_change",
        Some(&user.id),
    )
    .await?;
    let Credential::Session { token_hash, .. } = &p.credential else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    // Rotate the current session's token: same lifetime, new secret.
    let Some(old) = state.stores.sessions.load_session(token_hash, now).await? else {
        return Err(ApiError::Unauthorized {
            invalid_token: false,
        });
    };
    let (token, _) = open_session(&state, &user, &client, old.expires_at - now, now).await?;
    state.stores.sessions.delete_session(token_hash).await?;
    state
        .revocations
        .drop_session(&state.stores, token_hash)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, session::set_cookie(&state.settings, &token))],
    )
        .into_response())
}

/// The synchronizer token HTML forms must echo as `csrf_token` (session callers only).
pub async fn csrf(
    State(state): State<AppState>,
    p: Principal,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Credential::Session { .. } = p.credential else {
        return Err(ApiError::BadRequest {
            code: "unsupported_credential",
            description: "CSRF tokens exist only for cookie sessions".into(),
        });
    };
    let cookie = super::auth::session_cookie(&headers, &state.cookie_name).ok_or(
        ApiError::Unauthorized {
            invalid_token: false,
        },
    )?;
    Ok(Json(
        json!({ "csrf_token": super::csrf::csrf_token(cookie) }),
    ))
}
