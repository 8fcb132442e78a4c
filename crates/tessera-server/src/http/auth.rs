//! Who is calling: the [`Authenticated`] extractor, and where the request came from
//! ([`RequestOrigin`]).
//!
//! Handlers never parse a cookie or a token; they take an `Authenticated`. A request is
//! authenticated by exactly one credential: a bearer token in the `Authorization` header,
//! or else — only when the request has no `Authorization` header at all — the session
//! cookie. A request that sends another scheme (`Basic`, which browsers attach by
//! themselves once they hold HTTP credentials for a site) is refused, never quietly
//! authenticated by the cookie: that is what keeps cross-site forms from riding on it. A
//! session id anywhere else (query string, other header) is ignored. What makes a credential valid — signatures, revocation, the session cache and
//! its renewal — is the core's; this module only finds the credential in the request.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use tessera_core::Error;
use tessera_core::identity::Principal;
use tessera_core::login::ClientInfo;
use tessera_verify::bearer::bearer_token;

use super::AppState;
use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
                return state
                    .core
                    .authenticate_bearer(token)
                    .map(Self)
                    .map_err(|e| match e {
                        Error::Unauthenticated => ApiError::Unauthorized {
                            invalid_token: true,
                        },
                        other => other.into(),
                    });
            }
            Ok(None) if parts.headers.contains_key(AUTHORIZATION) => {
                return Err(ApiError::Unauthorized {
                    invalid_token: false,
                });
            }
            Ok(None) => {}
        }
        let Some(value) = session_cookie(&parts.headers, &state.cookie_name) else {
            return Err(ApiError::Unauthorized {
                invalid_token: false,
            });
        };
        Ok(Self(state.core.authenticate_session(value).await?))
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

/// Where a request came from, for session records and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin(pub ClientInfo);

impl FromRequestParts<AppState> for RequestOrigin {
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
        Ok(Self(ClientInfo { ip, user_agent }))
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
