//! Redis: the process's one connection (shared by the stores, the push channel and
//! readiness), the channel that pushes revocations and invalidations between instances,
//! and the login-throttling counters.
//!
//! Redis holds nothing that cannot be rebuilt: users, sessions, refresh families and the
//! revocation feed are durable in PostgreSQL (or SQLite). Losing Redis therefore logs
//! nobody out. While the channel is down, each instance stops trusting its session cache
//! and follows the revocation feed by polling; when it comes back, the subscriber
//! reconnects by itself and catches up from the feed before trusting the cache again.
//!
//! Keys are single-key operations under the `tessera:` prefix (cluster-safe without hash
//! tags); the channel is `tessera:revocations`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::revocation::Push;
use crate::store::{RateLimitStore, RevocationEvent, StoreError};

/// The pub/sub channel.
pub const CHANNEL: &str = "tessera:revocations";

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A Redis connection for commands (reconnecting by itself) and the client for pub/sub.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
}

impl Redis {
    /// Prepare a connection to `url`; nothing is contacted yet (Redis may be down at start).
    /// Must be called within a Tokio runtime: the connection manager spawns its driver.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(Self { client, manager })
    }

    /// A handle for commands (cheap to clone; reconnects by itself).
    pub fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.manager.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Login-throttling counters in Redis: `INCR` + `EXPIRE` in one script, so counting is
/// atomic across instances.
pub struct RedisRateLimits(pub Redis);

const HIT: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
return {c, ttl}
";

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<(u32, i64), StoreError> {
        let mut c = self.0.manager.clone();
        let (count, ttl): (i64, i64) = redis::Script::new(HIT)
            .key(format!("tessera:rl:{key}"))
            .arg(window)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let ttl = if ttl < 0 { window } else { ttl };
        Ok((u32::try_from(count).unwrap_or(u32::MAX), now + ttl - window))
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.0.manager.clone();
        c.del::<_, ()>(format!("tessera:rl:{key}"))
            .await
            .map_err(unavailable)
    }
}

/// The push side of the channel, with the subscriber's view of whether it is connected.
///
/// Messages are `<base64url HMAC-SHA256>.<event JSON>` under a key every instance reads
/// from the shared database ([`crate::store::KeyStore::channel_key`]): whoever can publish
/// to Redis but cannot read the database cannot make an instance apply anything. A
/// message that fails the check is dropped and counted.
pub struct RedisPush {
    redis: Redis,
    key: aws_lc_rs::hmac::Key,
    connected: AtomicBool,
    rejected: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    /// When the last well-signed message arrived, ms since `started`.
    last_message_ms: std::sync::atomic::AtomicI64,
}

/// Sign an event for the channel.
fn seal(key: &aws_lc_rs::hmac::Key, event: &RevocationEvent) -> Option<String> {
    use base64::Engine;
    let json = serde_json::to_string(event).ok()?;
    let tag = aws_lc_rs::hmac::sign(key, json.as_bytes());
    Some(format!(
        "{}.{json}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
}

/// The event in a channel message, if its tag is right (checked in constant time).
fn open(key: &aws_lc_rs::hmac::Key, message: &str) -> Option<RevocationEvent> {
    use base64::Engine;
    let (tag, json) = message.split_once('.')?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .ok()?;
    aws_lc_rs::hmac::verify(key, json.as_bytes(), &tag).ok()?;
    serde_json::from_str(json).ok()
}

#[async_trait]
impl Push for RedisPush {
    async fn push(&self, event: &RevocationEvent) -> bool {
        let Some(payload) = seal(&self.key, event) else {
            return false;
        };
        let mut c = self.redis.manager.clone();
        match c.publish::<_, _, ()>(CHANNEL, payload).await {
            Ok(()) => true,
            Err(e) => {
                // The feed is the durable path; the others catch up by polling.
                tracing::warn!(error = %e, "revocation push failed");
                false
            }
        }
    }

    /// Connected, and a message (at least our own heartbeat, which goes through Redis and
    /// back) arrived within [`LIVENESS`]: a subscription whose socket died silently (a
    /// firewall dropping packets, no reset) stops being trusted within seconds.
    fn connected(&self) -> bool {
        let quiet =
            self.started.elapsed().as_millis() as i64 - self.last_message_ms.load(Ordering::SeqCst);
        self.connected.load(Ordering::SeqCst) && quiet <= LIVENESS.as_millis() as i64
    }
}

/// How often each instance publishes a heartbeat on the channel.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the channel is trusted without hearing anything.
const LIVENESS: Duration = Duration::from_secs(3);

fn heartbeat() -> RevocationEvent {
    RevocationEvent {
        id: 0,
        kind: crate::revocation::RevocationKind::Other("heartbeat".into()),
        key: String::new(),
        expires_at: 0,
    }
}

impl RedisPush {
    /// A push channel over `redis` whose messages are authenticated with `key`; not yet
    /// connected.
    pub fn new(redis: Redis, key: &[u8]) -> Arc<Self> {
        Arc::new(Self {
            redis,
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
            connected: AtomicBool::new(false),
            rejected: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
            last_message_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    fn heard(&self) {
        self.last_message_ms
            .store(self.started.elapsed().as_millis() as i64, Ordering::SeqCst);
    }

    /// Messages dropped because their tag was wrong (forged, or another deployment's).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Subscribe and apply pushed events until `stop`; reconnect after every failure.
    /// The channel counts as connected only after the subscription is confirmed *and* the
    /// feed has been caught up, so nothing published during the gap is missed.
    pub async fn run(
        self: Arc<Self>,
        core: Arc<crate::Core>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let session = async {
                let mut pubsub = self.redis.client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                r = tokio::time::timeout(Duration::from_secs(2), session) => r,
                _ = stop.changed() => return,
            };
            match pubsub {
                Ok(Ok(mut pubsub)) => {
                    if core.revocations.catch_up(&core.stores).await.is_ok() {
                        self.heard();
                        self.connected.store(true, Ordering::SeqCst);
                        tracing::info!("revocation channel connected");
                    }
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    let mut beat = tokio::time::interval(HEARTBEAT);
                    loop {
                        tokio::select! {
                            _ = beat.tick() => {
                                let _ = self.push(&heartbeat()).await;
                            }
                            msg = messages.next() => match msg {
                                Some(msg) => {
                                    match msg.get_payload::<String>().ok().and_then(|p| open(&self.key, &p)) {
                                        Some(event) => {
                                            self.heard();
                                            core.revocations.apply_ahead(&event);
                                        }
                                        None => {
                                            self.rejected.fetch_add(1, Ordering::Relaxed);
                                            tracing::warn!(event = "push_rejected", "revocation channel message with a bad tag dropped");
                                        }
                                    }
                                }
                                None => break,
                            },
                            _ = stop.changed() => return,
                        }
                    }
                    self.connected.store(false, Ordering::SeqCst);
                    tracing::warn!("revocation channel lost; following the feed by polling");
                }
                _ => {
                    self.connected.store(false, Ordering::SeqCst);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
