//! A small simulated Gitea on 127.0.0.1: a few users and repositories, private and public,
//! answering the REST API v1 calls this service makes, in Gitea's JSON shape.
//!
//! The caller is identified as Gitea does: an access token (`Authorization: token <t>` or
//! `Bearer <t>`), [`SERVICE_TOKEN`] being a site admin's; a site admin may act as another
//! user with the `Sudo` header or `sudo` query parameter (an unknown user is 404, anyone
//! else's Sudo 403 "Only administrators allowed to sudo."). For the forwarding mode a
//! bearer JWT checked against the simulated issuer's keys is accepted too. Private
//! repositories answer 404 to anyone but their owner and collaborators, like Gitea. Deploy
//! keys (`/repos/{owner}/{repo}/keys`: add, list, delete) need admin rights on the
//! repository (its owner, or a site admin) and are kept per repository. Faults
//! ([`Fault`]) make it answer 503 or 500 so tests can see retries and outages, and every
//! request is counted so tests can assert that no call was made.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::{Filter, Reply, http::StatusCode, reply::Response};

use super::issuer::Issuer;

/// Gitea's largest page (MAX_RESPONSE_ITEMS).
const MAX_LIMIT: usize = 50;
/// Gitea's default page size.
const DEFAULT_LIMIT: usize = 30;

/// Errors of the simulated Gitea.
#[derive(Debug, thiserror::Error)]
pub enum SimGiteaError {
    /// The listener could not be bound on 127.0.0.1.
    #[error("failed to listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
}

/// A repository in the simulated Gitea.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRepo {
    /// Owner login.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Private repositories are visible only to the owner and collaborators.
    pub private: bool,
    /// Users with push access.
    pub collaborators: Vec<String>,
}

impl SimRepo {
    /// A repository owned by `owner`.
    pub fn new(owner: &str, name: &str, private: bool) -> Self {
        Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            private,
            collaborators: Vec::new(),
        }
    }

    /// Adds collaborators (push and pull).
    pub fn with_collaborators(mut self, users: &[&str]) -> Self {
        self.collaborators = users.iter().map(|u| (*u).to_owned()).collect();
        self
    }
}

/// The demo's users: two developers and an admin.
pub const USERS: [&str; 3] = ["alice", "bob", "admin"];

/// The site admin whose access token the service holds (GITEA_TOKEN).
pub const SERVICE_USER: &str = "gitea-admin";

/// GITEA_TOKEN of the simulated Gitea: an access token of [`SERVICE_USER`], a site admin.
pub const SERVICE_TOKEN: &str = "sim-gitea-service-token";

/// The personal access token of `user` (no site admin) in the simulated Gitea.
pub fn personal_token(user: &str) -> String {
    format!("sim-gitea-pat-{user}")
}

/// The demo's repositories.
pub fn default_repos() -> Vec<SimRepo> {
    vec![
        SimRepo::new("devteam", "backend-api", true).with_collaborators(&["alice", "bob"]),
        SimRepo::new("devteam", "docs", false),
        SimRepo::new("alice", "notes", true),
        SimRepo::new("alice", "dotfiles", false),
        SimRepo::new("bob", "secret-project", true),
        SimRepo::new("admin", "test", false),
    ]
}

/// A failure the simulated Gitea can be told to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Answer every request with 503 (Gitea down behind its proxy).
    Unavailable,
    /// Answer every request with 500.
    InternalError,
    /// Answer the next `n` requests with 500, then normally.
    FailNext(u32),
}

/// A deploy key as the simulated Gitea stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimDeployKey {
    /// Gitea's id.
    pub id: u64,
    /// `owner/name` of the repository.
    pub repo: String,
    /// Title.
    pub title: String,
    /// The public key line as given.
    pub key: String,
    /// Read-only.
    pub read_only: bool,
}

struct State {
    issuer: Arc<Issuer>,
    keys: Mutex<Vec<SimDeployKey>>,
    next_key: AtomicUsize,
    repos: Mutex<Vec<SimRepo>>,
    /// Known users (lowercase logins): the demo's, repository owners and collaborators,
    /// and those added.
    users: Mutex<Vec<String>>,
    fault: Mutex<Fault>,
    requests: AtomicUsize,
    base_url: String,
}

/// A running simulated Gitea; the server stops when this is dropped.
pub struct SimGitea {
    addr: SocketAddr,
    state: Arc<State>,
    _shutdown: oneshot::Sender<()>,
}

impl SimGitea {
    /// Starts with [`default_repos`], trusting tokens from `issuer`.
    pub async fn start(issuer: Arc<Issuer>) -> Result<Self, SimGiteaError> {
        Self::start_with(issuer, default_repos()).await
    }

    /// Starts with `repos`, trusting tokens from `issuer`.
    pub async fn start_with(
        issuer: Arc<Issuer>,
        repos: Vec<SimRepo>,
    ) -> Result<Self, SimGiteaError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(SimGiteaError::Bind)?;
        let addr = listener.local_addr().map_err(SimGiteaError::Bind)?;
        let mut users: Vec<String> = USERS.iter().map(|u| (*u).to_owned()).collect();
        users.push(SERVICE_USER.to_owned());
        for repo in &repos {
            users.push(repo.owner.clone());
            users.extend(repo.collaborators.iter().cloned());
        }
        let state = Arc::new(State {
            issuer,
            keys: Mutex::new(Vec::new()),
            next_key: AtomicUsize::new(1),
            users: Mutex::new(users),
            repos: Mutex::new(repos),
            fault: Mutex::new(Fault::None),
            requests: AtomicUsize::new(0),
            base_url: format!("http://{addr}"),
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = warp::serve(routes(state.clone()))
            .incoming(listener)
            .graceful(async {
                let _dropped = stopped.await;
            });
        tokio::spawn(server.run());
        Ok(Self {
            addr,
            state,
            _shutdown: shutdown,
        })
    }

    /// The base URL (GITEA_SERVICE_URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes the server fail as `fault` says.
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.state.fault) = fault;
    }

    /// Adds a repository (its owner and collaborators become known users).
    pub fn add_repo(&self, repo: SimRepo) {
        {
            let mut users = lock(&self.state.users);
            users.push(repo.owner.clone());
            users.extend(repo.collaborators.iter().cloned());
        }
        lock(&self.state.repos).push(repo);
    }

    /// Adds a user (as signing in through the identity provider for the first time does).
    pub fn add_user(&self, login: &str) {
        lock(&self.state.users).push(login.to_owned());
    }

    /// Removes `user` from the collaborators of `owner/name` (access revoked).
    pub fn remove_collaborator(&self, owner: &str, name: &str, user: &str) {
        for repo in lock(&self.state.repos).iter_mut() {
            if repo.owner == owner && repo.name == name {
                repo.collaborators.retain(|c| c != user);
            }
        }
    }

    /// Every deploy key, of every repository.
    pub fn deploy_keys(&self) -> Vec<SimDeployKey> {
        lock(&self.state.keys).clone()
    }

    /// How many requests were received, faulty answers included.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn routes(state: Arc<State>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("sudo"))
        .and(warp::query::<HashMap<String, String>>())
        .map(
            |authorization, sudo: Option<String>, query: HashMap<String, String>| Auth {
                authorization,
                sudo: query
                    .get("sudo")
                    .cloned()
                    .filter(|s| !s.is_empty())
                    .or(sudo),
                query,
            },
        );
    let repo = warp::get()
        .and(warp::path!("api" / "v1" / "repos" / String / String))
        .and(state.clone())
        .and(auth)
        .map(|owner: String, name: String, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                get_repo(&state, user, &owner, &name)
            })
        });
    let user_repos = warp::get()
        .and(warp::path!("api" / "v1" / "user" / "repos"))
        .and(state.clone())
        .and(auth)
        .map(|state: Arc<State>, auth| {
            respond(&state, auth, |user, query| list_repos(&state, user, query))
        });
    let search = warp::get()
        .and(warp::path!("api" / "v1" / "repos" / "search"))
        .and(warp::query::<HashMap<String, String>>())
        .and(state.clone())
        .and(auth)
        .map(|query: HashMap<String, String>, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| search_repos(&state, user, &query))
        });
    let me = warp::get()
        .and(warp::path!("api" / "v1" / "user"))
        .and(state.clone())
        .and(auth)
        .map(|state: Arc<State>, auth| {
            respond(&state, auth, |user, _| match user {
                Some(user) => json_reply(StatusCode::OK, &user_json(&user)),
                None => unauthorized(),
            })
        });
    let add_key = warp::post()
        .and(warp::path!(
            "api" / "v1" / "repos" / String / String / "keys"
        ))
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::json::<Value>())
        .and(state.clone())
        .and(auth)
        .map(
            |owner: String, name: String, body: Value, state: Arc<State>, auth| {
                respond(&state, auth, |user, _| {
                    with_admin_repo(&state, user.as_deref(), &owner, &name, |full| {
                        add_deploy_key(&state, full, &body)
                    })
                })
            },
        );
    let list_keys = warp::get()
        .and(warp::path!(
            "api" / "v1" / "repos" / String / String / "keys"
        ))
        .and(state.clone())
        .and(auth)
        .map(|owner: String, name: String, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                with_admin_repo(&state, user.as_deref(), &owner, &name, |full| {
                    let keys: Vec<Value> = lock(&state.keys)
                        .iter()
                        .filter(|k| k.repo == full)
                        .map(|k| deploy_key_json(&state, k))
                        .collect();
                    json_reply(StatusCode::OK, &Value::Array(keys))
                })
            })
        });
    let delete_key = warp::delete()
        .and(warp::path!(
            "api" / "v1" / "repos" / String / String / "keys" / u64
        ))
        .and(state.clone())
        .and(auth)
        .map(
            |owner: String, name: String, id: u64, state: Arc<State>, auth| {
                respond(&state, auth, |user, _| {
                    with_admin_repo(&state, user.as_deref(), &owner, &name, |full| {
                        let mut keys = lock(&state.keys);
                        let before = keys.len();
                        keys.retain(|k| !(k.id == id && k.repo == full));
                        if keys.len() == before {
                            not_found()
                        } else {
                            warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT)
                                .into_response()
                        }
                    })
                })
            },
        );
    let fallback = warp::any().and(state).map(|state: Arc<State>| {
        state.requests.fetch_add(1, Ordering::SeqCst);
        not_found()
    });
    search
        .or(repo)
        .unify()
        .or(user_repos)
        .unify()
        .or(add_key)
        .unify()
        .or(list_keys)
        .unify()
        .or(delete_key)
        .unify()
        .or(me)
        .unify()
        .or(fallback)
        .unify()
}

/// What a request says about its caller.
#[derive(Clone)]
struct Auth {
    authorization: Option<String>,
    sudo: Option<String>,
    query: HashMap<String, String>,
}

/// Counts the request, applies the fault, identifies the caller (Sudo applied) and runs
/// `handler` with the caller and the query.
fn respond(
    state: &State,
    auth: Auth,
    handler: impl FnOnce(Option<String>, &HashMap<String, String>) -> Response,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let failing = {
        let mut fault = lock(&state.fault);
        match *fault {
            Fault::None => None,
            Fault::Unavailable => Some(StatusCode::SERVICE_UNAVAILABLE),
            Fault::InternalError => Some(StatusCode::INTERNAL_SERVER_ERROR),
            Fault::FailNext(n) => {
                *fault = if n <= 1 {
                    Fault::None
                } else {
                    Fault::FailNext(n - 1)
                };
                Some(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
    if let Some(status) = failing {
        return json_reply(status, &json!({"message": "simulated failure"}));
    }
    let doer = match auth.authorization.as_deref().map(|v| identify(state, v)) {
        None => None,
        Some(Some(doer)) => Some(doer),
        Some(None) => return unauthorized(),
    };
    let user = match (auth.sudo, doer) {
        (None, doer) => doer.map(|d| d.login),
        (Some(target), Some(Doer { admin: true, .. })) => {
            let known = lock(&state.users)
                .iter()
                .find(|u| u.eq_ignore_ascii_case(&target))
                .cloned();
            match known {
                Some(login) => Some(login),
                None => return not_found(),
            }
        }
        (Some(_), _) => {
            return json_reply(
                StatusCode::FORBIDDEN,
                &json!({"message": "Only administrators allowed to sudo."}),
            );
        }
    };
    handler(user, &auth.query)
}

/// The signed-in user of a request.
struct Doer {
    login: String,
    admin: bool,
}

/// The user an `Authorization` value signs in, or `None` when it signs in nobody (401):
/// an access token (`token` or `Bearer` scheme), else a bearer JWT from the issuer.
fn identify(state: &State, value: &str) -> Option<Doer> {
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "token" | "bearer") {
        return None;
    }
    if credential == SERVICE_TOKEN {
        return Some(Doer {
            login: SERVICE_USER.to_owned(),
            admin: true,
        });
    }
    if let Some(login) = credential.strip_prefix("sim-gitea-pat-") {
        let known = lock(&state.users).iter().any(|u| u == login);
        return known.then(|| Doer {
            login: login.to_owned(),
            admin: false,
        });
    }
    if scheme != "bearer" {
        return None;
    }
    state.issuer.verify(credential).ok().map(|claims| Doer {
        login: claims.preferred_username,
        admin: false,
    })
}

/// Runs `handler` with the repository's `owner/name` when `user` may administer it (its
/// owner or a site admin); 401 without a user, 404 when it is invisible to them, 403
/// when visible but not theirs to administer.
fn with_admin_repo(
    state: &State,
    user: Option<&str>,
    owner: &str,
    name: &str,
    handler: impl FnOnce(&str) -> Response,
) -> Response {
    let Some(user) = user else {
        return unauthorized();
    };
    let full = {
        let repos = lock(&state.repos);
        let found = repos
            .iter()
            .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name));
        match found {
            Some(repo) if user == SERVICE_USER || repo.owner == user => {
                format!("{}/{}", repo.owner, repo.name)
            }
            Some(repo) if permissions(repo, Some(user)).is_some() => {
                return json_reply(
                    StatusCode::FORBIDDEN,
                    &json!({"message": "token does not have at least one of required scope(s)"}),
                );
            }
            _ => return not_found(),
        }
    };
    handler(&full)
}

/// `POST /repos/{owner}/{repo}/keys`: 201 with the key; 422 for a missing title, a key
/// that is not an OpenSSH public key line, or a key the repository already has.
fn add_deploy_key(state: &State, full: &str, body: &Value) -> Response {
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let key = body
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let read_only = body
        .get("read_only")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let unprocessable = |message: &str| {
        json_reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": message, "url": ""}),
        )
    };
    if title.is_empty() {
        return unprocessable("[Title]: Required");
    }
    let mut parts = key.split(' ');
    let parsed = matches!(
        (parts.next(), parts.next()),
        (Some("ssh-ed25519" | "ssh-rsa" | "ecdsa-sha2-nistp256"), Some(b)) if !b.is_empty()
    );
    if !parsed {
        return unprocessable("Invalid key content");
    }
    let mut keys = lock(&state.keys);
    let content = |k: &str| k.split(' ').take(2).collect::<Vec<_>>().join(" ");
    if keys
        .iter()
        .any(|k| k.repo == full && content(&k.key) == content(key))
    {
        return unprocessable("Key content has been used as non-deploy key");
    }
    let id = state.next_key.fetch_add(1, Ordering::SeqCst) as u64;
    let stored = SimDeployKey {
        id,
        repo: full.to_owned(),
        title: title.to_owned(),
        key: key.to_owned(),
        read_only,
    };
    let body = deploy_key_json(state, &stored);
    keys.push(stored);
    json_reply(StatusCode::CREATED, &body)
}

fn deploy_key_json(state: &State, key: &SimDeployKey) -> Value {
    json!({
        "id": key.id,
        "key_id": key.id,
        "key": key.key,
        "url": format!("{}/api/v1/repos/{}/keys/{}", state.base_url, key.repo, key.id),
        "title": key.title,
        "fingerprint": format!("SHA256:{}", id_of(&key.key)),
        "created_at": "2026-01-01T00:00:00Z",
        "read_only": key.read_only,
    })
}

fn get_repo(state: &State, user: Option<String>, owner: &str, name: &str) -> Response {
    let repos = lock(&state.repos);
    let found = repos
        .iter()
        .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name));
    match found.and_then(|repo| {
        permissions(repo, user.as_deref()).map(|perms| repo_json(state, repo, perms))
    }) {
        Some(body) => json_reply(StatusCode::OK, &body),
        None => not_found(),
    }
}

/// `page` and `limit` of a list request, as Gitea reads them.
fn paging(query: &HashMap<String, String>) -> (usize, usize) {
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    (page, limit)
}

/// `GET /repos/search`: every repository the caller may see (public ones, and private
/// ones they own or collaborate on; only public ones anonymously), as
/// `{"ok": true, "data": [...]}` with `X-Total-Count`, like Gitea.
fn search_repos(state: &State, user: Option<String>, query: &HashMap<String, String>) -> Response {
    let (page, limit) = paging(query);
    let repos = lock(&state.repos);
    let visible: Vec<Value> = repos
        .iter()
        .filter_map(|r| permissions(r, user.as_deref()).map(|p| repo_json(state, r, p)))
        .collect();
    let total = visible.len();
    let data: Vec<Value> = visible
        .into_iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .collect();
    let mut response = json_reply(StatusCode::OK, &json!({"ok": true, "data": data}));
    if let Ok(value) = total.to_string().parse() {
        response.headers_mut().insert("x-total-count", value);
    }
    response
}

fn list_repos(state: &State, user: Option<String>, query: &HashMap<String, String>) -> Response {
    let Some(user) = user else {
        return unauthorized();
    };
    let (page, limit) = paging(query);
    let repos = lock(&state.repos);
    let mine: Vec<Value> = repos
        .iter()
        .filter(|r| r.owner == user || r.collaborators.contains(&user))
        .filter_map(|r| permissions(r, Some(&user)).map(|p| repo_json(state, r, p)))
        .collect();
    let total = mine.len();
    let body: Vec<Value> = mine
        .into_iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .collect();
    let mut response = json_reply(StatusCode::OK, &Value::Array(body));
    if let Ok(value) = total.to_string().parse() {
        response.headers_mut().insert("x-total-count", value);
    }
    response
}

/// `(admin, push, pull)` of `user` on `repo`, or `None` when the repository is invisible.
fn permissions(repo: &SimRepo, user: Option<&str>) -> Option<(bool, bool, bool)> {
    match user {
        Some(user) if repo.owner == user => Some((true, true, true)),
        Some(user) if repo.collaborators.iter().any(|c| c == user) => Some((false, true, true)),
        _ if !repo.private => Some((false, false, true)),
        _ => None,
    }
}

fn repo_json(state: &State, repo: &SimRepo, (admin, push, pull): (bool, bool, bool)) -> Value {
    let full_name = format!("{}/{}", repo.owner, repo.name);
    json!({
        "id": id_of(&full_name),
        "owner": user_json(&repo.owner),
        "name": repo.name,
        "full_name": full_name,
        "description": "",
        "empty": false,
        "private": repo.private,
        "fork": false,
        "html_url": format!("{}/{full_name}", state.base_url),
        "ssh_url": format!("git@127.0.0.1:{full_name}.git"),
        "clone_url": format!("{}/{full_name}.git", state.base_url),
        "default_branch": "main",
        "permissions": {"admin": admin, "push": push, "pull": pull},
    })
}

fn user_json(login: &str) -> Value {
    json!({
        "id": id_of(login),
        "login": login,
        "username": login,
        "full_name": "",
        "email": format!("{login}@devplatform.local"),
    })
}

fn id_of(text: &str) -> u64 {
    text.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn not_found() -> Response {
    json_reply(
        StatusCode::NOT_FOUND,
        &json!({"errors": [], "message": "The target couldn't be found.", "url": ""}),
    )
}

fn unauthorized() -> Response {
    json_reply(
        StatusCode::UNAUTHORIZED,
        &json!({"message": "token is required", "url": ""}),
    )
}
