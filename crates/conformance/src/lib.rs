//! One conformance suite for both adapters.
//!
//! [`Harness`] is what the suite needs from an adapter, implemented by [`Reqwest`] (driving
//! the async adapter on a tokio runtime) and [`Ureq`]. The checks live in [`suite`], each a
//! function generic over the harness; [`conformance_tests!`] turns them into `#[test]`s for
//! one harness. Everything runs against [`oauth_test_server`] over loopback HTTPS, with a
//! certificate authority generated for the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod echo;
pub mod engine;
pub mod flows;
pub mod oidc_provider;
pub mod suite;

use std::sync::Arc;
use std::time::Duration;

use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Client, Endpoint, Error, Introspection, IntrospectionRequest, RefreshPolicy,
    RetryPolicy, RevocationRequest, ServerMetadata, TokenRequest, TokenResponse,
};

/// How the adapter's HTTP client is configured for a check.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// The test server's CA, added to the trust store.
    pub ca_pem: Option<String>,
    /// Allow `http://` on loopback.
    pub allow_http_loopback: bool,
    /// Overall request timeout.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Trust only `ca_pem`, not Mozilla's roots.
    pub trust_only: bool,
    /// A client certificate chain and its key, PEM (mutual TLS, RFC 8705).
    pub client_identity: Option<(String, String)>,
}

/// Receives each token response.
pub type PersistFn = Arc<dyn Fn(&TokenResponse) + Send + Sync>;

/// What a token source is built with.
#[derive(Clone, Default)]
pub struct SourceSpec {
    /// The grant run when there is no refresh token.
    pub grant: Option<TokenRequest>,
    /// The refresh policy.
    pub policy: Option<RefreshPolicy>,
    /// A token to start with.
    pub seed: Option<TokenResponse>,
    /// Called after each token response.
    pub on_token: Option<PersistFn>,
    /// Which resource answers mean a rejected token.
    pub classifier: Option<oauth_core::RejectionClassifier>,
}

/// The operations the suite runs through an adapter, in blocking form.
pub trait Harness: Sized + Send + Sync + 'static {
    /// The adapter's token source.
    type Source: Clone + std::fmt::Debug + Send + Sync + 'static;
    /// The adapter's OpenID Connect relying party.
    type OpenId: Send + Sync + 'static;
    /// Which adapter.
    const NAME: &'static str;
    /// An HTTP client with these settings.
    fn new(setup: &Setup) -> Result<Self, Error>;
    /// Parses an endpoint under the configured scheme policy.
    fn endpoint(&self, url: &str) -> Result<Endpoint, Error>;
    /// One token request (with the configured retries).
    fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error>;
    /// A raw request (no redirects followed), for the authorization endpoint.
    fn execute(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error>;
    /// `http.introspect(..)`.
    fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error>;
    /// `http.revoke(..)`.
    fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error>;
    /// `http.discover(issuer)`.
    fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error>;
    /// A token source.
    fn source(&self, endpoint: Endpoint, client: Client, spec: SourceSpec) -> Self::Source;
    /// `source.token()`.
    fn token(&self, source: &Self::Source) -> Result<AccessToken, Error>;
    /// `source.invalidate(token)`.
    fn invalidate(&self, source: &Self::Source, token: &AccessToken);
    /// `source.send(request)`.
    fn send(
        &self,
        source: &Self::Source,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Error>;
    /// `n` concurrent `source.token()` calls, started together.
    fn concurrent_tokens(&self, source: &Self::Source, n: usize)
    -> Vec<Result<AccessToken, Error>>;
    /// `OpenIdClient::new(http, core)`.
    fn openid(&self, core: oauth_reqwest::OpenIdCore) -> Self::OpenId;
    /// `oidc.exchange_code(pending, redirect)`.
    fn exchange_code(
        &self,
        oidc: &Self::OpenId,
        pending: &oauth_core::PendingAuthorization,
        redirect: &str,
    ) -> Result<oauth_reqwest::Login, Error>;
    /// `oidc.refresh(refresh_token, previous)`.
    fn openid_refresh(
        &self,
        oidc: &Self::OpenId,
        refresh_token: &oauth_core::RefreshToken,
        previous: Option<&oauth_core::IdTokenClaims>,
    ) -> Result<oauth_reqwest::Login, Error>;
    /// `oidc.userinfo(token, subject)`.
    fn userinfo(
        &self,
        oidc: &Self::OpenId,
        token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<oauth_core::UserInfo, Error>;
    /// `oidc.core()`.
    fn openid_core(oidc: &Self::OpenId) -> &oauth_reqwest::OpenIdCore;
    /// `oidc.begin(request)`.
    fn openid_begin(
        &self,
        oidc: &Self::OpenId,
        request: oauth_core::AuthorizationRequest,
    ) -> Result<oauth_core::PendingAuthorization, Error>;
    /// `http.device_flow(..)`, given up at `deadline` (the async adapter's future is dropped
    /// then: cancellation).
    #[allow(clippy::too_many_arguments)]
    fn device_flow(
        &self,
        device_endpoint: &Endpoint,
        token_endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
        prompt: Box<dyn FnOnce(&oauth_core::DeviceAuthorization) + Send>,
        deadline: Option<std::time::Instant>,
    ) -> Result<TokenResponse, Error>;
    /// `http.push_authorization(..)`.
    fn push_authorization(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        pending: &oauth_core::PendingAuthorization,
    ) -> Result<oauth_core::PendingAuthorization, Error>;
    /// `http.register_client(..)`.
    fn register_client(
        &self,
        endpoint: &Endpoint,
        request: &oauth_core::RegistrationRequest,
    ) -> Result<oauth_core::RegisteredClient, Error>;
    /// `http.read_client_registration(..)`.
    fn read_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<oauth_core::RegisteredClient, Error>;
    /// `http.update_client_registration(..)`.
    fn update_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
        metadata: &oauth_core::ClientMetadata,
    ) -> Result<oauth_core::RegisteredClient, Error>;
    /// `http.delete_client_registration(..)`.
    fn delete_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<(), Error>;
}

/// The async adapter, driven on a two-thread tokio runtime.
pub struct Reqwest {
    http: oauth_reqwest::HttpClient,
    runtime: tokio::runtime::Runtime,
}

macro_rules! config {
    ($krate:ident, $setup:expr) => {{
        let setup: &Setup = $setup;
        let mut config = $krate::HttpConfig::new();
        match (&setup.ca_pem, setup.trust_only) {
            (Some(pem), false) => config = config.add_root_certificates_pem(pem.as_bytes())?,
            (Some(pem), true) => {
                config = config.trust_only_root_certificates_pem(pem.as_bytes())?
            }
            (None, _) => {}
        }
        if setup.allow_http_loopback {
            config = config.dangerous_allow_http_loopback();
        }
        if let Some(t) = setup.timeout {
            config = config.timeout(t);
        }
        if let Some(r) = &setup.retry {
            config = config.retry(r.clone());
        }
        if let Some((chain, key)) = &setup.client_identity {
            config = config.client_identity($krate::ClientIdentity::from_pem(
                chain.as_bytes(),
                key.as_bytes(),
            )?);
        }
        config
    }};
}

macro_rules! source {
    ($krate:ident, $http:expr, $endpoint:expr, $client:expr, $spec:expr) => {{
        let spec: SourceSpec = $spec;
        let mut builder = $krate::TokenSource::builder($http.clone(), $endpoint, $client);
        if let Some(grant) = spec.grant {
            builder = builder.grant(grant);
        }
        if let Some(policy) = spec.policy {
            builder = builder.policy(policy);
        }
        if let Some(seed) = spec.seed {
            builder = builder.seed(seed);
        }
        if let Some(f) = spec.on_token {
            builder = builder.on_token(move |t| f(t));
        }
        if let Some(c) = spec.classifier {
            builder = builder.classifier(c);
        }
        builder.build()
    }};
}

impl Harness for Reqwest {
    type Source = oauth_reqwest::TokenSource;
    type OpenId = oauth_reqwest::OpenIdClient;
    const NAME: &'static str = "oauth-reqwest";

    fn new(setup: &Setup) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let config = config!(oauth_reqwest, setup);
        let http = {
            let _guard = runtime.enter();
            oauth_reqwest::HttpClient::new(config)?
        };
        Ok(Self { http, runtime })
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, Error> {
        self.http.endpoint(url)
    }

    fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        self.runtime
            .block_on(self.http.request_token(endpoint, client, request))
    }

    fn execute(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.runtime.block_on(self.http.execute(request))
    }

    fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        self.runtime
            .block_on(self.http.introspect(endpoint, client, request))
    }

    fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        self.runtime
            .block_on(self.http.revoke(endpoint, client, request))
    }

    fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        self.runtime.block_on(self.http.discover(issuer))
    }

    fn source(&self, endpoint: Endpoint, client: Client, spec: SourceSpec) -> Self::Source {
        source!(oauth_reqwest, self.http, endpoint, client, spec)
    }

    fn token(&self, source: &Self::Source) -> Result<AccessToken, Error> {
        self.runtime.block_on(source.token())
    }

    fn invalidate(&self, source: &Self::Source, token: &AccessToken) {
        source.invalidate(token);
    }

    fn send(
        &self,
        source: &Self::Source,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Error> {
        self.runtime.block_on(source.send(request))
    }

    fn device_flow(
        &self,
        device_endpoint: &Endpoint,
        token_endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
        prompt: Box<dyn FnOnce(&oauth_core::DeviceAuthorization) + Send>,
        deadline: Option<std::time::Instant>,
    ) -> Result<TokenResponse, Error> {
        let flow = self
            .http
            .device_flow(device_endpoint, token_endpoint, client, request, prompt);
        self.runtime.block_on(async move {
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), flow)
                    .await
                    .unwrap_or_else(|_| {
                        Err(oauth_core::TransportError::new(
                            oauth_core::TransportErrorKind::Timeout,
                            "the device flow's deadline passed before the user approved",
                        )
                        .into())
                    }),
                None => flow.await,
            }
        })
    }

    fn push_authorization(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        pending: &oauth_core::PendingAuthorization,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        self.runtime
            .block_on(self.http.push_authorization(par_endpoint, client, pending))
    }

    fn register_client(
        &self,
        endpoint: &Endpoint,
        request: &oauth_core::RegistrationRequest,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.runtime
            .block_on(self.http.register_client(endpoint, request))
    }

    fn read_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.runtime
            .block_on(self.http.read_client_registration(client))
    }

    fn update_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
        metadata: &oauth_core::ClientMetadata,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.runtime
            .block_on(self.http.update_client_registration(client, metadata))
    }

    fn delete_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<(), Error> {
        self.runtime
            .block_on(self.http.delete_client_registration(client))
    }

    fn openid(&self, core: oauth_reqwest::OpenIdCore) -> Self::OpenId {
        oauth_reqwest::OpenIdClient::new(self.http.clone(), core)
    }

    fn exchange_code(
        &self,
        oidc: &Self::OpenId,
        pending: &oauth_core::PendingAuthorization,
        redirect: &str,
    ) -> Result<oauth_reqwest::Login, Error> {
        self.runtime.block_on(oidc.exchange_code(pending, redirect))
    }

    fn openid_refresh(
        &self,
        oidc: &Self::OpenId,
        refresh_token: &oauth_core::RefreshToken,
        previous: Option<&oauth_core::IdTokenClaims>,
    ) -> Result<oauth_reqwest::Login, Error> {
        self.runtime.block_on(oidc.refresh(refresh_token, previous))
    }

    fn userinfo(
        &self,
        oidc: &Self::OpenId,
        token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<oauth_core::UserInfo, Error> {
        self.runtime.block_on(oidc.userinfo(token, subject))
    }

    fn openid_core(oidc: &Self::OpenId) -> &oauth_reqwest::OpenIdCore {
        oidc.core()
    }

    fn openid_begin(
        &self,
        oidc: &Self::OpenId,
        request: oauth_core::AuthorizationRequest,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        self.runtime.block_on(oidc.begin(request))
    }

    fn concurrent_tokens(
        &self,
        source: &Self::Source,
        n: usize,
    ) -> Vec<Result<AccessToken, Error>> {
        self.runtime.block_on(async {
            let barrier = Arc::new(tokio::sync::Barrier::new(n));
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let source = source.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        source.token().await
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for task in tasks {
                out.push(task.await.expect("task"));
            }
            out
        })
    }
}

/// The blocking adapter.
pub struct Ureq {
    http: oauth_ureq::HttpClient,
}

impl Harness for Ureq {
    type Source = oauth_ureq::TokenSource;
    type OpenId = oauth_ureq::OpenIdClient;
    const NAME: &'static str = "oauth-ureq";

    fn new(setup: &Setup) -> Result<Self, Error> {
        let config = config!(oauth_ureq, setup);
        Ok(Self {
            http: oauth_ureq::HttpClient::new(config)?,
        })
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, Error> {
        self.http.endpoint(url)
    }

    fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        self.http.request_token(endpoint, client, request)
    }

    fn execute(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.http.execute(request)
    }

    fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        self.http.introspect(endpoint, client, request)
    }

    fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        self.http.revoke(endpoint, client, request)
    }

    fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        self.http.discover(issuer)
    }

    fn source(&self, endpoint: Endpoint, client: Client, spec: SourceSpec) -> Self::Source {
        source!(oauth_ureq, self.http, endpoint, client, spec)
    }

    fn token(&self, source: &Self::Source) -> Result<AccessToken, Error> {
        source.token()
    }

    fn invalidate(&self, source: &Self::Source, token: &AccessToken) {
        source.invalidate(token);
    }

    fn send(
        &self,
        source: &Self::Source,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Error> {
        source.send(request)
    }

    fn device_flow(
        &self,
        device_endpoint: &Endpoint,
        token_endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
        prompt: Box<dyn FnOnce(&oauth_core::DeviceAuthorization) + Send>,
        deadline: Option<std::time::Instant>,
    ) -> Result<TokenResponse, Error> {
        self.http.device_flow(
            device_endpoint,
            token_endpoint,
            client,
            request,
            prompt,
            deadline,
        )
    }

    fn push_authorization(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        pending: &oauth_core::PendingAuthorization,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        self.http.push_authorization(par_endpoint, client, pending)
    }

    fn register_client(
        &self,
        endpoint: &Endpoint,
        request: &oauth_core::RegistrationRequest,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.http.register_client(endpoint, request)
    }

    fn read_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.http.read_client_registration(client)
    }

    fn update_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
        metadata: &oauth_core::ClientMetadata,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        self.http.update_client_registration(client, metadata)
    }

    fn delete_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<(), Error> {
        self.http.delete_client_registration(client)
    }

    fn openid(&self, core: oauth_reqwest::OpenIdCore) -> Self::OpenId {
        oauth_ureq::OpenIdClient::new(self.http.clone(), core)
    }

    fn exchange_code(
        &self,
        oidc: &Self::OpenId,
        pending: &oauth_core::PendingAuthorization,
        redirect: &str,
    ) -> Result<oauth_reqwest::Login, Error> {
        oidc.exchange_code(pending, redirect)
    }

    fn openid_refresh(
        &self,
        oidc: &Self::OpenId,
        refresh_token: &oauth_core::RefreshToken,
        previous: Option<&oauth_core::IdTokenClaims>,
    ) -> Result<oauth_reqwest::Login, Error> {
        oidc.refresh(refresh_token, previous)
    }

    fn userinfo(
        &self,
        oidc: &Self::OpenId,
        token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<oauth_core::UserInfo, Error> {
        oidc.userinfo(token, subject)
    }

    fn openid_core(oidc: &Self::OpenId) -> &oauth_reqwest::OpenIdCore {
        oidc.core()
    }

    fn openid_begin(
        &self,
        oidc: &Self::OpenId,
        request: oauth_core::AuthorizationRequest,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        oidc.begin(request)
    }

    fn concurrent_tokens(
        &self,
        source: &Self::Source,
        n: usize,
    ) -> Vec<Result<AccessToken, Error>> {
        let barrier = std::sync::Barrier::new(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let barrier = &barrier;
                    std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, move || {
                            barrier.wait();
                            source.token()
                        })
                        .expect("a thread")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        })
    }
}

/// Generates one `#[test]` per check in [`suite`] for a harness type.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::suite::$check::<$harness>();
            }
        )*
    };
}

/// Generates one `#[test]` per check in [`flows`] for a harness type.
#[macro_export]
macro_rules! flows_tests {
    ($harness:ty; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::flows::$check::<$harness>();
            }
        )*
    };
}

/// Generates one `#[test]` per check in [`engine`] for a harness type.
#[macro_export]
macro_rules! engine_tests {
    ($harness:ty; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::engine::$check::<$harness>();
            }
        )*
    };
}

/// The README's examples (which use every crate), compiled — and run where they need no
/// network — as doctests of this unpublished crate, which can depend on all of them.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
