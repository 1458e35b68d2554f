//! get and list, and the namespace checks every namespaced verb makes.

use bytes::Bytes;
use serde_json::Value;

use crate::resources::{ResId, ResourceDef, def, ids};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Store;
use crate::{Shared, lock};

pub(super) fn check_namespace(
    store: &Store,
    d: &ResourceDef,
    ns: &str,
    creating: Option<&str>,
) -> Result<(), ApiError> {
    if !d.namespaced {
        return Ok(());
    }
    let Some(n) = store.get(ids::NAMESPACES, "", ns) else {
        return Err(ApiError::namespace_not_found(ns));
    };
    if let Some(name) = creating
        && n.value().pointer("/metadata/deletionTimestamp").is_some()
    {
        let mut e = ApiError::bad_request(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
            d.qualified_plural(),
            name,
            ns
        ));
        e.code = 403;
        e.reason = "Forbidden";
        return Err(e);
    }
    Ok(())
}

/// get
pub fn get(sh: &Shared, res: ResId, ns: &str, name: &str) -> Result<Value, ApiError> {
    let store = lock(&sh.store);
    let d = def(res);
    match store.get(res, ns, name) {
        Some(s) => Ok(s.value()),
        None => Err(ApiError::not_found(d, name)),
    }
}

/// A list answer: resourceVersion and the serialized items.
pub struct ListResult {
    /// List resourceVersion.
    pub rv: u64,
    /// Items.
    pub items: Vec<Bytes>,
    /// `metadata.continue` token.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`.
    pub remaining: Option<usize>,
}

/// list
pub fn list(
    sh: &Shared,
    res: ResId,
    ns: Option<&str>,
    ls: &LabelSelector,
    fs: &FieldSelector,
    limit: Option<usize>,
    continue_after: Option<&str>,
) -> ListResult {
    let store = lock(&sh.store);
    let mut items = Vec::new();
    let mut last_key: Option<String> = None;
    let mut remaining = 0usize;
    for (k, s) in store.iter(res, ns) {
        if let Some(after) = continue_after
            && format!("{}/{}", k.1, k.2).as_str() <= after
        {
            continue;
        }
        if !ls.is_empty() && !ls.matches(|key| s.label(key)) {
            continue;
        }
        if !fs.is_empty() {
            if let Some(n) = fs.name()
                && n != k.2
            {
                continue;
            }
            if !fs.matches(&s.value()) {
                continue;
            }
        }
        if limit.is_some_and(|l| items.len() >= l) {
            remaining += 1;
            continue;
        }
        last_key = Some(format!("{}/{}", k.1, k.2));
        items.push(s.bytes.clone());
    }
    let continue_token = if remaining > 0 { last_key } else { None };
    ListResult {
        rv: store.rv(),
        items,
        continue_token,
        remaining: (remaining > 0).then_some(remaining),
    }
}
