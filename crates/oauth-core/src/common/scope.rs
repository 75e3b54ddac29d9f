//! Scopes (RFC 6749 §3.3).

use std::fmt;

/// A list of scope tokens, kept in the order given and sent space-separated.
///
/// ```
/// use oauth_core::Scope;
///
/// let scope = Scope::parse("profile offline_access");
/// assert!(scope.contains("offline_access"));
/// assert_eq!(scope.as_str(), "profile offline_access");
/// assert_eq!(Scope::new(["openid", "profile"]).as_str(), "openid profile");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    /// A scope from individual tokens. Tokens are trimmed and empty ones dropped; a token
    /// holding whitespace (space, tab, CR, LF) is split there, as [`parse`](Self::parse) would
    /// read it back, so that a scope means the same after a round trip through its text.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = String::new();
        for token in tokens {
            let token: String = token.into();
            for part in token
                .split([' ', '\t', '\n', '\r'])
                .filter(|t| !t.is_empty())
            {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(part);
            }
        }
        Self(out)
    }

    /// Parses a space-separated scope string (as a server sends it).
    pub fn parse(text: &str) -> Self {
        Self::new(text.split([' ', '\t', '\n', '\r']))
    }

    /// The scope as sent: tokens separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The individual scope tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|t| !t.is_empty())
    }

    /// Whether `token` is one of the scopes.
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t == token)
    }

    /// Whether there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn tokens_mean_the_same_after_a_round_trip_through_text() {
        let scope = Scope::new(["a\tb", " c ", "", "d\r\ne"]);
        assert_eq!(scope.as_str(), "a b c d e");
        assert_eq!(Scope::parse(scope.as_str()), scope);
        assert!(!scope.contains("a\tb"));
    }
}
