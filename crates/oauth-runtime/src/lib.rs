//! The runtime-neutral half of the two adapters, `oauth-reqwest` (async) and `oauth-ureq`
//! (blocking): everything both need that is not protocol (that is in [`oauth_core`]) and not
//! tied to one HTTP client or one way of waiting. Most programs use an adapter, which
//! re-exports what they need from here; this crate is for those writing an adapter, a
//! middleware or a token store.
//!
//! # Where to start
//!
//! - [`HttpConfig`]: the security-relevant HTTP settings (TLS roots, timeouts, caps,
//!   retries) every adapter's `HttpClient` is built from.
//! - [`TokenSourceBuilder`]: the builder both adapters' `TokenSource`s share (grant, refresh
//!   policy, seed token, `on_token`, the fleet's [`FleetStore`]).
//! - [`Io`]: what an HTTP client provides (send one request, wait); the drivers
//!   ([`request_token`], [`send`], [`discover`], [`device_flow`], ...) run oauth-core's
//!   machines over it, written once as `async fn`s.
//! - [`SharedToken`]: a token source's state: the
//!   [`TokenLifecycle`](oauth_core::TokenLifecycle) behind a mutex, and the current token
//!   published through `arc-swap` for lock-free reads on the coarse monotonic clock.
//!
//! Also here: [`authorized`], the client middlewares' driver (the same resource-call rules
//! over the caller's own stack, [`Downstream`], bodies streamed); [`now`] (one reading of both
//! clocks) and [`SystemRandom`] (the OS random source); and, with feature `openid`,
//! [`OpenIdCore`] and [`RemoteKeys`].
//!
//! It does no network I/O, spawns nothing and never sleeps: the adapters do, each in its own way.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `authorization-code` | yes | the code flow's drivers (`push_authorization`) |
//! | `openid` | yes | [`OpenIdCore`], [`RemoteKeys`]: id_token and UserInfo validation, JWK sets (jwt-assertion, ring) |
#![forbid(unsafe_code)]

mod builder;
mod config;
mod drive;
mod flows;
mod limit;
mod middleware;
#[cfg(feature = "openid")]
mod openid;
mod shared;
mod signal;
mod store;

pub use builder::TokenSourceBuilder;
pub use config::{ClientIdentity, ClientIdentityError, HttpConfig, Roots, certificate_thumbprint};
pub use drive::{
    Body, Io, discover, exchange, execute, execute_oauth, introspect, request_token, revoke, send,
};
#[cfg(feature = "authorization-code")]
pub use flows::push_authorization;
pub use flows::{
    delete_client_registration, device_authorization, device_flow, read_client_registration,
    register_client, update_client_registration,
};
pub use limit::{LocalCounters, RateCounter};
pub use middleware::{Downstream, MAX_REJECTION_BODY, NotReplayed, authorized};
#[cfg(feature = "openid")]
pub use openid::{IdTokenExpectations, KeysError, Login, OpenIdCore, RemoteKeys};
pub use shared::SharedToken;
pub use signal::{Changed, Signal};
pub use store::{
    FleetStore, FleetTokens, LeaseSlot, Leased, Sealer, StoreError, StoreErrorKind, StoreFuture,
    StoreKey, fleet_token, holder_name, leased,
};
#[doc(hidden)]
pub use store::{SharedStore, TokenStore};

// The adapters' plumbing: public because the adapters are crates of their own, hidden because
// no user names it (and it may change in any release).
#[doc(hidden)]
pub use builder::{OwnedRefresh, SourceCore, SourceKind, SourceParts};
#[doc(hidden)]
pub use drive::{block_on, body_buffer, too_large, trim};
#[doc(hidden)]
pub use middleware::{copy_request, request_head};
#[doc(hidden)]
pub use shared::RefreshGuard;

use std::time::{Instant, SystemTime};

use oauth_core::{Error, Now, TokenCall, TokenResponse};

/// The error for a state a driver cannot be in (a `_` arm over one of oauth-core's
/// `#[non_exhaustive]` step enums, a single-use handle used twice): [`Error::Internal`], a
/// bug of ours, never disguised as a network failure or an expired grant. Debug builds stop
/// at once, so a test finds it; release builds return the error.
#[doc(hidden)]
pub fn internal_error(what: &'static str) -> Error {
    debug_assert!(false, "internal error: {what}");
    Error::Internal { what }
}

/// No body (a `GET` such as oauth-core's `discovery_request`): sent as an empty plain body.
impl From<()> for Body {
    fn from((): ()) -> Self {
        Self::Plain(Vec::new())
    }
}

/// A caller's bytes, sent as they are.
impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Plain(bytes)
    }
}

/// A body built by oauth-core: its secrets wiped once it is sent.
impl From<oauth_core::RequestBody> for Body {
    fn from(body: oauth_core::RequestBody) -> Self {
        Self::Secret(body)
    }
}

/// Reads both clocks.
pub fn now() -> Now {
    Now::new(SystemTime::now(), Instant::now())
}

/// The operating system's random source (through ring), for the refresh jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRandom;

/// The operating system's random source (through ring: `getrandom`), for `state`, `nonce`,
/// PKCE verifiers and the refresh jitter, and ring's SHA-256 (hardware-accelerated where the CPU
/// has it) for the PKCE challenge.
///
/// Every draw asks the OS: no userspace generator state that a `fork` could duplicate or a
/// memory disclosure could reveal.
impl oauth_core::RandomSource for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), oauth_core::RandomError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| oauth_core::RandomError::new())
    }

    #[cfg(feature = "authorization-code")]
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        let digest = ring::digest::digest(&ring::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
}

#[cfg(all(test, feature = "authorization-code"))]
mod tests {
    use oauth_core::{AuthorizationRequest, Endpoint, RandomSource};

    use super::SystemRandom;

    #[test]
    fn ring_sha256_known_answers() {
        // FIPS 180-4 "abc", and the empty string.
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(SystemRandom.sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(SystemRandom.sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pkce_challenges_from_the_adapters_source_verify() {
        let endpoint = Endpoint::new("https://as.example/authorize").unwrap();
        for _ in 0..20 {
            let pending = AuthorizationRequest::new(endpoint.clone(), "app")
                .build(&SystemRandom)
                .unwrap();
            let verifier = pending.code_verifier().unwrap().clone();
            // The core's portable SHA-256 agrees with ring's, as the URL shows.
            let again =
                oauth_core::Pkce::from_verifier(verifier, oauth_core::PkceMethod::S256).unwrap();
            let sent = format!("code_challenge={}&", again.challenge());
            assert!(pending.url().contains(&sent), "{}", pending.url());
        }
    }
}

/// What a token call's step is worth logging: a retry about to wait, or the end.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub(crate) enum CallEvent<'a> {
    /// An attempt is being sent.
    Sending,
    /// The last attempt failed and the call waits before the next.
    Retrying,
    /// The call ended with this result.
    Done(&'a Result<TokenResponse, Error>),
}

/// Logs a token call's progress. Errors are the core's, already scrubbed of every secret the
/// call sent; no token, secret or body is ever logged.
pub(crate) fn log_call(call: &TokenCall<'_>, event: CallEvent<'_>) {
    match event {
        CallEvent::Sending => tracing::debug!(
            grant_type = call.grant_type(),
            attempt = call.attempt(),
            "token request"
        ),
        CallEvent::Retrying => {
            if let Some(error) = call.last_error() {
                tracing::warn!(
                    grant_type = call.grant_type(),
                    attempt = call.attempt(),
                    error = %error,
                    "token request failed; retrying"
                );
            }
        }
        CallEvent::Done(Ok(_)) => tracing::debug!(
            grant_type = call.grant_type(),
            attempt = call.attempt(),
            "token response"
        ),
        CallEvent::Done(Err(error)) => tracing::warn!(
            grant_type = call.grant_type(),
            attempt = call.attempt(),
            error = %error,
            "token request failed"
        ),
    }
}

/// The types a user of either adapter needs, re-exported by both so that a user depends on one
/// crate.
pub mod reexports {
    pub use oauth_core::{
        AccessToken, Assertion, AssertionSigner, BodyEncoding, Client, ClientAssertion,
        ClientAuthentication, ClientId, ClientMetadata, ClientSecret, DeviceAuthorization,
        DeviceAuthorizationRequest, Endpoint, Error, ErrorCode, ErrorResponse, Fault, IdToken,
        IdTokenClaims, Introspection, IntrospectionRequest, Invalidated, Password, RefreshPolicy,
        RefreshToken, RegisteredClient, RegistrationRequest, RejectionClassifier, RetryPolicy,
        RevocationRequest, Scope, SecurityToken, ServerMetadata, TokenExchange, TokenRequest,
        TokenResponse, TokenType, TransportError, TransportErrorKind, UnknownExpiry, UserInfo,
    };
    #[cfg(feature = "authorization-code")]
    pub use oauth_core::{
        AuthorizationRequest, PendingAuthorization, PendingParts, Pkce, PkceMethod,
    };

    pub use crate::{ClientIdentity, ClientIdentityError, HttpConfig, Roots, SystemRandom};
}
