//! One conformance suite for the store traits, run against every backend.
//!
//! `conformance!(module, async-expression-yielding Stores)` instantiates every test for a
//! backend. Add a line at the bottom for each new backend.

use tessera_core::store::{SessionRecord, SigningKeyRecord, StoreError, Stores, User};

pub fn user(name: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        username: name.into(),
        role: "user".into(),
        password_hash: "$argon2id$fake".into(),
        disabled: false,
        created_at: 1000,
    }
}

pub fn session(user_id: &str, hash: u8, now: i64, idle: i64, absolute: i64) -> SessionRecord {
    SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: vec![hash; 32],
        user_id: user_id.into(),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + idle,
        expires_at: now + absolute,
        user_agent: Some("ua".into()),
        ip: Some("127.0.0.1".into()),
    }
}

pub async fn users_roundtrip_and_unique_names(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    assert_eq!(
        s.users.user_by_name("alice").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(s.users.user_by_id(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.users.user_by_name("nobody").await.unwrap(), None);
    let err = s.users.create_user(&user("alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

pub async fn sessions_hide_expired_and_cap_renewal(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    let rec = session(&u.id, 1, 1000, 100, 500);
    s.sessions.create_session(&rec).await.unwrap();
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1000)
            .await
            .unwrap(),
        Some(rec.clone())
    );
    assert_eq!(s.sessions.load_session(&[9; 32], 1000).await.unwrap(), None);
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1100)
            .await
            .unwrap(),
        None,
        "idle-expired"
    );
    s.sessions.touch_session(&rec.id, 1090, 1190).await.unwrap();
    let t = s
        .sessions
        .load_session(&rec.token_hash, 1100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.last_seen_at, t.idle_expires_at), (1090, 1190));
    s.sessions.touch_session(&rec.id, 1450, 1550).await.unwrap();
    let t = s
        .sessions
        .load_session(&rec.token_hash, 1450)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.idle_expires_at, 1500,
        "renewal never passes the absolute expiry"
    );
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1500)
            .await
            .unwrap(),
        None,
        "absolute-expired"
    );
}

pub async fn sessions_delete_and_purge(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    let a = session(&u.id, 1, 1000, 100, 500);
    let b = session(&u.id, 2, 1000, 1000, 5000);
    s.sessions.create_session(&a).await.unwrap();
    s.sessions.create_session(&b).await.unwrap();
    assert_eq!(s.sessions.purge_expired_sessions(1200).await.unwrap(), 1);
    assert!(s.sessions.delete_session(&b.token_hash).await.unwrap());
    assert!(!s.sessions.delete_session(&b.token_hash).await.unwrap());
    assert_eq!(
        s.sessions.load_session(&b.token_hash, 1000).await.unwrap(),
        None
    );
}

pub async fn signing_keys_roundtrip(s: Stores) {
    assert!(s.keys.signing_keys().await.unwrap().is_empty());
    let k = |kid: &str, activates_at| SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_pem: "pem".into(),
        created_at: 5,
        activates_at,
    };
    s.keys.add_signing_key(&k("late", 50)).await.unwrap();
    s.keys.add_signing_key(&k("early", 10)).await.unwrap();
    assert_eq!(
        s.keys.signing_keys().await.unwrap(),
        vec![k("early", 10), k("late", 50)],
        "in order of activation"
    );
    assert!(matches!(
        s.keys.add_signing_key(&k("early", 10)).await,
        Err(StoreError::Conflict(_))
    ));
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn users_roundtrip_and_unique_names() {
                super::users_roundtrip_and_unique_names($make.await).await
            }
            #[tokio::test]
            async fn sessions_hide_expired_and_cap_renewal() {
                super::sessions_hide_expired_and_cap_renewal($make.await).await
            }
            #[tokio::test]
            async fn sessions_delete_and_purge() {
                super::sessions_delete_and_purge($make.await).await
            }
            #[tokio::test]
            async fn signing_keys_roundtrip() {
                super::signing_keys_roundtrip($make.await).await
            }
        }
    };
}

async fn sqlite() -> Stores {
    // The directory is leaked on purpose: it must outlive the pool, and the OS temp dir is
    // cleaned by the harness run, not by each test.
    let dir = tempfile::tempdir().unwrap().keep();
    Stores::sqlite(
        tessera_core::store::sqlite::SqliteStore::open(&dir)
            .await
            .unwrap(),
    )
}

conformance!(sqlite_backend, sqlite());

async fn postgres() -> Stores {
    let url = tessera_testkit::shared_postgres().database().await;
    Stores::postgres(
        tessera_core::store::postgres::PostgresStore::connect(&url)
            .await
            .unwrap(),
    )
}

conformance!(postgres_backend, postgres());

/// Throttling counters: atomic under concurrency, resettable. Run against every backend
/// that implements `RateLimitStore`, Redis included.
pub async fn rate_limits_count_atomically(s: Stores) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let rl = s.rate_limits.clone();
        tasks.push(tokio::spawn(async move {
            rl.hit("acct:alice", 900, 1000).await.unwrap().0
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u32>>(),
        "every hit got its own count"
    );
    let (_, start) = s.rate_limits.hit("acct:alice", 900, 1000).await.unwrap();
    assert!((100..=1000).contains(&start), "window start {start}");
    s.rate_limits.reset("acct:alice").await.unwrap();
    assert_eq!(
        s.rate_limits.hit("acct:alice", 900, 1000).await.unwrap().0,
        1
    );
    assert_eq!(
        s.rate_limits
            .hit("ip:127.0.0.1", 900, 1000)
            .await
            .unwrap()
            .0,
        1,
        "keys are independent"
    );
}

/// SQL backends take the window from `now`, so expiry is testable with a fake clock.
pub async fn rate_limit_windows_restart(s: Stores) {
    assert_eq!(s.rate_limits.hit("k", 100, 1000).await.unwrap(), (1, 1000));
    assert_eq!(s.rate_limits.hit("k", 100, 1099).await.unwrap(), (2, 1000));
    assert_eq!(s.rate_limits.hit("k", 100, 1100).await.unwrap(), (1, 1100));
}

pub async fn revocation_feed_is_ordered_and_resumable(s: Stores) {
    use tessera_core::store::RevocationEvent;
    assert_eq!(s.revocations.last_event_id().await.unwrap(), 0);
    let mut ids = Vec::new();
    for (kind, key) in [("jti", "j1"), ("family", "f1"), ("user", "u1")] {
        ids.push(
            s.revocations
                .append_event(&RevocationEvent {
                    id: 0,
                    kind: kind.into(),
                    key: key.into(),
                    expires_at: 5,
                })
                .await
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s.revocations.last_event_id().await.unwrap(), ids[2]);
    let after_first = s.revocations.events_since(ids[0], 10).await.unwrap();
    assert_eq!(
        after_first
            .iter()
            .map(|e| e.key.as_str())
            .collect::<Vec<_>>(),
        ["f1", "u1"]
    );
    assert_eq!(
        s.revocations.events_since(ids[0], 1).await.unwrap().len(),
        1
    );
}

mod sqlite_extra {
    use super::*;
    #[tokio::test]
    async fn rate_limits_count_atomically() {
        super::rate_limits_count_atomically(sqlite().await).await
    }
    #[tokio::test]
    async fn rate_limit_windows_restart() {
        super::rate_limit_windows_restart(sqlite().await).await
    }
    #[tokio::test]
    async fn revocation_feed_is_ordered_and_resumable() {
        super::revocation_feed_is_ordered_and_resumable(sqlite().await).await
    }
}

mod postgres_extra {
    use super::*;
    #[tokio::test]
    async fn rate_limits_count_atomically() {
        super::rate_limits_count_atomically(postgres().await).await
    }
    #[tokio::test]
    async fn rate_limit_windows_restart() {
        super::rate_limit_windows_restart(postgres().await).await
    }
    #[tokio::test]
    async fn revocation_feed_is_ordered_and_resumable() {
        super::revocation_feed_is_ordered_and_resumable(postgres().await).await
    }
}

mod redis_extra {
    use super::*;
    #[tokio::test]
    async fn rate_limits_count_atomically() {
        // Kept alive for the whole test binary; its watchdog stops it when the binary exits.
        let redis: &'static tessera_testkit::RedisServer =
            Box::leak(Box::new(tessera_testkit::RedisServer::start()));
        let mut stores = sqlite().await;
        stores.rate_limits = std::sync::Arc::new(tessera_core::redis::RedisRateLimits(
            tessera_core::redis::Redis::new(&redis.url()).unwrap(),
        ));
        super::rate_limits_count_atomically(stores).await
    }
}

async fn redis_sessions() -> Stores {
    // Kept alive for the whole test binary; its watchdog stops it when the binary exits.
    let redis: &'static tessera_testkit::RedisServer =
        Box::leak(Box::new(tessera_testkit::RedisServer::start()));
    let mut stores = sqlite().await;
    let r = tessera_core::redis::Redis::new(&redis.url()).unwrap();
    stores.sessions =
        std::sync::Arc::new(tessera_core::store::redis_sessions::RedisSessionStore::new(r));
    stores
}

conformance!(redis_sessions_backend, redis_sessions());
