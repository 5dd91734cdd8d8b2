//! WebDAV locks kept in the database, so that a lock taken through one node holds on every node.
//! One lock system per drive and request; the rules (shared/exclusive, depth, tokens, owners)
//! are those of RFC 4918 §6–7 as dav-server expects them.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures::FutureExt;
use oppidum_store::{Backend, Db, StoreError};
use xmltree::Element;

/// Longest lock granted; clients asking for more (or infinite) get this.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub(crate) struct DbLocks {
    db: Db,
    drive: String,
    /// The live locks as read for lock discovery in this request: a `PROPFIND Depth: 1` asks for
    /// every entry's locks, answered from one read. Checks before writes always read afresh.
    discovered: std::sync::Arc<std::sync::Mutex<Option<Vec<DavLock>>>>,
}

#[derive(oppidum_store::FromRow)]
struct Row {
    token: String,
    path: String,
    principal: Option<String>,
    owner_xml: Option<String>,
    shared: bool,
    deep: bool,
    timeout_secs: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_lock(self) -> Option<DavLock> {
        let path = DavPath::new(&self.path).ok()?;
        Some(DavLock {
            token: self.token,
            path: Box::new(path),
            principal: self.principal,
            owner: self.owner_xml.as_deref().and_then(owner_from_xml).map(Box::new),
            timeout_at: self.expires_at.map(SystemTime::from),
            timeout: self.timeout_secs.and_then(|s| u64::try_from(s).ok()).map(Duration::from_secs),
            shared: self.shared,
            deep: self.deep,
        })
    }
}

/// Serializes a lock owner. Elements parsed from a request may use a prefix declared on an
/// ancestor that is not stored: declare each prefix where it is used so the XML stands alone.
pub(super) fn owner_to_xml(owner: &Element) -> Option<String> {
    fn bind_prefixes(element: &mut Element) {
        if let (Some(prefix), Some(namespace)) = (element.prefix.clone(), element.namespace.clone()) {
            element.namespaces.get_or_insert_with(xmltree::Namespace::empty).put(prefix, namespace);
        }
        for child in &mut element.children {
            if let xmltree::XMLNode::Element(child) = child {
                bind_prefixes(child);
            }
        }
    }
    let mut owner = owner.clone();
    bind_prefixes(&mut owner);
    let mut out = Vec::new();
    owner.write(&mut out).ok()?;
    String::from_utf8(out).ok()
}

fn owner_from_xml(xml: &str) -> Option<Element> {
    Element::parse(xml.as_bytes()).ok()
}

/// The segments of a lock or request path (`/a/b/` → `["a", "b"]`).
fn segments(path: &DavPath) -> Vec<Vec<u8>> {
    path.as_bytes().split(|&c| c == b'/').filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Whether `lock` covers the resource whose path has the segments `target`: a lock on it, or on
/// an ancestor with depth infinity (lock discovery, RFC 4918 §15.8).
pub(super) fn covers<T: AsRef<[u8]>>(lock: &DavLock, target: &[T]) -> bool {
    let at = segments(&lock.path);
    target.len() >= at.len()
        && at.iter().zip(target).all(|(a, t)| a.as_slice() == t.as_ref())
        && (at.len() == target.len() || lock.deep)
}

/// Who asks, with which lock tokens.
#[derive(Clone, Copy)]
struct Caller<'a> {
    principal: Option<&'a str>,
    /// Any principal may use the tokens (lock decisions, not writes).
    ignore_principal: bool,
    tokens: &'a [String],
}

impl Caller<'_> {
    const NOBODY: Caller<'static> = Caller { principal: None, ignore_principal: true, tokens: &[] };

    fn holds(&self, lock: &DavLock) -> bool {
        self.tokens.contains(&lock.token) && (self.ignore_principal || self.principal == lock.principal.as_deref())
    }
}

/// Locks on `path` or on an ancestor with depth infinity: one not held conflicts, except that
/// shared locks only conflict when none of the covering locks is held (or, with `shared_ok`,
/// never: a new shared lock may join them).
fn check_to_path(locks: &[DavLock], path: &DavPath, caller: Caller<'_>, shared_ok: bool) -> Result<(), DavLock> {
    let target = segments(path);
    let mut held = false;
    let mut first_shared: Option<&DavLock> = None;
    for lock in locks {
        let at = segments(&lock.path);
        if !target.starts_with(&at) || (at.len() < target.len() && !lock.deep) {
            continue;
        }
        if caller.holds(lock) {
            held = true;
        } else if !lock.shared {
            return Err(lock.clone());
        } else if !shared_ok {
            first_shared.get_or_insert(lock);
        }
    }
    match first_shared {
        Some(lock) if !held => Err(lock.clone()),
        _ => Ok(()),
    }
}

/// Locks on `path` or below it: any not held conflicts (shared ones too, unless `shared_ok`).
fn check_below_path(locks: &[DavLock], path: &DavPath, caller: Caller<'_>, shared_ok: bool) -> Result<(), DavLock> {
    let target = segments(path);
    for lock in locks {
        if segments(&lock.path).starts_with(&target) && (!lock.shared || !shared_ok) && !caller.holds(lock) {
            return Err(lock.clone());
        }
    }
    Ok(())
}

impl DbLocks {
    pub(crate) fn new(db: Db, drive: String) -> Self {
        Self { db, drive, discovered: std::sync::Arc::default() }
    }

    /// Forgets the locks read for discovery: called before any lock changes.
    fn forget_discovered(&self) {
        *self.discovered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    const SELECT: &'static str = "SELECT token, path, principal, owner_xml, shared, deep, timeout_secs, expires_at \
         FROM dav_locks WHERE drive = $1 AND (expires_at IS NULL OR expires_at > $2)";

    /// The locks in force on this drive.
    pub(super) async fn live(&self) -> Result<Vec<DavLock>, StoreError> {
        let rows: Vec<Row> = self.db.query(Self::SELECT).bind(self.drive.as_str()).bind(Utc::now()).fetch_all().await?;
        Ok(rows.into_iter().filter_map(Row::into_lock).collect())
    }

    /// The lock holding `token` on `path` or an ancestor.
    async fn find(&self, path: &DavPath, token: &str) -> Result<Option<DavLock>, StoreError> {
        let target = segments(path);
        Ok(self.live().await?.into_iter().find(|l| l.token == token && target.starts_with(&segments(&l.path))))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_lock(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> Result<Result<DavLock, DavLock>, StoreError> {
        let mut tx = self.db.begin().await?;
        if tx.backend() == Backend::Postgres {
            // Serializes lock decisions on this drive across nodes; released at commit.
            tx.query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(self.drive.as_str()).execute().await?;
        }
        let now = Utc::now();
        tx.query("DELETE FROM dav_locks WHERE drive = $1 AND expires_at <= $2")
            .bind(self.drive.as_str())
            .bind(now)
            .execute()
            .await?;
        let rows: Vec<Row> = tx.query(Self::SELECT).bind(self.drive.as_str()).bind(now).fetch_all().await?;
        let locks: Vec<DavLock> = rows.into_iter().filter_map(Row::into_lock).collect();
        if let Err(conflict) = check_to_path(&locks, path, Caller::NOBODY, shared) {
            return Ok(Err(conflict));
        }
        if deep && let Err(conflict) = check_below_path(&locks, path, Caller::NOBODY, shared) {
            return Ok(Err(conflict));
        }
        let timeout = Some(timeout.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT));
        let expires = timeout.map(|t| now + chrono::Duration::from_std(t).unwrap_or(chrono::Duration::hours(24)));
        let lock = DavLock {
            token: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            path: Box::new(path.clone()),
            principal: principal.map(str::to_owned),
            owner: owner.map(|o| Box::new(o.clone())),
            timeout_at: expires.map(SystemTime::from),
            timeout,
            shared,
            deep,
        };
        let owner_xml = owner.and_then(owner_to_xml);
        tx.query(
            "INSERT INTO dav_locks (token, drive, path, principal, owner_xml, shared, deep, timeout_secs, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(lock.token.as_str())
        .bind(self.drive.as_str())
        .bind(path.as_url_string())
        .bind(lock.principal.clone())
        .bind(owner_xml)
        .bind(shared)
        .bind(deep)
        .bind(timeout.map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)))
        .bind(expires)
        .bind(now)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(Ok(lock))
    }

    async fn try_refresh(
        &self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<DavLock>, StoreError> {
        let Some(mut lock) = self.find(path, token).await? else { return Ok(None) };
        let timeout = timeout.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT);
        let expires = Utc::now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::hours(24));
        self.db
            .query("UPDATE dav_locks SET timeout_secs = $2, expires_at = $3 WHERE token = $1")
            .bind(token)
            .bind(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX))
            .bind(expires)
            .execute()
            .await?;
        lock.timeout = Some(timeout);
        lock.timeout_at = Some(SystemTime::from(expires));
        Ok(Some(lock))
    }

    async fn remove_below(&self, path: &DavPath) -> Result<(), StoreError> {
        let target = segments(path);
        for lock in self.live().await? {
            if segments(&lock.path).starts_with(&target) {
                self.db.query("DELETE FROM dav_locks WHERE token = $1").bind(lock.token.as_str()).execute().await?;
            }
        }
        Ok(())
    }
}

fn log_failure<T>(outcome: Result<T, StoreError>, fallback: T) -> T {
    outcome.unwrap_or_else(|err| {
        tracing::error!(error = %err, "WebDAV lock storage failed");
        fallback
    })
}

impl DavLockSystem for DbLocks {
    fn lock(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        self.forget_discovered();
        let (path, principal, owner) = (path.clone(), principal.map(str::to_owned), owner.cloned());
        async move {
            match self.try_lock(&path, principal.as_deref(), owner.as_ref(), timeout, shared, deep).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    // No way to say "server error" here: report a conflict with a lock nobody holds.
                    tracing::error!(error = %err, "WebDAV lock storage failed");
                    Err(DavLock {
                        token: String::new(),
                        path: Box::new(path),
                        principal: None,
                        owner: None,
                        timeout_at: None,
                        timeout: None,
                        shared: false,
                        deep: false,
                    })
                }
            }
        }
        .boxed()
    }

    fn unlock(&self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        self.forget_discovered();
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            match self.find(&path, &token).await {
                Ok(Some(_)) => {
                    let deleted =
                        self.db.query("DELETE FROM dav_locks WHERE token = $1").bind(token.as_str()).execute();
                    log_failure(deleted.await.map(|_| Ok(())), Err(()))
                }
                other => log_failure(other.map(|_| Err(())), Err(())),
            }
        }
        .boxed()
    }

    fn refresh(&self, path: &DavPath, token: &str, timeout: Option<Duration>) -> LsFuture<'_, Result<DavLock, ()>> {
        self.forget_discovered();
        let (path, token) = (path.clone(), token.to_owned());
        async move { log_failure(self.try_refresh(&path, &token, timeout).await.map(|l| l.ok_or(())), Err(())) }.boxed()
    }

    fn check(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal, tokens) = (path.clone(), principal.map(str::to_owned), submitted_tokens.to_vec());
        async move {
            let locks = log_failure(self.live().await, Vec::new());
            let caller = Caller { principal: principal.as_deref(), ignore_principal, tokens: &tokens };
            check_to_path(&locks, &path, caller, false)?;
            if deep {
                check_below_path(&locks, &path, caller, false)?;
            }
            Ok(())
        }
        .boxed()
    }

    fn discover(&self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let target = segments(&path);
            let known = self.discovered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let locks = match known {
                Some(locks) => locks,
                None => {
                    let locks = log_failure(self.live().await, Vec::new());
                    *self.discovered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(locks.clone());
                    locks
                }
            };
            locks.into_iter().filter(|l| covers(l, &target)).collect()
        }
        .boxed()
    }

    fn delete(&self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        self.forget_discovered();
        let path = path.clone();
        async move { log_failure(self.remove_below(&path).await.map(Ok), Err(())) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, token: &str, shared: bool, deep: bool) -> DavLock {
        DavLock {
            token: token.into(),
            path: Box::new(DavPath::new(path).expect("path")),
            principal: Some("u".into()),
            owner: None,
            timeout_at: None,
            timeout: None,
            shared,
            deep,
        }
    }

    fn path(p: &str) -> DavPath {
        DavPath::new(p).expect("path")
    }

    #[test]
    fn dav_lock_owners_survive_storage() {
        let mut owner = Element::new("owner");
        owner.prefix = Some("D".into());
        owner.namespace = Some("DAV:".into());
        owner.children.push(xmltree::XMLNode::Text("litmus test suite".into()));
        let stored = owner_to_xml(&owner).expect("serialized");
        let back = owner_from_xml(&stored).expect("parsed");
        assert_eq!(back.get_text().as_deref(), Some("litmus test suite"), "{stored}");
    }

    #[test]
    fn dav_locks_follow_depth_and_tokens() {
        let locks = vec![lock("/a/", "t1", false, true)];
        let tokens = ["t1".to_owned()];
        let u = Caller { principal: Some("u"), ignore_principal: false, tokens: &[] };
        let u_with_token = Caller { tokens: &tokens, ..u };
        let v_with_token = Caller { principal: Some("v"), ..u_with_token };
        assert!(check_to_path(&locks, &path("/a/b"), u, false).is_err(), "deep lock covers b");
        assert!(check_to_path(&locks, &path("/a/b"), u_with_token, false).is_ok(), "token held");
        assert!(check_to_path(&locks, &path("/a/b"), v_with_token, false).is_err(), "other principal");
        assert!(check_to_path(&locks, &path("/ab"), u, false).is_ok(), "sibling prefix");
        let shallow = vec![lock("/a/", "t2", false, false)];
        assert!(check_to_path(&shallow, &path("/a/b"), u, false).is_ok(), "depth 0");
        assert!(check_below_path(&shallow, &path("/"), u, false).is_err(), "below root");
        let shared = vec![lock("/f", "s1", true, false)];
        assert!(check_to_path(&shared, &path("/f"), Caller::NOBODY, true).is_ok(), "shared joins shared");
        assert!(check_to_path(&shared, &path("/f"), Caller::NOBODY, false).is_err(), "exclusive refused");
    }

    #[test]
    fn locks_cover_their_path_and_with_depth_infinity_what_is_below() {
        let target = |p: &str| p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        assert!(covers(&lock("/a", "t", false, false), &target("/a")));
        assert!(!covers(&lock("/a", "t", false, false), &target("/a/b")));
        assert!(covers(&lock("/a/", "t", false, true), &target("/a/b")));
        assert!(!covers(&lock("/a", "t", false, true), &target("/ab")));
        assert!(!covers(&lock("/a/b", "t", false, true), &target("/a")));
    }
}
