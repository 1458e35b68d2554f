//! Reading setting values: each parser names what it expects, and a refused value stops
//! start-up with one line.

use super::Secret;
use crate::{naming, quantity};

/// Renders a clap error as the one line start-up prints (help and version pass through).
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        parts.push(line.to_owned());
    }
    parts.join(" ")
}

pub(super) fn positive_quantity(s: &str) -> Result<String, String> {
    quantity::parse_positive(s)
        .map(|_| s.to_owned())
        .map_err(|_| {
            "expected a Kubernetes quantity greater than zero, such as 500m, 2, 1Gi or 10Gi"
                .to_owned()
        })
}

pub(super) fn dns_label(s: &str) -> Result<String, String> {
    if naming::is_dns_label(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a DNS-1123 label (lowercase letters, digits and '-', at most 63)".to_owned())
    }
}

pub(super) fn dns_subdomain(s: &str) -> Result<String, String> {
    if naming::is_dns_subdomain(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a lowercase DNS name such as devplatform.local".to_owned())
    }
}

/// JWT_ISSUER: empty (unset), or an issuer the access policy can name exactly.
///
/// NB: Istio reads a leading or trailing `*` in a principal as a wildcard, so an issuer
/// with `*` would widen every per-instance policy; whitespace and control characters are
/// never part of a real issuer.
pub(super) fn issuer(s: &str) -> Result<String, String> {
    if s.is_empty() || naming::principal_part_problem(s).is_none() {
        Ok(s.to_owned())
    } else {
        Err("expected the token issuer exactly as tokens carry it in `iss` (such as https://keycloak.example/realms/devplatform), without '*', whitespace or control characters".to_owned())
    }
}

pub(super) fn storage_class(s: &str) -> Result<String, String> {
    if s.is_empty() || naming::is_dns_subdomain(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a storage class name (a DNS-1123 subdomain), or empty for the cluster default".to_owned())
    }
}

pub(super) fn image(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 512
        && s.bytes().all(|b| b.is_ascii_graphic())
        && !s.starts_with(['-', ':', '@', '/']);
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a container image reference such as codercom/code-server:4.96.4".to_owned())
    }
}

pub(super) fn http_url(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("expected an http(s) URL such as http://gitea:3000".to_owned()),
    }
}

pub(super) fn environment(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "development" | "staging" | "production" | "test"
    ) {
        Ok(lower)
    } else {
        Err("expected one of development, staging, production, test".to_owned())
    }
}

pub(super) fn log_level(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|_| {
            "expected a log level (error, warn, info, debug, trace) or tracing directives"
                .to_owned()
        })
}

pub(super) fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}
