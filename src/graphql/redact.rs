//! Reasons shown to callers come from the cluster (pod statuses, Job logs): they are
//! redacted of URLs and bounded before they leave the service.

/// The longest `extensions.reason`, in bytes.
pub const MAX_REASON_LEN: usize = 1_000;

/// `text` with every URL (`scheme://...` up to the next whitespace, quote or closing bracket) replaced by
/// `<url>`, cut to [`MAX_REASON_LEN`] bytes at a character boundary.
///
/// NB: reasons come from the cluster (pod statuses, Job logs); clone URLs and internal
/// service addresses in them must not reach callers.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_REASON_LEN));
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let head = &rest[..at];
        let scheme_start = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(at, |(i, _)| i);
        out.push_str(&head[..scheme_start]);
        out.push_str("<url>");
        let tail = &rest[at + 3..];
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']')
            })
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    if out.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}
