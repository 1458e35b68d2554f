//! A simulated Kubernetes API server on loopback, for tests and the `sim`/`demo` commands.
//!
//! It speaks the part of the Kubernetes REST API this service uses closely enough that the
//! real `kube` client and `kubectl` work against it unchanged: CRUD, server-side apply with
//! `managedFields`, merge and JSON patches, selectors, watches, Status bodies, validation
//! and defaulting, and a pod/job/PVC lifecycle standing in for the scheduler, kubelet and
//! controllers. Tests get a handle to seed and read objects, count requests and inject
//! faults.
//!
//! Beside it, [`gitea`] simulates Gitea's REST API and [`issuer`] the token side of
//! Keycloak (a JWKS and minted tokens), so that the whole service runs on 127.0.0.1.
//!
//! ```text
//! let sim = Sim::start().await?;                       // 127.0.0.1, a free port
//! let pods: Api<Pod> = Api::namespaced(sim.client(), "codeserver-instances");
//! sim.inject(Fault::status(500).verb("patch").times(1));
//! sim.set_pod_behaviour("code-server-alice", PodBehaviour::CrashLoop);
//! ... run the code under test ...
//! assert!(sim.writes().is_empty());                     // e.g. "made no writes"
//! assert_eq!(sim.count("patch", "pods"), 1);
//! ```
//!
//! Failure modes can also be asked for in the manifest itself: an image containing
//! `errimagepull`, `crashloop`, `createconfigerror` or `unschedulable`, an init container
//! image containing `initfail`, a job container image containing `jobfail`, or the
//! annotation `sim.devplatform.io/behaviour` with one of those words (or `neverready`).
//!
//! Custom resources (the Istio kinds) are pruned and validated against their CRD's
//! `openAPIV3Schema` (types, formats, `required`, `enum`), Service ports as upstream
//! `ValidateService` checks them.
//!
//! Known differences from a real API server: no authentication or RBAC enforcement; request
//! bodies in protobuf (what kubectl sends for built-in kinds) or CBOR are refused with 415
//! UnsupportedMediaType instead of decoded; services have no endpoints; `follow` logs carry
//! no new lines; CRD schemas are checked without CEL rules (`x-kubernetes-validations`),
//! `oneOf`/`anyOf`/`not`, patterns or numeric and length limits; and a watch can only resume
//! from the last 2048 changes (older resourceVersions get 410 Expired, as after etcd
//! compaction).

// NB: ApiError mirrors a Status body; errors are the rare path, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod admission;
mod apply;
pub mod codeserver;
mod command;
mod crd;
mod defaults;
mod discovery;
mod faults;
mod fields;
pub mod gateway;
pub mod gitea;
mod handle;
pub mod heartbeat;
mod hooks;
mod http;
pub mod issuer;
mod lifecycle;
mod meta;
pub mod oidc;
mod ops;
mod options;
mod prune;
mod quantity;
mod reply;
mod resources;
mod selector;
mod shared;
mod status;
mod store;
mod validate;

pub use command::{serve_command, start_command};
pub use faults::{Fault, RecordedRequest};
pub use handle::Sim;
pub use lifecycle::{BEHAVIOUR_ANNOTATION, JobBehaviour, PodBehaviour};
pub use options::{GracePeriod, SimError, SimOptions};
pub(crate) use shared::{Shared, lock};
pub use status::{ApiError, Cause};
