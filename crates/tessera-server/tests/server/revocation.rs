//! Logout in JWT mode, logout-all in both modes, and revocation surviving a restart.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn jwt_logout_refuses_the_same_token_on_the_next_request() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let pair = app.token_pair("alice").await;
    let at = s(&pair["access_token"]);
    assert_eq!(app.me_with_bearer(at).await.status(), 200);
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_error(app.me_with_bearer(at).await, 401, "invalid_token").await;
    // Its family is gone too: the refresh token no longer works.
    assert_error(
        app.refresh(s(&pair["refresh_token"])).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn jwt_logout_leaves_other_logins_alone() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let phone = app.token_pair("alice").await;
    let laptop = app.token_pair("alice").await;
    let cookie = app.session_cookie("alice").await;
    app.client
        .post(app.url("/v1/logout"))
        .bearer_auth(s(&phone["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.me_with_bearer(s(&laptop["access_token"]))
            .await
            .status(),
        200
    );
    assert_eq!(app.refresh(s(&laptop["refresh_token"])).await.status(), 200);
    assert_eq!(app.me_with_cookie(&cookie).await.status(), 200);
}

#[tokio::test]
async fn logout_all_ends_everything_in_both_modes() {
    for via_session in [true, false] {
        let app = TestApp::spawn().await;
        app.add_user("alice", "user").await;
        app.add_user("bob", "user").await;
        let c1 = app.session_cookie("alice").await;
        let c2 = app.session_cookie("alice").await;
        let p1 = app.token_pair("alice").await;
        let p2 = app.token_pair("alice").await;
        let bob = app.token_pair("bob").await;
        let req = app.client.post(app.url("/v1/logout-all"));
        let req = if via_session {
            req.header("cookie", &c1)
        } else {
            req.bearer_auth(s(&p1["access_token"]))
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 204);
        if via_session {
            assert!(set_cookie(res.headers()).unwrap().contains("Max-Age=0"));
        }
        for c in [&c1, &c2] {
            assert_eq!(app.me_with_cookie(c).await.status(), 401);
        }
        for p in [&p1, &p2] {
            assert_eq!(
                app.me_with_bearer(s(&p["access_token"])).await.status(),
                401
            );
            assert_eq!(app.refresh(s(&p["refresh_token"])).await.status(), 400);
        }
        assert_eq!(
            app.me_with_bearer(s(&bob["access_token"])).await.status(),
            200,
            "other users untouched"
        );
        // Logging in again afterwards works at once.
        let fresh = app.token_pair("alice").await;
        assert_eq!(
            app.me_with_bearer(s(&fresh["access_token"])).await.status(),
            200
        );
        assert_eq!(
            app.me_with_cookie(&app.session_cookie("alice").await)
                .await
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let first = TestApp::spawn().await;
    first.add_user("alice", "user").await;
    first.add_user("bob", "user").await;
    let logged_out = first.token_pair("alice").await;
    first
        .client
        .post(first.url("/v1/logout"))
        .bearer_auth(s(&logged_out["access_token"]))
        .send()
        .await
        .unwrap();
    let everywhere = first.token_pair("bob").await;
    first
        .client
        .post(first.url("/v1/logout-all"))
        .bearer_auth(s(&everywhere["access_token"]))
        .send()
        .await
        .unwrap();
    let (dir, clock) = (first.dir.clone(), first.clock.clone());
    first.stop().await;
    let second = TestApp::spawn_in(dir, clock, |_| {}).await;
    assert_eq!(
        second
            .me_with_bearer(s(&logged_out["access_token"]))
            .await
            .status(),
        401
    );
    assert_eq!(
        second
            .me_with_bearer(s(&everywhere["access_token"]))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let at = app.access_token("alice").await;
    let res = app
        .client
        .get(app.url(&format!("/v1/me?access_token={at}")))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
    let res = app
        .client
        .get(app.url(&format!("/v1/me?access_token={at}")))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
    let res: Value = app.me_with_bearer(&at).await.json().await.unwrap();
    assert_eq!(res["auth"], "jwt");
}
