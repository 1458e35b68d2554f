//! The active template set, swapped atomically when the templates are reloaded.

use std::sync::{Arc, PoisonError, RwLock};

use jiff::Timestamp;

use crate::render::Templates;

/// The active template set, swapped atomically when the templates are reloaded. Readers
/// take an `Arc` to one whole set, so a render never mixes two revisions.
#[derive(Debug)]
pub struct ActiveTemplates {
    current: RwLock<(Arc<Templates>, Timestamp)>,
}

impl ActiveTemplates {
    /// Starts with `templates`, loaded now.
    pub fn new(templates: Templates) -> Self {
        Self {
            current: RwLock::new((Arc::new(templates), Timestamp::now())),
        }
    }

    /// The set in use.
    pub fn get(&self) -> Arc<Templates> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// When the set in use was loaded.
    pub fn loaded_at(&self) -> Timestamp {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// Puts `templates` in use.
    pub fn swap(&self, templates: Templates) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *guard = (Arc::new(templates), Timestamp::now());
    }
}
