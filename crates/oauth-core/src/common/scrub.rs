//! What a request sends that must never come back in an error.
//!
//! Some servers echo the request into an error: `invalid_client: bad client_id=…&client_secret=…`,
//! an HTML page quoting the `Authorization` header, a JSON body repeating the registration's
//! access token. An error keeps a piece of the answer (the `error_description`, an excerpt of
//! an unreadable body) for diagnosis, and errors end up in logs. So scrubbing is a property of
//! *sending a request that carries credentials*, not of one endpoint: [`SentSecrets::of`]
//! reads every secret a request built by this crate carries — the secret body parameters its
//! builder marked, the credential of its `Authorization` header (and, for Basic, the decoded
//! password), its DPoP proof — and [`SentSecrets::parse`] turns the answer into a value or an
//! error that holds none of them, in any form a server may echo them (raw, form- or
//! percent-encoded, JSON-escaped, base64 as in the Basic header). oauth-runtime's drivers
//! parse every answer through it, so an endpoint added later is scrubbed without anyone
//! remembering to.

use std::fmt;

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderMap, PROXY_AUTHORIZATION};
use http::{Request, Response};
use zeroize::Zeroizing;

use crate::error::{Error, redact_text, scrubbed_response};
use crate::request::RequestBody;

/// The secrets one request sends, to be scrubbed from whatever its answer becomes.
///
/// ```
/// use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, TokenRequest};
/// use oauth_core::scrub::SentSecrets;
/// use oauth_core::http::Response;
///
/// let endpoint = Endpoint::new("https://auth.example/token")?;
/// let client = Client::new("app", ClientAuthentication::SecretBasic(ClientSecret::new("s3cr3t-value")));
/// let request = TokenRequest::client_credentials().build(&endpoint, &client)?;
/// let sent = SentSecrets::of(&request);
///
/// // A server that echoes the request back into its error.
/// let answer = Response::builder()
///     .status(401)
///     .header("content-type", "application/json")
///     .body(br#"{"error":"invalid_client","error_description":"bad secret s3cr3t-value"}"#.to_vec())?;
/// let error = sent
///     .parse(&answer, |r| oauth_core::parse_token_response(r, std::time::SystemTime::UNIX_EPOCH))
///     .unwrap_err();
/// assert!(!error.to_string().contains("s3cr3t-value"));
/// assert!(!format!("{error:?}").contains("s3cr3t-value"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct SentSecrets(Vec<Zeroizing<String>>);

impl SentSecrets {
    /// Every secret `request` carries: the body's secret parameters (as its builder in this
    /// crate marked them), the credential of each `Authorization` and `Proxy-Authorization`
    /// header (for Basic also the decoded `user:password` and the password alone, raw and
    /// form-decoded), and the `DPoP` proof.
    pub fn of(request: &Request<RequestBody>) -> Self {
        let mut secrets = Self(request.body().secrets().to_vec());
        secrets.add_headers(request.headers());
        secrets
    }

    /// The credentials in `headers` (`Authorization`, `Proxy-Authorization`, `DPoP`), for a
    /// request whose body carries no secret.
    pub fn of_headers(headers: &HeaderMap) -> Self {
        let mut secrets = Self::default();
        secrets.add_headers(headers);
        secrets
    }

    /// Adds a value this request sends some other way (a caller's own parameter).
    pub fn push(&mut self, secret: &str) {
        if !secret.is_empty() {
            self.0.push(Zeroizing::new(secret.to_owned()));
        }
    }

    /// How many values are remembered (their forms are derived when scrubbing).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the request sent no secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn add_headers(&mut self, headers: &HeaderMap) {
        for value in headers
            .get_all(AUTHORIZATION)
            .iter()
            .chain(headers.get_all(PROXY_AUTHORIZATION).iter())
        {
            let Ok(text) = value.to_str() else { continue };
            let text = text.trim();
            let (scheme, credential) = text.split_once(' ').unwrap_or(("", text));
            let credential = credential.trim();
            self.push(credential);
            if !scheme.eq_ignore_ascii_case("basic") {
                continue;
            }
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credential) else {
                continue;
            };
            let decoded = Zeroizing::new(decoded);
            let Ok(joined) = std::str::from_utf8(&decoded) else {
                continue;
            };
            self.push(joined);
            if let Some((_, password)) = joined.split_once(':') {
                self.push(password);
                // RFC 6749 §2.3.1 form-encodes the secret before joining.
                let plain = Zeroizing::new(crate::encoding::form_decode(password));
                if *plain != password {
                    self.push(&plain);
                }
            }
        }
        for value in &headers.get_all(crate::dpop::DPOP) {
            if let Ok(proof) = value.to_str() {
                self.push(proof.trim());
            }
        }
    }

    fn as_strs(&self) -> Vec<&str> {
        self.0.iter().map(|s| s.as_str()).collect()
    }

    /// Removes every form of every secret from what `error` keeps of a server's answer.
    pub fn redact(&self, error: &mut Error) {
        if !self.is_empty() {
            error.redact(&self.as_strs());
        }
    }

    /// `text` with every form of every secret replaced by `<redacted>`.
    pub fn redact_text(&self, text: &mut String) {
        redact_text(text, &self.as_strs());
    }

    /// A copy of `response` whose body holds none of the secrets.
    pub fn scrubbed_response<B: AsRef<[u8]>>(&self, response: &Response<B>) -> Response<Vec<u8>> {
        scrubbed_response(response, &self.as_strs())
    }

    /// Parses the answer to the request with `parse`. A value comes back as parsed (a token
    /// response may rightly hold a refresh token that was sent); on failure the answer is
    /// parsed again with every secret taken out of its body first, and the error redacted
    /// too, so that nothing it keeps (cut to a few hundred characters) holds a secret or a
    /// piece of one.
    pub fn parse<T>(
        &self,
        response: &Response<Vec<u8>>,
        parse: impl Fn(&Response<Vec<u8>>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let first = parse(response);
        if first.is_ok() || self.is_empty() {
            return first;
        }
        let secrets = self.as_strs();
        let scrubbed = scrubbed_response(response, &secrets);
        parse(&scrubbed).map_err(|mut e| {
            e.redact(&secrets);
            e
        })
    }
}

impl fmt::Debug for SentSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SentSecrets(<{} redacted>)", self.0.len())
    }
}
