//! User ids to DNS-safe names: kept when already safe, else cleaned, cut and hashed.
//!
//! Hashed names end in `-` and [`HASH_LEN`] (16) hex digits of SHA-256 of the id: 64
//! bits, so a targeted collision is out of reach. Earlier versions used eight (32 bits);
//! instances named that way keep their names ([`legacy_safe_name`] gives the old name,
//! which the reconciler looks up and accepts only where the record's own user id is the
//! caller's).

use sha2::{Digest, Sha256};

use super::{MAX_SAFE_NAME_LEN, MAX_USER_ID_LEN, NamingError};

/// Length of the hash suffix, in hex digits (64 bits).
pub const HASH_LEN: usize = 16;
/// Length of the hash suffix earlier versions gave hashed names, in hex digits.
pub const LEGACY_HASH_LEN: usize = 8;

/// The DNS-safe form of `user_id`, at most [`MAX_SAFE_NAME_LEN`] characters.
pub fn safe_name(user_id: &str) -> Result<String, NamingError> {
    derive(user_id, HASH_LEN, looks_hashed)
}

/// The name earlier versions (eight hex digits of hash) gave `user_id`, when it is not
/// the name [`safe_name`] gives it now: where an instance created then is found.
///
/// NB: eight hex digits can be collided on purpose, so an instance found under this name
/// belongs to the caller only when its record names the caller's user id.
pub fn legacy_safe_name(user_id: &str) -> Option<String> {
    let legacy = derive(user_id, LEGACY_HASH_LEN, |name| {
        ends_in_hash(name, LEGACY_HASH_LEN)
    })
    .ok()?;
    (safe_name(user_id).ok()? != legacy).then_some(legacy)
}

/// The safe name of `user_id` with a hash suffix of `hash_len` hex digits, the id kept
/// where it is a valid name that `hashed_shape` does not take for a hashed one.
fn derive(
    user_id: &str,
    hash_len: usize,
    hashed_shape: impl Fn(&str) -> bool,
) -> Result<String, NamingError> {
    if user_id.is_empty() {
        return Err(NamingError::EmptyUserId);
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(NamingError::UserIdTooLong { len: user_id.len() });
    }
    let mut base = String::with_capacity(user_id.len());
    for c in user_id.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base = base.trim_matches('-');
    if base == user_id && base.len() <= MAX_SAFE_NAME_LEN && !hashed_shape(base) {
        return Ok(base.to_owned());
    }
    let mut hash = hex_digest(user_id.as_bytes());
    hash.truncate(hash_len);
    let base = if base.is_empty() { "user" } else { base };
    let keep = MAX_SAFE_NAME_LEN - hash_len - 1;
    // NB: `base` is ASCII here, so byte slicing cannot split a character.
    let truncated = base[..base.len().min(keep)].trim_end_matches('-');
    Ok(format!("{truncated}-{hash}"))
}

/// True when `name` has the shape of a hashed name, new or old: something, `-`, then
/// [`HASH_LEN`] or [`LEGACY_HASH_LEN`] lowercase hex digits. Every hashed name has it
/// and no kept name may, so no id is ever kept as a name that is (or was) another id's
/// hashed name.
fn looks_hashed(name: &str) -> bool {
    ends_in_hash(name, HASH_LEN) || ends_in_hash(name, LEGACY_HASH_LEN)
}

/// True when `name` is something, `-`, then `len` lowercase hex digits.
fn ends_in_hash(name: &str, len: usize) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > len + 1
        && bytes[bytes.len() - len - 1] == b'-'
        && bytes[bytes.len() - len..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::*;

    #[test]
    fn valid_ids_are_kept() {
        assert_eq!(safe_name("john-doe").unwrap(), "john-doe");
        assert_eq!(safe_name("alice42").unwrap(), "alice42");
    }

    #[test]
    fn similar_ids_never_collide() {
        let ids = [
            "john.doe",
            "john-doe",
            "John.Doe",
            "john_doe",
            "JOHN-DOE",
            "john--doe",
        ];
        let names: Vec<String> = ids.iter().map(|id| safe_name(id).unwrap()).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(is_dns_label(a), "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(names[0].starts_with("john-doe-"), "{}", names[0]);
    }

    #[test]
    fn an_id_that_looks_like_a_hashed_name_is_hashed_too() {
        let victim = safe_name("john.doe").unwrap();
        assert_eq!(
            victim,
            format!("john-doe-{}", &hex_digest(b"john.doe")[..HASH_LEN])
        );
        let attacker = safe_name(&victim).unwrap();
        assert_ne!(attacker, victim);
        assert!(attacker.starts_with("john-doe-"), "{attacker}");
        assert!(is_dns_label(&attacker) && attacker.len() <= MAX_SAFE_NAME_LEN);
        // Hashing the hashed name again keeps going: no fixed point to aim at.
        assert_ne!(safe_name(&attacker).unwrap(), attacker);
        // A name of the old shape (eight hex digits) is hashed too: it may be an
        // existing instance's name.
        let old = legacy_safe_name("john.doe").unwrap();
        assert_eq!(old, "john-doe-30f69670");
        assert_ne!(safe_name(&old).unwrap(), old);
        // Names that merely end in a hex-looking word of another length are kept.
        for kept in [
            "john-doe-30f6967",
            "john-doe-30f696701",
            "john-doe-30f69670cafebab",
            "john-doe-30f69670cafebabe1",
            "cafebabe",
            "x-cafebab",
        ] {
            assert_eq!(safe_name(kept).unwrap(), kept);
            assert_eq!(legacy_safe_name(kept), None);
        }
        for hashed in ["x-cafebabe", "x-cafebabecafebabe"] {
            assert_ne!(safe_name(hashed).unwrap(), hashed);
        }
    }

    #[test]
    fn hashed_names_carry_64_bits_and_the_old_name_is_known() {
        for id in ["John.Doe", "jürgen", &"a".repeat(200), "日本語"] {
            let name = safe_name(id).unwrap();
            let (_, hash) = name.rsplit_once('-').unwrap();
            assert_eq!(
                hash,
                &hex_digest(id.as_bytes())[..HASH_LEN],
                "{id:?} -> {name}"
            );
            let old = legacy_safe_name(id).unwrap();
            let (_, old_hash) = old.rsplit_once('-').unwrap();
            assert_eq!(old_hash, &hash[..LEGACY_HASH_LEN], "{id:?} -> {old}");
            assert!(
                is_dns_label(&old) && old.len() <= MAX_SAFE_NAME_LEN,
                "{old}"
            );
        }
        // An id the old scheme kept but the new one hashes: its old name is itself.
        assert_eq!(
            legacy_safe_name("x-cafebabecafebabe").as_deref(),
            Some("x-cafebabecafebabe")
        );
        assert_eq!(legacy_safe_name("alice42"), None);
    }

    fn adversarial_ids() -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let stems = [
            "john", "john.doe", "John-Doe", "a", "x-y", "user", "日本", "",
        ];
        for stem in stems {
            for sep in ["", "-", ".", "_", "--", "@"] {
                for tail in [
                    "",
                    "1",
                    "deadbeef",
                    "30f69670",
                    "DEADBEEF",
                    "0000000g",
                    "deadbeefdeadbeef",
                    "30f69670cafebabe",
                    "000000000000000g",
                ] {
                    ids.push(format!("{stem}{sep}{tail}"));
                }
            }
        }
        for n in [40, 43, 44, 51, 52, 53, 60, 64, 200] {
            ids.push("a".repeat(n));
            ids.push(format!("{}-deadbeef", "b".repeat(n)));
            ids.push(format!("{}-deadbeefdeadbeef", "d".repeat(n)));
            ids.push(format!("{}.c", "c".repeat(n)));
        }
        for i in 0..2000 {
            ids.push(format!("u{i}"));
            ids.push(format!("u.{i}"));
        }
        let fed_back: Vec<String> = ids
            .iter()
            .filter_map(|id| safe_name(id).ok())
            .chain(ids.iter().filter_map(|id| legacy_safe_name(id)))
            .collect();
        ids.extend(fed_back);
        ids.sort();
        ids.dedup();
        ids.retain(|id| !id.is_empty());
        ids
    }

    #[test]
    fn distinct_ids_never_share_a_name() {
        let ids = adversarial_ids();
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for id in &ids {
            let name = safe_name(id).unwrap();
            assert!(
                is_dns_label(&name) && name.len() <= MAX_SAFE_NAME_LEN,
                "{id:?} -> {name}"
            );
            if let Some(other) = seen.insert(name.clone(), id) {
                panic!("{other:?} and {id:?} both map to {name}");
            }
        }
        assert!(seen.len() > 4000, "{} ids checked", seen.len());
        // Nor does a name now ever equal another id's hashed name of the old scheme,
        // which an existing instance may still have. (An id the old scheme kept but that
        // has the new hashed shape, as fed-back names here, can equal another id's name
        // now only by a 64-bit match or by being chosen as one before the upgrade; the
        // reconciler's safety net refuses to write over it.)
        for id in &ids {
            if let Some(old) = legacy_safe_name(id).filter(|old| old != id)
                && let Some(other) = seen.get(&old)
            {
                assert_eq!(other, id, "{other:?} now has {id:?}'s old name {old}");
            }
        }
    }

    #[test]
    fn kept_and_hashed_names_are_disjoint_by_shape() {
        for id in adversarial_ids() {
            let name = safe_name(&id).unwrap();
            // A name is kept exactly when it is the id, and kept names never look hashed.
            assert_eq!(name == id, !looks_hashed(&name), "{id:?} -> {name}");
        }
    }

    #[test]
    fn long_and_unicode_ids_give_valid_distinct_names() {
        let long_a = "a".repeat(200);
        let long_b = format!("{}b", "a".repeat(199));
        for id in [
            &long_a,
            &long_b,
            "Jürgen Müller",
            "日本語",
            "🦀",
            "-x-",
            "@corp",
        ] {
            let name = safe_name(id).unwrap();
            assert!(is_dns_label(&name), "{id:?} -> {name}");
            assert!(name.len() <= MAX_SAFE_NAME_LEN, "{name}");
            assert!(instance_id(&name).len() <= MAX_NAME_LEN);
            assert!(is_dns_label(host(&name, "x").split('.').next().unwrap()));
        }
        assert_ne!(safe_name(&long_a).unwrap(), safe_name(&long_b).unwrap());
        assert!(safe_name("日本語").unwrap().starts_with("user-"));
        assert!(is_dns_label(&sync_job_name(&safe_name(&long_a).unwrap())));
        assert!(
            safe_name("Jürgen Müller")
                .unwrap()
                .starts_with("j-rgen-m-ller-")
        );
    }

    #[test]
    fn empty_and_oversized_ids_are_refused() {
        assert_eq!(safe_name(""), Err(NamingError::EmptyUserId));
        assert!(matches!(
            safe_name(&"x".repeat(MAX_USER_ID_LEN + 1)),
            Err(NamingError::UserIdTooLong { .. })
        ));
    }
}
