//! Admin operations: every instance as a cursor connection, and acting on any instance
//! by id. Each admin action on another user's instance is logged with the admin's
//! identity and the target.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    ApiError, CodeServerConnection, CodeServerEdge, InstanceStatus, PageInfo, Services, args,
    convert::owner,
};
use crate::{auth::Identity, naming, reconcile::InstanceFilter, values::Owner};

/// Instances per page when `first` is not given.
pub const DEFAULT_PAGE: u32 = 20;
/// The most instances one page may hold.
pub const MAX_PAGE: u32 = 100;
const CURSOR_PREFIX: &str = "instance:";

/// The opaque cursor of instance `id`.
pub fn cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

/// The instance id a cursor stands for, or `BAD_USER_INPUT`.
fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_input("after", "not a cursor from allCodeServers");
    if cursor.len() > 200 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
    naming::parse_instance_id(id).map_err(|_| bad())?;
    Ok(id.to_owned())
}

/// Checks `first`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
fn page_size(first: Option<i32>) -> Result<usize, ApiError> {
    match first {
        None => Ok(DEFAULT_PAGE as usize),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad_input("first", "must be between 1 and 100")),
    }
}

/// `allCodeServers`: every instance (admins only), filtered by user and status, a page of
/// `first` after the cursor `after`, ordered by id.
pub async fn all_code_servers(
    services: &Services,
    identity: &Identity,
    user: Option<String>,
    status: Option<InstanceStatus>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<CodeServerConnection, ApiError> {
    args::admin(identity, &services.admin_role)?;
    let first = page_size(first)?;
    let after = after.as_deref().map(decode_cursor).transpose()?;
    if let Some(user) = &user
        && (user.is_empty() || user.len() > naming::MAX_USER_ID_LEN)
    {
        return Err(ApiError::bad_input("user", "must be 1 to 1024 characters"));
    }
    let filter = InstanceFilter { user, status };
    let all = services.reconciler.all(&filter).await?;
    let total = all.len();
    let rest: Vec<_> = all
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| i.id.as_str() > a.as_str()))
        .collect();
    let has_next_page = rest.len() > first;
    let edges: Vec<CodeServerEdge> = rest
        .into_iter()
        .take(first)
        .map(|i| CodeServerEdge {
            cursor: cursor(&i.id),
            node: i.into(),
        })
        .collect();
    Ok(CodeServerConnection {
        page_info: PageInfo {
            has_next_page,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
        total_count: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

/// The owner an operation on instance `id` acts for: the caller, or, when the caller is
/// an admin and the instance is another user's, that user (logged as an admin action).
/// A non-admin always acts as themselves, so another user's id stays `instance not
/// found`.
pub async fn acting_owner(
    services: &Services,
    identity: &Identity,
    id: &str,
    action: &str,
) -> Result<Owner, ApiError> {
    Ok(acting(services, identity, id, action).await?.0)
}

/// [`acting_owner`], and whether an admin acts on another user's instance.
pub async fn acting(
    services: &Services,
    identity: &Identity,
    id: &str,
    action: &str,
) -> Result<(Owner, bool), ApiError> {
    let caller = owner(identity);
    if !identity.is_admin(&services.admin_role) {
        return Ok((caller, false));
    }
    let target = match services.reconciler.owner_of(id).await {
        Ok(target) => target,
        Err(crate::reconcile::Error::NotFound) => return Ok((caller, false)),
        Err(error) => return Err(error.into()),
    };
    // NB: the same user id and `sub` is the caller, whatever name an older version
    // derived for it (a legacy hashed name differs from today's).
    let same_principal = target.user_id == caller.user_id && target.sub == caller.sub;
    if same_principal || key(&target) == key(&caller) {
        return Ok((caller, false));
    }
    tracing::info!(
        admin = %identity.user_id,
        admin_sub = identity.sub.as_deref().unwrap_or_default(),
        action,
        instance = id,
        owner = %target.user_id,
        "admin action on another user's instance"
    );
    Ok((target, true))
}

/// The durable owner key of `owner`, when its user id is usable.
fn key(owner: &Owner) -> Option<String> {
    let safe = naming::safe_name(&owner.user_id).ok()?;
    Some(naming::owner_key(owner.sub.as_deref(), &safe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::Code;

    #[test]
    fn cursors_round_trip_and_forged_ones_are_bad_input() {
        let c = cursor("code-server-alice");
        assert!(!c.contains("alice"), "opaque: {c}");
        assert_eq!(decode_cursor(&c).unwrap(), "code-server-alice");
        let forged = [
            String::new(),
            "!!".to_owned(),
            URL_SAFE_NO_PAD.encode("instance:alice"),
            URL_SAFE_NO_PAD.encode("other:code-server-alice"),
            URL_SAFE_NO_PAD.encode("instance:code-server-a/../b"),
            "A".repeat(10_000),
        ];
        for f in forged {
            let error = decode_cursor(&f).unwrap_err();
            assert_eq!(error.code(), Code::BadUserInput, "{f:.20}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None).unwrap(), 20);
        assert_eq!(page_size(Some(100)).unwrap(), 100);
        for bad in [0, -1, 101, i32::MAX] {
            assert_eq!(page_size(Some(bad)).unwrap_err().code(), Code::BadUserInput);
        }
    }
}
