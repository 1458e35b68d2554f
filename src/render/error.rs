//! What can go wrong loading or rendering templates: problems that name file, object and
//! cause.

use std::{fmt, path::PathBuf};

use crate::values::ValuesError;

/// One problem found while loading or rendering templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The template (or values) file.
    pub file: String,
    /// Line in the template, when known.
    pub line: Option<usize>,
    /// The object (`Kind/name`, or `document N`), when the problem is with one.
    pub object: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with `file` (and, when given, one of the objects it renders).
    pub fn new(file: &str, object: Option<String>, message: String) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            object,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template directory or a file in it could not be read.
    #[error("cannot read templates from {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The inputs of the values are unusable.
    #[error(transparent)]
    Values(#[from] ValuesError),
    /// Templates or rendered objects have problems; each names file, object and cause.
    #[error("{}", display_problems(.0))]
    Problems(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} template problems:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

impl From<Problem> for RenderError {
    fn from(problem: Problem) -> Self {
        Self::Problems(vec![problem])
    }
}

/// `Ok(value)` when nothing was found, else every problem.
pub(super) fn none_or<T>(value: T, problems: Vec<Problem>) -> Result<T, RenderError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(RenderError::Problems(problems))
    }
}

/// A MiniJinja syntax or render error, with the file and line it names.
pub(super) fn template_problem(file: &str, e: &minijinja::Error) -> Problem {
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message = format!("{message}: {detail}");
    }
    Problem {
        file: e.name().unwrap_or(file).to_owned(),
        line: e.line(),
        object: None,
        message,
    }
}

/// Rendered text that is not YAML, quoting the rendered line the parser stopped at.
pub(super) fn yaml_problem(
    file: &str,
    index: usize,
    text: &str,
    e: &serde_yaml_ng::Error,
) -> Problem {
    let mut message = format!("rendered YAML does not parse: {e}");
    if let Some(loc) = e.location()
        && let Some(line) = text.lines().nth(loc.line().saturating_sub(1))
    {
        message.push_str(&format!(
            " (rendered line {}: {:?})",
            loc.line(),
            line.trim()
        ));
    }
    Problem::new(file, Some(format!("document {}", index + 1)), message)
}
