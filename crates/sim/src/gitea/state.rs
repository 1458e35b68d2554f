//! The simulated Gitea's state: users, repositories, deploy and user keys and faults, and the
//! handle that starts and drives it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::oneshot;

use super::routes::routes;
use super::user_keys::SimUserKey;
use super::users::{SimUser, ensure_user, put_user};
use crate::issuer::Issuer;
use crate::lock;

/// Gitea's largest page (MAX_RESPONSE_ITEMS).
pub(super) const MAX_LIMIT: usize = 50;
/// Gitea's default page size.
pub(super) const DEFAULT_LIMIT: usize = 30;

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
pub enum GiteaFault {
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

pub(super) struct State {
    pub(super) issuer: Arc<Issuer>,
    pub(super) keys: Mutex<Vec<SimDeployKey>>,
    /// Users' own SSH keys (`/user/keys`), ids from `next_key` like deploy keys.
    pub(super) user_keys: Mutex<Vec<SimUserKey>>,
    pub(super) next_key: AtomicUsize,
    pub(super) repos: Mutex<Vec<SimRepo>>,
    /// Known accounts: the demo's, the service's site admin, repository owners and
    /// collaborators, and those added (one per login, any case).
    pub(super) users: Mutex<Vec<SimUser>>,
    /// `GET /users/{username}` requests received.
    pub(super) user_lookups: AtomicUsize,
    /// The login of each request a site admin made as another user with Sudo.
    pub(super) sudos: Mutex<Vec<String>>,
    pub(super) fault: Mutex<GiteaFault>,
    pub(super) requests: AtomicUsize,
    pub(super) base_url: String,
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
        // NB: the service's own account is the install's local site admin; everyone else
        // signed in through the identity provider, so is linked to their token's `sub`.
        let mut users = vec![SimUser::local(SERVICE_USER).admin()];
        for login in USERS {
            ensure_user(&mut users, login);
        }
        for repo in &repos {
            ensure_user(&mut users, &repo.owner);
            for collaborator in &repo.collaborators {
                ensure_user(&mut users, collaborator);
            }
        }
        let state = Arc::new(State {
            issuer,
            keys: Mutex::new(Vec::new()),
            user_keys: Mutex::new(Vec::new()),
            next_key: AtomicUsize::new(1),
            users: Mutex::new(users),
            repos: Mutex::new(repos),
            fault: Mutex::new(GiteaFault::None),
            requests: AtomicUsize::new(0),
            user_lookups: AtomicUsize::new(0),
            sudos: Mutex::new(Vec::new()),
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
    pub fn set_fault(&self, fault: GiteaFault) {
        *lock(&self.state.fault) = fault;
    }

    /// Adds a repository (its owner and collaborators become known users, linked as
    /// [`SimUser::linked`] unless known).
    pub fn add_repo(&self, repo: SimRepo) {
        {
            let mut users = lock(&self.state.users);
            ensure_user(&mut users, &repo.owner);
            for collaborator in &repo.collaborators {
                ensure_user(&mut users, collaborator);
            }
        }
        lock(&self.state.repos).push(repo);
    }

    /// Adds a user as signing in through the identity provider for the first time does
    /// ([`SimUser::linked`]), unless Gitea knows the login already.
    pub fn add_user(&self, login: &str) {
        ensure_user(&mut lock(&self.state.users), login);
    }

    /// Adds `account`, replacing any account with the same login (any case).
    pub fn add_account(&self, account: SimUser) {
        put_user(&mut lock(&self.state.users), account);
    }

    /// The user each request made with Sudo acted as, in order (the account's login).
    pub fn sudo_logins(&self) -> Vec<String> {
        lock(&self.state.sudos).clone()
    }

    /// How many `GET /users/{username}` requests were received (included in
    /// [`SimGitea::requests`]).
    pub fn user_lookups(&self) -> usize {
        self.state.user_lookups.load(Ordering::SeqCst)
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

    /// The own SSH keys of the user `login` (any case), in the order they were added.
    pub fn user_keys(&self, login: &str) -> Vec<SimUserKey> {
        lock(&self.state.user_keys)
            .iter()
            .filter(|k| k.owner.eq_ignore_ascii_case(login))
            .cloned()
            .collect()
    }

    /// How many requests were received, faulty answers included.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}
