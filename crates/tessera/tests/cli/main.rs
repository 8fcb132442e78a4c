//! Integration tests of the `tessera` binary itself: the README walkthrough, the admin
//! commands, configuration errors, restarts, the log, and `tessera bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod walkthrough;
