//! Strict verification of a compact-serialized access token (RFC 8725, RFC 9068).
//!
//! The token is parsed by hand rather than by a permissive general-purpose decoder, so that
//! every refusal RFC 8725 asks for is explicit here and tested: size bound before parsing,
//! exactly three canonical base64url segments, a header with only the members tessera
//! uses (no `crit`, `jwk`, `jku`, `x5u`, `x5c`), the algorithm taken from the key, the
//! `typ` of an access token, and every registered claim present and in range. Signature
//! checking itself is done by `jsonwebtoken`'s crypto backend.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::AccessClaims;
use crate::keys::KeySet;

/// What a verifier accepts: issuer, audience, clock leeway and a size bound.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The only accepted `iss`: the tessera server's public URL, compared exactly.
    pub issuer: String,
    /// The audience this verifier serves; `aud` must contain it.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default 30.
    ///
    /// # Security
    /// Every second of leeway is a second a token outlives its expiry. Keep it small.
    pub leeway_secs: i64,
    /// Tokens longer than this many bytes are refused before any parsing. Default 8192.
    pub max_token_bytes: usize,
}

impl Policy {
    /// The default policy for `issuer` and `audience`: 30 s leeway, 8 KiB size bound.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: 30,
            max_token_bytes: 8192,
        }
    }
}

/// Why a token was refused. The text is safe to show a client: it names the rule that
/// failed, never key material or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Larger than [`Policy::max_token_bytes`].
    #[error("token too large")]
    TooLarge,
    /// Not three canonical base64url segments of JSON objects.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A header member tessera never sends and must not honour (`crit`, `jwk`, `jku`, `x5u`, `x5c`).
    #[error("forbidden header member: {0}")]
    ForbiddenHeader(&'static str),
    /// `typ` is not `at+jwt`.
    #[error("not an access token (typ must be at+jwt)")]
    WrongType,
    /// `alg` is `none`, or not the algorithm of the key named by `kid`.
    #[error("algorithm not allowed for this key")]
    AlgorithmMismatch,
    /// No key with this `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong type or range.
    #[error("invalid claims")]
    InvalidClaims,
    /// The token is valid but has been revoked (its `jti`, its session family, or every
    /// token of its user issued before a cut-off).
    #[error("token revoked")]
    Revoked,
}

/// Revocation state consulted after a token's signature and claims have been checked.
///
/// Implementations must answer from memory in O(1): this runs on every request. tessera's
/// server implements it over revoked `jti`s, revoked families (`sid`) and per-user
/// "not before" instants.
pub trait RevocationCheck {
    /// Whether a token with these (already verified) claims has been revoked.
    fn is_revoked(&self, claims: &AccessClaims) -> bool;
}

/// No revocation state: a verified token is accepted until it expires.
///
/// # Security
/// Only for services that accept that a logged-out user's token lives on until `exp`.
/// Keep access-token lifetimes short if you use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocation;

impl RevocationCheck for NoRevocation {
    fn is_revoked(&self, _: &AccessClaims) -> bool {
        false
    }
}

/// The JOSE header of a tessera access token. Members tessera never uses but that an
/// attacker might try are listed so that they can be refused by name; anything else is
/// refused by `deny_unknown_fields`. serde refuses a duplicated member.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

/// Decodes base64url without padding, refusing non-canonical encodings (stray trailing
/// bits), so that one token has exactly one spelling.
fn b64(segment: &str, what: &'static str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| VerifyError::Malformed(what))
}

/// Tokens that passed every time-independent check, by their exact text.
///
/// Signature, header, issuer and audience checks give the same answer every time for the
/// same bytes and the same keys, so their result is remembered; expiry, `nbf`/`iat` and
/// revocation are checked again on every use. The cache belongs to one [`Verifier`], i.e.
/// to one key set: new keys, new (empty) cache.
#[derive(Debug, Default)]
struct VerifiedTokens {
    map: std::sync::RwLock<std::collections::HashMap<Box<str>, AccessClaims>>,
    capacity: usize,
}

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<AccessClaims> {
        self.map.read().ok()?.get(token).cloned()
    }

    fn put(&self, token: &str, claims: &AccessClaims) {
        if let Ok(mut map) = self.map.write() {
            // Bounded: only valid tokens get here, but there can be many. Starting over is
            // cheaper than an eviction order and costs one verification per live token.
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(token.into(), claims.clone());
        }
    }
}

/// Verifies access tokens against a [`KeySet`] under a [`Policy`].
#[derive(Debug)]
pub struct Verifier {
    keys: KeySet,
    policy: Policy,
    verified: Option<VerifiedTokens>,
}

impl Clone for Verifier {
    fn clone(&self) -> Self {
        let verified = self.verified.as_ref().map(|v| VerifiedTokens {
            map: Default::default(),
            capacity: v.capacity,
        });
        Self {
            keys: self.keys.clone(),
            policy: self.policy.clone(),
            verified,
        }
    }
}

impl Verifier {
    /// A verifier for these keys and this policy.
    pub fn new(keys: KeySet, policy: Policy) -> Self {
        Self {
            keys,
            policy,
            verified: None,
        }
    }

    /// Remember up to `capacity` verified tokens, so that a token seen again costs a hash
    /// lookup instead of a signature verification. Expiry and revocation are still checked
    /// on every call; nothing about what is accepted changes.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.verified = Some(VerifiedTokens {
            map: Default::default(),
            capacity: capacity.max(1),
        });
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The keys in use.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Verify `token` as of `now` (seconds since the Unix epoch) and return its claims.
    ///
    /// `now` is a parameter so that callers (and tests) own the clock. No revocation state
    /// is consulted: see [`Verifier::verify_with`].
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, VerifyError> {
        self.verify_with(token, now, &NoRevocation)
    }

    /// Verify `token` as of `now`, then ask `revocations` whether it has been revoked.
    pub fn verify_with(
        &self,
        token: &str,
        now: i64,
        revocations: &dyn RevocationCheck,
    ) -> Result<AccessClaims, VerifyError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(VerifyError::TooLarge);
        }
        if let Some(claims) = self.verified.as_ref().and_then(|v| v.get(token)) {
            self.check_time(&claims, now)?;
            if revocations.is_revoked(&claims) {
                return Err(VerifyError::Revoked);
            }
            return Ok(claims);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed(
                "expected three dot-separated segments",
            ));
        };

        let header_json = b64(h64, "header encoding")?;
        if has_lone_surrogate(&header_json) {
            return Err(VerifyError::Malformed("header"));
        }
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed("header"))?;
        for (present, name) in [
            (header.crit.is_some(), "crit"),
            (header.jwk.is_some(), "jwk"),
            (header.jku.is_some(), "jku"),
            (header.x5u.is_some(), "x5u"),
            (header.x5c.is_some(), "x5c"),
        ] {
            if present {
                return Err(VerifyError::ForbiddenHeader(name));
            }
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        // The key decides: the header's alg must name exactly the key's algorithm.
        if header.alg.parse::<Algorithm>().ok() != Some(key.algorithm) {
            return Err(VerifyError::AlgorithmMismatch);
        }

        // Canonical-encoding check of the signature before handing it to the backend.
        b64(s64, "signature encoding")?;
        let message_len = h64.len() + 1 + p64.len();
        let message = token
            .get(..message_len)
            .ok_or(VerifyError::Malformed("message"))?;
        let valid = jsonwebtoken::crypto::verify(s64, message.as_bytes(), &key.key, key.algorithm)
            .map_err(|_| VerifyError::BadSignature)?;
        if !valid {
            return Err(VerifyError::BadSignature);
        }

        let payload = b64(p64, "payload encoding")?;
        if has_lone_surrogate(&payload) {
            return Err(VerifyError::InvalidClaims);
        }
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| VerifyError::InvalidClaims)?;
        self.check_claims(&claims)?;
        self.check_time(&claims, now)?;
        if let Some(v) = &self.verified {
            v.put(token, &claims);
        }
        if revocations.is_revoked(&claims) {
            return Err(VerifyError::Revoked);
        }
        Ok(claims)
    }

    /// Checks that depend on the clock: repeated on every use of a cached token.
    fn check_time(&self, c: &AccessClaims, now: i64) -> Result<(), VerifyError> {
        let leeway = self.policy.leeway_secs;
        if c.exp <= now - leeway {
            return Err(VerifyError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now + leeway) || c.iat > now + leeway {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }

    /// Checks that depend only on the token and the policy.
    fn check_claims(&self, c: &AccessClaims) -> Result<(), VerifyError> {
        if c.iss != self.policy.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !c.aud.contains(&self.policy.audience) {
            return Err(VerifyError::WrongAudience);
        }
        if c.sub.is_empty() || c.jti.is_empty() {
            return Err(VerifyError::InvalidClaims);
        }
        Ok(())
    }
}

/// Whether JSON text holds a `\uXXXX` escape of a UTF-16 surrogate that is not half of a
/// proper pair (RFC 7493 §2.1 forbids it). serde refuses one in a string it decodes, but
/// not in a member it skips, and parsers elsewhere disagree on what it means.
fn has_lone_surrogate(json: &[u8]) -> bool {
    fn unit(json: &[u8], at: usize) -> Option<u16> {
        let hex = json.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    }
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        if json.get(i + 1) != Some(&b'u') {
            i += 2; // any other escape, including `\\`, is two bytes
            continue;
        }
        let Some(u) = unit(json, i + 2) else {
            return false; // not valid JSON: the parser refuses it
        };
        match u {
            0xD800..=0xDBFF => {
                let low = (json.get(i + 6) == Some(&b'\\') && json.get(i + 7) == Some(&b'u'))
                    .then(|| unit(json, i + 8))
                    .flatten();
                if !low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                    return true;
                }
                i += 12;
            }
            0xDC00..=0xDFFF => return true,
            _ => i += 6,
        }
    }
    false
}
