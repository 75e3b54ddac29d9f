//! The conformance suite against oauth-reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Harness = conformance::Reqwest;
include!("checks.in");
