//! Routing of Gitea's REST API v1 paths, identifying the caller and applying faults.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
};

use serde_json::{Value, json};
use warp::{Filter, Reply, http::StatusCode, reply::Response};

use super::repos::*;
use super::state::*;
use super::user_keys;
use super::users::{find_user, get_user, user_view};
use crate::lock;

pub(super) fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
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
    let user = warp::get()
        .and(warp::path!("api" / "v1" / "users" / String))
        .and(state.clone())
        .and(auth)
        .map(|username: String, state: Arc<State>, auth| {
            respond(&state, auth, |doer, _| {
                get_user(&state, doer.as_deref(), &username)
            })
        });
    let me = warp::get()
        .and(warp::path!("api" / "v1" / "user"))
        .and(state.clone())
        .and(auth)
        .map(|state: Arc<State>, auth| {
            respond(&state, auth, |user, _| match user {
                Some(user) => user_view(&state, Some(&user), &user),
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
                        user_keys::deploy_key_conflict(&state, &body)
                            .unwrap_or_else(|| add_deploy_key(&state, full, &body))
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
    let list_user_keys = warp::get()
        .and(warp::path!("api" / "v1" / "user" / "keys"))
        .and(state.clone())
        .and(auth)
        .map(|state: Arc<State>, auth| {
            respond(&state, auth, |user, query| {
                user_keys::list_keys(&state, user, query)
            })
        });
    let add_user_key = warp::post()
        .and(warp::path!("api" / "v1" / "user" / "keys"))
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::json::<Value>())
        .and(state.clone())
        .and(auth)
        .map(|body: Value, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                user_keys::add_own_key(&state, user, &body)
            })
        });
    let get_user_key = warp::get()
        .and(warp::path!("api" / "v1" / "user" / "keys" / u64))
        .and(state.clone())
        .and(auth)
        .map(|id: u64, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| user_keys::get_key(&state, user, id))
        });
    let delete_user_key = warp::delete()
        .and(warp::path!("api" / "v1" / "user" / "keys" / u64))
        .and(state.clone())
        .and(auth)
        .map(|id: u64, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                user_keys::delete_own_key(&state, user, id)
            })
        });
    let admin_add_user_key = warp::post()
        .and(warp::path!(
            "api" / "v1" / "admin" / "users" / String / "keys"
        ))
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::json::<Value>())
        .and(state.clone())
        .and(auth)
        .map(|username: String, body: Value, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                user_keys::admin_add_key(&state, user, &username, &body)
            })
        });
    let admin_delete_user_key = warp::delete()
        .and(warp::path!(
            "api" / "v1" / "admin" / "users" / String / "keys" / u64
        ))
        .and(state.clone())
        .and(auth)
        .map(|username: String, id: u64, state: Arc<State>, auth| {
            respond(&state, auth, |user, _| {
                user_keys::admin_delete_key(&state, user, &username, id)
            })
        });
    // NB: boxed, so the chain's type stays small enough to compile quickly.
    let user_key_routes = list_user_keys
        .or(add_user_key)
        .unify()
        .or(get_user_key)
        .unify()
        .or(delete_user_key)
        .unify()
        .or(admin_add_user_key)
        .unify()
        .or(admin_delete_user_key)
        .unify()
        .boxed();
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
        .or(user_key_routes)
        .unify()
        .or(me)
        .unify()
        .or(user)
        .unify()
        .or(fallback)
        .unify()
}

/// What a request says about its caller.
#[derive(Clone)]
pub(super) struct Auth {
    pub(super) authorization: Option<String>,
    pub(super) sudo: Option<String>,
    pub(super) query: HashMap<String, String>,
}

/// Counts the request, applies the fault, identifies the caller (Sudo applied) and runs
/// `handler` with the caller and the query.
pub(super) fn respond(
    state: &State,
    auth: Auth,
    handler: impl FnOnce(Option<String>, &HashMap<String, String>) -> Response,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let failing = {
        let mut fault = lock(&state.fault);
        match *fault {
            GiteaFault::None => None,
            GiteaFault::Unavailable => Some(StatusCode::SERVICE_UNAVAILABLE),
            GiteaFault::InternalError => Some(StatusCode::INTERNAL_SERVER_ERROR),
            GiteaFault::FailNext(n) => {
                *fault = if n <= 1 {
                    GiteaFault::None
                } else {
                    GiteaFault::FailNext(n - 1)
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
        (Some(target), Some(Doer { admin: true, .. })) => match find_user(state, &target) {
            Some(user) => {
                lock(&state.sudos).push(user.login.clone());
                Some(user.login)
            }
            None => return not_found(),
        },
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
pub(super) struct Doer {
    pub(super) login: String,
    pub(super) admin: bool,
}

/// The user an `Authorization` value signs in, or `None` when it signs in nobody (401):
/// an access token (`token` or `Bearer` scheme), else a bearer JWT from the issuer.
pub(super) fn identify(state: &State, value: &str) -> Option<Doer> {
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
        return find_user(state, login)
            .filter(|u| u.login == login)
            .map(|u| Doer {
                login: u.login,
                admin: u.is_admin,
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
pub(super) fn with_admin_repo(
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
