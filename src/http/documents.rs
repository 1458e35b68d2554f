//! Parsed GraphQL documents remembered by their text, with the verdict of the checks that
//! run before authentication (cost, introspection): clients send the same few queries over
//! and over, and parsing is a large share of a small query's cost.
//!
//! Bounded in entries and in the length of the text remembered, so a caller who sends
//! ever-new queries costs at most [`CAPACITY`] documents of at most [`LONGEST`] bytes each,
//! and only evicts entries (the queries of others are then parsed again, as without it).
//! Documents that do not parse are never remembered.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use async_graphql::parser::{parse_query, types::ExecutableDocument};

use crate::graphql::{ApiError, limits};

/// The most documents remembered.
pub(super) const CAPACITY: usize = 256;
/// The longest query text remembered, in bytes.
pub(super) const LONGEST: usize = 2_048;

/// A parsed document and whether it may run.
pub(super) struct Parsed {
    /// The document, cloned into each request that sends its text.
    pub(super) document: ExecutableDocument,
    /// Why it is refused before authentication, if it is.
    pub(super) refused: Option<ApiError>,
}

/// What the checks before authentication allow.
#[derive(Clone, Copy)]
pub(super) struct Checks {
    /// The cost limits.
    pub(super) limits: limits::QueryLimits,
    /// Whether introspection is served.
    pub(super) introspection: bool,
}

impl Checks {
    /// Why `document` is refused, if it is.
    fn refusal(&self, document: &ExecutableDocument) -> Option<ApiError> {
        if let Err(refusal) = limits::check(document, &self.limits) {
            tracing::info!(?refusal, "GraphQL request refused by its cost");
            return Some(ApiError::from(refusal));
        }
        if !self.introspection && limits::asks_for_introspection(document) {
            return Some(ApiError::IntrospectionDisabled);
        }
        None
    }
}

/// The remembered documents.
pub(super) struct Documents {
    checks: Checks,
    entries: RwLock<HashMap<Box<str>, Arc<Parsed>>>,
}

impl Documents {
    /// None remembered yet; each is checked with `checks`.
    pub(super) fn new(checks: Checks) -> Self {
        Self {
            checks,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// `query` parsed and checked: remembered, or parsed now (and remembered when short
    /// enough). `None` when it does not parse: execution then answers the parse error.
    pub(super) fn get(&self, query: &str) -> Option<Arc<Parsed>> {
        // NB: the lock is never held across a panic point; should it be poisoned anyway,
        // the map is still whole, so go on with it.
        if let Some(parsed) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query)
        {
            return Some(parsed.clone());
        }
        let document = parse_query(query).ok()?;
        let refused = self.checks.refusal(&document);
        let parsed = Arc::new(Parsed { document, refused });
        if query.len() <= LONGEST {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= CAPACITY
                && let Some(evicted) = entries.keys().next().cloned()
            {
                entries.remove(&evicted);
            }
            entries.insert(query.into(), parsed.clone());
        }
        Some(parsed)
    }

    /// How many documents are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents() -> Documents {
        Documents::new(Checks {
            limits: limits::QueryLimits::default(),
            introspection: false,
        })
    }

    #[test]
    fn remembers_a_query_once_and_answers_it_again() {
        let documents = documents();
        let first = documents.get("{ health }").unwrap();
        let again = documents.get("{ health }").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(first.refused.is_none());
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn remembers_refusals_with_their_reason() {
        let documents = documents();
        let introspection = documents.get("{ __schema { types { name } } }").unwrap();
        assert_eq!(introspection.refused, Some(ApiError::IntrospectionDisabled));
        let many = format!(
            "{{ {} }}",
            (0..11)
                .map(|i| format!("a{i}: health"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let refused = documents.get(&many).unwrap();
        assert_eq!(refused.refused, Some(ApiError::TooManyRootFields));
        // NB: the remembered verdict, not a fresh one.
        assert_eq!(
            documents.get(&many).unwrap().refused,
            Some(ApiError::TooManyRootFields)
        );
    }

    #[test]
    fn never_remembers_what_does_not_parse_nor_long_texts() {
        let documents = documents();
        assert!(documents.get("{ health").is_none());
        let long = format!("{{ health {} }}", " ".repeat(LONGEST));
        assert!(documents.get(&long).is_some_and(|p| p.refused.is_none()));
        assert_eq!(documents.len(), 0);
    }

    #[test]
    fn stays_within_its_capacity_under_ever_new_queries() {
        let documents = documents();
        for i in 0..CAPACITY * 3 {
            let query = format!("{{ a{i}: health }}");
            assert!(documents.get(&query).is_some());
            assert!(documents.len() <= CAPACITY);
        }
        assert_eq!(documents.len(), CAPACITY);
        // The newest is always remembered.
        let newest = format!("{{ a{}: health }}", CAPACITY * 3 - 1);
        let (a, b) = (
            documents.get(&newest).unwrap(),
            documents.get(&newest).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
    }
}
