//! Label and annotation keys, and the field manager: the names this service marks its
//! objects with.

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
/// The workspace profile the instance uses, kept on the PVC when values.yaml declares
/// profiles (absent: the default profile).
pub const ANNOTATION_PROFILE: &str = "devplatform.io/profile";
/// Label on a sync Job's pod naming the instance it syncs.
pub const LABEL_SYNC_OF: &str = "devplatform.io/sync-of";
/// Hash of the rendered pod spec, like a Deployment's pod-template-hash.
pub const ANNOTATION_SPEC_HASH: &str = "devplatform.io/spec-hash";
/// On pods: digest of what the pod was rendered from (template revision, the service's
/// settings, the owner, the repositories and the recorded profile), so that a read can tell a pod rendered from
/// the current ones without rendering.
pub const ANNOTATION_RENDERED_FROM: &str = "devplatform.io/rendered-from";
/// Revision (content hash) of the template set that rendered the object.
pub const ANNOTATION_TEMPLATE_REVISION: &str = "devplatform.io/template-revision";
