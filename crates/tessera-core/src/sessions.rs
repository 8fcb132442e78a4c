//! Session mode: opening a server-side session at login, finding it again on every request
//! (from the cache when it may answer, else from the store), sliding renewal, logout, the
//! caller's list of logins, and password change.
//!
//! A session lookup that cannot reach the store is [`Error::Unavailable`], never
//! [`Error::Unauthenticated`]: nobody is logged out by an outage.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::Core;
use crate::accounts::{check_new_password, check_password_length};
use crate::audit::AuditKind;
use crate::error::Error;
use crate::identity::{AuthenticatedSession, CredentialKind, Identity, LoginMethod, Principal};
use crate::login::ClientInfo;
use crate::opaque;
use crate::policy::secs;
use crate::revocation::Keep;
use crate::store::{SessionRecord, User};

/// A session just opened: the token goes to the client once, and only its hash is kept.
pub struct OpenedSession {
    /// The session token, for the cookie.
    pub token: String,
    /// The stored record.
    pub record: SessionRecord,
    /// Its user.
    pub user: User,
    /// Whether it is a "remember me" session (a persistent cookie of `lifetime` seconds).
    pub remember: bool,
    /// Absolute lifetime in seconds.
    pub lifetime: u64,
}

impl std::fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSession")
            .field("token", &opaque::Redacted)
            .field("record", &self.record)
            .field("user", &self.user)
            .field("remember", &self.remember)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The session a password change gave its caller: a new token for the same session
/// lifetime.
pub struct RotatedSession {
    /// The new session token, for the cookie.
    pub token: String,
    /// For a "remember me" session, the seconds its persistent cookie should live; `None`
    /// for a browser-session cookie.
    pub persistent_max_age: Option<u64>,
}

impl std::fmt::Debug for RotatedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedSession")
            .field("token", &opaque::Redacted)
            .field("persistent_max_age", &self.persistent_max_age)
            .finish()
    }
}

/// One of a user's logins, as listed for them: a session or a refresh family.
#[derive(Debug, Clone, Serialize)]
pub struct LoginEntry {
    /// Session id or family id.
    pub id: String,
    /// `session` (cookie) or `refresh_family` (JWT mode).
    pub kind: CredentialKind,
    /// Login time.
    pub created_at: i64,
    /// Last use.
    pub last_seen_at: i64,
    /// When it ends if not used again.
    pub expires_at: i64,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
    /// IP at login.
    pub ip: Option<String>,
    /// Whether this is the credential making the request.
    pub current: bool,
}

impl Core {
    /// Check credentials and open a new server-side session. A session the client may
    /// already hold is never reused: every login gets a fresh token (no fixation).
    pub async fn login_session(
        &self,
        username: &str,
        password: String,
        remember: bool,
        client: &ClientInfo,
    ) -> Result<OpenedSession, Error> {
        let user = self
            .check_credentials(username, password, client, LoginMethod::Session)
            .await?;
        let p = &self.policy.sessions;
        let lifetime = if remember {
            p.remember_lifetime
        } else {
            p.absolute_timeout
        };
        let (token, record) = self
            .open_session(&user, client, secs(lifetime), self.now())
            .await?;
        tracing::info!(event = "login", mode = "session", user_id = %user.id, session_id = %record.id, "session opened");
        Ok(OpenedSession {
            token,
            record,
            user,
            remember,
            lifetime: lifetime.as_secs(),
        })
    }

    /// Create a session for `user` ending `absolute_secs` after `now`; its token.
    async fn open_session(
        &self,
        user: &User,
        client: &ClientInfo,
        absolute_secs: i64,
        now: i64,
    ) -> Result<(String, SessionRecord), Error> {
        let token = opaque::generate()?;
        let expires_at = now + absolute_secs;
        let record = SessionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: opaque::hash(&token),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: (now + secs(self.policy.sessions.idle_timeout)).min(expires_at),
            expires_at,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
        };
        self.stores.sessions.create_session(&record).await?;
        if !self.user_unchanged(user).await? {
            self.stores
                .sessions
                .delete_session(&record.token_hash)
                .await?;
            return Err(Error::InvalidCredentials);
        }
        Ok((token, record))
    }

    /// Whether `user` is still exactly as read before a credential was created for it —
    /// same role, password, enabled state and credential epoch — read *after* the
    /// credential is stored.
    ///
    /// This is what makes a login that raced a user-wide revocation lose: the revocation
    /// bumps the epoch before it ends the user's credentials. If this read still sees the
    /// old epoch, the bump comes later, so the revocation's sweep starts after our
    /// credential was stored and ends it; if it sees the new one, we end it ourselves.
    pub(crate) async fn user_unchanged(&self, user: &User) -> Result<bool, Error> {
        let now = self.stores.users.user_by_id(&user.id).await?;
        Ok(now.as_ref() == Some(user))
    }

    /// The principal of the session whose token is `token`, renewing it (at most once per
    /// touch interval). A store that cannot take the renewal does not log anyone out: the
    /// session is served and the write retried on a later request.
    ///
    /// The cache's generation is read before anything else, and every fill is conditional
    /// on it ([`SessionCache::put_if_current`](crate::revocation::SessionCache::put_if_current)):
    /// a lookup racing a logout can answer for the session while the logout is in flight,
    /// but can never put it back once the logout has removed it.
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal, Error> {
        let now = self.now();
        let token_hash = opaque::hash(token);
        let generation = self.revocations.sessions.generation();
        let cache = self.revocations.cache_usable();
        let entry = self
            .live_session(token_hash, now, cache, generation)
            .await?;
        let touch = secs(self.policy.sessions.touch_interval);
        if now - entry.session.last_seen_at < touch {
            return Ok(Principal::Session(entry));
        }
        let idle = now + secs(self.policy.sessions.idle_timeout);
        match self
            .stores
            .sessions
            .touch_session(&entry.session.id, now, idle)
            .await
        {
            Ok(true) => {
                let mut renewed = (*entry).clone();
                renewed.session.last_seen_at = now;
                renewed.session.idle_expires_at = idle.min(renewed.session.expires_at);
                let renewed = Arc::new(renewed);
                if cache {
                    self.revocations
                        .sessions
                        .put_if_current(renewed.clone(), generation);
                }
                Ok(Principal::Session(renewed))
            }
            Ok(false) => {
                // The row is gone: the session ended (logged out elsewhere, or purged).
                self.revocations.sessions.remove(&entry.session.token_hash);
                Err(Error::Unauthenticated)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "session renewal not written");
                Ok(Principal::Session(entry))
            }
        }
    }

    /// The live session for this token hash and its (enabled) user: from the cache when it
    /// may answer, else from the store (then cached).
    async fn live_session(
        &self,
        token_hash: Vec<u8>,
        now: i64,
        cache: bool,
        generation: u64,
    ) -> Result<Arc<AuthenticatedSession>, Error> {
        let live = |s: &SessionRecord| now < s.idle_expires_at && now < s.expires_at;
        if cache {
            // A cached copy that looks expired may be stale (another instance renewed it):
            // only a store read can say no.
            if let Some(entry) = self.revocations.sessions.get(&token_hash)
                && live(&entry.session)
            {
                self.revocations.check_current()?;
                return Ok(entry);
            }
        }
        let Some(session) = self.stores.sessions.load_session(&token_hash, now).await? else {
            self.revocations.sessions.forget_missing(&token_hash);
            return Err(Error::Unauthenticated);
        };
        let user = match self.stores.users.user_by_id(&session.user_id).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(Error::Unauthenticated),
        };
        let entry = Arc::new(AuthenticatedSession {
            session,
            identity: Identity::from(&user),
        });
        if cache {
            self.revocations
                .sessions
                .put_if_current(entry.clone(), generation);
        }
        Ok(entry)
    }

    /// End the caller's login. Session: deleted server-side. Bearer: the access token and
    /// its whole refresh family are revoked, so the same token is refused on the very next
    /// request.
    pub async fn logout(&self, p: &Principal) -> Result<(), Error> {
        let now = self.now();
        match p {
            Principal::Session(s) => {
                let (hash, id) = (&s.session.token_hash, &s.session.id);
                self.stores.sessions.delete_session(hash).await?;
                self.revocations.drop_session(&self.stores, hash).await?;
                self.stores
                    .audit
                    .record(
                        now,
                        &AuditKind::Logout,
                        Some(p.user_id()),
                        &json!({"session_id": id}),
                    )
                    .await?;
                tracing::info!(event = "logout", user_id = %p.user_id(), session_id = %id, "session closed");
            }
            Principal::Jwt(t) => {
                self.revocations
                    .revoke_jti(&self.stores, &t.jti, t.exp)
                    .await?;
                if let Some(sid) = &t.sid {
                    let expires_at = self
                        .stores
                        .refresh
                        .family(sid)
                        .await?
                        .map_or(t.exp, |f| f.expires_at);
                    self.revocations
                        .revoke_family(&self.stores, sid, expires_at, now)
                        .await?;
                }
                self.stores
                    .audit
                    .record(
                        now,
                        &AuditKind::Logout,
                        Some(p.user_id()),
                        &json!({"jti": t.jti, "family_id": t.sid}),
                    )
                    .await?;
                tracing::info!(event = "logout", user_id = %p.user_id(), jti = %t.jti, "access token and family revoked");
            }
        }
        Ok(())
    }

    /// End every session, refresh family and outstanding access token of the caller.
    pub async fn logout_all(&self, p: &Principal) -> Result<(), Error> {
        self.end_credentials(
            p.user_id(),
            Keep::NOTHING,
            AuditKind::LogoutAll,
            Some(p.user_id()),
        )
        .await
    }

    /// The caller's live sessions and refresh families.
    pub async fn logins(&self, p: &Principal) -> Result<Vec<LoginEntry>, Error> {
        let now = self.now();
        let current = p.current();
        let mut out = Vec::new();
        for s in self
            .stores
            .sessions
            .sessions_of_user(p.user_id(), now)
            .await?
        {
            out.push(LoginEntry {
                current: current.session == Some(s.id.as_str()),
                id: s.id,
                kind: CredentialKind::Session,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.idle_expires_at.min(s.expires_at),
                user_agent: s.user_agent,
                ip: s.ip,
            });
        }
        for f in self
            .stores
            .refresh
            .families_of_user(p.user_id(), now)
            .await?
        {
            out.push(LoginEntry {
                current: current.family == Some(f.id.as_str()),
                id: f.id,
                kind: CredentialKind::RefreshFamily,
                created_at: f.created_at,
                last_seen_at: f.last_used_at,
                expires_at: f.idle_expires_at.min(f.expires_at),
                user_agent: f.user_agent,
                ip: f.ip,
            });
        }
        Ok(out)
    }

    /// End one of the caller's own sessions or refresh families. Someone else's id is
    /// [`Error::NotFound`], exactly like an id that does not exist.
    pub async fn end_login(&self, p: &Principal, id: &str) -> Result<(), Error> {
        let now = self.now();
        let user_id = p.user_id();
        if self
            .stores
            .sessions
            .delete_session_of_user(id, user_id)
            .await?
        {
            // The cache is keyed by token hash, which this request does not have: drop the
            // user's cached sessions; the live ones reload from the store.
            self.revocations
                .drop_user_sessions(&self.stores, user_id)
                .await?;
            self.stores
                .audit
                .record(
                    now,
                    &AuditKind::Logout,
                    Some(user_id),
                    &json!({"session_id": id}),
                )
                .await?;
            return Ok(());
        }
        match self.stores.refresh.family(id).await? {
            Some(f) if f.user_id == user_id && f.is_live(now) => {
                self.revocations
                    .revoke_family(&self.stores, &f.id, f.expires_at, now)
                    .await?;
                self.stores
                    .audit
                    .record(
                        now,
                        &AuditKind::Revoke,
                        Some(user_id),
                        &json!({"family_id": f.id}),
                    )
                    .await?;
                Ok(())
            }
            _ => Err(Error::NotFound),
        }
    }

    /// Change the caller's password. Ends every *other* session, refresh family and access
    /// token of the user; a session caller gets a new session token (fixation defence),
    /// returned here; the current refresh family continues.
    pub async fn change_password(
        &self,
        p: &Principal,
        current_password: String,
        new_password: String,
        client: &ClientInfo,
    ) -> Result<Option<RotatedSession>, Error> {
        check_password_length(&current_password)?;
        check_new_password(&new_password)?;
        self.login_attempt(p.username(), client.ip.as_deref())
            .await?;
        let user = self
            .stores
            .users
            .user_by_id(p.user_id())
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !self
            .passwords
            .verify(current_password, Some(user.password_hash.clone()))
            .await?
        {
            return Err(Error::invalid(
                "invalid_current_password",
                "the current password is wrong",
            ));
        }
        self.login_succeeded(p.username()).await?;
        let hash = self.passwords.hash(new_password).await?;
        self.stores.users.set_password_hash(&user.id, &hash).await?;
        let now = self.now();
        self.end_credentials(
            &user.id,
            p.current(),
            AuditKind::PasswordChange,
            Some(&user.id),
        )
        .await?;
        let Principal::Session(s) = p else {
            return Ok(None);
        };
        // Rotate the current session's token: same lifetime, new secret, for the user as
        // the revocation above left them.
        let token_hash = &s.session.token_hash;
        let Some(old) = self.stores.sessions.load_session(token_hash, now).await? else {
            return Err(Error::Unauthenticated);
        };
        let user = self
            .stores
            .users
            .user_by_id(&user.id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let (token, _) = self
            .open_session(&user, client, old.expires_at - now, now)
            .await
            .map_err(|e| match e {
                Error::InvalidCredentials => Error::Unauthenticated,
                other => other,
            })?;
        self.stores.sessions.delete_session(token_hash).await?;
        self.revocations
            .drop_session(&self.stores, token_hash)
            .await?;
        // A "remember me" session (longer than an ordinary one) keeps a persistent cookie.
        let remembered =
            old.expires_at - old.created_at > secs(self.policy.sessions.absolute_timeout);
        Ok(Some(RotatedSession {
            token,
            persistent_max_age: remembered
                .then(|| u64::try_from(old.expires_at - now).unwrap_or(0)),
        }))
    }
}
