//! `POST /v1/signup` and `GET /v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_core::identity::{CredentialKind, Role};
use tessera_core::store::User;

use super::AppState;
use super::auth::{Authenticated, RequestOrigin};
use super::extract::ApiJson;
use crate::error::ApiError;

/// Username and password, as posted to signup.
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
    pub role: Role,
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
    RequestOrigin(client): RequestOrigin,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state
        .core
        .signup(&body.username, body.password, client.ip.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Serialize)]
pub struct MeView<'a> {
    sub: &'a str,
    username: &'a str,
    role: &'a Role,
    auth: CredentialKind,
}

/// Who the caller is, and by which kind of credential.
pub async fn me(Authenticated(p): Authenticated) -> Response {
    let view = MeView {
        sub: p.user_id(),
        username: p.username(),
        role: p.role(),
        auth: p.kind(),
    };
    Json(view).into_response()
}

use axum::response::{IntoResponse, Response};
