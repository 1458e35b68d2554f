//! How a pod or a Job's pod is to behave, and the annotation that asks for it.

/// How a pod behaves, chosen per pod by the handle, an annotation or an image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodBehaviour {
    /// Pending → init containers → Running and Ready.
    Normal,
    /// Containers wait with ErrImagePull, then ImagePullBackOff (image marker `errimagepull`).
    ErrImagePull,
    /// Containers start, exit 1 and go to CrashLoopBackOff (image marker `crashloop`).
    CrashLoop,
    /// Containers wait with CreateContainerConfigError (image marker `createconfigerror`).
    CreateContainerConfigError,
    /// The first init container exits 1 with git-style error lines in its log
    /// (init image marker `initfail`).
    InitFail,
    /// The scheduler finds no node: PodScheduled False, reason Unschedulable
    /// (image marker `unschedulable`).
    Unschedulable,
    /// Containers run but never become Ready.
    NeverReady,
}

/// How a Job's pod ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobBehaviour {
    /// The pod exits 0 and the Job completes.
    Succeed,
    /// Every pod exits 1 until the backoff limit is reached (image marker `jobfail`).
    Fail,
}

/// Annotation that selects a pod behaviour (`errimagepull`, `crashloop`, `createconfigerror`,
/// `initfail`, `unschedulable`, `neverready`, `jobfail`).
pub const BEHAVIOUR_ANNOTATION: &str = "sim.devplatform.io/behaviour";
