//! Checking a username and password, for every login path (session login, the password
//! grant): input rules, throttling, Argon2id, and the audit trail.
//!
//! Unknown user, wrong password and disabled account are one answer,
//! [`Error::InvalidCredentials`], after the same hashing work, so that neither the answer
//! nor its timing tells which.

use serde_json::json;

use crate::Core;
use crate::accounts::{check_password_length, normalize_username};
use crate::audit::AuditKind;
use crate::error::Error;
use crate::identity::LoginMethod;
use crate::store::User;

/// Where a request came from, as recorded with a session or family and in the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client IP (the peer, or what a trusted proxy says).
    pub ip: Option<String>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
}

impl Core {
    /// Check credentials for any login path. Every failure is audited; the account's
    /// throttle count resets on success.
    pub async fn check_credentials(
        &self,
        username: &str,
        password: String,
        client: &ClientInfo,
        method: LoginMethod,
    ) -> Result<User, Error> {
        check_password_length(&password)?;
        let name = normalize_username(username)?;
        // The user is read first: this read is where a login takes effect. A revocation
        // whose epoch bump comes after it ends whatever this login goes on to issue (see
        // `Core::user_unchanged`); one whose bump came before is simply earlier, and this
        // login sees the user as it left them (disabled, or with the new role).
        let user = self.stores.users.user_by_name(&name).await?;
        self.login_attempt(&name, client.ip.as_deref()).await?;
        let ok = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let user = user.filter(|u| ok && !u.disabled);
        let now = self.now();
        match user {
            Some(u) => {
                self.login_succeeded(&name).await?;
                self.stores
                    .audit
                    .record(
                        now,
                        &AuditKind::Login,
                        Some(&u.id),
                        &json!({"mode": method, "ip": client.ip}),
                    )
                    .await?;
                Ok(u)
            }
            None => {
                tracing::info!(
                    event = "login_failed",
                    mode = method.as_str(),
                    "login failed"
                );
                self.stores
                    .audit
                    .record(
                        now,
                        &AuditKind::LoginFailed,
                        None,
                        &json!({"mode": method, "username": name, "ip": client.ip}),
                    )
                    .await?;
                Err(Error::InvalidCredentials)
            }
        }
    }
}
