//! Ed25519 keys that sign access tokens. Stored in the database (private halves sealed with the
//! vault) so every node signs and verifies with the same keys; published at
//! `/.well-known/jwks.json`. Each key has a `kid`, so keys can rotate.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use oppidum_core::vault::Vault;
use oppidum_store::Db;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{IdentityError, Result};

/// A public key as published in the JWKS (RFC 7517, RFC 8037).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: &'static str,
    /// Always `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[derive(oppidum_store::FromRow)]
struct KeyRow {
    kid: String,
    public_key: Vec<u8>,
    private_key: String,
}

struct Cache {
    signing: Option<(String, EncodingKey)>,
    public: HashMap<String, Vec<u8>>,
    reloaded: Option<Instant>,
}

/// The signing keys of this instance; cheap to clone.
#[derive(Clone)]
pub struct Keys {
    db: Db,
    vault: Vault,
    cache: Arc<RwLock<Cache>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

fn kid_of(public: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12])
}

fn context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

impl Keys {
    pub fn new(db: Db, vault: Vault) -> Self {
        Self {
            db,
            vault,
            cache: Arc::new(RwLock::new(Cache { signing: None, public: HashMap::new(), reloaded: None })),
        }
    }

    /// Loads the keys, creating the first one when there is none.
    pub async fn ensure(&self, now: DateTime<Utc>) -> Result<()> {
        if self.load().await? {
            return Ok(());
        }
        let secret: [u8; 32] = rand::random();
        let signing = SigningKey::from_bytes(&secret);
        let public = signing.verifying_key().to_bytes().to_vec();
        let kid = kid_of(&public);
        let der = signing.to_pkcs8_der().map_err(|e| IdentityError::Internal(e.to_string()))?;
        let sealed = self.vault.seal(der.as_bytes(), &context(&kid));
        self.db
            .query(
                "INSERT INTO signing_keys (kid, public_key, private_key, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kid) DO NOTHING",
            )
            .bind(kid.as_str())
            .bind(public)
            .bind(sealed)
            .bind(now)
            .execute()
            .await?;
        tracing::info!(kid, "created a token signing key");
        // Another node may have created one at the same time: use whatever is newest.
        self.load().await?;
        Ok(())
    }

    /// Reloads from the database; returns whether a signing key exists.
    async fn load(&self) -> Result<bool> {
        let rows: Vec<KeyRow> = self
            .db
            .query(
                "SELECT kid, public_key, private_key FROM signing_keys WHERE retired_at IS NULL \
                 ORDER BY created_at DESC, kid",
            )
            .fetch_all()
            .await?;
        let signing = match rows.first() {
            Some(row) => {
                let der = self.vault.open(&row.private_key, &context(&row.kid)).map_err(|e| {
                    IdentityError::Internal(format!(
                        "cannot open token signing key {}: {e} (is secrets.master_key the same on every node?)",
                        row.kid
                    ))
                })?;
                Some((row.kid.clone(), EncodingKey::from_ed_der(&der)))
            }
            None => None,
        };
        let found = signing.is_some();
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.public = rows.into_iter().map(|r| (r.kid, r.public_key)).collect();
        cache.signing = signing;
        cache.reloaded = Some(Instant::now());
        Ok(found)
    }

    /// The vault sealing secrets at rest.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The key to sign with, and its kid.
    pub fn signing(&self) -> Result<(String, EncodingKey)> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.signing.clone().ok_or_else(|| IdentityError::Internal("no token signing key loaded".into()))
    }

    /// The public key `kid`; reloads (at most once a second) when it is unknown, so keys created
    /// by other nodes are picked up.
    pub async fn verifying(&self, kid: &str) -> Result<Option<DecodingKey>> {
        if let Some(key) = self.cached_public(kid) {
            return Ok(Some(key));
        }
        let stale = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            cache.reloaded.is_none_or(|at| at.elapsed() > Duration::from_secs(1))
        };
        if stale {
            self.load().await?;
        }
        Ok(self.cached_public(kid))
    }

    fn cached_public(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.public.get(kid).map(|raw| DecodingKey::from_ed_der(raw))
    }

    /// The published key set.
    pub fn jwks(&self) -> JwkSet {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<Jwk> = cache
            .public
            .iter()
            .map(|(kid, raw)| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: URL_SAFE_NO_PAD.encode(raw),
                kid: kid.clone(),
                alg: "EdDSA",
                use_: "sig",
            })
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSet { keys }
    }
}
