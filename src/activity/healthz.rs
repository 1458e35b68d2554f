//! Asking code-server's `/healthz` when it last saw its user. The pod answering belongs to
//! its user: no redirects are followed, and time and size are bounded.

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

/// The largest `/healthz` answer read; code-server's is under 100 bytes.
const MAX_HEALTHZ_BYTES: usize = 4096;
/// How long one `/healthz` request may take.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(5);

/// The default HEALTHZ_URL: the instance Service's cluster DNS name (the Service's port
/// 80 targets code-server's port).
pub const DEFAULT_HEALTHZ_URL: &str = "http://{service}.{namespace}.svc.cluster.local/healthz";

/// Checks a HEALTHZ_URL template: only `{service}` and `{namespace}` placeholders, the
/// former required, and an http(s) URL once they are filled in.
pub fn healthz_url(template: &str) -> Result<String, String> {
    if !template.contains("{service}") {
        return Err("must contain {service}".to_owned());
    }
    let filled = fill(template, "code-server-x", "ns");
    if filled.contains('{') || filled.contains('}') {
        return Err("only {service} and {namespace} may be used as placeholders".to_owned());
    }
    match url::Url::parse(&filled) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(template.to_owned())
        }
        _ => Err("must be an http(s) URL".to_owned()),
    }
}

pub(super) fn fill(template: &str, service: &str, namespace: &str) -> String {
    template
        .replace("{service}", service)
        .replace("{namespace}", namespace)
}

/// What code-server's `/healthz` answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// `alive` or `expired`.
    pub status: String,
    /// Last activity, Unix milliseconds; 0 when there was none since code-server started.
    pub last_heartbeat: i64,
}

impl Heartbeat {
    /// The last activity, if any, never later than `now` (the pod is the user's: it may
    /// claim anything).
    pub fn at(&self, now: Timestamp) -> Option<Timestamp> {
        if self.last_heartbeat <= 0 {
            return None;
        }
        // NB: a value past the end of time is a claim in the future as well.
        let at = Timestamp::from_millisecond(self.last_heartbeat).unwrap_or(Timestamp::MAX);
        Some(at.min(now))
    }
}

/// The client that asks `/healthz`: every request on a connection of its own, which the
/// client closes once the answer is read.
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    // NB: code-server counts ANY open TCP connection as use. Its Heart
    // (src/node/heart.ts in coder/code-server) re-checks every 60 s whether it is active,
    // and src/node/routes/index.ts answers that with `app.server.getConnections`,
    // `count > 0`; only the `/healthz` *request* is kept from calling `heart.beat()`. A
    // pooled keep-alive connection to `/healthz` would thus be the poller's own "use":
    // once used, an instance would beat on every check and never go idle. So no idle
    // connection is kept (`pool_max_idle_per_host(0)`) and each request asks for
    // `Connection: close`.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONNECTION,
        reqwest::header::HeaderValue::from_static("close"),
    );
    // NB: never follow a redirect (it could point anywhere the service can reach).
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HEALTHZ_TIMEOUT)
        .pool_max_idle_per_host(0)
        .default_headers(headers)
        .build()
}

/// What the `/healthz` of `service` in `namespace` answers, asked at the URL `template`.
pub(super) async fn heartbeat(
    http: &reqwest::Client,
    template: &str,
    service: &str,
    namespace: &str,
) -> Result<Heartbeat, String> {
    let url = fill(template, service, namespace);
    let mut response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        // NB: dropping an unread answer ends its connection (it is never pooled).
        drop(response);
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_HEALTHZ_BYTES {
            drop(response);
            return Err(format!(
                "GET {url}: answer larger than {MAX_HEALTHZ_BYTES} bytes"
            ));
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not a /healthz answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_heartbeat_from_the_future_counts_as_now() {
        let h = Heartbeat {
            status: "alive".to_owned(),
            last_heartbeat: i64::MAX / 2,
        };
        assert_eq!(h.at(at(100)), Some(at(100)));
        let never = Heartbeat {
            status: "expired".to_owned(),
            last_heartbeat: 0,
        };
        assert_eq!(never.at(at(100)), None);
    }

    #[test]
    fn healthz_urls_are_checked() {
        assert!(healthz_url(DEFAULT_HEALTHZ_URL).is_ok());
        assert!(healthz_url("http://127.0.0.1:1/{namespace}/{service}/healthz").is_ok());
        assert!(healthz_url("http://fixed/healthz").is_err());
        assert!(healthz_url("http://{service}/{user}").is_err());
        assert!(healthz_url("file:///{service}").is_err());
    }
}
