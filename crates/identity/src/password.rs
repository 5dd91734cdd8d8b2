//! Password hashing: Argon2id with OWASP parameters (19 MiB, 2 iterations, 1 lane), run on
//! (cores - 1) dedicated threads at the lowest scheduling priority, so a login storm cannot starve
//! other requests. bcrypt hashes imported from other systems verify, and the caller re-hashes them
//! with Argon2id at the next login.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{IdentityError, Result};

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_LEN: usize = 1_024;
/// Longest password in characters (as the OpenAPI document says; at most `MAX_LEN` bytes).
pub const MAX_CHARS: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: every core but one, at the lowest scheduling priority, so a login storm
/// takes the idle CPU and never the time other requests need.
static HASHERS: LazyLock<Sender<Job>> = LazyLock::new(|| {
    let (sender, receiver) = channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(2).saturating_sub(1).max(1);
    for n in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new().name(format!("oppidum-hash-{n}")).spawn(move || hasher(&receiver));
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start a password hashing thread");
        }
    }
    sender
});

fn hasher(jobs: &Mutex<Receiver<Job>>) {
    if let Err(err) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::debug!(error = ?err, "cannot lower the priority of the hashing thread");
    }
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs a hashing job on the hashing threads.
async fn run_hashing<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    HASHERS
        .send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .map_err(|_| IdentityError::Internal("the password hashing threads stopped".into()))?;
    answer.await.map_err(|_| IdentityError::Internal("a password hashing job was lost".into()))
}

fn argon2() -> Argon2<'static> {
    // OWASP: m = 19456 KiB, t = 2, p = 1. The constants are valid, so `new` cannot fail.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password policy.
pub fn validate(password: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(IdentityError::Invalid(
            "weak_password",
            format!("The password must have at least {MIN_LEN} characters."),
        ));
    }
    if len > MAX_CHARS || password.len() > MAX_LEN {
        return Err(IdentityError::Invalid(
            "weak_password",
            format!("The password must have at most {MAX_CHARS} characters."),
        ));
    }
    Ok(())
}

/// Hashes with Argon2id, off the async threads.
pub async fn hash(password: String) -> Result<String> {
    run_hashing(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| IdentityError::Internal(e.to_string()))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| IdentityError::Internal(e.to_string()))
    })
    .await?
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but stored with an outdated scheme (bcrypt): re-hash it.
    YesRehash,
}

/// A valid Argon2id hash of a random password, verified against when the email is unknown so
/// both paths cost the same.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Q2dJ6xHLGAeJfU0TzdRpa6zAqTLbMdybIOB6WysWuFg";

/// Verifies `password` against `stored` (Argon2id or bcrypt); with `None`, burns the same time and
/// answers no.
pub async fn verify(password: String, stored: Option<String>) -> Result<Verified> {
    run_hashing(move || {
        let Some(stored) = stored else {
            if let Ok(parsed) = PasswordHash::new(DUMMY_HASH) {
                let _ = argon2().verify_password(password.as_bytes(), &parsed);
            }
            return Verified::No;
        };
        if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
            return match bcrypt::verify(&password, &stored) {
                Ok(true) => Verified::YesRehash,
                _ => Verified::No,
            };
        }
        match PasswordHash::new(&stored) {
            // verify_password compares in constant time.
            Ok(parsed) if argon2().verify_password(password.as_bytes(), &parsed).is_ok() => Verified::Yes,
            _ => Verified::No,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_argon2_round_trip() {
        let hashed = hash("correct horse battery".into()).await.expect("hash");
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(verify("correct horse battery".into(), Some(hashed.clone())).await.expect("v"), Verified::Yes);
        assert_eq!(verify("wrong horse battery".into(), Some(hashed)).await.expect("v"), Verified::No);
        assert_eq!(verify("anything at all".into(), None).await.expect("v"), Verified::No);
    }

    #[tokio::test]
    async fn password_bcrypt_imports_verify_and_ask_for_rehash() {
        let imported = bcrypt::hash("legacy password", 4).expect("bcrypt");
        assert_eq!(verify("legacy password".into(), Some(imported.clone())).await.expect("v"), Verified::YesRehash);
        assert_eq!(verify("other password".into(), Some(imported)).await.expect("v"), Verified::No);
    }

    #[test]
    fn password_policy() {
        assert!(validate("short").is_err());
        assert!(validate("long enough!").is_ok());
        assert!(validate(&"x".repeat(2_000)).is_err());
    }

    #[test]
    fn password_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
