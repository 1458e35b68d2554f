//! The object names and host derived from a safe name, and instance ids read back.

use super::{
    INSTANCE_PREFIX, MAX_SAFE_NAME_LEN, NamingError, error::truncate_for_message, is_dns_label,
};

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

/// Name of an instance's git identity Secret: `git-identity-<name>`.
pub fn git_identity_name(safe_name: &str) -> String {
    format!("git-identity-{safe_name}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::*;

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
}
