//! Regression tests for each way revocation used to break, named after the break. Each
//! fails on the code before the monotonic revocation model; race tests run many bounded
//! iterations and print their seed.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Error;
use tessera_core::audit::AuditKind;
use tessera_core::clock::Clock;
use tessera_core::revocation::RevocationKind;
use tessera_core::store::RevocationEvent;
use tessera_core::tokens::{Introspection, PUBLIC_CLIENT};
use tessera_verify::{AccessClaims, Audience, RevocationCheck};

use crate::services::{PASSWORD, TestCore, audit_kinds, core, core_synced, core_with, from};

/// A small deterministic generator (xorshift), so race tests can print and replay a seed
/// without another dependency.
struct Rng(u64);
impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("RACE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("race seed {seed} (replay with RACE_SEED={seed})");
        Self(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn a_revoked_access_token_stays_revoked_until_exp_plus_leeway() {
    let t = core().await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let pair = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    // RFC 7009 revocation of the access token alone (its family stays live).
    t.core
        .revoke_token(PUBLIC_CLIENT, &pair.access_token)
        .await
        .unwrap();
    // Past `exp` (300 s) but within the verifier's 30 s leeway, after a purge...
    t.clock.advance(300 + 10);
    t.core.purge().await.unwrap();
    assert!(
        matches!(
            t.core.authenticate_bearer(&pair.access_token),
            Err(Error::Unauthenticated)
        ),
        "a revoked token works again between exp and exp + leeway"
    );
    // ...and after a restart, which reloads revocations from the store.
    let reloaded =
        tessera_core::revocation::RevocationList::load(&t.core.stores, t.clock.now(), 30)
            .await
            .unwrap();
    let claims = t
        .core
        .keys
        .ring()
        .verifier()
        .verify(&pair.access_token, t.clock.now())
        .unwrap();
    assert!(reloaded.is_revoked(&claims), "lost at restart");
    t.clock.advance(21);
    assert!(
        t.core.authenticate_bearer(&pair.access_token).is_err(),
        "expired"
    );
}

fn claims(jti: &str) -> AccessClaims {
    AccessClaims {
        iss: "i".into(),
        sub: "u".into(),
        aud: Audience::One("a".into()),
        exp: i64::MAX,
        iat: 0,
        nbf: None,
        jti: jti.into(),
        client_id: "c".into(),
        role: "user".into(),
        username: "u".into(),
        sid: None,
    }
}

#[tokio::test]
async fn a_pushed_event_does_not_let_the_poll_skip_an_earlier_lost_one() {
    let t = core_synced(|_| {}, |s| s.single_writer = false).await;
    let stores = &t.core.stores;
    let mut ids = Vec::new();
    // Another instance revokes three tokens; the pushes of the first two are lost.
    for jti in ["j1", "j2", "j3"] {
        stores.revocations.revoke_jti(jti, i64::MAX).await.unwrap();
        let event = RevocationEvent {
            id: 0,
            kind: RevocationKind::Jti,
            key: jti.into(),
            expires_at: i64::MAX,
        };
        ids.push(stores.revocations.append_event(&event).await.unwrap());
    }
    let list = &t.core.revocations;
    list.apply_ahead(&RevocationEvent {
        id: ids[2],
        kind: RevocationKind::Jti,
        key: "j3".into(),
        expires_at: i64::MAX,
    });
    assert!(list.list.is_revoked(&claims("j3")));
    assert!(
        list.watermark() < ids[0],
        "a push never moves the watermark"
    );
    list.catch_up(stores).await.unwrap();
    assert!(
        list.list.is_revoked(&claims("j1")) && list.list.is_revoked(&claims("j2")),
        "the poll skipped events whose push was lost"
    );
    assert_eq!(list.watermark(), ids[2]);
}

#[tokio::test]
async fn a_touch_on_a_deleted_session_ends_it_instead_of_caching_it_again() {
    let t = core_with(|p| p.sessions.touch_interval = Duration::from_secs(60)).await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    t.core.authenticate_session(&s.token).await.unwrap();
    // Deleted in the store by someone whose invalidation has not reached this cache.
    t.core
        .stores
        .sessions
        .delete_session(&s.record.token_hash)
        .await
        .unwrap();
    t.clock.advance(61);
    assert!(
        matches!(
            t.core.authenticate_session(&s.token).await,
            Err(Error::Unauthenticated)
        ),
        "a touch of a deleted row reported success"
    );
    assert!(
        t.core
            .revocations
            .sessions
            .get(&s.record.token_hash)
            .is_none(),
        "the ended session is still cached"
    );
    assert!(t.core.authenticate_session(&s.token).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_racing_lookups_never_brings_the_session_back() {
    let mut rng = Rng::seeded();
    // Every lookup renews (touch interval 0): the widest window for a write-back.
    let t = Arc::new(
        core_with(|p| {
            p.sessions.touch_interval = Duration::ZERO;
            p.throttle.per_ip = u32::MAX;
        })
        .await,
    );
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    for round in 0..150 {
        let s = t
            .core
            .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
            .await
            .unwrap();
        let p = t.core.authenticate_session(&s.token).await.unwrap();
        // Half the rounds race lookups that find the session in the cache (and renew it),
        // half lookups that miss and read it from the store.
        if round % 2 == 0 {
            t.core.revocations.sessions.remove(&s.record.token_hash);
        }
        let mut lookups = Vec::new();
        for _ in 0..4 {
            let (t, token, delay) = (t.clone(), s.token.clone(), rng.below(300));
            lookups.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(delay)).await;
                let _ = t.core.authenticate_session(&token).await;
            }));
        }
        tokio::time::sleep(Duration::from_micros(rng.below(200))).await;
        t.core.logout(&p).await.unwrap();
        // Every lookup that starts after the logout's answer is refused...
        assert!(
            t.core.authenticate_session(&s.token).await.is_err(),
            "round {round}: accepted right after logout"
        );
        for l in lookups {
            l.await.unwrap();
        }
        // ...including after the racing lookups have finished.
        assert!(
            t.core.authenticate_session(&s.token).await.is_err(),
            "round {round}: a racing lookup brought the session back"
        );
    }
}

#[tokio::test]
async fn a_grant_racing_a_disable_yields_no_live_credential() {
    let mut rng = Rng::seeded();
    let t = Arc::new(core_with(|p| p.throttle.per_ip = u32::MAX).await);
    let root = t
        .core
        .create_user("root", PASSWORD.into(), "admin")
        .await
        .unwrap();
    let root_p = t
        .core
        .authenticate_session(
            &t.core
                .login_session("root", PASSWORD.into(), false, &from("10.9.9.9"))
                .await
                .unwrap()
                .token,
        )
        .await
        .unwrap();
    let _ = root;
    let mut survived = 0;
    for round in 0..40 {
        let name = format!("user{round}");
        let u = t
            .core
            .create_user(&name, PASSWORD.into(), "user")
            .await
            .unwrap();
        let (tg, tn, name2) = (t.clone(), t.clone(), name.clone());
        let grant = tokio::spawn(async move {
            tg.core
                .password_grant(&name2, PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
                .await
        });
        let login = tokio::spawn(async move {
            tn.core
                .login_session(&name, PASSWORD.into(), false, &from("10.0.0.2"))
                .await
        });
        // Land the disable before, inside or after the grants' Argon2 wait (a hash takes
        // milliseconds): some grants finish first, some race it.
        tokio::time::sleep(Duration::from_micros(rng.below(40_000))).await;
        t.core.disable_user(&root_p, &u.id).await.unwrap();
        if let Ok(pair) = grant.await.unwrap() {
            survived += 1;
            assert!(
                t.core.authenticate_bearer(&pair.access_token).is_err(),
                "round {round}: an access token issued concurrently with the disable survived it"
            );
            assert!(
                t.core
                    .refresh(&pair.refresh_token, PUBLIC_CLIENT)
                    .await
                    .is_err(),
                "round {round}: its refresh token survived it"
            );
        }
        if let Ok(opened) = login.await.unwrap() {
            survived += 1;
            assert!(
                t.core.authenticate_session(&opened.token).await.is_err(),
                "round {round}: a session opened concurrently with the disable survived it"
            );
        }
    }
    eprintln!("{survived} grants or logins completed around a disable; none survived it");
    assert!(
        survived > 0,
        "no grant ever completed: the race was never exercised"
    );
}

#[tokio::test]
async fn a_replay_after_the_successor_is_spent_is_reuse_not_a_ladder() {
    let t = core().await;
    let alice = t
        .core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let p0 = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    let p1 = t
        .core
        .refresh(&p0.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    let p2 = t
        .core
        .refresh(&p1.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    // Still within the grace period, but p1's refresh token has been spent: replaying p0
    // is a copy of an old token, not a retry.
    assert!(
        matches!(
            t.core.refresh(&p0.refresh_token, PUBLIC_CLIENT).await,
            Err(Error::InvalidGrant(_))
        ),
        "a spent token climbed the family"
    );
    assert!(
        t.core
            .refresh(&p2.refresh_token, PUBLIC_CLIENT)
            .await
            .is_err(),
        "family revoked"
    );
    assert!(t.core.authenticate_bearer(&p2.access_token).is_err());
    assert!(
        audit_kinds(&t.core, Some(&alice.id))
            .await
            .contains(&AuditKind::RefreshReuseDetected)
    );
}

#[tokio::test]
async fn sealed_pairs_are_forgotten_when_the_grace_window_ends() {
    let t = core().await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let p0 = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    t.core
        .refresh(&p0.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    let hash = tessera_core::opaque::hash(&p0.refresh_token);
    let sealed = |t: &TestCore| {
        let (stores, hash) = (t.core.stores.clone(), hash.clone());
        async move {
            stores
                .refresh
                .find_refresh_token(&hash)
                .await
                .unwrap()
                .unwrap()
                .0
                .sealed
        }
    };
    t.core.purge().await.unwrap();
    assert!(sealed(&t).await.is_some(), "kept within the grace window");
    t.clock.advance(11);
    t.core.purge().await.unwrap();
    assert!(
        sealed(&t).await.is_none(),
        "a database copy would still open the pair"
    );
}

#[tokio::test]
async fn introspection_fails_closed_like_bearer_requests() {
    let t = core_synced(
        |_| {},
        |s| {
            s.single_writer = false;
            s.staleness_bound = Duration::from_millis(1);
        },
    )
    .await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let pair = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    t.core.revocations.catch_up(&t.core.stores).await.unwrap();
    assert!(matches!(
        t.core.introspect(&pair.access_token).await,
        Ok(Introspection::Access(_))
    ));
    // No poll and no channel for longer than the bound.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        t.core.authenticate_bearer(&pair.access_token),
        Err(Error::StaleRevocationState)
    ));
    for token in [&pair.access_token, &pair.refresh_token] {
        assert!(
            matches!(
                t.core.introspect(token).await,
                Err(Error::StaleRevocationState)
            ),
            "introspection answered on stale state"
        );
    }
}

/// The PostgreSQL feed is visible in commit order: a poller racing many concurrent
/// appends and resuming from the highest id it has read misses none.
#[tokio::test]
async fn the_postgres_feed_never_shows_a_later_id_before_an_earlier_one() {
    let url = tessera_testkit::shared_postgres().database().await;
    let stores = tessera_core::store::Stores::postgres(
        tessera_core::store::postgres::PostgresStore::connect(&url)
            .await
            .unwrap(),
    );
    let mut writers = Vec::new();
    for w in 0..8 {
        let feed = stores.revocations.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let e = RevocationEvent {
                    id: 0,
                    kind: RevocationKind::Jti,
                    key: format!("w{w}-{i}"),
                    expires_at: 1,
                };
                ids.push(feed.append_event(&e).await.unwrap());
            }
            ids
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut watermark = 0;
    let mut done = false;
    while !done {
        done = writers.iter().all(|w| w.is_finished());
        for e in stores
            .revocations
            .events_since(watermark, 1000)
            .await
            .unwrap()
        {
            seen.insert(e.id);
            watermark = e.id;
        }
    }
    let mut all = std::collections::BTreeSet::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    assert_eq!(
        seen, all,
        "a poller resuming from its highest id skipped events"
    );
}

/// The interleaving the race test above hunts for, driven step by step: a lookup reads the
/// session from the store, a logout then deletes and invalidates it, and only then does the
/// lookup try to fill the cache.
#[tokio::test]
async fn a_lookup_that_read_before_a_logout_cannot_cache_the_session_after_it() {
    let t = core().await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    let p = t.core.authenticate_session(&s.token).await.unwrap();
    t.core.revocations.sessions.remove(&s.record.token_hash);
    // The lookup: generation first, then the store read.
    let cache = &t.core.revocations.sessions;
    let generation = cache.generation();
    let read = t
        .core
        .stores
        .sessions
        .load_session(&s.record.token_hash, t.clock.now())
        .await
        .unwrap()
        .unwrap();
    // The logout runs to completion in between.
    t.core.logout(&p).await.unwrap();
    let entry = Arc::new(tessera_core::identity::AuthenticatedSession {
        session: read,
        identity: p.identity().clone(),
    });
    assert!(
        !cache.put_if_current(entry, generation),
        "a stale fill was accepted"
    );
    assert!(cache.get(&s.record.token_hash).is_none());
    assert!(t.core.authenticate_session(&s.token).await.is_err());
}

/// A channel that says it is connected but loses every message: the state a real Redis
/// channel is in between a failed `PUBLISH` and the subscriber noticing the connection is
/// gone, which a real server cannot be held in on demand.
struct LossyChannel;

#[async_trait::async_trait]
impl tessera_core::revocation::Push for LossyChannel {
    async fn push(&self, _: &RevocationEvent) -> bool {
        false
    }
    fn connected(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_failed_push_stops_the_cache_being_trusted_until_a_poll_confirms() {
    let t = core_synced(|_| {}, |s| s.single_writer = false).await;
    let r = &t.core.revocations;
    r.set_push(Arc::new(LossyChannel));
    assert!(r.cache_usable(), "a connected channel is trusted");
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    let p = t.core.authenticate_session(&s.token).await.unwrap();
    t.core.logout(&p).await.unwrap();
    assert!(!r.cache_usable(), "the push of the logout failed: degraded");
    r.catch_up(&t.core.stores).await.unwrap();
    assert!(
        r.cache_usable(),
        "a poll after the failure confirms the feed"
    );
}

#[tokio::test]
async fn unknown_cookies_do_not_stop_the_session_cache_filling() {
    let t = core_with(|p| p.throttle.per_ip = u32::MAX).await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let cache = &t.core.revocations.sessions;
    let before = cache.generation();
    for i in 0..50 {
        assert!(
            t.core
                .authenticate_session(&format!("junk-{i}"))
                .await
                .is_err()
        );
    }
    assert_eq!(cache.generation(), before, "misses invalidated the cache");
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    t.core.authenticate_session(&s.token).await.unwrap();
    assert!(cache.get(&s.record.token_hash).is_some(), "cached");
}
