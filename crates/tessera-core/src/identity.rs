//! Who a caller is: roles, the credential they presented, and the [`Principal`] every
//! adapter receives after authentication.
//!
//! A principal is shared, not copied: a cached session's principal is one `Arc` handed to
//! every request that presents it, and it never carries the password hash.

use std::sync::Arc;

use crate::store::{SessionRecord, User};
use crate::wire::wire_enum;

wire_enum! {
    /// A user's role. `user` and `admin` have meaning to tessera; any other valid role name
    /// (1–32 characters of `a-z` and `_`) is carried for the services that read it.
    pub enum Role {
        /// An ordinary account (the default).
        User = "user",
        /// May use the admin API.
        Admin = "admin",
    }
}

wire_enum! {
    /// The kind of a credential, as shown in `GET /v1/me` (`auth`) and the device list.
    pub enum CredentialKind {
        /// A server-side session (cookie).
        Session = "session",
        /// A JWT access token.
        Jwt = "jwt",
        /// A refresh family (one JWT-mode login).
        RefreshFamily = "refresh_family",
    }
}

wire_enum! {
    /// How a login was made, as recorded in the audit trail.
    pub enum LoginMethod {
        /// `POST /v1/login`: a session.
        Session = "session",
        /// The OAuth password grant: a refresh family.
        PasswordGrant = "jwt",
    }
}

/// A user as every authenticated request sees it: no password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable user id (`sub`).
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
}

impl From<&User> for Identity {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.id.clone(),
            username: u.username.clone(),
            role: u.role.clone(),
        }
    }
}

/// A live session and its user, as cached and as handed to requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedSession {
    /// The session record.
    pub session: SessionRecord,
    /// Its (enabled) user.
    pub identity: Identity,
}

/// A verified access token's subject and handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedToken {
    /// The token's subject.
    pub identity: Identity,
    /// Token id.
    pub jti: String,
    /// Expiry (a revoked `jti` is remembered until then).
    pub exp: i64,
    /// The refresh family the token belongs to.
    pub sid: Option<String>,
}

/// An authenticated caller: by exactly one credential.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A server-side session (shared with the session cache).
    Session(Arc<AuthenticatedSession>),
    /// A verified JWT access token.
    Jwt(Arc<AuthenticatedToken>),
}

impl Principal {
    /// Who.
    pub fn identity(&self) -> &Identity {
        match self {
            Self::Session(s) => &s.identity,
            Self::Jwt(t) => &t.identity,
        }
    }

    /// User id (`sub`).
    pub fn user_id(&self) -> &str {
        &self.identity().user_id
    }

    /// Username.
    pub fn username(&self) -> &str {
        &self.identity().username
    }

    /// Role.
    pub fn role(&self) -> &Role {
        &self.identity().role
    }

    /// Which kind of credential.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Session(_) => CredentialKind::Session,
            Self::Jwt(_) => CredentialKind::Jwt,
        }
    }

    /// The caller's own session id or refresh family id: what "end my *other* logins"
    /// keeps, and what the device list marks as current.
    pub fn current(&self) -> crate::revocation::Keep<'_> {
        match self {
            Self::Session(s) => crate::revocation::Keep {
                session: Some(s.session.id.as_str()),
                family: None,
            },
            Self::Jwt(t) => crate::revocation::Keep {
                session: None,
                family: t.sid.as_deref(),
            },
        }
    }
}
