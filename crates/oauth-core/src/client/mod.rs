//! The client's side: building requests and parsing answers for every grant, the
//! authorization code flow's front channel, using tokens, and the machines that drive the
//! flows (the token lifecycle, a token call with its retries, a resource call with its one
//! retry). The introspection, revocation and discovery requests are here too: a gateway that
//! introspects is the introspection endpoint's client.
//!
//! The token endpoint's vocabulary is here at the top: who the client is ([`Client`],
//! [`ClientAuthentication`], [`AssertionSigner`]), what it asks ([`TokenRequest`]) and what it
//! gets ([`parse_token_response`] → [`TokenResponse`]). Each other flow has a module of its
//! own:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`lifecycle`] | [`TokenLifecycle`](lifecycle::TokenLifecycle): when to reuse, refresh or wait, and what a rejected token means |
//! | [`engine`] | [`TokenCall`](engine::TokenCall) (one token request with its retries) and [`ResourceCall`](engine::ResourceCall) (the 401-once rule) |
//! | [`bearer`] | using a token: [`authorize_request`](bearer::authorize_request), reading a resource's answer |
//! | `authorization` | the authorization code flow's front channel, PKCE, PAR (feature `authorization-code`) |
//! | [`device`] | the device authorization grant (RFC 8628) |
//! | [`discovery`] | server metadata (RFC 8414, OpenID Connect Discovery) |
//! | [`introspection`] | introspection (RFC 7662) and revocation (RFC 7009) |
//! | [`registration`] | dynamic client registration (RFC 7591/7592) |
//! | [`dpop`] | DPoP proofs for the client (RFC 9449) |
//! | [`id_token`], [`userinfo`], [`jwks`] | OpenID Connect: id_token claims, UserInfo, when to fetch a JWK set again |
//! | [`profile`] | security profiles checked before anything is sent ([`Profile::Fapi2`](profile::Profile::Fapi2)) |
//! | [`providers`] | presets for the providers this toolkit was written against |

#[cfg(feature = "anypoint")]
pub mod anypoint;
mod auth;
#[cfg(feature = "authorization-code")]
pub mod authorization;
pub mod bearer;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod engine;
pub mod id_token;
pub mod introspection;
pub mod jwks;
pub mod lifecycle;
pub mod profile;
pub mod providers;
pub mod registration;
pub(crate) mod request;
pub(crate) mod response;
pub mod userinfo;

#[cfg(feature = "anypoint")]
pub(crate) use auth::basic_header;
pub(crate) use auth::sign_now;
pub use auth::{
    AssertionSigner, BodyEncoding, Client, ClientAssertion, ClientAuthentication, ClientId,
    JWT_BEARER_CLIENT_ASSERTION_TYPE, SigningContext,
};
pub use request::{
    JWT_BEARER_GRANT_TYPE, Repeat, RequestBody, TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT, TokenExchange, TokenRequest,
};
pub use response::{MAX_BODY_LEN, TokenResponse, TokenType, parse_token_response};
