//! The workspace gatekeeper: the service decides who reaches a workspace.
//!
//! The ingress gateway asks the service about every request for a workspace host
//! `code-<name>.<BASE_DOMAIN>` (Envoy's HTTP external authorization, behind one static
//! Istio `CUSTOM` policy, failing closed; [`check`]). The service answers from its caches:
//! only the instance's recorded owner, by `sub` exactly as the API decides ownership, and
//! only while the instance exists and is not being deleted; admins only when
//! ADMIN_WORKSPACE_ACCESS is on. No Kubernetes or Gitea call is made per check.
//!
//! Browsers log in through the service's own OIDC code flow ([`login`]): one redirect URI
//! on the API host, PKCE, state and nonce. The login on the API host then hands off to
//! the workspace host with a one-time ticket on a reserved path of that host, which the
//! check exchanges for a host-only cookie of that host.
//!
//! ```text
//! browser ──► gateway ──check──► service: owner? ──► 200: on to code-server (no cookie, no token)
//!                                        no login ──► 302 https://<api>/auth/login?rd=…&h=…
//!                                        not yours ──► 403 "not yours or not found"
//! /auth/login ─► issuer ─► /auth/callback ─► 302 https://code-x…/__codeserver_auth/ticket?t=…
//!                                        check: ticket + hand-off secret ─► cookie, 302 rd
//! ```
//!
//! Replay of a ticket is prevented without shared state between replicas: a ticket is
//! bound to a secret that only the browser which started the login holds (a host-only
//! cookie of the workspace host, set by the check that sent it to the login; the login URL
//! and the ticket carry only its SHA-256), it is cleared when the ticket is used, and a
//! ticket lives at most [`TICKET_TTL`]. A ticket taken from a log, a proxy or the history
//! is useless in another browser, on another host or a minute later.

mod check;
mod error;
mod login;
mod oidc;
pub mod pages;
mod routes;
mod seal;
mod session;
mod settings;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use url::Url;

use self::oidc::Oidc;
pub use self::{
    check::{AUTH_PATH, CheckRequest},
    error::GateError,
    routes::{
        CHECK_HEADERS, DOWNSTREAM_ON_ALLOW, DOWNSTREAM_ON_DENY, EXT_AUTHZ_PREFIX,
        UPSTREAM_ON_ALLOW, check_routes, login_routes,
    },
    seal::{Seal, Sealed},
    session::{
        HANDOFF_COOKIE, LOGIN_COOKIE, LOGIN_STATE_COOKIE, Login, Principal, Ticket,
        WORKSPACE_COOKIE, WorkspaceSession,
    },
    settings::{DEFAULT_CLIENT_ID, GateSettings, MIN_SESSION_KEY_BYTES},
};
use crate::{auth::Authenticator, metrics::Metrics, naming, reconcile::Reconciler};

/// How long a hand-off ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long a login may take at the issuer.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);
/// How long a workspace host's hand-off secret waits for its ticket.
pub const HANDOFF_TTL: Duration = Duration::from_secs(600);
/// How many code exchanges one replica runs at once; more answer 503.
const MAX_CONCURRENT_EXCHANGES: usize = 32;

/// The gatekeeper: the check and the login, with what they decide from.
pub struct Gate {
    settings: GateSettings,
    seal: Option<Seal>,
    oidc: Option<Arc<Oidc>>,
    auth: Authenticator,
    reconciler: Arc<Reconciler>,
    exchanges: tokio::sync::Semaphore,
    metrics: Metrics,
}

impl Gate {
    /// The gatekeeper of `settings`, deciding with `reconciler`'s caches and verifying
    /// tokens with `auth`. When PUBLIC_URL, JWT_ISSUER and SESSION_KEYS are set the
    /// issuer is discovered in the background (retried with backoff until it answers).
    pub fn new(
        settings: GateSettings,
        auth: Authenticator,
        reconciler: Arc<Reconciler>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, GateError> {
        let seal = Seal::new(&settings.session_keys)?;
        if let Some(url) = settings
            .public_url
            .as_ref()
            .filter(|u| !is_public_origin(u))
        {
            return Err(GateError::PublicUrl(url.to_string()));
        }
        let oidc = match (&settings.public_url, &settings.issuer, &seal) {
            (Some(public), Some(issuer), Some(_)) => {
                let redirect = format!("{}/auth/callback", origin(public));
                let oidc = Arc::new(Oidc::new(
                    issuer,
                    &settings.client_id,
                    settings.client_secret.as_ref().map(|s| s.expose()),
                    &redirect,
                    settings.http_timeout,
                )?);
                tokio::spawn(oidc.clone().discover_until_done(settings.discovery_backoff));
                Some(oidc)
            }
            _ => {
                tracing::warn!(
                    "workspace login is off: set PUBLIC_URL, JWT_ISSUER and SESSION_KEYS to let browsers log in; workspaces open with a bearer token only"
                );
                None
            }
        };
        Ok(Arc::new(Self {
            settings,
            seal,
            oidc,
            auth,
            reconciler,
            exchanges: tokio::sync::Semaphore::new(MAX_CONCURRENT_EXCHANGES),
            metrics,
        }))
    }

    /// What `/ready` lists while browser login cannot work yet: the issuer has not
    /// answered discovery. A fixed text: never what the issuer said.
    pub fn login_problem(&self) -> Option<&'static str> {
        self.oidc
            .as_ref()
            .filter(|oidc| !oidc.discovered())
            .map(|_| "workspace login: the OIDC issuer (JWT_ISSUER) has not answered discovery yet; browser logins answer 503 until it does")
    }

    /// The login's configuration, when browser login is on.
    fn login_parts(&self) -> Option<(&Seal, &Oidc, &Url)> {
        Some((
            self.seal.as_ref()?,
            self.oidc.as_deref()?,
            self.settings.public_url.as_ref()?,
        ))
    }

    /// The URL of the workspace host `host` (lowercase, no port) on the gateway's port
    /// (the one of PUBLIC_URL, if it names one).
    fn workspace_origin(&self, host: &str) -> String {
        match self.settings.public_url.as_ref().and_then(Url::port) {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("https://{host}"),
        }
    }
}

/// Whether `url` can be PUBLIC_URL: an http(s) origin with a host and nothing else (no
/// path, query, fragment or user info).
pub fn is_public_origin(url: &Url) -> bool {
    matches!(url.scheme(), "https" | "http")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// The name of one of several cookies of a kind (`prefix`), told apart by the start of
/// `id`, a random base64url value (a login's `state`, a hand-off secret's hash).
fn cookie_named(prefix: &str, id: &str) -> String {
    let short: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(16)
        .collect();
    format!("{prefix}{short}")
}

/// `scheme://host[:port]` of `url`, without a trailing slash.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The unpadded base64url SHA-256 of `secret`.
fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret: 32 bytes, base64url.
fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Equal in constant time (for secrets and their hashes).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a `sub` cannot name a workspace owner, if it cannot: empty, a `/` (Istio and
/// others split `iss/sub` at a `/`), or a control character.
pub fn sub_problem(sub: &str) -> Option<&'static str> {
    if sub.is_empty() {
        Some("it is empty")
    } else if sub.contains('/') {
        Some("it contains '/'")
    } else if sub.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if sub.len() > 255 {
        Some("it is longer than 255 bytes")
    } else {
        None
    }
}

/// A workspace host as the gateway was asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceHost {
    /// The host, lowercase, without a port: what cookies and tickets are bound to.
    pub name: String,
    /// The owner's safe name in `code-<safe>.<BASE_DOMAIN>`.
    pub safe: String,
}

/// The longest Host header the check reads (a DNS name is at most 253 bytes).
const MAX_HOST_BYTES: usize = 260;

/// The workspace host in a Host header (`code-<safe>.<base_domain>`, any case, with or
/// without `:port`), if it is one.
pub fn workspace_host(raw: &str, base_domain: &str) -> Option<WorkspaceHost> {
    if raw.len() > MAX_HOST_BYTES || raw.is_empty() {
        return None;
    }
    let name = match raw.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        Some(_) => return None,
        None => raw,
    };
    let name = name.to_ascii_lowercase();
    let suffix = format!(".{}", base_domain.to_ascii_lowercase());
    let safe = name.strip_suffix(&suffix)?.strip_prefix("code-")?;
    naming::parse_instance_id(&naming::instance_id(safe)).ok()?;
    Some(WorkspaceHost {
        safe: safe.to_owned(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_hosts_are_read_in_any_case_with_or_without_a_port() {
        let host = workspace_host("code-alice.devplatform.local", "devplatform.local").unwrap();
        assert_eq!(host.name, "code-alice.devplatform.local");
        assert_eq!(host.safe, "alice");
        for raw in [
            "CODE-ALICE.DevPlatform.Local",
            "code-alice.devplatform.local:443",
            "Code-Alice.devplatform.local:8443",
        ] {
            assert_eq!(
                workspace_host(raw, "devplatform.local").as_ref(),
                Some(&host),
                "{raw}"
            );
        }
    }

    #[test]
    fn other_hosts_are_not_workspace_hosts() {
        for raw in [
            "",
            "codeserver.devplatform.local",
            "code-.devplatform.local",
            "code-alice.devplatform.local.evil.com",
            "code-alice.evil.com",
            "code-alice.devplatform.local:",
            "code-alice.devplatform.local:99999x",
            "code-alice.devplatform.local:443:443",
            "code-a.b.devplatform.local",
            "code-alice_x.devplatform.local",
            "[::1]:443",
            &format!("code-{}.devplatform.local", "a".repeat(300)),
        ] {
            assert_eq!(workspace_host(raw, "devplatform.local"), None, "{raw}");
        }
    }

    #[test]
    fn subs_with_a_slash_or_control_characters_cannot_own_workspaces() {
        assert_eq!(sub_problem("0f8e-11"), None);
        assert!(sub_problem("").is_some());
        assert!(sub_problem("a/b").is_some());
        assert!(sub_problem("a\nb").is_some());
        assert!(sub_problem("a\u{7f}b").is_some());
        assert!(sub_problem(&"x".repeat(256)).is_some());
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        let secret = random_secret();
        assert_eq!(secret.len(), 43);
        assert!(same(&hash(&secret), &hash(&secret)));
        assert!(!same(&hash(&secret), &hash(&random_secret())));
        assert!(!same("abc", "abcd"));
    }
}
