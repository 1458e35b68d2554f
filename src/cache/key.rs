//! Which cache an `apiVersion/Kind` belongs to, and what is kept of a cached object.

use std::fmt;

use kube::api::ObjectMeta;

/// The annotation `kubectl apply` leaves: a full copy of the object, dropped from caches.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A kind regardless of its version (`networking.istio.io/VirtualService`): the v1 and
/// v1beta1 VirtualServices are one stored object, so they share one cache.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindKey {
    group: String,
    kind: String,
}

impl KindKey {
    /// The key of `api_version` (`v1`, `batch/v1`) and `kind`.
    pub fn of(api_version: &str, kind: &str) -> Self {
        let group = api_version
            .split_once('/')
            .map(|(group, _)| group)
            .unwrap_or("");
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// The key of `apiVersion/Kind` (`v1/Pod`, `networking.istio.io/v1/VirtualService`);
    /// `None` when there is no `/`.
    pub fn parse(full: &str) -> Option<Self> {
        full.rsplit_once('/')
            .map(|(api_version, kind)| Self::of(api_version, kind))
    }
}

impl fmt::Display for KindKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// Drops what a cache need not keep: `managedFields` and the last-applied annotation.
pub fn trim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_a_kind_share_a_key() {
        assert_eq!(
            KindKey::parse("networking.istio.io/v1/VirtualService"),
            Some(KindKey::of("networking.istio.io/v1beta1", "VirtualService"))
        );
        assert_eq!(KindKey::parse("v1/Pod"), Some(KindKey::of("v1", "Pod")));
        assert_ne!(
            KindKey::of("v1", "Pod"),
            KindKey::of("example.com/v1", "Pod")
        );
        assert_eq!(KindKey::parse("Pod"), None);
        assert_eq!(KindKey::of("batch/v1", "Job").to_string(), "Job.batch");
        assert_eq!(KindKey::of("v1", "Pod").to_string(), "Pod");
    }
}
