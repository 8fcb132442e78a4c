//! Many instances on shared stores (PostgreSQL + Redis), and their failure modes, with
//! real `postgres` and `redis-server` processes that the tests kill and restart.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_core::clock::Clock;
use tessera_server::config::Secret;

use crate::helpers::*;
use tessera_testkit::{PostgresServer, RedisServer, shared_postgres};

async fn instance(db: &str, redis: &RedisServer) -> TestApp {
    let (db, redis) = (db.to_owned(), redis.url());
    TestApp::spawn_with(move |s| {
        s.database_url = Some(Secret(db));
        s.redis_url = Some(Secret(redis));
        s.revocation_poll_interval = Duration::from_millis(200);
    })
    .await
}

/// Wait until `f` holds, or fail after `limit`; the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_connected(app: &TestApp) {
    within(
        Duration::from_secs(10),
        "push channel connected",
        || async { app.state.core.revocations.cache_usable() },
    )
    .await;
}

#[tokio::test]
async fn two_instances_behave_as_one_in_both_modes() {
    let redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    let b = instance(&db, &redis).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    let alice = a.add_user("alice", "user").await;
    let admin = a.add_user("root", "admin").await;
    let _ = admin;

    // A login on A works on B, in both modes; keys are shared.
    let cookie = a.session_cookie("alice").await;
    assert_eq!(b.me_with_cookie(&cookie).await.status(), 200);
    assert_eq!(
        a.me_with_cookie(&cookie).await.status(),
        200,
        "now cached on A"
    );
    let pair = a.token_pair("alice").await;
    assert_eq!(
        b.me_with_bearer(s(&pair["access_token"])).await.status(),
        200
    );
    assert_eq!(b.refresh(s(&pair["refresh_token"])).await.status(), 200);

    // Logout on B is enforced on A on the next request.
    let res = b
        .client
        .post(b.url("/v1/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 401);

    // Disable on B: A refuses the user's session and token.
    let cookie = a.session_cookie("alice").await;
    let token = a.access_token("alice").await;
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 200);
    let admin_cookie = b.session_cookie("root").await;
    let res = b
        .client
        .post(b.url(&format!("/v1/admin/users/{}/disable", alice.id)))
        .header("cookie", &admin_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 401);
    within(
        Duration::from_secs(2),
        "disabled user's token refused on A",
        || async { a.me_with_bearer(&token).await.status() == 401 },
    )
    .await;
}

#[tokio::test]
async fn revocation_reaches_the_other_instance_quickly() {
    let redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    let b = instance(&db, &redis).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    a.add_user("alice", "user").await;
    let mut delays = Vec::new();
    for _ in 0..10 {
        let token = a.access_token("alice").await;
        assert_eq!(a.me_with_bearer(&token).await.status(), 200);
        let res = b
            .client
            .post(b.url("/v1/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        delays.push(
            within(
                Duration::from_secs(2),
                "revocation on B refused on A",
                || async { a.me_with_bearer(&token).await.status() == 401 },
            )
            .await,
        );
    }
    delays.sort();
    eprintln!(
        "revocation delay B -> A over Redis pub/sub: median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test]
async fn without_the_push_channel_an_instance_reads_the_store_instead_of_trusting_its_cache() {
    let mut redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    let b = instance(&db, &redis).await;
    wait_connected(&a).await;
    a.add_user("alice", "user").await;
    let cookie = a.session_cookie("alice").await;
    let token = a.access_token("alice").await;
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 200, "cached on A");
    redis.kill();
    within(
        Duration::from_secs(5),
        "A notices the lost channel",
        || async { !a.state.core.revocations.cache_usable() },
    )
    .await;
    // Revoked on B while no push can reach A.
    assert_eq!(
        b.client
            .post(b.url("/v1/logout"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        b.client
            .post(b.url("/v1/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        a.me_with_cookie(&cookie).await.status(),
        401,
        "session: read from the store, not the stale cache"
    );
    within(
        Duration::from_secs(2),
        "token refused via the polled feed",
        || async { a.me_with_bearer(&token).await.status() == 401 },
    )
    .await;
    // The channel comes back by itself.
    redis.restart();
    wait_connected(&a).await;
}

#[tokio::test]
async fn redis_killed_under_load_logs_nobody_out() {
    let mut redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    wait_connected(&a).await;
    a.add_user("alice", "user").await;
    let cookie = a.session_cookie("alice").await;
    let token = a.access_token("alice").await;
    let load = |app: &TestApp| {
        let (client, url, cookie, token) = (
            app.client.clone(),
            app.url("/v1/me"),
            cookie.clone(),
            token.clone(),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                statuses.push(
                    client
                        .get(&url)
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16(),
                );
                statuses.push(
                    client
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16(),
                );
            }
            statuses
        })
    };
    let running = load(&a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    // Login needs the throttling counters in Redis: 503 with Retry-After, never 401.
    let res = within(
        Duration::from_secs(5),
        "login answers 503 while Redis is down",
        || async { a.login("alice", PASSWORD).await.status() == 503 },
    )
    .await;
    let _ = res;
    let h = assert_error(
        a.login("alice", PASSWORD).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert_eq!(h["retry-after"], "1");
    assert!(h.get("set-cookie").is_none(), "never a cleared cookie");
    let statuses = running.await.unwrap();
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "valid credentials kept working: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    // Redis returns: logins work again by themselves; nothing was lost.
    redis.restart();
    within(Duration::from_secs(10), "login recovers", || async {
        a.login("alice", PASSWORD).await.status() == 200
    })
    .await;
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 200);
    assert_eq!(a.me_with_bearer(&token).await.status(), 200);
}

#[tokio::test]
async fn postgres_killed_under_load_keeps_existing_credentials_working() {
    let mut pg = PostgresServer::start();
    let redis = RedisServer::start();
    let db = pg.database().await;
    let a = instance(&db, &redis).await;
    let b = instance(&db, &redis).await;
    wait_connected(&a).await;
    a.add_user("alice", "user").await;
    let cookie = a.session_cookie("alice").await;
    let unseen = a.session_cookie("alice").await; // never used on B
    let token = a.access_token("alice").await;
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 200);
    pg.kill();
    let mut statuses = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        statuses.push(a.me_with_cookie(&cookie).await.status().as_u16());
        statuses.push(a.me_with_bearer(&token).await.status().as_u16());
        statuses.push(b.me_with_bearer(&token).await.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200),
        "existing credentials kept working: {statuses:?}"
    );
    // What needs the database answers 503 — never 401.
    assert_error(
        a.login("alice", PASSWORD).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    let h = assert_error(
        b.me_with_cookie(&unseen).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert!(h.get("set-cookie").is_none());
    let ready = a.client.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        a.client
            .get(a.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Recovery is automatic.
    pg.restart();
    within(Duration::from_secs(15), "login recovers", || async {
        a.login("alice", PASSWORD).await.status() == 200
    })
    .await;
    assert_eq!(b.me_with_cookie(&unseen).await.status(), 200);
    assert_eq!(
        a.client
            .get(a.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn readiness_tells_the_truth_about_redis() {
    let mut redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    let ready: Value = a
        .client
        .get(a.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"ready": true, "database": true, "redis": true})
    );
    redis.kill();
    let res = a.client.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    redis.restart();
    within(Duration::from_secs(10), "ready again", || async {
        a.client
            .get(a.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
}

#[tokio::test]
async fn stale_revocation_state_fails_closed_after_the_bound_or_open_if_configured() {
    for fail_open in [false, true] {
        let mut pg = PostgresServer::start();
        let mut redis = RedisServer::start();
        let db = pg.database().await;
        let (url, rurl) = (db.clone(), redis.url());
        let a = TestApp::spawn_with(move |s| {
            s.database_url = Some(Secret(url));
            s.redis_url = Some(Secret(rurl));
            s.revocation_poll_interval = Duration::from_millis(100);
            s.revocation_staleness_bound = Duration::from_secs(1);
            s.revocation_fail_open = fail_open;
        })
        .await;
        wait_connected(&a).await;
        a.add_user("alice", "user").await;
        let token = a.access_token("alice").await;
        redis.kill();
        pg.kill();
        assert_eq!(
            a.me_with_bearer(&token).await.status(),
            200,
            "within the bound: last known state"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = a.me_with_bearer(&token).await.status();
        if fail_open {
            assert_eq!(status, 200, "fail open as configured");
        } else {
            let h = assert_error(
                a.me_with_bearer(&token).await,
                503,
                "temporarily_unavailable",
            )
            .await;
            assert_eq!(h["retry-after"], "1");
            assert_eq!(status, 503);
        }
    }
}

#[tokio::test]
async fn sessions_in_redis_survive_a_redis_crash_and_are_never_a_401_meanwhile() {
    let mut redis = RedisServer::start_durable();
    let db = shared_postgres().database().await;
    let (url, rurl) = (db.clone(), redis.url());
    let settings = move |s: &mut tessera_server::config::Settings| {
        s.database_url = Some(Secret(url.clone()));
        s.redis_url = Some(Secret(rurl.clone()));
        s.session_store = tessera_server::config::SessionBackend::Redis;
    };
    let a = TestApp::spawn_with(settings.clone()).await;
    let b = TestApp::spawn_with(settings).await;
    wait_connected(&a).await;
    a.add_user("alice", "user").await;
    let cookie = a.session_cookie("alice").await;
    assert_eq!(
        b.me_with_cookie(&cookie).await.status(),
        200,
        "shared through Redis"
    );
    // The record is in Redis, not in the SQL store.
    let hash = tessera_core::opaque::hash(cookie.split_once('=').unwrap().1);
    let sql = tessera_core::store::postgres::PostgresStore::connect(&db)
        .await
        .unwrap();
    use tessera_core::store::SessionStore;
    assert!(
        sql.load_session(&hash, a.clock.now())
            .await
            .unwrap()
            .is_none()
    );

    redis.kill();
    within(Duration::from_secs(5), "A notices", || async {
        !a.state.core.revocations.cache_usable()
    })
    .await;
    let h = assert_error(
        a.me_with_cookie(&cookie).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert!(h.get("set-cookie").is_none(), "never a cleared cookie");
    redis.restart();
    within(
        Duration::from_secs(10),
        "session back after the crash",
        || async { a.me_with_cookie(&cookie).await.status() == 200 },
    )
    .await;
    // B's command connection finds out about the restart on first use (one 503 at most),
    // then reconnects by itself; its logout reaches A.
    within(Duration::from_secs(10), "logout on B", || async {
        b.client
            .post(b.url("/v1/logout"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
            == 204
    })
    .await;
    assert_eq!(a.me_with_cookie(&cookie).await.status(), 401);
}

#[tokio::test]
async fn forged_channel_messages_are_dropped_and_counted() {
    let redis = RedisServer::start();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let url = redis.url();
    let app = TestApp::spawn_in(
        dir,
        tessera_core::clock::ManualClock::new(tessera_core::clock::SystemClock.now()),
        move |s| s.redis_url = Some(Secret(url)),
    )
    .await;
    wait_connected(&app).await;
    app.add_user("alice", "user").await;
    let token = app.access_token("alice").await;
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let forged = serde_json::json!({
        "id": 1_000_000, "kind": "jti", "key": claims["jti"], "expires_at": i64::MAX
    })
    .to_string();
    // Whoever can publish to Redis: a bare event (the old format), and one with a tag that
    // is not under the deployment's key.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for message in [forged.clone(), format!("AAAA.{forged}")] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("tessera:revocations")
            .arg(message)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let channel = app.state.core.push_channel().unwrap().clone();
    within(Duration::from_secs(5), "both messages rejected", || {
        let channel = channel.clone();
        async move { channel.rejected() >= 2 }
    })
    .await;
    assert_eq!(
        app.me_with_bearer(&token).await.status(),
        200,
        "a forged revocation was applied"
    );
    // A real revocation still goes through.
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.me_with_bearer(&token).await.status(), 401);
}

#[tokio::test]
async fn heartbeats_keep_an_idle_channel_trusted() {
    let redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    wait_connected(&a).await;
    // Longer than the channel's liveness window with no revocation at all: only the
    // heartbeats, round-tripped through Redis, show that the subscription is alive.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(a.state.core.revocations.cache_usable());
}

/// Values PostgreSQL cannot hold (a NUL byte in text) are the request's fault: a 4xx,
/// never a 500.
#[tokio::test]
async fn nul_bytes_from_outside_are_a_4xx_on_postgres() {
    let redis = RedisServer::start();
    let db = shared_postgres().database().await;
    let a = instance(&db, &redis).await;
    a.add_user("root", "admin").await;
    let admin = a.session_cookie("root").await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "c\0x:secret")
    );
    for path in ["/v1/introspect", "/v1/revoke", "/v1/token"] {
        let res = a
            .client
            .post(a.url(path))
            .header("authorization", &basic)
            .form(&[
                ("token", "x"),
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/sessions/%00"),
        (reqwest::Method::GET, "/v1/admin/audit?kind=%00"),
        (reqwest::Method::GET, "/v1/admin/users?after=%00"),
        (reqwest::Method::POST, "/v1/admin/users/%00/disable"),
    ] {
        let res = a
            .client
            .request(method, a.url(path))
            .header("cookie", &admin)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
    }
}
