//! The vocabulary both sides share: endpoints and their scheme policy, secrets, errors,
//! encodings, randomness and time as arguments, and what a transport reports.

pub(crate) mod encoding;
pub(crate) mod endpoint;
pub(crate) mod error;
pub mod json;
pub mod lease;
pub(crate) mod random;
pub(crate) mod scope;
pub(crate) mod scrub;
pub(crate) mod secret;
#[cfg(feature = "authorization-code")]
pub(crate) mod sha256;
pub(crate) mod time;
pub(crate) mod transport;
