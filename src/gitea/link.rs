//! The verdicts on whose Gitea account a caller may be acted as, kept briefly: a caller's
//! requests look their account up once per [`GiteaSettings::link_ttl`], and callers asking
//! at the same time share one lookup.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use super::{
    Caller, GiteaClient, GiteaError,
    account::{NotLinked, TokenLink},
};

/// The most verdicts kept; beyond it expired ones go first, then the oldest.
pub(super) const MAX_VERDICTS: usize = 4096;

/// What is remembered about one caller and account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    /// The account's username, lowercased (Gitea's usernames are case-insensitive).
    username: String,
    /// The token's `sub`.
    sub: Option<String>,
    /// The token's email, only when verified.
    verified_email: Option<String>,
}

impl Key {
    pub(super) fn new(username: &str, link: &TokenLink) -> Self {
        Self {
            username: username.to_ascii_lowercase(),
            sub: link.sub.clone(),
            verified_email: link.verified_email().map(str::to_ascii_lowercase),
        }
    }
}

type Verdict = Result<(), NotLinked>;

struct Entry {
    since: Instant,
    verdict: Arc<OnceCell<Verdict>>,
}

/// Verdicts by caller and account, each for `ttl`, at most [`MAX_VERDICTS`].
pub(super) struct Verdicts {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Verdicts {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell holding `key`'s verdict at `now`: the one kept unless it expired, else a
    /// new, empty one (making room for it).
    pub(super) fn cell(&self, key: &Key, now: Instant) -> Arc<OnceCell<Verdict>> {
        let mut entries = self.entries();
        if let Some(entry) = entries.get(key)
            && now.saturating_duration_since(entry.since) < self.ttl
        {
            return entry.verdict.clone();
        }
        if entries.len() >= MAX_VERDICTS && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, e| now.saturating_duration_since(e.since) < ttl);
            if entries.len() >= MAX_VERDICTS
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.since)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let verdict = Arc::new(OnceCell::new());
        entries.insert(
            key.clone(),
            Entry {
                since: now,
                verdict: verdict.clone(),
            },
        );
        verdict
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

impl GiteaClient {
    /// Whether the service may act (`Sudo`) as `caller.username` for the caller: the kept
    /// verdict, else one lookup of the account (shared by callers asking at once; a failed
    /// lookup is not kept). A refusal is [`GiteaError::AccessDenied`], with its reason in
    /// the log.
    pub(super) async fn ensure_linked(&self, caller: &Caller<'_>) -> Result<(), GiteaError> {
        let cell;
        let link = TokenLink::of(caller);
        let verdict = if link.sub.is_none() && link.verified_email().is_none() {
            // NB: nothing could match, so Gitea is not asked.
            &Err(NotLinked::NoSubject)
        } else {
            let key = Key::new(caller.username, &link);
            cell = self.verdicts.cell(&key, Instant::now());
            cell.get_or_try_init(|| async {
                self.ensure_admin_token().await?;
                self.decide_link(caller.username, &link).await
            })
            .await?
        };
        match verdict {
            Ok(()) => Ok(()),
            Err(why) => {
                tracing::warn!(reason = %why, "refused to ask gitea as the account the caller names");
                Err(GiteaError::NotLinked(why.clone()))
            }
        }
    }
}

/// Gitea's answer to `GET /user`: the token's own user, whose `is_admin` Gitea shows to
/// that user.
#[derive(serde::Deserialize)]
struct ApiSelf {
    #[serde(default)]
    is_admin: bool,
}

impl GiteaClient {
    /// Checks once (per client and its clones) that GITEA_TOKEN is a site admin's: only a
    /// site admin may `Sudo`, and only a site admin sees whether an account is linked,
    /// active or an admin. One call the first time; a refusal is asked again next time.
    async fn ensure_admin_token(&self) -> Result<(), GiteaError> {
        self.admin_token
            .get_or_try_init(|| async {
                let presented = self.as_service()?;
                let url = self.api_url(&["user"], &[]);
                let result = self.get_json::<ApiSelf>(&presented, url).await;
                self.count(&result);
                if result?.is_admin {
                    Ok(())
                } else {
                    Err(GiteaError::SudoRefused)
                }
            })
            .await
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> Key {
        Key::new(
            user,
            &TokenLink {
                sub: Some(format!("sub-{user}")),
                ..TokenLink::default()
            },
        )
    }

    #[test]
    fn a_verdict_is_kept_for_the_ttl_then_asked_again() {
        let verdicts = Verdicts::new(Duration::from_secs(60));
        let start = Instant::now();
        let first = verdicts.cell(&key("bob"), start);
        assert!(first.set(Ok(())).is_ok());
        let again = verdicts.cell(&key("bob"), start + Duration::from_secs(59));
        assert_eq!(again.get(), Some(&Ok(())));
        let bobs = TokenLink {
            sub: Some("sub-bob".into()),
            ..TokenLink::default()
        };
        assert_eq!(
            verdicts.cell(&Key::new("BOB", &bobs), start).get(),
            Some(&Ok(())),
            "usernames are case-insensitive"
        );
        let other_sub = Key::new(
            "bob",
            &TokenLink {
                sub: Some("sub-mallory".into()),
                ..TokenLink::default()
            },
        );
        assert_eq!(verdicts.cell(&other_sub, start).get(), None);
        let expired = verdicts.cell(&key("bob"), start + Duration::from_secs(60));
        assert_eq!(expired.get(), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let verdicts = Verdicts::new(Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..MAX_VERDICTS + 10 {
            let cell = verdicts.cell(
                &key(&format!("user{i}")),
                start + Duration::from_millis(i as u64),
            );
            assert!(cell.set(Ok(())).is_ok());
        }
        assert_eq!(verdicts.len(), MAX_VERDICTS);
        // The newest are kept, the oldest went.
        let last = format!("user{}", MAX_VERDICTS + 9);
        assert!(
            verdicts
                .cell(&key(&last), start + Duration::from_secs(1))
                .get()
                .is_some()
        );
        assert!(
            verdicts
                .cell(&key("user0"), start + Duration::from_secs(1))
                .get()
                .is_none()
        );
    }
}
