//! Users' own SSH keys, as Gitea's REST API v1 keeps them: `GET`/`POST /user/keys`,
//! `GET`/`DELETE /user/keys/{id}` as the signed-in user (after Sudo), and
//! `POST /admin/users/{username}/keys`, `DELETE /admin/users/{username}/keys/{id}` for site
//! admins.
//!
//! After Gitea's source (`go-gitea/gitea`):
//! - `routers/api/v1/user/key.go`: listing (`fingerprint` searches every user's keys, else the
//!   caller's, paged, with `X-Total-Count`), `GetPublicKey` (any key by id; the owner and
//!   site admins also see `key_type` and `user`), `CreateUserPublicKey` (201 with the key),
//!   `DeletePublicKey` (404 for an unknown id, 403 "You do not have access to this key" for
//!   someone else's key unless the caller is a site admin, else 204);
//! - `routers/api/v1/admin/user.go`: `CreatePublicKey` and `DeleteUserPublicKey` act as the
//!   user named in the path (so another user's key is 403 there too); the `/admin` group
//!   needs a site admin (`reqSiteAdmin`: 403 "user should be the site admin") and an
//!   unknown user is 404;
//! - `modules/structs/user_key.go`: `CreateKeyOption` (`title` Required and at most 50
//!   characters, `key` Required, `read_only`) and `PublicKey` (`id`, `key`, `url`, `title`,
//!   `fingerprint`, `created_at`, `last_used_at`, `user`, `read_only`, `key_type`);
//! - `models/asymkey/ssh_key_parse.go` (`parseKeyString`, `CheckPublicKeyString` with the
//!   default `[ssh.minimum_key_sizes]` of `modules/setting/ssh.go`: ed25519, ecdsa and their
//!   `-sk` kinds 256 bits, RSA 2047, DSA not allowed), `ssh_key_fingerprint.go` (the
//!   fingerprint is `ssh.FingerprintSHA256`: `SHA256:` and unpadded standard base64 of the
//!   SHA-256 of the key blob, as `ssh-keygen -lf` prints it; a fingerprint already in the
//!   `public_key` table, which holds deploy keys too, is `ErrKeyAlreadyExist`) and
//!   `ssh_key.go` (`AddPublicKey`: the fingerprint checked first, then the title per owner);
//! - `routers/api/v1/repo/key.go`: the 422 messages (`HandleCheckKeyStringError`: "Invalid
//!   key content: ..."; `HandleAddKeyError`: "Key content has been used as non-deploy key",
//!   "Key title has been used").
//!
//! Known differences: PEM public keys (`-----BEGIN PUBLIC KEY-----`) and certificates are
//! refused instead of converted; an ECDSA point is checked for its form, not for lying on
//! the curve; a JSON body that does not decode answers 404 (warp's rejection) rather than
//! 422; `/user/keys/{id}` knows user keys only, not the key rows behind deploy keys.

use std::{collections::HashMap, sync::atomic::Ordering};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warp::{Reply, http::StatusCode, reply::Response};

use super::repos::{json_reply, not_found, paging, unauthorized, user_json};
use super::state::State;
use super::users::find_user;
use crate::lock;

/// A user's own SSH key as the simulated Gitea stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUserKey {
    /// Gitea's id (shared with deploy keys' ids, like Gitea's `public_key` table).
    pub id: u64,
    /// The owner's login.
    pub owner: String,
    /// Title (Gitea's key `name`).
    pub title: String,
    /// The key line as Gitea keeps it: `type base64 comment`, whitespace trimmed.
    pub key: String,
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the key blob.
    pub fingerprint: String,
}

/// Gitea's `CreateKeyOption.Title` limit (`binding:"MaxSize(50)"`, in characters).
const MAX_TITLE: usize = 50;
/// Gitea's default minimum RSA modulus size (`[ssh.minimum_key_sizes] RSA`).
const MIN_RSA_BITS: usize = 2047;
const SSH2_START: &str = "---- BEGIN SSH2 PUBLIC KEY ----";

/// The OpenSSH fingerprint of a key blob: `SHA256:` and the unpadded standard base64 of
/// its SHA-256 (what `ssh-keygen -lf` prints and Gitea stores).
pub(super) fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// A key Gitea accepts: the line it keeps and its fingerprint.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CheckedKey {
    pub(super) content: String,
    pub(super) fingerprint: String,
}

/// `CheckPublicKeyString`: the key line Gitea keeps for `raw`, or why it refuses it (the
/// text after "Invalid key content: ").
pub(super) fn check_public_key(raw: &str) -> Result<CheckedKey, String> {
    let raw = raw.trim();
    let (key_type, key_content, comment) = if raw.starts_with(SSH2_START) {
        let content = raw.replace("\r\n", "\n").replace('\r', "\n");
        let mut joined = String::new();
        let mut continuation = false;
        for line in content.split('\n') {
            if continuation || line.contains([':', '-']) {
                continuation = line.ends_with('\\');
            } else {
                joined.push_str(line);
            }
        }
        let found = type_of_blob(&joined)?;
        (found, joined, String::new())
    } else {
        if raw.contains("-----BEGIN") {
            if raw.contains("PRIVATE") {
                return Err("the provided key is a private key".to_owned());
            }
            return Err("the simulated Gitea does not convert PEM public keys".to_owned());
        }
        let content = raw.replace("\r\n", "").replace('\n', "");
        let mut parts = content.splitn(3, ' ');
        let first = parts.next().unwrap_or_default().to_owned();
        let (declared, key_content, comment) = match (parts.next(), parts.next()) {
            (None, _) => (String::new(), first, String::new()),
            (Some(second), None) => (first, second.to_owned(), String::new()),
            (Some(second), Some(rest)) => (first, second.to_owned(), rest.to_owned()),
        };
        let found = type_of_blob(&key_content)?;
        if !declared.is_empty() && declared != found {
            return Err(format!(
                "key type and content does not match: {declared} - {found}"
            ));
        }
        (found, key_content, comment)
    };
    let blob = STANDARD.decode(&key_content).map_err(|_| no_key_found())?;
    let kind = parse_public_key(&key_type, &blob).ok_or_else(no_key_found)?;
    let content = format!("{key_type} {key_content} {comment}");
    let content = content.trim_end_matches(['\n', '\r']);
    if content.contains(['\n', '\r']) {
        return Err("only a single line with a single key please".to_owned());
    }
    let content = content.trim().to_owned();
    match kind {
        KeyKind::Sized(_, bits) if bits >= 256 => {}
        KeyKind::Rsa(bits) if bits >= MIN_RSA_BITS => {}
        KeyKind::Rsa(bits) => {
            return Err(format!(
                "key length is not enough: got {bits}, needs {MIN_RSA_BITS}"
            ));
        }
        KeyKind::Sized(name, _) | KeyKind::NotAllowed(name) => {
            return Err(format!("key type is not allowed: {name}"));
        }
    }
    Ok(CheckedKey {
        content,
        fingerprint: fingerprint(&blob),
    })
}

fn no_key_found() -> String {
    "invalid ssh public key: ssh: no key found".to_owned()
}

/// `extractTypeFromBase64Key`: the type named inside a base64 key blob.
fn type_of_blob(key: &str) -> Result<String, String> {
    let prefix = "extractTypeFromBase64Key: invalid key format";
    let blob = STANDARD.decode(key).map_err(|error| {
        let at = match error {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            _ => key.len(),
        };
        format!("{prefix}: illegal base64 data at input byte {at}")
    })?;
    if blob.len() < 4 {
        // NB: Go formats the nil error it wraps this way.
        return Err(format!("{prefix}: %!w(<nil>)"));
    }
    let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    match blob.get(4..4usize.saturating_add(len)) {
        Some(name) => Ok(String::from_utf8_lossy(name).into_owned()),
        None => Err(format!("{prefix}: not enough length {len}")),
    }
}

/// What the minimum size check makes of a parsed key.
enum KeyKind {
    /// A kind with a fixed size in bits (`ed25519`, `ecdsa`, ...).
    Sized(&'static str, usize),
    /// RSA with its modulus size in bits.
    Rsa(usize),
    /// A kind Gitea's defaults do not allow (`dsa`).
    NotAllowed(&'static str),
}

/// SSH wire format reader (RFC 4251 `string` and `mpint`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let value = self.0.get(4..4usize.checked_add(len)?)?;
        self.0 = &self.0[4 + len..];
        Some(value)
    }

    /// A non-negative mpint's size in bits.
    fn mpint_bits(&mut self) -> Option<usize> {
        let bytes = self.string()?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        let bytes = match bytes.iter().position(|b| *b != 0) {
            Some(first) => &bytes[first..],
            None => return Some(0),
        };
        Some((bytes.len() - 1) * 8 + (8 - bytes[0].leading_zeros() as usize))
    }

    fn small_mpint(&mut self) -> Option<u64> {
        let bytes = self.string()?;
        if bytes.len() > 8 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        Some(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// `ssh.ParsePublicKey` for the kinds Gitea sizes (`SSHNativeParsePublicKey`): `None` when
/// the blob is not a well-formed key of `key_type`.
fn parse_public_key(key_type: &str, blob: &[u8]) -> Option<KeyKind> {
    let mut wire = Wire(blob);
    if wire.string()? != key_type.as_bytes() {
        return None;
    }
    let ecdsa_point = |wire: &mut Wire<'_>, curve: &str, bytes: usize| -> Option<()> {
        (wire.string()? == curve.as_bytes()).then_some(())?;
        let point = wire.string()?;
        (point.len() == 1 + 2 * bytes && point[0] == 4).then_some(())
    };
    let kind = match key_type {
        "ssh-ed25519" => {
            (wire.string()?.len() == 32).then_some(())?;
            KeyKind::Sized("ed25519", 256)
        }
        "sk-ssh-ed25519@openssh.com" => {
            (wire.string()?.len() == 32).then_some(())?;
            wire.string()?;
            KeyKind::Sized("ed25519-sk", 256)
        }
        "ecdsa-sha2-nistp256" => {
            ecdsa_point(&mut wire, "nistp256", 32)?;
            KeyKind::Sized("ecdsa", 256)
        }
        "ecdsa-sha2-nistp384" => {
            ecdsa_point(&mut wire, "nistp384", 48)?;
            KeyKind::Sized("ecdsa", 384)
        }
        "ecdsa-sha2-nistp521" => {
            ecdsa_point(&mut wire, "nistp521", 66)?;
            KeyKind::Sized("ecdsa", 521)
        }
        "sk-ecdsa-sha2-nistp256@openssh.com" => {
            ecdsa_point(&mut wire, "nistp256", 32)?;
            wire.string()?;
            KeyKind::Sized("ecdsa-sk", 256)
        }
        "ssh-rsa" => {
            let e = wire.small_mpint()?;
            // NB: golang.org/x/crypto/ssh refuses exponents over 24 bits, below 3 or even.
            ((3..1 << 24).contains(&e) && e & 1 == 1).then_some(())?;
            let bits = wire.mpint_bits()?;
            (bits > 0).then_some(())?;
            KeyKind::Rsa(bits)
        }
        "ssh-dss" => {
            for _ in 0..4 {
                wire.mpint_bits()?;
            }
            KeyKind::NotAllowed("dsa")
        }
        _ => return None,
    };
    // NB: "ssh: trailing junk in public key".
    wire.done().then_some(kind)
}

/// The fingerprint of an OpenSSH key line, when its second field is a base64 blob.
fn line_fingerprint(line: &str) -> Option<String> {
    let blob = line.split_whitespace().nth(1)?;
    STANDARD.decode(blob).ok().map(|b| fingerprint(&b))
}

/// A 422 with Gitea's error body.
fn unprocessable(message: &str) -> Response {
    json_reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"message": message, "url": ""}),
    )
}

fn forbidden(message: &str) -> Response {
    json_reply(
        StatusCode::FORBIDDEN,
        &json!({"message": message, "url": ""}),
    )
}

fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

/// The signed-in user's login and whether they are a site admin, or the 401.
fn doer(state: &State, user: Option<String>) -> Result<(String, bool), Response> {
    let user = user.ok_or_else(unauthorized)?;
    match find_user(state, &user) {
        Some(account) => Ok((account.login, account.is_admin)),
        None => Err(unauthorized()),
    }
}

/// The key as `ToPublicKey` writes it; with `private` (the owner or a site admin asking),
/// `appendPrivateInformation` adds `key_type` and `user` (`read_only` is false for user
/// keys, so omitted).
fn key_json(state: &State, key: &SimUserKey, private: bool) -> Value {
    let mut body = json!({
        "id": key.id,
        "key": key.key,
        "url": format!("{}/api/v1/user/keys/{}", state.base_url, key.id),
        "title": key.title,
        "fingerprint": key.fingerprint,
        "created_at": "2026-01-01T00:00:00Z",
        "last_used_at": "2026-01-01T00:00:00Z",
    });
    if private {
        body["key_type"] = json!("user");
        body["user"] = user_json(&key.owner);
    }
    body
}

/// `GET /user/keys`: with `fingerprint`, every user's keys with that fingerprint; else the
/// caller's, paged, with `X-Total-Count`.
pub(super) fn list_keys(
    state: &State,
    user: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
    let (login, admin) = match doer(state, user) {
        Ok(doer) => doer,
        Err(response) => return response,
    };
    let keys = lock(&state.user_keys);
    let wanted = query.get("fingerprint").filter(|f| !f.is_empty());
    let (total, body): (usize, Vec<Value>) = match wanted {
        Some(fingerprint) => {
            let found: Vec<Value> = keys
                .iter()
                .filter(|k| &k.fingerprint == fingerprint)
                .map(|k| key_json(state, k, admin || k.owner == login))
                .collect();
            (found.len(), found)
        }
        None => {
            let (page, limit) = paging(query);
            let mine: Vec<&SimUserKey> = keys.iter().filter(|k| k.owner == login).collect();
            let body = mine
                .iter()
                .skip((page - 1).saturating_mul(limit))
                .take(limit)
                .map(|k| key_json(state, k, true))
                .collect();
            (mine.len(), body)
        }
    };
    let mut response = json_reply(StatusCode::OK, &Value::Array(body));
    if let Ok(value) = total.to_string().parse() {
        response.headers_mut().insert("x-total-count", value);
    }
    response
}

/// `GET /user/keys/{id}`: any user's key (Gitea does not restrict it to the caller's).
pub(super) fn get_key(state: &State, user: Option<String>, id: u64) -> Response {
    let (login, admin) = match doer(state, user) {
        Ok(doer) => doer,
        Err(response) => return response,
    };
    let keys = lock(&state.user_keys);
    match keys.iter().find(|k| k.id == id) {
        Some(key) => json_reply(
            StatusCode::OK,
            &key_json(state, key, admin || key.owner == login),
        ),
        None => not_found(),
    }
}

/// `POST /user/keys`: a key for the caller.
pub(super) fn add_own_key(state: &State, user: Option<String>, body: &Value) -> Response {
    match doer(state, user) {
        Ok((login, _)) => create_key(state, &login, body),
        Err(response) => response,
    }
}

/// `DELETE /user/keys/{id}`.
pub(super) fn delete_own_key(state: &State, user: Option<String>, id: u64) -> Response {
    match doer(state, user) {
        Ok((login, admin)) => delete_key(state, &login, admin, id),
        Err(response) => response,
    }
}

/// Runs `handler` with the account `username` names when the caller is a site admin
/// (Gitea's `/admin` group: 401 without a token, 403 for anyone else, then 404 for an
/// unknown user).
fn as_admin_for(
    state: &State,
    user: Option<String>,
    username: &str,
    handler: impl FnOnce(String, bool) -> Response,
) -> Response {
    let admin = match doer(state, user) {
        Ok((_, admin)) => admin,
        Err(response) => return response,
    };
    if !admin {
        return forbidden("user should be the site admin");
    }
    match find_user(state, username) {
        Some(account) => handler(account.login, account.is_admin),
        None => not_found(),
    }
}

/// `POST /admin/users/{username}/keys`: a key for `username`, by a site admin.
pub(super) fn admin_add_key(
    state: &State,
    user: Option<String>,
    username: &str,
    body: &Value,
) -> Response {
    as_admin_for(state, user, username, |login, _| {
        create_key(state, &login, body)
    })
}

/// `DELETE /admin/users/{username}/keys/{id}`: Gitea deletes as `username`, so another
/// user's key is 403 unless `username` is a site admin.
pub(super) fn admin_delete_key(
    state: &State,
    user: Option<String>,
    username: &str,
    id: u64,
) -> Response {
    as_admin_for(state, user, username, |login, admin| {
        delete_key(state, &login, admin, id)
    })
}

/// `CreateUserPublicKey` for `owner`: the form checked (title, key), then the key
/// (`CheckPublicKeyString`), then `AddPublicKey` (fingerprint unused by any key, user or
/// deploy; title unused among the owner's keys).
fn create_key(state: &State, owner: &str, body: &Value) -> Response {
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or_default();
    let (title, key) = (text("title"), text("key"));
    if title.is_empty() {
        return unprocessable("[Title]: Required");
    }
    if title.chars().count() > MAX_TITLE {
        return unprocessable("[Title]: MaxSize");
    }
    if key.trim().is_empty() {
        return unprocessable("[Key]: Required");
    }
    let checked = match check_public_key(key) {
        Ok(checked) => checked,
        Err(why) => return unprocessable(&format!("Invalid key content: {why}")),
    };
    let mut keys = lock(&state.user_keys);
    let as_deploy_key = lock(&state.keys)
        .iter()
        .any(|k| line_fingerprint(&k.key).as_deref() == Some(checked.fingerprint.as_str()));
    if as_deploy_key || keys.iter().any(|k| k.fingerprint == checked.fingerprint) {
        return unprocessable("Key content has been used as non-deploy key");
    }
    if keys.iter().any(|k| k.owner == owner && k.title == title) {
        return unprocessable("Key title has been used");
    }
    let stored = SimUserKey {
        id: state.next_key.fetch_add(1, Ordering::SeqCst) as u64,
        owner: owner.to_owned(),
        title: title.to_owned(),
        key: checked.content,
        fingerprint: checked.fingerprint,
    };
    // NB: the doer is the owner or a site admin, so the private fields are shown.
    let body = key_json(state, &stored, true);
    keys.push(stored);
    json_reply(StatusCode::CREATED, &body)
}

/// `asymkey_service.DeletePublicKey` as `doer`: 404 for an unknown id, 403 for a key that
/// is neither the doer's nor deletable by a site admin doer, else 204.
fn delete_key(state: &State, doer: &str, admin: bool, id: u64) -> Response {
    let mut keys = lock(&state.user_keys);
    let Some(at) = keys.iter().position(|k| k.id == id) else {
        return not_found();
    };
    if !admin && keys[at].owner != doer {
        return forbidden("You do not have access to this key");
    }
    keys.remove(at);
    no_content()
}

/// Gitea's refusal of a deploy key whose key is some user's own key (`AddDeployKey`: a
/// fingerprint in `public_key` that is not a deploy key's is `ErrKeyAlreadyExist`), for a
/// request whose form and key are otherwise valid; `None` to go on.
pub(super) fn deploy_key_conflict(state: &State, body: &Value) -> Option<Response> {
    let title = body.get("title").and_then(Value::as_str)?;
    let key = body.get("key").and_then(Value::as_str)?;
    if title.is_empty() {
        return None;
    }
    let checked = check_public_key(key).ok()?;
    lock(&state.user_keys)
        .iter()
        .any(|k| k.fingerprint == checked.fingerprint)
        .then(|| unprocessable("Key content has been used as non-deploy key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys made with `ssh-keygen -t ... -N ''` and their `ssh-keygen -lf` fingerprints.
    const ED25519: (&str, &str) = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7swuuRLcPBM1aTQWvi7jhff1BQrFdzg3b1fvcjLqga bob@laptop",
        "SHA256:kLULOaD/XGs4KXG6Xka91xA1AavkiCa60uDmgrTEPlc",
    );
    const ED25519_SHORT_COMMENT: (&str, &str) = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1VOVdnrKpuTI07fd/jfdRPH95ou28FOqMqRPa5uwfi t",
        "SHA256:5Sa/O8Qi9trC7ksU0TLNXX7tM1vSLe7aCcdg4yuvUhU",
    );
    const ECDSA: (&str, &str) = (
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHdPB7FVbtGjMLTyeml59Q02xvDnm0xW2ohWgR9EDxksVRBAUAZxp9+G4z+HOIZ6x3ZHb9FUkIhZp+1ccqSzBWw= e",
        "SHA256:bg3VtZOEnoF65IxgRBfr2ha83MmOCRnKCXc0wW056fA",
    );
    const RSA_3072: (&str, &str) = (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDDyK24DMD0letT0LTgBMHMH5l5YpKlpezl2A8TTxAqjs5drdUSsuyrfREQ9e/WMU0/yQ5fZlFXiGZd3PX1aHJ0Z6NtG18LZjfrSx4oEVZ6jdOqLcDYFCpKT9sBmx9RxWiSBc+17ZLKHa6QUngkM9QrWkuoVeTA8Sps7s9K8Ji49MkoTuLL8Orh3VSRk5qihKenOf0bQgzi8Umo2ArkVqBQGbw24tjGd/EBXHWUSQEGSI4j8xxfu4PuRgDCJXkcV1kud9TwsfMnkwSuwUc+vxYviPxVliGjTOOl+1RnMH9OwZbEgjbrAnDecYhhHonsid3AUSUTMr9yf02uVfqjunrvri0d5lidCdrR2fjRpTiQemdOoiXBZ9wCxrefI4mzzV9WjDN+eehBreuOSAzhqBA6vChC/XdZvSuvhlekNSseAEjVHpGn/bwQ52brcwnyrM1IlSzSymC99do2TRTWMfdABWA9j8PBQLjwRtPcWBN2w37Q+DO9apQIjo3jM9Fv4x0= r",
        "SHA256:kvPTV6Us24Ki2G7KHNwwGnFcjcdFM9TBW+PiYYKgrP0",
    );
    const RSA_2048: (&str, &str) = (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQClLLGY2E1It/H7+nhLygAYz0UgukZqxCZccVLF4EUiVf2hG7scqArzEYCoohlQj4cIUR73WkKAm8QHrk0RmNsGwuUhup6foPRzhD+78w7jootWLGT42ypE7yYx7a9m02XBPyQFEvtGQZKRR9DtK1cvzUKA/BZObnPsc+DLe+58k7TIL/fBRB6LqE8+0IZ/JZ36/LhaDkoyP30MKDztKTEf/7Zy2JzVIlZjpka69iH2SRvIBjqm6SX9UezidteNWBvy+meRaSyT9G8Dg2yg5FGslu13So2/AVGD2VPJDz5n8VnSczPGhOC0lm2v3Z3PfP8jnyWCu8sFM7K6FPEH7bCN short",
        "SHA256:5NEneB1Z/ysE2QpQdmbm+ePF+cSFnssfJ3ptnKZ1slI",
    );

    #[test]
    fn fingerprints_match_ssh_keygen() {
        for (line, expected) in [ED25519, ED25519_SHORT_COMMENT, ECDSA, RSA_3072, RSA_2048] {
            let checked = check_public_key(line).unwrap();
            assert_eq!(checked.fingerprint, expected, "{line}");
            assert_eq!(checked.content, line);
            assert_eq!(line_fingerprint(line).as_deref(), Some(expected));
        }
    }

    #[test]
    fn keys_are_kept_as_gitea_cleans_them() {
        let (line, fp) = ED25519;
        let blob = line.split(' ').nth(1).unwrap();
        // No comment: the trailing space goes; surrounding whitespace and newlines too.
        let bare = check_public_key(&format!("  ssh-ed25519 {blob}\n")).unwrap();
        assert_eq!(bare.content, format!("ssh-ed25519 {blob}"));
        assert_eq!(bare.fingerprint, fp);
        // The type may be left out: it is read from the blob.
        let untyped = check_public_key(blob).unwrap();
        assert_eq!(untyped.content, format!("ssh-ed25519 {blob}"));
        // A comment with spaces is kept whole.
        let spaced = check_public_key(&format!("ssh-ed25519 {blob} bob on laptop")).unwrap();
        assert_eq!(spaced.content, format!("ssh-ed25519 {blob} bob on laptop"));
        // The SSH2 (RFC 4716) format.
        let ssh2 = format!(
            "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"bob\"\n{}\n{}\n---- END SSH2 PUBLIC KEY ----",
            &blob[..40],
            &blob[40..]
        );
        let converted = check_public_key(&ssh2).unwrap();
        assert_eq!(converted.content, format!("ssh-ed25519 {blob}"));
        assert_eq!(converted.fingerprint, fp);
    }

    #[test]
    fn garbage_is_refused_with_gitea_s_reasons() {
        let (line, _) = ED25519;
        let blob = line.split(' ').nth(1).unwrap();
        let cases = [
            (
                "ssh-ed25519 not*base64".to_owned(),
                "extractTypeFromBase64Key: invalid key format: illegal base64 data at input byte 3",
            ),
            (
                "ssh-ed25519 AAA=".to_owned(),
                "extractTypeFromBase64Key: invalid key format: %!w(<nil>)",
            ),
            (
                "ssh-ed25519 AAAAaw==".to_owned(),
                "extractTypeFromBase64Key: invalid key format: not enough length 107",
            ),
            (
                format!("ssh-rsa {blob} x"),
                "key type and content does not match: ssh-rsa - ssh-ed25519",
            ),
            (
                // The blob cut short: the type is there, the key is not.
                format!(
                    "ssh-ed25519 {}",
                    STANDARD.encode(&STANDARD.decode(blob).unwrap()[..40])
                ),
                "invalid ssh public key: ssh: no key found",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
                    .to_owned(),
                "the provided key is a private key",
            ),
        ];
        for (input, why) in cases {
            assert_eq!(check_public_key(&input), Err(why.to_owned()), "{input}");
        }
        // Trailing junk after the key.
        let mut long = STANDARD.decode(blob).unwrap();
        long.push(0);
        assert_eq!(
            check_public_key(&format!("ssh-ed25519 {}", STANDARD.encode(&long))),
            Err("invalid ssh public key: ssh: no key found".to_owned())
        );
        // An unknown algorithm.
        let mut other = Vec::new();
        for part in [&b"ssh-foo"[..], &[1u8; 32][..]] {
            other.extend((part.len() as u32).to_be_bytes());
            other.extend(part);
        }
        assert_eq!(
            check_public_key(&format!("ssh-foo {}", STANDARD.encode(&other))),
            Err("invalid ssh public key: ssh: no key found".to_owned())
        );
    }

    #[test]
    fn small_rsa_and_dsa_keys_are_not_allowed() {
        let mpint = |bytes: &[u8]| {
            let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
            out.extend(bytes);
            out
        };
        let mut rsa = mpint(b"ssh-rsa");
        rsa.extend(mpint(&[1, 0, 1]));
        let mut modulus = vec![0u8];
        modulus.extend([0xc5u8; 128]);
        rsa.extend(mpint(&modulus));
        assert_eq!(
            check_public_key(&format!("ssh-rsa {}", STANDARD.encode(&rsa))),
            Err("key length is not enough: got 1024, needs 2047".to_owned())
        );
        let mut dsa = mpint(b"ssh-dss");
        for _ in 0..4 {
            dsa.extend(mpint(&[0x33; 20]));
        }
        assert_eq!(
            check_public_key(&format!("ssh-dss {}", STANDARD.encode(&dsa))),
            Err("key type is not allowed: dsa".to_owned())
        );
    }
}
