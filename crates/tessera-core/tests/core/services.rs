//! The use cases driven directly, without HTTP: a core on SQLite in a temp dir, with a
//! manual clock, so that lifetimes and windows are tested by moving time, not sleeping.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Error;
use tessera_core::audit::AuditKind;
use tessera_core::clock::{Clock, ManualClock};
use tessera_core::core::CoreParts;
use tessera_core::identity::{CredentialKind, LoginMethod, Principal};
use tessera_core::keys::{KeyPolicy, Keys, SigningAlgorithm};
use tessera_core::login::ClientInfo;
use tessera_core::password::Passwords;
use tessera_core::policy::*;
use tessera_core::revocation::{Keep, Revocations, SyncPolicy};
use tessera_core::store::sqlite::SqliteStore;
use tessera_core::store::{AuditFilter, Stores};
use tessera_core::tokens::PUBLIC_CLIENT;
use tessera_core::{Core, Policy};

pub const PASSWORD: &str = "correct horse battery";
pub const START: i64 = 1_800_000_000;

pub struct TestCore {
    pub core: Core,
    pub clock: ManualClock,
    pub _dir: tempfile::TempDir,
}

fn policy() -> Policy {
    Policy {
        sessions: SessionPolicy {
            idle_timeout: Duration::from_secs(1800),
            absolute_timeout: Duration::from_secs(12 * 3600),
            remember_lifetime: Duration::from_secs(30 * 86_400),
            touch_interval: Duration::from_secs(60),
        },
        tokens: TokenPolicy {
            issuer: "http://tessera.test".into(),
            audience: "tessera".into(),
            access_token_ttl: Duration::from_secs(300),
            refresh_absolute_lifetime: Duration::from_secs(30 * 86_400),
            refresh_idle_lifetime: Duration::from_secs(7 * 86_400),
            refresh_grace_period: Duration::from_secs(10),
        },
        throttle: ThrottlePolicy {
            per_account: 5,
            per_ip: 20,
            window: Duration::from_secs(900),
        },
        accounts: AccountPolicy {
            signup_enabled: true,
        },
    }
}

pub async fn core_with(f: impl FnOnce(&mut Policy)) -> TestCore {
    core_synced(f, |_| {}).await
}

/// A core on a fresh SQLite directory, with the policy and the sync policy adjusted.
pub async fn core_synced(f: impl FnOnce(&mut Policy), g: impl FnOnce(&mut SyncPolicy)) -> TestCore {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let stores = Stores::sqlite(SqliteStore::open(dir.path()).await.unwrap());
    let mut p = policy();
    f(&mut p);
    let mut sync = SyncPolicy {
        single_writer: true,
        staleness_bound: Duration::from_secs(30),
        fail_open: false,
        leeway: 30,
    };
    g(&mut sync);
    let mut verify =
        tessera_verify::Policy::new(p.tokens.issuer.clone(), p.tokens.audience.clone());
    verify.leeway_secs = 30;
    let keys = Keys::load_or_create(
        stores.keys.as_ref(),
        KeyPolicy {
            policy: verify,
            algorithm: SigningAlgorithm::EdDSA,
            hs256_secret: None,
            token_lifetime: 330,
        },
        START,
    )
    .await
    .unwrap();
    let revocations = Revocations::load(&stores, START, &sync).await.unwrap();
    let core = Core::new(CoreParts {
        stores,
        passwords: Passwords::new(2, Duration::from_secs(10)).unwrap(),
        keys,
        clock: Arc::new(clock.clone()),
        revocations,
        policy: p,
        redis: None,
    })
    .await
    .unwrap();
    TestCore {
        core,
        clock,
        _dir: dir,
    }
}

pub async fn core() -> TestCore {
    core_with(|_| {}).await
}

pub fn from(ip: &str) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.into()),
        user_agent: Some("test".into()),
    }
}

pub async fn audit_kinds(core: &Core, user: Option<&str>) -> Vec<AuditKind> {
    core.stores
        .audit
        .events(&AuditFilter {
            user_id: user.map(str::to_owned),
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_within_grace_returns_the_same_pair() {
    let t = core().await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let first = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    t.clock.advance(5);
    let second = t
        .core
        .refresh(&first.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    // A lost response: the same token again within the grace period gets the same pair.
    t.clock.advance(3);
    let again = t
        .core
        .refresh(&first.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    assert_eq!(again, second);
    // The new token works and is bound to its client.
    assert!(matches!(
        t.core.refresh(&second.refresh_token, "someone-else").await,
        Err(Error::InvalidGrant(_))
    ));
    let third = t
        .core
        .refresh(&second.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn a_replay_after_grace_revokes_the_family_and_is_audited() {
    let t = core().await;
    let alice = t
        .core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let first = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    let second = t
        .core
        .refresh(&first.refresh_token, PUBLIC_CLIENT)
        .await
        .unwrap();
    t.clock.advance(11);
    assert!(matches!(
        t.core.refresh(&first.refresh_token, PUBLIC_CLIENT).await,
        Err(Error::InvalidGrant(_))
    ));
    // The whole family is dead: the thief's and the client's tokens alike.
    assert!(matches!(
        t.core.refresh(&second.refresh_token, PUBLIC_CLIENT).await,
        Err(Error::InvalidGrant(_))
    ));
    assert!(matches!(
        t.core.authenticate_bearer(&second.access_token),
        Err(Error::Unauthenticated)
    ));
    assert!(
        audit_kinds(&t.core, Some(&alice.id))
            .await
            .contains(&AuditKind::RefreshReuseDetected)
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_get_one_pair_and_no_alarm() {
    let t = Arc::new(core().await);
    let alice = t
        .core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let first = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, from("10.0.0.1"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (t, token) = (t.clone(), first.refresh_token.clone());
        tasks.push(tokio::spawn(async move {
            t.core.refresh(&token, PUBLIC_CLIENT).await.unwrap()
        }));
    }
    let mut pairs = Vec::new();
    for task in tasks {
        pairs.push(task.await.unwrap());
    }
    assert!(pairs.windows(2).all(|w| w[0] == w[1]), "one pair for all");
    assert!(
        !audit_kinds(&t.core, Some(&alice.id))
            .await
            .contains(&AuditKind::RefreshReuseDetected)
    );
    assert!(t.core.authenticate_bearer(&pairs[0].access_token).is_ok());
}

#[tokio::test]
async fn throttling_counts_attempts_per_account_and_resets_on_success() {
    let t = core().await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    for i in 0..4 {
        let r = t
            .core
            .check_credentials(
                "alice",
                "wrong".into(),
                &from(&format!("10.0.0.{i}")),
                LoginMethod::Session,
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    // The fifth attempt is still counted and allowed; a success resets the account.
    t.core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.9"))
        .await
        .unwrap();
    for _ in 0..5 {
        let _ = t
            .core
            .check_credentials(
                "alice",
                "wrong".into(),
                &from("10.1.0.1"),
                LoginMethod::Session,
            )
            .await;
    }
    let r = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.2.0.1"))
        .await;
    let Err(Error::Throttled { retry_after }) = r else {
        panic!("expected throttling, got {r:?}");
    };
    assert!((1..=900).contains(&retry_after));
    // An unknown account is throttled exactly like a known one.
    for _ in 0..5 {
        let _ = t
            .core
            .check_credentials(
                "nobody",
                "wrong".into(),
                &from("10.3.0.1"),
                LoginMethod::Session,
            )
            .await;
    }
    assert!(matches!(
        t.core
            .check_credentials(
                "nobody",
                "wrong".into(),
                &from("10.3.0.2"),
                LoginMethod::Session
            )
            .await,
        Err(Error::Throttled { .. })
    ));
    // The window ends.
    t.clock.advance(901);
    t.core
        .login_session("alice", PASSWORD.into(), false, &from("10.2.0.1"))
        .await
        .unwrap();
    assert!(
        audit_kinds(&t.core, None)
            .await
            .contains(&AuditKind::LoginThrottled)
    );
}

#[tokio::test]
async fn ending_a_users_credentials_spares_only_what_is_kept() {
    let t = core().await;
    let alice = t
        .core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let client = from("10.0.0.1");
    let s1 = t
        .core
        .login_session("alice", PASSWORD.into(), false, &client)
        .await
        .unwrap();
    let s2 = t
        .core
        .login_session("alice", PASSWORD.into(), false, &client)
        .await
        .unwrap();
    let j1 = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, client.clone())
        .await
        .unwrap();
    let j2 = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, client.clone())
        .await
        .unwrap();
    let p2 = t.core.authenticate_bearer(&j2.access_token).unwrap();
    let Principal::Jwt(tok) = &p2 else { panic!() };
    let family = tok.sid.clone().unwrap();
    let s1p = t.core.authenticate_session(&s1.token).await.unwrap();
    // Keep the first session and the second family; everything else ends.
    t.core
        .end_credentials(
            &alice.id,
            Keep {
                session: Some(&s1.record.id),
                family: Some(&family),
            },
            AuditKind::PasswordChange,
            Some(&alice.id),
        )
        .await
        .unwrap();
    assert!(t.core.authenticate_session(&s1.token).await.is_ok());
    assert!(matches!(
        t.core.authenticate_session(&s2.token).await,
        Err(Error::Unauthenticated)
    ));
    assert!(t.core.authenticate_bearer(&j2.access_token).is_ok());
    assert!(
        t.core
            .refresh(&j2.refresh_token, PUBLIC_CLIENT)
            .await
            .is_ok()
    );
    assert!(matches!(
        t.core.authenticate_bearer(&j1.access_token),
        Err(Error::Unauthenticated)
    ));
    assert!(
        t.core
            .refresh(&j1.refresh_token, PUBLIC_CLIENT)
            .await
            .is_err()
    );
    let logins = t.core.logins(&s1p).await.unwrap();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(
        logins
            .iter()
            .any(|l| l.kind == CredentialKind::Session && l.current)
    );
    assert!(
        logins
            .iter()
            .any(|l| l.kind == CredentialKind::RefreshFamily && l.id == family)
    );
    // Keeping nothing also sets a not-before: even the kept ones end.
    t.clock.advance(1);
    t.core
        .end_credentials(&alice.id, Keep::NOTHING, AuditKind::LogoutAll, None)
        .await
        .unwrap();
    assert!(t.core.authenticate_session(&s1.token).await.is_err());
    assert!(t.core.authenticate_bearer(&j2.access_token).is_err());
    assert!(t.core.logins(&s1p).await.unwrap().is_empty());
    let kinds = audit_kinds(&t.core, Some(&alice.id)).await;
    assert!(kinds.contains(&AuditKind::PasswordChange) && kinds.contains(&AuditKind::LogoutAll));
}

#[tokio::test]
async fn a_session_slides_at_most_once_per_touch_interval_and_never_past_its_end() {
    let t = core_with(|p| p.sessions.absolute_timeout = Duration::from_secs(3000)).await;
    t.core
        .create_user("alice", PASSWORD.into(), "user")
        .await
        .unwrap();
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    let stored = |t: &TestCore| {
        let hash = s.record.token_hash.clone();
        let stores = t.core.stores.clone();
        let now = t.clock.now();
        async move { stores.sessions.load_session(&hash, now).await.unwrap() }
    };
    t.clock.advance(30);
    t.core.authenticate_session(&s.token).await.unwrap();
    assert_eq!(
        stored(&t).await.unwrap().last_seen_at,
        START,
        "within the touch interval"
    );
    t.clock.advance(40);
    let p = t.core.authenticate_session(&s.token).await.unwrap();
    let Principal::Session(entry) = &p else {
        panic!()
    };
    assert_eq!(entry.session.last_seen_at, START + 70);
    let rec = stored(&t).await.unwrap();
    assert_eq!(
        (rec.last_seen_at, rec.idle_expires_at),
        (START + 70, START + 70 + 1800)
    );
    // Used every 23 minutes, the session lives until its absolute end and no longer.
    for _ in 0..2 {
        t.clock.advance(1400);
        t.core.authenticate_session(&s.token).await.unwrap();
    }
    assert_eq!(stored(&t).await.unwrap().idle_expires_at, START + 3000);
    t.clock.set(START + 3000);
    assert!(matches!(
        t.core.authenticate_session(&s.token).await,
        Err(Error::Unauthenticated)
    ));
    // Idle for longer than the idle timeout ends a session too.
    let s = t
        .core
        .login_session("alice", PASSWORD.into(), false, &from("10.0.0.1"))
        .await
        .unwrap();
    t.clock.advance(1801);
    assert!(t.core.authenticate_session(&s.token).await.is_err());
}

#[tokio::test]
async fn a_disabled_user_and_a_demoted_admin_lose_what_they_hold() {
    let t = core().await;
    let root = t
        .core
        .create_user("root", PASSWORD.into(), "admin")
        .await
        .unwrap();
    let alice = t
        .core
        .create_user("alice", PASSWORD.into(), "admin")
        .await
        .unwrap();
    let c = from("10.0.0.1");
    let root_p = t
        .core
        .authenticate_session(
            &t.core
                .login_session("root", PASSWORD.into(), false, &c)
                .await
                .unwrap()
                .token,
        )
        .await
        .unwrap();
    let alice_pair = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, c.clone())
        .await
        .unwrap();
    let alice_p = t
        .core
        .authenticate_bearer(&alice_pair.access_token)
        .unwrap();
    t.core.require_admin(&alice_p).await.unwrap();
    // Demoted: the token she holds still says "admin", but the admin API asks the store.
    t.core
        .stores
        .users
        .set_role(&alice.id, &"user".into())
        .await
        .unwrap();
    assert!(matches!(
        t.core.require_admin(&alice_p).await,
        Err(Error::Forbidden("admin_required"))
    ));
    t.core.set_role(&root_p, &alice.id, "user").await.unwrap();
    assert!(
        t.core
            .authenticate_bearer(&alice_pair.access_token)
            .is_err()
    );
    t.clock.advance(1);
    let pair = t
        .core
        .password_grant("alice", PASSWORD.into(), PUBLIC_CLIENT, c.clone())
        .await
        .unwrap();
    t.core.disable_user(&root_p, &alice.id).await.unwrap();
    assert!(t.core.authenticate_bearer(&pair.access_token).is_err());
    assert!(
        t.core
            .refresh(&pair.refresh_token, PUBLIC_CLIENT)
            .await
            .is_err()
    );
    assert!(matches!(
        t.core
            .login_session("alice", PASSWORD.into(), false, &c)
            .await,
        Err(Error::InvalidCredentials)
    ));
    t.core.enable_user(&root_p, &alice.id).await.unwrap();
    t.core
        .login_session("alice", PASSWORD.into(), false, &c)
        .await
        .unwrap();
    let _ = root;
}
