//! Refresh tokens: rotation, reuse detection, the grace window, concurrency, lifetimes.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_password_grant_returns_a_refresh_token_that_rotates() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let first = app.token_pair("alice").await;
    let rt = s(&first["refresh_token"]);
    assert_eq!(rt.len(), 43, "256-bit opaque token");
    let res = app.refresh(rt).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let second: Value = res.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(
        app.me_with_bearer(s(&second["access_token"]))
            .await
            .status(),
        200
    );
    // The new refresh token works in turn.
    assert_eq!(app.refresh(s(&second["refresh_token"])).await.status(), 200);
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_hashed() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let pair = app.token_pair("alice").await;
    let rt = s(&pair["refresh_token"]).to_owned();
    let r2: Value = app.refresh(&rt).await.json().await.unwrap();
    let keep = app.dir.clone();
    app.stop().await;
    for entry in std::fs::read_dir(keep.path().join("data")).unwrap() {
        let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        for token in [rt.as_str(), s(&r2["refresh_token"])] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "refresh token in clear on disk"
            );
        }
    }
}

#[tokio::test]
async fn access_tokens_carry_their_family() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let pair = app.token_pair("alice").await;
    let client = app.add_client("rs").await;
    let a = app.introspect(&client, s(&pair["access_token"])).await;
    let r = app.introspect(&client, s(&pair["refresh_token"])).await;
    assert!(a["sid"].is_string());
    assert_eq!(a["sid"], r["sid"]);
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "user").await;
    let first = app.token_pair("alice").await;
    let old_rt = s(&first["refresh_token"]).to_owned();
    let second: Value = app.refresh(&old_rt).await.json().await.unwrap();
    app.clock.advance(11); // default grace is 10 s

    // The stolen old token is presented again.
    assert_error(app.refresh(&old_rt).await, 400, "invalid_grant").await;
    // The family is dead: the legitimate client's newest refresh token and its access
    // tokens (old and new) are refused.
    assert_error(
        app.refresh(s(&second["refresh_token"])).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_error(
        app.me_with_bearer(s(&second["access_token"])).await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        app.me_with_bearer(s(&first["access_token"])).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(
        app.audit_kinds(&alice.id)
            .await
            .contains(&"refresh_reuse_detected".to_string())
    );
    // Another login of the same user (another family) is untouched.
    let other = app.token_pair("alice").await;
    assert_eq!(
        app.me_with_bearer(s(&other["access_token"])).await.status(),
        200
    );
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_pair() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "user").await;
    let first = app.token_pair("alice").await;
    let rt = s(&first["refresh_token"]);
    let a: Value = app.refresh(rt).await.json().await.unwrap();
    app.clock.advance(5);
    let res = app.refresh(rt).await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(a, b, "the lost response is replayed, not a new pair");
    assert_eq!(
        app.me_with_bearer(s(&b["access_token"])).await.status(),
        200
    );
    assert!(
        !app.audit_kinds(&alice.id)
            .await
            .contains(&"refresh_reuse_detected".to_string())
    );
}

#[tokio::test]
async fn concurrent_refreshes_yield_one_pair_and_no_false_alarm() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "user").await;
    let first = app.token_pair("alice").await;
    let rt = s(&first["refresh_token"]).to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, rt) = (app.client.clone(), app.url("/v1/token"), rt.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        pairs.push(t.await.unwrap());
    }
    assert!(
        pairs.windows(2).all(|w| w[0] == w[1]),
        "all concurrent refreshes got the same pair"
    );
    assert_eq!(
        app.refresh(s(&pairs[0]["refresh_token"])).await.status(),
        200,
        "and it is live"
    );
    assert!(
        !app.audit_kinds(&alice.id)
            .await
            .contains(&"refresh_reuse_detected".to_string())
    );
}

#[tokio::test]
async fn families_have_idle_and_absolute_lifetimes() {
    let day = 86_400;
    let app = TestApp::spawn_with(|s| {
        s.refresh_idle_lifetime = std::time::Duration::from_secs(2 * 86_400);
        s.refresh_absolute_lifetime = std::time::Duration::from_secs(5 * 86_400);
    })
    .await;
    app.add_user("alice", "user").await;
    // Idle: unused for two days, the family ends.
    let idle = app.token_pair("alice").await;
    app.clock.advance(2 * day);
    assert_error(
        app.refresh(s(&idle["refresh_token"])).await,
        400,
        "invalid_grant",
    )
    .await;

    // Absolute: used every day, it still ends five days after login; the last access
    // token never outlives the family.
    let mut pair = app.token_pair("alice").await;
    for _ in 0..4 {
        app.clock.advance(day);
        let res = app.refresh(s(&pair["refresh_token"])).await;
        assert_eq!(res.status(), 200);
        pair = res.json().await.unwrap();
    }
    app.clock.advance(day - 60);
    let res = app.refresh(s(&pair["refresh_token"])).await;
    assert_eq!(res.status(), 200);
    let last: Value = res.json().await.unwrap();
    assert_eq!(
        last["expires_in"], 60,
        "capped at the family's absolute end"
    );
    app.clock.advance(60);
    assert_error(
        app.refresh(s(&last["refresh_token"])).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let c = app.add_client("mobile").await;
    let res = app
        .client_post(
            &c,
            "/v1/token",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    let rt = s(&pair["refresh_token"]);
    // Without the client's credentials (as the public client), the token is useless.
    assert_error(app.refresh(rt).await, 400, "invalid_grant").await;
    // A confidential client's id without its secret is refused outright.
    let res = app
        .client
        .post(app.url("/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", c.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let h = assert_error(res, 401, "invalid_client").await;
    assert!(
        h.get("www-authenticate").is_none(),
        "a Basic challenge for a request that did not try Basic: {h:?}"
    );
    let res = app
        .client_post(
            &c,
            "/v1/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(res.status(), 200);
}
