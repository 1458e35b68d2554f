//! The lengths names and inputs must keep to.

/// Longest DNS-1123 label, and so longest object name we derive.
pub const MAX_NAME_LEN: usize = 63;
/// Prefix of an instance id; the instance id is also the pod and Service name.
pub const INSTANCE_PREFIX: &str = "code-server-";
/// Longest safe name: the instance id `code-server-<name>` must stay a 63-character label.
pub const MAX_SAFE_NAME_LEN: usize = MAX_NAME_LEN - INSTANCE_PREFIX.len();
/// Longest user id accepted (Keycloak allows 255; anything much longer is abuse).
pub const MAX_USER_ID_LEN: usize = 1024;
/// Longest repository owner or name Gitea accepts.
pub const MAX_REPO_PART_LEN: usize = 100;
/// Longest `sub` an access policy names, in bytes (OIDC's are at most 255 ASCII).
pub const MAX_SUB_LEN: usize = 1024;
