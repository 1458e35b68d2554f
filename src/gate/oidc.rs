//! The login's side of OpenID Connect: discovery of the issuer's endpoints (retried with
//! backoff in the background, so the service serves its API while the issuer is down) and
//! the authorization code flow with PKCE (RFC 7636) through the `oauth2` crate. The ID
//! token it returns is checked by [`crate::auth::Authenticator::verify_id_token`].

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::GateError;
use crate::errors::error_chain;

/// The most bytes read of an answer of the issuer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What discovery reads of `/.well-known/openid-configuration` (OpenID Connect
/// Discovery 1.0, section 3).
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The `id_token` of a token response (OpenID Connect Core 1.0, 3.1.3.3).
#[derive(Debug, Deserialize, Serialize)]
struct IdTokenFields {
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

type TokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A login about to be sent to the issuer.
pub struct Authorization {
    /// Where to send the browser.
    pub url: Url,
    /// The `state` sent.
    pub state: String,
    /// The `nonce` sent.
    pub nonce: String,
    /// The PKCE verifier to send with the code.
    pub verifier: String,
}

/// The OIDC client of the login: the issuer's endpoints once discovered.
pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    redirect_uri: String,
    http: reqwest::Client,
    client: OnceLock<Client>,
}

impl Oidc {
    /// A client of `issuer` that logs in as `client_id` with the one redirect URI
    /// `redirect_uri`; nothing is asked of the issuer yet.
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
        redirect_uri: &str,
        timeout: Duration,
    ) -> Result<Self, GateError> {
        crate::install_crypto();
        // NB: no redirects: a discovery or token answer is read where it was asked for.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(GateError::HttpClient)?;
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            redirect_uri: redirect_uri.to_owned(),
            http,
            client: OnceLock::new(),
        })
    }

    /// True once the issuer's endpoints are known.
    pub fn discovered(&self) -> bool {
        self.client.get().is_some()
    }

    /// Discovers the issuer's endpoints, retrying with doubling waits from `backoff.0` up
    /// to `backoff.1` until it succeeds; every failure is logged.
    pub async fn discover_until_done(self: Arc<Self>, backoff: (Duration, Duration)) {
        let mut wait = backoff.0;
        loop {
            match self.discover().await {
                Ok(client) => {
                    let _set_once = self.client.set(client);
                    tracing::info!(issuer = %self.issuer, "OIDC issuer discovered; workspace login is on");
                    return;
                }
                Err(error) => {
                    tracing::warn!(issuer = %self.issuer, error = %error_chain(&error), retry_in = ?wait, "OIDC discovery failed; workspace login answers 503 until it succeeds");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(backoff.1);
        }
    }

    async fn discover(&self) -> Result<Client, GateError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let request = http::Request::get(&url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| GateError::Discovery(e.to_string()))?;
        let answer = send(&self.http, request).await?;
        if !answer.status().is_success() {
            return Err(GateError::Discovery(format!(
                "{url} answered {}",
                answer.status()
            )));
        }
        let metadata: Metadata = serde_json::from_slice(answer.body())
            .map_err(|e| GateError::Discovery(format!("{url}: {e}")))?;
        // NB: OpenID Connect Discovery 1.0, 4.3: the issuer in the document must be the
        // one it was discovered from, exactly.
        if metadata.issuer.trim_end_matches('/') != self.issuer {
            return Err(GateError::Discovery(format!(
                "{url} names the issuer {:?}, not {:?}",
                metadata.issuer, self.issuer
            )));
        }
        let auth = AuthUrl::new(metadata.authorization_endpoint)
            .map_err(|e| GateError::Discovery(format!("authorization_endpoint: {e}")))?;
        let token = TokenUrl::new(metadata.token_endpoint)
            .map_err(|e| GateError::Discovery(format!("token_endpoint: {e}")))?;
        let redirect = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| GateError::Discovery(format!("redirect URI: {e}")))?;
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_redirect_uri(redirect);
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(client)
    }

    /// A new login: the authorization URL with a fresh state, nonce and PKCE (S256)
    /// challenge; `None` while the issuer is not discovered.
    pub fn authorize(&self) -> Option<Authorization> {
        let client = self.client.get()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random().secret().clone();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .add_scope(Scope::new("email".to_owned()))
            .add_extra_param("nonce", nonce.clone())
            .set_pkce_challenge(challenge)
            .url();
        Some(Authorization {
            url,
            state: state.secret().clone(),
            nonce,
            verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code` (with its PKCE `verifier`) for the raw ID token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<String, GateError> {
        let client = self.client.get().ok_or(GateError::NotDiscovered)?;
        let http = self.http.clone();
        let call = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move { send(&http, request).await }
        };
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&call)
            .await
            .map_err(|e| GateError::Exchange(error_chain(&e)))?;
        answer
            .extra_fields()
            .id_token
            .clone()
            .ok_or_else(|| GateError::Exchange("the token answer has no id_token".to_owned()))
    }
}

/// Sends `request` with `http` and reads at most [`MAX_ANSWER_BYTES`] of the answer.
async fn send(
    http: &reqwest::Client,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, GateError> {
    let request = reqwest::Request::try_from(request).map_err(GateError::Issuer)?;
    let mut answer = http.execute(request).await.map_err(GateError::Issuer)?;
    let mut response = http::Response::builder().status(answer.status());
    if let Some(headers) = response.headers_mut() {
        *headers = answer.headers().clone();
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(GateError::Issuer)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(GateError::AnswerTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    response
        .body(body)
        .map_err(|e| GateError::Discovery(e.to_string()))
}
