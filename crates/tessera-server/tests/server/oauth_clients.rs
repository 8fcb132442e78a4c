//! Confidential clients: RFC 7009 revocation and RFC 7662 introspection.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn both_endpoints_require_client_authentication() {
    let app = TestApp::spawn().await;
    let c = app.add_client("rs").await;
    for path in ["/v1/revoke", "/v1/introspect"] {
        let res = app
            .client
            .post(app.url(path))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        let h = assert_error(res, 401, "invalid_client").await;
        // No Basic challenge for a request that did not try Basic: a browser would prompt
        // for credentials, then attach them to this site by itself.
        assert!(h.get("www-authenticate").is_none(), "{h:?}");
        let wrong = TestClient {
            id: c.id.clone(),
            secret: "not-the-secret".into(),
        };
        let h = assert_error(
            app.client_post(&wrong, path, &[("token", "x")]).await,
            401,
            "invalid_client",
        )
        .await;
        assert_eq!(h["www-authenticate"], r#"Basic realm="tessera""#);
        let unknown = TestClient {
            id: "c_nobody".into(),
            secret: c.secret.clone(),
        };
        assert_error(
            app.client_post(&unknown, path, &[("token", "x")]).await,
            401,
            "invalid_client",
        )
        .await;
        assert_error(app.client_post(&c, path, &[]).await, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn introspection_describes_live_tokens() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "admin").await;
    let c = app.add_client("rs").await;
    let pair = app.token_pair("alice").await;
    let a = app.introspect(&c, s(&pair["access_token"])).await;
    assert_eq!(a["active"], true);
    for (k, v) in [
        ("sub", json!(alice.id)),
        ("username", json!("alice")),
        ("role", json!("admin")),
        ("iss", json!(ISSUER)),
        ("aud", json!("tessera")),
        ("client_id", json!("tessera")),
        ("token_type", json!("Bearer")),
    ] {
        assert_eq!(a[k], v, "{k}");
    }
    for k in ["exp", "iat", "jti"] {
        assert!(!a[k].is_null(), "{k}");
    }
    let r = app.introspect(&c, s(&pair["refresh_token"])).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "refresh_token");
    assert_eq!(r["sub"], alice.id.as_str());
}

#[tokio::test]
async fn anything_not_currently_valid_is_exactly_inactive() {
    let app = TestApp::spawn().await;
    let other = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    other.add_user("alice", "user").await;
    let c = app.add_client("rs").await;
    let inactive = json!({"active": false});

    let foreign = other.access_token("alice").await;
    let spent = app.token_pair("alice").await;
    app.refresh(s(&spent["refresh_token"])).await;
    let revoked = app.token_pair("alice").await;
    app.client
        .post(app.url("/v1/logout"))
        .bearer_auth(s(&revoked["access_token"]))
        .send()
        .await
        .unwrap();
    let live = app.access_token("alice").await;
    let mut tampered = live.clone();
    tampered.replace_range(live.len() - 3.., "AAA");
    for token in [
        foreign.as_str(),
        s(&spent["refresh_token"]),
        s(&revoked["access_token"]),
        s(&revoked["refresh_token"]),
        tampered.as_str(),
        "garbage",
        "a.b.c",
        "",
    ] {
        assert_eq!(app.introspect(&c, token).await, inactive, "{token}");
    }
    assert_eq!(app.introspect(&c, &live).await["active"], true);
    app.clock.advance(301 + 30);
    assert_eq!(app.introspect(&c, &live).await, inactive, "expired");
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let c = app.add_client("mobile").await;
    let grant = |c: &TestClient| {
        let c = TestClient {
            id: c.id.clone(),
            secret: c.secret.clone(),
        };
        let app = &app;
        async move {
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
            res.json::<Value>().await.unwrap()
        }
    };
    // Access token: revoked alone.
    let p = grant(&c).await;
    let res = app
        .client_post(
            &c,
            "/v1/revoke",
            &[
                ("token", s(&p["access_token"])),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.me_with_bearer(s(&p["access_token"])).await.status(),
        401
    );
    // Refresh token with a wrong hint: the hint is only a hint. The family dies, and with it its access tokens.
    let p = grant(&c).await;
    let res = app
        .client_post(
            &c,
            "/v1/revoke",
            &[
                ("token", s(&p["refresh_token"])),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.client_post(
            &c,
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", s(&p["refresh_token"]))
            ]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        app.me_with_bearer(s(&p["access_token"])).await.status(),
        401
    );
    // Unknown tokens: 200, nothing happens.
    assert_eq!(
        app.client_post(&c, "/v1/revoke", &[("token", "unknown-token")])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.client_post(&c, "/v1/revoke", &[("token", "x.y.z")])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_tokens() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let owner = app.add_client("owner").await;
    let intruder = app.add_client("intruder").await;
    let res = app
        .client_post(
            &owner,
            "/v1/token",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let p: Value = res.json().await.unwrap();
    for token in [s(&p["refresh_token"]), s(&p["access_token"])] {
        let res = app
            .client_post(&intruder, "/v1/revoke", &[("token", token)])
            .await;
        assert_error(res, 400, "unauthorized_client").await;
    }
    assert_eq!(
        app.me_with_bearer(s(&p["access_token"])).await.status(),
        200
    );
    let res = app
        .client_post(
            &owner,
            "/v1/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", s(&p["refresh_token"])),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn metadata_lists_revocation_and_introspection() {
    let app = TestApp::spawn().await;
    let m: Value = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/v1/revoke"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{ISSUER}/v1/introspect")
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token"))
    );
}
