//! A browser in miniature for the HTTP-level tests: a cookie jar per host that keeps what
//! `Set-Cookie` says (host-only cookies, `Max-Age=0` removes), and one step of a
//! navigation at a time, so each answer of the flow can be looked at.

use std::collections::BTreeMap;

use reqwest::{Response, header};

use crate::front::Front;

/// Cookies by host (lowercase, no port), then by name.
#[derive(Default, Clone)]
pub struct Jar(pub BTreeMap<String, BTreeMap<String, String>>);

impl Jar {
    /// Keeps the cookies `response` sets for `url`'s host.
    pub fn keep(&mut self, url: &str, response: &Response) {
        let host = host_of(url);
        for value in response.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let cookie = cookie::Cookie::parse(text.to_owned()).unwrap();
            let removes = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative());
            let cookies = self.0.entry(host.clone()).or_default();
            if removes {
                cookies.remove(cookie.name());
            } else {
                cookies.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }

    /// The `Cookie` header for `url`, if any cookie applies.
    pub fn header(&self, url: &str) -> Option<String> {
        let cookies = self.0.get(&host_of(url))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The value of cookie `name` of `host`.
    pub fn get(&self, host: &str, name: &str) -> Option<&String> {
        self.0.get(host)?.get(name)
    }

    /// The name and value of `host`'s first cookie whose name starts with `prefix`.
    pub fn get_prefixed(&self, host: &str, prefix: &str) -> Option<(String, String)> {
        self.0
            .get(host)?
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(n, v)| (n.clone(), v.clone()))
    }

    /// Sets cookie `name` of `host`.
    pub fn set(&mut self, host: &str, name: &str, value: &str) {
        self.0
            .entry(host.to_owned())
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }
}

/// The host of `url`, lowercase, without the port.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_ascii_lowercase()
}

/// `Location` of a redirect.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location in {response:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// One navigation step: GET `url` as a browser does (Accept: text/html), with the jar's
/// cookies; the jar keeps what the answer sets.
pub async fn navigate(front: &Front, jar: &mut Jar, url: &str) -> Response {
    let mut request = front
        .client
        .get(url)
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
    if let Some(cookies) = jar.header(url) {
        request = request.header(header::COOKIE, cookies);
    }
    let response = request.send().await.unwrap();
    jar.keep(url, &response);
    response
}

/// Follows redirects from `url` with [`navigate`] until an answer that is not one; the
/// URLs visited, and that answer. Posts the simulated issuer's login form as `user` when
/// the flow reaches it.
pub async fn follow(
    front: &Front,
    jar: &mut Jar,
    url: &str,
    user: &str,
) -> (Vec<String>, Response) {
    let mut visited = vec![url.to_owned()];
    let mut next = url.to_owned();
    for _ in 0..12 {
        let response = if next.starts_with(&front.issuer.issuer_url()) && next.contains("/auth?") {
            login_at_issuer(front, &next, user).await
        } else {
            navigate(front, jar, &next).await
        };
        if !response.status().is_redirection() {
            return (visited, response);
        }
        next = location(&response);
        visited.push(next.clone());
    }
    panic!("too many redirects: {visited:#?}");
}

/// The issuer's login page for `url`, answered by choosing `user` (its form's POST).
pub async fn login_at_issuer(front: &Front, url: &str, user: &str) -> Response {
    let page = front.client.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the issuer's login page");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("login-{user}")), "{html}");
    let query: Vec<(String, String)> = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .chain([("username".to_owned(), user.to_owned())])
        .collect();
    let action = url.split('?').next().unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    front
        .client
        .post(action)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}
