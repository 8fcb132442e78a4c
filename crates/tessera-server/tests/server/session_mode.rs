//! Session mode: login, cookie, /v1/me, logout, timeouts, tokens at rest.

use base64::Engine;
use serde_json::Value;
use tessera_core::clock::Clock;

use crate::helpers::*;

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_me_answers_for_it() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "admin").await;
    let res = app.login("alice", PASSWORD).await;
    assert_eq!(res.status(), 200);
    let cookie = set_cookie(res.headers()).unwrap();
    assert!(cookie.starts_with("tessera_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure on an http public URL: {cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], alice.id.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["role"], "admin");

    let pair = cookie.split(';').next().unwrap().to_owned();
    let res = app.me_with_cookie(&pair).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": alice.id, "username": "alice", "role": "admin", "auth": "session"})
    );
}

#[tokio::test]
async fn login_accepts_a_form_body() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(cookie_pair(res.headers()).is_some());
}

#[tokio::test]
async fn https_public_url_gives_secure_host_prefixed_cookie() {
    let app = TestApp::spawn_with(|s| s.public_url = "https://auth.example.com".into()).await;
    app.add_user("alice", "user").await;
    let res = app.login("alice", PASSWORD).await;
    let cookie = set_cookie(res.headers()).unwrap();
    assert!(cookie.starts_with("__Host-tessera_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
}

#[tokio::test]
async fn logout_deletes_the_session_and_clears_the_cookie() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared = set_cookie(res.headers()).unwrap();
    assert!(cleared.starts_with("tessera_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie is dead server-side, whoever kept a copy.
    let res = app.me_with_cookie(&cookie).await;
    let h = assert_error(res, 401, "unauthorized").await;
    assert_eq!(h["www-authenticate"], r#"Bearer realm="tessera""#);
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn every_login_gets_a_fresh_token_and_ignores_a_presented_cookie() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let first = app.session_cookie("alice").await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("cookie", &first)
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let second = cookie_pair(res.headers()).unwrap();
    assert_ne!(first, second);
    // An attacker-chosen cookie value is never adopted.
    let planted = "tessera_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("cookie", planted)
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_ne!(cookie_pair(res.headers()).unwrap(), planted);
    assert_eq!(app.me_with_cookie(planted).await.status(), 401);
}

#[tokio::test]
async fn session_tokens_have_256_bits_and_are_stored_only_hashed() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    assert_eq!(raw.len(), 32);
    let keep = app.dir.clone();
    let dir = keep.path().join("data");
    let state = app.state.clone();
    app.stop().await;
    // Neither the token text nor its raw bytes appear anywhere in the database files.
    for entry in std::fs::read_dir(&dir).unwrap() {
        // The WAL may be checkpointed away between listing and reading.
        let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        assert!(!bytes.windows(32).any(|w| w == raw.as_slice()));
    }
    let hash = tessera_core::opaque::hash(&token);
    let now = state.core.clock.now();
    assert!(
        state
            .core
            .stores
            .sessions
            .load_session(&hash, now)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn idle_timeout_ends_an_unused_session() {
    let app = TestApp::spawn_with(|s| {
        s.session_idle_timeout = std::time::Duration::from_secs(600);
        s.session_touch_interval = std::time::Duration::from_secs(60);
    })
    .await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    app.clock.advance(599);
    assert_eq!(
        app.me_with_cookie(&cookie).await.status(),
        200,
        "used just in time: renewed"
    );
    app.clock.advance(599);
    assert_eq!(
        app.me_with_cookie(&cookie).await.status(),
        200,
        "renewal slid the idle deadline"
    );
    app.clock.advance(600);
    assert_eq!(
        app.me_with_cookie(&cookie).await.status(),
        401,
        "idle for the whole timeout"
    );
}

#[tokio::test]
async fn absolute_timeout_ends_even_an_active_session() {
    let app = TestApp::spawn_with(|s| {
        s.session_idle_timeout = std::time::Duration::from_secs(600);
        s.session_absolute_timeout = std::time::Duration::from_secs(3600);
    })
    .await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    for _ in 0..7 {
        app.clock.advance(500);
        assert_eq!(app.me_with_cookie(&cookie).await.status(), 200);
    }
    app.clock.advance(100); // 3600 s after login
    assert_eq!(app.me_with_cookie(&cookie).await.status(), 401);
}

#[tokio::test]
async fn renewal_writes_at_most_once_per_touch_interval() {
    let app =
        TestApp::spawn_with(|s| s.session_touch_interval = std::time::Duration::from_secs(60))
            .await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    let hash = tessera_core::opaque::hash(cookie.split_once('=').unwrap().1);
    let load = || async {
        app.state
            .core
            .stores
            .sessions
            .load_session(&hash, app.clock.now())
            .await
            .unwrap()
            .unwrap()
    };
    let created = load().await.last_seen_at;
    app.clock.advance(30);
    app.me_with_cookie(&cookie).await;
    assert_eq!(
        load().await.last_seen_at,
        created,
        "no write within the interval"
    );
    app.clock.advance(30);
    app.me_with_cookie(&cookie).await;
    assert_eq!(
        load().await.last_seen_at,
        created + 60,
        "one write once the interval passed"
    );
}

#[tokio::test]
async fn expired_sessions_are_purged_in_the_background() {
    let app =
        TestApp::spawn_with(|s| s.session_purge_interval = std::time::Duration::from_millis(50))
            .await;
    app.add_user("alice", "user").await;
    app.session_cookie("alice").await;
    app.clock.advance(31 * 60);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Nothing left for an explicit purge to delete: the background task got there first.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let left = app
            .state
            .core
            .stores
            .sessions
            .purge_expired_sessions(app.clock.now())
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        // (a purge we just did ourselves does not count: try again on a fresh session)
        app.clock.advance(-31 * 60);
        app.session_cookie("alice").await;
        app.clock.advance(31 * 60);
        assert!(
            std::time::Instant::now() < deadline,
            "background purge never ran"
        );
    }
}

#[tokio::test]
async fn a_session_token_anywhere_but_the_cookie_is_ignored() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    let token = cookie.split_once('=').unwrap().1;
    assert_eq!(app.me_with_bearer(token).await.status(), 401);
    let res = app
        .client
        .get(app.url(&format!("/v1/me?tessera_session={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("x-session-id", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
