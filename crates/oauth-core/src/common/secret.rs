//! Newtypes for every value that must not leak.
//!
//! Each type here prints `Name(<redacted>)` in `Debug`, has no `Display`, exposes its content
//! only through one greppable accessor, [`expose_secret`](ClientSecret::expose_secret), and wipes
//! its buffer when dropped. Types that are ever compared (such as [`State`]) compare in constant
//! time.

use std::fmt;
use std::sync::Arc;

use crate::response::TokenType;
use zeroize::Zeroize;

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value. Every read of a secret goes through this one method, so a
            /// reviewer can find them all with a search.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }

            /// Compares with `other` in time that depends only on the lengths.
            pub fn ct_eq(&self, other: &str) -> bool {
                constant_time_eq(self.0.as_bytes(), other.as_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

secret_string!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
/// An access token (RFC 6749 §1.4), with the `token_type` it was issued as (RFC 6749 §7.1).
///
/// Handed to every caller of a token cache, so cloning it is cheap: clones share one buffer,
/// which is wiped when the last clone is dropped.
#[derive(Clone)]
pub struct AccessToken(Arc<Wiped>);

/// A string wiped on drop, shared by [`AccessToken`]'s clones, and the token's type.
struct Wiped(String, TokenType);

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl AccessToken {
    /// Wraps a secret value, a `Bearer` token.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(Wiped(value.into(), TokenType::Bearer)))
    }

    /// Wraps a secret value issued with this `token_type`. Only a
    /// [`TokenType::Bearer`] token is sent as `Authorization: Bearer`
    /// ([`authorize_request`](crate::authorize_request) refuses the others).
    pub fn with_type(value: impl Into<String>, token_type: TokenType) -> Self {
        Self(Arc::new(Wiped(value.into(), token_type)))
    }

    /// The secret value. Every read of a secret goes through this one method, so a reviewer
    /// can find them all with a search.
    pub fn expose_secret(&self) -> &str {
        &self.0.0
    }

    /// The `token_type` the token was issued as.
    pub fn token_type(&self) -> &TokenType {
        &self.0.1
    }

    /// Compares with `other` in time that depends only on the lengths.
    pub fn ct_eq(&self, other: &str) -> bool {
        constant_time_eq(self.0.0.as_bytes(), other.as_bytes())
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken({:?}, <redacted>)", self.0.1)
    }
}

impl From<String> for AccessToken {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for AccessToken {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}
secret_string!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_string!(
    /// An authorization code (RFC 6749 §4.1.2).
    AuthorizationCode
);
secret_string!(
    /// A PKCE `code_verifier` (RFC 7636 §4.1).
    PkceVerifier
);
secret_string!(
    /// The `state` value that binds an authorization response to the request (RFC 6749 §10.12).
    State
);
secret_string!(
    /// An OpenID Connect `nonce` (OpenID Connect Core §3.1.2.1).
    Nonce
);
secret_string!(
    /// A resource owner's password (RFC 6749 §4.3).
    Password
);
secret_string!(
    /// A signed assertion: a JWT-bearer grant assertion (RFC 7523 §2.1) or a client assertion
    /// (RFC 7523 §2.2).
    Assertion
);
secret_string!(
    /// An OpenID Connect ID token (OpenID Connect Core §2). Not a credential for APIs, but it
    /// carries personal data, so it is kept out of logs like one.
    IdToken
);
secret_string!(
    /// A token sent in an RFC 8693 token exchange (`subject_token` or `actor_token`).
    SecurityToken
);

/// Compares two byte strings in time that depends only on their lengths.
///
/// Used wherever a secret is compared with attacker-supplied input, such as the `state` returned
/// on the redirect URI.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // `black_box` keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret(<redacted>)");
        assert_eq!(s.expose_secret(), "hunter2");
    }

    #[test]
    fn access_token_clones_share_and_stay_redacted() {
        let a = AccessToken::new("tok");
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        drop(a);
        assert_eq!(b.expose_secret(), "tok");
        assert!(b.ct_eq("tok"));
        assert_eq!(format!("{b:?}"), "AccessToken(Bearer, <redacted>)");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
        assert!(State::new("xyz").ct_eq("xyz"));
        assert!(!State::new("xyz").ct_eq("xyZ"));
    }
}
