//! The small pages and answers the gatekeeper gives a browser or a client.

use http::{HeaderValue, StatusCode, header};
use warp::{Reply, reply::Response};

/// What every gatekeeper page is served with: never cached, framed by nobody, no script.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML page with `status`, a `title` and a `body` that is already HTML.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_forms(status, title, body, None)
}

/// [`page`] whose forms may post to itself, and be redirected to `then` (NB: browsers
/// apply `form-action` to the redirects after a form's submission too).
pub fn page_with_forms(
    status: StatusCode,
    title: &str,
    body: &str,
    then: Option<&str>,
) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}\
         button{{font-size:1em;padding:.4em 1em}}</style></head>\
         <body><h1 id=\"title\">{title}</h1>{body}</body></html>\n",
        title = escape(title),
    );
    let mut response = warp::reply::with_status(warp::reply::html(html), status).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = match then {
        None => HeaderValue::from_static(PAGE_CSP),
        Some(then) => HeaderValue::from_str(
            &PAGE_CSP.replace("form-action 'none'", &format!("form-action 'self' {then}")),
        )
        .unwrap_or_else(|_| HeaderValue::from_static(PAGE_CSP)),
    };
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A paragraph of plain `text`.
pub fn paragraph(text: &str) -> String {
    format!("<p id=\"message\">{}</p>", escape(text))
}

/// The one answer for "not yours" and "not found", so that nobody learns which
/// workspaces exist.
pub fn not_yours() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not yours or not found",
        &paragraph(
            "This workspace is not yours or not found. Open your own workspace from the platform, or ask its owner.",
        ),
    )
}

/// A JSON error answer with `status`, for clients that are not browsers.
pub fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": error, "message": message });
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A redirect (`status`, 302 or 303) to `location` that sets `cookies`.
pub fn redirect(status: StatusCode, location: &str, cookies: &[String]) -> Response {
    let mut response = warp::reply::with_status(warp::reply(), status).into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &paragraph("The address to go back to is not valid."),
            );
        }
    }
    add_cookies(&mut response, cookies);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds a `Set-Cookie` header for each of `cookies`.
pub fn add_cookies(response: &mut Response, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// `text` escaped for HTML text and attribute values (MiniJinja's HTML escaping, the
/// one the templates' own autoescape uses).
pub fn escape(text: &str) -> String {
    minijinja::HtmlEscape(text).to_string()
}
