//! Signing keys: rotation with pre-publication and retirement, live pickup, algorithms,
//! import.

use std::process::Command;

use base64::Engine;
use serde_json::Value;
use tessera_core::clock::Clock;
use tessera_core::keys;

use crate::helpers::*;

fn kid_of(token: &str) -> String {
    let h = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let v: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn reload(app: &TestApp) {
    app.state
        .core
        .keys
        .reload(app.state.core.stores.keys.as_ref(), app.clock.now())
        .await
        .unwrap();
}

#[tokio::test]
async fn rotation_publishes_first_signs_later_and_retires_after_expiry() {
    let app = TestApp::spawn().await; // prepublish 5m, ttl 5m, leeway 30s
    app.add_user("alice", "user").await;
    let old_token = app.access_token("alice").await;
    let old = kid_of(&old_token);
    let now = app.clock.now();
    let new = keys::generate(keys::SigningAlgorithm::EdDSA, now, now + 300).unwrap();
    app.state
        .core
        .stores
        .keys
        .add_signing_key(&new)
        .await
        .unwrap();
    reload(&app).await;

    // Published at once, not yet signing.
    assert_eq!(jwks_kids(&app).await, vec![old.clone(), new.kid.clone()]);
    assert_eq!(kid_of(&app.access_token("alice").await), old);

    // After the pre-publication delay, the new key signs; the old one stays published
    // for the tokens it signed.
    app.clock.advance(300);
    reload(&app).await;
    let new_token = app.access_token("alice").await;
    assert_eq!(kid_of(&new_token), new.kid);
    assert_eq!(jwks_kids(&app).await, vec![old.clone(), new.kid.clone()]);
    assert_eq!(
        app.me_with_bearer(&old_token).await.status(),
        200,
        "old-key token still valid until its expiry"
    );
    let last_old_token_exp = now + 300 + 300; // signed just before the switch

    // Once everything the old key signed has expired (+ leeway), it is withdrawn.
    app.clock.advance(300 + 29);
    reload(&app).await;
    assert_eq!(jwks_kids(&app).await.len(), 2);
    app.clock.advance(1);
    reload(&app).await;
    assert_eq!(jwks_kids(&app).await, vec![new.kid.clone()]);
    assert!(app.clock.now() >= last_old_token_exp + 30);
    assert_eq!(app.me_with_bearer(&old_token).await.status(), 401);
    let _ = new_token;
    let fresh = app.access_token("alice").await;
    assert_eq!(kid_of(&fresh), new.kid);
    assert_eq!(app.me_with_bearer(&fresh).await.status(), 200);
}

#[tokio::test]
async fn es256_and_rs256_are_selectable() {
    for (alg, kty) in [
        (keys::SigningAlgorithm::ES256, "EC"),
        (keys::SigningAlgorithm::RS256, "RSA"),
    ] {
        let app = TestApp::spawn_with(|s| s.signing_algorithm = alg).await;
        app.add_user("alice", "user").await;
        let token = app.access_token("alice").await;
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], format!("{alg:?}"));
        let jwks: Value = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["kty"], kty);
        assert!(jwks["keys"][0].get("d").is_none());
        assert_eq!(app.me_with_bearer(&token).await.status(), 200);
    }
}

#[tokio::test]
async fn hs256_only_by_explicit_secret_and_nothing_is_published() {
    let app = TestApp::spawn_with(|s| {
        s.hs256_secret = Some(tessera_server::config::Secret(
            "0123456789abcdef0123456789abcdef-shared".into(),
        ))
    })
    .await;
    app.add_user("alice", "user").await;
    let token = app.access_token("alice").await;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    // The kid says nothing about the secret (a fingerprint would let anyone test guesses).
    assert_eq!(header["kid"], "hs256");
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, serde_json::json!({"keys": []}));
    assert_eq!(app.me_with_bearer(&token).await.status(), 200);
}

fn openssl(args: &[&str], out: &std::path::Path) {
    let status = Command::new("openssl")
        .args(args)
        .arg("-out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn import_accepts_ed25519_p256_and_rsa2048_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    openssl(&["genpkey", "-algorithm", "ed25519"], &p("ed.pem"));
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        &p("ec.pem"),
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        &p("rsa.pem"),
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ],
        &p("rsa1024.pem"),
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
        ],
        &p("p384.pem"),
    );
    let read = |n: &str| std::fs::read_to_string(p(n)).unwrap();
    for (file, alg) in [
        ("ed.pem", "EdDSA"),
        ("ec.pem", "ES256"),
        ("rsa.pem", "RS256"),
    ] {
        let rec = keys::import_pem(&read(file), 0, 0).unwrap();
        assert_eq!(rec.alg, alg);
        // An imported key signs tokens the published JWKS verifies.
        let app = TestApp::spawn().await;
        let now = app.clock.now();
        let mut rec = keys::import_pem(&read(file), now, now).unwrap();
        rec.activates_at = now + 1;
        app.state
            .core
            .stores
            .keys
            .add_signing_key(&rec)
            .await
            .unwrap();
        app.clock.advance(1);
        reload(&app).await;
        app.add_user("alice", "user").await;
        let token = app.access_token("alice").await;
        assert_eq!(kid_of(&token), rec.kid);
        assert_eq!(app.me_with_bearer(&token).await.status(), 200);
    }
    let err = keys::import_pem(&read("rsa1024.pem"), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2048"), "{err}");
    assert!(keys::import_pem(&read("p384.pem"), 0, 0).is_err());
    assert!(keys::import_pem("not a pem", 0, 0).is_err());
    let sec1 = Command::new("openssl")
        .args(["ec", "-in"])
        .arg(p("ec.pem"))
        .output()
        .unwrap()
        .stdout;
    let err = keys::import_pem(&String::from_utf8(sec1).unwrap(), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PKCS#8"), "{err}");
}

#[test]
fn key_states_follow_from_activation_and_token_lifetime() {
    use keys::KeyState::*;
    let r = |a: i64| tessera_core::store::SigningKeyRecord {
        kid: a.to_string(),
        alg: "EdDSA".into(),
        private_pem: String::new(),
        created_at: 0,
        activates_at: a,
    };
    let recs = [r(0), r(100), r(200)];
    assert_eq!(keys::states(&recs, 50, 30), vec![Active, Next, Next]);
    assert_eq!(keys::states(&recs, 100, 30), vec![Retiring, Active, Next]);
    assert_eq!(keys::states(&recs, 130, 30), vec![Retired, Active, Next]);
    assert_eq!(
        keys::states(&recs, 210, 30),
        vec![Retired, Retiring, Active]
    );
}
