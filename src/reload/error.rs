//! Why a template set could not be loaded or was refused.

use std::{io, path::PathBuf};

use super::metric::RELOAD_METRIC;
use crate::render::Problem;

/// Why a template set could not be loaded or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read templates from {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The set loads but has problems; each names file, object and cause.
    #[error("{} template problem(s) in {path}", problems.len())]
    Invalid {
        /// The template directory.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The reload counter could not be created or registered.
    #[error("cannot create metric {RELOAD_METRIC}: {0}")]
    Metric(#[source] prometheus::Error),
}

impl ReloadError {
    /// One line per problem, for logs and API answers.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}
