//! Integration tests: the real server over HTTP on ephemeral ports, real SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod accounts;
mod errors;
mod history;
mod interop;
mod jwt_mode;
mod keys;
mod oauth_clients;
mod refresh;
mod restart;
mod revocation;
mod scaleout;
mod session_mode;
