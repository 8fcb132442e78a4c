//! [`Core`]: the stores, keys, password hashing, revocation state, clock and policy that
//! every use case needs, composed once at start-up and shared by every adapter.
//!
//! The use cases themselves are methods on `Core`, each defined in the module whose rules
//! it applies ([`accounts`](crate::accounts), [`login`](crate::login),
//! [`sessions`](crate::sessions), [`tokens`](crate::tokens), [`clients`](crate::clients),
//! [`revocation`](crate::revocation)).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::keys::Keys;
use crate::password::Passwords;
use crate::policy::Policy;
use crate::redis::{Redis, RedisPush};
use crate::revocation::Revocations;
use crate::store::Stores;

/// How long revocation-feed events are kept.
const FEED_RETENTION_SECS: i64 = 86_400;

/// Everything a use case can reach. Build it once; share it behind an `Arc`.
pub struct Core {
    /// The stores, each behind its trait.
    pub stores: Stores,
    /// Password hashing under a concurrency bound.
    pub passwords: Passwords,
    /// Signing keys (swapped live on rotation).
    pub keys: Keys,
    /// The clock every expiry decision reads.
    pub clock: Arc<dyn Clock>,
    /// Revocation state every credential check consults, and the session cache.
    pub revocations: Revocations,
    /// The rules.
    pub policy: Policy,
    /// The process's one Redis connection, when configured.
    redis: Option<Redis>,
    /// The push channel over it.
    push: Option<Arc<RedisPush>>,
}

/// The parts a [`Core`] is built from.
pub struct CoreParts {
    /// Stores.
    pub stores: Stores,
    /// Password hashing.
    pub passwords: Passwords,
    /// Keys.
    pub keys: Keys,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Revocation state.
    pub revocations: Revocations,
    /// Policy.
    pub policy: Policy,
    /// The Redis connection the stores were built with, if any.
    pub redis: Option<Redis>,
}

/// How often the background loops run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Re-read signing keys (rotation reaches a running server without restart).
    pub key_reload: Duration,
    /// Poll the revocation feed (only when other instances may write).
    pub revocation_poll: Duration,
    /// Purge expired sessions, cached state and old feed events.
    pub purge: Duration,
}

/// Whether each configured store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The durable store.
    pub database: bool,
    /// Redis, if configured.
    pub redis: Option<bool>,
}

impl Readiness {
    /// Ready when every configured store answers.
    pub fn ready(&self) -> bool {
        self.database && self.redis != Some(false)
    }
}

impl Core {
    /// Compose the parts; with Redis, the push channel (authenticated with the key the
    /// instances share through the database) is attached to the revocation state.
    pub async fn new(parts: CoreParts) -> Result<Self, crate::Error> {
        let push = match &parts.redis {
            Some(redis) => {
                let fresh = crate::opaque::random_bytes(32)?;
                let key = parts.stores.keys.channel_key(&fresh).await?;
                Some(RedisPush::new(redis.clone(), &key))
            }
            None => None,
        };
        if let Some(p) = &push {
            parts.revocations.set_push(p.clone());
        }
        Ok(Self {
            stores: parts.stores,
            passwords: parts.passwords,
            keys: parts.keys,
            clock: parts.clock,
            revocations: parts.revocations,
            policy: parts.policy,
            redis: parts.redis,
            push,
        })
    }

    /// The push channel, when Redis is configured.
    pub fn push_channel(&self) -> Option<&Arc<RedisPush>> {
        self.push.as_ref()
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The process's Redis connection, if configured.
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// Ask every configured store whether it answers.
    pub async fn readiness(&self) -> Readiness {
        let database = self.stores.revocations.last_event_id().await.is_ok();
        let redis = match &self.redis {
            Some(r) => Some(r.ping().await.is_ok()),
            None => None,
        };
        Readiness { database, redis }
    }

    /// Start the background loops; they end when `stop` turns `true`.
    pub fn spawn_background(
        self: &Arc<Self>,
        schedule: &Schedule,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let core = self.clone();
        tasks.push(crate::tasks::every(
            "key_reload",
            schedule.key_reload,
            stop.clone(),
            move || {
                let core = core.clone();
                async move {
                    core.keys
                        .reload(core.stores.keys.as_ref(), core.now())
                        .await
                }
            },
        ));
        if !self.revocations.single_writer() {
            let core = self.clone();
            tasks.push(crate::tasks::every(
                "revocation_poll",
                schedule.revocation_poll,
                stop.clone(),
                move || {
                    let core = core.clone();
                    async move { core.revocations.catch_up(&core.stores).await }
                },
            ));
        }
        let core = self.clone();
        tasks.push(crate::tasks::every(
            "purge",
            schedule.purge,
            stop.clone(),
            move || {
                let core = core.clone();
                async move { core.purge().await }
            },
        ));
        if let Some(push) = &self.push {
            tasks.push(tokio::spawn(push.clone().run(self.clone(), stop)));
        }
        tasks
    }

    /// Forget what can no longer matter: expired revocations and cached sessions, feed
    /// events older than a day (covering any outage shorter than the staleness bound many
    /// times over), expired sessions in the store.
    pub async fn purge(&self) -> Result<(), crate::Error> {
        let now = self.now();
        self.revocations.list.purge(now);
        self.revocations.sessions.purge(now);
        let pruned = self
            .stores
            .revocations
            .prune_events(now - FEED_RETENTION_SECS)
            .await;
        let purged = self.stores.sessions.purge_expired_sessions(now).await;
        let grace = crate::policy::secs(self.policy.tokens.refresh_grace_period);
        let forgotten = self.stores.refresh.forget_sealed(now - grace).await;
        if let Ok(n) = purged
            && n > 0
        {
            tracing::debug!(purged = n, "expired sessions purged");
        }
        pruned?;
        purged?;
        forgotten?;
        Ok(())
    }
}
