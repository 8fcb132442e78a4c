//! tessera's HTTP adapter and composition root.
//!
//! Every use case lives in `tessera-core`; this crate turns requests into calls on its
//! [`Core`](tessera_core::Core) and results into responses.
//!
//! # Layout
//!
//! - [`config`]: [`config::Settings`], loaded once from file, environment and flags, and
//!   the small policy values the core is built with.
//! - [`startup`]: the composition root — stores → core → HTTP state;
//!   `Application::build(settings)` → `port()` → `run_until(shutdown)`.
//! - [`http`]: routes, the [`http::auth::Authenticated`] extractor, CSRF, body extractors;
//!   [`error::ApiError`] is the one error type that becomes a response, and the one place
//!   that maps core errors to status codes, `error` codes and `WWW-Authenticate`.
//! - [`cookies`]: the session cookie's `Set-Cookie` values.
//!
//! Verification of access tokens lives in the `tessera-verify` crate, which services
//! embed without pulling in any of this; the load generator is `tessera-bench`; the
//! `tessera` binary is the `tessera` crate.

pub mod config;
pub mod cookies;
pub mod error;
pub mod http;
pub mod startup;
