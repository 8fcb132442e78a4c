//! Who is calling: the [`Principal`] extractor.
//!
//! Handlers never parse a cookie or a token; they take a `Principal`. A request is
//! authenticated by exactly one credential: a bearer token in the `Authorization` header
//! (verified statelessly against the key ring), or else the session cookie (looked up by
//! its hash). A session id anywhere else (query string, other header) is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use tessera_verify::bearer::bearer_token;

use super::AppState;
use crate::error::ApiError;
use crate::session;

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A server-side session, by its public id and token hash.
    Session {
        /// Session id.
        id: String,
        /// SHA-256 of the session token (to delete it at logout).
        token_hash: Vec<u8>,
    },
    /// A verified JWT access token.
    Jwt {
        /// Token id.
        jti: String,
        /// Expiry (a revoked `jti` is remembered until then).
        exp: i64,
        /// The refresh family the token belongs to.
        sid: Option<String>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id (`sub`).
    pub user_id: String,
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
    /// The credential used.
    pub credential: Credential,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let now = state.clock.now();
        // Tokens in URLs end up in logs and Referer headers: tessera accepts none, and a
        // request that tries is refused rather than silently half-understood.
        if parts.uri.query().is_some_and(|q| {
            url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
        }) {
            return Err(ApiError::invalid_request(
                "access tokens are accepted only in the Authorization header",
            ));
        }
        let values = parts
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        match bearer_token(values) {
            Err(_) => return Err(ApiError::invalid_request("malformed Authorization header")),
            Ok(Some(token)) => {
                let claims = state
                    .keys
                    .ring()
                    .verifier()
                    .verify_with(token, now, &state.revocations.list)
                    .map_err(|_| ApiError::Unauthorized {
                        invalid_token: true,
                    })?;
                state.revocations.check_current()?;
                return Ok(Principal {
                    user_id: claims.sub,
                    username: claims.username,
                    role: claims.role,
                    credential: Credential::Jwt {
                        jti: claims.jti,
                        exp: claims.exp,
                        sid: claims.sid,
                    },
                });
            }
            Ok(None) => {}
        }
        let Some(value) = session_cookie(&parts.headers, &state.cookie_name) else {
            return Err(ApiError::Unauthorized {
                invalid_token: false,
            });
        };
        let token_hash = session::hash_token(value);
        let (mut s, user) = session_and_user(state, &token_hash, now).await?;
        // Sliding renewal, written at most once per touch interval. A store that cannot
        // take the write does not log anyone out: the session is served and the write
        // retried on a later request.
        let touch = state.settings.session_touch_interval.as_secs() as i64;
        if now - s.last_seen_at >= touch {
            let idle = state.settings.session_idle_timeout.as_secs() as i64;
            match state
                .stores
                .sessions
                .touch_session(&s.id, now, now + idle)
                .await
            {
                Ok(()) => {
                    s.last_seen_at = now;
                    s.idle_expires_at = (now + idle).min(s.expires_at);
                    if state.revocations.cache_usable() {
                        state.revocations.sessions.put(s.clone(), user.clone());
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "session renewal not written"),
            }
        }
        Ok(Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            credential: Credential::Session {
                id: s.id,
                token_hash,
            },
        })
    }
}

/// The value of the session cookie, read straight from the `Cookie` headers (no jar is
/// built: this runs on every cookie-authenticated request).
pub fn session_cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim_matches('"'))
        })
}

/// The live session for this token hash and its (enabled) user: from the cache when it
/// may answer, else from the store (then cached). A store that cannot be reached is a
/// 503, never a 401: nobody is logged out by an outage.
async fn session_and_user(
    state: &AppState,
    token_hash: &[u8],
    now: i64,
) -> Result<(crate::store::SessionRecord, crate::store::User), ApiError> {
    let unauthorized = ApiError::Unauthorized {
        invalid_token: false,
    };
    let live = |s: &crate::store::SessionRecord| now < s.idle_expires_at && now < s.expires_at;
    let cache = state.revocations.cache_usable();
    if cache {
        // A cached copy that looks expired may be stale (another instance renewed it):
        // only a store read can say no.
        if let Some((s, u)) = state.revocations.sessions.get(token_hash)
            && live(&s)
            && !u.disabled
        {
            state.revocations.check_current()?;
            return Ok((s, u));
        }
    }
    let Some(s) = state.stores.sessions.load_session(token_hash, now).await? else {
        state.revocations.sessions.remove(token_hash);
        return Err(unauthorized);
    };
    let Some(user) = state.stores.users.user_by_id(&s.user_id).await? else {
        return Err(unauthorized);
    };
    if user.disabled {
        return Err(unauthorized);
    }
    if cache {
        state.revocations.sessions.put(s.clone(), user.clone());
    }
    Ok((s, user))
}

/// Where a request came from, for the session record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer address.
    pub ip: Option<String>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
}

/// The client's IP: the TCP peer, or — only when the peer is a configured trusted proxy —
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut current = peer;
    for hop in forwarded.iter().flat_map(|h| h.split(',')).rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return current;
        };
        current = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    current
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| {
                let forwarded: Vec<&str> = parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                client_ip(a.ip(), &forwarded, &state.settings.trusted_proxies).to_string()
            });
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Self { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_session_cookie_is_found_by_exact_name() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            "cookie",
            "xtessera_session=evil; theme=dark".parse().unwrap(),
        );
        h.append(
            "cookie",
            "other=1;  tessera_session=abc ; z=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h, "tessera_session"), Some("abc"));
        assert_eq!(session_cookie(&h, "missing"), None);
        assert_eq!(
            session_cookie(&axum::http::HeaderMap::new(), "tessera_session"),
            None
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["1.2.3.4"], &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["6.6.6.6, 1.2.3.4, 10.0.0.2"], &trusted),
            ip("1.2.3.4"),
            "spoofed left entries ignored"
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["garbage"], &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &[], &trusted), ip("10.0.0.1"));
    }
}
