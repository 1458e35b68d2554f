//! Users' own SSH keys (Gitea's user keys, not deploy keys): added and removed as the
//! caller, or removed by the service with its site admin token.
//!
//! Gitea's API (`routers/api/v1/user/key.go`, `routers/api/v1/admin/user.go`,
//! `modules/structs/user_key.go`): `POST /user/keys` with a `CreateKeyOption` answers 201
//! with the `PublicKey` (422 for a missing title, a key Gitea cannot read, or a key already
//! registered as anyone's user or deploy key); `DELETE /user/keys/{id}` answers 204, 404 for
//! an unknown id and 403 "You do not have access to this key" for someone else's key;
//! `DELETE /admin/users/{username}/keys/{id}` (site admins only) deletes as that user, so
//! 404 for an unknown user or key and 403 for another user's key. `GET /user/keys/{id}`
//! shows any key, with `key_type` only to its owner and site admins.

use serde::Deserialize;

use super::{Caller, GiteaClient, GiteaError, client::Presented};
use crate::naming::validate_repo_part;

/// An SSH key of a Gitea user (Gitea's `PublicKey`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct UserKey {
    /// Gitea's id of the key (for deleting it).
    pub id: u64,
    /// The OpenSSH fingerprint (`SHA256:...`).
    #[serde(default)]
    pub fingerprint: String,
    /// The key's title.
    #[serde(default)]
    pub title: String,
    /// When the key was added (RFC 3339), as Gitea says.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What `GET /user/keys/{id}` says about who may see a key's private fields.
#[derive(Deserialize)]
struct ApiKeyVisibility {
    /// `key_type`: shown only to the key's owner and site admins.
    #[serde(default)]
    key_type: String,
}

impl GiteaClient {
    /// Adds `public_key` (an OpenSSH public key line) titled `title` to the caller's own
    /// keys, as the caller. Not retried: a repeated POST would add the key twice, which
    /// Gitea refuses (422, as [`GiteaError::UnexpectedStatus`], like a missing title or a
    /// key Gitea cannot read).
    pub async fn add_user_key(
        &self,
        caller: &Caller<'_>,
        title: &str,
        public_key: &str,
    ) -> Result<UserKey, GiteaError> {
        let presented = self.as_caller(caller).await?;
        let url = self.api_url(&["user", "keys"], &[]);
        let path = url.path().to_owned();
        // NB: `read_only` is for deploy keys; Gitea gives user keys write access anyway.
        let body = serde_json::json!({"title": title, "key": public_key});
        let response = self
            .send(&presented, reqwest::Method::POST, url, Some(&body), 1)
            .await;
        let result = match response {
            Ok(response) => response
                .json::<UserKey>()
                .await
                .map_err(|source| GiteaError::Decode { path, source }),
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// Deletes the caller's key `id`, as the caller. A key already gone is no error; a key
    /// that is someone else's is [`GiteaError::AccessDenied`].
    pub async fn remove_user_key(&self, caller: &Caller<'_>, id: u64) -> Result<(), GiteaError> {
        let presented = self.as_caller(caller).await?;
        let id = id.to_string();
        let url = self.api_url(&["user", "keys", &id], &[]);
        let attempts = self.settings.attempts;
        let deleted = self
            .send(&presented, reqwest::Method::DELETE, url, None, attempts)
            .await;
        let result = match deleted {
            Ok(_) => Ok(()),
            // NB: the client reads Gitea's 404 (gone) and 403 (someone else's key) alike,
            // and in sudo mode 403 as a refused Sudo: asking after the key tells them apart.
            Err(GiteaError::AccessDenied | GiteaError::SudoRefused) => {
                match self.user_key_gone(&presented, &id).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(GiteaError::AccessDenied),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// Deletes key `id` of the Gitea user `username` with the service's token (a site
    /// admin's: sudo mode), whoever the caller is. A key (or user) already gone is no
    /// error; a key that is not `username`'s is [`GiteaError::AccessDenied`].
    pub async fn remove_user_key_as_admin(
        &self,
        username: &str,
        id: u64,
    ) -> Result<(), GiteaError> {
        validate_repo_part("owner", username)?;
        let presented = self.as_service()?;
        let id = id.to_string();
        let url = self.api_url(&["admin", "users", username, "keys", &id], &[]);
        let attempts = self.settings.attempts;
        let deleted = self
            .send(&presented, reqwest::Method::DELETE, url, None, attempts)
            .await;
        let result = match deleted {
            // NB: service calls answer 401/403 as `ServiceRefused`; what is left is 404.
            Ok(_) | Err(GiteaError::AccessDenied) => Ok(()),
            // NB: 403 is also Gitea refusing to delete another user's key as `username`:
            // then the token sees the key's private fields, which only a site admin's does.
            Err(refused @ GiteaError::ServiceRefused { status: 403, .. }) => {
                let url = self.api_url(&["user", "keys", &id], &[]);
                let key = self.get_json::<ApiKeyVisibility>(&presented, url).await;
                self.count(&key);
                match key {
                    Ok(key) if !key.key_type.is_empty() => Err(GiteaError::AccessDenied),
                    _ => Err(refused),
                }
            }
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// After Gitea refused to delete key `id` as the caller, whether the key is gone: it
    /// is not when Gitea still shows it; when Gitea answers 404 (or 401/403, which the
    /// client reads alike) it is gone only if the caller may read their keys at all.
    async fn user_key_gone(&self, presented: &Presented, id: &str) -> Result<bool, GiteaError> {
        let url = self.api_url(&["user", "keys", id], &[]);
        let key = self.get_json::<UserKey>(presented, url).await;
        self.count(&key);
        match key {
            Ok(_) => Ok(false),
            Err(GiteaError::AccessDenied) => {
                let url = self.api_url(&["user", "keys"], &[("limit", "1")]);
                let listed = self.get_json::<Vec<UserKey>>(presented, url).await;
                self.count(&listed);
                match listed {
                    Ok(_) => Ok(true),
                    Err(GiteaError::AccessDenied) => Ok(false),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitea_s_public_key() {
        let key: UserKey = serde_json::from_str(
            r#"{"id": 7, "key": "ssh-ed25519 AAAA c", "url": "http://g/api/v1/user/keys/7",
                "title": "laptop", "fingerprint": "SHA256:abc",
                "created_at": "2026-01-01T00:00:00Z", "last_used_at": "2026-01-01T00:00:00Z",
                "key_type": "user"}"#,
        )
        .unwrap();
        assert_eq!(
            key,
            UserKey {
                id: 7,
                fingerprint: "SHA256:abc".into(),
                title: "laptop".into(),
                created_at: Some("2026-01-01T00:00:00Z".into()),
            }
        );
        let bare: UserKey = serde_json::from_str(r#"{"id": 8, "key": "k"}"#).unwrap();
        assert_eq!((bare.title.as_str(), bare.created_at), ("", None));
    }
}
