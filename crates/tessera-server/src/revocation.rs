//! Revocation: the in-memory [`RevocationList`] every token verification consults, and
//! [`revoke_user`], the one path by which logout-all, password change, role change,
//! disabling a user and admin revocation end a user's credentials.
//!
//! The list holds three things, each answered in O(1) from a hash map:
//! - revoked `jti`s, each until the token's own `exp` (after that the token is dead anyway);
//! - revoked refresh families (`sid`), until the family's absolute expiry;
//! - a per-user "not before": tokens of that user with `iat` before it are refused.
//!
//! The durable copy lives in the [`RevocationStore`](crate::store::RevocationStore) and
//! [`RefreshStore`](crate::store::RefreshStore); the list is loaded from them at start-up
//! and written through on every revocation.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::json;
use tessera_verify::{AccessClaims, RevocationCheck};

use crate::error::ApiError;
use crate::store::{StoreError, Stores};

#[derive(Default)]
struct State {
    jtis: HashMap<String, i64>,
    families: HashMap<String, i64>,
    not_before: HashMap<String, i64>,
}

/// Revocation state in process memory.
#[derive(Default)]
pub struct RevocationList {
    state: RwLock<State>,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList").finish_non_exhaustive()
    }
}

impl RevocationList {
    /// Load what is still relevant at `now` from the stores.
    pub async fn load(stores: &Stores, now: i64) -> Result<Self, StoreError> {
        let state = State {
            jtis: stores
                .revocations
                .revoked_jtis(now)
                .await?
                .into_iter()
                .collect(),
            families: stores
                .refresh
                .revoked_families(now)
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
            state: RwLock::new(state),
        })
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the maps are
        // still consistent (every write is a single insert or retain).
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Revoke one access token until `exp`.
    pub fn revoke_jti(&self, jti: &str, exp: i64) {
        self.write().jtis.insert(jti.to_owned(), exp);
    }

    /// Revoke a family until `expires_at`.
    pub fn revoke_family(&self, id: &str, expires_at: i64) {
        self.write().families.insert(id.to_owned(), expires_at);
    }

    /// Refuse the user's tokens issued before `at`.
    pub fn set_not_before(&self, user_id: &str, at: i64) {
        let mut s = self.write();
        let e = s.not_before.entry(user_id.to_owned()).or_insert(at);
        *e = (*e).max(at);
    }

    /// Forget entries that can no longer match a live token.
    pub fn purge(&self, now: i64) {
        let mut s = self.write();
        s.jtis.retain(|_, exp| *exp > now);
        s.families.retain(|_, exp| *exp > now);
    }

    /// Whether this family is revoked.
    pub fn family_revoked(&self, id: &str) -> bool {
        self.state
            .read()
            .map(|s| s.families.contains_key(id))
            .unwrap_or(true)
    }
}

impl RevocationCheck for RevocationList {
    fn is_revoked(&self, c: &AccessClaims) -> bool {
        let Ok(s) = self.state.read() else {
            return true; // fail closed
        };
        s.jtis.contains_key(&c.jti)
            || c.sid
                .as_ref()
                .is_some_and(|sid| s.families.contains_key(sid))
            || s.not_before.get(&c.sub).is_some_and(|nb| c.iat < *nb)
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

/// End a user's sessions, refresh families and outstanding access tokens, except what
/// `keep` names, and record `event` in the audit trail.
///
/// When nothing is kept, a "not before" is also set at `now`, refusing every access token
/// issued before it even if it somehow belongs to no family. When a family is kept, that
/// cut-off would kill the caller's own token, so it is not set: every access token carries
/// its family, and the other families are revoked.
pub async fn revoke_user(
    stores: &Stores,
    list: &RevocationList,
    user_id: &str,
    keep: Keep<'_>,
    now: i64,
    event: &str,
    actor: Option<&str>,
) -> Result<(), ApiError> {
    let sessions = stores
        .sessions
        .delete_sessions_of_user(user_id, keep.session)
        .await?;
    let families = stores
        .refresh
        .revoke_families_of_user(user_id, keep.family, now)
        .await?;
    for (id, expires_at) in &families {
        list.revoke_family(id, *expires_at);
    }
    if keep.session.is_none() && keep.family.is_none() {
        stores.revocations.set_not_before(user_id, now).await?;
        list.set_not_before(user_id, now);
    }
    let detail =
        json!({"sessions_ended": sessions, "families_revoked": families.len(), "actor": actor});
    stores
        .audit
        .record(now, event, Some(user_id), &detail)
        .await?;
    tracing::info!(
        event,
        user_id,
        sessions_ended = sessions,
        families_revoked = families.len(),
        "credentials revoked"
    );
    Ok(())
}
