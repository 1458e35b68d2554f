//! What one GraphQL request may cost, checked on the parsed document before validation or
//! execution start.
//!
//! NB: async-graphql's own validation (its depth and complexity checks among it) expands
//! fragment spreads without memoising them, so a small document of fragments that each
//! spread the next one twice costs 2^levels there. [`check`] therefore runs first, on the
//! parsed document, and counts every spread with its fragment's expanded size computed once
//! per fragment: the whole check is linear in the document, whatever it expands to.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet,
};

use super::error::ApiError;

/// The default largest expanded size of a request (fields, with every fragment spread
/// counted as the fields it expands to, over all operations and fragments).
pub const DEFAULT_MAX_QUERY_SIZE: u64 = 2_000;
/// The default largest number of root fields (aliases included) in one operation.
pub const DEFAULT_MAX_ROOT_FIELDS: u64 = 10;
/// The default largest number of mutations in one request.
pub const DEFAULT_MAX_MUTATIONS: u64 = 3;
/// The most `codeServerLogs` fields in one request (each reads up to 1 MiB of log).
pub const MAX_LOGS_PER_REQUEST: u64 = 1;
/// The most `events` fields in one request, nested anywhere (each lists the events of its
/// instances; the lists of one instance are read once per request however many ask).
pub const MAX_EVENTS_PER_REQUEST: u64 = 3;
/// The deepest nesting of selection sets and fragment spreads the check follows; deeper
/// documents are refused (the schema accepts far less depth anyway).
pub const MAX_NESTING: usize = 64;

/// What one request may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// The largest expanded size (see [`DEFAULT_MAX_QUERY_SIZE`]).
    pub max_size: u64,
    /// The largest number of root fields in one operation.
    pub max_root_fields: u64,
    /// The largest number of mutation fields over the request.
    pub max_mutations: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_QUERY_SIZE,
            max_root_fields: DEFAULT_MAX_ROOT_FIELDS,
            max_mutations: DEFAULT_MAX_MUTATIONS,
        }
    }
}

/// The cost of a document: computed in one pass, each fragment once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCost {
    /// The expanded size over every operation and fragment.
    pub size: u64,
    /// The most root fields of any one operation.
    pub root_fields: u64,
    /// Root fields of mutation operations, over the whole document.
    pub mutations: u64,
    /// Fields that call Kubernetes or Gitea, over the whole document.
    pub calls: Calls,
}

/// The fields of a document that call Kubernetes or Gitea, counted wherever they occur
/// (nested, aliased, in fragments, each spread counted as what it expands to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// `codeServerLogs` fields.
    pub logs: u64,
    /// `events` fields.
    pub events: u64,
}

impl Calls {
    /// The counts of a field named `name`.
    fn of(name: &str) -> Self {
        match name {
            "codeServerLogs" => Self {
                logs: 1,
                ..Self::default()
            },
            "events" => Self {
                events: 1,
                ..Self::default()
            },
            _ => Self::default(),
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            logs: self.logs.saturating_add(other.logs),
            events: self.events.saturating_add(other.events),
        }
    }

    /// The first field over its cap, with the cap.
    fn over(&self) -> Option<Refusal> {
        let caps = [
            ("codeServerLogs", self.logs, MAX_LOGS_PER_REQUEST),
            ("events", self.events, MAX_EVENTS_PER_REQUEST),
        ];
        caps.into_iter()
            .find(|(_, count, max)| count > max)
            .map(|(field, _, max)| Refusal::TooManyCalls { field, max })
    }
}

/// Why a document was refused before any work was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The expanded size is over the limit, or the nesting is too deep, or a fragment spreads
    /// itself.
    TooComplex,
    /// An operation has too many root fields.
    TooManyRootFields,
    /// The request holds too many mutations.
    TooManyMutations,
    /// The request asks for a field that calls Kubernetes or Gitea more often than `max`.
    TooManyCalls {
        /// The field's schema name.
        field: &'static str,
        /// How many the request may hold.
        max: u64,
    },
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::TooComplex => ApiError::QueryTooComplex,
            Refusal::TooManyRootFields => ApiError::TooManyRootFields,
            Refusal::TooManyMutations => ApiError::TooManyMutations,
            Refusal::TooManyCalls { field, max } => ApiError::QueryTooComplex.with_reason(
                &format!("at most {max} `{field}` per request (aliases and fragments count)"),
            ),
        }
    }
}

/// Checks `document` against `limits`; returns its cost when it is within them.
pub fn check(document: &ExecutableDocument, limits: &QueryLimits) -> Result<QueryCost, Refusal> {
    let mut counter = Counter {
        fragments: &document.fragments,
        memo: HashMap::new(),
        max_size: limits.max_size,
    };
    let mut cost = QueryCost::default();
    let operations = match &document.operations {
        DocumentOperations::Single(op) => vec![&op.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node).collect(),
    };
    for operation in operations {
        let part = counter.selection_set(&operation.selection_set.node, 0)?;
        cost.size = cost.size.saturating_add(part.size);
        cost.root_fields = cost.root_fields.max(part.top_fields);
        if operation.ty == OperationType::Mutation {
            cost.mutations = cost.mutations.saturating_add(part.top_fields);
        }
        cost.calls = cost.calls.add(part.calls);
        if cost.size > limits.max_size {
            return Err(Refusal::TooComplex);
        }
    }
    // NB: validation visits every fragment definition, used or not.
    for name in document.fragments.keys() {
        let part = counter.fragment(name.as_str(), 0)?;
        cost.size = cost.size.saturating_add(part.size);
        if cost.size > limits.max_size {
            return Err(Refusal::TooComplex);
        }
    }
    if cost.root_fields > limits.max_root_fields {
        return Err(Refusal::TooManyRootFields);
    }
    if cost.mutations > limits.max_mutations {
        return Err(Refusal::TooManyMutations);
    }
    // NB: only operations count here: a fragment that no operation spreads runs nothing.
    if let Some(refusal) = cost.calls.over() {
        return Err(refusal);
    }
    Ok(cost)
}

/// Whether an operation of `document` asks for `__schema` or `__type` at its root.
///
/// NB: call it only on a document [`check`] accepted: the walk expands fragment spreads,
/// which is bounded (and free of cycles) only then.
pub fn asks_for_introspection(document: &ExecutableDocument) -> bool {
    fn walk(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
        depth <= MAX_NESTING
            && set.items.iter().any(|item| match &item.node {
                Selection::Field(field) => {
                    matches!(field.node.name.node.as_str(), "__schema" | "__type")
                }
                Selection::InlineFragment(inline) => {
                    walk(document, &inline.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| walk(document, &f.node.selection_set.node, depth + 1)),
            })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| walk(document, &op.node.selection_set.node, 0))
}

/// The cost of one selection set: its expanded size, the fields at its top level, and how
/// many levels of selection sets and spreads it nests below itself.
#[derive(Clone, Copy, Debug, Default)]
struct Part {
    size: u64,
    top_fields: u64,
    depth: usize,
    calls: Calls,
}

/// A fragment's cost while it is computed (a spread of it then is a cycle) or once known.
#[derive(Clone, Copy)]
enum Memo {
    InProgress,
    Done(Part),
}

struct Counter<'d> {
    fragments: &'d HashMap<async_graphql::Name, async_graphql::Positioned<FragmentDefinition>>,
    memo: HashMap<&'d str, Memo>,
    max_size: u64,
}

impl<'d> Counter<'d> {
    fn selection_set(&mut self, set: &'d SelectionSet, depth: usize) -> Result<Part, Refusal> {
        if depth > MAX_NESTING {
            return Err(Refusal::TooComplex);
        }
        let mut part = Part::default();
        for item in &set.items {
            let (size, top, below, calls) = match &item.node {
                Selection::Field(field) => {
                    let inner = self.selection_set(&field.node.selection_set.node, depth + 1)?;
                    let calls = inner.calls.add(Calls::of(field.node.name.node.as_str()));
                    (inner.size.saturating_add(1), 1, inner.depth, calls)
                }
                Selection::InlineFragment(inline) => {
                    let inner = self.selection_set(&inline.node.selection_set.node, depth + 1)?;
                    (inner.size, inner.top_fields, inner.depth, inner.calls)
                }
                Selection::FragmentSpread(spread) => {
                    let inner =
                        self.fragment(spread.node.fragment_name.node.as_str(), depth + 1)?;
                    (inner.size, inner.top_fields, inner.depth, inner.calls)
                }
            };
            part.calls = part.calls.add(calls);
            part.depth = part.depth.max(below + 1);
            part.size = part.size.saturating_add(size);
            part.top_fields = part.top_fields.saturating_add(top);
            // NB: stop as soon as the limit is passed, before walking the rest.
            if part.size > self.max_size {
                return Err(Refusal::TooComplex);
            }
        }
        Ok(part)
    }

    fn fragment(&mut self, name: &'d str, depth: usize) -> Result<Part, Refusal> {
        match self.memo.get(name) {
            // NB: a fragment first counted shallow may be spread deep later: its nesting
            // counts from where it is spread now.
            Some(Memo::Done(part)) if depth + part.depth > MAX_NESTING => {
                return Err(Refusal::TooComplex);
            }
            Some(Memo::Done(part)) => return Ok(*part),
            Some(Memo::InProgress) => return Err(Refusal::TooComplex),
            None => {}
        }
        // NB: an unknown fragment costs nothing here; validation refuses it cheaply.
        let Some((key, definition)) = self.fragments.get_key_value(name) else {
            return Ok(Part::default());
        };
        let key = key.as_str();
        self.memo.insert(key, Memo::InProgress);
        let part = self.selection_set(&definition.node.selection_set.node, depth)?;
        self.memo.insert(key, Memo::Done(part));
        Ok(part)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn cost(query: &str) -> Result<QueryCost, Refusal> {
        check(&parse_query(query).unwrap(), &QueryLimits::default())
    }

    #[test]
    fn a_fragment_counted_shallow_still_counts_its_nesting_where_it_is_spread_deep() {
        // `G0` spreads `G1` ... `G100`: a chain 100 deep. Operation A counts every link at
        // depth 2 or 3 first; operation B then spreads the whole chain from `G0`.
        let links = 100;
        let mut query = String::from("query A { myCodeServers { ");
        for k in (0..=links).rev() {
            query.push_str(&format!("...G{k} "));
        }
        query.push_str("} }\nquery B { myCodeServers { ...G0 } }\n");
        for k in 0..links {
            query.push_str(&format!(
                "fragment G{k} on CodeServerInstance {{ ...G{} }}\n",
                k + 1
            ));
        }
        query.push_str(&format!(
            "fragment G{links} on CodeServerInstance {{ id }}\n"
        ));
        assert_eq!(cost(&query), Err(Refusal::TooComplex));
        // The same chain, only as deep as allowed, passes.
        let shallow = "query { myCodeServers { ...G0 } }\n\
            fragment G0 on CodeServerInstance { ...G1 }\n\
            fragment G1 on CodeServerInstance { id }";
        assert!(cost(shallow).is_ok());
    }

    /// Fragments `F0` .. `F{levels}`, each spreading the next twice, under one field.
    fn fragment_bomb(levels: usize) -> String {
        let mut query = String::from("query { myCodeServers { ...F0 } }\n");
        for level in 0..levels {
            let next = level + 1;
            query.push_str(&format!(
                "fragment F{level} on CodeServerInstance {{ id ...F{next} ...F{next} }}\n"
            ));
        }
        query.push_str(&format!(
            "fragment F{levels} on CodeServerInstance {{ id }}\n"
        ));
        query
    }

    #[test]
    fn spreads_count_as_what_they_expand_to() {
        let query = "query { ...A ...A } fragment A on Query { health myCodeServers { id name } }";
        let cost = cost(query).unwrap();
        // Two spreads of 4 fields, plus the fragment definition itself once.
        assert_eq!(cost.size, 4 + 4 + 4);
        assert_eq!(cost.root_fields, 4);
    }

    #[test]
    fn a_fragment_bomb_is_refused_without_expanding_it() {
        assert_eq!(cost(&fragment_bomb(40)), Err(Refusal::TooComplex));
        assert_eq!(cost(&fragment_bomb(300)), Err(Refusal::TooComplex));
        let small = cost(&fragment_bomb(3)).unwrap();
        // The operation: 1 + 15; the fragments: 15 + 7 + 3 + 1.
        assert_eq!(small.size, 16 + 26);
    }

    #[test]
    fn cycles_and_deep_spread_chains_are_refused() {
        assert_eq!(
            cost("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
            Err(Refusal::TooComplex)
        );
        let mut chain = String::from("query { ...F0 }\n");
        for level in 0..200 {
            chain.push_str(&format!(
                "fragment F{level} on Query {{ ...F{} }}\n",
                level + 1
            ));
        }
        chain.push_str("fragment F200 on Query { health }\n");
        assert_eq!(cost(&chain), Err(Refusal::TooComplex));
    }

    #[test]
    fn fields_that_call_out_are_counted_wherever_they_are() {
        let too_many = |field: &'static str, max: u64| Err(Refusal::TooManyCalls { field, max });
        let aliases: String = (0..999)
            .map(|i| format!("e{i}: events {{ reason }} "))
            .collect();
        assert_eq!(
            cost(&format!("{{ myCodeServers {{ {aliases} }} }}")),
            too_many("events", MAX_EVENTS_PER_REQUEST)
        );
        // Through fragments (each spread counts), inline fragments and other root fields.
        let spread = "{ myCodeServers { ...E ...E } codeServer(id: \"x\") { ... { events { reason } } } } \
                      fragment E on CodeServerInstance { a: events { reason } b: events { reason } }";
        assert_eq!(cost(spread), too_many("events", MAX_EVENTS_PER_REQUEST));
        let logs = "{ a: codeServerLogs(id: \"x\") b: codeServerLogs(id: \"x\") }";
        assert_eq!(cost(logs), too_many("codeServerLogs", 1));
        let split = "query A { codeServerLogs(id: \"x\") } query B { codeServerLogs(id: \"x\") }";
        assert_eq!(cost(split), too_many("codeServerLogs", 1));
        let fine = "{ myCodeServers { a: events { reason } b: events { type } } codeServerLogs(id: \"x\") myRepositories { name } }";
        let calls = cost(fine).unwrap().calls;
        assert_eq!((calls.events, calls.logs), (2, 1));
        // A fragment no operation spreads runs nothing.
        let unused = "{ health } fragment U on Query { a: codeServerLogs(id: \"x\") b: codeServerLogs(id: \"x\") }";
        assert!(cost(unused).is_ok());
        let error = ApiError::from(Refusal::TooManyCalls {
            field: "events",
            max: 3,
        });
        assert_eq!(error.code().as_str(), "QUERY_TOO_COMPLEX");
        assert_eq!(error.message(), "query too complex");
    }

    #[test]
    fn aliases_and_mutations_are_counted_at_the_root() {
        let aliases: String = (0..11).map(|i| format!("a{i}: health ")).collect();
        assert_eq!(
            cost(&format!("{{ {aliases} }}")),
            Err(Refusal::TooManyRootFields)
        );
        let inline: String = (0..11)
            .map(|i| format!("... {{ a{i}: health }} "))
            .collect();
        assert_eq!(
            cost(&format!("{{ {inline} }}")),
            Err(Refusal::TooManyRootFields)
        );
        let four = "mutation { a: stopCodeServer(id: \"x\") b: stopCodeServer(id: \"x\") \
                    c: stopCodeServer(id: \"x\") d: stopCodeServer(id: \"x\") }";
        assert_eq!(cost(four), Err(Refusal::TooManyMutations));
        let split = "mutation A { a: stopCodeServer(id: \"x\") b: stopCodeServer(id: \"x\") } \
                     mutation B { c: stopCodeServer(id: \"x\") d: stopCodeServer(id: \"x\") }";
        assert_eq!(cost(split), Err(Refusal::TooManyMutations));
        assert!(cost("mutation { a: stopCodeServer(id: \"x\") }").is_ok());
    }
}
