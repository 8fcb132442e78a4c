//! Microbenchmarks of what a request costs: JWT sign and verify per algorithm (with and
//! without the verified-token cache), the revocation check, session lookup per backend
//! (in-process cache hit, SQLite), and one Argon2id hash.
//!
//! `cargo bench -p tessera-server --bench hot_path`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::keys::{self, KeyRing, SigningAlgorithm};
use tessera_core::password::Passwords;
use tessera_core::revocation::Revocations;
use tessera_core::store::sqlite::SqliteStore;
use tessera_core::store::{RevocationEvent, SessionRecord, Stores, User};
use tessera_verify::{AccessClaims, Audience, NoRevocation, Policy, RevocationCheck, Verifier};

const NOW: i64 = 1_800_000_000;

fn claims(jti: &str) -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "7d0e4c9a-1b1e-4f5e-9a51-5d1f0e0c2a11".into(),
        aud: Audience::One("tessera".into()),
        exp: NOW + 300,
        iat: NOW,
        nbf: None,
        jti: jti.into(),
        client_id: "tessera".into(),
        role: "user".into(),
        username: "alice".into(),
        sid: Some("0f6e4f0e-9d1c-4c47-8b8e-3c3c0a4d2b77".into()),
    }
}

fn ring(alg: &str) -> KeyRing {
    let policy = Policy::new("http://127.0.0.1:8080", "tessera");
    match alg {
        "HS256" => KeyRing::hs256(b"0123456789abcdef0123456789abcdef", policy).unwrap(),
        a => {
            let alg = match a {
                "EdDSA" => SigningAlgorithm::EdDSA,
                "ES256" => SigningAlgorithm::ES256,
                _ => SigningAlgorithm::RS256,
            };
            KeyRing::from_records(&[keys::generate(alg, 0, 0).unwrap()], policy, NOW, 330).unwrap()
        }
    }
}

fn jwt(c: &mut Criterion) {
    for alg in ["EdDSA", "ES256", "RS256", "HS256"] {
        let ring = ring(alg);
        let token = ring.sign(&claims("j1"), NOW).unwrap();
        c.bench_function(&format!("jwt_sign/{alg}"), |b| {
            b.iter(|| ring.sign(black_box(&claims("j1")), NOW).unwrap())
        });
        // A verifier without the cache: every call checks the signature.
        let uncached = Verifier::new(
            ring.verifier().keys().clone(),
            ring.verifier().policy().clone(),
        );
        c.bench_function(&format!("jwt_verify/{alg}"), |b| {
            b.iter(|| {
                uncached
                    .verify_with(black_box(&token), NOW, &NoRevocation)
                    .unwrap()
            })
        });
        c.bench_function(&format!("jwt_verify_cached/{alg}"), |b| {
            b.iter(|| {
                ring.verifier()
                    .verify_with(black_box(&token), NOW, &NoRevocation)
                    .unwrap()
            })
        });
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn revocation_and_sessions(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::sqlite(rt.block_on(SqliteStore::open(dir.path())).unwrap());
    let revocations = rt
        .block_on(Revocations::load(
            &stores,
            NOW,
            &tessera_core::revocation::SyncPolicy {
                single_writer: true,
                staleness_bound: std::time::Duration::from_secs(30),
                fail_open: false,
                leeway: 30,
            },
        ))
        .unwrap();
    // 100 000 revoked tokens and 10 000 revoked families: the check stays O(1).
    for i in 0..100_000 {
        revocations.apply(&RevocationEvent {
            id: i,
            kind: "jti".into(),
            key: format!("jti-{i}"),
            expires_at: NOW + 300,
        });
    }
    for i in 0..10_000 {
        revocations.apply(&RevocationEvent {
            id: 0,
            kind: "family".into(),
            key: format!("fam-{i}"),
            expires_at: NOW + 3600,
        });
    }
    let live = claims("not-revoked");
    c.bench_function("revocation_check/100k_revoked", |b| {
        b.iter(|| revocations.list.is_revoked(black_box(&live)))
    });

    let user = User {
        id: "u1".into(),
        username: "alice".into(),
        role: "user".into(),
        password_hash: "x".into(),
        disabled: false,
        created_at: NOW,
        credential_epoch: 0,
    };
    rt.block_on(stores.users.create_user(&user)).unwrap();
    let hash = tessera_core::opaque::hash("benchmark-session-token");
    let session = SessionRecord {
        id: "s1".into(),
        token_hash: hash.clone(),
        user_id: "u1".into(),
        created_at: NOW,
        last_seen_at: NOW,
        idle_expires_at: NOW + 1800,
        expires_at: NOW + 43_200,
        user_agent: None,
        ip: None,
    };
    rt.block_on(stores.sessions.create_session(&session))
        .unwrap();
    revocations.sessions.put(std::sync::Arc::new(
        tessera_core::identity::AuthenticatedSession {
            session: session.clone(),
            identity: tessera_core::identity::Identity::from(&user),
        },
    ));
    c.bench_function("session_lookup/cache_hit", |b| {
        b.iter(|| revocations.sessions.get(black_box(&hash)).unwrap())
    });
    // Redis only when one is named: `BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench ...`
    if let Ok(url) = std::env::var("BENCH_REDIS_URL") {
        use tessera_core::store::SessionStore;
        let _runtime = rt.enter(); // the connection manager spawns its driver task
        let redis_sessions = tessera_core::store::redis_sessions::RedisSessionStore::new(
            tessera_core::redis::Redis::new(&url).unwrap(),
        );
        rt.block_on(redis_sessions.create_session(&session))
            .unwrap();
        c.bench_function("session_lookup/redis", |b| {
            b.iter(|| {
                rt.block_on(redis_sessions.load_session(black_box(&hash), NOW))
                    .unwrap()
                    .unwrap()
            })
        });
    }
    c.bench_function("session_lookup/sqlite", |b| {
        b.iter(|| {
            rt.block_on(async {
                let s = stores
                    .sessions
                    .load_session(black_box(&hash), NOW)
                    .await
                    .unwrap()
                    .unwrap();
                stores.users.user_by_id(&s.user_id).await.unwrap().unwrap()
            })
        })
    });
}

fn argon2(c: &mut Criterion) {
    let rt = runtime();
    let passwords = Passwords::new(1, std::time::Duration::from_secs(60)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("hash_owasp_19MiB_t2_p1", |b| {
        b.iter(|| {
            rt.block_on(passwords.hash("correct horse battery".into()))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, jwt, revocation_and_sessions, argon2);
criterion_main!(benches);
