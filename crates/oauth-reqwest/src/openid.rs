//! [`OpenIdClient`]: an OpenID Connect relying party on this adapter's [`HttpClient`]: the
//! code exchange validates the id_token by itself, UserInfo, refreshes. The logic is
//! oauth-runtime's `OpenIdCore` (ring verification from jwt-assertion, claim rules from
//! oauth-core); this is only its async face.

use std::sync::Arc;

use oauth_core::{
    AccessToken, AuthorizationRequest, Client, Error, IdToken, IdTokenClaims, PendingAuthorization,
    RefreshToken, UserInfo,
};
use oauth_runtime::{IdTokenExpectations, Login, OpenIdCore};

use crate::HttpClient;

/// An OpenID Connect relying party: the provider's metadata and keys, this client, and the
/// async calls that use them. Cheap to clone.
///
/// ```no_run
/// use oauth_reqwest::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, OpenIdClient};
///
/// # async fn run() -> Result<(), oauth_reqwest::Error> {
/// let http = HttpClient::new(HttpConfig::new())?;
/// let client = Client::new("my-app", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
/// let oidc = OpenIdClient::discover(http, "https://login.example.com", client).await?;
/// // Pushed (RFC 9126) when the provider requires it.
/// let pending = oidc.begin(
///     oidc.authorization_request("https://app.example.com/callback")?.scope(["openid", "email"]),
/// ).await?;
/// // Send the user to pending.url(); when the redirect comes back:
/// # let redirect_url = "";
/// let login = oidc.exchange_code(&pending, redirect_url).await?;
/// let claims = login.id_token.expect("openid was asked for");
/// println!("signed in: {} {:?}", claims.subject(), claims.email());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OpenIdClient {
    http: HttpClient,
    core: Arc<OpenIdCore>,
}

impl OpenIdClient {
    /// Discovers the provider at `issuer` (OpenID Connect Discovery; the issuer checked) and
    /// sets up `client` as its relying party.
    pub async fn discover(http: HttpClient, issuer: &str, client: Client) -> Result<Self, Error> {
        let metadata = http.discover(issuer).await?;
        Ok(Self::new(http, OpenIdCore::new(metadata, client)?))
    }

    /// A relying party from a configured core (other algorithms, client-secret signatures,
    /// leeway, key cache timing).
    pub fn new(http: HttpClient, core: OpenIdCore) -> Self {
        Self {
            http,
            core: Arc::new(core),
        }
    }

    /// The shared core: metadata, client, keys.
    pub fn core(&self) -> &OpenIdCore {
        &self.core
    }

    /// An authorization request to the provider for this client, redirecting to
    /// `redirect_uri`, expecting the provider's `iss` on the redirect (RFC 9207; required
    /// when the provider says it sends it). Add the scopes (`openid`, ...) and build it.
    pub fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, Error> {
        self.core.authorization_request(redirect_uri)
    }

    /// Builds `request` and pushes it (RFC 9126) when the provider requires pushed
    /// authorization requests; send the user to the returned authorization's URL.
    pub async fn begin(
        &self,
        request: AuthorizationRequest,
    ) -> Result<PendingAuthorization, Error> {
        self.core.begin(&self.http, request).await
    }

    /// Pushes `pending` to the provider's PAR endpoint (RFC 9126): the returned authorization's
    /// URL holds only `client_id` and `request_uri`.
    pub async fn push(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<PendingAuthorization, Error> {
        self.core.push(&self.http, pending).await
    }

    /// Checks the redirect back against `pending`, redeems the code, and validates the
    /// id_token (required when `openid` was asked for): signature with the provider's keys,
    /// issuer, audience, expiry, nonce, `max_age`, `at_hash`.
    pub async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        redirect: &str,
    ) -> Result<Login, Error> {
        self.core.exchange_code(&self.http, pending, redirect).await
    }

    /// Refreshes; a new id_token is validated and must name the `previous` subject.
    pub async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        previous: Option<&IdTokenClaims>,
    ) -> Result<Login, Error> {
        self.core.refresh(&self.http, refresh_token, previous).await
    }

    /// Verifies an id_token obtained some other way.
    pub async fn verify_id_token(
        &self,
        id_token: &IdToken,
        expect: IdTokenExpectations<'_>,
    ) -> Result<IdTokenClaims, Error> {
        self.core
            .verify_id_token(&self.http, id_token, expect)
            .await
    }

    /// The UserInfo endpoint's claims about the user `token` belongs to (JSON, or a signed JWT
    /// verified with the provider's keys); `expected_subject` (the id_token's `sub`) must
    /// match.
    pub async fn userinfo(
        &self,
        token: &AccessToken,
        expected_subject: Option<&str>,
    ) -> Result<UserInfo, Error> {
        self.core
            .userinfo(&self.http, token, expected_subject)
            .await
    }
}
