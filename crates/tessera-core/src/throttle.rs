//! Brute-force defence: per-account and per-IP login throttling.
//!
//! Each attempt is counted *before* the password is checked, with one atomic increment in
//! the shared [`RateLimitStore`](crate::store::RateLimitStore), so N parallel attempts can
//! never get more than the limit through. The account key is the normalised username
//! whether or not such a user exists: throttling reveals nothing about who has an account.
//! A successful login resets the account's count (not the IP's).

use serde_json::json;

use crate::Core;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::policy::secs;

impl Core {
    /// Count a login attempt for `username` (normalised) from `ip`;
    /// [`Error::Throttled`] when either limit is exceeded.
    pub async fn login_attempt(&self, username: &str, ip: Option<&str>) -> Result<(), Error> {
        let limits = &self.policy.throttle;
        self.hit(
            &format!("acct:{username}"),
            limits.per_account,
            "account",
            Some(username),
            ip,
        )
        .await?;
        if let Some(ip) = ip {
            self.hit(
                &format!("ip:{ip}"),
                limits.per_ip,
                "ip",
                Some(username),
                Some(ip),
            )
            .await?;
        }
        Ok(())
    }

    /// Count a signup from `ip`: account creation costs a hash and a row, so it is limited
    /// per client IP like logins (`per_ip` per window).
    pub async fn signup_attempt(&self, ip: Option<&str>) -> Result<(), Error> {
        match ip {
            Some(ip) => {
                self.hit(
                    &format!("signup:{ip}"),
                    self.policy.throttle.per_ip,
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
        &self,
        key: &str,
        limit: u32,
        scope: &str,
        username: Option<&str>,
        ip: Option<&str>,
    ) -> Result<(), Error> {
        let now = self.now();
        let window = secs(self.policy.throttle.window);
        let (count, start) = self.stores.rate_limits.hit(key, window, now).await?;
        if count > limit {
            let retry_after = u32::try_from((start + window - now).max(1)).unwrap_or(u32::MAX);
            self.stores
                .audit
                .record(
                    now,
                    &AuditKind::LoginThrottled,
                    None,
                    &json!({"scope": scope, "username": username, "ip": ip}),
                )
                .await?;
            tracing::warn!(event = "login_throttled", scope, "attempt throttled");
            return Err(Error::Throttled { retry_after });
        }
        Ok(())
    }

    /// Forget the account's failures after a successful login.
    pub async fn login_succeeded(&self, username: &str) -> Result<(), Error> {
        self.stores
            .rate_limits
            .reset(&format!("acct:{username}"))
            .await?;
        Ok(())
    }
}
