//! Argument checks, done before any call: repository names by Gitea's rules, instance ids
//! by the naming scheme, log line counts within bounds, and the admin role.
//!
//! NB: whether an instance id is the caller's own is decided by the reconciler from the
//! live workspace record (its owner label holds the token's `sub`, so an instance survives
//! a username change); another user's id answers `instance not found` from there.

use crate::{auth::Identity, naming};

use super::ApiError;

/// Log lines returned when `lines` is not given.
pub const DEFAULT_LOG_LINES: u32 = 100;
/// The most log lines one call may ask for.
pub const MAX_LOG_LINES: u32 = 10_000;

/// Checks `repoOwner` and `repoName`.
pub fn repository(owner: &str, name: &str) -> Result<(), ApiError> {
    naming::validate_repo_part("owner", owner)?;
    naming::validate_repo_part("name", name)?;
    Ok(())
}

/// Checks `lines` of `codeServerLogs`: 1 to 10,000, 100 when absent.
pub fn log_lines(lines: Option<i32>) -> Result<u32, ApiError> {
    match lines {
        None => Ok(DEFAULT_LOG_LINES),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LOG_LINES).contains(n))
            .ok_or_else(|| ApiError::bad_input("lines", "must be between 1 and 10000")),
    }
}

/// Checks `page` (1 to the page cap) and `limit` (1 to 50, 50 when absent) of
/// `myRepositories`; `page` stays absent when not given (every page).
pub fn repository_page(
    page: Option<i32>,
    limit: Option<i32>,
) -> Result<(Option<usize>, usize), ApiError> {
    let page = match page {
        None => None,
        Some(p) => Some(
            usize::try_from(p)
                .ok()
                .filter(|p| (1..=crate::gitea::MAX_PAGE).contains(p))
                .ok_or_else(|| ApiError::bad_input("page", "must be between 1 and 100"))?,
        ),
    };
    let limit = match limit {
        None => crate::gitea::PAGE_LIMIT,
        Some(l) => usize::try_from(l)
            .ok()
            .filter(|l| (1..=crate::gitea::PAGE_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_input("limit", "must be between 1 and 50"))?,
    };
    Ok((page, limit))
}

/// Checks that `id` has the shape of an instance id (`code-server-<name>`).
pub fn instance_id(id: &str) -> Result<(), ApiError> {
    naming::parse_instance_id(id)?;
    Ok(())
}

/// Checks that the caller holds the admin realm role.
pub fn admin(identity: &Identity, admin_role: &str) -> Result<(), ApiError> {
    if identity.is_admin(admin_role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::Code;

    fn user(name: &str, roles: &[&str]) -> Identity {
        Identity {
            user_id: name.to_owned(),
            email: None,
            sub: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            token: None,
        }
    }

    #[test]
    fn log_lines_are_bounded() {
        assert_eq!(log_lines(None), Ok(100));
        assert_eq!(log_lines(Some(1)), Ok(1));
        assert_eq!(log_lines(Some(10_000)), Ok(10_000));
        for bad in [0, -1, 10_001, i32::MIN, i32::MAX] {
            let error = log_lines(Some(bad)).unwrap_err();
            assert_eq!(error.code(), Code::BadUserInput, "{bad}");
        }
    }

    #[test]
    fn hostile_ids_and_repo_names_are_bad_input() {
        let long = "a".repeat(10_000);
        for id in [
            "",
            "alice",
            "code-server-",
            "code-server-A",
            "code-server-a/b",
            &long,
        ] {
            let error = instance_id(id).unwrap_err();
            assert_eq!(error.code(), Code::BadUserInput, "{id:.40}");
        }
        assert!(instance_id("code-server-alice").is_ok());
        for (owner, name) in [("a", ".."), ("a b", "c"), ("a", "x\ny"), ("a", &long)] {
            let error = repository(owner, name).unwrap_err();
            assert_eq!(error.code(), Code::BadUserInput);
            assert!(!error.message().contains('\n'));
        }
        assert!(repository("devteam", "backend-api").is_ok());
    }

    #[test]
    fn repository_pages_are_bounded() {
        assert_eq!(repository_page(None, None), Ok((None, 50)));
        assert_eq!(repository_page(Some(2), Some(10)), Ok((Some(2), 10)));
        for (page, limit) in [
            (Some(0), None),
            (Some(101), None),
            (None, Some(0)),
            (None, Some(51)),
            (Some(-1), Some(-1)),
        ] {
            let error = repository_page(page, limit).unwrap_err();
            assert_eq!(error.code(), Code::BadUserInput, "{page:?} {limit:?}");
        }
    }

    #[test]
    fn admin_needs_the_configured_role() {
        assert!(admin(&user("root", &["admin"]), "admin").is_ok());
        assert_eq!(
            admin(&user("root", &["admin"]), "platform-admin"),
            Err(ApiError::Forbidden)
        );
        assert_eq!(admin(&user("dev", &[]), "admin"), Err(ApiError::Forbidden));
    }
}
