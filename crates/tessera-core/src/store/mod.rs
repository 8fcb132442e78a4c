//! Storage behind traits, so that backends plug in without touching handlers.
//!
//! One trait per kind of record ([`UserStore`], [`SessionStore`], [`KeyStore`],
//! [`RefreshStore`], [`ClientStore`], [`RevocationStore`], [`AuditStore`],
//! [`RateLimitStore`]). The
//! traits are object-safe (`async_trait`) because the backend is chosen by configuration
//! at run time. Every backend runs the same conformance suite
//! (`crates/tessera-core/tests/core/store_conformance.rs`).
//!
//! Contracts every backend keeps:
//! - session tokens are stored only as their SHA-256 hash, never in the clear;
//! - [`SessionStore::load_session`] never returns an expired session (idle or absolute), whether or
//!   not it has been purged yet;
//! - [`UserStore::create_user`] refuses a username that is taken with [`StoreError::Conflict`].

pub mod postgres;
pub mod redis_sessions;
pub mod sqlite;

use async_trait::async_trait;

use crate::audit::AuditKind;
use crate::identity::Role;
use crate::opaque::Redacted;
use crate::revocation::RevocationKind;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. the username is taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The backend could not be reached in time; the request may be retried.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A value the backend cannot store or compare (e.g. a NUL byte in text): bad input.
    #[error("value not representable in the store")]
    InvalidValue(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other backend failure.
    #[error("store failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A user account.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// Stable id (UUID): the `sub` of tokens. Never reused, never changes.
    pub id: String,
    /// Login name, normalised to lower case.
    pub username: String,
    /// Role, e.g. `user` or `admin`.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot log in or use any credential.
    pub disabled: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Moves forward at every user-wide revocation ([`UserStore::bump_credential_epoch`]);
    /// a login whose user changed while it hashed is refused.
    pub credential_epoch: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("password_hash", &Redacted)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("credential_epoch", &self.credential_epoch)
            .finish()
    }
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Insert a new user; [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// The user with this (normalised) username.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// Users ordered by username, after `after` (a username; pagination cursor), at most `limit`.
    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError>;
    /// Change a user's role; whether the user exists.
    async fn set_role(&self, id: &str, role: &Role) -> Result<bool, StoreError>;
    /// Disable or re-enable a user; whether the user exists.
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError>;
    /// Replace a user's password hash; whether the user exists.
    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError>;
    /// Move the user's credential epoch forward by one; whether the user exists.
    async fn bump_credential_epoch(&self, id: &str) -> Result<bool, StoreError>;
}

/// Fixed-window counters for throttling, shared by every instance using the store.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Atomically count one hit on `key` in the window of `window` seconds containing
    /// `now` (a window starts at the first hit after the previous one ended). Returns the
    /// count including this hit and the window's start.
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<(u32, i64), StoreError>;
    /// Forget `key`'s count.
    async fn reset(&self, key: &str) -> Result<(), StoreError>;
}

/// A server-side session as stored. The token itself is never stored: only its hash.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct SessionRecord {
    /// Public handle of the session (UUID), safe to show and to use in URLs.
    pub id: String,
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// Owner.
    pub user_id: String,
    /// Login time.
    pub created_at: i64,
    /// Last time the session was seen (updated at most once per touch interval).
    pub last_seen_at: i64,
    /// When the session ends for want of use; pushed forward by [`SessionStore::touch_session`].
    pub idle_expires_at: i64,
    /// When the session ends regardless of use.
    pub expires_at: i64,
    /// `User-Agent` at login, for the user's list of devices.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id)
            .field("token_hash", &Redacted)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("idle_expires_at", &self.idle_expires_at)
            .field("expires_at", &self.expires_at)
            .field("user_agent", &self.user_agent)
            .field("ip", &self.ip)
            .finish()
    }
}

/// Server-side sessions.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Store a new session.
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The live session whose token hashes to `token_hash`; `None` if unknown or expired at `now`.
    async fn load_session(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Record use at `now`: `last_seen_at = now`, `idle_expires_at = min(new_idle, expires_at)`.
    /// Whether the session still exists: a touch never re-creates a deleted session, and
    /// `false` means it has ended.
    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Delete the session with this token hash; whether one existed.
    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError>;
    /// Delete every session expired at `now`; how many.
    async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError>;
    /// The user's live sessions at `now`, oldest first.
    async fn sessions_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Delete the session with this public id if it belongs to `user_id`; whether it did.
    async fn delete_session_of_user(&self, id: &str, user_id: &str) -> Result<bool, StoreError>;
    /// Delete all of the user's sessions except `keep` (a session id); how many.
    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;
}

/// A refresh family: one login in JWT mode (one device). Every refresh token and every
/// access token issued from that login belongs to it (`sid`), so revoking the family
/// revokes them all.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshFamily {
    /// Family id (UUID): the `sid` of its access tokens.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The client it was issued to; only that client may use or revoke it.
    pub client_id: String,
    /// Login time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// Ends for want of use at this instant; slid forward by each refresh, capped by `expires_at`.
    pub idle_expires_at: i64,
    /// Absolute end: no refresh extends past it.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
}

impl RefreshFamily {
    /// Usable at `now`: not revoked, not expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.expires_at
    }
}

/// One refresh token, by hash.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Public id (UUID), shown as `jti` by introspection.
    pub id: String,
    /// The family it belongs to.
    pub family_id: String,
    /// Issue time.
    pub created_at: i64,
    /// When it was exchanged for a new pair.
    pub spent_at: Option<i64>,
    /// The pair that replaced it, sealed under a key only its holder can derive.
    pub sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("token_hash", &Redacted)
            .field("id", &self.id)
            .field("family_id", &self.family_id)
            .field("created_at", &self.created_at)
            .field("spent_at", &self.spent_at)
            .field("sealed", &self.sealed.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// Refresh families and their tokens.
#[async_trait]
pub trait RefreshStore: Send + Sync + 'static {
    /// Store a new family with its first token.
    async fn create_family(
        &self,
        family: &RefreshFamily,
        token: &RefreshToken,
    ) -> Result<(), StoreError>;
    /// The token with this hash and its family, whatever their state.
    async fn find_refresh_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<(RefreshToken, RefreshFamily)>, StoreError>;
    /// Atomically exchange a token: if `old_hash` is unspent, mark it spent at `now` with
    /// `sealed`, insert `new`, and set the family's last use and idle expiry. `false` if
    /// the token was already spent (someone else won the race, or it is being replayed).
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        now: i64,
        sealed: &[u8],
        new: &RefreshToken,
        idle_expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Revoke a family at `now`; whether it was live.
    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError>;
    /// Revoke all of the user's families except `keep`. Returns every revoked family of the
    /// user (except `keep`) that has not ended yet, with its expiry — those revoked by this
    /// call and those a concurrent revocation revoked but may not have announced yet — so
    /// that the caller announces all of them before it answers.
    async fn revoke_families_of_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// The user's live families at `now`.
    async fn families_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError>;
    /// The family with this id.
    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError>;
    /// Families revoked and not yet expired at `now` (their access tokens may still be
    /// around), with their expiry.
    async fn revoked_families(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// Delete the sealed replacement pairs of tokens spent before `spent_before` (their
    /// grace window is over), so that a database copy plus an old refresh token yields
    /// nothing; how many.
    async fn forget_sealed(&self, spent_before: i64) -> Result<u64, StoreError>;
}

/// A confidential OAuth client.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Client {
    /// Client id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// SHA-256 of the secret (the secret is 256 random bits: a slow hash adds nothing).
    pub secret_hash: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &Redacted)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// OAuth clients.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Add a client.
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;
    /// The client with this id.
    async fn client_by_id(&self, id: &str) -> Result<Option<Client>, StoreError>;
}

/// Durable revocation state for access tokens; the in-memory
/// [`RevocationList`](crate::revocation::RevocationList) is loaded from it.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Revoke one access token until its expiry.
    async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Revoked `jti`s not yet expired at `now`.
    async fn revoked_jtis(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// Revoke every token of the user issued before `at`.
    async fn set_not_before(&self, user_id: &str, at: i64) -> Result<(), StoreError>;
    /// Every user's "not before".
    async fn not_befores(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Append to the revocation feed; the event's id.
    async fn append_event(&self, event: &RevocationEvent) -> Result<i64, StoreError>;
    /// Feed events after `after_id`, oldest first, at most `limit`.
    async fn events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RevocationEvent>, StoreError>;
    /// The newest event id (0 when the feed is empty).
    async fn last_event_id(&self) -> Result<i64, StoreError>;
    /// Delete feed events recorded before `before` (seconds since the epoch); how many.
    async fn prune_events(&self, before: i64) -> Result<u64, StoreError>;
}

/// One entry of the revocation feed: what every instance must apply to its in-memory
/// state. Also the message pushed between instances.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct RevocationEvent {
    /// Feed position (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    /// What kind of thing is revoked or invalidated.
    #[sqlx(try_from = "String")]
    pub kind: RevocationKind,
    /// What it applies to.
    pub key: String,
    /// Until when it matters (a `jti` until the token's expiry, …); for `not_before` the
    /// instant itself.
    pub expires_at: i64,
}

/// A security-relevant event. `detail` never holds a secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// Sequence number (assigned by the store).
    pub id: i64,
    /// When.
    pub at: i64,
    /// What, e.g. `login`, `refresh_reuse_detected`.
    pub kind: AuditKind,
    /// Whom it concerns.
    pub user_id: Option<String>,
    /// Structured detail.
    pub detail: serde_json::Value,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only events with a smaller id (pagination cursor).
    pub before_id: Option<i64>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Append an event.
    async fn record(
        &self,
        at: i64,
        kind: &AuditKind,
        user_id: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Events matching `filter`, newest first.
    async fn events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A signing key as stored (private material as PKCS#8 PEM).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    /// Key id (RFC 7638 thumbprint of the public JWK).
    pub kid: String,
    /// JOSE algorithm name: `EdDSA`, `ES256`, `RS256`.
    pub alg: String,
    /// PKCS#8 PEM private key.
    pub private_pem: String,
    /// Creation time: published in the JWKS from then on.
    pub created_at: i64,
    /// When it starts signing (the newest key activated by `now` signs).
    pub activates_at: i64,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Every stored key, in order of activation.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Add a key.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// The key that authenticates messages between instances: `fresh` if none was stored
    /// yet (it is then stored), else the stored one — so every instance gets the same.
    async fn channel_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
}

/// The stores a server runs on, each behind its trait.
#[derive(Clone)]
pub struct Stores {
    /// User accounts.
    pub users: std::sync::Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: std::sync::Arc<dyn SessionStore>,
    /// Signing keys.
    pub keys: std::sync::Arc<dyn KeyStore>,
    /// Refresh families.
    pub refresh: std::sync::Arc<dyn RefreshStore>,
    /// OAuth clients.
    pub clients: std::sync::Arc<dyn ClientStore>,
    /// Access-token revocations.
    pub revocations: std::sync::Arc<dyn RevocationStore>,
    /// Audit trail.
    pub audit: std::sync::Arc<dyn AuditStore>,
    /// Throttling counters.
    pub rate_limits: std::sync::Arc<dyn RateLimitStore>,
}

impl Stores {
    /// All stores backed by one PostgreSQL database.
    pub fn postgres(db: postgres::PostgresStore) -> Self {
        let db = std::sync::Arc::new(db);
        Self {
            users: db.clone(),
            sessions: db.clone(),
            keys: db.clone(),
            refresh: db.clone(),
            clients: db.clone(),
            revocations: db.clone(),
            audit: db.clone(),
            rate_limits: db,
        }
    }

    /// All stores backed by one SQLite database.
    pub fn sqlite(db: sqlite::SqliteStore) -> Self {
        let db = std::sync::Arc::new(db);
        Self {
            users: db.clone(),
            sessions: db.clone(),
            keys: db.clone(),
            refresh: db.clone(),
            clients: db.clone(),
            revocations: db.clone(),
            audit: db.clone(),
            rate_limits: db,
        }
    }
}
