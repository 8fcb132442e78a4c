//! The admin API (`/v1/admin/...`), for users with role `admin`: list users, change a
//! role, disable and re-enable, revoke everything of a user, read the audit trail.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::accounts::page_limit;
use tessera_core::identity::{Principal, Role};
use tessera_core::store::{AuditFilter, User};

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::ApiError;

/// A caller with role `admin`; anyone else gets 403.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, state).await?;
        match state.core.require_admin(&p).await {
            Ok(()) => Ok(Self(p)),
            Err(tessera_core::Error::Forbidden(code)) if matches!(p, Principal::Jwt(_)) => {
                Err(ApiError::InsufficientScope(code))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Serialize)]
struct AdminUserView {
    id: String,
    username: String,
    role: Role,
    disabled: bool,
    created_at: i64,
}

impl From<User> for AdminUserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[derive(Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

/// Users by username, paginated with `after` and `limit` (1–200, default 50).
pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .core
        .list_users(page.after.as_deref(), page.limit)
        .await?;
    let users: Vec<AdminUserView> = page.users.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "users": users, "next": page.next })))
}

#[derive(Deserialize)]
pub struct RoleChange {
    role: String,
}

/// Change a user's role; their credentials end.
pub async fn set_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Value>, ApiError> {
    let user = state.core.set_role(&admin, &id, &body.role).await?;
    Ok(Json(json!(AdminUserView::from(user))))
}

/// Disable a user: refused everywhere from the next request, in both modes.
pub async fn disable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.core.disable_user(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-enable a user (their old credentials stay dead; they log in again).
pub async fn enable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.core.enable_user(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke every session, family and access token of a user.
pub async fn revoke(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.core.revoke_user(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// Audit events, newest first; filter by `user` (id) and `kind`; page with `before`.
pub async fn audit(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = AuditFilter {
        user_id: q.user,
        kind: q.kind.map(Into::into),
        before_id: q.before,
        limit: page_limit(q.limit),
    };
    let page = state.core.audit_events(filter).await?;
    Ok(Json(json!({ "events": page.events, "next": page.next })))
}
