//! Host matching, twice, as the gateway does it: Istio's `AuthorizationPolicy`
//! `to.operation.hosts`/`notHosts` (which requests the CUSTOM policy sends to the
//! authorization service) and Envoy's virtual host domains (which route a request takes).
//!
//! The two differ on ports, and that matters:
//!
//! - Policy hosts are matched against the whole `:authority` (the Host header), port
//!   included: pilot turns each value into an Envoy header matcher on `:authority`, exact,
//!   prefix (`foo.*`) or suffix (`*.foo`), ignoring case, and strips no port
//!   (`pilot/pkg/security/authz/model/generator.go` `hostGenerator`,
//!   `pilot/pkg/security/authz/matcher/header.go` `HostMatcher`, `model.go`
//!   `hostHeader = ":authority"`). So `hosts: ["code-a.example.test"]` does not match a
//!   request for `code-a.example.test:8443`; Istio's advice is to list `"h"` and `"h:*"`.
//! - Routes ignore the port: Istio sets `ignore_port_in_host_matching` on gateway route
//!   configurations (`pilot/pkg/networking/core/gateway.go`), and Envoy picks the virtual
//!   host by exact domain, then the longest `*suffix` wildcard, then the longest `prefix*`
//!   wildcard, then `*`, a wildcard never matching the empty string
//!   (envoyproxy.io, `config/route/v3/route_components.proto`, `VirtualHost.domains`).

use std::net::SocketAddr;

/// One value of Istio's `hosts`/`notHosts`, as pilot's `HostMatcher` turns it into an Envoy
/// header matcher on `:authority` (ignore_case: true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// `*`: a present match, any host.
    Any,
    /// `*.example.com`: the authority ends with `.example.com`.
    Suffix(String),
    /// `example.*`: the authority starts with `example.`.
    Prefix(String),
    /// Anything else: the whole authority, port included.
    Exact(String),
}

impl HostPattern {
    /// Parses one `hosts` value the way `matcher.HostMatcher` does: `*` first, then a leading
    /// `*`, then a trailing `*`.
    pub(crate) fn parse(value: &str) -> Self {
        if value == "*" {
            Self::Any
        } else if let Some(suffix) = value.strip_prefix('*') {
            Self::Suffix(suffix.to_ascii_lowercase())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Self::Prefix(prefix.to_ascii_lowercase())
        } else {
            Self::Exact(value.to_ascii_lowercase())
        }
    }

    /// Whether the request's `:authority` matches, ignoring ASCII case (Envoy's
    /// `StringMatcher` with `ignore_case`), with no port stripped.
    pub(crate) fn matches(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::Suffix(s) => authority.ends_with(s.as_str()),
            Self::Prefix(p) => authority.starts_with(p.as_str()),
            Self::Exact(e) => authority == *e,
        }
    }
}

/// The host part of a CUSTOM policy's rule: `hosts` (any of them, or any host when empty)
/// and not any of `notHosts`, as Istio's RBAC permission is built (`model.go`: the host
/// generator is inserted with both lists; a `notHosts` list becomes a `not_rule`).
#[derive(Debug, Clone)]
pub(crate) struct PolicyHosts {
    hosts: Vec<HostPattern>,
    not_hosts: Vec<HostPattern>,
}

impl PolicyHosts {
    pub(crate) fn new(hosts: &[String], not_hosts: &[String]) -> Self {
        Self {
            hosts: hosts.iter().map(|h| HostPattern::parse(h)).collect(),
            not_hosts: not_hosts.iter().map(|h| HostPattern::parse(h)).collect(),
        }
    }

    /// Whether a request for `authority` is sent to the authorization service.
    pub(crate) fn matches(&self, authority: &str) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(authority)))
            && !self.not_hosts.iter().any(|h| h.matches(authority))
    }
}

/// One Envoy virtual host domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Domain {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`.
    Suffix(String),
    /// `example.*` is stored as `example.`.
    Prefix(String),
    Default,
}

impl Domain {
    fn parse(value: &str) -> Self {
        let value = strip_port(value).to_ascii_lowercase();
        if value == "*" {
            Self::Default
        } else if let Some(suffix) = value.strip_prefix('*') {
            Self::Suffix(suffix.to_string())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Self::Prefix(prefix.to_string())
        } else {
            Self::Exact(value)
        }
    }
}

/// The routes' domains, compiled; [`RouteTable::find`] picks an upstream as Envoy picks a
/// virtual host.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    /// (domain, upstream), in the order of the configuration.
    domains: Vec<(Domain, SocketAddr)>,
}

impl RouteTable {
    pub(crate) fn new(routes: &[super::Route]) -> Self {
        let domains = routes
            .iter()
            .flat_map(|r| r.hosts.iter().map(|h| (Domain::parse(h), r.upstream)))
            .collect();
        Self { domains }
    }

    /// The upstream for a request's `:authority`, or `None` (Envoy's `NR`, 404).
    ///
    /// Envoy's `RouteMatcher::findVirtualHost`: with `ignore_port_in_host_matching` the port
    /// is stripped first; exact domains win, then suffix wildcards longest first, then prefix
    /// wildcards longest first, each wildcard matching at least one character; then `*`.
    /// Among equal domains the first route wins.
    pub(crate) fn find(&self, authority: &str) -> Option<SocketAddr> {
        let host = strip_port(authority).to_ascii_lowercase();
        let exact = self.domains.iter().find_map(|(d, up)| match d {
            Domain::Exact(e) if *e == host => Some(*up),
            _ => None,
        });
        let longest = |pick: &dyn Fn(&Domain) -> Option<usize>| {
            let mut best: Option<(usize, SocketAddr)> = None;
            for (d, up) in &self.domains {
                if let Some(len) = pick(d)
                    && best.is_none_or(|(l, _)| len > l)
                {
                    best = Some((len, *up));
                }
            }
            best.map(|(_, up)| up)
        };
        exact
            .or_else(|| {
                longest(&|d| match d {
                    Domain::Suffix(s) if host.len() > s.len() && host.ends_with(s.as_str()) => {
                        Some(s.len())
                    }
                    _ => None,
                })
            })
            .or_else(|| {
                longest(&|d| match d {
                    Domain::Prefix(p) if host.len() > p.len() && host.starts_with(p.as_str()) => {
                        Some(p.len())
                    }
                    _ => None,
                })
            })
            .or_else(|| {
                self.domains
                    .iter()
                    .find_map(|(d, up)| (*d == Domain::Default).then_some(*up))
            })
    }
}

/// The host without a trailing `:port` (`[v6]:port` keeps its brackets), as Envoy's
/// `HeaderUtility::stripPortFromHost` does for `ignore_port_in_host_matching`.
pub(crate) fn strip_port(authority: &str) -> &str {
    let Some(colon) = authority.rfind(':') else {
        return authority;
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    let is_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    // An IPv6 literal without a port has colons inside its brackets only.
    let v6_without_port = authority.starts_with('[') && !host.ends_with(']');
    if is_port && !v6_without_port {
        host
    } else {
        authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn policy_hosts_match_the_whole_authority_ignoring_case() {
        let exact = HostPattern::parse("code-alice.devplatform.test");
        assert!(exact.matches("code-alice.devplatform.test"));
        assert!(exact.matches("Code-Alice.DEVPLATFORM.test"));
        // Istio strips no port before matching `hosts`.
        assert!(!exact.matches("code-alice.devplatform.test:8443"));
        let with_port = HostPattern::parse("code-alice.devplatform.test:*");
        assert!(with_port.matches("code-alice.devplatform.test:8443"));
        assert!(!with_port.matches("code-alice.devplatform.test"));
        let suffix = HostPattern::parse("*.devplatform.test");
        assert!(suffix.matches("code-bob.devplatform.test"));
        assert!(!suffix.matches("code-bob.devplatform.test:443"));
        assert!(HostPattern::parse("*").matches("anything:1"));
    }

    #[test]
    fn not_hosts_exclude_and_empty_hosts_match_all() {
        let p = PolicyHosts::new(&[], &["api.devplatform.test".into()]);
        assert!(p.matches("code-a.devplatform.test"));
        assert!(!p.matches("API.devplatform.test"));
        let p = PolicyHosts::new(&["code-*".into()], &["code-admin*".into()]);
        assert!(p.matches("code-a.x"));
        assert!(!p.matches("code-admin.x"));
        assert!(!p.matches("other.x"));
    }

    #[test]
    fn routes_ignore_the_port_and_prefer_exact_then_longest_suffix() {
        let routes = [
            super::super::Route {
                hosts: vec!["*".into()],
                upstream: addr(1),
            },
            super::super::Route {
                hosts: vec!["*.devplatform.test".into()],
                upstream: addr(2),
            },
            super::super::Route {
                hosts: vec!["*.b.devplatform.test".into()],
                upstream: addr(3),
            },
            super::super::Route {
                hosts: vec!["Exact.devplatform.test".into()],
                upstream: addr(4),
            },
        ];
        let t = RouteTable::new(&routes);
        assert_eq!(t.find("exact.devplatform.test:8443"), Some(addr(4)));
        assert_eq!(t.find("x.b.devplatform.test"), Some(addr(3)));
        assert_eq!(t.find("x.devplatform.test:1"), Some(addr(2)));
        // The wildcard needs at least one character.
        assert_eq!(t.find(".devplatform.test"), Some(addr(1)));
        assert_eq!(t.find("elsewhere"), Some(addr(1)));
        let none = RouteTable::new(&routes[1..2]);
        assert_eq!(none.find("devplatform.test"), None);
    }

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("a.b:"), "a.b:");
    }
}
