//! The audit trail's event kinds. `detail` never holds a secret.

use crate::wire::wire_enum;

wire_enum! {
    /// What an audit event records. The names are stable: operators filter on them.
    pub enum AuditKind {
        /// A successful login (either mode).
        Login = "login",
        /// A failed login: unknown user, wrong password or disabled account alike.
        LoginFailed = "login_failed",
        /// An attempt refused by throttling.
        LoginThrottled = "login_throttled",
        /// A session ended, or a JWT-mode logout.
        Logout = "logout",
        /// Every credential of the caller ended.
        LogoutAll = "logout_all",
        /// The password changed; the other credentials ended.
        PasswordChange = "password_change",
        /// An admin changed a role.
        RoleChange = "role_change",
        /// A user's credentials ended after a role change.
        CredentialsRevoked = "credentials_revoked",
        /// An admin disabled a user.
        UserDisabled = "user_disabled",
        /// An admin re-enabled a user.
        UserEnabled = "user_enabled",
        /// An admin ended every credential of a user.
        AdminRevoke = "admin_revoke",
        /// One token or family revoked (RFC 7009, or a device ended by its owner).
        Revoke = "revoke",
        /// A spent refresh token came back outside the grace period: the family is revoked.
        RefreshReuseDetected = "refresh_reuse_detected",
    }
}
