//! tessera's issuing side: users, credentials, sessions, tokens, stores and the HTTP API.
//!
//! # Layout
//!
//! - [`config`]: [`config::Settings`], loaded once from file, environment and flags.
//! - [`clock`]: time as a parameter.
//! - [`store`]: one trait per kind of record; [`store::sqlite`] is the embedded default,
//!   [`store::postgres`] the scale-out one; [`bus`]: Redis push channel and counters.
//! - [`password`]: Argon2id under a concurrency bound; [`users`]: account rules.
//! - [`session`]: session tokens (hashed at rest) and cookies.
//! - [`keys`]: the signing key ring and its published JWKS.
//! - [`tokens`]: access tokens from refresh families; rotation with reuse detection.
//! - [`revocation`]: the in-memory revocation list and the one user-wide revocation path.
//! - [`clients`]: confidential OAuth clients and HTTP Basic client authentication.
//! - [`throttle`]: per-account and per-IP login throttling.
//! - [`http`]: routes, the [`http::auth::Principal`] extractor and body extractors;
//!   [`error::ApiError`] is the one error type that becomes a response.
//! - [`startup`]: `Application::build(settings)` → `port()` → `run_until(shutdown)`.
//! - [`bench`](mod@bench): `tessera bench`, the trade-off measured on the user's hardware.
//! - [`cli`]: the `tessera` command; `main.rs` only calls [`cli::run`].
//!
//! Verification of access tokens lives in the `tessera-verify` crate, which services
//! embed without pulling in any of this.

pub mod bench;
pub mod bus;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod keys;
pub mod password;
pub mod revocation;
pub mod session;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod users;
