//! Provider presets: each provider's quirks, as its documentation shows them, written once so
//! that a user writes none.
//! Each function returns a [`Preset`] — the token endpoint, the client (authentication and
//! body encoding as the provider documents them) and the token request — ready for an adapter's
//! `request_token` or `TokenSource::builder(http, preset.endpoint, preset.client)
//! .grant(preset.request)`.
//!
//! ```
//! use oauth_core::{ClientSecret, client::providers};
//!
//! // Anypoint connected apps (client credentials): JSON bodies, its token URL.
//! let p = providers::anypoint::client_credentials("my-app", ClientSecret::new("s3cret"))?;
//! let request = p.request.build(&p.endpoint, &p.client)?;
//! assert_eq!(request.uri(), "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token");
//! assert_eq!(request.headers()["content-type"], "application/json");
//!
//! // Auth0 (and Dataloy) client credentials: a JSON body with the API's audience.
//! let p = providers::auth0::client_credentials("tenant.eu.auth0.com", "my-app", ClientSecret::new("s3cret"), "https://api.example")?;
//! let body = String::from_utf8_lossy(p.request.build(&p.endpoint, &p.client)?.body().expose_secret()).into_owned();
//! assert!(body.contains(r#""audience":"https://api.example""#));
//! # Ok::<(), oauth_core::Error>(())
//! ```

use crate::client::{BodyEncoding, Client, ClientAuthentication};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::request::TokenRequest;
use crate::secret::ClientSecret;

/// What a provider's documentation configures: where, as whom, and what to ask.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Preset {
    /// The token endpoint.
    pub endpoint: Endpoint,
    /// The client, authenticated as the provider documents it.
    pub client: Client,
    /// The token request (the grant and the provider's parameters).
    pub request: TokenRequest,
}

/// Anypoint Platform connected apps: JSON bodies for every grant.
#[cfg(feature = "anypoint")]
pub mod anypoint {
    use super::*;

    /// The connected apps' token endpoint.
    pub const TOKEN_URL: &str = "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token";
    /// The authorization endpoint (for the authorization code example).
    pub const AUTHORIZE_URL: &str =
        "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize";

    /// The connected app as a client: `client_id` and `client_secret` in a JSON body, for
    /// every grant.
    pub fn client(client_id: &str, secret: ClientSecret) -> Client {
        Client::new(client_id, ClientAuthentication::SecretPost(secret))
            .with_body_encoding(BodyEncoding::Json)
    }

    /// client_credentials with `client_id` and `client_secret` in a JSON body.
    pub fn client_credentials(client_id: &str, secret: ClientSecret) -> Result<Preset, Error> {
        Ok(Preset {
            endpoint: Endpoint::new(TOKEN_URL)?,
            client: client(client_id, secret),
            request: TokenRequest::client_credentials(),
        })
    }

    /// The JWT bearer grant's token request shape: a JSON body holding only `grant_type` and
    /// `assertion` (no client authentication), as Anypoint's connected-apps documentation shows (step 3). Sign the assertion with
    /// jwt-assertion's `JwtBearerSigner` (issuer: the client id; audience: [`TOKEN_URL`];
    /// subject: [`Subject::to_claim`]) and use its grant as the request.
    pub fn jwt_bearer_client() -> Client {
        Client::anonymous().with_body_encoding(BodyEncoding::Json)
    }

    /// The `sub` of an Anypoint JWT bearer assertion:
    /// `version|idp_id|username|firstname|lastname|email|externalgroups`.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Subject {
        /// The identity provider's id.
        pub idp_id: String,
        /// The user name.
        pub username: String,
        /// The first name.
        pub first_name: String,
        /// The last name.
        pub last_name: String,
        /// The e-mail address.
        pub email: String,
        /// The external groups.
        pub groups: Vec<String>,
    }

    impl Subject {
        /// A subject for `username` at the identity provider `idp_id`.
        pub fn new(idp_id: impl Into<String>, username: impl Into<String>) -> Self {
            Self {
                idp_id: idp_id.into(),
                username: username.into(),
                ..Self::default()
            }
        }

        /// The names and e-mail.
        pub fn person(
            mut self,
            first_name: impl Into<String>,
            last_name: impl Into<String>,
            email: impl Into<String>,
        ) -> Self {
            self.first_name = first_name.into();
            self.last_name = last_name.into();
            self.email = email.into();
            self
        }

        /// The external groups.
        pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
            self.groups = groups.into_iter().map(Into::into).collect();
            self
        }

        /// The claim, as Anypoint documents it (`v2|…|[community]`). A `|` inside a field would shift the
        /// others, so it is refused.
        pub fn to_claim(&self) -> Result<String, Error> {
            let fields = [
                &self.idp_id,
                &self.username,
                &self.first_name,
                &self.last_name,
                &self.email,
            ];
            if fields.iter().any(|f| f.contains('|'))
                || self.groups.iter().any(|g| g.contains(['|', ',', '[', ']']))
            {
                return Err(Error::InvalidParameter {
                    name: "sub",
                    reason: "no field may contain `|` (nor a group `,`, `[` or `]`)",
                });
            }
            Ok(format!(
                "v2|{}|{}|{}|{}|{}|[{}]",
                self.idp_id,
                self.username,
                self.first_name,
                self.last_name,
                self.email,
                self.groups.join(",")
            ))
        }
    }

    /// Anypoint Exchange's client: `client_id` and `client_secret` in a form body.
    pub fn exchange_client(client_id: &str, secret: ClientSecret) -> Client {
        Client::new(client_id, ClientAuthentication::SecretPost(secret))
    }

    /// Anypoint Exchange: client_credentials as a form with the credentials in the
    /// body; the answer has no `expires_in` (use `UnknownExpiry::UntilRejected` or a fixed
    /// lifetime in the token source's `RefreshPolicy`), and the Maven facade takes the
    /// credentials as Basic (`MavenFacadeCredentials`).
    pub fn exchange_client_credentials(
        client_id: &str,
        secret: ClientSecret,
    ) -> Result<Preset, Error> {
        Ok(Preset {
            endpoint: Endpoint::new(TOKEN_URL)?,
            client: exchange_client(client_id, secret),
            request: TokenRequest::client_credentials(),
        })
    }
}

/// Auth0: client_credentials as a JSON body with the API's `audience`; its 401 "Token
/// expired." body is read by the default `RejectionClassifier`.
pub mod auth0 {
    use super::*;

    /// The application as a client: `client_id` and `client_secret` in a JSON body.
    pub fn client(client_id: &str, secret: ClientSecret) -> Client {
        Client::new(client_id, ClientAuthentication::SecretPost(secret))
            .with_body_encoding(BodyEncoding::Json)
    }

    /// client_credentials at `https://{domain}/oauth/token` for `audience`.
    pub fn client_credentials(
        domain: &str,
        client_id: &str,
        secret: ClientSecret,
        audience: &str,
    ) -> Result<Preset, Error> {
        Ok(Preset {
            endpoint: Endpoint::new(&format!("https://{domain}/oauth/token"))?,
            client: client(client_id, secret),
            request: TokenRequest::client_credentials().audience(audience),
        })
    }
}

/// Dataloy: client_credentials as a JSON body with an `audience`, at the token URL
/// Dataloy gives you.
pub mod dataloy {
    use super::*;

    /// The client: `client_id` and `client_secret` in a JSON body.
    pub fn client(client_id: &str, secret: ClientSecret) -> Client {
        Client::new(client_id, ClientAuthentication::SecretPost(secret))
            .with_body_encoding(BodyEncoding::Json)
    }

    /// client_credentials at `token_url` for `audience`.
    pub fn client_credentials(
        token_url: &str,
        client_id: &str,
        secret: ClientSecret,
        audience: &str,
    ) -> Result<Preset, Error> {
        Ok(Preset {
            endpoint: Endpoint::new(token_url)?,
            client: client(client_id, secret),
            request: TokenRequest::client_credentials().audience(audience),
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "anypoint")]
    #[test]
    fn anypoint_subject_as_on_the_page() {
        use super::anypoint::Subject;
        let s = Subject::new("0b132ac3-d8f6-44b2-953c-2333df741f05", "jsmith")
            .person("john", "smith", "jsmith@gmail.com")
            .groups(["community"]);
        assert_eq!(
            s.to_claim().ok().as_deref(),
            Some(
                "v2|0b132ac3-d8f6-44b2-953c-2333df741f05|jsmith|john|smith|jsmith@gmail.com|[community]"
            )
        );
        assert!(Subject::new("idp", "a|b").to_claim().is_err());
    }
}
