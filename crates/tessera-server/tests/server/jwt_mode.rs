//! JWT mode: the password grant, the token's shape, /v1/me with Bearer, JWKS, metadata.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_core::clock::Clock;
use tessera_verify::{KeySet, Policy, Verifier};

use crate::helpers::*;

fn decode_segment(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

#[tokio::test]
async fn password_grant_returns_an_rfc9068_access_token() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "admin").await;
    let res = app.password_grant("alice", PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();

    let header = decode_segment(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());

    let claims = decode_segment(token, 1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], alice.id.as_str());
    assert_eq!(claims["aud"], "tessera");
    assert_eq!(claims["role"], "admin");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    assert!(claims["client_id"].is_string());

    let res = app.me_with_bearer(token).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": alice.id, "username": "alice", "role": "admin", "auth": "jwt"})
    );
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let token = app.access_token("alice").await;
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("authorization", format!("bEaReR {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn each_token_has_its_own_jti() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let a = decode_segment(&app.access_token("alice").await, 1);
    let b = decode_segment(&app.access_token("alice").await, 1);
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn expired_tokens_are_refused_with_invalid_token() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let token = app.access_token("alice").await;
    app.clock.advance(300 + 29);
    assert_eq!(
        app.me_with_bearer(&token).await.status(),
        200,
        "within the 30 s leeway"
    );
    app.clock.advance(1);
    let h = assert_error(app.me_with_bearer(&token).await, 401, "invalid_token").await;
    assert_eq!(
        h["www-authenticate"],
        r#"Bearer realm="tessera", error="invalid_token""#
    );
}

#[tokio::test]
async fn tokens_of_another_server_or_audience_are_refused() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    a.add_user("alice", "user").await;
    let token = a.access_token("alice").await;
    assert_error(b.me_with_bearer(&token).await, 401, "invalid_token").await;
    let c = TestApp::spawn_with(|s| s.audience = "billing".into()).await;
    c.add_user("alice", "user").await;
    let foreign_aud = c.access_token("alice").await;
    assert_error(a.me_with_bearer(&foreign_aud).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn jwks_publishes_the_signing_key_and_no_private_member() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let text = res.text().await.unwrap();
    let jwks: Value = serde_json::from_str(&text).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
    }
    // The library, fed only the published JWKS, verifies the server's tokens.
    let token = app.access_token("alice").await;
    assert_eq!(decode_segment(&token, 0)["kid"], keys[0]["kid"]);
    let verifier = Verifier::new(
        KeySet::from_jwks_json(&text).unwrap(),
        Policy::new(ISSUER, "tessera"),
    );
    let claims = verifier.verify(&token, app.clock.now()).unwrap();
    assert_eq!(claims.username, "alice");
}

#[tokio::test]
async fn metadata_follows_rfc8414() {
    let app = TestApp::spawn_with(|s| s.public_url = "https://auth.example.com/".into()).await;
    let res = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["issuer"], "https://auth.example.com");
    assert_eq!(m["token_endpoint"], "https://auth.example.com/v1/token");
    assert_eq!(
        m["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"password".into())
    );
    assert!(m["response_types_supported"].is_array());
    assert_eq!(
        m["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
}

#[tokio::test]
async fn token_endpoint_speaks_rfc6749_errors() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "user").await;
    let post = |form: &'static [(&'static str, &'static str)]| {
        app.client.post(app.url("/v1/token")).form(form).send()
    };
    let h = assert_error(
        post(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "nope-nope"),
        ])
        .await
        .unwrap(),
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(h["cache-control"], "no-store");
    assert_error(
        post(&[("grant_type", "client_credentials")]).await.unwrap(),
        400,
        "unsupported_grant_type",
    )
    .await;
    assert_error(
        post(&[("username", "alice")]).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post(&[("grant_type", "password"), ("username", "alice")])
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let dup = app
        .client
        .post(app.url("/v1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username=alice&password={PASSWORD}&username=bob"
        ))
        .send()
        .await
        .unwrap();
    assert_error(dup, 400, "invalid_request").await;
    let json = app
        .post_json("/v1/token", serde_json::json!({"grant_type": "password"}))
        .await;
    assert_error(json, 400, "invalid_request").await;
}
