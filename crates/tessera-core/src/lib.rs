//! tessera's domain core: every use case, the store traits, and their backends.
//!
//! Nothing here knows about HTTP: there is no axum, tower, hyper or `http` in this crate's
//! dependency tree, so the compiler keeps the seam. Every adapter — the HTTP API, pages,
//! forward authentication, the CLI, background tasks — reaches the same use cases through
//! one [`Core`], and renders the one [`Error`] type in its own terms.
//!
//! # Layout
//!
//! - [`Core`] ([`core`](mod@core)): the composition of stores, keys, password hashing, revocation state,
//!   the clock and the [`Policy`]; every use case is a method on it, defined next to the
//!   rules it applies:
//!   - [`accounts`]: usernames, passwords, roles, signup, user administration;
//!   - [`login`]: credential checks for every login path, with [`throttle`];
//!   - [`sessions`]: server-side sessions, their cache and sliding renewal;
//!   - [`tokens`]: access tokens from refresh families, rotation with reuse detection;
//!   - [`clients`]: OAuth clients and their authentication;
//!   - [`revocation`]: in-memory revocation state, its feed across instances, and the one
//!     path that ends a user's credentials.
//! - [`keys`]: the signing key ring and its JWKS; [`password`]: Argon2id under a bound.
//! - [`store`]: one trait per kind of record; SQLite, PostgreSQL and Redis backends.
//! - [`redis`]: the one Redis connection per process, the push channel and counters.
//! - [`tasks`]: the one helper every periodic background loop runs on.
//! - [`error`]: what went wrong, said in domain terms, with its source kept.
//! - [`opaque`]: the one generator and hasher of opaque secrets (session tokens, refresh
//!   tokens, client secrets).
//! - [`clock`]: time as a parameter.

pub mod accounts;
pub mod audit;
pub mod clients;
pub mod clock;
pub mod core;
pub mod error;
pub mod identity;
pub mod keys;
pub mod login;
pub mod opaque;
pub mod password;
pub mod policy;
pub mod redis;
pub mod revocation;
pub mod sessions;
pub mod store;
pub mod tasks;
pub mod throttle;
pub mod tokens;
mod wire;

pub use crate::core::Core;
pub use crate::error::Error;
pub use crate::policy::Policy;
