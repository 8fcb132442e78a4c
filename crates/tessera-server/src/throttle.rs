//! Brute-force defence: per-account and per-IP login throttling.
//!
//! Each attempt is counted *before* the password is checked, with one atomic increment in
//! the shared [`RateLimitStore`](crate::store::RateLimitStore), so N parallel attempts can
//! never get more than the limit through. The account key is the normalised username
//! whether or not such a user exists: throttling reveals nothing about who has an account.
//! A successful login resets the account's count (not the IP's).

use serde_json::json;

use crate::error::ApiError;
use crate::http::AppState;

/// Count a login attempt for `username` (normalised) from `ip`; 429 with `Retry-After`
/// when either limit is exceeded.
pub async fn login_attempt(
    state: &AppState,
    username: &str,
    ip: Option<&str>,
) -> Result<(), ApiError> {
    let s = &state.settings;
    hit(
        state,
        &format!("acct:{username}"),
        s.login_throttle_account,
        "account",
        Some(username),
        ip,
    )
    .await?;
    if let Some(ip) = ip {
        hit(
            state,
            &format!("ip:{ip}"),
            s.login_throttle_ip,
            "ip",
            Some(username),
            Some(ip),
        )
        .await?;
    }
    Ok(())
}

/// Count a signup from `ip`: account creation costs a hash and a row, so it is limited
/// per client IP like logins (`login_throttle_ip` per `login_throttle_window`).
pub async fn signup_attempt(state: &AppState, ip: Option<&str>) -> Result<(), ApiError> {
    match ip {
        Some(ip) => {
            hit(
                state,
                &format!("signup:{ip}"),
                state.settings.login_throttle_ip,
                "signup",
                None,
                Some(ip),
            )
            .await
        }
        None => Ok(()),
    }
}

async fn hit(
    state: &AppState,
    key: &str,
    limit: u32,
    scope: &str,
    username: Option<&str>,
    ip: Option<&str>,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    let window = state.settings.login_throttle_window.as_secs() as i64;
    let (count, start) = state.stores.rate_limits.hit(key, window, now).await?;
    if count > limit {
        let retry_after = u32::try_from((start + window - now).max(1)).unwrap_or(u32::MAX);
        state
            .stores
            .audit
            .record(
                now,
                "login_throttled",
                None,
                &json!({"scope": scope, "username": username, "ip": ip}),
            )
            .await?;
        tracing::warn!(event = "login_throttled", scope, "attempt throttled");
        return Err(ApiError::TooManyRequests { retry_after });
    }
    Ok(())
}

/// Forget the account's failures after a successful login.
pub async fn login_succeeded(state: &AppState, username: &str) -> Result<(), ApiError> {
    state
        .stores
        .rate_limits
        .reset(&format!("acct:{username}"))
        .await?;
    Ok(())
}
