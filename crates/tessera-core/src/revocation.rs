//! Revocation and invalidation, kept in process memory and in step across instances.
//!
//! # What each instance holds
//! - [`RevocationList`]: revoked `jti`s (until the token's `exp` plus the verifier's
//!   leeway, during which a verifier still accepts it), revoked refresh families (until
//!   the family's end plus the leeway) and per-user "not before" instants. Every bearer
//!   verification consults it in O(1).
//! - [`SessionCache`]: sessions already looked up, with their user, so that a request
//!   costs no store round trip in the common case.
//!
//! # How instances stay in step
//! Every revocation is written durably (its own table) and appended to the store's
//! *revocation feed* ([`RevocationEvent`]s with increasing ids, visible in id order: see
//! the stores' `append_event`). Each instance applies the feed: pushed immediately over the
//! Redis channel when one is configured ([`crate::redis`], authenticated with a key shared
//! through the database), and by polling the feed from its *watermark* — the id up to
//! which every event has been applied. Pushed and local events are applied at once but
//! never move the watermark (they are remembered so that the poll does not apply them
//! twice), so an event whose push was lost is still found by the next poll.
//!
//! # Monotonic state
//! Everything here only moves forward: revocations are added, never withdrawn while a
//! token could still be accepted; the not-before instants only grow. The session cache is
//! the one place that adds *positive* state, and it can never bring an ended session back:
//! it has a generation, bumped by every invalidation, and a lookup that read the store
//! before an invalidation cannot fill the cache after it ([`SessionCache::put_if_current`]).
//!
//! The session cache is used only while this instance cannot miss an invalidation: when
//! it is the only writer (SQLite without Redis), or while its push channel is connected.
//! Otherwise every session lookup reads the store. When neither the channel nor a feed
//! poll has confirmed the state for `revocation_staleness_bound`, bearer tokens are refused
//! with 503 (fail closed) unless `revocation_fail_open` is set.
//!
//! [`Core::end_credentials`] is the one path by which logout-all, password change, role change,
//! disabling a user and admin revocation end a user's credentials.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::json;
use tessera_verify::{AccessClaims, RevocationCheck};

use crate::Core;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::identity::AuthenticatedSession;
use crate::opaque::{hex, unhex};
use crate::store::{RevocationEvent, StoreError, Stores};
use crate::wire::wire_enum;

wire_enum! {
    /// What a [`RevocationEvent`] revokes or invalidates.
    pub enum RevocationKind {
        /// One access token, by `jti`, until its expiry.
        Jti = "jti",
        /// A refresh family and every access token issued from it.
        Family = "family",
        /// Every token of a user issued before an instant.
        NotBefore = "not_before",
        /// One session, by token hash (hex): drop it from caches.
        Session = "session",
        /// Every cached session of a user.
        User = "user",
        /// Reload signing keys.
        Keys = "keys",
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while holding it; every write below is a
    // single insert/remove/retain, so the data is still consistent.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Lists {
    jtis: HashMap<String, i64>,
    families: HashMap<String, i64>,
    not_before: HashMap<String, i64>,
}

/// Revocation state in process memory.
#[derive(Default)]
pub struct RevocationList {
    lists: RwLock<Lists>,
    /// The verifier's clock-skew allowance, seconds: entries outlive `exp` by this much.
    leeway: i64,
}

impl RevocationList {
    /// Load what is still relevant at `now` from the stores: everything a verifier with
    /// `leeway` seconds of clock-skew allowance could still accept.
    pub async fn load(stores: &Stores, now: i64, leeway: i64) -> Result<Self, StoreError> {
        let lists = Lists {
            jtis: stores
                .revocations
                .revoked_jtis(now - leeway)
                .await?
                .into_iter()
                .collect(),
            families: stores
                .refresh
                .revoked_families(now - leeway)
                .await?
                .into_iter()
                .collect(),
            not_before: stores
                .revocations
                .not_befores()
                .await?
                .into_iter()
                .collect(),
        };
        Ok(Self {
            lists: RwLock::new(lists),
            leeway,
        })
    }

    /// Forget entries that can no longer match a token any verifier accepts: a token is
    /// accepted until `exp + leeway`, so its revocation is kept that long too.
    pub fn purge(&self, now: i64) {
        let cutoff = now - self.leeway;
        let mut l = write(&self.lists);
        l.jtis.retain(|_, exp| *exp > cutoff);
        l.families.retain(|_, exp| *exp > cutoff);
    }

    /// Whether this family is revoked.
    pub fn family_revoked(&self, id: &str) -> bool {
        read(&self.lists).families.contains_key(id)
    }
}

impl RevocationCheck for RevocationList {
    fn is_revoked(&self, c: &AccessClaims) -> bool {
        let l = read(&self.lists);
        l.jtis.contains_key(&c.jti)
            || c.sid
                .as_ref()
                .is_some_and(|sid| l.families.contains_key(sid))
            || l.not_before.get(&c.sub).is_some_and(|nb| c.iat < *nb)
    }
}

#[derive(Default)]
struct Cached {
    sessions: HashMap<Vec<u8>, Arc<AuthenticatedSession>>,
    by_user: HashMap<String, HashSet<Vec<u8>>>,
    /// Bumped by every invalidation (under the write lock).
    generation: u64,
}

/// Sessions already looked up, by token hash. Entries are shared (`Arc`) with the requests
/// that present them, and hold no password hash.
#[derive(Default)]
pub struct SessionCache {
    cached: RwLock<Cached>,
}

impl SessionCache {
    /// The cached session for this token hash.
    pub fn get(&self, hash: &[u8]) -> Option<Arc<AuthenticatedSession>> {
        read(&self.cached).sessions.get(hash).cloned()
    }

    /// The generation to pass to [`SessionCache::put_if_current`]: read it *before*
    /// reading the store.
    pub fn generation(&self) -> u64 {
        read(&self.cached).generation
    }

    /// Remember a session read from the store, unless any invalidation happened since
    /// `generation` was read: that invalidation may be this session's own (a logout that
    /// deleted the row after our read), and a put after it would bring the session back.
    /// Whether it was cached.
    ///
    /// One counter for the whole cache rather than per-session tombstones: invalidations
    /// are rare next to lookups, so a fill that loses this race only costs one more store
    /// read later, and nothing has to be remembered about sessions that are gone.
    pub fn put_if_current(&self, entry: Arc<AuthenticatedSession>, generation: u64) -> bool {
        let mut c = write(&self.cached);
        if c.generation != generation {
            return false;
        }
        Self::insert(&mut c, entry);
        true
    }

    /// Remember a session unconditionally (for tests and benchmarks of the cache itself).
    pub fn put(&self, entry: Arc<AuthenticatedSession>) {
        Self::insert(&mut write(&self.cached), entry);
    }

    fn insert(c: &mut Cached, entry: Arc<AuthenticatedSession>) {
        c.by_user
            .entry(entry.identity.user_id.clone())
            .or_default()
            .insert(entry.session.token_hash.clone());
        c.sessions.insert(entry.session.token_hash.clone(), entry);
    }

    /// Forget one session.
    pub fn remove(&self, hash: &[u8]) {
        let mut c = write(&self.cached);
        Self::invalidate(&mut c, hash);
    }

    /// Forget a session a lookup found missing from the store. Unlike [`Self::remove`],
    /// this bumps the generation only if it was cached, so that a stream of unknown
    /// cookies cannot keep every other lookup from filling the cache. (An invalidation
    /// from a logout always goes through [`Self::remove`].)
    pub fn forget_missing(&self, hash: &[u8]) {
        if read(&self.cached).sessions.contains_key(hash) {
            Self::invalidate(&mut write(&self.cached), hash);
        }
    }

    fn invalidate(c: &mut Cached, hash: &[u8]) {
        c.generation += 1;
        if let Some(entry) = c.sessions.remove(hash)
            && let Some(set) = c.by_user.get_mut(&entry.identity.user_id)
        {
            set.remove(hash);
        }
    }

    /// Forget every session of a user.
    pub fn remove_user(&self, user_id: &str) {
        let mut c = write(&self.cached);
        c.generation += 1;
        if let Some(hashes) = c.by_user.remove(user_id) {
            for h in hashes {
                c.sessions.remove(&h);
            }
        }
    }

    /// Forget sessions that have ended by `now` (the store purges its own copy).
    pub fn purge(&self, now: i64) {
        let mut c = write(&self.cached);
        let before = c.sessions.len();
        c.sessions
            .retain(|_, e| now < e.session.idle_expires_at && now < e.session.expires_at);
        if c.sessions.len() != before {
            let live: HashSet<Vec<u8>> = c.sessions.keys().cloned().collect();
            c.by_user.retain(|_, hashes| {
                hashes.retain(|h| live.contains(h));
                !hashes.is_empty()
            });
        }
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        read(&self.cached).sessions.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut c = write(&self.cached);
        c.generation += 1;
        c.sessions.clear();
        c.by_user.clear();
    }
}

/// A channel that pushes events to the other instances.
#[async_trait::async_trait]
pub trait Push: Send + Sync {
    /// Send an event, waiting (briefly) until the channel took it, so that the other
    /// instances have it before the request that caused it is answered; whether it was
    /// sent. Best effort: the feed is the durable path.
    async fn push(&self, event: &RevocationEvent) -> bool;
    /// Whether the channel is connected right now.
    fn connected(&self) -> bool;
}

/// Revocation state, session cache, and how they stay current.
pub struct Revocations {
    /// Token revocations.
    pub list: RevocationList,
    /// Cached sessions.
    pub sessions: SessionCache,
    /// The watermark: every feed event with an id at or below it has been applied.
    watermark: AtomicI64,
    /// Events above the watermark already applied (pushed or local), so that the poll does
    /// not apply them twice.
    ahead: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// Pushes that failed, and how many of them a later successful poll has covered: the
    /// channel is degraded (caches not trusted) while the two differ.
    push_failures: AtomicI64,
    push_failures_confirmed: AtomicI64,
    /// Monotonic instant (ms, from the process start) of the last successful feed poll.
    last_poll_ms: AtomicI64,
    /// No other instance writes to the store: local invalidation is complete.
    single_writer: bool,
    push: RwLock<Option<Arc<dyn Push>>>,
    started: std::time::Instant,
    staleness_ms: i64,
    fail_open: bool,
    cache_was_usable: AtomicBool,
    /// Serialises feed polls.
    polling: tokio::sync::Mutex<()>,
}

/// How an instance keeps its revocation state in step.
#[derive(Debug, Clone)]
pub struct SyncPolicy {
    /// No other instance writes to the store: local invalidation is complete.
    pub single_writer: bool,
    /// How long state unconfirmed by the channel or a poll is still trusted.
    pub staleness_bound: std::time::Duration,
    /// Past the bound, keep accepting instead of refusing.
    pub fail_open: bool,
    /// The verifier's clock-skew allowance, seconds.
    pub leeway: i64,
}

impl Revocations {
    /// Load the state as of `now`.
    pub async fn load(stores: &Stores, now: i64, sync: &SyncPolicy) -> Result<Self, StoreError> {
        // The watermark first, then the state: every event at or below it was appended
        // after its effect was durable, so the state read next includes it.
        let watermark = stores.revocations.last_event_id().await?;
        let list = RevocationList::load(stores, now, sync.leeway).await?;
        let (single_writer, staleness, fail_open) =
            (sync.single_writer, sync.staleness_bound, sync.fail_open);
        Ok(Self {
            list,
            sessions: SessionCache::default(),
            watermark: AtomicI64::new(watermark),
            ahead: std::sync::Mutex::default(),
            push_failures: AtomicI64::new(0),
            push_failures_confirmed: AtomicI64::new(0),
            last_poll_ms: AtomicI64::new(0),
            single_writer,
            push: RwLock::new(None),
            started: std::time::Instant::now(),
            staleness_ms: staleness.as_millis() as i64,
            fail_open,
            cache_was_usable: AtomicBool::new(true),
            polling: tokio::sync::Mutex::new(()),
        })
    }

    /// Attach the push channel.
    pub fn set_push(&self, push: Arc<dyn Push>) {
        *write(&self.push) = Some(push);
    }

    /// Whether this instance is the store's only writer (its local invalidation is
    /// complete, so it needs no feed poll).
    pub fn single_writer(&self) -> bool {
        self.single_writer
    }

    fn elapsed_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Whether pushes can be relied on right now: the channel is connected, and no push of
    /// ours has failed since the last poll that confirmed the feed.
    fn pushed(&self) -> bool {
        read(&self.push).as_ref().is_some_and(|p| p.connected())
            && self.push_failures.load(Ordering::SeqCst)
                == self.push_failures_confirmed.load(Ordering::SeqCst)
    }

    /// The watermark (for tests and metrics).
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::SeqCst)
    }

    /// Whether the session cache may answer: only while no invalidation can be missed.
    /// When it stops being usable it is emptied, so that stale entries never come back.
    pub fn cache_usable(&self) -> bool {
        let usable = self.single_writer || self.pushed();
        if !usable && self.cache_was_usable.swap(false, Ordering::SeqCst) {
            self.sessions.clear();
        } else if usable {
            self.cache_was_usable.store(true, Ordering::SeqCst);
        }
        usable
    }

    /// Whether in-memory revocation state may be trusted right now;
    /// [`Error::StaleRevocationState`] when it is older than the staleness bound and the
    /// server fails closed.
    pub fn check_current(&self) -> Result<(), Error> {
        if self.single_writer || self.pushed() || self.fail_open {
            return Ok(());
        }
        let age = self.elapsed_ms() - self.last_poll_ms.load(Ordering::SeqCst);
        if age <= self.staleness_ms {
            return Ok(());
        }
        Err(Error::StaleRevocationState)
    }

    /// Apply an event that arrived ahead of the feed (pushed, or written here): at once,
    /// remembered so the poll skips it, without moving the watermark. Applying is
    /// idempotent anyway; remembering only saves the work.
    pub fn apply_ahead(&self, e: &RevocationEvent) {
        if self.single_writer {
            // No feed to follow: nothing to remember.
            return self.apply(e);
        }
        {
            let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            if e.id <= self.watermark.load(Ordering::SeqCst) || !ahead.insert(e.id) {
                return;
            }
            // Bounded while polls fail: forgetting only means the poll applies an event
            // twice, which changes nothing.
            if ahead.len() > 100_000 {
                ahead.clear();
            }
        }
        self.apply(e);
    }

    /// Apply one event to the in-memory state.
    pub fn apply(&self, e: &RevocationEvent) {
        match &e.kind {
            RevocationKind::Jti => {
                write(&self.list.lists)
                    .jtis
                    .insert(e.key.clone(), e.expires_at);
            }
            RevocationKind::Family => {
                write(&self.list.lists)
                    .families
                    .insert(e.key.clone(), e.expires_at);
            }
            RevocationKind::NotBefore => {
                let mut l = write(&self.list.lists);
                let nb = l.not_before.entry(e.key.clone()).or_insert(e.expires_at);
                *nb = (*nb).max(e.expires_at);
            }
            RevocationKind::Session => {
                if let Some(hash) = unhex(&e.key) {
                    self.sessions.remove(&hash);
                }
            }
            RevocationKind::User => self.sessions.remove_user(&e.key),
            // Keys are re-read on their own schedule; unknown kinds are for newer versions.
            RevocationKind::Keys | RevocationKind::Other(_) => {}
        }
    }

    /// Record an event durably, apply it here, and push it to the other instances.
    pub async fn publish(
        &self,
        stores: &Stores,
        kind: RevocationKind,
        key: &str,
        expires_at: i64,
    ) -> Result<(), Error> {
        let mut event = RevocationEvent {
            id: 0,
            kind,
            key: key.to_owned(),
            expires_at,
        };
        event.id = stores.revocations.append_event(&event).await?;
        self.apply_ahead(&event);
        let push = read(&self.push).clone();
        if let Some(p) = push
            && !p.push(&event).await
        {
            // The others will find the event by polling; until a poll of ours confirms the
            // feed, this instance does not trust what the channel says either.
            self.push_failures.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Apply every feed event after the cursor (the poll, and the catch-up after the push
    /// channel reconnects).
    ///
    /// The feed is read from the watermark and is visible in id order, so the watermark
    /// moves to the last id read: every event up to it has then been applied. Polls are
    /// serialised, so two of them never move the watermark past each other's events.
    pub async fn catch_up(&self, stores: &Stores) -> Result<(), StoreError> {
        let _one_at_a_time = self.polling.lock().await;
        let failures_before = self.push_failures.load(Ordering::SeqCst);
        loop {
            let after = self.watermark.load(Ordering::SeqCst);
            let events = stores.revocations.events_since(after, 500).await?;
            for e in &events {
                let seen = self
                    .ahead
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&e.id);
                if !seen {
                    self.apply(e);
                }
                self.watermark.store(e.id, Ordering::SeqCst);
            }
            if events.len() < 500 {
                break;
            }
        }
        let watermark = self.watermark.load(Ordering::SeqCst);
        self.ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id| *id > watermark);
        self.push_failures_confirmed
            .fetch_max(failures_before, Ordering::SeqCst);
        self.last_poll_ms.store(self.elapsed_ms(), Ordering::SeqCst);
        Ok(())
    }

    /// Revoke one access token until `exp`.
    pub async fn revoke_jti(&self, stores: &Stores, jti: &str, exp: i64) -> Result<(), Error> {
        stores.revocations.revoke_jti(jti, exp).await?;
        self.publish(stores, RevocationKind::Jti, jti, exp).await
    }

    /// Revoke a refresh family (and so its access tokens); whether it was live.
    pub async fn revoke_family(
        &self,
        stores: &Stores,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, Error> {
        let was_live = stores.refresh.revoke_family(id, now).await?;
        self.publish(stores, RevocationKind::Family, id, expires_at)
            .await?;
        Ok(was_live)
    }

    /// End one session (already deleted from the store) everywhere.
    pub async fn drop_session(&self, stores: &Stores, token_hash: &[u8]) -> Result<(), Error> {
        self.publish(stores, RevocationKind::Session, &hex(token_hash), 0)
            .await
    }

    /// Drop every cached session of a user everywhere (their live ones reload).
    pub async fn drop_user_sessions(&self, stores: &Stores, user_id: &str) -> Result<(), Error> {
        self.publish(stores, RevocationKind::User, user_id, 0).await
    }
}

/// What a user-wide revocation spares: the caller's own session or family, when the event
/// is "end the *other* sessions" (password change).
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep<'a> {
    /// Session id to keep.
    pub session: Option<&'a str>,
    /// Refresh family id to keep.
    pub family: Option<&'a str>,
}

impl Keep<'_> {
    /// Spare nothing.
    pub const NOTHING: Keep<'static> = Keep {
        session: None,
        family: None,
    };
}

impl Core {
    /// End a user's sessions, refresh families and outstanding access tokens, except what
    /// `keep` names, and record `event` in the audit trail.
    ///
    /// When nothing is kept, a "not before" is also set at `now`, refusing every access
    /// token issued before it even if it somehow belongs to no family. When a family is
    /// kept, that cut-off would kill the caller's own token, so it is not set: every access
    /// token carries its family, and the other families are revoked.
    pub async fn end_credentials(
        &self,
        user_id: &str,
        keep: Keep<'_>,
        event: AuditKind,
        actor: Option<&str>,
    ) -> Result<(), Error> {
        let (stores, revocations, now) = (&self.stores, &self.revocations, self.now());
        // First the epoch, then the sweep: a login that stores a credential before the
        // sweep has it swept; one that stores it later sees the new epoch and ends it
        // itself (`Core::user_unchanged`).
        stores.users.bump_credential_epoch(user_id).await?;
        let sessions = stores
            .sessions
            .delete_sessions_of_user(user_id, keep.session)
            .await?;
        revocations.drop_user_sessions(stores, user_id).await?;
        let families = stores
            .refresh
            .revoke_families_of_user(user_id, keep.family, now)
            .await?;
        for (id, expires_at) in &families {
            revocations
                .publish(stores, RevocationKind::Family, id, *expires_at)
                .await?;
        }
        if keep.session.is_none() && keep.family.is_none() {
            stores.revocations.set_not_before(user_id, now).await?;
            revocations
                .publish(stores, RevocationKind::NotBefore, user_id, now)
                .await?;
        }
        let detail =
            json!({"sessions_ended": sessions, "families_revoked": families.len(), "actor": actor});
        stores
            .audit
            .record(now, &event, Some(user_id), &detail)
            .await?;
        tracing::info!(
            event = event.as_str(),
            user_id,
            sessions_ended = sessions,
            families_revoked = families.len(),
            "credentials revoked"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::identity::{Identity, Role};
    use crate::store::SessionRecord;

    fn record(hash: u8, user: &str, idle: i64, abs: i64) -> Arc<AuthenticatedSession> {
        let s = SessionRecord {
            id: format!("s{hash}"),
            token_hash: vec![hash; 32],
            user_id: user.into(),
            created_at: 0,
            last_seen_at: 0,
            idle_expires_at: idle,
            expires_at: abs,
            user_agent: None,
            ip: None,
        };
        let identity = Identity {
            user_id: user.into(),
            username: user.into(),
            role: Role::User,
        };
        Arc::new(AuthenticatedSession {
            session: s,
            identity,
        })
    }

    #[test]
    fn the_session_cache_forgets_ended_sessions_and_users() {
        let cache = SessionCache::default();
        for (h, u, idle, abs) in [(1, "a", 100, 500), (2, "a", 300, 500), (3, "b", 300, 200)] {
            cache.put(record(h, u, idle, abs));
        }
        cache.purge(150);
        assert!(cache.get(&[1; 32]).is_none(), "idle-expired");
        assert!(cache.get(&[2; 32]).is_some());
        assert_eq!(cache.len(), 2);
        cache.purge(250);
        assert!(cache.get(&[3; 32]).is_none(), "absolute-expired");
        cache.remove_user("a");
        assert!(cache.is_empty());
    }
}
