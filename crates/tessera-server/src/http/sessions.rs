//! Session mode and self-service: login, logout, logout-all, the caller's sessions and
//! devices, password change, and the CSRF token for HTML forms.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use tessera_core::identity::Principal;

use super::AppState;
use super::account::UserView;
use super::auth::{Authenticated, RequestOrigin};
use super::extract::{ApiPath, JsonOrForm};
use crate::cookies;
use crate::error::ApiError;

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

/// Check credentials and open a new server-side session.
pub async fn login(
    State(state): State<AppState>,
    RequestOrigin(client): RequestOrigin,
    JsonOrForm(body): JsonOrForm<LoginForm>,
) -> Result<Response, ApiError> {
    let opened = state
        .core
        .login_session(&body.username, body.password, body.remember, &client)
        .await?;
    let cookie = if opened.remember {
        cookies::set_persistent_cookie(&state.settings, &opened.token, opened.lifetime)
    } else {
        cookies::set_cookie(&state.settings, &opened.token)
    };
    Ok(([(SET_COOKIE, cookie)], Json(UserView::from(opened.user))).into_response())
}

/// The response to ending the caller's own login: 204, and a cleared cookie for a
/// session caller.
fn ended(state: &AppState, p: &Principal) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if matches!(p, Principal::Session(_))
        && let Ok(v) = cookies::clear_cookie(&state.settings).parse()
    {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    res
}

/// End the caller's login (session deleted, or token and family revoked).
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<Response, ApiError> {
    state.core.logout(&p).await?;
    Ok(ended(&state, &p))
}

/// End every session, refresh family and outstanding access token of the caller.
pub async fn logout_all(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<Response, ApiError> {
    state.core.logout_all(&p).await?;
    Ok(ended(&state, &p))
}

/// The caller's live sessions and refresh families.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    let logins = state.core.logins(&p).await?;
    Ok(Json(json!({ "sessions": logins })))
}

/// End one of the caller's own sessions or refresh families (404 for anyone else's).
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    state.core.end_login(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The password change form.
#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Change the caller's password; the other logins end, and a session caller gets a new
/// session token.
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    RequestOrigin(client): RequestOrigin,
    JsonOrForm(body): JsonOrForm<PasswordChange>,
) -> Result<Response, ApiError> {
    let token = state
        .core
        .change_password(&p, body.current_password, body.new_password, &client)
        .await?;
    Ok(match token {
        Some(rotated) => {
            let cookie = match rotated.persistent_max_age {
                Some(max_age) => {
                    cookies::set_persistent_cookie(&state.settings, &rotated.token, max_age)
                }
                None => cookies::set_cookie(&state.settings, &rotated.token),
            };
            (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The synchronizer token HTML forms must echo as `csrf_token` (session callers only).
pub async fn csrf(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Principal::Session(_) = p else {
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
