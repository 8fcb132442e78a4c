//! Password hashing with Argon2id, off the async runtime and under a concurrency bound.
//!
//! Parameters are OWASP's minimum for Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
//! Each hash runs on the blocking pool (`spawn_blocking`) behind a semaphore: a flood of
//! logins queues for a slot instead of occupying every core, so requests that need no
//! hash (token and session checks) keep being served.
//!
//! Unknown users are checked against a dummy hash made at start-up with the same
//! parameters, so that "no such user" costs the same time as "wrong password".

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Longest password accepted, in bytes. Longer input is refused before any hashing, so
/// that nobody can make the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted for new accounts (OWASP Authentication cheat sheet).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why hashing could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Every hashing slot stayed busy for the whole queue timeout.
    #[error("password hashing is saturated")]
    Saturated,
    /// The hashing task failed (never expected; logged).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Argon2id hashing with a bounded number of hashes in flight.
#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    dummy: Arc<str>,
    /// Password checks done so far (real and dummy alike), exported as a metric and used by
    /// tests to show that unknown users cost the same hashing work as known ones.
    verifications: Arc<std::sync::atomic::AtomicU64>,
}

fn argon2() -> Argon2<'static> {
    // Constant, valid parameters: Params::new only fails on out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, HashError> {
    argon2()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

impl Passwords {
    /// A hasher allowing `slots` concurrent hashes; a caller waits at most `queue_timeout`.
    pub fn new(slots: usize, queue_timeout: Duration) -> Result<Self, HashError> {
        let dummy = hash_blocking(b"tessera dummy password for timing equalisation")?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            queue_timeout,
            dummy: dummy.into(),
            verifications: Arc::default(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Saturated)?
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let out = tokio::task::spawn_blocking(move || {
            let out = job();
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(out)
    }

    /// Hash a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_blocking(password.as_bytes())).await?
    }

    /// Whether `password` matches `hash`. With `hash = None` (no such user) the dummy hash
    /// is checked instead and the answer is always `false`, at the same cost.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let exists = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = self
            .run(move || {
                argon2()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(ok && exists)
    }

    /// How many password checks have been made.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let p = Passwords::new(1, Duration::from_secs(5)).unwrap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            p.verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!p.verify("wrong horse".into(), Some(h)).await.unwrap());
        // The dummy hash never authenticates anyone, not even with its own password.
        let dummy_pw = "tessera dummy password for timing equalisation".to_string();
        assert!(!p.verify(dummy_pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_times_out_instead_of_growing() {
        let p = Passwords::new(1, Duration::from_millis(1)).unwrap();
        let _held = p.slots.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            p.hash("x".repeat(10)).await,
            Err(HashError::Saturated)
        ));
    }
}
