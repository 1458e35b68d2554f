//! What can go wrong in the gatekeeper.

/// Errors of the workspace gatekeeper: its settings, the issuer, sealing.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A SESSION_KEYS entry is too short.
    #[error(
        "SESSION_KEYS entry {index} is {len} bytes long; each key needs at least {min} bytes",
        min = super::MIN_SESSION_KEY_BYTES
    )]
    ShortSessionKey {
        /// Its position in the list (0 is the signing key).
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// PUBLIC_URL is not an https (or, for a loopback demo, http) URL without a path.
    #[error(
        "PUBLIC_URL {0:?} must be the API's public origin, e.g. https://codeserver.example.com"
    )]
    PublicUrl(String),
    /// A value could not be signed.
    #[error("failed to sign a session value")]
    Seal(#[source] jsonwebtoken::errors::Error),
    /// The HTTP client for the issuer could not be built.
    #[error("failed to build the HTTP client for the OIDC issuer")]
    HttpClient(#[source] reqwest::Error),
    /// A request to the issuer failed.
    #[error("request to the OIDC issuer failed")]
    Issuer(#[source] reqwest::Error),
    /// An answer of the issuer was larger than the service reads.
    #[error("the OIDC issuer's answer is larger than 1 MiB")]
    AnswerTooLarge,
    /// The discovery document could not be read or is not this issuer's.
    #[error("OIDC discovery: {0}")]
    Discovery(String),
    /// The issuer's endpoints are not known yet.
    #[error("the OIDC issuer has not been discovered yet")]
    NotDiscovered,
    /// The code could not be exchanged for an ID token.
    #[error("the code exchange failed: {0}")]
    Exchange(String),
}
