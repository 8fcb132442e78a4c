//! Start-up seam: [`Application::build`] opens the stores, loads keys, binds the listener
//! (port 0 in tests) and returns a handle; [`Application::run_until`] serves until the
//! shutdown future resolves, then drains in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tessera_verify::Policy;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Settings;
use crate::http::{self, AppState, Inner};
use crate::keys::{KeyPolicy, Keys};
use crate::password::Passwords;
use crate::store::Stores;
use crate::store::sqlite::SqliteStore;

/// A built, bound, not yet serving server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    push: Option<Arc<crate::bus::RedisPush>>,
}

/// Open the configured durable store (PostgreSQL when `database_url` is set, else SQLite
/// in `data_dir`); with `redis_url`, login throttling counts in Redis.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    let mut stores =
        match &settings.database_url {
            Some(url) => Stores::postgres(
                crate::store::postgres::PostgresStore::connect(&url.0)
                    .await
                    .context("connecting to PostgreSQL (database_url)")?,
            ),
            None => Stores::sqlite(SqliteStore::open(&settings.data_dir).await.with_context(
                || format!("opening the database in {}", settings.data_dir.display()),
            )?),
        };
    if let Some(url) = &settings.redis_url {
        let redis = crate::bus::Redis::new(&url.0).context("redis_url")?;
        if settings.session_store == crate::config::SessionBackend::Redis {
            stores.sessions = Arc::new(crate::store::redis_sessions::RedisSessionStore::new(
                redis.clone(),
            ));
        }
        stores.rate_limits = Arc::new(crate::bus::RedisRateLimits(redis));
    }
    Ok(stores)
}

/// How long revocation-feed events are kept.
const FEED_RETENTION_SECS: i64 = 86_400;

/// Take the data directory's instance lock. Without Redis, an instance trusts that it is
/// the only one revoking sessions in its SQLite file (its cache is invalidated locally);
/// a second `tessera serve` on the same directory would break that silently, so it is
/// refused instead. (Administrative commands such as `tessera user add` need no lock.)
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let path = dir.join("tessera.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .mode(0o600)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another tessera serve is already using {}: several instances on one SQLite file need redis_url (or use database_url)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

impl Application {
    /// Open stores, load or create keys, bind `settings.listen`.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Self::build_on(listener, settings, clock).await
    }

    /// As [`Application::build`], on a listener bound by the caller (so that a test can
    /// know its address, and make it the public URL, before the server starts).
    pub async fn build_on(
        listener: TcpListener,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let instance_lock = if settings.single_writer() {
            Some(lock_data_dir(&settings.data_dir)?)
        } else {
            None
        };
        let stores = open_stores(&settings).await?;
        let mut policy = Policy::new(settings.public_url.clone(), settings.audience.clone());
        policy.leeway_secs = settings.jwt_leeway.as_secs() as i64;
        let key_policy = KeyPolicy {
            policy,
            algorithm: settings.signing_algorithm,
            hs256_secret: settings
                .hs256_secret
                .as_ref()
                .map(|s| Arc::from(s.0.as_bytes())),
            token_lifetime: (settings.access_token_ttl + settings.jwt_leeway).as_secs() as i64,
        };
        let keys = Keys::load_or_create(stores.keys.as_ref(), key_policy, clock.now())
            .await
            .context("loading signing keys")?;
        let passwords = Passwords::new(settings.hash_slots(), settings.hash_queue_timeout)
            .context("initialising password hashing")?;
        let revocations = crate::revocation::Revocations::load(
            &stores,
            clock.now(),
            settings.single_writer(),
            settings.revocation_staleness_bound,
            settings.revocation_fail_open,
        )
        .await
        .context("loading revocation state")?;
        let redis = match &settings.redis_url {
            Some(url) => Some(crate::bus::Redis::new(&url.0).context("redis_url")?),
            None => None,
        };
        let push = redis.clone().map(crate::bus::RedisPush::new);
        if let Some(p) = &push {
            revocations.set_push(p.clone());
        }
        let state = AppState::new(Inner {
            cookie_name: settings.cookie_name(),
            settings,
            stores,
            passwords,
            keys,
            clock,
            revocations,
            instance_lock,
            redis,
        });
        Ok(Self {
            listener,
            state,
            push,
        })
    }

    /// The bound address (with the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Shared state, for tests and the CLI.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; then stop accepting and finish in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let purge_state = self.state.clone();
        let mut key_stop = stop_rx.clone();
        let key_state = self.state.clone();
        // Re-read keys periodically: rotation by `tessera keys rotate` (or by another
        // instance) reaches this one without a restart, and keys move through their states.
        let key_reloader = tokio::spawn(async move {
            let mut tick = tokio::time::interval(key_state.settings.key_reload_interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = key_state.clock.now();
                        if let Err(e) = key_state.keys.reload(key_state.stores.keys.as_ref(), now).await {
                            tracing::warn!(error = ?e, "key reload failed; keeping the current keys");
                        }
                    }
                    _ = key_stop.changed() => break,
                }
            }
        });
        // Several instances: follow the revocation feed (behind the push channel, or alone).
        let poll_state = self.state.clone();
        let mut poll_stop = stop_rx.clone();
        let poller = tokio::spawn(async move {
            if poll_state.settings.single_writer() {
                return;
            }
            let mut tick = tokio::time::interval(poll_state.settings.revocation_poll_interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = poll_state.revocations.catch_up(&poll_state.stores).await {
                            tracing::warn!(error = ?e, "revocation feed poll failed");
                        }
                    }
                    _ = poll_stop.changed() => break,
                }
            }
        });
        let subscriber = self
            .push
            .map(|p| tokio::spawn(p.run(self.state.clone(), stop_rx.clone())));
        let purger = tokio::spawn(async move {
            let mut tick = tokio::time::interval(purge_state.settings.session_purge_interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = purge_state.clock.now();
                        purge_state.revocations.list.purge(now);
                        purge_state.revocations.sessions.purge(now);
                        // The feed is for instances catching up; a day covers any outage
                        // shorter than the staleness bound many times over.
                        if let Err(e) = purge_state.stores.revocations.prune_events(now - FEED_RETENTION_SECS).await {
                            tracing::warn!(error = ?e, "revocation feed prune failed");
                        }
                        match purge_state.stores.sessions.purge_expired_sessions(now).await {
                            Ok(n) if n > 0 => tracing::debug!(purged = n, "expired sessions purged"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = ?e, "session purge failed"),
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
        });
        let app = http::router(self.state);
        let result = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        let _ = stop_tx.send(true);
        let _ = purger.await;
        let _ = key_reloader.await;
        let _ = poller.await;
        if let Some(s) = subscriber {
            let _ = s.await;
        }
        result
    }
}
