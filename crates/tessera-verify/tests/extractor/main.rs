//! The axum extractor (feature `axum`): a resource server gets verified claims or a 401
//! with the RFC 6750 challenge, over real HTTP on an ephemeral port.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tessera_verify::extract::Bearer;
use tessera_verify::{KeySet, Policy, Verifier};

async fn handler(Bearer(claims): Bearer) -> String {
    format!("{} {}", claims.sub, claims.role)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn the_extractor_yields_claims_or_a_bearer_challenge() {
    let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
    let key = EncodingKey::from_ed_der(doc.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some("k1".into());
    let keys = KeySet::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap();
    let verifier = Arc::new(Verifier::new(keys, Policy::new("http://issuer", "api")));
    let app = Router::new().route("/", get(handler)).with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"iss":"http://issuer","sub":"u1","aud":"api","exp":now()+60,"iat":now(),"jti":"j","client_id":"c","role":"admin","username":"alice"}).to_string(),
    );
    let msg = format!("{header}.{payload}");
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    let token = format!("{msg}.{sig}");

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let res = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "u1 admin");

    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="tessera""#
    );

    let res = http
        .get(&url)
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="invalid_token""#
    );

    let res = http
        .get(&url)
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
