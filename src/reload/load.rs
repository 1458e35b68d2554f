//! Loading a template set as the service may use it: validated as `validate-templates`
//! does, and the content hash of a directory that tells when to load again.

use std::{
    io,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::{ActiveTemplates, ReloadError};
use crate::{
    render::{self, Problem, RenderError, Templates},
    values::InstanceSettings,
};

/// Loads the set in `dir` (the built-in set when `None`) and validates it as
/// `validate-templates` does: every template renders for every sample user. Its warnings
/// (a template that still renders the retired per-instance access policy) are logged.
pub fn load_validated(
    dir: Option<&Path>,
    settings: &InstanceSettings,
) -> Result<Templates, ReloadError> {
    let path = dir.map_or_else(|| PathBuf::from("built-in templates"), Path::to_owned);
    let loaded = Templates::load(dir).and_then(|t| t.with_values_files(&settings.values_files));
    let templates = loaded.map_err(|e| match e {
        RenderError::Io { path, source } => ReloadError::Io { path, source },
        RenderError::Problems(problems) => ReloadError::Invalid {
            path: path.clone(),
            problems,
        },
        other @ RenderError::Values(_) => ReloadError::Invalid {
            path: path.clone(),
            problems: vec![Problem::new(render::VALUES_FILE, None, other.to_string())],
        },
    })?;
    let problems = render::validate(&templates, settings);
    if !problems.is_empty() {
        return Err(ReloadError::Invalid { path, problems });
    }
    // NB: a set is loaded once per revision (at start, then on each change), so each
    // warning is logged once per revision, not once per render.
    for warning in render::warnings(&templates, settings) {
        tracing::warn!(
            template = %warning.file,
            revision = templates.revision(),
            "{}",
            warning.message
        );
    }
    Ok(templates)
}

/// A content hash of the visible files of `dir`, following the ConfigMap symlinks.
///
/// NB: hidden names (`..data`, `..2026_11_27_...`) are skipped, as `Templates::load_dir`
/// skips them; the visible names are symlinks into them, so a swap changes the hash.
pub fn fingerprint(dir: &Path) -> io::Result<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    let mut hash = Sha256::new();
    for name in names {
        let path = dir.join(&name);
        // NB: `metadata` follows symlinks; a dangling one (mid-swap) is an error and the
        // caller retries on the next tick.
        if !std::fs::metadata(&path)?.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Loads and validates the configured set (TEMPLATES_DIR, else the built-in one) as the
/// active set. A service must not start on a broken set: the caller reports the error
/// (every problem is in [`ReloadError::messages`]) and exits.
pub fn load_active(settings: &InstanceSettings) -> Result<ActiveTemplates, ReloadError> {
    load_validated(settings.templates_dir.as_deref(), settings).map(ActiveTemplates::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn the_fingerprint_follows_content_and_ignores_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "a.yaml.j2", "one");
        let first = fingerprint(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("..2026_11_27")).unwrap();
        file(dir.path(), ".hidden", "x");
        assert_eq!(fingerprint(dir.path()).unwrap(), first);
        file(dir.path(), "a.yaml.j2", "two");
        assert_ne!(fingerprint(dir.path()).unwrap(), first);
        // A file name moving content to another name is a change too.
        let dir2 = tempfile::tempdir().unwrap();
        file(dir2.path(), "b.yaml.j2", "one");
        assert_ne!(fingerprint(dir2.path()).unwrap(), first);
    }
}
