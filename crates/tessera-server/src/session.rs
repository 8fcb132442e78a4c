//! Session tokens and cookies.
//!
//! A session token is 32 bytes from the system CSPRNG (256 bits), sent to the browser
//! base64url-encoded in an `HttpOnly` cookie. The store keeps only its SHA-256: a copy of
//! the database yields no usable session. Lookup is by hash, so no secret is compared with
//! a data-dependent early exit.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Settings;

/// A fresh session token (43 base64url characters, 256 bits of entropy).
pub fn new_token() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut buf = [0u8; 32];
    aws_lc_rs::rand::fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

fn attributes(settings: &Settings) -> &'static str {
    if settings.is_https() {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` value carrying a session token. No `Max-Age`: the cookie ends with the
/// browser session, and the server ends the session itself at its timeouts.
pub fn set_cookie(settings: &Settings, token: &str) -> String {
    format!(
        "{}={}{}",
        settings.cookie_name(),
        token,
        attributes(settings)
    )
}

/// `Set-Cookie` value for a "remember me" session: persistent for `max_age` seconds.
pub fn set_persistent_cookie(settings: &Settings, token: &str, max_age: u64) -> String {
    format!(
        "{}={}; Max-Age={}{}",
        settings.cookie_name(),
        token,
        max_age,
        attributes(settings)
    )
}

/// `Set-Cookie` value that makes the browser drop the session cookie.
pub fn clear_cookie(settings: &Settings) -> String {
    format!(
        "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
        settings.cookie_name(),
        attributes(settings)
    )
}
