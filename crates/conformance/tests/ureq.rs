//! The conformance suite against oauth-ureq.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Harness = conformance::Ureq;
include!("checks.in");
