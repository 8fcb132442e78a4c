//! Sessions in Redis (`session_store = "redis"`), for deployments that want the session
//! records themselves in Redis rather than in the SQL store.
//!
//! Layout, one key per purpose, no multi-key transactions (so it runs unchanged on Redis
//! Cluster; the indexes may briefly name a session that is gone, and are cleaned lazily):
//! - `tessera:s:<token hash hex>` → the session record (JSON), with a TTL a little past
//!   its end, so Redis forgets it by itself;
//! - `tessera:sid:<session id>` → the token hash (for delete-by-id and renewal);
//! - `tessera:u:<user id>` → set of the user's token hashes.
//!
//! TTLs are computed relative to the record's own instants, never from Redis's clock, so
//! expiry decisions stay with the caller's `now`. Durability is Redis's: run it with
//! `appendonly yes` (and `appendfsync always` to lose nothing on a crash).

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{SessionRecord, SessionStore, StoreError};
use crate::redis::Redis;

/// Extra seconds a record outlives its end in Redis: the caller's clock decides expiry.
const TTL_SLACK: i64 = 60;

/// Renew a session record in place if it exists: `ARGV` = now, new idle expiry, TTL slack.
const TOUCH: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local s = cjson.decode(raw)
local now = tonumber(ARGV[1])
s.last_seen_at = now
s.idle_expires_at = math.min(tonumber(ARGV[2]), s.expires_at)
local ttl = math.max(math.min(s.idle_expires_at, s.expires_at) - now, 1) + tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(s), 'EX', ttl)
return 1
";

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

use crate::opaque::hex;

fn session_key(hash: &[u8]) -> String {
    format!("tessera:s:{}", hex(hash))
}

fn live(s: &SessionRecord, now: i64) -> bool {
    now < s.idle_expires_at && now < s.expires_at
}

/// Session records in Redis.
pub struct RedisSessionStore {
    redis: Redis,
}

impl RedisSessionStore {
    /// Sessions in this Redis.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn conn(&self) -> redis::aio::ConnectionManager {
        self.redis.manager()
    }

    async fn get(&self, hash_hex: &str) -> Result<Option<SessionRecord>, StoreError> {
        let raw: Option<String> = self
            .conn()
            .get(format!("tessera:s:{hash_hex}"))
            .await
            .map_err(unavailable)?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn put(&self, s: &SessionRecord, now: i64) -> Result<(), StoreError> {
        let ttl = (s.idle_expires_at.min(s.expires_at) - now).max(1) + TTL_SLACK;
        let json = serde_json::to_string(s).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut c = self.conn();
        let ttl = u64::try_from(ttl).unwrap_or(1);
        redis::pipe()
            .set_ex(session_key(&s.token_hash), json, ttl)
            .set_ex(format!("tessera:sid:{}", s.id), hex(&s.token_hash), ttl)
            .sadd(format!("tessera:u:{}", s.user_id), hex(&s.token_hash))
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn remove(&self, s: &SessionRecord) -> Result<bool, StoreError> {
        let mut c = self.conn();
        let (deleted, _, _): (i64, i64, i64) = redis::pipe()
            .del(session_key(&s.token_hash))
            .del(format!("tessera:sid:{}", s.id))
            .srem(format!("tessera:u:{}", s.user_id), hex(&s.token_hash))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(deleted > 0)
    }

    async fn of_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let hashes: Vec<String> = self
            .conn()
            .smembers(format!("tessera:u:{user_id}"))
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for h in hashes {
            match self.get(&h).await? {
                Some(s) => out.push(s),
                None => {
                    // Expired by Redis: clean the index lazily.
                    let _: Result<(), _> =
                        self.conn().srem(format!("tessera:u:{user_id}"), &h).await;
                }
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.put(s, s.created_at).await
    }

    async fn load_session(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.get(&hex(token_hash)).await?.filter(|s| live(s, now)))
    }

    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let hash: Option<String> = self
            .conn()
            .get(format!("tessera:sid:{id}"))
            .await
            .map_err(unavailable)?;
        let Some(hash) = hash else { return Ok(false) };
        // One script on the one record key: it updates the record only if it still
        // exists, so a touch racing a logout can never write a deleted session back.
        let mut c = self.conn();
        let touched: i64 = redis::Script::new(TOUCH)
            .key(format!("tessera:s:{hash}"))
            .arg(now)
            .arg(idle_expires_at)
            .arg(TTL_SLACK)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if touched == 1 {
            // The id index lives as long as the record; best effort (it is only an index).
            let _: Result<(), _> = c
                .expire(
                    format!("tessera:sid:{id}"),
                    (idle_expires_at - now).max(1) + TTL_SLACK,
                )
                .await;
        }
        Ok(touched == 1)
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        match self.get(&hex(token_hash)).await? {
            Some(s) => self.remove(&s).await,
            None => Ok(false),
        }
    }

    async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        // Redis forgets records by TTL; this removes those the caller's clock says have
        // ended before Redis got to them.
        let mut c = self.conn();
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> =
                c.scan_match("tessera:s:*").await.map_err(unavailable)?;
            let mut keys = Vec::new();
            while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(k.map_err(unavailable)?);
            }
            keys
        };
        let mut purged = 0;
        for k in keys {
            let hash = k.trim_start_matches("tessera:s:");
            if let Some(s) = self.get(hash).await?
                && !live(&s, now)
                && self.remove(&s).await?
            {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self
            .of_user(user_id)
            .await?
            .into_iter()
            .filter(|s| live(s, now))
            .collect())
    }

    async fn delete_session_of_user(&self, id: &str, user_id: &str) -> Result<bool, StoreError> {
        let hash: Option<String> = self
            .conn()
            .get(format!("tessera:sid:{id}"))
            .await
            .map_err(unavailable)?;
        let Some(hash) = hash else { return Ok(false) };
        match self.get(&hash).await? {
            Some(s) if s.user_id == user_id => self.remove(&s).await,
            _ => Ok(false),
        }
    }

    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for s in self.of_user(user_id).await? {
            if Some(s.id.as_str()) != keep && self.remove(&s).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
