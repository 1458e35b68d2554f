//! The plan's steps: what to do with each object, and how a plan reads for people.

use std::fmt;

use kube::api::DynamicObject;

/// What to do with one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Not live: apply creates it.
    Create,
    /// Live but different in fields we own: apply patches it in place.
    Update {
        /// The RFC 6902 patch from the live object (projected) to the desired one.
        patch: json_patch::Patch,
    },
    /// Live and equal in every field we own: no request at all.
    Unchanged,
    /// A pod whose rendered spec changed: it must be deleted and created again, which
    /// the reconciler does only where that is safe (stopped, or the caller asked).
    Recreate {
        /// Spec hash of the live pod.
        live_hash: String,
        /// Spec hash of the rendered pod.
        desired_hash: String,
    },
    /// Labelled ours but no longer rendered: deleted.
    Prune,
}

impl Action {
    /// The action's name as `plan` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "update",
            Action::Unchanged => "unchanged",
            Action::Recreate { .. } => "recreate",
            Action::Prune => "prune",
        }
    }
}

/// One object's step.
#[derive(Debug, Clone)]
pub struct Step {
    /// `Kind/name`.
    pub object: String,
    /// The kind.
    pub kind: String,
    /// The object's apiVersion.
    pub api_version: String,
    /// The name.
    pub name: String,
    /// The object's namespace (the instances namespace, or the gateway's for the access
    /// policy); empty when the object names none.
    pub namespace: String,
    /// What to do.
    pub action: Action,
    /// The rendered object (absent for prune).
    pub desired: Option<DynamicObject>,
    /// Things the plan held back, for people to read (e.g. a PVC is never shrunk).
    pub notes: Vec<String>,
}

/// The plan of one instance.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Steps in render order, then prunes.
    pub steps: Vec<Step>,
}

impl Plan {
    /// True when nothing would change.
    pub fn is_unchanged(&self) -> bool {
        self.steps.iter().all(|s| s.action == Action::Unchanged)
    }

    /// The number of steps with `action`'s name.
    pub fn count(&self, action: &str) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action.name() == action)
            .count()
    }
}

impl fmt::Display for Plan {
    /// One line per object, `<action> <Kind>/<name>`, the JSON patch indented under updates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{} {}", step.action.name(), step.object)?;
            match &step.action {
                Action::Update { patch } => {
                    let text = serde_json::to_string_pretty(patch).map_err(|_| fmt::Error)?;
                    for line in text.lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
                Action::Recreate {
                    live_hash,
                    desired_hash,
                } => {
                    writeln!(
                        f,
                        "    pod spec changed ({live_hash} -> {desired_hash}); applied when the instance is next started"
                    )?;
                }
                _ => {}
            }
            for note in &step.notes {
                writeln!(f, "    note: {note}")?;
            }
        }
        Ok(())
    }
}
