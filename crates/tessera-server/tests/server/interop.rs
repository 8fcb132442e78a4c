//! Interoperability with software nobody here wrote (installed by `scripts/test`):
//! PyJWT + Authlib (Python) and jose + openid-client (npm) against a real tessera.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop-venv/bin/python"));
    assert!(
        p.exists(),
        "{} missing: run scripts/test, which installs the interop clients",
        p.display()
    );
    p
}

fn run(mut cmd: Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

async fn setup(alg: tessera_core::keys::SigningAlgorithm) -> (TestApp, Value) {
    let app = TestApp::spawn_public(|s| s.signing_algorithm = alg).await;
    app.add_user("alice", "user").await;
    let c = app.add_client("interop").await;
    let cfg = json!({
        "base": app.base, "issuer": app.base, "audience": "tessera",
        "client_id": c.id, "client_secret": c.secret, "username": "alice", "password": PASSWORD,
    });
    (app, cfg)
}

fn check_flows(out: &Value, app_user: &str) {
    assert_eq!(out["rotated"], true);
    assert_eq!(out["introspect_active"], true);
    assert_eq!(out["after_revoke"], json!({"active": false}));
    assert_eq!(out["refresh_after_revoke"], "invalid_grant");
    assert!(!app_user.is_empty());
}

#[tokio::test]
async fn pyjwt_and_authlib() {
    for alg in [
        tessera_core::keys::SigningAlgorithm::EdDSA,
        tessera_core::keys::SigningAlgorithm::ES256,
        tessera_core::keys::SigningAlgorithm::RS256,
    ] {
        let (app, cfg) = setup(alg).await;
        let alice = app
            .state
            .core
            .stores
            .users
            .user_by_name("alice")
            .await
            .unwrap()
            .unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("interop/python_client.py"))
            .arg(cfg.to_string());
        let out = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
        assert_eq!(out["token_type"], "Bearer");
        assert_eq!(out["pyjwt_sub"], alice.id.as_str());
        assert_eq!(out["pyjwt_typ"], "at+jwt");
        assert_eq!(out["pyjwt_alg"], format!("{alg:?}"));
        assert_eq!(out["pyjwt_rejects_tampered"], true);
        assert_eq!(out["introspect_username"], "alice");
        check_flows(&out, &alice.id);
        // Revoking the refresh token revoked its family: its access token is dead here too.
        assert_eq!(
            app.me_with_bearer(s(&out["revoked_access_token"]))
                .await
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn jose_and_openid_client() {
    let (app, cfg) = setup(tessera_core::keys::SigningAlgorithm::EdDSA).await;
    let alice = app
        .state
        .core
        .stores
        .users
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(repo().join("interop"))
        .arg("node_client.mjs")
        .arg(cfg.to_string());
    assert!(
        repo().join("interop/node_modules/openid-client").exists(),
        "run scripts/test, which installs the interop clients"
    );
    let out = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
    assert_eq!(out["discovered_issuer"], app.base.as_str());
    assert_eq!(
        out["discovered_token_endpoint"],
        format!("{}/v1/token", app.base)
    );
    assert_eq!(out["jose_sub"], alice.id.as_str());
    assert_eq!(out["jose_typ"], "at+jwt");
    assert_eq!(out["jose_rejects_wrong_audience"], true);
    check_flows(&out, &alice.id);
    assert_eq!(
        app.me_with_bearer(s(&out["revoked_access_token"]))
            .await
            .status(),
        401
    );
}
