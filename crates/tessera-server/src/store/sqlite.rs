//! The embedded default store: one SQLite database file in the data directory.
//!
//! WAL mode with `synchronous = NORMAL`: a committed write survives a crash of the process
//! (SIGKILL), which is the failure this default must absorb. The database file is created
//! with mode 0600 before SQLite opens it; SQLite gives its `-wal` and `-shm` files the same
//! mode as the database, so no secret-bearing file is ever world-readable.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{KeyStore, SessionRecord, SessionStore, SigningKeyRecord, StoreError, User, UserStore};

/// SQLite-backed store for users, sessions and signing keys.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Backend(Box::new(other)),
    }
}

impl SqliteStore {
    /// Open (creating if needed) `tessera.db` in `data_dir` and apply migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let path = data_dir.join("tessera.db");
        create_private_file(&path).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(backend)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { pool })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn user_from(row: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: row.try_get("role")?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

fn session_from(row: &SqliteRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        expires_at: row.try_get("expires_at")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO users (id, username, role, password_hash, disabled, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.role)
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(u.created_at)
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict("username taken"))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from).transpose().map_err(backend)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from).transpose().map_err(backend)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at,
                                   idle_expires_at, expires_at, user_agent, ip)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.idle_expires_at)
        .bind(s.expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load_session(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM sessions WHERE token_hash = ? AND idle_expires_at > ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(session_from).transpose().map_err(backend)
    }

    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = ?, idle_expires_at = MIN(?, expires_at) WHERE id = ?",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected() > 0)
    }

    async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let res = sqlx::query("DELETE FROM sessions WHERE idle_expires_at <= ? OR expires_at <= ?")
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected())
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    private_der: r.try_get("private_der")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn add_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_der)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}
