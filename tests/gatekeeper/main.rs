//! The service as the workspace gatekeeper, through the gateway stand-in (Envoy's HTTP
//! external authorization behind one CUSTOM policy, TLS) in front of a code-server
//! stand-in: the check's contract, the login, and the attacks on both. The real browser
//! walks the same path in `browser.rs`.

#[path = "../support/world.rs"]
mod world;

mod attacks;
mod browse;
mod browser;
mod contract;
mod front;
