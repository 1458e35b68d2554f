//! Label and field selectors in the API server's string syntax.

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`
    Eq(String, String),
    /// `k!=v` (also matches objects without the label)
    NotEq(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)` (also matches objects without the label)
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Parse `a=b,c in (d,e),!f`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches<'a, I>(&self, labels: I) -> bool
    where
        I: Fn(&str) -> Option<&'a str>,
    {
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => labels(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => labels(k) != Some(v.as_str()),
            Requirement::In(k, vs) => labels(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !labels(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => labels(k).is_some(),
            Requirement::NotExists(k) => labels(k).is_none(),
        })
    }

    /// Match against a map.
    #[cfg(test)]
    pub fn matches_map(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.matches(|k| labels.get(k).map(String::as_str))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(k) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(k.trim())?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEq(
            check_key(k.trim())?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(Requirement::Eq(check_key(k.trim())?, v.trim().to_string()));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(Requirement::Eq(check_key(k.trim())?, v.trim().to_string()));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = part.find(op) {
            let key = check_key(part[..idx].trim())?;
            let rest = part[idx + op.len()..].trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: found '{rest}', expected: '('")
                })?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            return Ok(if notin {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    Ok(Requirement::Exists(check_key(part)?))
}

fn check_key(k: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key \"{k}\""
        ))
    }
}

/// A field selector: `metadata.name=x`, `metadata.namespace!=y`, `status.phase=Running`, ...
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse, refusing fields the real server does not index for the resource.
    pub fn parse(s: &str, plural: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            let allowed = matches!(field, "metadata.name" | "metadata.namespace")
                || (plural == "pods"
                    && matches!(
                        field,
                        "status.phase" | "spec.nodeName" | "spec.restartPolicy" | "status.podIP"
                    ))
                || (plural == "secrets" && field == "type")
                || (plural == "jobs" && field == "status.successful")
                // NB: the core/v1 Event fields the real server indexes.
                || (plural == "events"
                    && matches!(
                        field,
                        "involvedObject.kind"
                            | "involvedObject.namespace"
                            | "involvedObject.name"
                            | "involvedObject.uid"
                            | "involvedObject.apiVersion"
                            | "involvedObject.resourceVersion"
                            | "involvedObject.fieldPath"
                            | "reason"
                            | "reportingComponent"
                            | "type"
                    ));
            if !allowed {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether an object matches.
    pub fn matches(&self, obj: &serde_json::Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let mut cur = obj;
            for seg in field.split('.') {
                cur = &cur[seg];
            }
            let have = match cur {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *eq
        })
    }

    /// The name an equality on `metadata.name` pins, if any.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web,db)",
            "app notin (db)",
            "app",
            "!missing",
            "app=web,tier in (front)",
            "missing!=x",
            "missing notin (x)",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches_map(&l), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "app notin (web)",
            "missing",
            "!app",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches_map(&l), "{s}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(LabelSelector::parse("a b=c").is_err());
        assert!(FieldSelector::parse("spec.foo=x", "services").is_err());
        assert!(FieldSelector::parse("metadata.name=x", "services").is_ok());
    }
}
