//! Secret settings (GITEA_TOKEN, JWT_SECRET, a caller's token): a leaf, so that the
//! configuration and the clients that use a secret share the type without depending on
//! each other.

/// A secret setting (GITEA_TOKEN, JWT_SECRET): `Debug` shows `<redacted>`, so printing
/// the configuration can never leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
