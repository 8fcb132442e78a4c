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

use crate::error::ApiError;
use crate::http::AppState;
use crate::http::auth::ClientInfo;
use crate::session;
use crate::store::{RefreshFamily, RefreshToken, User};

/// The built-in public client: what tokens are issued to when no client authenticates.
pub const PUBLIC_CLIENT: &str = "tessera";

/// An access token and a refresh token, as returned by the token endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    /// Signed JWT.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
}

fn invalid_grant() -> ApiError {
    ApiError::OAuth {
        status: axum::http::StatusCode::BAD_REQUEST,
        code: "invalid_grant",
        description: "the refresh token is invalid, expired or revoked",
    }
}

fn internal(what: &'static str) -> ApiError {
    ApiError::Internal(what.into())
}

/// Sign an access token for `user` in `family` at `now`; capped at the family's end.
pub fn access_token(
    state: &AppState,
    user: &User,
    family: &RefreshFamily,
    now: i64,
) -> Result<(String, i64), ApiError> {
    let ttl = state.settings.access_token_ttl.as_secs() as i64;
    let exp = (now + ttl).min(family.expires_at);
    let claims = AccessClaims {
        iss: state.settings.public_url.clone(),
        sub: user.id.clone(),
        aud: Audience::One(state.settings.audience.clone()),
        exp,
        iat: now,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: family.client_id.clone(),
        role: user.role.clone(),
        username: user.username.clone(),
        sid: Some(family.id.clone()),
    };
    Ok((state.keys.ring().sign(&claims, now)?, exp - now))
}

fn new_refresh(family_id: &str, now: i64) -> Result<(String, RefreshToken), ApiError> {
    let token = session::new_token().map_err(|_| internal("CSPRNG failure"))?;
    let record = RefreshToken {
        token_hash: session::hash_token(&token),
        id: uuid::Uuid::new_v4().to_string(),
        family_id: family_id.to_owned(),
        created_at: now,
        spent_at: None,
        sealed: None,
    };
    Ok((token, record))
}

/// Open a new family for a successful password grant.
pub async fn issue_for_login(
    state: &AppState,
    user: &User,
    client_id: &str,
    client: ClientInfo,
) -> Result<TokenPair, ApiError> {
    let now = state.clock.now();
    let s = &state.settings;
    let expires_at = now + s.refresh_absolute_lifetime.as_secs() as i64;
    let family = RefreshFamily {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        client_id: client_id.to_owned(),
        created_at: now,
        last_used_at: now,
        idle_expires_at: (now + s.refresh_idle_lifetime.as_secs() as i64).min(expires_at),
        expires_at,
        revoked_at: None,
        user_agent: client.user_agent,
        ip: client.ip,
    };
    let (refresh_token, record) = new_refresh(&family.id, now)?;
    let (access_token, expires_in) = access_token(state, user, &family, now)?;
    state.stores.refresh.create_family(&family, &record).await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        expires_in,
    })
}

/// Exchange a refresh token presented by `client_id` for a new pair.
pub async fn refresh(
    state: &AppState,
    presented: &str,
    client_id: &str,
) -> Result<TokenPair, ApiError> {
    let now = state.clock.now();
    let hash = session::hash_token(presented);
    let Some((token, family)) = state.stores.refresh.find_refresh_token(&hash).await? else {
        return Err(invalid_grant());
    };
    if family.client_id != client_id
        || !family.is_live(now)
        || state.revocations.list.family_revoked(&family.id)
    {
        return Err(invalid_grant());
    }
    if token.spent_at.is_some() {
        return replay(state, presented, &token, &family, now).await;
    }
    let user = match state.stores.users.user_by_id(&family.user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(invalid_grant()),
    };
    let (refresh_token, record) = new_refresh(&family.id, now)?;
    let (access_token, expires_in) = access_token(state, &user, &family, now)?;
    let pair = TokenPair {
        access_token,
        refresh_token,
        expires_in,
    };
    let sealed = seal(presented, &pair)?;
    let idle = now + state.settings.refresh_idle_lifetime.as_secs() as i64;
    if state
        .stores
        .refresh
        .rotate_refresh_token(&hash, now, &sealed, &record, idle)
        .await?
    {
        return Ok(pair);
    }
    // Lost the race to a concurrent refresh of the same token: return the winner's pair.
    match state.stores.refresh.find_refresh_token(&hash).await? {
        Some((token, family)) => replay(state, presented, &token, &family, now).await,
        None => Err(invalid_grant()),
    }
}

/// A spent token presented again: the same pair inside the grace period, theft outside it.
async fn replay(
    state: &AppState,
    presented: &str,
    token: &RefreshToken,
    family: &RefreshFamily,
    now: i64,
) -> Result<TokenPair, ApiError> {
    let grace = state.settings.refresh_grace_period.as_secs() as i64;
    let within = token.spent_at.is_some_and(|at| now - at <= grace);
    if within && let Some(pair) = token.sealed.as_deref().and_then(|s| unseal(presented, s)) {
        return Ok(pair);
    }
    if state
        .revocations
        .revoke_family(&state.stores, &family.id, family.expires_at, now)
        .await?
    {
        let detail =
            json!({"family_id": family.id, "client_id": family.client_id, "token_id": token.id});
        state
            .stores
            .audit
            .record(
                now,
                "refresh_reuse_detected",
                Some(&family.user_id),
                &detail,
            )
            .await?;
        tracing::warn!(event = "refresh_reuse_detected", user_id = %family.user_id, family_id = %family.id, "refresh token reused: family revoked");
    }
    Err(invalid_grant())
}

fn grace_key(token: &str) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, b"tessera refresh grace v1").extract(token.as_bytes());
    let okm = prk.expand(&[b"aes-256-gcm"], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

fn seal(token: &str, pair: &TokenPair) -> Result<Vec<u8>, ApiError> {
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
