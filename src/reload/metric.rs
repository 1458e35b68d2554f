//! The reload counter's name and labels.

/// Name of the counter of reload attempts, labelled by `result`.
pub const RELOAD_METRIC: &str = "codeserver_templates_reload_total";
/// `result` of a reload that replaced the active set.
pub const RESULT_OK: &str = "ok";
/// `result` of a reload that was refused (unreadable or invalid templates).
pub const RESULT_ERROR: &str = "error";
