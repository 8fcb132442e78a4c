//! The rules the use cases apply, as small typed values built once from the settings by
//! the composition root. The core never sees the whole configuration.

use std::time::Duration;

/// Session lifetimes.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however used.
    pub absolute_timeout: Duration,
    /// Absolute lifetime of a "remember me" session.
    pub remember_lifetime: Duration,
    /// Sliding renewal is written at most this often per session.
    pub touch_interval: Duration,
}

/// Access tokens and refresh families.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `iss` of every token: the public URL.
    pub issuer: String,
    /// `aud` of every token.
    pub audience: String,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// A family ends this long after login.
    pub refresh_absolute_lifetime: Duration,
    /// A family unused for this long ends.
    pub refresh_idle_lifetime: Duration,
    /// How long after rotation a lost-response retry gets the same pair back.
    pub refresh_grace_period: Duration,
}

/// Login throttling.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Attempts per account per window.
    pub per_account: u32,
    /// Attempts (and signups) per client IP per window.
    pub per_ip: u32,
    /// The fixed window.
    pub window: Duration,
}

/// Accounts.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// Whether anyone may sign up.
    pub signup_enabled: bool,
}

/// Everything the use cases need to know of the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Sessions.
    pub sessions: SessionPolicy,
    /// Tokens.
    pub tokens: TokenPolicy,
    /// Throttling.
    pub throttle: ThrottlePolicy,
    /// Accounts.
    pub accounts: AccountPolicy,
}

/// Whole seconds of a duration, as the stores count time.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
