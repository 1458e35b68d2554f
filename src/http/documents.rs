//! Parsed GraphQL documents remembered by their text, with the verdict of the checks that
//! run before authentication (cost, introspection): clients send the same few queries over
//! and over, and parsing is a large share of a small query's cost.
//!
//! Bounded in entries, in the length of each text and in the text of all of them
//! ([`CAPACITY`], [`LONGEST`], [`BUDGET`]): a parsed document is a few hundred bytes per
//! field of its text, so bounding the text bounds the memory, whatever the documents hold.
//! A caller who sends ever-new queries only evicts entries (the queries of others are then
//! parsed again, as without it). Of a refused document only the refusal is kept; documents
//! that do not parse are never remembered.

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
/// The most query text remembered over all entries, in bytes.
pub(super) const BUDGET: usize = 64 * 1_024;

/// A parsed document: refused before authentication, or allowed to go on.
pub(super) enum Parsed {
    /// Why it is refused.
    Refused(ApiError),
    /// The document, cloned into each request that sends its text.
    Allowed(ExecutableDocument),
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
    entries: RwLock<Entries>,
}

/// The remembered documents by their text, and the length of all their texts.
#[derive(Default)]
struct Entries {
    by_text: HashMap<Box<str>, Arc<Parsed>>,
    text_bytes: usize,
}

impl Documents {
    /// None remembered yet; each is checked with `checks`.
    pub(super) fn new(checks: Checks) -> Self {
        Self {
            checks,
            entries: RwLock::new(Entries::default()),
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
            .by_text
            .get(query)
        {
            return Some(parsed.clone());
        }
        let document = parse_query(query).ok()?;
        let parsed = Arc::new(match self.checks.refusal(&document) {
            Some(refusal) => Parsed::Refused(refusal),
            None => Parsed::Allowed(document),
        });
        if query.len() <= LONGEST {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            // NB: another request may have remembered the same text meanwhile.
            if !entries.by_text.contains_key(query) {
                entries.make_room(query.len());
                entries.text_bytes += query.len();
                entries.by_text.insert(query.into(), parsed.clone());
            }
        }
        Some(parsed)
    }

    /// How many documents are remembered, and the length of their texts.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        (entries.by_text.len(), entries.text_bytes)
    }
}

impl Entries {
    /// Evicts entries (any) until one more of `len` bytes fits.
    fn make_room(&mut self, len: usize) {
        while self.by_text.len() >= CAPACITY || self.text_bytes + len > BUDGET {
            let Some(evicted) = self.by_text.keys().next().cloned() else {
                return;
            };
            self.by_text.remove(&evicted);
            self.text_bytes -= evicted.len();
        }
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

    fn refusal(parsed: &Parsed) -> Option<&ApiError> {
        match parsed {
            Parsed::Refused(refusal) => Some(refusal),
            Parsed::Allowed(_) => None,
        }
    }

    #[test]
    fn remembers_a_query_once_and_answers_it_again() {
        let documents = documents();
        let first = documents.get("{ health }").unwrap();
        let again = documents.get("{ health }").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(refusal(&first).is_none());
        assert_eq!(documents.held(), (1, "{ health }".len()));
    }

    #[test]
    fn remembers_refusals_with_their_reason() {
        let documents = documents();
        let introspection = documents.get("{ __schema { types { name } } }").unwrap();
        assert_eq!(
            refusal(&introspection),
            Some(&ApiError::IntrospectionDisabled)
        );
        let many = format!(
            "{{ {} }}",
            (0..11)
                .map(|i| format!("a{i}: health"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let first = documents.get(&many).unwrap();
        assert_eq!(refusal(&first), Some(&ApiError::TooManyRootFields));
        let again = documents.get(&many).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the remembered verdict");
    }

    #[test]
    fn never_remembers_what_does_not_parse_nor_long_texts() {
        let documents = documents();
        assert!(documents.get("{ health").is_none());
        let long = format!("{{ health {} }}", " ".repeat(LONGEST));
        assert!(documents.get(&long).is_some_and(|p| refusal(&p).is_none()));
        assert_eq!(documents.held(), (0, 0));
    }

    #[test]
    fn stays_within_its_bounds_under_ever_new_queries() {
        let documents = documents();
        // Short texts: bounded by the number of entries.
        for i in 0..CAPACITY * 3 {
            assert!(documents.get(&format!("{{ a{i}: health }}")).is_some());
            assert!(documents.held().0 <= CAPACITY);
        }
        assert_eq!(documents.held().0, CAPACITY);
        let newest = format!("{{ a{}: health }}", CAPACITY * 3 - 1);
        let (a, b) = (
            documents.get(&newest).unwrap(),
            documents.get(&newest).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b), "the newest is remembered");
        // Long texts: bounded by their total length.
        let documents = self::documents();
        for i in 0..CAPACITY {
            let query = format!("{{ b{i}: health {} }}", " ".repeat(LONGEST - 30));
            assert!(documents.get(&query).is_some());
            let (_, bytes) = documents.held();
            assert!(bytes <= BUDGET, "{bytes}");
        }
        let (count, bytes) = documents.held();
        assert!(count <= BUDGET / (LONGEST - 30), "{count}");
        assert!(bytes > BUDGET - LONGEST, "{bytes}");
    }
}
