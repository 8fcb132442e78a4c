//! Accounts: username, password and role rules; signup; and user administration (role
//! change, disable, enable, revoke), shared by the HTTP API and the `tessera user` command.
//!
//! Role change, disabling and revocation all end the target's credentials through
//! [`Core::end_credentials`], the same path as logout-all and password change.

use serde_json::json;

use crate::Core;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::identity::{Principal, Role};
use crate::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::revocation::Keep;
use crate::store::{AuditEvent, AuditFilter, StoreError, User};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Normalise and check a username: lower-cased, 1–64 characters of `a-z 0-9 . _ - @`.
/// Lower-casing makes `Alice` and `alice` one account, so nobody can register a look-alike.
pub fn normalize_username(raw: &str) -> Result<String, Error> {
    let name = raw.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(Error::invalid(
            "invalid_username",
            "usernames are 1-64 characters of a-z, 0-9, '.', '_', '-', '@'",
        ))
    }
}

/// Refuse over-long passwords before any hashing.
pub fn check_password_length(password: &str) -> Result<(), Error> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "password_too_long",
            format!("passwords are at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Check a new password against the account rules.
pub fn check_new_password(password: &str) -> Result<(), Error> {
    check_password_length(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "weak_password",
            format!("passwords are at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Parse a role: a short lowercase word.
pub fn parse_role(role: &str) -> Result<Role, Error> {
    let ok = !role.is_empty()
        && role.len() <= 32
        && role.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(Role::from(role))
    } else {
        Err(Error::invalid(
            "invalid_role",
            "roles are 1-32 characters of a-z and '_'",
        ))
    }
}

/// A page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Users by username.
    pub users: Vec<User>,
    /// The cursor for the next page, when this one is full.
    pub next: Option<String>,
}

/// A page of audit events.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Events, newest first.
    pub events: Vec<AuditEvent>,
    /// The cursor for the next page, when this one is full.
    pub next: Option<i64>,
}

/// Page sizes: 1–200, default 50.
pub fn page_limit(requested: Option<u32>) -> u32 {
    requested.unwrap_or(50).clamp(1, 200)
}

impl Core {
    /// Create an account with `role`.
    pub async fn create_user(
        &self,
        username: &str,
        password: String,
        role: &str,
    ) -> Result<User, Error> {
        let username = normalize_username(username)?;
        check_new_password(&password)?;
        let role = parse_role(role)?;
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username,
            role,
            password_hash: self.passwords.hash(password).await?,
            disabled: false,
            created_at: self.now(),
            credential_epoch: 0,
        };
        self.stores
            .users
            .create_user(&user)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::Conflict("username taken"),
                other => other.into(),
            })?;
        Ok(user)
    }

    /// Self-service signup from `ip`: role `user`, when signup is enabled, throttled per IP.
    pub async fn signup(
        &self,
        username: &str,
        password: String,
        ip: Option<&str>,
    ) -> Result<User, Error> {
        if !self.policy.accounts.signup_enabled {
            return Err(Error::Forbidden("signup_disabled"));
        }
        self.signup_attempt(ip).await?;
        let user = self
            .create_user(username, password, Role::User.as_str())
            .await?;
        tracing::info!(user_id = %user.id, "user signed up");
        Ok(user)
    }

    /// Whether the caller may use the admin API; [`Error::Forbidden`] otherwise.
    ///
    /// Decided on the stored account, not on the role a credential carries: a token
    /// issued before a demotion (or a disable) must not keep admin powers until it expires.
    pub async fn require_admin(&self, p: &Principal) -> Result<(), Error> {
        if *p.role() != Role::Admin {
            return Err(Error::Forbidden("admin_required"));
        }
        match self.stores.users.user_by_id(p.user_id()).await? {
            Some(u) if u.role == Role::Admin && !u.disabled => Ok(()),
            Some(_) => Err(Error::Forbidden("admin_required")),
            None => Err(Error::Unauthenticated),
        }
    }

    async fn target(&self, id: &str) -> Result<User, Error> {
        self.stores
            .users
            .user_by_id(id)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Users by username after `after`, at most `limit`.
    pub async fn list_users(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<UserPage, Error> {
        let limit = page_limit(limit);
        let users = self.stores.users.list_users(after, limit).await?;
        let next = (users.len() == limit as usize)
            .then(|| users.last().map(|u| u.username.clone()))
            .flatten();
        Ok(UserPage { users, next })
    }

    /// Change a user's role. Their sessions, families and access tokens end: the next
    /// login gets fresh credentials carrying the new role.
    pub async fn set_role(&self, actor: &Principal, id: &str, role: &str) -> Result<User, Error> {
        let role = parse_role(role)?;
        let user = self.target(id).await?;
        self.stores.users.set_role(&user.id, &role).await?;
        self.stores
            .audit
            .record(
                self.now(),
                &AuditKind::RoleChange,
                Some(&user.id),
                &json!({"from": user.role, "to": role, "actor": actor.user_id()}),
            )
            .await?;
        self.end_credentials(
            &user.id,
            Keep::NOTHING,
            AuditKind::CredentialsRevoked,
            Some(actor.user_id()),
        )
        .await?;
        self.target(id).await
    }

    /// Disable a user: refused everywhere from the next request, in both modes.
    pub async fn disable_user(&self, actor: &Principal, id: &str) -> Result<(), Error> {
        let user = self.target(id).await?;
        self.stores.users.set_disabled(&user.id, true).await?;
        self.end_credentials(
            &user.id,
            Keep::NOTHING,
            AuditKind::UserDisabled,
            Some(actor.user_id()),
        )
        .await
    }

    /// Re-enable a user (their old credentials stay dead; they log in again).
    pub async fn enable_user(&self, actor: &Principal, id: &str) -> Result<(), Error> {
        let user = self.target(id).await?;
        self.stores.users.set_disabled(&user.id, false).await?;
        self.stores
            .audit
            .record(
                self.now(),
                &AuditKind::UserEnabled,
                Some(&user.id),
                &json!({"actor": actor.user_id()}),
            )
            .await?;
        Ok(())
    }

    /// End every session, family and access token of a user.
    pub async fn revoke_user(&self, actor: &Principal, id: &str) -> Result<(), Error> {
        let user = self.target(id).await?;
        self.end_credentials(
            &user.id,
            Keep::NOTHING,
            AuditKind::AdminRevoke,
            Some(actor.user_id()),
        )
        .await
    }

    /// Audit events, newest first, matching `filter` (build its limit with [`page_limit`]).
    pub async fn audit_events(&self, filter: AuditFilter) -> Result<AuditPage, Error> {
        let events = self.stores.audit.events(&filter).await?;
        let next = (events.len() == filter.limit as usize)
            .then(|| events.last().map(|e| e.id))
            .flatten();
        Ok(AuditPage { events, next })
    }
}
