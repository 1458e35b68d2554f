//! Signed, expiring values (cookies and tickets): compact HS256 JWS with SESSION_KEYS.
//!
//! Each value names what it is (`typ`), so a ticket never passes for a cookie or a
//! cookie of one kind for another. The first key signs; every key verifies, so keys
//! rotate without logging anyone out: put the new key first, keep the old one until the
//! longest session it signed has expired, then drop it.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Serialize, de::DeserializeOwned};

use super::{GateError, MIN_SESSION_KEY_BYTES};
use crate::secret::Secret;

/// What a sealed value is; written as its `typ` claim and checked when it is opened.
pub trait Sealed: Serialize + DeserializeOwned {
    /// The `typ` claim of this kind of value.
    const TYP: &'static str;
    /// The value's `typ` claim as it was read.
    fn typ(&self) -> &str;
}

/// Seals and opens values with the session keys.
pub struct Seal {
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
}

impl Seal {
    /// A seal from SESSION_KEYS; `None` when there are none. Refuses a key shorter than
    /// [`MIN_SESSION_KEY_BYTES`].
    pub fn new(keys: &[Secret]) -> Result<Option<Self>, GateError> {
        for (index, key) in keys.iter().enumerate() {
            let len = key.expose().len();
            if len < MIN_SESSION_KEY_BYTES {
                return Err(GateError::ShortSessionKey { index, len });
            }
        }
        let Some(first) = keys.first() else {
            return Ok(None);
        };
        Ok(Some(Self {
            signing: EncodingKey::from_secret(first.expose().as_bytes()),
            verifying: keys
                .iter()
                .map(|key| DecodingKey::from_secret(key.expose().as_bytes()))
                .collect(),
        }))
    }

    /// `value`, signed with the first key.
    pub fn seal<T: Sealed>(&self, value: &T) -> Result<String, GateError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), value, &self.signing)
            .map_err(GateError::Seal)
    }

    /// The value in `sealed` when one of the keys signed it, it has not expired (`exp`,
    /// no leeway) and it is of kind `T`; `None` otherwise (forged, expired, other kind,
    /// malformed: to a caller these are all "no session").
    pub fn open<T: Sealed>(&self, sealed: &str) -> Option<T> {
        // NB: bounded before any parsing; no value we seal comes near this.
        if sealed.len() > MAX_SEALED_BYTES {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        self.verifying.iter().find_map(|key| {
            jsonwebtoken::decode::<T>(sealed, key, &validation)
                .ok()
                .map(|data| data.claims)
                .filter(|value| value.typ() == T::TYP)
        })
    }
}

/// The longest sealed value [`Seal::open`] reads.
const MAX_SEALED_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{Login, Principal, Ticket, WorkspaceSession};

    fn who() -> Principal {
        Principal {
            sub: "sub-alice".into(),
            uid: "alice".into(),
            adm: false,
        }
    }

    fn keys(keys: &[&str]) -> Seal {
        let keys: Vec<Secret> = keys.iter().map(|k| Secret::new(*k)).collect();
        Seal::new(&keys).unwrap().unwrap()
    }

    const A: &str = "a-session-key-of-at-least-32-bytes-0001";
    const B: &str = "b-session-key-of-at-least-32-bytes-0002";

    fn later() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn keys_rotate_without_logging_anyone_out() {
        let old = keys(&[A]);
        let sealed = old.seal(&Login::new(who(), later())).unwrap();
        let rotated = keys(&[B, A]);
        assert_eq!(rotated.open::<Login>(&sealed).unwrap().who, who());
        let new = rotated.seal(&Login::new(who(), later())).unwrap();
        assert!(
            old.open::<Login>(&new).is_none(),
            "the old key alone cannot read the new"
        );
        assert!(
            keys(&[B]).open::<Login>(&sealed).is_none(),
            "a dropped key verifies nothing"
        );
    }

    #[test]
    fn a_value_of_one_kind_never_opens_as_another() {
        let seal = keys(&[A]);
        let ticket = seal
            .seal(&Ticket::new(
                who(),
                "code-alice.x".into(),
                "https://code-alice.x/".into(),
                "h".into(),
                later(),
                later(),
            ))
            .unwrap();
        assert!(seal.open::<Ticket>(&ticket).is_some());
        assert!(seal.open::<WorkspaceSession>(&ticket).is_none());
        assert!(seal.open::<Login>(&ticket).is_none());
    }

    #[test]
    fn expired_forged_and_oversized_values_do_not_open() {
        let seal = keys(&[A]);
        let expired = seal.seal(&Login::new(who(), 1)).unwrap();
        assert!(seal.open::<Login>(&expired).is_none());
        let good = seal.seal(&Login::new(who(), later())).unwrap();
        let mut forged = good.clone();
        forged.pop();
        forged.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert!(seal.open::<Login>(&forged).is_none());
        assert!(seal.open::<Login>(&"x".repeat(5000)).is_none());
        assert!(seal.open::<Login>("").is_none());
    }

    #[test]
    fn short_keys_are_refused_and_no_keys_mean_no_seal() {
        let short = [Secret::new(A), Secret::new("short")];
        assert!(matches!(
            Seal::new(&short),
            Err(GateError::ShortSessionKey { index: 1, len: 5 })
        ));
        assert!(Seal::new(&[]).unwrap().is_none());
    }
}
