//! Gitea's user accounts: how each was created (its login source and sign-in name) and its
//! flags, and `GET /users/{username}` in Gitea's JSON shape, with the fields only a site
//! admin (or the user themself) may see.

use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use super::repos::{id_of, json_reply, not_found};
use super::state::State;
use crate::lock;

/// The id of the simulated Gitea's OpenID Connect login source (the identity provider):
/// accounts it created carry it as `source_id` and the token's `sub` as `login_name`.
pub const OIDC_SOURCE_ID: i64 = 1;

/// A user account of the simulated Gitea.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// The username (`login`).
    pub login: String,
    /// The login source (`source_id`): 0 for a local account, else the source's id.
    pub source_id: i64,
    /// The sign-in name at the login source (`login_name`): an OAuth2 source's user id
    /// (the OpenID Connect `sub`), empty for a local account.
    pub login_name: String,
    /// The primary email.
    pub email: String,
    /// A site admin.
    pub is_admin: bool,
    /// A restricted user.
    pub restricted: bool,
    /// Activated.
    pub active: bool,
    /// Sign-in prohibited.
    pub prohibit_login: bool,
    /// The email is shown only to site admins and the user themself.
    pub keep_email_private: bool,
}

impl SimUser {
    /// An account created by signing in through the identity provider for the first time,
    /// as the simulated issuer's token for `login` names it: login source
    /// [`OIDC_SOURCE_ID`], `login_name` `sub-<login>`, email `<login>@devplatform.local`.
    pub fn linked(login: &str) -> Self {
        Self {
            login: login.to_owned(),
            source_id: OIDC_SOURCE_ID,
            login_name: format!("sub-{login}"),
            email: format!("{login}@devplatform.local"),
            is_admin: false,
            restricted: false,
            active: true,
            prohibit_login: false,
            keep_email_private: false,
        }
    }

    /// A local account (registered in Gitea itself, or created by its install): no login
    /// source, no sign-in name.
    pub fn local(login: &str) -> Self {
        Self {
            source_id: 0,
            login_name: String::new(),
            ..Self::linked(login)
        }
    }

    /// Sets the sign-in name at the login source.
    pub fn login_name(mut self, login_name: &str) -> Self {
        self.login_name = login_name.to_owned();
        self
    }

    /// Sets the login source.
    pub fn source_id(mut self, source_id: i64) -> Self {
        self.source_id = source_id;
        self
    }

    /// Sets the primary email.
    pub fn email(mut self, email: &str) -> Self {
        self.email = email.to_owned();
        self
    }

    /// Makes the account a site admin.
    pub fn admin(mut self) -> Self {
        self.is_admin = true;
        self
    }

    /// Makes the account restricted.
    pub fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }

    /// Makes the account inactive (not activated, or deactivated).
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    /// Prohibits the account from signing in.
    pub fn prohibit_login(mut self) -> Self {
        self.prohibit_login = true;
        self
    }

    /// Hides the email from everyone but site admins and the user themself.
    pub fn keep_email_private(mut self) -> Self {
        self.keep_email_private = true;
        self
    }
}

/// The account `login` (any case), if Gitea has one.
pub(super) fn find_user(state: &State, login: &str) -> Option<SimUser> {
    lock(&state.users)
        .iter()
        .find(|u| u.login.eq_ignore_ascii_case(login))
        .cloned()
}

/// Adds `user`, replacing an account with the same login (any case).
pub(super) fn put_user(users: &mut Vec<SimUser>, user: SimUser) {
    users.retain(|u| !u.login.eq_ignore_ascii_case(&user.login));
    users.push(user);
}

/// Adds a linked account for `login` unless Gitea already has one (any case).
pub(super) fn ensure_user(users: &mut Vec<SimUser>, login: &str) {
    if !users.iter().any(|u| u.login.eq_ignore_ascii_case(login)) {
        users.push(SimUser::linked(login));
    }
}

/// `GET /users/{username}` as `doer` (after Sudo) asks: 404 for an unknown user; else the
/// user as Gitea's `convert.ToUser` writes it (`services/convert/user.go`): `restricted`
/// for everyone, the email for signed-in callers unless kept private, and `is_admin`,
/// `login_name`, `source_id`, `active`, `prohibit_login` and `language` only for a site
/// admin or the user themself (others read Go's zero values).
pub(super) fn get_user(state: &State, doer: Option<&str>, username: &str) -> Response {
    state
        .user_lookups
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    user_view(state, doer, username)
}

/// `username` as `doer` sees them (see [`get_user`]); also `GET /user` (the doer themself).
pub(super) fn user_view(state: &State, doer: Option<&str>, username: &str) -> Response {
    let Some(user) = find_user(state, username) else {
        return not_found();
    };
    let doer = doer.and_then(|d| find_user(state, d));
    let signed = doer.is_some();
    let authed = doer
        .as_ref()
        .is_some_and(|d| d.is_admin || d.login.eq_ignore_ascii_case(&user.login));
    let placeholder = format!("{}@noreply.127.0.0.1", user.login.to_ascii_lowercase());
    let email = if signed && (!user.keep_email_private || authed) {
        user.email.clone()
    } else {
        placeholder
    };
    json_reply(
        StatusCode::OK,
        &json!({
            "id": id_of(&user.login),
            "login": user.login,
            "username": user.login,
            "login_name": if authed { user.login_name.clone() } else { String::new() },
            "source_id": if authed { user.source_id } else { 0 },
            "full_name": "",
            "email": email,
            "avatar_url": "",
            "html_url": format!("{}/{}", state.base_url, user.login),
            "language": if authed { "en-US" } else { "" },
            "is_admin": authed && user.is_admin,
            "last_login": "2026-01-01T00:00:00Z",
            "created": "2026-01-01T00:00:00Z",
            "restricted": user.restricted,
            "active": authed && user.active,
            "prohibit_login": authed && user.prohibit_login,
            "location": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
        }),
    )
}
