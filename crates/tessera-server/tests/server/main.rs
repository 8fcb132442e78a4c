//! Integration tests: the real server over HTTP on ephemeral ports, real SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod helpers;

mod accounts;
mod bench_cli;
mod cli;
mod errors;
mod interop;
mod jwt_mode;
mod keys;
mod oauth_clients;
mod refresh;
mod restart;
mod revocation;
mod scaleout;
mod session_mode;
mod store_conformance;
