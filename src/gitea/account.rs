//! Whose Gitea account the service may act as: in [`AuthMode::Sudo`] the caller names an
//! account (the token's `preferred_username`), and before any `Sudo` the service reads that
//! account with its admin token and requires that it is provably the caller's.
//!
//! Gitea's admin view of a user (`GET /api/v1/users/{username}` with a site admin's
//! token): `services/convert/user.go` (`toUser`) fills `is_admin`, `login_name`,
//! `source_id`, `active` and `prohibit_login` only when the doer is a site admin or the user
//! themself ("authed"), `restricted` always, and `email` for signed-in doers unless the user
//! keeps it private (a site admin sees it anyway); field names as in
//! `modules/structs/user.go` (`login`, `login_name`, `source_id`, `is_admin`, `restricted`,
//! `active`, `prohibit_login`, `email`).
//!
//! An account Gitea created on a first sign-in through an OAuth2/OpenID Connect login
//! source carries that source as `source_id` and the provider's user id as `login_name`
//! (`routers/web/auth/oauth.go`: `LoginType: auth.OAuth2, LoginSource: authSource.ID,
//! LoginName: gothUser.UserID`; for OpenID Connect, goth's `UserID` is the `sub` claim).
//! Local accounts (self-registered, the install admin) have `source_id` 0 and an empty
//! `login_name`. So the account is the caller's when its `source_id` is the identity
//! provider's source (GITEA_LOGIN_SOURCE_ID, or any non-local source when unset) and its
//! `login_name` is the token's `sub`; or, where the platform links accounts by email
//! (GITEA_LINK_BY=email), when its email is the token's email and the token says that
//! email is verified (`email_verified: true`). A local account linked to the provider
//! afterwards (Gitea's "link account" page keeps the link in `external_login_user`, which
//! the API does not show) can only match by email.
//!
//! Site admins, restricted, inactive and sign-in-prohibited accounts are never acted as.

use serde::Deserialize;

use super::{Caller, GiteaClient, GiteaError, LinkBy};

/// Why the service will not act as the Gitea account a caller names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLinked {
    /// Gitea has no account by that name.
    #[error("gitea has no account named {0:?}")]
    NoAccount(String),
    /// The account is a Gitea site admin.
    #[error("the gitea account {0:?} is a site admin, which the service never acts as")]
    SiteAdmin(String),
    /// The account is restricted.
    #[error("the gitea account {0:?} is restricted")]
    Restricted(String),
    /// The account is not activated, or deactivated.
    #[error("the gitea account {0:?} is inactive")]
    Inactive(String),
    /// The account may not sign in.
    #[error("the gitea account {0:?} is prohibited from signing in")]
    LoginProhibited(String),
    /// The caller has no verified token with a `sub` (e.g. known by forwarded headers).
    #[error("the caller has no token whose subject could link them to a gitea account")]
    NoSubject,
    /// The account was not created by the identity provider's login source.
    #[error("the gitea account {0:?} does not sign in through the identity provider")]
    OtherSource(String),
    /// The account signs in through the identity provider as someone else.
    #[error("the gitea account {0:?} is linked to another identity")]
    OtherSubject(String),
}

/// What Gitea answers about a user; the admin-only fields read as their zero values when
/// the service token is no site admin's, which refuses the account.
#[derive(Debug, Deserialize)]
pub(super) struct ApiUser {
    /// `login`: the username.
    login: String,
    /// `login_name`: the sign-in name at the login source (admin view only).
    #[serde(default)]
    login_name: String,
    /// `source_id`: the login source, 0 for a local account (admin view only).
    #[serde(default)]
    source_id: i64,
    /// `email`: the primary email.
    #[serde(default)]
    email: String,
    /// `is_admin` (admin view only).
    #[serde(default)]
    is_admin: bool,
    /// `restricted`.
    #[serde(default)]
    restricted: bool,
    /// `active` (admin view only).
    #[serde(default)]
    active: bool,
    /// `prohibit_login` (admin view only).
    #[serde(default)]
    prohibit_login: bool,
}

/// What the caller's verified token says about who they are, for matching an account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub(super) struct TokenLink {
    /// `sub`.
    #[serde(default)]
    pub(super) sub: Option<String>,
    /// `email`.
    #[serde(default)]
    pub(super) email: Option<String>,
    /// `email_verified`; anything but JSON `true` is unverified.
    #[serde(default, deserialize_with = "only_true")]
    pub(super) email_verified: bool,
}

fn only_true<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(matches!(
        serde_json::Value::deserialize(deserializer)?,
        serde_json::Value::Bool(true)
    ))
}

impl TokenLink {
    /// The claims of the caller's token. The token was verified by the authenticator
    /// before the caller was known (a [`Caller`] is only made from an authenticated
    /// identity), so its signature is not checked again here. No token, or one that does
    /// not decode, links nothing.
    pub(super) fn of(caller: &Caller<'_>) -> Self {
        caller
            .token
            .and_then(|token| jsonwebtoken::dangerous::insecure_decode::<Self>(token).ok())
            .map(|data| data.claims)
            .map(|link| Self {
                sub: link.sub.filter(|s| !s.is_empty()),
                email: link.email.filter(|e| !e.is_empty()),
                email_verified: link.email_verified,
            })
            .unwrap_or_default()
    }

    /// The verified email, when the token has one.
    pub(super) fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

/// Whether the service may act as `account` for the caller whose token says `link`.
pub(super) fn verdict(
    account: &ApiUser,
    link: &TokenLink,
    link_by: LinkBy,
    login_source: Option<i64>,
) -> Result<(), NotLinked> {
    let login = || account.login.clone();
    if account.is_admin {
        return Err(NotLinked::SiteAdmin(login()));
    }
    if account.restricted {
        return Err(NotLinked::Restricted(login()));
    }
    if !account.active {
        return Err(NotLinked::Inactive(login()));
    }
    if account.prohibit_login {
        return Err(NotLinked::LoginProhibited(login()));
    }
    let from_provider = match login_source {
        Some(id) => account.source_id == id,
        None => account.source_id != 0,
    };
    let by_sub = link.sub.as_deref();
    let sub_matches = from_provider
        && !account.login_name.is_empty()
        && by_sub.is_some_and(|sub| sub == account.login_name);
    if sub_matches {
        return Ok(());
    }
    if link_by == LinkBy::Email
        && let Some(email) = link.verified_email()
        && !account.email.is_empty()
        && account.email.eq_ignore_ascii_case(email)
    {
        return Ok(());
    }
    let nothing_to_match =
        by_sub.is_none() && (link_by == LinkBy::Sub || link.verified_email().is_none());
    Err(if nothing_to_match {
        NotLinked::NoSubject
    } else if !from_provider && link_by == LinkBy::Sub {
        NotLinked::OtherSource(login())
    } else {
        NotLinked::OtherSubject(login())
    })
}

impl GiteaClient {
    /// Reads `username`'s account with the service's token (a site admin's, so Gitea shows
    /// the admin-only fields) and decides whether the caller may be acted as it. One call;
    /// counted.
    pub(super) async fn decide_link(
        &self,
        username: &str,
        link: &TokenLink,
    ) -> Result<Result<(), NotLinked>, GiteaError> {
        let presented = self.as_service()?;
        let url = self.api_url(&["users", username], &[]);
        let result = self.get_json::<ApiUser>(&presented, url).await;
        self.count(&result);
        match result {
            Ok(account) => Ok(verdict(
                &account,
                link,
                self.settings.link_by,
                self.settings.login_source,
            )),
            // NB: service calls answer 401/403 as `ServiceRefused`; what is left is 404.
            Err(GiteaError::AccessDenied) => Ok(Err(NotLinked::NoAccount(username.to_owned()))),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linked(login: &str) -> ApiUser {
        ApiUser {
            login: login.to_owned(),
            login_name: format!("sub-{login}"),
            source_id: 1,
            email: format!("{login}@example.org"),
            is_admin: false,
            restricted: false,
            active: true,
            prohibit_login: false,
        }
    }

    fn token(sub: Option<&str>, email: Option<&str>, verified: bool) -> TokenLink {
        TokenLink {
            sub: sub.map(str::to_owned),
            email: email.map(str::to_owned),
            email_verified: verified,
        }
    }

    #[test]
    fn an_account_of_the_providers_source_with_the_callers_sub_is_theirs() {
        let bob = linked("bob");
        let callers = token(Some("sub-bob"), None, false);
        assert_eq!(verdict(&bob, &callers, LinkBy::Sub, None), Ok(()));
        assert_eq!(verdict(&bob, &callers, LinkBy::Sub, Some(1)), Ok(()));
        assert_eq!(
            verdict(&bob, &callers, LinkBy::Sub, Some(2)),
            Err(NotLinked::OtherSource("bob".into()))
        );
        assert_eq!(
            verdict(
                &bob,
                &token(Some("sub-mallory"), None, false),
                LinkBy::Sub,
                None
            ),
            Err(NotLinked::OtherSubject("bob".into()))
        );
        assert_eq!(
            verdict(&bob, &token(None, None, false), LinkBy::Sub, None),
            Err(NotLinked::NoSubject)
        );
        // A local account with the same sign-in name is not the provider's.
        let local = ApiUser {
            source_id: 0,
            ..linked("bob")
        };
        assert_eq!(
            verdict(&local, &callers, LinkBy::Sub, None),
            Err(NotLinked::OtherSource("bob".into()))
        );
    }

    #[test]
    fn admins_restricted_inactive_and_prohibited_accounts_are_never_theirs() {
        let callers = token(Some("sub-bob"), None, false);
        let cases = [
            (
                ApiUser {
                    is_admin: true,
                    ..linked("bob")
                },
                NotLinked::SiteAdmin("bob".into()),
            ),
            (
                ApiUser {
                    restricted: true,
                    ..linked("bob")
                },
                NotLinked::Restricted("bob".into()),
            ),
            (
                ApiUser {
                    active: false,
                    ..linked("bob")
                },
                NotLinked::Inactive("bob".into()),
            ),
            (
                ApiUser {
                    prohibit_login: true,
                    ..linked("bob")
                },
                NotLinked::LoginProhibited("bob".into()),
            ),
        ];
        for (account, why) in cases {
            assert_eq!(verdict(&account, &callers, LinkBy::Sub, None), Err(why));
        }
    }

    #[test]
    fn by_email_only_a_verified_email_links() {
        let local = ApiUser {
            source_id: 0,
            login_name: String::new(),
            ..linked("bob")
        };
        let verified = token(Some("sub-x"), Some("BOB@example.org"), true);
        assert_eq!(verdict(&local, &verified, LinkBy::Email, None), Ok(()));
        assert!(verdict(&local, &verified, LinkBy::Sub, None).is_err());
        let unverified = token(Some("sub-x"), Some("bob@example.org"), false);
        assert!(verdict(&local, &unverified, LinkBy::Email, None).is_err());
        let other = token(Some("sub-x"), Some("eve@example.org"), true);
        assert!(verdict(&local, &other, LinkBy::Email, None).is_err());
        // The sub link holds in the email mode too.
        let bob = linked("bob");
        assert_eq!(
            verdict(
                &bob,
                &token(Some("sub-bob"), None, false),
                LinkBy::Email,
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn only_json_true_verifies_an_email() {
        for (claim, verified) in [
            ("true", true),
            ("\"true\"", false),
            ("1", false),
            ("false", false),
        ] {
            let json = format!(r#"{{"sub":"s","email":"e@x","email_verified":{claim}}}"#);
            let link: TokenLink = serde_json::from_str(&json).unwrap();
            assert_eq!(link.email_verified, verified, "{claim}");
        }
        let link: TokenLink = serde_json::from_str(r#"{"sub":"s"}"#).unwrap();
        assert!(!link.email_verified);
    }
}
