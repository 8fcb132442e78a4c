//! One conformance suite for the store traits, run against every backend.
//!
//! Every method of every trait in `tessera_core::store` is exercised here, once, by a
//! `pub async fn name(s: Stores)`. The tests are grouped by trait (`user_tests!`,
//! `session_tests!`, …), and `conformance!(module, async-expression-yielding Stores,
//! [groups])` instantiates the groups a backend implements. Add a line at the bottom for
//! each new backend; add a new test to its group macro.
//!
//! Coverage, by trait:
//! - `UserStore`: `create_user`, `user_by_name`, `user_by_id`, `list_users`, `set_role`,
//!   `set_disabled`, `set_password_hash`, `bump_credential_epoch`;
//! - `SessionStore`: `create_session`, `load_session`, `touch_session`, `delete_session`,
//!   `purge_expired_sessions`, `sessions_of_user`, `delete_session_of_user`,
//!   `delete_sessions_of_user`;
//! - `RefreshStore`: `create_family`, `find_refresh_token`, `rotate_refresh_token`,
//!   `revoke_family`, `revoke_families_of_user`, `families_of_user`, `family`,
//!   `revoked_families`, `forget_sealed`;
//! - `ClientStore`: `create_client`, `client_by_id`;
//! - `RevocationStore`: `revoke_jti`, `revoked_jtis`, `set_not_before`, `not_befores`,
//!   `append_event`, `events_since`, `last_event_id`, `prune_events`;
//! - `AuditStore`: `record`, `events`;
//! - `KeyStore`: `signing_keys`, `add_signing_key`, `channel_key`;
//! - `RateLimitStore`: `hit`, `reset`.
//!
//! Every test gets fresh state: a new SQLite directory, a new PostgreSQL database, a new
//! Redis server.

use std::sync::Arc;

use serde_json::json;
use tessera_core::audit::AuditKind;
use tessera_core::identity::Role;
use tessera_core::revocation::RevocationKind;
use tessera_core::store::{
    AuditFilter, Client, RefreshFamily, RefreshToken, RevocationEvent, SessionRecord,
    SigningKeyRecord, StoreError, Stores, User,
};

pub fn user(name: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        username: name.into(),
        role: Role::User,
        password_hash: "$argon2id$fake".into(),
        disabled: false,
        created_at: 1000,
        credential_epoch: 0,
    }
}

pub fn session(user_id: &str, hash: u8, now: i64, idle: i64, absolute: i64) -> SessionRecord {
    SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: vec![hash; 32],
        user_id: user_id.into(),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + idle,
        expires_at: now + absolute,
        user_agent: Some("ua".into()),
        ip: Some("127.0.0.1".into()),
    }
}

pub fn family(user_id: &str, now: i64, idle: i64, absolute: i64) -> RefreshFamily {
    RefreshFamily {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.into(),
        client_id: "app".into(),
        created_at: now,
        last_used_at: now,
        idle_expires_at: now + idle,
        expires_at: now + absolute,
        revoked_at: None,
        user_agent: Some("ua".into()),
        ip: Some("10.0.0.1".into()),
    }
}

pub fn refresh_token(family_id: &str, hash: u8, now: i64) -> RefreshToken {
    RefreshToken {
        token_hash: vec![hash; 32],
        id: uuid::Uuid::new_v4().to_string(),
        family_id: family_id.into(),
        created_at: now,
        spent_at: None,
        sealed: None,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn by_id(mut v: Vec<RefreshFamily>) -> Vec<RefreshFamily> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

async fn new_user(s: &Stores, name: &str) -> User {
    let u = user(name);
    s.users.create_user(&u).await.unwrap();
    u
}

/// A family of `u`'s, stored with a first token whose hash is `[hash; 32]`.
async fn new_family(
    s: &Stores,
    u: &User,
    hash: u8,
    now: i64,
    idle: i64,
    absolute: i64,
) -> (RefreshFamily, RefreshToken) {
    let f = family(&u.id, now, idle, absolute);
    let t = refresh_token(&f.id, hash, now);
    s.refresh.create_family(&f, &t).await.unwrap();
    (f, t)
}

// ---------------------------------------------------------------------------------------
// UserStore

pub async fn users_roundtrip_and_unique_names(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    assert_eq!(
        s.users.user_by_name("alice").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(s.users.user_by_id(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.users.user_by_name("nobody").await.unwrap(), None);
    assert_eq!(s.users.user_by_id("no-such-id").await.unwrap(), None);
    let err = s.users.create_user(&user("alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        s.users.user_by_name("alice").await.unwrap(),
        Some(u),
        "the refused insert changed nothing"
    );
}

pub async fn users_list_in_name_order_with_cursor(s: Stores) {
    let mut all = Vec::new();
    for name in ["charlie", "alice", "dave", "bob"] {
        all.push(new_user(&s, name).await);
    }
    all.sort_by(|a, b| a.username.cmp(&b.username));
    assert_eq!(
        s.users.list_users(None, 10).await.unwrap(),
        all,
        "ordered by username"
    );
    assert_eq!(
        s.users.list_users(None, 2).await.unwrap(),
        all[..2].to_vec(),
        "at most `limit`"
    );
    assert_eq!(
        s.users.list_users(Some("bob"), 10).await.unwrap(),
        all[2..].to_vec(),
        "strictly after the cursor"
    );
    assert_eq!(
        s.users.list_users(Some("bob"), 1).await.unwrap(),
        all[2..3].to_vec(),
        "cursor and limit together"
    );
    assert_eq!(
        s.users.list_users(Some("b"), 10).await.unwrap(),
        all[1..].to_vec(),
        "the cursor need not be a username"
    );
    assert_eq!(s.users.list_users(Some("dave"), 10).await.unwrap(), vec![]);
    assert_eq!(s.users.list_users(None, 0).await.unwrap(), vec![]);
}

pub async fn users_updates_persist_and_report_existence(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let mut want = alice.clone();

    assert!(s.users.set_role(&alice.id, &Role::Admin).await.unwrap());
    want.role = Role::Admin;
    assert_eq!(
        s.users.user_by_id(&alice.id).await.unwrap(),
        Some(want.clone())
    );
    let auditor = Role::from("auditor");
    assert!(s.users.set_role(&alice.id, &auditor).await.unwrap());
    want.role = auditor;
    let got = s.users.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(got, want, "a custom role is persisted");
    assert_eq!(got.role.as_str(), "auditor");

    assert!(s.users.set_disabled(&alice.id, true).await.unwrap());
    want.disabled = true;
    assert_eq!(
        s.users.user_by_id(&alice.id).await.unwrap(),
        Some(want.clone())
    );
    assert!(
        s.users.set_disabled(&alice.id, true).await.unwrap(),
        "existence, not change"
    );
    assert!(s.users.set_disabled(&alice.id, false).await.unwrap());
    want.disabled = false;
    assert_eq!(
        s.users.user_by_id(&alice.id).await.unwrap(),
        Some(want.clone())
    );

    assert!(
        s.users
            .set_password_hash(&alice.id, "$argon2id$new")
            .await
            .unwrap()
    );
    want.password_hash = "$argon2id$new".into();
    assert_eq!(
        s.users.user_by_id(&alice.id).await.unwrap(),
        Some(want.clone())
    );

    assert!(!s.users.set_role("no-such-id", &Role::Admin).await.unwrap());
    assert!(!s.users.set_disabled("no-such-id", true).await.unwrap());
    assert!(
        !s.users
            .set_password_hash("no-such-id", "$argon2id$x")
            .await
            .unwrap()
    );
    assert_eq!(s.users.user_by_id("no-such-id").await.unwrap(), None);
    assert_eq!(
        s.users.list_users(None, 10).await.unwrap(),
        vec![want, bob],
        "only alice changed; no user was created"
    );
}

pub async fn users_credential_epoch_moves_forward(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let epoch = |id: String| {
        let users = s.users.clone();
        async move {
            users
                .user_by_id(&id)
                .await
                .unwrap()
                .unwrap()
                .credential_epoch
        }
    };
    assert_eq!(epoch(alice.id.clone()).await, 0);
    assert!(s.users.bump_credential_epoch(&alice.id).await.unwrap());
    assert_eq!(epoch(alice.id.clone()).await, 1);
    assert!(s.users.bump_credential_epoch(&alice.id).await.unwrap());
    assert_eq!(epoch(alice.id.clone()).await, 2);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let users = s.users.clone();
        let id = alice.id.clone();
        tasks.push(tokio::spawn(async move {
            users.bump_credential_epoch(&id).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(
        epoch(alice.id.clone()).await,
        12,
        "concurrent bumps are not lost"
    );
    assert_eq!(epoch(bob.id.clone()).await, 0, "per user");
    assert!(!s.users.bump_credential_epoch("no-such-id").await.unwrap());
}

// ---------------------------------------------------------------------------------------
// SessionStore

pub async fn sessions_hide_expired_and_cap_renewal(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    let rec = session(&u.id, 1, 1000, 100, 500);
    s.sessions.create_session(&rec).await.unwrap();
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1000)
            .await
            .unwrap(),
        Some(rec.clone())
    );
    assert_eq!(s.sessions.load_session(&[9; 32], 1000).await.unwrap(), None);
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1100)
            .await
            .unwrap(),
        None,
        "idle-expired"
    );
    assert!(s.sessions.touch_session(&rec.id, 1090, 1190).await.unwrap());
    let t = s
        .sessions
        .load_session(&rec.token_hash, 1100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.last_seen_at, t.idle_expires_at), (1090, 1190));
    s.sessions.touch_session(&rec.id, 1450, 1550).await.unwrap();
    let t = s
        .sessions
        .load_session(&rec.token_hash, 1450)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.idle_expires_at, 1500,
        "renewal never passes the absolute expiry"
    );
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1500)
            .await
            .unwrap(),
        None,
        "absolute-expired"
    );
}

pub async fn sessions_delete_and_purge(s: Stores) {
    let u = user("alice");
    s.users.create_user(&u).await.unwrap();
    let a = session(&u.id, 1, 1000, 100, 500);
    let b = session(&u.id, 2, 1000, 1000, 5000);
    s.sessions.create_session(&a).await.unwrap();
    s.sessions.create_session(&b).await.unwrap();
    assert_eq!(s.sessions.purge_expired_sessions(1200).await.unwrap(), 1);
    assert!(s.sessions.delete_session(&b.token_hash).await.unwrap());
    assert!(!s.sessions.delete_session(&b.token_hash).await.unwrap());
    assert_eq!(
        s.sessions.load_session(&b.token_hash, 1000).await.unwrap(),
        None
    );
}

pub async fn sessions_touch_reports_whether_session_exists(s: Stores) {
    let u = new_user(&s, "alice").await;
    // Without the optional fields, which must survive the renewal as absent.
    let rec = SessionRecord {
        user_agent: None,
        ip: None,
        ..session(&u.id, 1, 1000, 100, 500)
    };
    assert!(
        !s.sessions
            .touch_session("no-such-session", 1000, 1100)
            .await
            .unwrap(),
        "unknown session"
    );
    s.sessions.create_session(&rec).await.unwrap();
    assert!(s.sessions.touch_session(&rec.id, 1050, 1150).await.unwrap());
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1120)
            .await
            .unwrap(),
        Some(SessionRecord {
            last_seen_at: 1050,
            idle_expires_at: 1150,
            ..rec.clone()
        }),
        "only the use and the idle expiry move"
    );
    assert!(s.sessions.delete_session(&rec.token_hash).await.unwrap());
    assert!(
        !s.sessions.touch_session(&rec.id, 1060, 1160).await.unwrap(),
        "an ended session"
    );
    assert_eq!(
        s.sessions
            .load_session(&rec.token_hash, 1060)
            .await
            .unwrap(),
        None,
        "a touch never re-creates a deleted session"
    );
    assert_eq!(
        s.sessions.sessions_of_user(&u.id, 1060).await.unwrap(),
        vec![]
    );
}

pub async fn sessions_of_user_lists_live_oldest_first(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let newer = session(&alice.id, 1, 1000, 1000, 5000);
    let older = session(&alice.id, 2, 900, 1000, 5000);
    let idle_gone = session(&alice.id, 3, 800, 100, 5000);
    let absolute_gone = SessionRecord {
        idle_expires_at: 2000,
        expires_at: 1000,
        ..session(&alice.id, 4, 700, 0, 0)
    };
    let bobs = session(&bob.id, 5, 950, 1000, 5000);
    for rec in [&newer, &idle_gone, &bobs, &older, &absolute_gone] {
        s.sessions.create_session(rec).await.unwrap();
    }
    assert_eq!(
        s.sessions.sessions_of_user(&alice.id, 1000).await.unwrap(),
        vec![older.clone(), newer.clone()],
        "live only, oldest first"
    );
    assert_eq!(
        s.sessions.sessions_of_user(&alice.id, 1900).await.unwrap(),
        vec![newer],
        "the older one is idle-expired at 1900"
    );
    assert_eq!(
        s.sessions.sessions_of_user(&bob.id, 1000).await.unwrap(),
        vec![bobs]
    );
    assert_eq!(
        s.sessions.sessions_of_user("nobody", 1000).await.unwrap(),
        vec![]
    );
}

pub async fn sessions_delete_one_only_for_its_owner(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let a = session(&alice.id, 1, 1000, 1000, 5000);
    let b = session(&bob.id, 2, 1000, 1000, 5000);
    s.sessions.create_session(&a).await.unwrap();
    s.sessions.create_session(&b).await.unwrap();
    assert!(
        !s.sessions
            .delete_session_of_user(&b.id, &alice.id)
            .await
            .unwrap(),
        "not alice's"
    );
    assert_eq!(
        s.sessions.load_session(&b.token_hash, 1000).await.unwrap(),
        Some(b.clone()),
        "bob's session survives"
    );
    assert!(
        !s.sessions
            .delete_session_of_user("no-such-session", &alice.id)
            .await
            .unwrap()
    );
    assert!(
        s.sessions
            .delete_session_of_user(&a.id, &alice.id)
            .await
            .unwrap()
    );
    assert_eq!(
        s.sessions.load_session(&a.token_hash, 1000).await.unwrap(),
        None
    );
    assert!(
        !s.sessions
            .delete_session_of_user(&a.id, &alice.id)
            .await
            .unwrap(),
        "already gone"
    );
    assert_eq!(
        s.sessions.sessions_of_user(&bob.id, 1000).await.unwrap(),
        vec![b]
    );
}

pub async fn sessions_delete_all_of_user_with_and_without_keep(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let a1 = session(&alice.id, 1, 1000, 1000, 5000);
    let a2 = session(&alice.id, 2, 1001, 1000, 5000);
    let a3 = session(&alice.id, 3, 1002, 1000, 5000);
    let b1 = session(&bob.id, 4, 1000, 1000, 5000);
    for rec in [&a1, &a2, &a3, &b1] {
        s.sessions.create_session(rec).await.unwrap();
    }
    assert_eq!(
        s.sessions
            .delete_sessions_of_user(&alice.id, Some(&a2.id))
            .await
            .unwrap(),
        2,
        "all but the kept one"
    );
    assert_eq!(
        s.sessions.sessions_of_user(&alice.id, 1100).await.unwrap(),
        vec![a2.clone()]
    );
    for gone in [&a1, &a3] {
        assert_eq!(
            s.sessions
                .load_session(&gone.token_hash, 1100)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        s.sessions
            .delete_sessions_of_user(&alice.id, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.sessions.load_session(&a2.token_hash, 1100).await.unwrap(),
        None
    );
    assert_eq!(
        s.sessions
            .delete_sessions_of_user(&alice.id, None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.sessions.sessions_of_user(&bob.id, 1100).await.unwrap(),
        vec![b1.clone()],
        "other users' sessions survive"
    );
    assert_eq!(
        s.sessions
            .delete_sessions_of_user(&bob.id, Some("no-such-session"))
            .await
            .unwrap(),
        1,
        "keeping an unknown id keeps nothing"
    );
    assert_eq!(
        s.sessions.load_session(&b1.token_hash, 1100).await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// RefreshStore

pub async fn refresh_family_create_and_find(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (f, t) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    assert_eq!(
        s.refresh.find_refresh_token(&t.token_hash).await.unwrap(),
        Some((t.clone(), f.clone()))
    );
    assert_eq!(s.refresh.find_refresh_token(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.refresh.family(&f.id).await.unwrap(), Some(f.clone()));
    assert_eq!(s.refresh.family("no-such-family").await.unwrap(), None);
    // Optional columns round-trip as absent or set.
    let g = RefreshFamily {
        revoked_at: Some(1500),
        user_agent: None,
        ip: None,
        client_id: "other-app".into(),
        ..family(&u.id, 1100, 300, 3000)
    };
    let gt = RefreshToken {
        spent_at: Some(1200),
        sealed: Some(b"pair".to_vec()),
        ..refresh_token(&g.id, 2, 1100)
    };
    s.refresh.create_family(&g, &gt).await.unwrap();
    assert_eq!(
        s.refresh.find_refresh_token(&gt.token_hash).await.unwrap(),
        Some((gt, g.clone()))
    );
    assert_eq!(s.refresh.family(&g.id).await.unwrap(), Some(g));
    assert_eq!(
        s.refresh.family(&f.id).await.unwrap(),
        Some(f),
        "families are separate"
    );
}

pub async fn refresh_rotation_spends_once_and_slides_idle_expiry(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (f, t1) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    let t2 = refresh_token(&f.id, 2, 1100);
    assert!(
        s.refresh
            .rotate_refresh_token(&t1.token_hash, 1100, b"pair-1", &t2, 1400)
            .await
            .unwrap()
    );
    let spent = RefreshToken {
        spent_at: Some(1100),
        sealed: Some(b"pair-1".to_vec()),
        ..t1.clone()
    };
    let slid = RefreshFamily {
        last_used_at: 1100,
        idle_expires_at: 1400,
        ..f.clone()
    };
    assert_eq!(
        s.refresh.find_refresh_token(&t1.token_hash).await.unwrap(),
        Some((spent.clone(), slid.clone())),
        "spent with the sealed pair; the family's use and idle expiry moved"
    );
    assert_eq!(
        s.refresh.find_refresh_token(&t2.token_hash).await.unwrap(),
        Some((t2.clone(), slid.clone())),
        "the successor is stored, unspent"
    );

    let t3 = refresh_token(&f.id, 3, 1200);
    assert!(
        !s.refresh
            .rotate_refresh_token(&t1.token_hash, 1200, b"pair-x", &t3, 1500)
            .await
            .unwrap(),
        "a spent token does not rotate again"
    );
    assert_eq!(
        s.refresh.find_refresh_token(&t3.token_hash).await.unwrap(),
        None,
        "the loser inserts nothing"
    );
    assert_eq!(
        s.refresh.find_refresh_token(&t1.token_hash).await.unwrap(),
        Some((spent, slid.clone())),
        "nor re-seals the spent token, nor moves the family"
    );

    let t4 = refresh_token(&f.id, 4, 3900);
    assert!(
        s.refresh
            .rotate_refresh_token(&t2.token_hash, 3900, b"pair-2", &t4, 9999)
            .await
            .unwrap()
    );
    assert_eq!(
        s.refresh.family(&f.id).await.unwrap(),
        Some(RefreshFamily {
            last_used_at: 3900,
            idle_expires_at: 4000,
            ..f.clone()
        }),
        "the idle expiry never passes the absolute one"
    );

    let t5 = refresh_token(&f.id, 5, 3950);
    assert!(
        !s.refresh
            .rotate_refresh_token(&[9; 32], 3950, b"pair-3", &t5, 4000)
            .await
            .unwrap(),
        "an unknown token does not rotate"
    );
    assert_eq!(
        s.refresh.find_refresh_token(&t5.token_hash).await.unwrap(),
        None
    );
}

pub async fn refresh_rotation_race_has_one_winner(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (f, t) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let refresh = s.refresh.clone();
        let old = t.token_hash.clone();
        let new = refresh_token(&f.id, 100 + i, 1100);
        tasks.push(tokio::spawn(async move {
            let won = refresh
                .rotate_refresh_token(&old, 1100, &[i], &new, 1400)
                .await
                .unwrap();
            (won, i, new)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        let (won, i, new) = task.await.unwrap();
        if won {
            winners.push((i, new));
        } else {
            losers.push(new);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent rotations wins"
    );
    let (i, winner) = &winners[0];
    let (spent, fam) = s
        .refresh
        .find_refresh_token(&t.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.spent_at, Some(1100));
    assert_eq!(spent.sealed, Some(vec![*i]), "sealed by the winner");
    assert_eq!((fam.last_used_at, fam.idle_expires_at), (1100, 1400));
    assert_eq!(
        s.refresh
            .find_refresh_token(&winner.token_hash)
            .await
            .unwrap()
            .map(|(t, _)| t),
        Some(winner.clone())
    );
    for l in losers {
        assert_eq!(
            s.refresh.find_refresh_token(&l.token_hash).await.unwrap(),
            None,
            "no loser's successor is stored"
        );
    }
}

pub async fn refresh_revoke_family_once(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (f, t) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    assert!(s.refresh.revoke_family(&f.id, 1200).await.unwrap());
    let revoked = RefreshFamily {
        revoked_at: Some(1200),
        ..f.clone()
    };
    assert_eq!(
        s.refresh.family(&f.id).await.unwrap(),
        Some(revoked.clone())
    );
    assert!(
        !s.refresh.revoke_family(&f.id, 1250).await.unwrap(),
        "no longer live"
    );
    assert_eq!(
        s.refresh.family(&f.id).await.unwrap(),
        Some(revoked.clone()),
        "the first revocation time stays"
    );
    assert!(
        !s.refresh
            .revoke_family("no-such-family", 1200)
            .await
            .unwrap()
    );
    assert_eq!(
        s.refresh.families_of_user(&u.id, 1200).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.refresh.find_refresh_token(&t.token_hash).await.unwrap(),
        Some((t, revoked)),
        "found whatever its state"
    );
}

/// `revoke_family` reports "whether it was live", and a family past its idle or absolute
/// expiry is not live ([`RefreshFamily::is_live`]).
pub async fn refresh_revoke_family_of_expired_family_reports_not_live(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (idle_gone, _) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    let absolute_gone = RefreshFamily {
        idle_expires_at: 2000,
        expires_at: 1400,
        ..family(&u.id, 1000, 0, 0)
    };
    s.refresh
        .create_family(&absolute_gone, &refresh_token(&absolute_gone.id, 2, 1000))
        .await
        .unwrap();
    assert!(!idle_gone.is_live(1500) && !absolute_gone.is_live(1500));
    assert!(
        !s.refresh.revoke_family(&idle_gone.id, 1500).await.unwrap(),
        "idle-expired: was not live"
    );
    assert!(
        !s.refresh
            .revoke_family(&absolute_gone.id, 1500)
            .await
            .unwrap(),
        "absolute-expired: was not live"
    );
}

pub async fn refresh_revoke_families_of_user_keeps_one(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let (f1, _) = new_family(&s, &alice, 1, 1000, 300, 3000).await;
    let (f2, _) = new_family(&s, &alice, 2, 1010, 300, 2000).await;
    let (f3, _) = new_family(&s, &alice, 3, 1020, 300, 1000).await;
    let (old, _) = new_family(&s, &alice, 4, 900, 300, 3000).await;
    let (bobs, _) = new_family(&s, &bob, 5, 1000, 300, 3000).await;
    assert!(s.refresh.revoke_family(&old.id, 950).await.unwrap());

    assert_eq!(
        sorted(
            s.refresh
                .revoke_families_of_user(&alice.id, Some(&f2.id), 1100)
                .await
                .unwrap()
        ),
        sorted(vec![
            (f1.id.clone(), 4000),
            (f3.id.clone(), 2020),
            // Revoked earlier and not yet ended: announced again, in case whoever revoked
            // it has not announced it yet.
            (old.id.clone(), 3900),
        ]),
        "every revoked, unended family but the kept one, with its expiry"
    );
    for f in [&f1, &f3] {
        assert_eq!(
            s.refresh.family(&f.id).await.unwrap().unwrap().revoked_at,
            Some(1100)
        );
    }
    assert_eq!(
        s.refresh.family(&old.id).await.unwrap().unwrap().revoked_at,
        Some(950),
        "an earlier revocation is kept"
    );
    assert_eq!(
        s.refresh.families_of_user(&alice.id, 1100).await.unwrap(),
        vec![f2.clone()],
        "exactly the kept family survives"
    );
    assert_eq!(
        s.refresh.families_of_user(&bob.id, 1100).await.unwrap(),
        vec![bobs.clone()],
        "other users' families survive"
    );
    assert_eq!(
        sorted(
            s.refresh
                .revoke_families_of_user(&alice.id, None, 1200)
                .await
                .unwrap()
        ),
        sorted(vec![
            (f1.id.clone(), 4000),
            (f2.id.clone(), 3010),
            (f3.id.clone(), 2020),
            (old.id.clone(), 3900),
        ]),
        "the newly revoked one, and every earlier one still unended"
    );
    assert_eq!(
        s.refresh.family(&f2.id).await.unwrap().unwrap().revoked_at,
        Some(1200)
    );
    assert_eq!(
        s.refresh
            .revoke_families_of_user(&alice.id, None, 4100)
            .await
            .unwrap(),
        vec![],
        "nothing unended left to announce"
    );
    assert_eq!(
        s.refresh.families_of_user(&bob.id, 1250).await.unwrap(),
        vec![bobs]
    );
}

pub async fn refresh_families_of_user_lists_live_only(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    let (live1, _) = new_family(&s, &alice, 1, 1000, 300, 3000).await;
    let (live2, _) = new_family(&s, &alice, 2, 900, 500, 3000).await;
    let (revoked, _) = new_family(&s, &alice, 3, 950, 300, 3000).await;
    let (_idle_gone, _) = new_family(&s, &alice, 4, 800, 100, 3000).await;
    let absolute_gone = RefreshFamily {
        idle_expires_at: 1700,
        expires_at: 1000,
        ..family(&alice.id, 700, 0, 0)
    };
    s.refresh
        .create_family(&absolute_gone, &refresh_token(&absolute_gone.id, 5, 700))
        .await
        .unwrap();
    let (bobs, _) = new_family(&s, &bob, 6, 1000, 300, 3000).await;
    assert!(s.refresh.revoke_family(&revoked.id, 1000).await.unwrap());

    assert_eq!(
        by_id(s.refresh.families_of_user(&alice.id, 1000).await.unwrap()),
        by_id(vec![live1, live2.clone()]),
        "not revoked, idle- or absolute-expired ones"
    );
    assert_eq!(
        s.refresh.families_of_user(&alice.id, 1350).await.unwrap(),
        vec![live2],
        "the first one is idle-expired at 1350"
    );
    assert_eq!(
        s.refresh.families_of_user(&bob.id, 1000).await.unwrap(),
        vec![bobs]
    );
    assert_eq!(
        s.refresh.families_of_user("nobody", 1000).await.unwrap(),
        vec![]
    );
}

pub async fn refresh_revoked_families_until_expiry(s: Stores) {
    let u = new_user(&s, "alice").await;
    assert_eq!(s.refresh.revoked_families(0).await.unwrap(), vec![]);
    let (long, _) = new_family(&s, &u, 1, 1000, 300, 1000).await;
    let (short, _) = new_family(&s, &u, 2, 1000, 50, 100).await;
    let (_live, _) = new_family(&s, &u, 3, 1000, 300, 1000).await;
    assert!(s.refresh.revoke_family(&long.id, 1010).await.unwrap());
    assert!(s.refresh.revoke_family(&short.id, 1010).await.unwrap());
    assert_eq!(
        sorted(s.refresh.revoked_families(1050).await.unwrap()),
        sorted(vec![(long.id.clone(), 2000), (short.id.clone(), 1100)]),
        "revoked ones only, with their expiry"
    );
    assert_eq!(
        s.refresh.revoked_families(1100).await.unwrap(),
        vec![(long.id.clone(), 2000)],
        "not once expired"
    );
    assert_eq!(s.refresh.revoked_families(2000).await.unwrap(), vec![]);
}

pub async fn refresh_forget_sealed_before(s: Stores) {
    let u = new_user(&s, "alice").await;
    let (f, t1) = new_family(&s, &u, 1, 1000, 300, 3000).await;
    let t2 = refresh_token(&f.id, 2, 1100);
    let t3 = refresh_token(&f.id, 3, 1200);
    assert!(
        s.refresh
            .rotate_refresh_token(&t1.token_hash, 1100, b"pair-1", &t2, 1400)
            .await
            .unwrap()
    );
    assert!(
        s.refresh
            .rotate_refresh_token(&t2.token_hash, 1200, b"pair-2", &t3, 1500)
            .await
            .unwrap()
    );
    let token = |hash: Vec<u8>| {
        let refresh = s.refresh.clone();
        async move { refresh.find_refresh_token(&hash).await.unwrap().unwrap().0 }
    };
    assert_eq!(
        s.refresh.forget_sealed(1100).await.unwrap(),
        0,
        "strictly before"
    );
    assert_eq!(s.refresh.forget_sealed(1150).await.unwrap(), 1);
    assert_eq!(
        token(t1.token_hash.clone()).await,
        RefreshToken {
            spent_at: Some(1100),
            sealed: None,
            ..t1.clone()
        },
        "the pair is gone, the token stays spent"
    );
    assert_eq!(
        token(t2.token_hash.clone()).await.sealed,
        Some(b"pair-2".to_vec()),
        "spent later: kept"
    );
    assert_eq!(
        s.refresh.forget_sealed(1150).await.unwrap(),
        0,
        "already forgotten"
    );
    assert_eq!(s.refresh.forget_sealed(5000).await.unwrap(), 1);
    assert_eq!(token(t2.token_hash.clone()).await.sealed, None);
    assert_eq!(
        token(t3.token_hash.clone()).await,
        t3,
        "the unspent token is untouched"
    );
}

// ---------------------------------------------------------------------------------------
// ClientStore

pub async fn clients_roundtrip(s: Stores) {
    let c = Client {
        id: "billing".into(),
        name: "Billing API".into(),
        secret_hash: vec![7; 32],
        created_at: 1000,
    };
    let d = Client {
        id: "search".into(),
        name: "Search".into(),
        secret_hash: vec![8; 32],
        created_at: 1001,
    };
    assert_eq!(s.clients.client_by_id("billing").await.unwrap(), None);
    s.clients.create_client(&c).await.unwrap();
    s.clients.create_client(&d).await.unwrap();
    assert_eq!(s.clients.client_by_id("billing").await.unwrap(), Some(c));
    assert_eq!(s.clients.client_by_id("search").await.unwrap(), Some(d));
    assert_eq!(s.clients.client_by_id("unknown").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// RevocationStore

pub async fn revoked_jtis_until_expiry(s: Stores) {
    assert_eq!(s.revocations.revoked_jtis(0).await.unwrap(), vec![]);
    s.revocations.revoke_jti("j-long", 2000).await.unwrap();
    s.revocations.revoke_jti("j-short", 1100).await.unwrap();
    s.revocations.revoke_jti("j-long", 2000).await.unwrap();
    assert_eq!(
        sorted(s.revocations.revoked_jtis(1000).await.unwrap()),
        vec![("j-long".into(), 2000), ("j-short".into(), 1100)],
        "each once, with its expiry"
    );
    assert_eq!(
        s.revocations.revoked_jtis(1100).await.unwrap(),
        vec![("j-long".into(), 2000)],
        "expired ones are left out"
    );
    assert_eq!(s.revocations.revoked_jtis(2000).await.unwrap(), vec![]);
}

/// Both SQL backends keep the greatest instant (`MAX` / `GREATEST`): a later call with a
/// later instant overwrites, one with an earlier instant never un-revokes tokens.
pub async fn not_befores_keep_the_latest_instant(s: Stores) {
    let alice = new_user(&s, "alice").await;
    let bob = new_user(&s, "bob").await;
    assert_eq!(s.revocations.not_befores().await.unwrap(), vec![]);
    s.revocations.set_not_before(&alice.id, 100).await.unwrap();
    s.revocations.set_not_before(&bob.id, 50).await.unwrap();
    assert_eq!(
        sorted(s.revocations.not_befores().await.unwrap()),
        sorted(vec![(alice.id.clone(), 100), (bob.id.clone(), 50)])
    );
    s.revocations.set_not_before(&alice.id, 200).await.unwrap();
    assert_eq!(
        sorted(s.revocations.not_befores().await.unwrap()),
        sorted(vec![(alice.id.clone(), 200), (bob.id.clone(), 50)]),
        "a later instant overwrites"
    );
    s.revocations.set_not_before(&alice.id, 150).await.unwrap();
    assert_eq!(
        sorted(s.revocations.not_befores().await.unwrap()),
        sorted(vec![(alice.id.clone(), 200), (bob.id.clone(), 50)]),
        "an earlier instant does not move it back"
    );
}

pub async fn revocation_feed_is_ordered_and_resumable(s: Stores) {
    assert_eq!(s.revocations.last_event_id().await.unwrap(), 0);
    let mut ids = Vec::new();
    for (kind, key) in [("jti", "j1"), ("family", "f1"), ("user", "u1")] {
        ids.push(
            s.revocations
                .append_event(&RevocationEvent {
                    id: 0,
                    kind: kind.into(),
                    key: key.into(),
                    expires_at: 5,
                })
                .await
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s.revocations.last_event_id().await.unwrap(), ids[2]);
    let after_first = s.revocations.events_since(ids[0], 10).await.unwrap();
    assert_eq!(
        after_first
            .iter()
            .map(|e| e.key.as_str())
            .collect::<Vec<_>>(),
        ["f1", "u1"]
    );
    assert_eq!(
        s.revocations.events_since(ids[0], 1).await.unwrap().len(),
        1
    );
    assert_eq!(
        s.revocations.events_since(0, 10).await.unwrap(),
        vec![
            RevocationEvent {
                id: ids[0],
                kind: RevocationKind::Jti,
                key: "j1".into(),
                expires_at: 5,
            },
            RevocationEvent {
                id: ids[1],
                kind: RevocationKind::Family,
                key: "f1".into(),
                expires_at: 5,
            },
            RevocationEvent {
                id: ids[2],
                kind: RevocationKind::User,
                key: "u1".into(),
                expires_at: 5,
            },
        ],
        "whole events, oldest first"
    );
    assert_eq!(
        s.revocations.events_since(ids[2], 10).await.unwrap(),
        vec![]
    );
}

/// A feed row's `at` is the database's clock, not the caller's: prune with bounds far
/// from any plausible "now".
pub async fn revocation_feed_prunes_by_record_time(s: Stores) {
    const PAST: i64 = 946_684_800; // 2000-01-01
    const FUTURE: i64 = 32_503_680_000; // 3000-01-01
    let event = |kind: RevocationKind, key: &str| RevocationEvent {
        id: 0,
        kind,
        key: key.into(),
        expires_at: 77,
    };
    let mut ids = Vec::new();
    for key in ["j1", "j2", "j3"] {
        ids.push(
            s.revocations
                .append_event(&event(RevocationKind::Jti, key))
                .await
                .unwrap(),
        );
    }
    assert_eq!(s.revocations.prune_events(PAST).await.unwrap(), 0);
    assert_eq!(s.revocations.events_since(0, 10).await.unwrap().len(), 3);
    assert_eq!(s.revocations.last_event_id().await.unwrap(), ids[2]);
    assert_eq!(s.revocations.prune_events(FUTURE).await.unwrap(), 3);
    assert_eq!(s.revocations.events_since(0, 10).await.unwrap(), vec![]);
    assert_eq!(
        s.revocations.last_event_id().await.unwrap(),
        0,
        "the feed is empty"
    );
    assert_eq!(s.revocations.prune_events(FUTURE).await.unwrap(), 0);
    let next = s
        .revocations
        .append_event(&event(RevocationKind::NotBefore, "u1"))
        .await
        .unwrap();
    assert!(next > ids[2], "ids are never reused after pruning");
    assert_eq!(
        s.revocations.events_since(ids[2], 10).await.unwrap(),
        vec![RevocationEvent {
            id: next,
            ..event(RevocationKind::NotBefore, "u1")
        }],
        "a reader resuming from before the prune sees the new event"
    );
}

// ---------------------------------------------------------------------------------------
// AuditStore

pub async fn audit_events_newest_first_filtered_and_paged(s: Stores) {
    let filter = |user_id: Option<&str>, kind: Option<AuditKind>, before_id, limit| AuditFilter {
        user_id: user_id.map(str::to_owned),
        kind,
        before_id,
        limit,
    };
    assert!(
        s.audit
            .events(&filter(None, None, None, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let recorded = vec![
        (
            100,
            AuditKind::Login,
            Some("alice".to_owned()),
            json!({"ip": "10.0.0.1", "method": "session"}),
        ),
        (
            101,
            AuditKind::LoginFailed,
            None,
            json!({"username": "mallory"}),
        ),
        (102, AuditKind::Login, Some("bob".to_owned()), json!({})),
        (
            103,
            AuditKind::Logout,
            Some("alice".to_owned()),
            json!({"nested": {"list": [1, 2.5, "three", null, true]}, "text": "é ✓ \"q\""}),
        ),
        (104, AuditKind::Login, Some("alice".to_owned()), json!(null)),
        (105, AuditKind::from("custom_kind"), None, json!(["a", -7])),
    ];
    for (at, kind, user_id, detail) in &recorded {
        s.audit
            .record(*at, kind, user_id.as_deref(), detail)
            .await
            .unwrap();
    }
    let all = s
        .audit
        .events(&filter(None, None, None, 100))
        .await
        .unwrap();
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id),
        "newest first: {all:?}"
    );
    assert_eq!(
        all.iter()
            .rev()
            .map(|e| (e.at, e.kind.clone(), e.user_id.clone(), e.detail.clone()))
            .collect::<Vec<_>>(),
        recorded,
        "every field round-trips, detail as JSON"
    );
    let id = |at: i64| all.iter().find(|e| e.at == at).unwrap().id;
    let ats = |events: Vec<tessera_core::store::AuditEvent>| {
        events.into_iter().map(|e| e.at).collect::<Vec<_>>()
    };
    let list = |f: AuditFilter| {
        let audit = s.audit.clone();
        async move { ats(audit.events(&f).await.unwrap()) }
    };
    assert_eq!(
        list(filter(Some("alice"), None, None, 100)).await,
        [104, 103, 100],
        "by user"
    );
    assert_eq!(
        list(filter(None, Some(AuditKind::Login), None, 100)).await,
        [104, 102, 100],
        "by kind"
    );
    assert_eq!(
        list(filter(Some("alice"), Some(AuditKind::Login), None, 100)).await,
        [104, 100],
        "by user and kind"
    );
    assert_eq!(
        list(filter(None, Some(AuditKind::LoginFailed), None, 100)).await,
        [101]
    );
    assert_eq!(
        list(filter(
            None,
            Some(AuditKind::from("custom_kind")),
            None,
            100
        ))
        .await,
        [105]
    );
    assert_eq!(
        list(filter(Some("nobody"), None, None, 100)).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(filter(None, Some(AuditKind::AdminRevoke), None, 100)).await,
        Vec::<i64>::new()
    );
    // Paging: newest first, `before_id` exclusive, at most `limit`.
    assert_eq!(list(filter(None, None, None, 2)).await, [105, 104]);
    assert_eq!(list(filter(None, None, Some(id(104)), 2)).await, [103, 102]);
    assert_eq!(list(filter(None, None, Some(id(102)), 2)).await, [101, 100]);
    assert_eq!(
        list(filter(None, None, Some(id(100)), 2)).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(filter(
            Some("alice"),
            Some(AuditKind::Login),
            Some(id(104)),
            10
        ))
        .await,
        [100],
        "paging within a filter"
    );
    assert_eq!(list(filter(Some("alice"), None, None, 1)).await, [104]);
    assert_eq!(
        list(filter(None, None, None, 0)).await,
        Vec::<i64>::new(),
        "at most zero"
    );
}

// ---------------------------------------------------------------------------------------
// KeyStore

pub async fn signing_keys_roundtrip(s: Stores) {
    assert!(s.keys.signing_keys().await.unwrap().is_empty());
    let k = |kid: &str, activates_at| SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_pem: "pem".into(),
        created_at: 5,
        activates_at,
    };
    s.keys.add_signing_key(&k("late", 50)).await.unwrap();
    s.keys.add_signing_key(&k("early", 10)).await.unwrap();
    assert_eq!(
        s.keys.signing_keys().await.unwrap(),
        vec![k("early", 10), k("late", 50)],
        "in order of activation"
    );
    assert!(matches!(
        s.keys.add_signing_key(&k("early", 10)).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn channel_key_first_one_stored_wins(s: Stores) {
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let keys = s.keys.clone();
        tasks.push(tokio::spawn(async move {
            keys.channel_key(&[i; 32]).await.unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let first = got[0].clone();
    assert!(
        got.iter().all(|k| *k == first),
        "every caller gets the same key: {got:?}"
    );
    assert!(
        (0..10u8).any(|i| first == vec![i; 32]),
        "one of the offered keys"
    );
    assert_eq!(
        s.keys.channel_key(&[99; 32]).await.unwrap(),
        first,
        "a later fresh key is ignored"
    );
    assert!(
        s.keys.signing_keys().await.unwrap().is_empty(),
        "not a signing key"
    );
}

// ---------------------------------------------------------------------------------------
// RateLimitStore

/// Throttling counters: atomic under concurrency, resettable. Run against every backend
/// that implements `RateLimitStore`, Redis included.
pub async fn rate_limits_count_atomically(s: Stores) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let rl = s.rate_limits.clone();
        tasks.push(tokio::spawn(async move {
            rl.hit("acct:alice", 900, 1000).await.unwrap().0
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u32>>(),
        "every hit got its own count"
    );
    let (_, start) = s.rate_limits.hit("acct:alice", 900, 1000).await.unwrap();
    assert!((100..=1000).contains(&start), "window start {start}");
    s.rate_limits.reset("acct:alice").await.unwrap();
    assert_eq!(
        s.rate_limits.hit("acct:alice", 900, 1000).await.unwrap().0,
        1
    );
    assert_eq!(
        s.rate_limits
            .hit("ip:127.0.0.1", 900, 1000)
            .await
            .unwrap()
            .0,
        1,
        "keys are independent"
    );
}

/// SQL backends take the window from `now`, so expiry is testable with a fake clock.
/// (Redis windows come from Redis TTLs, on Redis's own clock: not testable this way.)
pub async fn rate_limit_windows_restart(s: Stores) {
    assert_eq!(s.rate_limits.hit("k", 100, 1000).await.unwrap(), (1, 1000));
    assert_eq!(s.rate_limits.hit("k", 100, 1099).await.unwrap(), (2, 1000));
    assert_eq!(s.rate_limits.hit("k", 100, 1100).await.unwrap(), (1, 1100));
}

// ---------------------------------------------------------------------------------------
// Instantiation

/// `tests!(make; [#[attr]] name, …)`: one `#[tokio::test]` per name, each on fresh
/// `make.await` stores, calling the suite's function of that name.
macro_rules! tests {
    ($make:expr; $($(#[$attr:meta])* $test:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test($make.await).await
            }
        )*
    };
}

macro_rules! user_tests {
    ($make:expr) => {
        tests!($make;
            users_roundtrip_and_unique_names,
            users_list_in_name_order_with_cursor,
            users_updates_persist_and_report_existence,
            users_credential_epoch_moves_forward,
        );
    };
}

macro_rules! session_tests {
    ($make:expr) => {
        tests!($make;
            sessions_hide_expired_and_cap_renewal,
            sessions_delete_and_purge,
            sessions_touch_reports_whether_session_exists,
            sessions_of_user_lists_live_oldest_first,
            sessions_delete_one_only_for_its_owner,
            sessions_delete_all_of_user_with_and_without_keep,
        );
    };
}

macro_rules! refresh_tests {
    ($make:expr) => {
        tests!($make;
            refresh_family_create_and_find,
            refresh_rotation_spends_once_and_slides_idle_expiry,
            refresh_rotation_race_has_one_winner,
            refresh_revoke_family_once,
            refresh_revoke_family_of_expired_family_reports_not_live,
            refresh_revoke_families_of_user_keeps_one,
            refresh_families_of_user_lists_live_only,
            refresh_revoked_families_until_expiry,
            refresh_forget_sealed_before,
        );
    };
}

macro_rules! client_tests {
    ($make:expr) => {
        tests!($make; clients_roundtrip);
    };
}

macro_rules! revocation_tests {
    ($make:expr) => {
        tests!($make;
            revoked_jtis_until_expiry,
            not_befores_keep_the_latest_instant,
            revocation_feed_is_ordered_and_resumable,
            revocation_feed_prunes_by_record_time,
        );
    };
}

macro_rules! audit_tests {
    ($make:expr) => {
        tests!($make; audit_events_newest_first_filtered_and_paged);
    };
}

macro_rules! key_tests {
    ($make:expr) => {
        tests!($make; signing_keys_roundtrip, channel_key_first_one_stored_wins);
    };
}

macro_rules! rate_limit_tests {
    ($make:expr) => {
        tests!($make; rate_limits_count_atomically);
    };
}

/// Windows on the caller's clock: SQL backends only (Redis windows are Redis TTLs).
macro_rules! sql_rate_limit_tests {
    ($make:expr) => {
        tests!($make; rate_limit_windows_restart);
    };
}

/// `conformance!(module, make, [groups])`: the given groups of tests, against `make`.
macro_rules! conformance {
    ($backend:ident, $make:expr, [$($group:ident),+ $(,)?]) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $( $group!($make); )+
        }
    };
}

async fn sqlite() -> Stores {
    // The directory is leaked on purpose: it must outlive the pool, and the OS temp dir is
    // cleaned by the harness run, not by each test.
    let dir = tempfile::tempdir().unwrap().keep();
    Stores::sqlite(
        tessera_core::store::sqlite::SqliteStore::open(&dir)
            .await
            .unwrap(),
    )
}

conformance!(
    sqlite_backend,
    sqlite(),
    [
        user_tests,
        session_tests,
        refresh_tests,
        client_tests,
        revocation_tests,
        audit_tests,
        key_tests,
        rate_limit_tests,
        sql_rate_limit_tests,
    ]
);

async fn postgres() -> Stores {
    let url = tessera_testkit::shared_postgres().database().await;
    Stores::postgres(
        tessera_core::store::postgres::PostgresStore::connect(&url)
            .await
            .unwrap(),
    )
}

conformance!(
    postgres_backend,
    postgres(),
    [
        user_tests,
        session_tests,
        refresh_tests,
        client_tests,
        revocation_tests,
        audit_tests,
        key_tests,
        rate_limit_tests,
        sql_rate_limit_tests,
    ]
);

/// SQLite stores with the traits Redis implements (sessions, rate limits) in a Redis of
/// the test's own. Only those traits' groups run against it.
async fn redis() -> Stores {
    // Kept alive for the whole test binary; its watchdog stops it when the binary exits.
    let redis: &'static tessera_testkit::RedisServer =
        Box::leak(Box::new(tessera_testkit::RedisServer::start()));
    let r = tessera_core::redis::Redis::new(&redis.url()).unwrap();
    let mut stores = sqlite().await;
    stores.sessions = Arc::new(tessera_core::store::redis_sessions::RedisSessionStore::new(
        r.clone(),
    ));
    stores.rate_limits = Arc::new(tessera_core::redis::RedisRateLimits(r));
    stores
}

conformance!(redis_backend, redis(), [session_tests, rate_limit_tests]);
