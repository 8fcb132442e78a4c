//! Sessions users can trust and control: remember-me, fixation, CSRF, self-service, admin,
//! the revocation table, throttling and the audit trail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

impl TestApp {
    async fn post_cookie(&self, cookie: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get_cookie(&self, cookie: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn remember_me_gives_a_persistent_longer_session() {
    let app = TestApp::spawn_with(|s| s.session_absolute_timeout = Duration::from_secs(3600)).await;
    app.add_user("alice", "user").await;
    let res = app
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD, "remember": true}),
        )
        .await;
    let long = set_cookie(res.headers()).unwrap();
    assert!(long.contains("Max-Age=2592000"), "{long}");
    let short = app.session_cookie("alice").await;
    let long = long.split(';').next().unwrap().to_owned();
    for _ in 0..2 {
        app.clock.advance(25 * 60);
        assert_eq!(app.me_with_cookie(&long).await.status(), 200);
        assert_eq!(app.me_with_cookie(&short).await.status(), 200);
    }
    app.clock.advance(25 * 60);
    assert_eq!(
        app.me_with_cookie(&long).await.status(),
        200,
        "remembered: beyond the absolute timeout"
    );
    assert_eq!(
        app.me_with_cookie(&short).await.status(),
        401,
        "not remembered: 1 h absolute timeout"
    );
}

#[tokio::test]
async fn csrf_refusals_and_acceptances() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    let post = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut r = app
            .client
            .post(app.url("/v1/logout-all"))
            .header("cookie", &cookie);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        r.send()
    };
    assert_error(
        post(Some("http://evil.example"), None).await.unwrap(),
        403,
        "csrf_rejected",
    )
    .await;
    assert_error(
        post(Some("null"), None).await.unwrap(),
        403,
        "csrf_rejected",
    )
    .await;
    assert_error(
        post(None, Some("cross-site")).await.unwrap(),
        403,
        "csrf_rejected",
    )
    .await;
    assert_error(
        post(Some(ISSUER), Some("same-site")).await.unwrap(),
        403,
        "csrf_rejected",
    )
    .await;
    assert_eq!(
        app.me_with_cookie(&cookie).await.status(),
        200,
        "nothing happened"
    );

    // HTML form posts with the cookie need the synchronizer token.
    let form = |token: Option<String>| {
        let mut r = app
            .client
            .post(app.url("/v1/logout"))
            .header("cookie", &cookie)
            .header("origin", ISSUER);
        let body = match token {
            Some(t) => format!("csrf_token={t}"),
            None => String::new(),
        };
        r = r
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        r.send()
    };
    assert_error(form(None).await.unwrap(), 403, "csrf_token_invalid").await;
    assert_error(
        form(Some("forged".into())).await.unwrap(),
        403,
        "csrf_token_invalid",
    )
    .await;
    let token: Value = app
        .get_cookie(&cookie, "/v1/csrf")
        .await
        .json()
        .await
        .unwrap();
    let token = s(&token["csrf_token"]).to_owned();
    // Another session's token does not fit this session.
    let other = app.session_cookie("alice").await;
    let other_token: Value = app
        .get_cookie(&other, "/v1/csrf")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other_token["csrf_token"], token.as_str());
    assert_error(
        form(Some(s(&other_token["csrf_token"]).to_owned()))
            .await
            .unwrap(),
        403,
        "csrf_token_invalid",
    )
    .await;
    assert_eq!(
        form(Some(token)).await.unwrap().status(),
        204,
        "same origin + right token"
    );

    // Same-origin JSON, and Bearer requests from anywhere, are accepted.
    let cookie = app.session_cookie("alice").await;
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .header("cookie", &cookie)
        .header("origin", ISSUER)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let at = app.access_token("alice").await;
    let res = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(&at)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// A browser that holds HTTP Basic credentials for the site attaches them to a cross-site
/// form post by itself: that must neither exempt the post from the CSRF checks nor let the
/// cookie authenticate it.
#[tokio::test]
async fn a_basic_authorization_header_neither_exempts_from_csrf_nor_falls_back_to_the_cookie() {
    let app = TestApp::spawn().await;
    let admin = app.add_user("root", "admin").await;
    let victim = app.add_user("alice", "user").await;
    let cookie = app.session_cookie("root").await;
    let basic = "Basic cm9vdDpzZWNyZXQ=";
    for path in [
        "/v1/logout-all".to_owned(),
        format!("/v1/admin/users/{}/disable", victim.id),
    ] {
        let res = app
            .client
            .post(app.url(&path))
            .header("cookie", &cookie)
            .header("authorization", basic)
            .header("origin", "http://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1")
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "csrf_rejected").await;
    }
    // Same origin, still not authenticated by the cookie when another scheme is sent.
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("cookie", &cookie)
        .header("authorization", basic)
        .send()
        .await
        .unwrap();
    let h = assert_error(res, 401, "unauthorized").await;
    assert_eq!(h["www-authenticate"], r#"Bearer realm="tessera""#);
    assert_eq!(
        app.me_with_cookie(&cookie).await.status(),
        200,
        "nothing happened"
    );
    let alice = app.session_cookie("alice").await;
    assert_eq!(
        app.me_with_cookie(&alice).await.status(),
        200,
        "alice not disabled"
    );
    let _ = admin;
}

#[tokio::test]
async fn cross_site_login_is_refused_and_no_origin_is_reflected() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let res = app
        .client
        .post(app.url("/v1/login"))
        .header("origin", "http://evil.example")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let h = assert_error(res, 403, "csrf_rejected").await;
    assert!(h.get("set-cookie").is_none());
    let cookie = app.session_cookie("alice").await;
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/me"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn users_list_and_end_their_own_sessions_only() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    app.add_user("bob", "user").await;
    let current = app.session_cookie("alice").await;
    let other = app.session_cookie("alice").await;
    let pair = app.token_pair("alice").await;
    let bob = app.session_cookie("bob").await;
    let list: Value = app
        .get_cookie(&current, "/v1/sessions")
        .await
        .json()
        .await
        .unwrap();
    let items = list["sessions"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.iter().filter(|i| i["current"] == true).count(), 1);
    assert_eq!(
        items
            .iter()
            .filter(|i| i["kind"] == "refresh_family")
            .count(),
        1
    );
    for i in items {
        for k in ["id", "created_at", "last_seen_at", "user_agent", "ip"] {
            assert!(i.get(k).is_some(), "{k}");
        }
    }
    let find = |kind: &str, current: bool| {
        items
            .iter()
            .find(|i| i["kind"] == kind && i["current"] == current)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let other_id = find("session", false);
    let family_id = find("refresh_family", false);

    // Bob cannot end Alice's session: 404, like an unknown id.
    let res = app
        .client
        .delete(app.url(&format!("/v1/sessions/{other_id}")))
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "not_found").await;
    assert_eq!(app.me_with_cookie(&other).await.status(), 200);
    let res = app
        .client
        .delete(app.url("/v1/sessions/no-such-id"))
        .header("cookie", &current)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Alice ends her other session and her JWT login.
    for id in [&other_id, &family_id] {
        let res = app
            .client
            .delete(app.url(&format!("/v1/sessions/{id}")))
            .header("cookie", &current)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    assert_eq!(app.me_with_cookie(&other).await.status(), 401);
    assert_eq!(
        app.me_with_bearer(s(&pair["access_token"])).await.status(),
        401
    );
    assert_eq!(app.refresh(s(&pair["refresh_token"])).await.status(), 400);
    assert_eq!(app.me_with_cookie(&current).await.status(), 200);
}

#[tokio::test]
async fn password_change_ends_the_others_but_not_the_current_and_rotates_the_cookie() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let current = app.session_cookie("alice").await;
    let other = app.session_cookie("alice").await;
    let pair = app.token_pair("alice").await;
    let body =
        json!({"current_password": "wrong password", "new_password": "a brand new password"});
    assert_error(
        app.post_cookie(&current, "/v1/password", body).await,
        400,
        "invalid_current_password",
    )
    .await;
    let body = json!({"current_password": PASSWORD, "new_password": "a brand new password"});
    let res = app.post_cookie(&current, "/v1/password", body).await;
    assert_eq!(res.status(), 204);
    let rotated = cookie_pair(res.headers()).unwrap();
    assert_ne!(rotated, current, "new session token at privilege change");
    assert_eq!(
        app.me_with_cookie(&rotated).await.status(),
        200,
        "the caller stays logged in"
    );
    assert_eq!(
        app.me_with_cookie(&current).await.status(),
        401,
        "the old token of the current session is dead"
    );
    assert_eq!(app.me_with_cookie(&other).await.status(), 401);
    assert_eq!(
        app.me_with_bearer(s(&pair["access_token"])).await.status(),
        401
    );
    assert_eq!(app.refresh(s(&pair["refresh_token"])).await.status(), 400);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("alice", "a brand new password").await.status(),
        200
    );

    // Through a JWT: the caller's family survives, the rest does not.
    let mine = app.token_pair_with("alice", "a brand new password").await;
    let theirs = app.token_pair_with("alice", "a brand new password").await;
    let res = app
        .client
        .post(app.url("/v1/password"))
        .bearer_auth(s(&mine["access_token"]))
        .json(
            &json!({"current_password": "a brand new password", "new_password": "third password!"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.me_with_bearer(s(&mine["access_token"])).await.status(),
        200
    );
    assert_eq!(app.refresh(s(&mine["refresh_token"])).await.status(), 200);
    assert_eq!(
        app.me_with_bearer(s(&theirs["access_token"]))
            .await
            .status(),
        401
    );
}

impl TestApp {
    async fn token_pair_with(&self, name: &str, password: &str) -> Value {
        let res = self.password_grant(name, password).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn admin(&self) -> String {
        self.add_user("root", "admin").await;
        self.session_cookie("root").await
    }
}

/// Credentials of every kind for one user.
struct Creds {
    cookie: String,
    access: String,
    refresh: String,
}

async fn creds(app: &TestApp, name: &str) -> Creds {
    let pair = app.token_pair(name).await;
    Creds {
        cookie: app.session_cookie(name).await,
        access: s(&pair["access_token"]).into(),
        refresh: s(&pair["refresh_token"]).into(),
    }
}

async fn alive(app: &TestApp, c: &Creds) -> [bool; 3] {
    [
        app.me_with_cookie(&c.cookie).await.status() == 200,
        app.me_with_bearer(&c.access).await.status() == 200,
        app.refresh(&c.refresh).await.status() == 200,
    ]
}

/// One revocation path, one table: each event against each kind of credential.
#[tokio::test]
async fn the_revocation_table() {
    let events = [
        "logout_all",
        "password_change",
        "role_change",
        "disable",
        "admin_revoke",
    ];
    for event in events {
        let app = TestApp::spawn().await;
        let admin = app.admin().await;
        let alice = app.add_user("alice", "user").await;
        let bystander_user = app.add_user("bob", "user").await;
        let victim = creds(&app, "alice").await;
        let bystander = creds(&app, "bob").await;
        let acting = app.session_cookie("alice").await; // the session making the change, where the user acts
        let id = &alice.id;
        let res = match event {
            "logout_all" => app.post_cookie(&acting, "/v1/logout-all", json!({})).await,
            "password_change" => {
                app.post_cookie(
                    &acting,
                    "/v1/password",
                    json!({"current_password": PASSWORD, "new_password": "another password"}),
                )
                .await
            }
            "role_change" => {
                app.post_cookie(
                    &admin,
                    &format!("/v1/admin/users/{id}/role"),
                    json!({"role": "auditor"}),
                )
                .await
            }
            "disable" => {
                app.post_cookie(&admin, &format!("/v1/admin/users/{id}/disable"), json!({}))
                    .await
            }
            _ => {
                app.post_cookie(&admin, &format!("/v1/admin/users/{id}/revoke"), json!({}))
                    .await
            }
        };
        assert!(res.status().is_success(), "{event}: {}", res.status());
        assert_eq!(
            alive(&app, &victim).await,
            [false, false, false],
            "{event}: session, access token, refresh token all refused"
        );
        assert_eq!(
            alive(&app, &bystander).await,
            [true, true, true],
            "{event}: other users untouched"
        );
        let _ = bystander_user;
        let relogin = app
            .login(
                "alice",
                if event == "password_change" {
                    "another password"
                } else {
                    PASSWORD
                },
            )
            .await
            .status();
        assert_eq!(
            relogin == 200,
            event != "disable",
            "{event}: can log in again unless disabled"
        );
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere_and_can_be_re_enabled() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.add_user("alice", "user").await;
    let c = creds(&app, "alice").await;
    assert_eq!(
        app.post_cookie(
            &admin,
            &format!("/v1/admin/users/{}/disable", alice.id),
            json!({})
        )
        .await
        .status(),
        204
    );
    assert_eq!(alive(&app, &c).await, [false, false, false]);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 401);
    assert_eq!(app.password_grant("alice", PASSWORD).await.status(), 400);
    assert_eq!(
        app.post_cookie(
            &admin,
            &format!("/v1/admin/users/{}/enable", alice.id),
            json!({})
        )
        .await
        .status(),
        204
    );
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(
        alive(&app, &c).await,
        [false, false, false],
        "old credentials stay dead"
    );
}

#[tokio::test]
async fn role_change_takes_effect_with_fresh_credentials() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.add_user("alice", "user").await;
    let res = app
        .post_cookie(
            &admin,
            &format!("/v1/admin/users/{}/role", alice.id),
            json!({"role": "auditor"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookie = app.session_cookie("alice").await;
    let me: Value = app.me_with_cookie(&cookie).await.json().await.unwrap();
    assert_eq!(me["role"], "auditor");
    let me: Value = app
        .me_with_bearer(&app.access_token("alice").await)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "auditor");
    assert_error(
        app.post_cookie(
            &admin,
            &format!("/v1/admin/users/{}/role", alice.id),
            json!({"role": "Bad Role"}),
        )
        .await,
        400,
        "invalid_role",
    )
    .await;
    assert_error(
        app.post_cookie(
            &admin,
            "/v1/admin/users/nobody/role",
            json!({"role": "user"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_role() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.add_user("alice", "user").await;
    let cookie = app.session_cookie("alice").await;
    for path in ["/v1/admin/users", "/v1/admin/audit"] {
        let h = assert_error(app.get_cookie(&cookie, path).await, 403, "admin_required").await;
        assert!(
            h.get("www-authenticate").is_none(),
            "no challenge for a cookie"
        );
    }
    // A valid bearer token that may not do this: RFC 6750 §3.1 insufficient_scope.
    let token = app.access_token("alice").await;
    let res = app
        .client
        .get(app.url("/v1/admin/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let h = assert_error(res, 403, "admin_required").await;
    assert_eq!(
        h["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope""#
    );
    assert_error(
        app.post_cookie(
            &cookie,
            &format!("/v1/admin/users/{}/role", alice.id),
            json!({"role": "admin"}),
        )
        .await,
        403,
        "admin_required",
    )
    .await;
    assert_eq!(
        app.client
            .get(app.url("/v1/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for name in ["carol", "dave", "erin"] {
        app.add_user(name, "user").await;
    }
    let page: Value = app
        .get_cookie(&admin, "/v1/admin/users?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| s(&u["username"]))
        .collect();
    assert_eq!(names, ["alice", "carol"]);
    assert!(page["users"][0].get("password_hash").is_none());
    let page: Value = app
        .get_cookie(
            &admin,
            &format!("/v1/admin/users?limit=2&after={}", s(&page["next"])),
        )
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| s(&u["username"]))
        .collect();
    assert_eq!(names, ["dave", "erin"]);
}

#[tokio::test]
async fn throttling_hits_real_and_unknown_accounts_alike() {
    let app = TestApp::spawn_with(|s| {
        s.login_throttle_account = 3;
        s.login_throttle_ip = 1000;
    })
    .await;
    app.add_user("alice", "user").await;
    for name in ["alice", "mallory"] {
        for _ in 0..3 {
            assert_eq!(app.login(name, "wrong password").await.status(), 401);
        }
        let res = app.login(name, "wrong password").await;
        let h = assert_error(res, 429, "too_many_requests").await;
        let retry: i64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        // Even the right password waits: the account is throttled, not the guess.
        assert_eq!(app.login(name, PASSWORD).await.status(), 429);
        assert_eq!(app.password_grant(name, PASSWORD).await.status(), 429);
    }
    // The window passes; a success resets the count.
    app.clock.advance(15 * 60);
    assert_eq!(app.login("alice", "wrong password").await.status(), 401);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(app.login("alice", "wrong password").await.status(), 401);
    }
}

#[tokio::test]
async fn parallel_attempts_cannot_exceed_the_limit() {
    let app = TestApp::spawn_with(|s| {
        s.login_throttle_account = 5;
        s.max_concurrent_hashes = Some(4);
    })
    .await;
    app.add_user("alice", "user").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/v1/login"));
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": "alice", "password": "wrong password"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 401).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 15, "{codes:?}");
}

#[tokio::test]
async fn ip_throttling_believes_forwarded_for_only_from_trusted_proxies() {
    let untrusted = TestApp::spawn_with(|s| s.login_throttle_ip = 3).await;
    for i in 0..3 {
        let res = untrusted
            .client
            .post(untrusted.url("/v1/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"username": format!("user{i}"), "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = untrusted
        .client
        .post(untrusted.url("/v1/login"))
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({"username": "user9", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        429,
        "a spoofed X-Forwarded-For does not escape the per-IP limit"
    );

    let behind_proxy = TestApp::spawn_with(|s| {
        s.login_throttle_ip = 3;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for i in 0..6 {
        let res = behind_proxy
            .client
            .post(behind_proxy.url("/v1/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"username": format!("user{i}"), "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            401,
            "distinct clients behind a trusted proxy are counted apart"
        );
    }
}

#[tokio::test]
async fn audit_rows_for_each_event_without_secrets() {
    let app = TestApp::spawn_with(|s| s.login_throttle_account = 2).await;
    let admin = app.admin().await;
    let alice = app.add_user("alice", "user").await;
    let bob = app.add_user("bob", "user").await;
    let cookie = app.session_cookie("alice").await;
    app.login("alice", "a wrong guess!").await;
    app.login("bob", "bob wrong guess").await;
    app.login("bob", "bob wrong guess").await;
    app.login("bob", "bob wrong guess").await; // throttled
    let pair = app.token_pair("alice").await;
    app.refresh(s(&pair["refresh_token"])).await;
    app.clock.advance(60);
    app.refresh(s(&pair["refresh_token"])).await; // reuse
    let c = app.add_client("rs").await;
    let fresh: Value = app
        .client_post(
            &c,
            "/v1/token",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.client_post(&c, "/v1/revoke", &[("token", s(&fresh["access_token"]))])
            .await
            .status(),
        200
    );
    let to_logout = app.session_cookie("alice").await;
    assert_eq!(
        app.client
            .post(app.url("/v1/logout"))
            .header("cookie", &to_logout)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    app.post_cookie(
        &cookie,
        "/v1/password",
        json!({"current_password": PASSWORD, "new_password": "my new secret pw"}),
    )
    .await;
    app.post_cookie(
        &admin,
        &format!("/v1/admin/users/{}/role", bob.id),
        json!({"role": "auditor"}),
    )
    .await;
    app.post_cookie(
        &admin,
        &format!("/v1/admin/users/{}/disable", bob.id),
        json!({}),
    )
    .await;
    assert_ne!(app.login("bob", PASSWORD).await.status(), 200);

    let all: Value = app
        .get_cookie(&admin, "/v1/admin/audit?limit=200")
        .await
        .json()
        .await
        .unwrap();
    let text = all.to_string();
    let kinds: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["kind"]))
        .collect();
    for kind in [
        "login",
        "login_failed",
        "logout",
        "login_throttled",
        "refresh_reuse_detected",
        "revoke",
        "password_change",
        "role_change",
        "user_disabled",
        "credentials_revoked",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    for secret in [
        PASSWORD,
        "a wrong guess!",
        "my new secret pw",
        s(&pair["refresh_token"]),
        s(&fresh["access_token"]),
        &cookie[cookie.find('=').unwrap() + 1..],
    ] {
        assert!(!text.contains(secret), "secret in the audit trail");
    }
    // Filters and pagination.
    let alice_only: Value = app
        .get_cookie(&admin, &format!("/v1/admin/audit?user={}", alice.id))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        alice_only["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == alice.id.as_str())
    );
    let logins: Value = app
        .get_cookie(&admin, "/v1/admin/audit?kind=login&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logins["events"].as_array().unwrap().len(), 1);
    let next = logins["next"].as_i64().unwrap();
    let older: Value = app
        .get_cookie(
            &admin,
            &format!("/v1/admin/audit?kind=login&limit=1&before={next}"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(older["events"][0]["id"].as_i64().unwrap() < next);
    assert!(
        older["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "login")
    );
}

#[tokio::test]
async fn signups_are_throttled_per_client_ip() {
    let app = TestApp::spawn_with(|s| s.login_throttle_ip = 3).await;
    for i in 0..3 {
        let res = app
            .post_json(
                "/v1/signup",
                json!({"username": format!("user{i}"), "password": "long enough"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let res = app
        .post_json(
            "/v1/signup",
            json!({"username": "user9", "password": "long enough"}),
        )
        .await;
    let h = assert_error(res, 429, "too_many_requests").await;
    assert!(h.get("retry-after").is_some());
    assert!(
        app.state
            .core
            .stores
            .users
            .user_by_name("user9")
            .await
            .unwrap()
            .is_none(),
        "nothing created"
    );
}

#[tokio::test]
async fn malformed_query_strings_get_json_400s() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for path in [
        "/v1/admin/users?limit=abc",
        "/v1/admin/audit?before=x",
        "/v1/admin/users?limit=-1",
    ] {
        assert_error(app.get_cookie(&admin, path).await, 400, "invalid_request").await;
    }
    let res = app
        .client
        .delete(app.url("/v1/sessions/%FF%FE"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn a_password_change_keeps_a_remember_me_cookie_persistent() {
    let app = TestApp::spawn_with(|s| s.session_absolute_timeout = Duration::from_secs(3600)).await;
    app.add_user("alice", "user").await;
    let res = app
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": PASSWORD, "remember": true}),
        )
        .await;
    let long = set_cookie(res.headers()).unwrap();
    let long = long.split(';').next().unwrap().to_owned();
    app.clock.advance(100);
    let body = json!({"current_password": PASSWORD, "new_password": "a brand new password"});
    let res = app.post_cookie(&long, "/v1/password", body).await;
    assert_eq!(res.status(), 204);
    let rotated = set_cookie(res.headers()).unwrap();
    assert!(
        rotated.contains(&format!("Max-Age={}", 2_592_000 - 100)),
        "a remembered session lost its persistent cookie: {rotated}"
    );
    // An ordinary session stays a browser-session cookie.
    let res = app
        .post_json(
            "/v1/login",
            json!({"username": "alice", "password": "a brand new password"}),
        )
        .await;
    let short = cookie_pair(res.headers()).unwrap();
    let body = json!({"current_password": "a brand new password", "new_password": PASSWORD});
    let res = app.post_cookie(&short, "/v1/password", body).await;
    assert_eq!(res.status(), 204);
    assert!(!set_cookie(res.headers()).unwrap().contains("Max-Age"));
}
