//! The session cookie: its attributes and the `Set-Cookie` values that set and clear it.
//!
//! The token inside is an opaque secret from [`tessera_core::opaque`]; the store keeps only
//! its hash.

use crate::config::Settings;

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
