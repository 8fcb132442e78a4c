//! No secret in `Debug`: records and values that hold a password hash, a token, a key or a
//! client secret print a redaction, so that a `{:?}` in a log line leaks nothing.

use tessera_core::clients::{ClientCredentials, NewClient};
use tessera_core::identity::Role;
use tessera_core::opaque;
use tessera_core::store::{Client, RefreshToken, SessionRecord, SigningKeyRecord, User};
use tessera_core::tokens::TokenPair;

/// Every byte string `secret` could appear as in a `Debug` string.
fn forms(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        opaque::hex(secret),
        format!("{secret:?}"),
        format!("{:?}", secret.to_vec()),
    ];
    if let Ok(s) = std::str::from_utf8(secret) {
        out.push(s.to_owned());
    }
    out
}

fn assert_hidden(value: &dyn std::fmt::Debug, secrets: &[&[u8]]) {
    for pretty in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(pretty.contains("redacted"), "{pretty}");
        for secret in secrets {
            for form in forms(secret) {
                assert!(!pretty.contains(&form), "{form} leaked in {pretty}");
            }
        }
    }
}

#[test]
fn records_and_values_holding_secrets_redact_them_in_debug() {
    let hash = [0xa7u8; 32];
    let user = User {
        id: "u1".into(),
        username: "alice".into(),
        role: Role::User,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        disabled: false,
        created_at: 1,
        credential_epoch: 0,
    };
    assert_hidden(&user, &[user.password_hash.as_bytes(), b"aGFzaGhhc2g"]);
    assert!(
        format!("{user:?}").contains("alice"),
        "non-secrets stay readable"
    );
    let session = SessionRecord {
        id: "s1".into(),
        token_hash: hash.to_vec(),
        user_id: "u1".into(),
        created_at: 1,
        last_seen_at: 1,
        idle_expires_at: 2,
        expires_at: 3,
        user_agent: None,
        ip: None,
    };
    assert_hidden(&session, &[&hash]);
    let sealed = b"sealed-pair-ciphertext".to_vec();
    let refresh = RefreshToken {
        token_hash: hash.to_vec(),
        id: "r1".into(),
        family_id: "f1".into(),
        created_at: 1,
        spent_at: Some(2),
        sealed: Some(sealed.clone()),
    };
    assert_hidden(&refresh, &[&hash, &sealed]);
    let client = Client {
        id: "c1".into(),
        name: "billing".into(),
        secret_hash: hash.to_vec(),
        created_at: 1,
    };
    assert_hidden(&client, &[&hash]);
    let new = NewClient {
        client: client.clone(),
        secret: "client-secret-in-clear".into(),
    };
    assert_hidden(&new, &[&hash, b"client-secret-in-clear"]);
    let creds = ClientCredentials {
        basic: Some(("c1".into(), "basic-secret".into())),
        client_id: None,
    };
    assert_hidden(&creds, &[b"basic-secret"]);
    let key = SigningKeyRecord {
        kid: "k1".into(),
        alg: "EdDSA".into(),
        private_pem:
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPRIVATE\n-----END PRIVATE KEY-----\n"
                .into(),
        created_at: 1,
        activates_at: 1,
    };
    assert_hidden(&key, &[b"MC4CAQAwBQYDK2VwBCIEIPRIVATE"]);
    let pair = TokenPair {
        access_token: "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl".into(),
        refresh_token: "refresh-token-in-clear".into(),
        expires_in: 300,
    };
    assert_hidden(
        &pair,
        &[
            b"eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
            b"refresh-token-in-clear",
        ],
    );
}
