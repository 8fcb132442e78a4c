//! The composition root: [`Application::build`] opens the stores (one Redis connection for
//! the process), loads keys, builds the [`Core`], binds the listener (port 0 in tests) and
//! returns a handle; [`Application::run_until`] serves until the shutdown future resolves,
//! then drains in-flight requests and stops the background loops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tessera_core::Core;
use tessera_core::clock::Clock;
use tessera_core::core::CoreParts;
use tessera_core::keys::Keys;
use tessera_core::password::Passwords;
use tessera_core::redis::{Redis, RedisRateLimits};
use tessera_core::revocation::Revocations;
use tessera_core::store::Stores;
use tessera_core::store::postgres::PostgresStore;
use tessera_core::store::redis_sessions::RedisSessionStore;
use tessera_core::store::sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::config::{SessionBackend, Settings};
use crate::http::{self, AppState, Inner};

/// A built, bound, not yet serving server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

/// Open the configured durable store (PostgreSQL when `database_url` is set, else SQLite
/// in `data_dir`); with `redis_url`, login throttling counts in Redis (and sessions live
/// there with `session_store = "redis"`). Returns the process's one Redis connection too.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<(Stores, Option<Redis>)> {
    let mut stores =
        match &settings.database_url {
            Some(url) => Stores::postgres(
                PostgresStore::connect(&url.0)
                    .await
                    .context("connecting to PostgreSQL (database_url)")?,
            ),
            None => Stores::sqlite(SqliteStore::open(&settings.data_dir).await.with_context(
                || format!("opening the database in {}", settings.data_dir.display()),
            )?),
        };
    let redis = match &settings.redis_url {
        Some(url) => Some(Redis::new(&url.0).context("redis_url")?),
        None => None,
    };
    if let Some(redis) = &redis {
        if settings.session_store == SessionBackend::Redis {
            stores.sessions = Arc::new(RedisSessionStore::new(redis.clone()));
        }
        stores.rate_limits = Arc::new(RedisRateLimits(redis.clone()));
    }
    Ok((stores, redis))
}

/// Open the stores and build a [`Core`] on them, for the server and for administrative
/// commands alike.
pub async fn build_core(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Core> {
    let (stores, redis) = open_stores(settings).await?;
    let keys = Keys::load_or_create(stores.keys.as_ref(), settings.key_policy(), clock.now())
        .await
        .context("loading signing keys")?;
    let passwords = Passwords::new(settings.hash_slots(), settings.hash_queue_timeout)
        .context("initialising password hashing")?;
    let revocations = Revocations::load(&stores, clock.now(), &settings.sync_policy())
        .await
        .context("loading revocation state")?;
    Core::new(CoreParts {
        stores,
        passwords,
        keys,
        clock,
        revocations,
        policy: settings.policy(),
        redis,
    })
    .await
    .context("setting up the revocation channel")
}

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
        let core = Arc::new(build_core(&settings, clock).await?);
        let state = AppState::new(Inner {
            core,
            cookie_name: settings.cookie_name(),
            settings,
            instance_lock,
        });
        Ok(Self { listener, state })
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
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let background = self
            .state
            .core
            .spawn_background(&self.state.settings.schedule(), stop_rx);
        let app = http::router(self.state);
        let result = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        let _ = stop_tx.send(true);
        for task in background {
            let _ = task.await;
        }
        result
    }
}
