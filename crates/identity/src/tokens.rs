//! Access tokens: JWTs signed with Ed25519 (RFC 7519, RFC 8037) carrying `iss`, `aud`, `sub`,
//! `sid`, `org`, `ver`, `iat`, `exp`, `jti` and a `kid` header; and opaque refresh tokens, stored
//! only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{IdentityError, Result};
use crate::keys::Keys;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The session.
    pub sid: Uuid,
    /// The current organization.
    pub org: Uuid,
    /// The user's token version when issued; bumped on password change.
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// How the session authenticated (RFC 8176): `pwd`, `otp`, `mfa`, …
    #[serde(default)]
    pub amr: Vec<String>,
    /// The administrator acting as `sub` (RFC 8693 §4.1), for impersonation tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// The `act` claim: who is really acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: Uuid,
}

/// Signs `claims` with the active key.
pub fn sign(keys: &Keys, claims: &Claims) -> Result<String> {
    let (kid, key) = keys.signing()?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| IdentityError::Internal(e.to_string()))
}

/// Verifies signature, algorithm, issuer, audience and expiry. Every failure is `invalid_token`.
pub async fn verify(keys: &Keys, token: &str, issuer: &str, audience: &str, now: DateTime<Utc>) -> Result<Claims> {
    let invalid = |why: &str| IdentityError::InvalidToken(format!("The access token is not valid: {why}."));
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
    // A token past its expiry is refused before its signature is checked: refusing needs no proof,
    // and clients retrying with an old token (or a flood of them) cost a parse, not an Ed25519
    // verification each. Whatever is accepted is verified below.
    #[derive(serde::Deserialize)]
    struct Expiry {
        exp: i64,
    }
    if let Ok(Expiry { exp }) = jsonwebtoken::dangerous::insecure_decode_claims::<Expiry>(token)
        && exp <= now.timestamp()
    {
        return Err(invalid("expired"));
    }
    // Only EdDSA: `none`, HMAC with the public key as secret and friends are refused here.
    if header.alg != Algorithm::EdDSA {
        return Err(invalid("unexpected algorithm"));
    }
    let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
    let key = keys.verifying(&kid).await?.ok_or_else(|| invalid("unknown key"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is checked below against our clock, so it is testable.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidAudience => invalid("wrong audience"),
            K::InvalidIssuer => invalid("wrong issuer"),
            K::InvalidSignature => invalid("bad signature"),
            _ => invalid("malformed"),
        }
    })?;
    if data.claims.exp <= now.timestamp() {
        return Err(invalid("expired"));
    }
    Ok(data.claims)
}

pub use oppidum_core::ids::{hash_token, random_token};

/// A new opaque refresh token (`ort_…`) and its stored hash.
pub fn new_refresh_token() -> (String, String) {
    let token = random_token("ort_");
    let hash = hash_token(&token);
    (token, hash)
}

/// A new id for `jti`.
pub fn new_jti() -> Uuid {
    Uuid::now_v7()
}
