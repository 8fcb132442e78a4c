//! `POST /v1/signup` and `GET /v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Credential, Principal};
use super::extract::ApiJson;
use crate::error::ApiError;
use crate::store::User;
use crate::users;

/// Username and password, as posted to signup, login and the password grant.
#[derive(Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// A user as shown to clients.
#[derive(Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
        }
    }
}

/// Create an account with role `user`. 409 if the name is taken; 403 when signup is off.
pub async fn signup(
    State(state): State<AppState>,
    client: super::auth::ClientInfo,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if !state.settings.signup_enabled {
        return Err(ApiError::Forbidden("signup_disabled"));
    }
    crate::throttle::signup_attempt(&state, client.ip.as_deref()).await?;
    let user = users::create(
        state.stores.users.as_ref(),
        &state.passwords,
        state.clock.as_ref(),
        &body.username,
        body.password,
        "user",
    )
    .await?;
    tracing::info!(user_id = %user.id, "user signed up");
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Serialize)]
pub struct MeView {
    sub: String,
    username: String,
    role: String,
    auth: &'static str,
}

/// Who the caller is, and by which kind of credential.
pub async fn me(p: Principal) -> Json<MeView> {
    let auth = match p.credential {
        Credential::Session { .. } => "session",
        Credential::Jwt { .. } => "jwt",
    };
    Json(MeView {
        sub: p.user_id,
        username: p.username,
        role: p.role,
        auth,
    })
}
