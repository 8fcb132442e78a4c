//! Integration tests of the core without HTTP: the store conformance suite over every
//! backend, and the use cases driven directly on SQLite in a temp dir with a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod redaction;
mod revocation;
mod services;
mod store_conformance;
