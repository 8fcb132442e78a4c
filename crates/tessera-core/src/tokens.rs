//! The hybrid mode's core: access tokens issued from refresh families, and refresh-token
//! rotation with reuse detection.
//!
//! One password grant = one [`RefreshFamily`] = one device. Every access token carries its
//! family as `sid`. `grant_type=refresh_token` spends the presented refresh token and
//! returns a new pair. Presenting a spent token means two parties hold it — the client and
//! a thief — so the whole family is revoked (its access tokens die with it through the
//! [`RevocationList`](crate::revocation::RevocationList)) and an audit event is recorded.
//!
//! Except within the grace period after rotation: a client whose response was lost retries
//! with the same token and must get *the same* new pair, not a theft alarm. The pair is
//! stored sealed (AES-256-GCM) under a key derived (HKDF-SHA256) from the spent token, so
//! only its holder can open it and the database never holds a usable refresh token.
//! Concurrent refreshes of one token are settled by one conditional UPDATE in the store:
//! exactly one wins; the others find the sealed pair and return it.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_verify::{AccessClaims, Audience};

use crate::Core;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::identity::{AuthenticatedToken, Identity, LoginMethod, Principal};
use crate::login::ClientInfo;
use crate::opaque;
use crate::policy::secs;
use crate::store::{RefreshFamily, RefreshToken, User};

/// The built-in public client: what tokens are issued to when no client authenticates.
pub const PUBLIC_CLIENT: &str = "tessera";

/// An access token and a refresh token, as returned by the token endpoint.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    /// Signed JWT.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &opaque::Redacted)
            .field("refresh_token", &opaque::Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

const INVALID_REFRESH: Error =
    Error::InvalidGrant("the refresh token is invalid, expired or revoked");

/// What introspection (RFC 7662) says of a token. Built once per request and rendered at
/// once, so the variants' sizes do not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Introspection {
    /// Not currently valid: expired, revoked, forged, foreign, malformed or spent.
    Inactive,
    /// A valid access token.
    Access(AccessClaims),
    /// A valid refresh token.
    Refresh {
        /// The token.
        token: RefreshToken,
        /// Its family.
        family: RefreshFamily,
        /// Its (enabled) user.
        user: Identity,
    },
}

impl Core {
    /// Sign an access token for `user` in `family` at `now`; capped at the family's end.
    fn access_token(
        &self,
        user: &User,
        family: &RefreshFamily,
        now: i64,
    ) -> Result<(String, i64), Error> {
        let p = &self.policy.tokens;
        let exp = (now + secs(p.access_token_ttl)).min(family.expires_at);
        let claims = AccessClaims {
            iss: p.issuer.clone(),
            sub: user.id.clone(),
            aud: Audience::One(p.audience.clone()),
            exp,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: family.client_id.clone(),
            role: user.role.as_str().to_owned(),
            username: user.username.clone(),
            sid: Some(family.id.clone()),
        };
        Ok((self.keys.ring().sign(&claims, now)?, exp - now))
    }

    /// The principal of a bearer access token: a valid signature from the key ring, the
    /// RFC 8725 checks, and not revoked by the in-memory state — which must be current.
    pub fn authenticate_bearer(&self, token: &str) -> Result<Principal, Error> {
        let claims = self
            .keys
            .ring()
            .verifier()
            .verify_with(token, self.now(), &self.revocations.list)
            .map_err(|_| Error::Unauthenticated)?;
        self.revocations.check_current()?;
        Ok(Principal::Jwt(std::sync::Arc::new(AuthenticatedToken {
            identity: Identity {
                user_id: claims.sub,
                username: claims.username,
                role: claims.role.into(),
            },
            jti: claims.jti,
            exp: claims.exp,
            sid: claims.sid,
        })))
    }

    /// The password grant (RFC 6749 §4.3): check credentials, open a new refresh family
    /// for `client_id`, and issue its first pair.
    pub async fn password_grant(
        &self,
        username: &str,
        password: String,
        client_id: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, Error> {
        let user = self
            .check_credentials(username, password, &client, LoginMethod::PasswordGrant)
            .await
            .map_err(|e| match e {
                Error::InvalidInput { .. } => {
                    Error::invalid("invalid_request", "malformed username or password")
                }
                Error::InvalidCredentials => Error::InvalidGrant("invalid username or password"),
                other => other,
            })?;
        let pair = self.issue_for_login(&user, client_id, client).await?;
        tracing::info!(event = "login", mode = "jwt", user_id = %user.id, "refresh family opened");
        Ok(pair)
    }

    /// Open a new family for a successful password grant.
    async fn issue_for_login(
        &self,
        user: &User,
        client_id: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, Error> {
        let now = self.now();
        let p = &self.policy.tokens;
        let expires_at = now + secs(p.refresh_absolute_lifetime);
        let family = RefreshFamily {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            client_id: client_id.to_owned(),
            created_at: now,
            last_used_at: now,
            idle_expires_at: (now + secs(p.refresh_idle_lifetime)).min(expires_at),
            expires_at,
            revoked_at: None,
            user_agent: client.user_agent,
            ip: client.ip,
        };
        let (refresh_token, record) = new_refresh(&family.id, now)?;
        let (access_token, expires_in) = self.access_token(user, &family, now)?;
        self.stores.refresh.create_family(&family, &record).await?;
        // A user-wide revocation that ran while this grant hashed wins (see
        // `user_unchanged`); no token of this family has left the server yet.
        if !self.user_unchanged(user).await? {
            self.stores.refresh.revoke_family(&family.id, now).await?;
            return Err(Error::InvalidGrant("invalid username or password"));
        }
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in,
        })
    }

    /// Exchange a refresh token presented by `client_id` for a new pair.
    pub async fn refresh(&self, presented: &str, client_id: &str) -> Result<TokenPair, Error> {
        let now = self.now();
        let hash = opaque::hash(presented);
        let Some((token, family)) = self.stores.refresh.find_refresh_token(&hash).await? else {
            return Err(INVALID_REFRESH);
        };
        if family.client_id != client_id
            || !family.is_live(now)
            || self.revocations.list.family_revoked(&family.id)
        {
            return Err(INVALID_REFRESH);
        }
        if token.spent_at.is_some() {
            return self.replay(presented, &token, &family, now).await;
        }
        let user = match self.stores.users.user_by_id(&family.user_id).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(INVALID_REFRESH),
        };
        let (refresh_token, record) = new_refresh(&family.id, now)?;
        let (access_token, expires_in) = self.access_token(&user, &family, now)?;
        let pair = TokenPair {
            access_token,
            refresh_token,
            expires_in,
        };
        let sealed = seal(presented, &pair)?;
        let idle = now + secs(self.policy.tokens.refresh_idle_lifetime);
        if self
            .stores
            .refresh
            .rotate_refresh_token(&hash, now, &sealed, &record, idle)
            .await?
        {
            return Ok(pair);
        }
        // Lost the race to a concurrent refresh of the same token: return the winner's pair.
        match self.stores.refresh.find_refresh_token(&hash).await? {
            Some((token, family)) => self.replay(presented, &token, &family, now).await,
            None => Err(INVALID_REFRESH),
        }
    }

    /// Token revocation (RFC 7009) by the authenticated client `client_id`. The token's
    /// shape decides (a JWT is an access token, anything else is looked up as a refresh
    /// token). Unknown, invalid or already-expired tokens are fine: there is nothing left
    /// to revoke. Another client's token is [`Error::UnauthorizedClient`].
    pub async fn revoke_token(&self, client_id: &str, token: &str) -> Result<(), Error> {
        let now = self.now();
        if token.contains('.') {
            if let Ok(claims) = self.keys.ring().verifier().verify(token, now) {
                if claims.client_id != client_id {
                    return Err(Error::UnauthorizedClient);
                }
                self.revocations
                    .revoke_jti(&self.stores, &claims.jti, claims.exp)
                    .await?;
                self.stores.audit.record(now, &AuditKind::Revoke, Some(&claims.sub), &json!({"token_type": "access_token", "jti": claims.jti, "client_id": client_id})).await?;
            }
        } else if let Some((_, family)) = self
            .stores
            .refresh
            .find_refresh_token(&opaque::hash(token))
            .await?
        {
            if family.client_id != client_id {
                return Err(Error::UnauthorizedClient);
            }
            if self
                .revocations
                .revoke_family(&self.stores, &family.id, family.expires_at, now)
                .await?
            {
                self.stores.audit.record(now, &AuditKind::Revoke, Some(&family.user_id), &json!({"token_type": "refresh_token", "family_id": family.id, "client_id": client_id})).await?;
            }
        }
        Ok(())
    }

    /// Token introspection (RFC 7662). Under the same staleness rule as bearer requests:
    /// when the revocation state is too old to trust, the answer is
    /// [`Error::StaleRevocationState`], never `active`.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, Error> {
        let now = self.now();
        self.revocations.check_current()?;
        if token.contains('.') {
            return Ok(
                match self
                    .keys
                    .ring()
                    .verifier()
                    .verify_with(token, now, &self.revocations.list)
                {
                    Ok(c) => Introspection::Access(c),
                    Err(_) => Introspection::Inactive,
                },
            );
        }
        let Some((rt, family)) = self
            .stores
            .refresh
            .find_refresh_token(&opaque::hash(token))
            .await?
        else {
            return Ok(Introspection::Inactive);
        };
        if rt.spent_at.is_some()
            || !family.is_live(now)
            || self.revocations.list.family_revoked(&family.id)
        {
            return Ok(Introspection::Inactive);
        }
        let Some(user) = self
            .stores
            .users
            .user_by_id(&family.user_id)
            .await?
            .filter(|u| !u.disabled)
        else {
            return Ok(Introspection::Inactive);
        };
        Ok(Introspection::Refresh {
            token: rt,
            family,
            user: Identity::from(&user),
        })
    }

    /// A spent token presented again: the same pair inside the grace period, theft outside it.
    async fn replay(
        &self,
        presented: &str,
        token: &RefreshToken,
        family: &RefreshFamily,
        now: i64,
    ) -> Result<TokenPair, Error> {
        let grace = secs(self.policy.tokens.refresh_grace_period);
        let within = token.spent_at.is_some_and(|at| now - at <= grace);
        if within
            && let Some(pair) = token.sealed.as_deref().and_then(|s| unseal(presented, s))
            && self.successor_unspent(&pair).await?
        {
            return Ok(pair);
        }
        if self
            .revocations
            .revoke_family(&self.stores, &family.id, family.expires_at, now)
            .await?
        {
            let detail = json!({"family_id": family.id, "client_id": family.client_id, "token_id": token.id});
            self.stores
                .audit
                .record(
                    now,
                    &AuditKind::RefreshReuseDetected,
                    Some(&family.user_id),
                    &detail,
                )
                .await?;
            tracing::warn!(event = "refresh_reuse_detected", user_id = %family.user_id, family_id = %family.id, "refresh token reused: family revoked");
        }
        Err(INVALID_REFRESH)
    }
}

impl Core {
    /// Whether the refresh token of a sealed replacement pair is still unspent: a replay
    /// of the spent token is a *retry* (the client never got the pair) only while the pair
    /// it would get back has not been used. Once the client has moved on, the old token
    /// coming back can only be a copy — reuse, not a retry — so a replay never climbs the
    /// family to a newer token than the one it was answered with.
    ///
    /// Concurrent refreshes of one token all see the successor unspent (it was just
    /// created), so they all get the one pair, with no alarm.
    async fn successor_unspent(&self, pair: &TokenPair) -> Result<bool, Error> {
        let successor = self
            .stores
            .refresh
            .find_refresh_token(&opaque::hash(&pair.refresh_token))
            .await?;
        Ok(successor.is_some_and(|(t, _)| t.spent_at.is_none()))
    }
}

fn new_refresh(family_id: &str, now: i64) -> Result<(String, RefreshToken), Error> {
    let token = opaque::generate()?;
    let record = RefreshToken {
        token_hash: opaque::hash(&token),
        id: uuid::Uuid::new_v4().to_string(),
        family_id: family_id.to_owned(),
        created_at: now,
        spent_at: None,
        sealed: None,
    };
    Ok((token, record))
}

fn grace_key(token: &str) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, b"tessera refresh grace v1").extract(token.as_bytes());
    let okm = prk.expand(&[b"aes-256-gcm"], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

fn seal(token: &str, pair: &TokenPair) -> Result<Vec<u8>, Error> {
    let internal = Error::internal;
    let key = grace_key(token).ok_or(internal("key derivation failed"))?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| internal("CSPRNG failure"))?;
    let mut data = serde_json::to_vec(pair).map_err(|_| internal("serialisation failed"))?;
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| internal("sealing failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

fn unseal(token: &str, sealed: &[u8]) -> Option<TokenPair> {
    let key = grace_key(token)?;
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ciphertext.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
    serde_json::from_slice(plain).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_spent_tokens_holder_can_open_the_sealed_pair() {
        let pair = TokenPair {
            access_token: "a.b.c".into(),
            refresh_token: "r".into(),
            expires_in: 300,
        };
        let sealed = seal("old-token", &pair).unwrap();
        assert_eq!(unseal("old-token", &sealed), Some(pair));
        assert_eq!(unseal("other-token", &sealed), None);
        assert!(
            !sealed.windows(5).any(|w| w == b"a.b.c"),
            "ciphertext, not plaintext"
        );
    }
}
