//! Anypoint Platform quirks: creating a connected app, and the Exchange Maven facade's Basic
//! shortcut.
//!
//! The Exchange Maven Facade API and Graph API accept a connected app's credentials directly as
//! HTTP Basic, with the user name `~~~Client~~~` and the password `clientID~?~clientSecret`.
//! The text is sent verbatim (base64 of `user:password`, without the RFC 6749 §2.3.1 form
//! encoding, which would turn `~` and `?` into `%7E` and `%3F`).

use std::fmt::Write as _;

use http::HeaderValue;

use crate::client::{ClientId, basic_header};
use crate::error::Error;
use crate::secret::ClientSecret;

/// The user name of the Maven facade shortcut.
pub const MAVEN_FACADE_USERNAME: &str = "~~~Client~~~";

/// A connected app's credentials in the form the Exchange Maven facade accepts.
///
/// ```
/// use oauth_core::{ClientSecret, client::anypoint::MavenFacadeCredentials};
///
/// let creds = MavenFacadeCredentials::new("clientID".into(), ClientSecret::new("clientSecret"));
/// assert_eq!(creds.password().expose_secret(), "clientID~?~clientSecret");
/// // base64("~~~Client~~~:clientID~?~clientSecret")
/// assert_eq!(
///     creds.authorization_header()?,
///     "Basic fn5+Q2xpZW50fn5+OmNsaWVudElEfj9+Y2xpZW50U2VjcmV0"
/// );
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MavenFacadeCredentials {
    password: ClientSecret,
}

impl MavenFacadeCredentials {
    /// Combines a connected app's client id and secret.
    pub fn new(client_id: ClientId, client_secret: ClientSecret) -> Self {
        let mut password = String::with_capacity(
            client_id.as_str().len() + 3 + client_secret.expose_secret().len(),
        );
        password.push_str(client_id.as_str());
        password.push_str("~?~");
        password.push_str(client_secret.expose_secret());
        Self {
            password: ClientSecret::new(password),
        }
    }

    /// The user name, `~~~Client~~~`.
    pub fn username(&self) -> &'static str {
        MAVEN_FACADE_USERNAME
    }

    /// The password, `clientID~?~clientSecret`.
    pub fn password(&self) -> &ClientSecret {
        &self.password
    }

    /// The `Authorization: Basic` header value, marked sensitive.
    pub fn authorization_header(&self) -> Result<HeaderValue, Error> {
        basic_header(MAVEN_FACADE_USERNAME, self.password.expose_secret())
    }

    /// The `<server>` element for a Maven `settings.xml`, with `server_id` as its `<id>` (the
    /// id of the repository in the POM). Values are XML-escaped. The text contains the secret.
    ///
    /// ```
    /// use oauth_core::{ClientSecret, client::anypoint::MavenFacadeCredentials};
    ///
    /// let creds = MavenFacadeCredentials::new("clientID".into(), ClientSecret::new("clientSecret"));
    /// assert_eq!(creds.settings_xml_server("Repository").expose_secret(), "\
    /// <server>
    ///   <id>Repository</id>
    ///   <username>~~~Client~~~</username>
    ///   <password>clientID~?~clientSecret</password>
    /// </server>
    /// ");
    /// ```
    pub fn settings_xml_server(&self, server_id: &str) -> ClientSecret {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "<server>\n  <id>{}</id>\n  <username>{}</username>\n  <password>{}</password>\n</server>\n",
            xml_escape(server_id),
            xml_escape(MAVEN_FACADE_USERNAME),
            xml_escape(self.password.expose_secret()),
        );
        ClientSecret::new(out)
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64;

    #[test]
    fn seed_page_credentials() {
        let creds =
            MavenFacadeCredentials::new("clientID".into(), ClientSecret::new("clientSecret"));
        assert_eq!(creds.username(), "~~~Client~~~");
        let header = creds.authorization_header().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(
            header.to_str().unwrap(),
            format!("Basic {}", b64(b"~~~Client~~~:clientID~?~clientSecret"))
        );
        let xml = creds.settings_xml_server("Repository");
        assert!(
            xml.expose_secret()
                .contains("<username>~~~Client~~~</username>")
        );
        assert!(
            xml.expose_secret()
                .contains("<password>clientID~?~clientSecret</password>")
        );
    }

    #[test]
    fn xml_escaping() {
        let creds = MavenFacadeCredentials::new("a&b".into(), ClientSecret::new("<s>\"'"));
        let xml = creds.settings_xml_server("r<1>");
        assert!(xml.expose_secret().contains("<id>r&lt;1&gt;</id>"));
        assert!(
            xml.expose_secret()
                .contains("<password>a&amp;b~?~&lt;s&gt;&quot;&apos;</password>")
        );
    }
}

/// Where connected apps are created (Anypoint's connected-apps documentation, step 1).
pub const CONNECTED_APPS_URL: &str =
    "https://anypoint.mulesoft.com/accounts/api/connectedApplications";

/// A connected app to create: Anypoint's connected-apps documentation's
/// `POST /accounts/api/connectedApplications`, a client registration in Anypoint's own shape
/// (`scopes` as an array, `public_keys`, `audience`) sent with the user's token as Bearer.
///
/// ```
/// use oauth_core::{AccessToken, Endpoint, client::anypoint::{CONNECTED_APPS_URL, ConnectedApp}};
///
/// let request = ConnectedApp::authorization_code("GitProxy", ["https://example.com/"], ["profile", "offline_access"])
///     .registration(AccessToken::new("user-token"))
///     .build(&Endpoint::new(CONNECTED_APPS_URL)?)?;
/// assert_eq!(request.headers()["authorization"], "Bearer user-token");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConnectedApp {
    metadata: crate::registration::ClientMetadata,
}

impl ConnectedApp {
    fn new<R, S, T, U>(name: &str, grant_types: &[&str], redirect_uris: R, scopes: S) -> Self
    where
        R: IntoIterator<Item = T>,
        T: Into<String>,
        S: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let scopes: Vec<serde_json::Value> = scopes
            .into_iter()
            .map(|s| serde_json::Value::String(s.into()))
            .collect();
        Self {
            metadata: crate::registration::ClientMetadata::new()
                .client_name(name)
                .grant_types(grant_types.iter().copied())
                .redirect_uris(redirect_uris)
                .set("scopes", serde_json::Value::Array(scopes))
                .set("public_keys", serde_json::Value::Array(Vec::new()))
                .set("audience", serde_json::Value::String("internal".to_owned())),
        }
    }

    /// An app for the authorization code and refresh token grants (the documentation's first example).
    pub fn authorization_code<R, S, T, U>(name: &str, redirect_uris: R, scopes: S) -> Self
    where
        R: IntoIterator<Item = T>,
        T: Into<String>,
        S: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::new(
            name,
            &["refresh_token", "authorization_code"],
            redirect_uris,
            scopes,
        )
    }

    /// An app for the JWT bearer grant (the documentation's second example), with the public key whose
    /// private half signs its assertions.
    pub fn jwt_bearer<R, S, T, U>(
        name: &str,
        public_key: impl Into<String>,
        redirect_uris: R,
        scopes: S,
    ) -> Self
    where
        R: IntoIterator<Item = T>,
        T: Into<String>,
        S: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let app = Self::new(
            name,
            &[crate::request::JWT_BEARER_GRANT_TYPE],
            redirect_uris,
            scopes,
        );
        Self {
            metadata: app.metadata.set(
                "public_keys",
                serde_json::Value::Array(vec![serde_json::Value::String(public_key.into())]),
            ),
        }
    }

    /// The `audience` (`internal` by default, as Anypoint documents it).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        Self {
            metadata: self
                .metadata
                .set("audience", serde_json::Value::String(audience.into())),
        }
    }

    /// The metadata sent.
    pub fn metadata(&self) -> &crate::registration::ClientMetadata {
        &self.metadata
    }

    /// The registration request, authorized by the user's access token.
    pub fn registration(self, user_token: crate::AccessToken) -> crate::RegistrationRequest {
        crate::RegistrationRequest::new(self.metadata).initial_access_token(user_token)
    }
}
