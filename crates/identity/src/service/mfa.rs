//! The second factor. TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step) with the secret sealed by
//! the vault and each time step accepted once; ten single-use backup codes; emailed one-time codes
//! as a fallback. A login that needs a second factor gets a challenge token instead of tokens;
//! organizations choose which roles must use 2FA (owners and admins by default, and every
//! instance administrator), and such users enrol before they get tokens. Wrong codes lock the
//! second factor for a while.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use oppidum_core::Principal;
use oppidum_store::Json;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Identity;
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::model::{ClientInfo, LoginResponse, MfaChallenge, User};
use crate::password::{self, Verified};
use crate::permissions::USERS_MANAGE;
use crate::{repo, tokens};

/// Wrong second-factor codes before the second factor locks.
const MAX_FAILURES: i64 = 5;
const LOCKOUT_MINUTES: i64 = 15;
const STEP: u64 = 30;

/// What the user needs to add the authenticator.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpSetup {
    /// Base32 secret, for manual entry.
    pub secret: String,
    /// `otpauth://totp/…`, for authenticator apps.
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG).
    pub qr_svg: String,
}

/// The codes that replace the authenticator once each; shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupCodes {
    pub backup_codes: Vec<String>,
}

/// Completes a login challenge (`mfa_token`) or enrolment with one of the codes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    pub mfa_token: String,
    pub code: Option<String>,
    pub backup_code: Option<String>,
    pub email_code: Option<String>,
}

#[derive(Debug, oppidum_store::FromRow)]
struct MfaState {
    totp_secret: Option<String>,
    totp_enabled_at: Option<DateTime<Utc>>,
    mfa_locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, oppidum_store::FromRow)]
struct Challenge {
    user_id: Uuid,
    org_id: Option<Uuid>,
    ip: Option<String>,
    user_agent: Option<String>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    email_code_hash: Option<String>,
    email_code_expires_at: Option<DateTime<Utc>>,
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<TOTP> {
    let issuer = issuer.replace(':', "");
    TOTP::new(Algorithm::SHA1, 6, 1, STEP, secret, Some(issuer), account.to_owned())
        .map_err(|e| IdentityError::Internal(format!("TOTP: {e:?}")))
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `XXXX-XXXX` from an unambiguous alphabet.
fn backup_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 8] = rand::random();
    let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

impl Identity {
    async fn mfa_state(&self, user: Uuid) -> Result<MfaState> {
        self.db
            .query("SELECT totp_secret, totp_enabled_at, mfa_locked_until FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional()
            .await?
            .ok_or(IdentityError::NotFound("user"))
    }

    fn totp_context(user: Uuid) -> String {
        format!("totp:{user}")
    }

    /// Whether `user` must present a second factor (enrolled, or required by a role they hold).
    async fn mfa_required(&self, user: &User, state: &MfaState) -> Result<bool> {
        if state.totp_enabled_at.is_some() {
            return Ok(true);
        }
        if !self.config.mfa_enforcement {
            return Ok(false);
        }
        if user.instance_admin {
            return Ok(true);
        }
        let rows: Vec<(Json<Vec<String>>, String)> = self
            .db
            .query("SELECT o.mfa_required_roles, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1")
            .bind(user.id)
            .fetch_all()
            .await?;
        Ok(rows.iter().any(|(roles, role)| roles.0.contains(role)))
    }

    /// After a correct password: a challenge when a second factor is needed.
    pub(crate) async fn mfa_challenge(
        &self,
        user: &User,
        org: Uuid,
        client: &ClientInfo,
    ) -> Result<Option<MfaChallenge>> {
        let state = self.mfa_state(user.id).await?;
        if !self.mfa_required(user, &state).await? {
            return Ok(None);
        }
        let token = tokens::random_token("omt_");
        let now = self.now();
        self.db
            .query(
                "INSERT INTO mfa_challenges (token_hash, user_id, org_id, ip, user_agent, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tokens::hash_token(&token))
            .bind(user.id)
            .bind(org)
            .bind(client.ip.clone())
            .bind(client.user_agent.clone())
            .bind(now)
            .bind(now + Duration::minutes(10))
            .execute()
            .await?;
        let methods = if state.totp_enabled_at.is_some() {
            vec!["totp".into(), "backup_code".into(), "email_code".into()]
        } else {
            vec!["enroll".into(), "email_code".into()]
        };
        Ok(Some(MfaChallenge { mfa_required: true, mfa_token: token, methods }))
    }

    async fn challenge(&self, token: &str) -> Result<(String, Challenge)> {
        let hash = tokens::hash_token(token.trim());
        let found: Option<Challenge> = self
            .db
            .query(
                "SELECT user_id, org_id, ip, user_agent, expires_at, used_at, email_code_hash, email_code_expires_at \
                 FROM mfa_challenges WHERE token_hash = $1",
            )
            .bind(hash.as_str())
            .fetch_optional()
            .await?;
        match found {
            Some(c) if c.used_at.is_none() && c.expires_at > self.now() => Ok((hash, c)),
            _ => Err(IdentityError::Invalid("invalid_mfa_token", "The sign-in attempt expired; sign in again.".into())),
        }
    }

    fn check_lock(&self, state: &MfaState) -> Result<()> {
        if let Some(until) = state.mfa_locked_until
            && until > self.now()
        {
            let secs = u64::try_from((until - self.now()).num_seconds().max(1)).unwrap_or(60);
            return Err(IdentityError::RateLimited(secs));
        }
        Ok(())
    }

    /// Counts a wrong code; locks after too many.
    async fn mfa_failed(&self, user: Uuid, client: &ClientInfo, method: &str) -> IdentityError {
        let now = self.now();
        let locked_until = now + Duration::minutes(LOCKOUT_MINUTES);
        let _ = self
            .db
            .query(
                "UPDATE users SET mfa_failures = mfa_failures + 1, \
                 mfa_locked_until = CASE WHEN mfa_failures + 1 >= $2 THEN $3 ELSE mfa_locked_until END WHERE id = $1",
            )
            .bind(user)
            .bind(MAX_FAILURES)
            .bind(locked_until)
            .execute()
            .await;
        let mut event = Self::event_from(client, "auth.mfa", Outcome::Failure);
        event.actor_id = Some(user);
        event.details = serde_json::json!({ "method": method });
        self.record(self.about_user(event, user).await).await;
        IdentityError::Invalid("invalid_code", "The code is wrong or was already used.".into())
    }

    /// Accepts a TOTP code once: its time step must be newer than the last accepted one.
    async fn check_totp(&self, user: &User, state: &MfaState, code: &str) -> Result<bool> {
        let Some(sealed) = &state.totp_secret else { return Ok(false) };
        let secret = self
            .keys_vault()
            .open(sealed, &Self::totp_context(user.id))
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        let totp = totp(secret, &self.issuer, &user.email)?;
        let now = u64::try_from(self.now().timestamp()).unwrap_or(0);
        let code = code.trim();
        for step in [now / STEP, now / STEP - 1, now / STEP + 1] {
            if same(&totp.generate(step * STEP), code) {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                // Replay: this step, or an earlier one, was used already.
                let accepted = self
                    .db
                    .query(
                        "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                    )
                    .bind(user.id)
                    .bind(step)
                    .execute()
                    .await?;
                return Ok(accepted == 1);
            }
        }
        Ok(false)
    }

    fn keys_vault(&self) -> &oppidum_core::vault::Vault {
        self.keys.vault()
    }

    /// Starts TOTP enrolment for a signed-in user (replacing a pending, unconfirmed one).
    pub async fn totp_setup(&self, principal: &Principal) -> Result<TotpSetup> {
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        self.start_totp(&user).await
    }

    async fn start_totp(&self, user: &User) -> Result<TotpSetup> {
        let state = self.mfa_state(user.id).await?;
        if state.totp_enabled_at.is_some() {
            return Err(IdentityError::Conflict("mfa_enabled", "Two-factor authentication is already on.".into()));
        }
        let secret: [u8; 20] = rand::random();
        let totp = totp(secret.to_vec(), &self.issuer, &user.email)?;
        let sealed = self.keys_vault().seal(&secret, &Self::totp_context(user.id));
        self.db
            .query("UPDATE users SET totp_secret = $2, totp_last_step = NULL WHERE id = $1")
            .bind(user.id)
            .bind(sealed)
            .execute()
            .await?;
        let uri = totp.get_url();
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map(|qr| qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(TotpSetup { secret: totp.get_secret_base32(), otpauth_uri: uri, qr_svg })
    }

    /// Confirms enrolment with a first code; returns the backup codes (shown once).
    pub async fn totp_confirm(&self, principal: &Principal, code: &str, client: &ClientInfo) -> Result<BackupCodes> {
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        self.confirm_totp(&user, code, client).await
    }

    async fn confirm_totp(&self, user: &User, code: &str, client: &ClientInfo) -> Result<BackupCodes> {
        let state = self.mfa_state(user.id).await?;
        self.check_lock(&state)?;
        if state.totp_enabled_at.is_some() {
            return Err(IdentityError::Conflict("mfa_enabled", "Two-factor authentication is already on.".into()));
        }
        if state.totp_secret.is_none() {
            return Err(IdentityError::Invalid("mfa_not_started", "Start with the TOTP setup.".into()));
        }
        if !self.check_totp(user, &state, code).await? {
            return Err(self.mfa_failed(user.id, client, "totp").await);
        }
        let now = self.now();
        self.db
            .query("UPDATE users SET totp_enabled_at = $2, mfa_failures = 0, mfa_locked_until = NULL WHERE id = $1")
            .bind(user.id)
            .bind(now)
            .execute()
            .await?;
        let codes = self.new_backup_codes(user.id).await?;
        let mut event = Self::event_from(client, "mfa.enabled", Outcome::Success);
        event.actor_id = Some(user.id);
        self.record(self.about_user(event, user.id).await).await;
        Ok(codes)
    }

    async fn new_backup_codes(&self, user: Uuid) -> Result<BackupCodes> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.query("DELETE FROM backup_codes WHERE user_id = $1").bind(user).execute().await?;
        let mut codes = BTreeSet::new();
        while codes.len() < 10 {
            codes.insert(backup_code());
        }
        for code in &codes {
            tx.query("INSERT INTO backup_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user)
                .bind(tokens::hash_token(code))
                .bind(now)
                .execute()
                .await?;
        }
        tx.commit().await?;
        Ok(BackupCodes { backup_codes: codes.into_iter().collect() })
    }

    /// Emails a one-time code for a pending challenge.
    pub async fn send_email_code(&self, mfa_token: &str) -> Result<()> {
        let (hash, challenge) = self.challenge(mfa_token).await?;
        let user = repo::get_user(&self.db, challenge.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        self.limits.recovery_account.check(&format!("mfa-mail:{}", user.id))?;
        let code = format!("{:06}", rand::random_range(0..1_000_000_u32));
        self.db
            .query("UPDATE mfa_challenges SET email_code_hash = $2, email_code_expires_at = $3 WHERE token_hash = $1")
            .bind(hash)
            .bind(tokens::hash_token(&code))
            .bind(self.now() + Duration::minutes(10))
            .execute()
            .await?;
        let vars = serde_json::json!({ "name": user.name, "code": code });
        self.mailer
            .send_template(Some(user.home_org_id), &user.email, "login_code", user.locale.as_deref(), &vars)
            .await
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(())
    }

    /// Completes a login challenge with a TOTP code, a backup code or an emailed code. A user who
    /// must enrol completes enrolment here (after `POST /api/auth/2fa/enroll`) and also gets their
    /// backup codes in the response's `backup_codes`.
    pub async fn mfa_verify(
        &self,
        request: MfaVerifyRequest,
        client: &ClientInfo,
    ) -> Result<(LoginResponse, Option<BackupCodes>)> {
        let (hash, challenge) = self.challenge(&request.mfa_token).await?;
        let user = repo::get_user(&self.db, challenge.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        if user.disabled {
            return Err(IdentityError::Forbidden("account_disabled", "This account is disabled.".into()));
        }
        let state = self.mfa_state(user.id).await?;
        self.check_lock(&state)?;
        let now = self.now();
        let mut backup = None;
        let (method, amr) = if let Some(code) = &request.code {
            if state.totp_enabled_at.is_none() {
                // Enrolment during login: the first code confirms the new authenticator.
                backup = Some(self.confirm_totp(&user, code, client).await?);
            } else if !self.check_totp(&user, &state, code).await? {
                return Err(self.mfa_failed(user.id, client, "totp").await);
            }
            ("totp", vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()])
        } else if let Some(code) = &request.backup_code {
            let used = self
                .db
                .query("UPDATE backup_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
                .bind(user.id)
                .bind(tokens::hash_token(&normalize_code(code)))
                .bind(now)
                .execute()
                .await?;
            if used == 0 {
                return Err(self.mfa_failed(user.id, client, "backup_code").await);
            }
            ("backup_code", vec!["pwd".to_owned(), "mfa".to_owned()])
        } else if let Some(code) = &request.email_code {
            let valid = challenge.email_code_expires_at.is_some_and(|e| e > now)
                && challenge.email_code_hash.as_deref().is_some_and(|h| same(h, &tokens::hash_token(code.trim())));
            if !valid {
                return Err(self.mfa_failed(user.id, client, "email_code").await);
            }
            if state.totp_enabled_at.is_none()
                && self.config.mfa_enforcement
                && self.mfa_required(&user, &state).await?
            {
                // Required 2FA is enrolment, not email codes forever.
                return Err(IdentityError::Forbidden(
                    "mfa_enrollment_required",
                    "Set up an authenticator app to finish signing in.".into(),
                ));
            }
            ("email_code", vec!["pwd".to_owned(), "mfa".to_owned()])
        } else {
            return Err(IdentityError::Invalid(
                "invalid_request_body",
                "Give `code`, `backup_code` or `email_code`.".into(),
            ));
        };
        let used = self
            .db
            .query("UPDATE mfa_challenges SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
            .bind(hash)
            .bind(now)
            .execute()
            .await?;
        if used == 0 {
            return Err(IdentityError::Invalid(
                "invalid_mfa_token",
                "The sign-in attempt expired; sign in again.".into(),
            ));
        }
        self.db
            .query("UPDATE users SET mfa_failures = 0, mfa_locked_until = NULL, last_login_at = $2 WHERE id = $1")
            .bind(user.id)
            .bind(now)
            .execute()
            .await?;
        let session_client = ClientInfo { ip: challenge.ip.clone(), user_agent: challenge.user_agent.clone() };
        self.notify_new_device(&user, &session_client).await;
        let org = challenge.org_id.unwrap_or(user.home_org_id);
        let tx = self.db.begin().await?;
        let response = self.open_session(tx, user, org, &session_client, amr).await?;
        let mut event = Self::event_from(client, "auth.mfa", Outcome::Success);
        event.actor_id = Some(response.user.id);
        event.details = serde_json::json!({ "method": method });
        self.record(self.about_user(event, response.user.id).await).await;
        Ok((LoginResponse::Tokens(Box::new(response)), backup))
    }

    /// Starts enrolment from a login challenge (users who must use 2FA and have not set it up).
    pub async fn mfa_enroll(&self, mfa_token: &str) -> Result<TotpSetup> {
        let (_, challenge) = self.challenge(mfa_token).await?;
        let user = repo::get_user(&self.db, challenge.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        self.start_totp(&user).await
    }

    /// Turns 2FA off: needs the password and a current code.
    pub async fn mfa_disable(
        &self,
        principal: &Principal,
        password: String,
        code: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        if principal.impersonator.is_some() {
            return Err(IdentityError::Forbidden(
                "impersonation_forbidden",
                "Not while impersonating: the user must do this themselves.".into(),
            ));
        }
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        let state = self.mfa_state(user.id).await?;
        self.check_lock(&state)?;
        if state.totp_enabled_at.is_none() {
            return Err(IdentityError::Conflict("mfa_disabled", "Two-factor authentication is off.".into()));
        }
        if password::verify(password, user.password_hash.clone()).await? == Verified::No {
            return Err(IdentityError::Forbidden("wrong_password", "The password is wrong.".into()));
        }
        if !self.check_totp(&user, &state, code).await? {
            return Err(self.mfa_failed(user.id, client, "totp").await);
        }
        self.clear_mfa(user.id).await?;
        let event = Self::event_by(principal, "mfa.disabled", Outcome::Success);
        self.record(self.about_user(event, user.id).await).await;
        Ok(())
    }

    async fn clear_mfa(&self, user: Uuid) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.query(
            "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL, mfa_failures = 0, \
             mfa_locked_until = NULL WHERE id = $1",
        )
        .bind(user)
        .execute()
        .await?;
        tx.query("DELETE FROM backup_codes WHERE user_id = $1").bind(user).execute().await?;
        tx.commit().await?;
        Ok(())
    }

    /// An administrator resets a user's 2FA (`users.manage` on their organization).
    pub async fn mfa_reset(&self, principal: &Principal, user_id: Uuid) -> Result<()> {
        let (org, _) = {
            let user = repo::get_user(&self.db, user_id).await?.ok_or(IdentityError::NotFound("user"))?;
            self.authorize(principal, user.home_org_id, USERS_MANAGE).await.map_err(|e| match e {
                IdentityError::NotFound(_) => IdentityError::NotFound("user"),
                other => other,
            })?
        };
        self.clear_mfa(user_id).await?;
        repo::revoke_sessions_of(&self.db, user_id, None, "mfa_reset", self.now()).await?;
        self.auth_changed(Change::User(user_id)).await;
        let mut event = Self::event_by(principal, "mfa.reset", Outcome::Success);
        event.target = Some(("user", user_id.to_string()));
        self.record(crate::service::in_org(event, &org)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfa_backup_codes_have_the_documented_shape() {
        let code = backup_code();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert_eq!(normalize_code(" abcd-efgh "), "ABCD-EFGH");
    }

    #[test]
    fn mfa_totp_matches_rfc6238_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        let totp = totp(b"12345678901234567890".to_vec(), "Oppidum", "a@b.c").expect("totp");
        assert_eq!(totp.generate(59), "287082");
    }
}
