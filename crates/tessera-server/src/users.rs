//! Accounts: username rules, creation and credential checks, shared by the HTTP API and
//! the `tessera user` command.

use crate::clock::Clock;
use crate::error::ApiError;
use crate::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, Passwords};
use crate::store::{User, UserStore};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Normalise and check a username: lower-cased, 1–64 characters of `a-z 0-9 . _ - @`.
/// Lower-casing makes `Alice` and `alice` one account, so nobody can register a look-alike.
pub fn normalize_username(raw: &str) -> Result<String, ApiError> {
    let name = raw.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::BadRequest {
            code: "invalid_username",
            description: "usernames are 1-64 characters of a-z, 0-9, '.', '_', '-', '@'".into(),
        })
    }
}

/// Refuse over-long passwords before any hashing.
pub fn check_password_length(password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest {
            code: "password_too_long",
            description: format!("passwords are at most {MAX_PASSWORD_BYTES} bytes"),
        });
    }
    Ok(())
}

/// Check a new password against the account rules.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    check_password_length(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::BadRequest {
            code: "weak_password",
            description: format!("passwords are at least {MIN_PASSWORD_CHARS} characters"),
        });
    }
    Ok(())
}

/// Roles are short lowercase words.
pub fn check_role(role: &str) -> Result<(), ApiError> {
    let ok = !role.is_empty()
        && role.len() <= 32
        && role.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest {
            code: "invalid_role",
            description: "roles are 1-32 characters of a-z and '_'".into(),
        })
    }
}

/// Create an account.
pub async fn create(
    users: &dyn UserStore,
    passwords: &Passwords,
    clock: &dyn Clock,
    username: &str,
    password: String,
    role: &str,
) -> Result<User, ApiError> {
    let username = normalize_username(username)?;
    check_new_password(&password)?;
    check_role(role)?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username,
        role: role.to_owned(),
        password_hash: passwords.hash(password).await?,
        disabled: false,
        created_at: clock.now(),
    };
    users.create_user(&user).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => ApiError::Conflict("username taken"),
        other => other.into(),
    })?;
    Ok(user)
}

/// Check a username and password. `Ok(None)` for every kind of failure — unknown user,
/// wrong password, disabled account — after the same amount of hashing work, so that
/// neither the answer nor its timing tells which.
pub async fn authenticate(
    users: &dyn UserStore,
    passwords: &Passwords,
    username: &str,
    password: String,
) -> Result<Option<User>, ApiError> {
    check_password_length(&password)?;
    let username = normalize_username(username)?;
    let user = users.user_by_name(&username).await?;
    let ok = passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    Ok(user.filter(|u| ok && !u.disabled))
}
