//! Names: user ids to DNS-safe names, the object names derived from them, label keys,
//! and Gitea's rules for repository owners and names.
//!
//! Usernames come from tokens and can be anything (`John.Doe@corp`, unicode, 200
//! characters). Object names and label values must be DNS-1123 labels of at most 63
//! characters. The safe name is lowercased, runs of anything but `[a-z0-9]` become `-`,
//! it is trimmed and truncated, and it gets a short hash of the original id whenever it
//! differs from the original, so that `john.doe` and `john-doe` never share an instance.
//!
//! No two ids map to one name: a kept name never ends in `-` and eight hex digits, and a
//! hashed name always does, so an id that is already a valid name but looks hashed
//! (`john-doe-30f69670`) is hashed too. Two hashed names are equal only when the 32-bit
//! hash prefixes are, which a determined attacker can search for; the reconciler's safety
//! net (it never applies over a live object another owner holds) covers that case.

use sha2::{Digest, Sha256};

/// The one field manager every write of this service uses.
pub const FIELD_MANAGER: &str = "codeserver-service";

/// `app.kubernetes.io/managed-by`: always [`MANAGED_BY_VALUE`] on our objects.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "codeserver-service";
/// `app.kubernetes.io/name`: always [`APP_NAME_VALUE`].
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Value of [`LABEL_NAME`].
pub const APP_NAME_VALUE: &str = "code-server";
/// `app.kubernetes.io/instance`: the instance id, `code-server-<safe-name>`.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `devplatform.io/user`: the owner's safe name.
pub const LABEL_USER: &str = "devplatform.io/user";
/// `devplatform.io/owner`: the durable owner key (from the token's `sub` where there is one).
pub const LABEL_OWNER: &str = "devplatform.io/owner";
/// The original, unmodified user id.
pub const ANNOTATION_USER_ID: &str = "devplatform.io/user-id";
/// The owner's email address, when known.
pub const ANNOTATION_EMAIL: &str = "devplatform.io/email";
/// The owner's token `sub`, recorded only when the owner key had to hash it (a `sub` that
/// is not a label value), so that the access policy of an instance acted on by an admin
/// still names the owner's real request principal.
pub const ANNOTATION_SUB: &str = "devplatform.io/sub";
/// JSON list of the instance's repositories, kept on the PVC (the instance record).
pub const ANNOTATION_REPOS: &str = "devplatform.io/repos";
/// JSON list of every kind (`apiVersion/Kind`) ever applied for the instance, kept on
/// the PVC so that objects of a kind removed from the templates are still found.
pub const ANNOTATION_KINDS: &str = "devplatform.io/kinds";
/// Label on a sync Job's pod naming the instance it syncs.
pub const LABEL_SYNC_OF: &str = "devplatform.io/sync-of";
/// Hash of the rendered pod spec, like a Deployment's pod-template-hash.
pub const ANNOTATION_SPEC_HASH: &str = "devplatform.io/spec-hash";
/// Revision (content hash) of the template set that rendered the object.
pub const ANNOTATION_TEMPLATE_REVISION: &str = "devplatform.io/template-revision";

/// Longest DNS-1123 label, and so longest object name we derive.
pub const MAX_NAME_LEN: usize = 63;
/// Prefix of an instance id; the instance id is also the pod and Service name.
pub const INSTANCE_PREFIX: &str = "code-server-";
/// Longest safe name: the instance id `code-server-<name>` must stay a 63-character label.
pub const MAX_SAFE_NAME_LEN: usize = MAX_NAME_LEN - INSTANCE_PREFIX.len();
/// Longest user id accepted (Keycloak allows 255; anything much longer is abuse).
pub const MAX_USER_ID_LEN: usize = 1024;
/// Length of the hash suffix, in hex digits.
const HASH_LEN: usize = 8;
/// Longest repository owner or name Gitea accepts.
pub const MAX_REPO_PART_LEN: usize = 100;

/// A name or id that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The user id is empty.
    #[error("user id is empty")]
    EmptyUserId,
    /// The user id is unreasonably long.
    #[error("user id is {len} characters long; at most {MAX_USER_ID_LEN} are accepted")]
    UserIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A repository owner or name breaks Gitea's naming rules.
    #[error("invalid repository {what} {value:?}: {reason}")]
    InvalidRepo {
        /// `owner` or `name`.
        what: &'static str,
        /// The refused value (debug-quoted when shown).
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A token `sub` that an access policy cannot name as exactly one principal.
    #[error("the token subject (sub) {value:?} cannot be named in an access policy: {reason}")]
    UnsafeSub {
        /// The refused `sub` (debug-quoted, cut to 120 characters).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// An instance id that this service could not have issued.
    #[error("invalid instance id {0:?}: expected code-server-<name> with a DNS-1123 label name")]
    InvalidInstanceId(String),
}

/// The DNS-safe form of `user_id`, at most [`MAX_SAFE_NAME_LEN`] characters.
pub fn safe_name(user_id: &str) -> Result<String, NamingError> {
    if user_id.is_empty() {
        return Err(NamingError::EmptyUserId);
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(NamingError::UserIdTooLong { len: user_id.len() });
    }
    let mut base = String::with_capacity(user_id.len());
    for c in user_id.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base = base.trim_matches('-');
    if base == user_id && base.len() <= MAX_SAFE_NAME_LEN && !looks_hashed(base) {
        return Ok(base.to_owned());
    }
    let hash = short_hash(user_id);
    let base = if base.is_empty() { "user" } else { base };
    let keep = MAX_SAFE_NAME_LEN - HASH_LEN - 1;
    // NB: `base` is ASCII here, so byte slicing cannot split a character.
    let truncated = base[..base.len().min(keep)].trim_end_matches('-');
    Ok(format!("{truncated}-{hash}"))
}

/// True when `name` has the shape of a hashed name: something, `-`, then [`HASH_LEN`]
/// lowercase hex digits. Every hashed name has it and no kept name may.
fn looks_hashed(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > HASH_LEN + 1
        && bytes[bytes.len() - HASH_LEN - 1] == b'-'
        && bytes[bytes.len() - HASH_LEN..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The first [`HASH_LEN`] hex digits of SHA-256 of `s`.
fn short_hash(s: &str) -> String {
    let mut hex = hex_digest(s.as_bytes());
    hex.truncate(HASH_LEN);
    hex
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The durable owner key stored in [`LABEL_OWNER`]: the token's `sub` when it is a valid
/// label value (Keycloak's are UUIDs), else its hash; without a `sub`, the safe name.
pub fn owner_key(sub: Option<&str>, safe_name: &str) -> String {
    match sub.filter(|s| !s.is_empty()) {
        Some(sub) if is_label_value(sub) => sub.to_owned(),
        Some(sub) => format!("sub-{}", &hex_digest(sub.as_bytes())[..40]),
        None => safe_name.to_owned(),
    }
}

/// Longest `sub` an access policy names, in bytes (OIDC's are at most 255 ASCII).
pub const MAX_SUB_LEN: usize = 1024;

/// Why `s` cannot be part of an Istio request principal (`<iss>/<sub>`), if it cannot.
///
/// NB: Istio's string match reads a leading or trailing `*` as a wildcard (prefix,
/// suffix or presence match), so a `*` could widen a principal to many; control
/// characters have no place in an issuer or subject.
pub fn principal_part_problem(s: &str) -> Option<&'static str> {
    if s.contains('*') {
        Some("it contains '*', which Istio reads as a wildcard")
    } else if s.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if s.len() > MAX_SUB_LEN {
        Some("it is longer than 1024 bytes")
    } else {
        None
    }
}

/// The Istio request principal of the owner with `sub`, as tokens from `issuer` carry
/// it: `<issuer>/<sub>`, matched exactly. Refuses what cannot be named exactly.
pub fn request_principal(issuer: &str, sub: &str) -> Result<String, NamingError> {
    let refuse = |reason| NamingError::UnsafeSub {
        value: truncate_for_message(sub),
        reason,
    };
    if sub.is_empty() {
        return Err(refuse("it is empty"));
    }
    if let Some(reason) = principal_part_problem(sub) {
        return Err(refuse(reason));
    }
    if let Some(reason) = principal_part_problem(issuer).or(issuer
        .chars()
        .any(char::is_whitespace)
        .then_some("the issuer contains whitespace"))
    {
        return Err(refuse(reason));
    }
    Ok(format!("{issuer}/{sub}"))
}

/// Instance id (also the pod and Service name): `code-server-<name>`.
pub fn instance_id(safe_name: &str) -> String {
    format!("{INSTANCE_PREFIX}{safe_name}")
}

/// PVC name: `workspace-<name>`.
pub fn pvc_name(safe_name: &str) -> String {
    format!("workspace-{safe_name}")
}

/// Name of an instance's syncRepository Job: `sync-<name>`, at most 57 characters. One
/// name per instance makes the Job itself the lock: a second sync cannot create it while
/// the first runs, on any replica.
pub fn sync_job_name(safe_name: &str) -> String {
    format!("sync-{safe_name}")
}

/// Name of the instance's Secret of deploy keys: `git-keys-<name>`.
pub fn credentials_name(safe_name: &str) -> String {
    format!("git-keys-{safe_name}")
}

/// Host name: `code-<name>.<base_domain>`.
pub fn host(safe_name: &str, base_domain: &str) -> String {
    format!("code-{safe_name}.{base_domain}")
}

/// The safe name inside an instance id, if the id is one this service could have issued.
pub fn parse_instance_id(id: &str) -> Result<&str, NamingError> {
    id.strip_prefix(INSTANCE_PREFIX)
        .filter(|name| !name.is_empty() && name.len() <= MAX_SAFE_NAME_LEN && is_dns_label(name))
        .ok_or_else(|| NamingError::InvalidInstanceId(truncate_for_message(id)))
}

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
    let invalid = |reason| NamingError::InvalidRepo {
        what: "clone URL",
        value: truncate_for_message(url),
        reason,
    };
    if url.len() > 2048 {
        return Err(invalid("longer than 2048 characters"));
    }
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
    let invalid = |reason| NamingError::InvalidRepo {
        what: "SSH URL",
        value: truncate_for_message(url),
        reason,
    };
    if url.len() > 2048 {
        return Err(invalid("longer than 2048 characters"));
    }
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

/// Keeps error messages short when the input is hostile (10 kB names).
fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters that is a non-empty label value.
pub fn is_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept() {
        assert_eq!(safe_name("john-doe").unwrap(), "john-doe");
        assert_eq!(safe_name("alice42").unwrap(), "alice42");
    }

    #[test]
    fn similar_ids_never_collide() {
        let ids = [
            "john.doe",
            "john-doe",
            "John.Doe",
            "john_doe",
            "JOHN-DOE",
            "john--doe",
        ];
        let names: Vec<String> = ids.iter().map(|id| safe_name(id).unwrap()).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(is_dns_label(a), "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(names[0].starts_with("john-doe-"), "{}", names[0]);
    }

    #[test]
    fn an_id_that_looks_like_a_hashed_name_is_hashed_too() {
        let victim = safe_name("john.doe").unwrap();
        assert_eq!(victim, "john-doe-30f69670");
        let attacker = safe_name(&victim).unwrap();
        assert_ne!(attacker, victim);
        assert!(attacker.starts_with("john-doe-30f69670-"), "{attacker}");
        assert!(is_dns_label(&attacker) && attacker.len() <= MAX_SAFE_NAME_LEN);
        // Hashing the hashed name again keeps going: no fixed point to aim at.
        assert_ne!(safe_name(&attacker).unwrap(), attacker);
        // Names that merely end in a hex-looking word of another length are kept.
        for kept in [
            "john-doe-30f6967",
            "john-doe-30f696701",
            "cafebabe",
            "x-cafebab",
        ] {
            assert_eq!(safe_name(kept).unwrap(), kept);
        }
        assert_ne!(safe_name("x-cafebabe").unwrap(), "x-cafebabe");
    }

    /// Ids built to collide: every shape of kept and hashed name, separators, case,
    /// truncation boundaries, and every id's own safe name fed back in as an id.
    fn adversarial_ids() -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let stems = [
            "john", "john.doe", "John-Doe", "a", "x-y", "user", "日本", "",
        ];
        for stem in stems {
            for sep in ["", "-", ".", "_", "--", "@"] {
                for tail in ["", "1", "deadbeef", "30f69670", "DEADBEEF", "0000000g"] {
                    ids.push(format!("{stem}{sep}{tail}"));
                }
            }
        }
        for n in [40, 43, 44, 51, 52, 53, 60, 64, 200] {
            ids.push("a".repeat(n));
            ids.push(format!("{}-deadbeef", "b".repeat(n)));
            ids.push(format!("{}.c", "c".repeat(n)));
        }
        for i in 0..2000 {
            ids.push(format!("u{i}"));
            ids.push(format!("u.{i}"));
        }
        let fed_back: Vec<String> = ids.iter().filter_map(|id| safe_name(id).ok()).collect();
        ids.extend(fed_back);
        ids.sort();
        ids.dedup();
        ids.retain(|id| !id.is_empty());
        ids
    }

    #[test]
    fn distinct_ids_never_share_a_name() {
        let ids = adversarial_ids();
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for id in &ids {
            let name = safe_name(id).unwrap();
            assert!(
                is_dns_label(&name) && name.len() <= MAX_SAFE_NAME_LEN,
                "{id:?} -> {name}"
            );
            if let Some(other) = seen.insert(name.clone(), id) {
                panic!("{other:?} and {id:?} both map to {name}");
            }
        }
        assert!(seen.len() > 4000, "{} ids checked", seen.len());
    }

    #[test]
    fn kept_and_hashed_names_are_disjoint_by_shape() {
        for id in adversarial_ids() {
            let name = safe_name(&id).unwrap();
            // A name is kept exactly when it is the id, and kept names never look hashed.
            assert_eq!(name == id, !looks_hashed(&name), "{id:?} -> {name}");
        }
    }

    #[test]
    fn long_and_unicode_ids_give_valid_distinct_names() {
        let long_a = "a".repeat(200);
        let long_b = format!("{}b", "a".repeat(199));
        for id in [
            &long_a,
            &long_b,
            "Jürgen Müller",
            "日本語",
            "🦀",
            "-x-",
            "@corp",
        ] {
            let name = safe_name(id).unwrap();
            assert!(is_dns_label(&name), "{id:?} -> {name}");
            assert!(name.len() <= MAX_SAFE_NAME_LEN, "{name}");
            assert!(instance_id(&name).len() <= MAX_NAME_LEN);
            assert!(is_dns_label(host(&name, "x").split('.').next().unwrap()));
        }
        assert_ne!(safe_name(&long_a).unwrap(), safe_name(&long_b).unwrap());
        assert!(safe_name("日本語").unwrap().starts_with("user-"));
        assert!(is_dns_label(&sync_job_name(&safe_name(&long_a).unwrap())));
        assert!(
            safe_name("Jürgen Müller")
                .unwrap()
                .starts_with("j-rgen-m-ller-")
        );
    }

    #[test]
    fn empty_and_oversized_ids_are_refused() {
        assert_eq!(safe_name(""), Err(NamingError::EmptyUserId));
        assert!(matches!(
            safe_name(&"x".repeat(MAX_USER_ID_LEN + 1)),
            Err(NamingError::UserIdTooLong { .. })
        ));
    }

    #[test]
    fn instance_ids_round_trip_and_foreign_ids_are_refused() {
        let name = safe_name("John.Doe").unwrap();
        assert_eq!(parse_instance_id(&instance_id(&name)).unwrap(), name);
        for bad in [
            "",
            "code-server-",
            "workspace-john",
            "code-server-John",
            "code-server-a/b",
        ] {
            assert!(parse_instance_id(bad).is_err(), "{bad:?}");
        }
        assert!(parse_instance_id(&format!("code-server-{}", "a".repeat(52))).is_err());
    }

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

    #[test]
    fn owner_key_prefers_a_label_safe_sub() {
        let uuid = "3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f";
        assert_eq!(owner_key(Some(uuid), "john"), uuid);
        assert_eq!(owner_key(None, "john"), "john");
        assert_eq!(owner_key(Some(""), "john"), "john");
        let hashed = owner_key(Some("auth0|user/1"), "john");
        assert!(
            hashed.starts_with("sub-") && is_label_value(&hashed),
            "{hashed}"
        );
    }

    #[test]
    fn label_and_key_rules() {
        assert!(is_label_value("") && is_label_value("A.b_c-1"));
        assert!(
            !is_label_value("-a") && !is_label_value(&"a".repeat(64)) && !is_label_value("a b")
        );
        assert!(is_qualified_key("app.kubernetes.io/name") && is_qualified_key("plain"));
        assert!(
            !is_qualified_key("Bad_Prefix/x") && !is_qualified_key("a/") && !is_qualified_key("/x")
        );
    }
}
