//! How the workspace gatekeeper is set up: the public URL of the API, the OIDC client,
//! the session keys and lifetimes, and whether admins may open other users' workspaces.

use std::{fmt, time::Duration};

use url::Url;

use crate::secret::Secret;

/// The shortest session key accepted (SESSION_KEYS): an HMAC-SHA256 key shorter than
/// the hash is weaker than the hash.
pub const MIN_SESSION_KEY_BYTES: usize = 32;

/// The workspace gatekeeper's settings; built from the configuration.
#[derive(Clone)]
pub struct GateSettings {
    /// The API's public URL (PUBLIC_URL); the login's one redirect URI is this URL with
    /// `/auth/callback`. `None`: browser login is off (bearer tokens still open workspaces).
    pub public_url: Option<Url>,
    /// The OIDC issuer (JWT_ISSUER), discovered at `<issuer>/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    /// The OIDC client id (OIDC_CLIENT_ID); also the `aud` of the ID tokens.
    pub client_id: String,
    /// The OIDC client secret (OIDC_CLIENT_SECRET); `None` for a public client.
    pub client_secret: Option<Secret>,
    /// The keys that sign cookies and tickets (SESSION_KEYS): the first signs, all verify.
    pub session_keys: Vec<Secret>,
    /// How long a login on the API host lasts (SESSION_TTL).
    pub session_ttl: Duration,
    /// How long a workspace host's cookie lasts (WORKSPACE_SESSION_TTL), at most as long
    /// as the login it came from; renewed by a redirect through the API host.
    pub workspace_ttl: Duration,
    /// Whether admins (ADMIN_ROLE) may open every workspace (ADMIN_WORKSPACE_ACCESS).
    pub admin_access: bool,
    /// The domain of the workspace hosts, `code-<name>.<BASE_DOMAIN>`.
    pub base_domain: String,
    /// Timeout of one request to the issuer (discovery, code exchange).
    pub http_timeout: Duration,
    /// The first and the longest wait between two failed discoveries.
    pub discovery_backoff: (Duration, Duration),
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            issuer: None,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: None,
            session_keys: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            workspace_ttl: Duration::from_secs(3600),
            admin_access: false,
            base_domain: "devplatform.local".to_owned(),
            http_timeout: Duration::from_secs(5),
            discovery_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

/// The OIDC client id used when OIDC_CLIENT_ID is not set.
pub const DEFAULT_CLIENT_ID: &str = "codeserver-service";

impl fmt::Debug for GateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateSettings")
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("session_keys", &self.session_keys.len())
            .field("session_ttl", &self.session_ttl)
            .field("workspace_ttl", &self.workspace_ttl)
            .field("admin_access", &self.admin_access)
            .field("base_domain", &self.base_domain)
            .finish_non_exhaustive()
    }
}
