//! Why a caller could not be authenticated; callers only ever see [`UNAUTHORIZED`].

use super::MIN_JWT_SECRET_BYTES;

/// The only message an unauthenticated caller gets.
pub const UNAUTHORIZED: &str = "unauthorized";

/// The most characters of caller-supplied token text (a `kid`, a parser's message quoting
/// a header or claim) that reach one log line.
pub const MAX_LOGGED_CHARS: usize = 200;

/// `text` cut to [`MAX_LOGGED_CHARS`] characters (marked `...` when cut), for logging what
/// a caller controls without letting it fill the log.
pub fn truncate_for_log(text: &str) -> String {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Why a caller could not be authenticated, or the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("no bearer token and no trusted forwarded identity")]
    MissingCredentials,
    /// The Authorization header is not `Bearer <token>`.
    #[error("the Authorization header is not a single `Bearer <token>`")]
    MalformedHeader,
    /// The token is not a well-formed JWT.
    #[error("the token is not a well-formed JWT")]
    MalformedToken(#[source] Option<jsonwebtoken::errors::Error>),
    /// The token's `alg` is not accepted for it.
    #[error("tokens signed with {alg} are not accepted here")]
    DisallowedAlgorithm {
        /// The algorithm the token claims.
        alg: String,
    },
    /// The token names no key (`kid`).
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    /// The JWKS has no key with this id, even after a refresh.
    #[error("no signing key {kid:?} in the JWKS")]
    UnknownKey {
        /// The key id the token names.
        kid: String,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// An ID token's `nonce` is not the one its login sent (a replayed or injected token).
    #[error("the ID token's nonce is not the one this login sent")]
    WrongNonce,
    /// A claim the service requires is missing.
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    /// Any other verification failure.
    #[error("the token was rejected")]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// The token names no user.
    #[error("the token names no user (preferred_username or sub)")]
    MissingUser,
    /// The forwarded user header is empty, too long or not printable text.
    #[error("the forwarded user header is not a usable user name")]
    BadForwardedUser,
    /// A trusted forwarded user and a verified token disagree about who is calling.
    #[error("the forwarded user does not match the token's user")]
    ForwardedMismatch,
    /// The JWKS could not be fetched.
    #[error("failed to fetch the JWKS from {url}")]
    JwksFetch {
        /// The JWKS URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The JWKS endpoint answered with an error status.
    #[error("the JWKS endpoint {url} answered HTTP {status}")]
    JwksStatus {
        /// The JWKS URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The JWKS document is unusable.
    #[error("the JWKS from {url} is unusable: {reason}")]
    JwksInvalid {
        /// The JWKS URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Unverified decoding was requested in production.
    #[error("insecure token decoding is refused when ENVIRONMENT is production")]
    InsecureDecodeInProduction,
    /// JWT_SECRET is shorter than `MIN_JWT_SECRET_BYTES`.
    #[error(
        "JWT_SECRET is {len} bytes long; at least {} bytes are required",
        MIN_JWT_SECRET_BYTES
    )]
    ShortSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("failed to build the JWKS HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

impl AuthError {
    /// The message shown to the caller, whatever went wrong.
    pub fn caller_message(&self) -> &'static str {
        UNAUTHORIZED
    }

    /// Whether the failure is on the service's side (JWKS unreachable or unusable) rather
    /// than the caller's; such failures deserve a louder log line.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::JwksFetch { .. } | Self::JwksStatus { .. } | Self::JwksInvalid { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_caller_text_for_logs() {
        let kid = "k".repeat(12_000);
        let shown = truncate_for_log(&kid);
        assert_eq!(shown.len(), MAX_LOGGED_CHARS + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(truncate_for_log("short"), "short");
        // Multi-byte characters are cut on a character boundary.
        assert_eq!(
            truncate_for_log(&"é".repeat(300)).chars().count(),
            MAX_LOGGED_CHARS + 3
        );
    }

    #[test]
    fn every_error_tells_the_caller_only_unauthorized() {
        assert_eq!(AuthError::Expired.caller_message(), "unauthorized");
        assert_eq!(
            AuthError::UnknownKey { kid: "k".into() }.caller_message(),
            "unauthorized"
        );
        assert!(!AuthError::Expired.is_server_fault());
    }
}
