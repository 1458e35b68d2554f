//! A stand-in for code-server behind the gateway: plain HTTP/1.1 on 127.0.0.1, answering
//! every method and path with a small HTML page that names the workspace it was asked for
//! (from the Host header) and the path, and remembering the last requests it received, so
//! tests can check what reached the workspace (e.g. that no cookie or Authorization header
//! did).
//!
//! The page:
//!
//! ```text
//! <title>code-server</title>
//! <h1 id="workspace">Workspace code-alice</h1>   (the Host's first label, port dropped)
//! <p id="host">code-alice.devplatform.test:8443</p>
//! <p id="path">/some/path?q=1</p>
//! ```

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

/// How many requests [`CodeServer::requests`] keeps (the most recent).
pub const MAX_RECORDED: usize = 100;

/// One request that reached the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The Host header (empty when there was none).
    pub host: String,
    /// The request target's path and query.
    pub path: String,
    /// Every header, names lower-case, in the order received (values lossily UTF-8).
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The values of a header (name compared ignoring case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }
}

/// Errors starting the stand-in.
#[derive(Debug, thiserror::Error)]
pub enum CodeServerError {
    /// The listener could not be bound on 127.0.0.1.
    #[error("failed to listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
}

type Recorded = Arc<Mutex<VecDeque<RecordedRequest>>>;

/// A running code-server stand-in. Dropping it stops it.
#[derive(Debug)]
pub struct CodeServer {
    addr: SocketAddr,
    recorded: Recorded,
    /// Dropped with the server: its tasks wait on it.
    _shutdown: watch::Sender<()>,
}

impl CodeServer {
    /// Binds a free port on 127.0.0.1 and starts serving.
    pub async fn start() -> Result<CodeServer, CodeServerError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(CodeServerError::Bind)?;
        let addr = listener.local_addr().map_err(CodeServerError::Bind)?;
        let recorded: Recorded = Arc::new(Mutex::new(VecDeque::new()));
        let (shutdown, rx) = watch::channel(());
        tokio::spawn(accept_loop(listener, recorded.clone(), rx));
        Ok(CodeServer {
            addr,
            recorded,
            _shutdown: shutdown,
        })
    }

    /// Where it listens (plain HTTP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last requests received (at most [`MAX_RECORDED`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).iter().cloned().collect()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.recorded).clear();
    }
}

fn lock(recorded: &Recorded) -> MutexGuard<'_, VecDeque<RecordedRequest>> {
    // NB: a panic while holding the lock leaves plain data; keep serving.
    recorded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, recorded: Recorded, mut shutdown: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let recorded = recorded.clone();
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let recorded = recorded.clone();
                        async move { Ok::<_, Infallible>(answer(&recorded, req)) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
        }
    }
}

fn answer(recorded: &Recorded, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let page = page(&host, &path);
    {
        let mut recorded = lock(recorded);
        if recorded.len() == MAX_RECORDED {
            recorded.pop_front();
        }
        recorded.push_back(RecordedRequest {
            host,
            path,
            headers,
        });
    }
    let mut response = Response::new(Full::new(Bytes::from(page)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The workspace a Host names: its first DNS label, without the port.
fn workspace_name(host: &str) -> &str {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.split('.').next().unwrap_or(host)
}

fn page(host: &str, path: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>code-server</title></head>\n<body>\n<h1 id=\"workspace\">Workspace {}</h1>\n<p id=\"host\">{}</p>\n<p id=\"path\">{}</p>\n</body>\n</html>\n",
        crate::oidc::escape(workspace_name(host)),
        crate::oidc::escape(host),
        crate::oidc::escape(path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_workspace_host_and_path() {
        let p = page("code-alice.devplatform.test:8443", "/x?a=<b>");
        assert!(p.contains("<title>code-server</title>"));
        assert!(p.contains("<h1 id=\"workspace\">Workspace code-alice</h1>"));
        assert!(p.contains("<p id=\"host\">code-alice.devplatform.test:8443</p>"));
        assert!(p.contains("<p id=\"path\">/x?a=&lt;b&gt;</p>"));
        assert_eq!(workspace_name("code-bob"), "code-bob");
    }
}
