//! Gitea's rules for repository owners and names, and the clone URLs the clone script
//! is given.

use super::{MAX_REPO_PART_LEN, NamingError, error::truncate_for_message, is_dns_subdomain};

/// Checks a repository owner or name against Gitea's rules: letters, digits, `-`, `_`
/// and `.`; not `.` or `..`; 1 to 100 characters.
pub fn validate_repo_part(what: &'static str, value: &str) -> Result<(), NamingError> {
    let invalid = |reason| NamingError::InvalidRepo {
        what,
        value: truncate_for_message(value),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value.len() > MAX_REPO_PART_LEN {
        return Err(invalid("longer than 100 characters"));
    }
    if value == "." || value == ".." {
        return Err(invalid("must not be . or .."));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "only letters, digits, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

/// Checks a clone URL: an http(s), ssh or git URL with no whitespace or control
/// characters (the clone script reads one `path url` pair per line).
pub fn validate_clone_url(url: &str) -> Result<(), NamingError> {
    let invalid = url_rules("clone URL", url)?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain whitespace or control characters"));
    }
    let scheme_ok = ["http://", "https://", "ssh://", "git://"]
        .iter()
        .any(|p| url.starts_with(p) && url.len() > p.len());
    if !scheme_ok {
        return Err(invalid("expected an http(s), ssh or git URL"));
    }
    Ok(())
}

/// Checks an SSH clone URL as Gitea gives it: `ssh://[user@]host[:port]/path` or
/// scp-like `user@host:path`, with no whitespace, control characters or leading `-` (the
/// clone script reads one `path key url` line per repository and passes it to git).
pub fn validate_ssh_url(url: &str) -> Result<(), NamingError> {
    let invalid = url_rules("SSH URL", url)?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'~'))
    };
    let host_ok = |host: &str| {
        let (host, port) = host.split_once(':').unwrap_or((host, "1"));
        (is_dns_subdomain(&host.to_ascii_lowercase()) || host.parse::<std::net::Ipv4Addr>().is_ok())
            && port.parse::<u16>().is_ok()
    };
    let user_ok = |user: &str| safe(user) && !user.contains('/');
    if let Some(rest) = url.strip_prefix("ssh://") {
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("expected ssh://host/path"))?;
        let host = match authority.split_once('@') {
            Some((user, host)) if user_ok(user) => host,
            Some(_) => return Err(invalid("invalid user")),
            None => authority,
        };
        if !host_ok(host) || !safe(path) {
            return Err(invalid("expected ssh://[user@]host[:port]/owner/name.git"));
        }
        return Ok(());
    }
    let (user, rest) = url
        .split_once('@')
        .ok_or_else(|| invalid("expected user@host:path or ssh://"))?;
    let (host, path) = rest
        .split_once(':')
        .ok_or_else(|| invalid("expected user@host:path"))?;
    if !user_ok(user)
        || user.starts_with('-')
        || !host_ok(host)
        || !safe(path)
        || path.starts_with('-')
    {
        return Err(invalid("expected user@host:owner/name.git"));
    }
    Ok(())
}

/// Longest clone URL accepted.
const MAX_URL_LEN: usize = 2048;

/// The error for `url` (a `what`) breaking a rule, once `url` is within [`MAX_URL_LEN`].
fn url_rules<'a>(
    what: &'static str,
    url: &'a str,
) -> Result<impl Fn(&'static str) -> NamingError + 'a, NamingError> {
    let invalid = move |reason| NamingError::InvalidRepo {
        what,
        value: truncate_for_message(url),
        reason,
    };
    if url.len() > MAX_URL_LEN {
        return Err(invalid("longer than 2048 characters"));
    }
    Ok(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_parts_follow_gitea_rules() {
        for ok in ["backend-api", "my_repo.v2", "A", &"x".repeat(100)] {
            assert!(validate_repo_part("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a;rm -rf /",
            "$(id)",
            "a\nb",
            "a/b",
            "ü",
            &"x".repeat(101),
        ] {
            assert!(validate_repo_part("name", bad).is_err(), "{bad:?}");
        }
        let msg = validate_repo_part("owner", &"é".repeat(5000))
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 400, "message stays short: {} bytes", msg.len());
        assert!(msg.contains("owner"));
    }

    #[test]
    fn clone_urls_are_checked() {
        assert!(validate_clone_url("http://gitea:3000/o/n.git").is_ok());
        for bad in [
            "",
            "http://",
            "file:///etc",
            "http://x/a b",
            "http://x/a\nb",
            "-uhttp://x",
        ] {
            assert!(validate_clone_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_urls_are_checked() {
        for good in [
            "git@gitea.example.com:devteam/backend-api.git",
            "git@127.0.0.1:alice/notes.git",
            "ssh://git@gitea:2222/o/n.git",
            "ssh://gitea/o/n.git",
        ] {
            assert!(validate_ssh_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-oProxyCommand=id@x:y",
            "git@-x:y",
            "git@host:-u",
            "git@host:a b",
            "git@host:a\nb",
            "git@host:$(id)",
            "ssh://-oProxyCommand=x/y",
            "ssh://git@host",
            "host:path",
            "http://x/y.git",
        ] {
            assert!(validate_ssh_url(bad).is_err(), "{bad:?}");
        }
    }
}
