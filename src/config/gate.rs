//! The workspace gatekeeper's flags (the check listener, the browser login), turned into
//! [`GateSettings`].

use std::time::Duration;

use clap::{Args, builder::BoolishValueParser};
use url::Url;

use super::{Secret, parse::secret};
use crate::gate::{DEFAULT_CLIENT_ID, GateSettings, MIN_SESSION_KEY_BYTES};

/// The gatekeeper's settings (`serve`).
#[derive(Args, Debug, Clone)]
pub struct GateArgs {
    /// Port of the ext_authz check listener, reached only by the ingress gateway.
    #[arg(long = "ext-authz-port", env = "EXT_AUTHZ_PORT", value_name = "EXT_AUTHZ_PORT",
          default_value_t = 8083, value_parser = clap::value_parser!(u16).range(1..))]
    pub ext_authz_port: u16,
    /// The API's public URL (e.g. https://codeserver.example.com); the browser login's one
    /// redirect URI is this URL with /auth/callback. Browser login is off when unset.
    #[arg(long = "public-url", env = "PUBLIC_URL", value_name = "PUBLIC_URL",
          value_parser = public_url)]
    pub public_url: Option<Url>,
    /// The OIDC client id of the browser login (also the `aud` of its ID tokens).
    #[arg(long = "oidc-client-id", env = "OIDC_CLIENT_ID", value_name = "OIDC_CLIENT_ID",
          default_value = DEFAULT_CLIENT_ID)]
    pub oidc_client_id: String,
    /// The OIDC client secret of the browser login (a confidential client).
    #[arg(long = "oidc-client-secret", env = "OIDC_CLIENT_SECRET",
          value_name = "OIDC_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub oidc_client_secret: Option<Secret>,
    /// Keys that sign session cookies and tickets, comma-separated, each at least 32
    /// bytes: the first signs, all verify (add a new key first to rotate).
    #[arg(long = "session-keys", env = "SESSION_KEYS", value_name = "SESSION_KEYS",
          hide_env_values = true, value_parser = session_keys)]
    pub session_keys: Option<SessionKeys>,
    /// Seconds a browser login on the API host lasts.
    #[arg(long = "session-ttl", env = "SESSION_TTL", value_name = "SESSION_TTL",
          default_value_t = 43_200, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub session_ttl: u64,
    /// Seconds a workspace host's session cookie lasts (at most the login's); renewed by
    /// a redirect through the API host while the login lasts.
    #[arg(long = "workspace-session-ttl", env = "WORKSPACE_SESSION_TTL",
          value_name = "WORKSPACE_SESSION_TTL", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub workspace_session_ttl: u64,
    /// Let admins (ADMIN_ROLE) open every workspace; each such access is logged.
    #[arg(long = "admin-workspace-access", env = "ADMIN_WORKSPACE_ACCESS",
          value_name = "ADMIN_WORKSPACE_ACCESS", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub admin_workspace_access: bool,
}

/// SESSION_KEYS, parsed.
#[derive(Clone)]
pub struct SessionKeys(pub Vec<Secret>);

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} redacted keys>", self.0.len())
    }
}

fn session_keys(s: &str) -> Result<SessionKeys, String> {
    let keys: Vec<&str> = s.split(',').map(str::trim).collect();
    if keys.iter().all(|k| k.is_empty()) {
        return Ok(SessionKeys(Vec::new()));
    }
    for (index, key) in keys.iter().enumerate() {
        if key.len() < MIN_SESSION_KEY_BYTES {
            return Err(format!(
                "key {index} is {} bytes long; each key needs at least {MIN_SESSION_KEY_BYTES} bytes",
                key.len()
            ));
        }
    }
    Ok(SessionKeys(keys.into_iter().map(Secret::new).collect()))
}

fn public_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !crate::gate::is_public_origin(&url) {
        return Err("expected the API's public origin, e.g. https://codeserver.example.com (no path, query or user)".to_owned());
    }
    Ok(url)
}

impl GateArgs {
    /// The gatekeeper's settings; `issuer` is JWT_ISSUER, `base_domain` BASE_DOMAIN.
    pub fn settings(&self, issuer: Option<String>, base_domain: &str) -> GateSettings {
        GateSettings {
            public_url: self.public_url.clone(),
            issuer,
            client_id: self.oidc_client_id.clone(),
            client_secret: self
                .oidc_client_secret
                .clone()
                .filter(|s| !s.expose().is_empty()),
            session_keys: self
                .session_keys
                .as_ref()
                .map(|k| k.0.clone())
                .unwrap_or_default(),
            session_ttl: Duration::from_secs(self.session_ttl),
            workspace_ttl: Duration::from_secs(self.workspace_session_ttl),
            admin_access: self.admin_workspace_access,
            base_domain: base_domain.to_owned(),
            ..GateSettings::default()
        }
    }
}
