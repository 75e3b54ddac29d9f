//! The client's side: building requests and parsing answers for every grant, the
//! authorization code flow's front channel, using tokens, and the machines that drive the
//! flows (the token lifecycle, a token call with its retries, a resource call with its one
//! retry). The introspection, revocation and discovery requests are here too: a gateway that
//! introspects is the introspection endpoint's client.

#[cfg(feature = "anypoint")]
pub mod anypoint;
mod auth;
#[cfg(feature = "authorization-code")]
pub(crate) mod authorization;
pub(crate) mod bearer;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod dpop;
pub(crate) mod engine;
pub(crate) mod id_token;
pub(crate) mod introspection;
pub(crate) mod jwks;
pub(crate) mod lifecycle;
pub mod providers;
pub(crate) mod registration;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod userinfo;

#[cfg(feature = "anypoint")]
pub(crate) use auth::basic_header;
pub(crate) use auth::sign_now;
pub use auth::{
    AssertionSigner, BodyEncoding, Client, ClientAssertion, ClientAuthentication, ClientId,
    JWT_BEARER_CLIENT_ASSERTION_TYPE, SigningContext,
};
