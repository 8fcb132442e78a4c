//! Storage behind traits, so that backends plug in without touching handlers.
//!
//! One trait per kind of record ([`UserStore`], [`SessionStore`], [`KeyStore`]). The
//! traits are object-safe (`async_trait`) because the backend is chosen by configuration
//! at run time. Every backend runs the same conformance suite
//! (`tests/server/store_conformance.rs`).
//!
//! Contracts every backend keeps:
//! - session tokens are stored only as their SHA-256 hash, never in the clear;
//! - [`SessionStore::load`] never returns an expired session (idle or absolute), whether or
//!   not it has been purged yet;
//! - [`UserStore::create`] refuses a username that is taken with [`StoreError::Conflict`].

pub mod sqlite;

use async_trait::async_trait;

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
    /// Any other backend failure.
    #[error("store failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (UUID): the `sub` of tokens. Never reused, never changes.
    pub id: String,
    /// Login name, normalised to lower case.
    pub username: String,
    /// Role, e.g. `user` or `admin`.
    pub role: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot log in or use any credential.
    pub disabled: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
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
}

/// A server-side session as stored. The token itself is never stored: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// When the session ends for want of use; pushed forward by [`SessionStore::touch`].
    pub idle_expires_at: i64,
    /// When the session ends regardless of use.
    pub expires_at: i64,
    /// `User-Agent` at login, for the user's list of devices.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
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
    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Delete the session with this token hash; whether one existed.
    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError>;
    /// Delete every session expired at `now`; how many.
    async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError>;
}

/// A signing key as stored (private material in PKCS#8 DER).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (RFC 7638 thumbprint of the public JWK).
    pub kid: String,
    /// JOSE algorithm name, e.g. `EdDSA`.
    pub alg: String,
    /// PKCS#8 DER private key.
    pub private_der: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_der", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Every stored key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Add a key.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
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
}

impl Stores {
    /// All stores backed by one SQLite database.
    pub fn sqlite(db: sqlite::SqliteStore) -> Self {
        let db = std::sync::Arc::new(db);
        Self {
            users: db.clone(),
            sessions: db.clone(),
            keys: db,
        }
    }
}
