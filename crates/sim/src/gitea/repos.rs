//! Repositories, their listings and deploy keys, in Gitea's JSON shape.

use std::{collections::HashMap, sync::atomic::Ordering};

use serde_json::{Value, json};
use warp::{Reply, http::StatusCode, reply::Response};

use super::state::*;
use crate::lock;

/// `POST /repos/{owner}/{repo}/keys`: 201 with the key; 422 for a missing title, a key
/// that is not an OpenSSH public key line, or a key the repository already has.
pub(super) fn add_deploy_key(state: &State, full: &str, body: &Value) -> Response {
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

pub(super) fn deploy_key_json(state: &State, key: &SimDeployKey) -> Value {
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

pub(super) fn get_repo(state: &State, user: Option<String>, owner: &str, name: &str) -> Response {
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
pub(super) fn paging(query: &HashMap<String, String>) -> (usize, usize) {
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
pub(super) fn search_repos(
    state: &State,
    user: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
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

pub(super) fn list_repos(
    state: &State,
    user: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
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
pub(super) fn permissions(repo: &SimRepo, user: Option<&str>) -> Option<(bool, bool, bool)> {
    match user {
        Some(user) if repo.owner == user => Some((true, true, true)),
        Some(user) if repo.collaborators.iter().any(|c| c == user) => Some((false, true, true)),
        _ if !repo.private => Some((false, false, true)),
        _ => None,
    }
}

pub(super) fn repo_json(
    state: &State,
    repo: &SimRepo,
    (admin, push, pull): (bool, bool, bool),
) -> Value {
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

pub(super) fn user_json(login: &str) -> Value {
    json!({
        "id": id_of(login),
        "login": login,
        "username": login,
        "full_name": "",
        "email": format!("{login}@devplatform.local"),
    })
}

pub(super) fn id_of(text: &str) -> u64 {
    text.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000
}

pub(super) fn json_reply(status: StatusCode, body: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

pub(super) fn not_found() -> Response {
    json_reply(
        StatusCode::NOT_FOUND,
        &json!({"errors": [], "message": "The target couldn't be found.", "url": ""}),
    )
}

pub(super) fn unauthorized() -> Response {
    json_reply(
        StatusCode::UNAUTHORIZED,
        &json!({"message": "token is required", "url": ""}),
    )
}
