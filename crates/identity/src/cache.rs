//! The authentication cache: a credential verified against the database (an access token, an API
//! key, an app password over HTTP Basic) and the principal behind it are reused for a short time
//! instead of reading the session, the user and the memberships again on every request.
//!
//! Two things keep it honest. Every change that affects a principal (sign-out, a revoked session,
//! a password, role or membership change, a disabled user, a deleted credential) invalidates the
//! entries of that user — or all of them — on this node at once and on the other nodes through
//! the event bus ([`AUTH_CHANGED`]). And no entry lives longer than the configured time to live
//! (1 s by default), so a notification lost while a node's listener reconnects cannot keep a
//! revoked credential alive for longer than that.
//!
//! A lookup that misses reads the database, then stores what it read only if no invalidation
//! happened in between (an epoch counter taken before the read): a revocation committed while the
//! read was in flight can never be overwritten by the stale result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use oppidum_core::Principal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The event bus topic announcing that principals changed: payload `{"user": "<id>"}` or
/// `{"all": true}`.
pub const AUTH_CHANGED: &str = "identity.auth.changed";

/// Entries kept at most; past it, expired ones are dropped, and if that is not enough, all.
const MAX_ENTRIES: usize = 100_000;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something about one user: their sessions, password, state, memberships or credentials.
    User(Uuid),
    /// Something that may affect anyone (a custom role's permissions, an organization moved or
    /// deleted, an API key deleted).
    All,
}

impl Change {
    /// The event payload announcing it.
    pub fn payload(self) -> serde_json::Value {
        match self {
            Self::User(id) => serde_json::json!({ "user": id }),
            Self::All => serde_json::json!({ "all": true }),
        }
    }

    /// Reads a payload of [`AUTH_CHANGED`]; anything unreadable means everything.
    pub fn from_payload(payload: &serde_json::Value) -> Self {
        payload
            .get("user")
            .and_then(serde_json::Value::as_str)
            .and_then(|id| id.parse().ok())
            .map_or(Self::All, Self::User)
    }
}

/// A cache key: the SHA-256 of the credential as presented (secrets are not kept in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of a credential made of `parts` (a token; or a scope, a login and a password).
    pub fn of(parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Self(hasher.finalize().into())
    }
}

struct Entry {
    principal: Principal,
    /// Monotonic end of life: verified at most `ttl` ago.
    until: Instant,
    /// The credential's own expiry (Unix seconds, on the service's clock), if it has one.
    expires_at: Option<i64>,
}

/// Verified credentials; cheap to share behind the identity service.
pub struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<Key, Entry>>,
    epoch: AtomicU64,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl AuthCache {
    /// A cache whose entries live at most `ttl`; a zero `ttl` caches nothing.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::new()), epoch: AtomicU64::new(0) }
    }

    /// Taken before reading the database: [`AuthCache::put`] stores the result only if nothing was
    /// invalidated since.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The principal of a credential verified less than `ttl` ago and not expired at `now`
    /// (Unix seconds).
    pub fn get(&self, key: &Key, now: i64) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key)?;
        let live = entry.until > Instant::now() && entry.expires_at.is_none_or(|exp| exp > now);
        live.then(|| entry.principal.clone())
    }

    /// Remembers a verification made after `epoch` was taken.
    pub fn put(&self, key: Key, principal: Principal, expires_at: Option<i64>, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let until = Instant::now() + self.ttl;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock: an invalidation either happened before (then this read may be
        // stale and is dropped) or happens after (then it removes this entry).
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, e| e.until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { principal, until, expires_at });
    }

    /// Forgets what `change` may have made wrong.
    pub fn invalidate(&self, change: Change) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match change {
            Change::All => entries.clear(),
            Change::User(user) => entries.retain(|_, e| e.principal.user_id != user),
        }
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use oppidum_core::principal::Credential;

    use super::*;

    fn principal(user: Uuid) -> Principal {
        Principal {
            user_id: user,
            org_id: Uuid::now_v7(),
            permissions: BTreeSet::new(),
            role: None,
            instance_admin: false,
            credential: Credential::Session { session_id: Uuid::now_v7() },
            impersonator: None,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn cache_returns_live_entries_and_forgets_changed_users() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (ka, kb) = (Key::of(&["token-a"]), Key::of(&["token-b"]));
        cache.put(ka, principal(alice), Some(100), cache.epoch());
        cache.put(kb, principal(bob), None, cache.epoch());
        assert_eq!(cache.get(&ka, 50).map(|p| p.user_id), Some(alice));
        assert!(cache.get(&ka, 100).is_none(), "the credential's own expiry holds");
        cache.invalidate(Change::User(alice));
        assert!(cache.get(&ka, 50).is_none());
        assert_eq!(cache.get(&kb, 50).map(|p| p.user_id), Some(bob));
        cache.invalidate(Change::All);
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_drops_a_read_overtaken_by_an_invalidation() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let user = Uuid::now_v7();
        let key = Key::of(&["token"]);
        let before = cache.epoch();
        // The session is revoked while the database read is in flight.
        cache.invalidate(Change::User(user));
        cache.put(key, principal(user), None, before);
        assert!(cache.get(&key, 0).is_none());
    }

    #[test]
    fn cache_entries_end_after_their_time_to_live() {
        let cache = AuthCache::new(Duration::from_millis(30));
        let key = Key::of(&["token"]);
        cache.put(key, principal(Uuid::now_v7()), None, cache.epoch());
        assert!(cache.get(&key, 0).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&key, 0).is_none());
        let off = AuthCache::new(Duration::ZERO);
        off.put(key, principal(Uuid::now_v7()), None, off.epoch());
        assert!(off.get(&key, 0).is_none());
    }

    #[test]
    fn cache_keys_separate_parts_and_changes_round_trip() {
        assert_ne!(Key::of(&["ab", "c"]), Key::of(&["a", "bc"]));
        let user = Uuid::now_v7();
        assert_eq!(Change::from_payload(&Change::User(user).payload()), Change::User(user));
        assert_eq!(Change::from_payload(&Change::All.payload()), Change::All);
        assert_eq!(Change::from_payload(&serde_json::json!({"user": "nope"})), Change::All);
    }
}
