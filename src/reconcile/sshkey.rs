//! Ed25519 deploy keys in OpenSSH's formats: the private key as `ssh` reads it
//! (`openssh-key-v1`, unencrypted, as `ssh-keygen -t ed25519 -N ''` writes it) and the
//! public key line Gitea takes (`ssh-ed25519 <base64> <comment>`).

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::SigningKey;
use rand::RngCore;

/// A freshly generated key pair.
pub struct KeyPair {
    /// The private key file (PEM armour around `openssh-key-v1`).
    pub private: String,
    /// The public key line.
    pub public: String,
    /// The public key's fingerprint as OpenSSH shows it (`ssh-keygen -l`): `SHA256:`
    /// and the unpadded base64 of the SHA-256 of the key blob.
    pub fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

const KEY_TYPE: &[u8] = b"ssh-ed25519";

/// A new Ed25519 key pair from the operating system's random source; `comment` names it.
pub fn generate(comment: &str) -> KeyPair {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let check = rand::rngs::OsRng.next_u32();
    let pair = encode(&seed, check, comment);
    seed.fill(0);
    pair
}

/// The key pair of `seed`, with `check` as the private block's check integer.
fn encode(seed: &[u8; 32], check: u32, comment: &str) -> KeyPair {
    let signing = SigningKey::from_bytes(seed);
    let public_key = signing.verifying_key().to_bytes();

    let mut public_blob = Vec::new();
    put_string(&mut public_blob, KEY_TYPE);
    put_string(&mut public_blob, &public_key);

    let mut private_block = Vec::new();
    private_block.extend_from_slice(&check.to_be_bytes());
    private_block.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private_block, KEY_TYPE);
    put_string(&mut private_block, &public_key);
    // NB: OpenSSH's ed25519 "private key" is the 32-byte seed followed by the public key.
    let mut secret = Vec::with_capacity(64);
    secret.extend_from_slice(seed);
    secret.extend_from_slice(&public_key);
    put_string(&mut private_block, &secret);
    secret.fill(0);
    put_string(&mut private_block, comment.as_bytes());
    // NB: padded with 1, 2, 3, ... to the cipher block size (8 for "none").
    let mut pad = 1u8;
    while private_block.len() % 8 != 0 {
        private_block.push(pad);
        pad += 1;
    }

    let mut file = Vec::new();
    file.extend_from_slice(b"openssh-key-v1\0");
    put_string(&mut file, b"none");
    put_string(&mut file, b"none");
    put_string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut file, &public_blob);
    put_string(&mut file, &private_block);
    private_block.fill(0);

    let body = STANDARD.encode(&file);
    file.fill(0);
    let mut private = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(70) {
        private.push_str(&String::from_utf8_lossy(chunk));
        private.push('\n');
    }
    private.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&public_blob);
    KeyPair {
        private,
        public: format!("ssh-ed25519 {} {comment}", STANDARD.encode(&public_blob)),
        fingerprint: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        ),
    }
}

/// An SSH wire-format string: its length (u32, big endian), then its bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, Verifier, VerifyingKey};

    use super::*;

    /// Reads one SSH string at `*at`.
    fn take<'a>(bytes: &'a [u8], at: &mut usize) -> &'a [u8] {
        let len = u32::from_be_bytes(bytes[*at..*at + 4].try_into().unwrap()) as usize;
        let value = &bytes[*at + 4..*at + 4 + len];
        *at += 4 + len;
        value
    }

    #[test]
    fn the_private_key_file_is_openssh_key_v1_and_matches_the_public_line() {
        let pair = generate("codeserver-service code-server-alice");
        let body: String = pair
            .private
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(
            pair.private
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            pair.private
                .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            pair.private
                .lines()
                .all(|l| l.len() <= 70 || l.starts_with("-----"))
        );
        let file = STANDARD.decode(body).unwrap();
        assert!(file.starts_with(b"openssh-key-v1\0"));
        let mut at = 15;
        assert_eq!(take(&file, &mut at), b"none");
        assert_eq!(take(&file, &mut at), b"none");
        assert_eq!(take(&file, &mut at), b"");
        assert_eq!(&file[at..at + 4], &1u32.to_be_bytes());
        at += 4;
        let public_blob = take(&file, &mut at).to_vec();
        let block = take(&file, &mut at).to_vec();
        assert_eq!(at, file.len());
        assert_eq!(block.len() % 8, 0);
        assert_eq!(block[0..4], block[4..8], "check integers match");
        let mut b = 8;
        assert_eq!(take(&block, &mut b), KEY_TYPE);
        let public = take(&block, &mut b).to_vec();
        let secret = take(&block, &mut b).to_vec();
        assert_eq!(
            take(&block, &mut b),
            b"codeserver-service code-server-alice"
        );
        assert!(
            block[b..]
                .iter()
                .enumerate()
                .all(|(i, p)| usize::from(*p) == i + 1)
        );
        assert_eq!(&secret[32..], &public[..]);

        // The public line carries the same key, and the seed signs for it.
        let (kind, rest) = pair.public.split_once(' ').unwrap();
        assert_eq!(kind, "ssh-ed25519");
        let encoded = rest.split(' ').next().unwrap();
        assert!(
            encoded.starts_with("AAAAC3NzaC1lZDI1NTE5AAAAI"),
            "{encoded}"
        );
        assert_eq!(STANDARD.decode(encoded).unwrap(), public_blob);
        let seed: [u8; 32] = secret[..32].try_into().unwrap();
        let signature = SigningKey::from_bytes(&seed).sign(b"hello");
        let verifying = VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
        assert!(verifying.verify(b"hello", &signature).is_ok());
    }

    #[test]
    fn every_key_is_new_and_debug_shows_no_private_part() {
        let (a, b) = (generate("a"), generate("a"));
        assert_ne!(a.public, b.public);
        assert_ne!(a.private, b.private);
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }
}
