//! Verify access tokens issued by a tessera server.
//!
//! This is the *verifying* side of tessera: what a Rust service embeds to check that a
//! caller's `Authorization: Bearer` token was issued by its tessera server, is still within
//! its lifetime, and is meant for it. It has no server, database or UI dependencies; the
//! axum extractor sits behind the `axum` feature.
//!
//! # Layout
//!
//! - [`claims`]: the RFC 9068 access-token claims tessera issues ([`AccessClaims`]).
//! - [`keys`]: [`KeySet`], public keys by `kid`, each pinned to the one algorithm it is for.
//!   The key decides the algorithm, never the token header (RFC 8725 §3.1).
//! - [`verify`]: [`Verifier`] and its [`Policy`]: strict parsing and validation of a compact
//!   JWS, with the time passed in by the caller so that expiry is testable.
//! - [`bearer`]: parsing of the `Authorization` header (RFC 6750 §2.1).
//! - `extract` (feature `axum`): [`extract::Bearer`], an extractor yielding verified claims.
//!
//! # Example
//!
//! ```no_run
//! use tessera_verify::{KeySet, Policy, Verifier};
//! # fn jwks_from_your_http_client() -> String { String::new() }
//! let keys = KeySet::from_jwks_json(&jwks_from_your_http_client()).unwrap();
//! let verifier = Verifier::new(keys, Policy::new("https://auth.example.com", "tessera"));
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
//! match verifier.verify("eyJ...", now) {
//!     Ok(claims) => println!("caller is {}", claims.sub),
//!     Err(e) => println!("refused: {e}"),
//! }
//! ```

pub mod bearer;
pub mod claims;
pub mod keys;
pub mod verify;

#[cfg(feature = "axum")]
pub mod extract;

pub use claims::{AccessClaims, Audience};
pub use jsonwebtoken::Algorithm;
pub use keys::{KeySet, KeySetError, VerifyingKey};
pub use verify::{NoRevocation, Policy, RevocationCheck, Verifier, VerifyError};

/// The JWT `typ` header value of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
