//! Encryption of data at rest (signing keys, TOTP secrets, relay credentials, fields marked
//! `encrypt`): XChaCha20-Poly1305 under keys derived from the master key, each ciphertext tagged
//! with its key id so keys can rotate.
//!
//! Format: `v1.<key id>.<base64url(nonce || ciphertext)>`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// Seals and opens secrets; cheap to clone. Seals with the current key; opens with it or any
/// previous key, so `secrets.master_key` can rotate (keep the old one in
/// `secrets.previous_master_keys` until everything sealed with it was re-sealed).
#[derive(Clone)]
pub struct Vault {
    key_id: String,
    cipher: XChaCha20Poly1305,
    previous: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the ciphertext is malformed")]
    Malformed,
    #[error("the ciphertext was sealed with key `{0}`, which this server does not have")]
    UnknownKey(String),
    #[error("the ciphertext does not authenticate (wrong key or tampered)")]
    Tampered,
}

fn derive(master_key: &str) -> (String, XChaCha20Poly1305) {
    let key = Sha256::new().chain_update(b"oppidum vault v1\0").chain_update(master_key.as_bytes()).finalize();
    let id = Sha256::digest(key);
    (URL_SAFE_NO_PAD.encode(&id[..6]), XChaCha20Poly1305::new(&key))
}

impl Vault {
    /// A vault whose key is derived from `master_key`; the key id is derived too, so every node
    /// with the same master key agrees on it.
    pub fn from_master_key(master_key: &str) -> Self {
        let (key_id, cipher) = derive(master_key);
        Self { key_id, cipher, previous: Vec::new() }
    }

    /// A vault sealing with `current` and still opening what `previous` keys sealed.
    pub fn with_previous(current: &str, previous: &[&str]) -> Self {
        let mut vault = Self::from_master_key(current);
        vault.previous = previous.iter().map(|k| derive(k)).collect();
        vault
    }

    /// The id of the key new secrets are sealed with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext`; `context` (e.g. `"signing_key:<kid>"`) must be given again to open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        // Encryption with a valid key and nonce cannot fail.
        let ciphertext =
            self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: context.as_bytes() }).unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1.{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`Vault::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, VaultError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VaultError::Malformed);
        };
        let cipher = if key_id == self.key_id {
            &self.cipher
        } else {
            &self
                .previous
                .iter()
                .find(|(id, _)| id == key_id)
                .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?
                .1
        };
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| VaultError::Malformed)?;
        if bytes.len() < 24 + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| VaultError::Malformed)?;
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| VaultError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_round_trips_and_detects_tampering() {
        let vault = Vault::from_master_key(&"m".repeat(40));
        let sealed = vault.seal(b"totp secret", "user:1");
        assert_eq!(vault.open(&sealed, "user:1").expect("opens"), b"totp secret");
        assert!(matches!(vault.open(&sealed, "user:2"), Err(VaultError::Tampered)));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(vault.open(&tampered, "user:1").is_err());
        let other = Vault::from_master_key(&"n".repeat(40));
        assert!(matches!(other.open(&sealed, "user:1"), Err(VaultError::UnknownKey(_))));
        assert!(matches!(vault.open("garbage", "user:1"), Err(VaultError::Malformed)));
        assert_ne!(vault.seal(b"x", "c"), vault.seal(b"x", "c"), "nonces repeat");
    }

    #[test]
    fn vault_rotation_opens_old_and_seals_new() {
        let old = Vault::from_master_key(&"o".repeat(40));
        let sealed_old = old.seal(b"secret", "ctx");
        let rotated = Vault::with_previous(&"n".repeat(40), &[&"o".repeat(40)]);
        assert_eq!(rotated.open(&sealed_old, "ctx").expect("old key still opens"), b"secret");
        let sealed_new = rotated.seal(b"secret", "ctx");
        assert!(sealed_new.contains(rotated.key_id()));
        assert!(old.open(&sealed_new, "ctx").is_err());
    }
}
