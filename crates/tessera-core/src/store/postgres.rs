//! The scale-out store: PostgreSQL for every durable record, shared by all instances.
//!
//! The same contracts as the SQLite store (one conformance suite runs against both); the
//! SQL differs only where the dialects do. The pool's acquire timeout is short, so that a
//! database outage turns into a prompt 503 rather than requests that hang.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{FromRow, Row};

use super::{
    AuditEvent, AuditFilter, AuditStore, Client, ClientStore, KeyStore, RateLimitStore,
    RefreshFamily, RefreshStore, RefreshToken, RevocationEvent, RevocationStore, SessionRecord,
    SessionStore, SigningKeyRecord, StoreError, User, UserStore,
};

/// PostgreSQL-backed store for every durable record.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(ref d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            // Connection exceptions and operator intervention (e.g. shutting down).
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| c.starts_with("22")) => {
            // Data exceptions: a value from outside the store cannot hold (a NUL byte in
            // TEXT, an out-of-range number). The request is wrong, not the server.
            StoreError::InvalidValue(Box::new(e))
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

impl PostgresStore {
    /// Connect to `url` and apply migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .map_err(backend)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { pool })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO users (id, username, role, password_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(u.role.as_str())
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
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(User::from_row)
            .transpose()
            .map_err(backend)
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM users WHERE username > $1 ORDER BY username LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter()
            .map(User::from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn set_role(&self, id: &str, role: &crate::identity::Role) -> Result<bool, StoreError> {
        update_user(
            &self.pool,
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str().to_owned())
                .bind(id.to_owned()),
        )
        .await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        update_user(
            &self.pool,
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(id.to_owned()),
        )
        .await
    }

    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        update_user(
            &self.pool,
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash.to_owned())
                .bind(id.to_owned()),
        )
        .await
    }

    async fn bump_credential_epoch(&self, id: &str) -> Result<bool, StoreError> {
        update_user(
            &self.pool,
            sqlx::query("UPDATE users SET credential_epoch = credential_epoch + 1 WHERE id = $1")
                .bind(id.to_owned()),
        )
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(User::from_row)
            .transpose()
            .map_err(backend)
    }
}

async fn update_user<'q>(
    pool: &PgPool,
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<bool, StoreError> {
    Ok(query.execute(pool).await.map_err(backend)?.rows_affected() > 0)
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at,
                                   idle_expires_at, expires_at, user_agent, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            "SELECT * FROM sessions WHERE token_hash = $1 AND idle_expires_at > $2 AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref()
            .map(SessionRecord::from_row)
            .transpose()
            .map_err(backend)
    }

    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE sessions SET last_seen_at = $1, idle_expires_at = LEAST($2, expires_at) WHERE id = $3",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(res.rows_affected() > 0)
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected() > 0)
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE user_id = $1 AND idle_expires_at > $2 AND expires_at > $3
             ORDER BY created_at, id",
        )
        .bind(user_id)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(SessionRecord::from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn delete_session_of_user(&self, id: &str, user_id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected() > 0)
    }

    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let res = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2")
            .bind(user_id)
            .bind(keep)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected())
    }

    async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let res =
            sqlx::query("DELETE FROM sessions WHERE idle_expires_at <= $1 OR expires_at <= $2")
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(res.rows_affected())
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY activates_at, created_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(SigningKeyRecord::from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn add_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_pem, created_at, activates_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_pem)
        .bind(k.created_at)
        .bind(k.activates_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict("key already present"),
            e => backend(e),
        })?;
        Ok(())
    }
    async fn channel_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO channel_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        let row = sqlx::query("SELECT key FROM channel_keys WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        row.try_get("key").map_err(backend)
    }
}

async fn insert_refresh_token<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    t: &RefreshToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, id, family_id, created_at, spent_at, sealed)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.token_hash)
    .bind(&t.id)
    .bind(&t.family_id)
    .bind(t.created_at)
    .bind(t.spent_at)
    .bind(&t.sealed)
    .execute(exec)
    .await?;
    Ok(())
}

#[async_trait]
impl RefreshStore for PostgresStore {
    async fn create_family(&self, f: &RefreshFamily, t: &RefreshToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, client_id, created_at, last_used_at,
                 idle_expires_at, expires_at, revoked_at, user_agent, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(&f.client_id)
        .bind(f.created_at)
        .bind(f.last_used_at)
        .bind(f.idle_expires_at)
        .bind(f.expires_at)
        .bind(f.revoked_at)
        .bind(&f.user_agent)
        .bind(&f.ip)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_refresh_token(&mut *tx, t).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn find_refresh_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<(RefreshToken, RefreshFamily)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let token = RefreshToken::from_row(&row).map_err(backend)?;
        let Some(family) = self.family(&token.family_id).await? else {
            return Ok(None);
        };
        Ok(Some((token, family)))
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        now: i64,
        sealed: &[u8],
        new: &RefreshToken,
        idle_expires_at: i64,
    ) -> Result<bool, StoreError> {
        // One transaction: the conditional UPDATE is the race's referee (SQLite serialises
        // writers), and the sealed pair is written in the same statement that marks the
        // token spent, so a loser that sees "spent" also sees the pair to return.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1, sealed = $2 WHERE token_hash = $3 AND spent_at IS NULL",
        )
        .bind(now)
        .bind(sealed)
        .bind(old_hash)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        insert_refresh_token(&mut *tx, new).await.map_err(backend)?;
        sqlx::query(
            "UPDATE refresh_families SET last_used_at = $1, idle_expires_at = LEAST($2, expires_at) WHERE id = $3",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(&new.family_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND idle_expires_at > $1 AND expires_at > $1",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(res.rows_affected() > 0)
    }

    async fn revoke_families_of_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1
             WHERE user_id = $2 AND id IS DISTINCT FROM $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT id, expires_at FROM refresh_families
             WHERE user_id = $1 AND id IS DISTINCT FROM $2 AND revoked_at IS NOT NULL
               AND expires_at > $3 ORDER BY id",
        )
        .bind(user_id)
        .bind(keep)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn families_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM refresh_families WHERE user_id = $1 AND revoked_at IS NULL
               AND idle_expires_at > $2 AND expires_at > $3 ORDER BY created_at, id",
        )
        .bind(user_id)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(RefreshFamily::from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_families WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(RefreshFamily::from_row)
            .transpose()
            .map_err(backend)
    }

    async fn forget_sealed(&self, spent_before: i64) -> Result<u64, StoreError> {
        let res = sqlx::query(
            "UPDATE refresh_tokens SET sealed = NULL WHERE sealed IS NOT NULL AND spent_at < $1",
        )
        .bind(spent_before)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(res.rows_affected())
    }

    async fn revoked_families(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, expires_at FROM refresh_families WHERE revoked_at IS NOT NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn create_client(&self, c: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(c.created_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(Client::from_row)
            .transpose()
            .map_err(backend)
    }
}

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT(jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn revoked_jtis(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((r.try_get("jti")?, r.try_get("expires_at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn set_not_before(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET not_before = GREATEST(COALESCE(not_before, 0), $1) WHERE id = $2",
        )
        .bind(at)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// Appends are serialised by a transaction-scoped advisory lock, so that the feed's
    /// id order is its commit order: a `BIGSERIAL` id is taken when the INSERT runs, not
    /// when it commits, and without the lock id 10 could become visible after id 11 — a
    /// reader resuming from 11 would then skip 10 for ever. Under the lock, id N+1 is taken
    /// only after N's transaction has committed, so every reader sees a prefix of the feed
    /// and may resume from the highest id it has read. (The other choice, re-reading a
    /// trailing window, needs a bound on how late a commit may be; this needs none, and
    /// revocations are rare enough that serialising them costs nothing measurable.)
    async fn append_event(&self, e: &RevocationEvent) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(7370657272) ")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let row = sqlx::query(
            "INSERT INTO revocation_events (kind, key, expires_at, at) VALUES ($1, $2, $3, EXTRACT(EPOCH FROM now())::BIGINT) RETURNING id",
        )
        .bind(e.kind.as_str())
        .bind(&e.key)
        .bind(e.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let id = row.try_get("id").map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }

    async fn events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let rows = sqlx::query("SELECT id, kind, key, expires_at FROM revocation_events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(RevocationEvent::from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn prune_events(&self, before: i64) -> Result<u64, StoreError> {
        let res = sqlx::query("DELETE FROM revocation_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected())
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0)::BIGINT AS id FROM revocation_events")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        row.try_get("id").map_err(backend)
    }

    async fn not_befores(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, not_before FROM users WHERE not_before IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("not_before")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record(
        &self,
        at: i64,
        kind: &crate::audit::AuditKind,
        user_id: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_events (at, kind, user_id, detail) VALUES ($1, $2, $3, $4)")
            .bind(at)
            .bind(kind.as_str())
            .bind(user_id)
            .bind(detail.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events
             WHERE ($1::TEXT IS NULL OR user_id = $1) AND ($2::TEXT IS NULL OR kind = $2) AND ($3::BIGINT IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(&f.user_id)
        .bind(f.kind.as_ref().map(|k| k.as_str().to_owned()))
        .bind(f.before_id)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| -> Result<AuditEvent, sqlx::Error> {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get::<String, _>("kind")?.into(),
                    user_id: r.try_get("user_id")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(backend)
    }
}

#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<(u32, i64), StoreError> {
        // One statement, so concurrent hits cannot both read the old count.
        let row = sqlx::query(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
             ON CONFLICT(key) DO UPDATE SET
               count = CASE WHEN rate_limits.window_start + $3 <= $2 THEN 1 ELSE rate_limits.count + 1 END,
               window_start = CASE WHEN rate_limits.window_start + $3 <= $2 THEN $2 ELSE rate_limits.window_start END
             RETURNING count, window_start",
        )
        .bind(key)
        .bind(now)
        .bind(window)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let count: i64 = row.try_get("count").map_err(backend)?;
        let start: i64 = row.try_get("window_start").map_err(backend)?;
        Ok((u32::try_from(count).unwrap_or(u32::MAX), start))
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
