//! [`TokenSourceBuilder`]: how both adapters' token sources are configured.

use std::marker::PhantomData;
use std::sync::Arc;

use oauth_core::{
    Client, ClientAuthentication, Endpoint, Error, RefreshPolicy, RejectionClassifier,
    TokenRequest, TokenResponse,
};

use crate::shared::{PersistFn, SharedToken, WakeFn};
use crate::store::FleetTokens;

/// A token source type an adapter builds from [`SourceParts`].
pub trait SourceKind: Sized {
    /// The adapter's HTTP client.
    type Http;
    /// Builds the source.
    fn assemble(parts: SourceParts<Self::Http>) -> Self;
}

/// What a [`TokenSourceBuilder`] was given.
#[non_exhaustive]
pub struct SourceParts<H> {
    /// The HTTP client.
    pub http: H,
    /// The token endpoint.
    pub endpoint: Endpoint,
    /// The client.
    pub client: Client,
    /// Which resource answers mean "the token was rejected".
    pub classifier: RejectionClassifier,
    policy: RefreshPolicy,
    grant: Option<TokenRequest>,
    seed: Option<TokenResponse>,
    on_token: Option<Arc<PersistFn>>,
    shared_store: Option<FleetTokens>,
}

impl<H> std::fmt::Debug for SourceParts<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceParts")
            .field("endpoint", &self.endpoint.as_str())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Refuses a client a token source cannot use: one whose authentication is a client assertion
/// signed once ([`ClientAuthentication::Assertion`]). A token source sends a request for every
/// grant, refresh and retry; each would carry the same assertion, which servers refuse as a
/// replayed `jti` (or as expired) from the second request on.
pub(crate) fn check_client(client: &Client) -> Result<(), Error> {
    match client.authentication() {
        ClientAuthentication::Assertion(_) => Err(Error::InvalidParameter {
            name: "client_assertion",
            reason: "is signed once (ClientAuthentication::Assertion), but a token source sends \
                     it with every grant, refresh and retry, and servers refuse a replayed \
                     assertion: give the client ClientAuthentication::Signed with an \
                     AssertionSigner (jwt-assertion's ClientAssertionSigner), which signs a \
                     new one for each request",
        }),
        _ => Ok(()),
    }
}

impl<H> SourceParts<H> {
    /// The token source's state, with `wake` run after every change (for async waiters).
    ///
    /// A source whose client [`TokenSourceBuilder::try_build`] refuses sends no request: every
    /// token request fails with that error.
    pub fn into_core(self, wake: Option<Box<WakeFn>>) -> SourceCore<H> {
        let refused = check_client(&self.client).err();
        let fleet = match (self.shared_store, &self.grant) {
            (Some(store), Some(grant)) => {
                let slot = store.slot_for(&self.endpoint, &self.client, grant);
                Some((store, slot))
            }
            _ => None,
        };
        SourceCore {
            fleet,
            shared: SharedToken::new(self.policy, self.grant, self.seed, self.on_token, wake),
            http: self.http,
            endpoint: self.endpoint,
            client: self.client,
            classifier: self.classifier,
            refused,
        }
    }
}

/// What a token source holds, whichever the adapter: where and how to ask for tokens, and
/// the shared state.
#[non_exhaustive]
pub struct SourceCore<H> {
    /// The HTTP client.
    pub http: H,
    /// The token endpoint.
    pub endpoint: Endpoint,
    /// The client.
    pub client: Client,
    /// Which resource answers mean "the token was rejected".
    pub classifier: RejectionClassifier,
    /// The lifecycle and the published token.
    pub shared: SharedToken,
    /// The fleet's shared store and this source's slot in it, if the source shares its token.
    pub fleet: Option<(FleetTokens, String)>,
    /// Why this source must send nothing (a client [`TokenSourceBuilder::try_build`] refuses,
    /// built with [`build`](TokenSourceBuilder::build)).
    refused: Option<Error>,
}

impl<H: crate::Io> SourceCore<H> {
    /// Runs a token request the lifecycle handed out: through the fleet's shared store when
    /// the source has one (a refresh token stays this process's own), else directly.
    pub async fn obtain(&self, request: &TokenRequest) -> Result<TokenResponse, Error> {
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        match &self.fleet {
            Some((store, slot)) if !request.is_refresh() => {
                crate::fleet_token(
                    &self.http,
                    store,
                    &self.shared.policy(),
                    slot,
                    self.shared.last().as_ref(),
                    &self.endpoint,
                    &self.client,
                    request,
                )
                .await
            }
            _ => crate::request_token(&self.http, &self.endpoint, &self.client, request).await,
        }
    }
}

impl<H> std::fmt::Debug for SourceCore<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &self.endpoint.as_str())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Builds a token source (`oauth_reqwest::TokenSource` or `oauth_ureq::TokenSource`).
#[must_use]
pub struct TokenSourceBuilder<S: SourceKind> {
    parts: SourceParts<S::Http>,
    kind: PhantomData<fn() -> S>,
}

impl<S: SourceKind> std::fmt::Debug for TokenSourceBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("endpoint", &self.parts.endpoint.as_str())
            .field("client", &self.parts.client)
            .finish_non_exhaustive()
    }
}

impl<S: SourceKind> TokenSourceBuilder<S> {
    /// Starts building a token source for `client` at the token `endpoint`.
    pub fn new(http: S::Http, endpoint: Endpoint, client: Client) -> Self {
        Self {
            parts: SourceParts {
                http,
                endpoint,
                client,
                classifier: RejectionClassifier::default(),
                policy: RefreshPolicy::default(),
                grant: None,
                seed: None,
                on_token: None,
                shared_store: None,
            },
            kind: PhantomData,
        }
    }

    /// The request that obtains a token without the user (client credentials, password, JWT
    /// bearer…), run whenever there is no refresh token to use. It is built afresh for every
    /// request, so a JWT bearer grant made with `TokenRequest::jwt_bearer_signed` (and a client
    /// that signs its assertions per request) sends a new assertion each time.
    pub fn grant(mut self, request: TokenRequest) -> Self {
        self.parts.grant = Some(request);
        self
    }

    /// When to refresh, how much margin to keep, how to back off.
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.parts.policy = policy;
        self
    }

    /// Starts with this token (persisted by an earlier run, or obtained with the authorization
    /// code flow). Its refresh token, if any, is used for the next refresh.
    pub fn seed(mut self, token: TokenResponse) -> Self {
        self.parts.seed = Some(token);
        self
    }

    /// Called after every successful token response, before callers see the new token: the
    /// place to persist a rotated refresh token. It runs on the refreshing task, so it should
    /// be quick.
    pub fn on_token(mut self, f: impl Fn(&TokenResponse) + Send + Sync + 'static) -> Self {
        self.parts.on_token = Some(Arc::new(f));
        self
    }

    /// Which answers of a resource mean "the token was rejected, get a new one and retry once"
    /// in `send` (default: RFC 6750 challenges and common "token expired" bodies).
    pub fn classifier(mut self, classifier: RejectionClassifier) -> Self {
        self.parts.classifier = classifier;
        self
    }

    /// Shares the token with every process that uses the same store, key and slot (a fleet of
    /// replicas asks for one token per lifetime instead of one each). The store is consulted
    /// only when this process needs a new token; if it is unreachable, this process requests
    /// its own. Needs a [`grant`](Self::grant).
    pub fn shared_store(mut self, store: FleetTokens) -> Self {
        self.parts.shared_store = Some(store);
        self
    }

    /// The token source, or an error if its client cannot be used by one: a client whose
    /// authentication is a client assertion signed once ([`ClientAuthentication::Assertion`])
    /// would send that assertion with every grant and refresh; sign per request with
    /// [`ClientAuthentication::Signed`] and an
    /// [`AssertionSigner`](oauth_core::AssertionSigner) (jwt-assertion's
    /// `ClientAssertionSigner`) instead.
    pub fn try_build(self) -> Result<S, Error> {
        check_client(&self.parts.client)?;
        Ok(S::assemble(self.parts))
    }

    /// The token source. Prefer [`try_build`](Self::try_build), which refuses a client that a
    /// token source cannot use (a client assertion signed once); a source built here from such
    /// a client sends no request, and each of its token calls fails with the error
    /// `try_build` gives.
    pub fn build(self) -> S {
        S::assemble(self.parts)
    }
}

/// A refresh handed to a task of its own: given back to the lifecycle (cancelled, so that the
/// next caller starts another) unless [`finish`](Self::finish) records its result, even if the
/// task is dropped before it first runs (a runtime shutting down) or its spawn panics.
/// Create it before spawning and move it into the task.
pub struct OwnedRefresh<H> {
    core: Arc<SourceCore<H>>,
    done: bool,
}

impl<H> OwnedRefresh<H> {
    /// Takes charge of the refresh the lifecycle just handed out.
    pub fn new(core: Arc<SourceCore<H>>) -> Self {
        Self { core, done: false }
    }

    /// The token source's state.
    pub fn core(&self) -> &SourceCore<H> {
        &self.core
    }

    /// Records the refresh's result.
    pub fn finish(mut self, result: Result<TokenResponse, Error>) {
        self.core.shared.finish(result);
        self.done = true;
    }
}

impl<H> Drop for OwnedRefresh<H> {
    fn drop(&mut self) {
        if !self.done {
            self.core.shared.cancel();
        }
    }
}
