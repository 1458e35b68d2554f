//! Request accounting and fault injection.

use std::time::Duration;

/// One request, in RBAC terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, `""` for core.
    pub api_group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`, `log`).
    pub subresource: Option<String>,
    /// Namespace, if the request named one.
    pub namespace: Option<String>,
    /// Object name, if the request named one.
    pub name: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`, if given.
    pub field_manager: Option<String>,
}

impl RecordedRequest {
    /// create, update, patch, delete or deletecollection.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// A fault to inject into matching requests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fault {
    /// Only requests with this verb (RBAC verb: get, list, watch, create, update, patch, delete).
    pub verb: Option<String>,
    /// Only requests for this resource plural (`pods`, or `pods/log` for a subresource).
    pub resource: Option<String>,
    /// Status code to answer with; `0` lets the request through (latency only).
    pub status: u16,
    /// Retry-After seconds (header and `details.retryAfterSeconds`).
    pub retry_after: Option<u32>,
    /// Delay before answering.
    pub latency: Option<Duration>,
    /// Only the next N matching requests.
    pub times: Option<usize>,
    /// Only this share (0.0..=1.0) of matching requests, drawn at random.
    pub share: Option<f64>,
}

impl Fault {
    /// Answer matching requests with this status code.
    pub fn status(code: u16) -> Self {
        Fault {
            status: code,
            ..Fault::default()
        }
    }

    /// Delay matching requests.
    pub fn latency(d: Duration) -> Self {
        Fault {
            latency: Some(d),
            ..Fault::default()
        }
    }

    /// Restrict to a verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }

    /// Restrict to a resource plural (`pods`, `pods/log`).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// Set Retry-After.
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Only the next N matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Only a share of matching requests.
    pub fn share(mut self, share: f64) -> Self {
        self.share = Some(share);
        self
    }

    /// Whether a request matches the verb/resource filters.
    pub fn matches(&self, r: &RecordedRequest) -> bool {
        let res = match &r.subresource {
            Some(s) => format!("{}/{}", r.resource, s),
            None => r.resource.clone(),
        };
        self.verb.as_ref().is_none_or(|v| *v == r.verb)
            && self
                .resource
                .as_ref()
                .is_none_or(|want| *want == res || *want == r.resource && r.subresource.is_none())
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultAction {
    /// Delay first.
    pub latency: Option<Duration>,
    /// Then answer with this code (and Retry-After).
    pub status: Option<(u16, Option<u32>)>,
}

/// Pick the action for a request, consuming `times` budgets.
pub fn decide(faults: &mut Vec<Fault>, r: &RecordedRequest) -> FaultAction {
    use rand::Rng;
    let mut action = FaultAction::default();
    for f in faults.iter_mut() {
        if !f.matches(r) || f.times == Some(0) {
            continue;
        }
        if let Some(share) = f.share
            && rand::thread_rng().gen_range(0.0..1.0) >= share
        {
            continue;
        }
        if let Some(n) = f.times.as_mut() {
            *n -= 1;
        }
        if f.latency.is_some() && action.latency.is_none() {
            action.latency = f.latency;
        }
        if f.status != 0 && action.status.is_none() {
            action.status = Some((f.status, f.retry_after));
        }
    }
    faults.retain(|f| f.times != Some(0));
    action
}
