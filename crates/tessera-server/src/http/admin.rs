//! The admin API (`/v1/admin/...`), for users with role `admin`: list users, change a
//! role, disable and re-enable, revoke everything of a user, read the audit trail.
//!
//! Role change, disabling and revocation all end the target's credentials through
//! [`revocation::revoke_user`], the same path as logout-all and password change.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Principal;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::ApiError;
use crate::revocation::{self, Keep};
use crate::store::{AuditFilter, User};
use crate::users;

/// A caller with role `admin`; anyone else gets 403.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let p = Principal::from_request_parts(parts, state).await?;
        if p.role != "admin" {
            return Err(ApiError::Forbidden("admin_required"));
        }
        Ok(Self(p))
    }
}

#[derive(Serialize)]
struct AdminUserView {
    id: String,
    username: String,
    role: String,
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

fn limit(l: Option<u32>) -> u32 {
    l.unwrap_or(50).clamp(1, 200)
}

/// Users by username, paginated with `after` and `limit` (1–200, default 50).
pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(page.limit);
    let users = state
        .stores
        .users
        .list_users(page.after.as_deref(), limit)
        .await?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.username.clone()))
        .flatten();
    let users: Vec<AdminUserView> = users.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "users": users, "next": next })))
}

/// End every credential of `user_id` through the one revocation path.
async fn end_everything(
    state: &AppState,
    user_id: &str,
    now: i64,
    event: &str,
    actor: &str,
) -> Result<(), ApiError> {
    revocation::revoke_user(
        &state.stores,
        &state.revocations,
        user_id,
        Keep::NOTHING,
        now,
        event,
        Some(actor),
    )
    .await
}

async fn target(state: &AppState, id: &str) -> Result<User, ApiError> {
    state
        .stores
        .users
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
pub struct RoleChange {
    role: String,
}

/// Change a user's role. Their sessions, families and access tokens end: the next login
/// gets fresh credentials carrying the new role.
pub async fn set_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Value>, ApiError> {
    users::check_role(&body.role)?;
    let user = target(&state, &id).await?;
    state.stores.users.set_role(&user.id, &body.role).await?;
    let now = state.clock.now();
    state
        .stores
        .audit
        .record(
            now,
            "role_change",
            Some(&user.id),
            &json!({"from": user.role, "to": body.role, "actor": admin.user_id}),
        )
        .await?;
    end_everything(&state, &user.id, now, "credentials_revoked", &admin.user_id).await?;
    let user = target(&state, &id).await?;
    Ok(Json(json!(AdminUserView::from(user))))
}

/// Disable a user: refused everywhere from the next request, in both modes.
pub async fn disable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = target(&state, &id).await?;
    state.stores.users.set_disabled(&user.id, true).await?;
    let now = state.clock.now();
    end_everything(&state, &user.id, now, "user_disabled", &admin.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-enable a user (their old credentials stay dead; they log in again).
pub async fn enable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = target(&state, &id).await?;
    state.stores.users.set_disabled(&user.id, false).await?;
    state
        .stores
        .audit
        .record(
            state.clock.now(),
            "user_enabled",
            Some(&user.id),
            &json!({"actor": admin.user_id}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke every session, family and access token of a user.
pub async fn revoke(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = target(&state, &id).await?;
    let now = state.clock.now();
    end_everything(&state, &user.id, now, "admin_revoke", &admin.user_id).await?;
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
    let limit = limit(q.limit);
    let filter = AuditFilter {
        user_id: q.user,
        kind: q.kind,
        before_id: q.before,
        limit,
    };
    let events = state.stores.audit.events(&filter).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "events": events, "next": next })))
}
