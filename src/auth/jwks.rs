//! The Keycloak JWKS: fetched over HTTP, cached, refreshed when a token names an unknown key.
//!
//! Each usable key is stored with the one algorithm it may verify (its JWK `alg`, else the
//! usual one for its key type), so a token cannot pick a weaker or different algorithm for a
//! known key. Encryption keys (`use: enc`, RSA-OAEP) and symmetric keys are skipped: a
//! published symmetric key would let anyone sign. Refreshes are single-flight and rate
//! limited, so a stream of tokens with made-up `kid`s cannot turn the service into a
//! traffic amplifier against Keycloak.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// A public key and the only algorithm it verifies.
#[derive(Clone)]
pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    pub(super) alg: Algorithm,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

/// The cached key set of one JWKS URL.
pub(super) struct KeySet {
    http: reqwest::Client,
    url: String,
    min_refresh: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    refresh: Mutex<()>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    pub(super) fn new(
        http: reqwest::Client,
        url: String,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            http,
            url,
            min_refresh,
            max_age,
            cache: RwLock::new(Cache::default()),
            refresh: Mutex::new(()),
        }
    }

    /// The key named `kid`, fetching the set when it is unknown or the cache is old.
    pub(super) async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        if let Some(key) = self.cached(kid, true).await {
            return Ok(key);
        }
        let _single_flight = self.refresh.lock().await;
        // NB: another request may have refreshed while this one waited for the lock.
        if let Some(key) = self.cached(kid, true).await {
            return Ok(key);
        }
        let may_fetch = {
            let cache = self.cache.read().await;
            cache
                .attempted_at
                .is_none_or(|at| at.elapsed() >= self.min_refresh)
        };
        if may_fetch {
            self.cache.write().await.attempted_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    tracing::info!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                    let mut cache = self.cache.write().await;
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(error) => {
                    // NB: a stale key is still a real Keycloak key; an outage of the JWKS
                    // endpoint should not log every user out.
                    if let Some(key) = self.cached(kid, false).await {
                        tracing::warn!(%error, "JWKS refresh failed, using cached keys");
                        return Ok(key);
                    }
                    return Err(error);
                }
            }
        }
        self.cached(kid, false)
            .await
            .ok_or_else(|| AuthError::UnknownKey {
                // NB: the caller chose it; it is logged.
                kid: super::truncate_for_log(kid),
            })
    }

    async fn cached(&self, kid: &str, fresh_only: bool) -> Option<Arc<VerifyingKey>> {
        let cache = self.cache.read().await;
        let fresh = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.max_age);
        if fresh_only && !fresh {
            return None;
        }
        cache.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyingKey>>, AuthError> {
        let fetch_error = |source| AuthError::JwksFetch {
            url: self.url.clone(),
            source,
        };
        let response = self
            .http
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(fetch_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(AuthError::JwksStatus {
                url: self.url.clone(),
                status: status.as_u16(),
            });
        }
        let body = response.bytes().await.map_err(fetch_error)?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(AuthError::JwksInvalid {
                url: self.url.clone(),
                reason: "document too large".to_owned(),
            });
        }
        let raw: RawSet = serde_json::from_slice(&body).map_err(|e| AuthError::JwksInvalid {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let keys = parse_keys(raw.keys);
        if keys.is_empty() {
            return Err(AuthError::JwksInvalid {
                url: self.url.clone(),
                reason: "no usable signing key".to_owned(),
            });
        }
        Ok(keys)
    }
}

/// The signing keys of a JWKS, each with its pinned algorithm; unusable entries are skipped.
fn parse_keys(raw: Vec<serde_json::Value>) -> HashMap<String, Arc<VerifyingKey>> {
    let mut keys = HashMap::new();
    for value in raw {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(alg) = pinned_algorithm(&jwk) else {
            continue;
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(kid, Arc::new(VerifyingKey { key, alg }));
            }
            Err(error) => tracing::warn!(%kid, %error, "skipping unreadable JWKS key"),
        }
    }
    keys
}

/// The one algorithm a JWK may verify, or `None` when it is not an asymmetric signing key.
fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None => Some(Algorithm::RS256),
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
            Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
            Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
            Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
            Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
            Some(_) => None,
        },
        AlgorithmParameters::EllipticCurve(params) => match (declared, &params.curve) {
            (None | Some(KeyAlgorithm::ES256), EllipticCurve::P256) => Some(Algorithm::ES256),
            (None | Some(KeyAlgorithm::ES384), EllipticCurve::P384) => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn keeps_signing_keys_with_their_pinned_algorithm() {
        let keys = parse_keys(vec![
            json!({"kid": "sig", "kty": "RSA", "use": "sig", "n": N, "e": "AQAB"}),
            json!({"kid": "ps", "kty": "RSA", "alg": "PS256", "n": N, "e": "AQAB"}),
        ]);
        assert_eq!(keys["sig"].alg, Algorithm::RS256);
        assert_eq!(keys["ps"].alg, Algorithm::PS256);
    }

    #[test]
    fn skips_encryption_symmetric_kidless_and_garbage_keys() {
        let keys = parse_keys(vec![
            json!({"kid": "enc", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": N, "e": "AQAB"}),
            json!({"kid": "oaep", "kty": "RSA", "alg": "RSA-OAEP", "n": N, "e": "AQAB"}),
            json!({"kid": "hmac", "kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "n": N, "e": "AQAB"}),
            json!({"kid": "junk", "kty": "RSA"}),
            json!("not an object"),
        ]);
        assert!(keys.is_empty(), "{:?}", keys.keys().collect::<Vec<_>>());
    }
}
