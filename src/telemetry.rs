//! JSON logs through `tracing`, filtered by LOG_LEVEL, and the per-request id.
//!
//! Every HTTP request runs inside [`request_span`], so each log line it causes carries the
//! same `request_id` field. A caller may supply its own id in `X-Request-Id`; it is kept only
//! when it is short and made of safe characters ([`request_id`]), so a client cannot inject
//! text into the logs.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// The header that carries a request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest client-supplied request id that is kept.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Errors raised while setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// LOG_LEVEL is neither a level (`info`) nor a filter directive (`info,kube=warn`).
    #[error("invalid LOG_LEVEL {level:?}")]
    Filter {
        /// The rejected value.
        level: String,
        /// What the filter parser reported.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The log file cannot be opened for appending.
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A global subscriber was already installed in this process.
    #[error("logging is already initialised")]
    AlreadyInitialised(#[source] tracing_subscriber::util::TryInitError),
}

/// Parses LOG_LEVEL (`debug`, `info`, or a full directive such as `info,hyper=warn`).
pub fn filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(level.trim()).map_err(|source| TelemetryError::Filter {
        level: level.to_owned(),
        source,
    })
}

/// Installs the global JSON log subscriber at `level`. Call once, early in `main`.
pub fn init(level: &str) -> Result<(), TelemetryError> {
    let layer = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    tracing_subscriber::registry()
        .with(filter(level)?)
        .with(layer)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialised)
}

/// Installs the global subscriber of the demo: JSON logs at `level` appended to the file
/// `path`, and warnings and errors, short, on stderr, so that stdout holds only what the
/// demo prints for people.
pub fn init_to_file(level: &str, path: &std::path::Path) -> Result<(), TelemetryError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TelemetryError::LogFile {
            path: path.to_owned(),
            source,
        })?;
    let to_file = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_writer(std::sync::Mutex::new(file))
        .with_filter(filter(level)?);
    let to_stderr = fmt::layer()
        .compact()
        .with_writer(std::io::stderr)
        .with_filter(filter("warn,warp::server=off")?);
    tracing_subscriber::registry()
        .with(to_file)
        .with(to_stderr)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialised)
}

/// The id for a request: the client's `X-Request-Id` when it is safe to log, else a new one.
pub fn request_id(supplied: Option<&str>) -> String {
    match supplied {
        Some(id) if is_safe_request_id(id) => id.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The span every log line of one request is recorded under.
pub fn request_span(request_id: &str) -> tracing::Span {
    tracing::info_span!("request", request_id = %request_id)
}

fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Runs a command's `task` on a multi-threaded runtime, with JSON logs at `log_level`
/// when given; the exit status is 0 on success, else 1 after the error chain is printed.
pub fn run_to_exit<E: std::error::Error>(
    log_level: Option<&str>,
    task: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    if let Some(level) = log_level
        && let Err(e) = init(level)
    {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let error = crate::errors::error_chain(&e);
            if log_level.is_some() {
                tracing::error!(%error, "stopped");
            }
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_safe_ids_and_replaces_hostile_ones() {
        assert_eq!(request_id(Some("abc-123_x.y")), "abc-123_x.y");
        for hostile in ["", "a b", "line\nbreak", "{\"json\":1}", &"x".repeat(65)] {
            let id = request_id(Some(hostile));
            assert_ne!(id, hostile);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn parses_levels_and_directives_and_rejects_garbage() {
        assert!(filter("info").is_ok());
        assert!(filter(" debug ").is_ok());
        assert!(filter("info,hyper=warn").is_ok());
        assert!(matches!(
            filter("info,hyper=notalevel"),
            Err(TelemetryError::Filter { .. })
        ));
    }

    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_inside_the_request_span_carry_the_id_as_json() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _entered = request_span("req-42").entered();
            tracing::info!("hello");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["span"]["request_id"], "req-42", "{text}");
        assert_eq!(line["fields"]["message"], "hello");
    }
}
