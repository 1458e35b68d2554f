//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's lease lock
//! does it: read the Lease; create it when missing; take it over when its holder let it
//! expire (or renew it when it is ours) with an update carrying the resourceVersion that
//! was read, so that of two replicas racing for it exactly one wins (the other gets 409).
//!
//! The caller passes the time, so that tests can let a lease expire without waiting.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};

/// Why the Lease could not be read or written (a lost race is not an error).
#[derive(Debug, thiserror::Error)]
#[error("{what} Lease {namespace}/{name}")]
pub struct LeaseError {
    what: &'static str,
    namespace: String,
    name: String,
    #[source]
    source: Box<kube::Error>,
}

/// One replica's claim on a named Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish()
    }
}

impl LeaseLock {
    /// A claim by `identity` on Lease `namespace/name`, held for `duration` after each
    /// renewal.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    fn error(&self, what: &'static str, source: kube::Error) -> LeaseError {
        LeaseError {
            what,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        }
    }

    /// Acquires or renews the Lease at `now`. `true` when this replica holds it
    /// afterwards; `false` when another replica holds an unexpired one or won a race.
    pub async fn try_acquire(&self, now: jiff::Timestamp) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error("read", e))?;
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.error("create", e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !expired(spec, now) {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // NB: the update carries the resourceVersion just read: if another replica
        // wrote the Lease in between, the API server answers 409 and nothing changes.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.error("update", e)),
        }
    }
}

/// Whether the holder let the lease run out: its last renewal (or acquisition) plus its
/// duration lies before `now`. A lease without either time counts as expired.
fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renewed.0.as_second().saturating_add(seconds) < now.as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".to_owned()),
            renew_time: Some(MicroTime(jiff::Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration() {
        let at = |s| jiff::Timestamp::from_second(s).unwrap();
        assert!(!expired(&spec(1_000, 30), at(1_030)));
        assert!(expired(&spec(1_000, 30), at(1_031)));
        assert!(expired(&LeaseSpec::default(), at(0)));
    }
}
