//! The vocabulary both sides share: endpoints and their scheme policy, secrets, errors,
//! encodings, randomness and time as arguments, and what a transport reports.

pub mod authorization_details;
pub(crate) mod encoding;
pub(crate) mod endpoint;
pub mod error;
pub mod json;
pub mod lease;
pub mod random;
pub(crate) mod scope;
pub mod scrub;
pub mod secret;
pub(crate) mod sha256;
pub(crate) mod time;
pub mod transport;
