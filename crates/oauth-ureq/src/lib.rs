//! OAuth 2.0 for blocking Rust on [ureq](https://docs.rs/ureq).
//!
//! This crate executes what [`oauth_core`] builds and hands the answers back to its parsers:
//!
//! - [`HttpClient`]: token, introspection and revocation requests, HTTPS only (rustls with
//!   ring, Mozilla's roots plus any CA you add), no redirects, a 1 MiB response cap, connect
//!   and overall timeouts, bounded retries of transient failures.
//! - [`TokenSource`]: a shared access token that is reused until the [`RefreshPolicy`] says
//!   otherwise, refreshed once for any number of concurrent callers, and sent as
//!   `Authorization: Bearer` by [`TokenSource::send`], which recovers once from a 401 "token
//!   expired".
//!
//! The async twin, `oauth-reqwest`, has the same types with the same names.
//!
//! ```no_run
//! use oauth_ureq::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, TokenRequest, TokenSource};
//!
//! # fn run() -> Result<(), oauth_ureq::Error> {
//! let http = HttpClient::new(HttpConfig::new())?;
//! let endpoint = http.endpoint("https://auth.example.com/oauth/token")?;
//! let client = Client::new("my-client", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
//! let tokens = TokenSource::builder(http, endpoint, client)
//!     .grant(TokenRequest::client_credentials().scope(["read"]))
//!     .build();
//! let request = oauth_ureq::http::Request::get("https://api.example.com/v1/things")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! let response = tokens.send(request)?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod config;
mod http_client;
mod source;

pub use config::HttpConfig;
pub use http_client::HttpClient;
pub use source::{TokenSource, TokenSourceBuilder};

pub use oauth_core::{self, http};
pub use oauth_core::{
    AccessToken, Assertion, BodyEncoding, Client, ClientAssertion, ClientAuthentication, ClientId,
    ClientSecret, Endpoint, Error, ErrorCode, ErrorResponse, Fault, IdToken, Password,
    RefreshPolicy, RefreshToken, RetryPolicy, Scope, SecurityToken, TokenExchange, TokenRequest,
    TokenResponse, TokenType, TransportError, TransportErrorKind, UnknownExpiry,
};
#[cfg(feature = "authorization-code")]
pub use oauth_core::{AuthorizationRequest, PendingAuthorization, Pkce, PkceMethod};

/// The operating system's random source (through ring), for the refresh jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRandom;

impl oauth_core::RandomSource for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), oauth_core::RandomError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| oauth_core::RandomError::new())
    }
}
