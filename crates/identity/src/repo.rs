//! Identity's SQL, written once for SQLite and PostgreSQL. Callers scope every query; nothing here
//! decides who may see what.

use chrono::{DateTime, Utc};
use oppidum_store::{Db, DecodeError, FromRow, Row, StoreError, Tx};
use uuid::Uuid;

use crate::model::{Member, Org, RoleRow, Session, User};

/// `SELECT <every User column> FROM users <tail>`, as a static string.
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, name, password_hash, home_org_id, instance_admin, disabled, token_version, locale, ",
            "created_at, updated_at, last_login_at, email_verified_at FROM users ",
            $tail
        )
    };
}

/// `SELECT <every Org column> FROM orgs <tail>`, as a static string.
macro_rules! select_orgs {
    ($tail:literal) => {
        concat!(
            "SELECT id, parent_id, path, name, kind, require_verified_email, mfa_required_roles, created_at, ",
            "updated_at FROM orgs ",
            $tail
        )
    };
}

pub async fn get_user(db: &Db, id: Uuid) -> Result<Option<User>, StoreError> {
    db.query(select_users!("WHERE id = $1")).bind(id).fetch_optional().await
}

/// A user and an organization, read by one statement.
pub struct UserAndOrg(pub User, pub Org);

impl FromRow for UserAndOrg {
    const COLUMNS: usize = User::COLUMNS + Org::COLUMNS;

    /// The user's columns first (as `select_users!` lists them), then the organization's.
    fn from_row(row: &Row<'_>) -> Result<Self, DecodeError> {
        Ok(Self(User::from_row(row)?, Org::from_row(&row.after(User::COLUMNS))?))
    }
}

/// The user `user` and the organization `org` in one round trip; `None` if either is missing.
pub async fn get_user_and_org(db: &Db, user: Uuid, org: Uuid) -> Result<Option<UserAndOrg>, StoreError> {
    db.query(
        "SELECT u.id, u.email, u.name, u.password_hash, u.home_org_id, u.instance_admin, u.disabled, \
         u.token_version, u.locale, u.created_at, u.updated_at, u.last_login_at, u.email_verified_at, \
         o.id, o.parent_id, o.path, o.name, o.kind, o.require_verified_email, o.mfa_required_roles, o.created_at, \
         o.updated_at FROM users u, orgs o WHERE u.id = $1 AND o.id = $2",
    )
    .bind(user)
    .bind(org)
    .fetch_optional()
    .await
}

pub async fn get_user_by_email(db: &Db, email: &str) -> Result<Option<User>, StoreError> {
    db.query(select_users!("WHERE email = $1")).bind(email).fetch_optional().await
}

/// Inserts a user and its home membership.
pub async fn create_user(tx: &mut Tx, user: &User, role: &str) -> Result<(), StoreError> {
    tx.query(
        "INSERT INTO users (id, email, name, password_hash, home_org_id, instance_admin, disabled, token_version, \
         locale, created_at, updated_at, email_verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
    )
    .bind(user.id)
    .bind(user.email.as_str())
    .bind(user.name.as_str())
    .bind(user.password_hash.clone())
    .bind(user.home_org_id)
    .bind(user.instance_admin)
    .bind(user.disabled)
    .bind(user.token_version)
    .bind(user.locale.clone())
    .bind(user.created_at)
    .bind(user.email_verified_at)
    .execute()
    .await?;
    tx.query("INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id)
        .bind(user.home_org_id)
        .bind(role)
        .bind(user.created_at)
        .execute()
        .await?;
    Ok(())
}

pub async fn set_password(
    db: &Db,
    user: Uuid,
    hash: &str,
    bump_version: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.query("UPDATE users SET password_hash = $2, token_version = token_version + $3, updated_at = $4 WHERE id = $1")
        .bind(user)
        .bind(hash)
        .bind(i64::from(bump_version))
        .bind(now)
        .execute()
        .await?;
    Ok(())
}

pub async fn touch_login(db: &Db, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
    db.query("UPDATE users SET last_login_at = $2 WHERE id = $1").bind(user).bind(now).execute().await?;
    Ok(())
}

pub async fn update_user(
    db: &Db,
    id: Uuid,
    name: Option<&str>,
    disabled: Option<bool>,
    locale: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.query(
        "UPDATE users SET name = COALESCE($2, name), disabled = COALESCE($3, disabled), \
         locale = COALESCE($4, locale), updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(disabled)
    .bind(locale)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

pub async fn delete_user(db: &Db, id: Uuid) -> Result<u64, StoreError> {
    db.query("DELETE FROM users WHERE id = $1").bind(id).execute().await
}

/// Users whose home organization is in one of the subtrees `paths`, matching `search`, after
/// `after` (id order), at most `limit`.
pub async fn list_users_in(
    tx: &mut Tx,
    paths: &[String],
    search: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let pattern = search.map(|s| format!("%{}%", s.to_lowercase().replace(['%', '_', '\\'], "")));
    let sql = match tx.backend() {
        oppidum_store::Backend::Postgres => LIST_USERS_POSTGRES,
        oppidum_store::Backend::Sqlite => LIST_USERS_SQLITE,
    };
    tx.query(sql).bind(serde_json::Value::from(paths.to_vec())).bind(pattern).bind(after).bind(limit).fetch_all().await
}

const LIST_USERS_POSTGRES: &str = "SELECT u.id, u.email, u.name, u.password_hash, u.home_org_id, u.instance_admin, \
     u.disabled, u.token_version, u.locale, u.created_at, u.updated_at, u.last_login_at, u.email_verified_at \
     FROM users u JOIN orgs o ON o.id = u.home_org_id \
     WHERE EXISTS (SELECT 1 FROM jsonb_array_elements_text($1) AS p(prefix) \
                   WHERE CASE WHEN substr(p.prefix, 1, 1) = '=' THEN o.path = substr(p.prefix, 2) \
                              ELSE substr(o.path, 1, length(p.prefix)) = p.prefix END) \
       AND ($2::text IS NULL OR lower(u.email) LIKE $2 OR lower(u.name) LIKE $2) \
       AND ($3::uuid IS NULL OR u.id > $3) ORDER BY u.id LIMIT $4";

const LIST_USERS_SQLITE: &str = "SELECT u.id, u.email, u.name, u.password_hash, u.home_org_id, u.instance_admin, \
     u.disabled, u.token_version, u.locale, u.created_at, u.updated_at, u.last_login_at, u.email_verified_at \
     FROM users u JOIN orgs o ON o.id = u.home_org_id \
     WHERE EXISTS (SELECT 1 FROM json_each($1) AS p \
                   WHERE CASE WHEN substr(p.value, 1, 1) = '=' THEN o.path = substr(p.value, 2) \
                              ELSE substr(o.path, 1, length(p.value)) = p.value END) \
       AND ($2 IS NULL OR lower(u.email) LIKE $2 OR lower(u.name) LIKE $2) \
       AND ($3 IS NULL OR u.id > $3) ORDER BY u.id LIMIT $4";

pub async fn get_org(db: &Db, id: Uuid) -> Result<Option<Org>, StoreError> {
    db.query(select_orgs!("WHERE id = $1")).bind(id).fetch_optional().await
}

pub async fn root_org(db: &Db) -> Result<Option<Org>, StoreError> {
    db.query(select_orgs!("WHERE parent_id IS NULL")).fetch_optional().await
}

pub async fn insert_org(db: &Db, org: &Org) -> Result<(), StoreError> {
    db.query(
        "INSERT INTO orgs (id, parent_id, path, name, kind, require_verified_email, mfa_required_roles, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7)",
    )
    .bind(org.id)
    .bind(org.parent_id)
    .bind(org.path.as_str())
    .bind(org.name.as_str())
    .bind(org.kind.as_str())
    .bind(org.require_verified_email)
    .bind(org.created_at)
    .bind(serde_json::Value::from(org.mfa_required_roles.0.clone()))
    .execute()
    .await?;
    Ok(())
}

pub async fn update_org(
    db: &Db,
    id: Uuid,
    name: Option<&str>,
    kind: Option<&str>,
    require_verified_email: Option<bool>,
    mfa_required_roles: Option<&[String]>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.query(
        "UPDATE orgs SET name = COALESCE($2, name), kind = COALESCE($3, kind), \
         require_verified_email = COALESCE($5, require_verified_email), \
         mfa_required_roles = COALESCE($6, mfa_required_roles), updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(kind)
    .bind(now)
    .bind(require_verified_email)
    .bind(mfa_required_roles.map(|r| serde_json::Value::from(r.to_vec())))
    .execute()
    .await?;
    Ok(())
}

pub async fn delete_org(db: &Db, id: Uuid) -> Result<u64, StoreError> {
    db.query("DELETE FROM orgs WHERE id = $1").bind(id).execute().await
}

/// Whether the organization has children or users living in it.
pub async fn org_in_use(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let (count,): (i64,) = db
        .query(
            "SELECT (SELECT COUNT(*) FROM orgs WHERE parent_id = $1) + (SELECT COUNT(*) FROM users WHERE home_org_id = $1)",
        )
        .bind(id)
        .fetch_one()
        .await?;
    Ok(count > 0)
}

/// Organizations inside the subtree rooted at `path`.
/// The organizations a scope entry covers: `=<path>` that one alone, `<path>` its subtree.
pub async fn orgs_under(tx: &mut Tx, entry: &str) -> Result<Vec<Org>, StoreError> {
    match entry.strip_prefix('=') {
        Some(path) => tx.query(select_orgs!("WHERE path = $1")).bind(path).fetch_all().await,
        None => {
            tx.query(select_orgs!("WHERE substr(path, 1, length($1)) = $1 ORDER BY path")).bind(entry).fetch_all().await
        }
    }
}

/// A user's memberships: (organization path, role name).
pub async fn memberships_of(db: &Db, user: Uuid) -> Result<Vec<(Uuid, String, String)>, StoreError> {
    db.query("SELECT m.org_id, o.path, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1")
        .bind(user)
        .fetch_all()
        .await
}

pub async fn members_of(tx: &mut Tx, org: Uuid) -> Result<Vec<Member>, StoreError> {
    tx.query(
        "SELECT m.user_id, m.org_id, u.email, u.name, m.role, m.created_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.email",
    )
    .bind(org)
    .fetch_all()
    .await
}

pub async fn get_member(db: &Db, org: Uuid, user: Uuid) -> Result<Option<Member>, StoreError> {
    db.query(
        "SELECT m.user_id, m.org_id, u.email, u.name, m.role, m.created_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2",
    )
    .bind(org)
    .bind(user)
    .fetch_optional()
    .await
}

pub async fn upsert_member(db: &Db, org: Uuid, user: Uuid, role: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    db.query(
        "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
    )
    .bind(user)
    .bind(org)
    .bind(role)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

pub async fn delete_member(db: &Db, org: Uuid, user: Uuid) -> Result<u64, StoreError> {
    db.query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2").bind(org).bind(user).execute().await
}

/// Custom roles defined on any of the organizations `org_ids`.
pub async fn roles_on(db: &Db, org_ids: &[Uuid]) -> Result<Vec<RoleRow>, StoreError> {
    let ids: Vec<String> = org_ids.iter().map(Uuid::to_string).collect();
    let sql = match db.backend() {
        oppidum_store::Backend::Postgres => {
            "SELECT id, org_id, name, description, permissions FROM roles \
             WHERE org_id::text IN (SELECT jsonb_array_elements_text($1))"
        }
        // SQLite stores UUIDs as blobs; compare through their hex text.
        oppidum_store::Backend::Sqlite => {
            "SELECT id, org_id, name, description, permissions FROM roles \
             WHERE lower(hex(org_id)) IN (SELECT replace(value, '-', '') FROM json_each($1))"
        }
    };
    db.query(sql).bind(serde_json::Value::from(ids)).fetch_all().await
}

pub async fn insert_role(db: &Db, row: &RoleRow, now: DateTime<Utc>) -> Result<(), StoreError> {
    db.query(
        "INSERT INTO roles (id, org_id, name, description, permissions, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(row.id)
    .bind(row.org_id)
    .bind(row.name.as_str())
    .bind(row.description.as_str())
    .bind(serde_json::Value::from(row.permissions.0.clone()))
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

pub async fn update_role(
    db: &Db,
    id: Uuid,
    description: &str,
    permissions: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.query("UPDATE roles SET description = $2, permissions = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(serde_json::Value::from(permissions.to_vec()))
        .bind(now)
        .execute()
        .await?;
    Ok(())
}

pub async fn delete_role(db: &Db, id: Uuid) -> Result<u64, StoreError> {
    db.query("DELETE FROM roles WHERE id = $1").bind(id).execute().await
}

/// Whether any membership in the subtree `path` uses role `name`.
pub async fn role_in_use(db: &Db, path: &str, name: &str) -> Result<bool, StoreError> {
    let (count,): (i64,) = db
        .query(
            "SELECT COUNT(*) FROM memberships m JOIN orgs o ON o.id = m.org_id \
             WHERE m.role = $2 AND substr(o.path, 1, length($1)) = $1",
        )
        .bind(path)
        .bind(name)
        .fetch_one()
        .await?;
    Ok(count > 0)
}

pub async fn insert_session(tx: &mut Tx, session: &Session, refresh_hash: &str) -> Result<(), StoreError> {
    tx.query(
        "INSERT INTO sessions (id, user_id, org_id, ip, user_agent, created_at, last_used_at, expires_at, amr) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.org_id)
    .bind(session.ip.clone())
    .bind(session.user_agent.clone())
    .bind(session.created_at)
    .bind(session.expires_at)
    .bind(serde_json::Value::from(session.amr.0.clone()))
    .execute()
    .await?;
    tx.query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(refresh_hash)
        .bind(session.id)
        .bind(session.created_at)
        .execute()
        .await?;
    Ok(())
}

pub async fn get_session(db: &Db, id: Uuid) -> Result<Option<Session>, StoreError> {
    db.query(
        "SELECT id, user_id, org_id, ip, user_agent, created_at, last_used_at, expires_at, revoked_at, amr \
         FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional()
    .await
}

pub async fn active_sessions(db: &Db, user: Uuid, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
    db.query(
        "SELECT id, user_id, org_id, ip, user_agent, created_at, last_used_at, expires_at, revoked_at, amr \
         FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC",
    )
    .bind(user)
    .bind(now)
    .fetch_all()
    .await
}

pub async fn revoke_session(db: &Db, id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    db.query("UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .bind(reason)
        .execute()
        .await
}

/// Revokes every session of `user` except `keep`.
pub async fn revoke_sessions_of(
    db: &Db,
    user: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    db.query(
        "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2)",
    )
    .bind(user)
    .bind(keep)
    .bind(now)
    .bind(reason)
    .execute()
    .await
}

pub async fn set_session_org(db: &Db, id: Uuid, org: Uuid) -> Result<(), StoreError> {
    db.query("UPDATE sessions SET org_id = $2 WHERE id = $1").bind(id).bind(org).execute().await?;
    Ok(())
}

/// The refresh token row: (session id, used_at).
pub async fn find_refresh(db: &Db, hash: &str) -> Result<Option<(Uuid, Option<DateTime<Utc>>)>, StoreError> {
    db.query("SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1").bind(hash).fetch_optional().await
}

/// Marks `old` used and stores `new`, atomically; false when `old` was already used (a race).
pub async fn rotate_refresh(
    db: &Db,
    session: Uuid,
    old: &str,
    new: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let used = tx
        .query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
        .bind(old)
        .bind(now)
        .execute()
        .await?;
    if used == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(new)
        .bind(session)
        .bind(now)
        .execute()
        .await?;
    tx.query("UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1")
        .bind(session)
        .bind(now)
        .bind(expires_at)
        .execute()
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Issues a new refresh token for a session whose current one is replaced (password change).
pub async fn replace_refresh(db: &Db, session: Uuid, new: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    tx.query("UPDATE refresh_tokens SET used_at = $2 WHERE session_id = $1 AND used_at IS NULL")
        .bind(session)
        .bind(now)
        .execute()
        .await?;
    tx.query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(new)
        .bind(session)
        .bind(now)
        .execute()
        .await?;
    tx.commit().await
}

/// A request's authentication in one statement: one row per membership of the user (one row
/// with no membership when it has none), each carrying the session's and user's state and the
/// path of the organization the token acts in (`None` when it is gone).
#[derive(Debug, oppidum_store::FromRow)]
pub struct AuthRow {
    pub disabled: bool,
    pub token_version: i64,
    pub instance_admin: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub impersonator_id: Option<Uuid>,
    pub org_path: Option<String>,
    pub member_org_id: Option<Uuid>,
    pub member_path: Option<String>,
    pub member_role: Option<String>,
}

pub async fn auth_snapshot(db: &Db, session: Uuid, user: Uuid, org: Uuid) -> Result<Vec<AuthRow>, StoreError> {
    db.query(
        "SELECT u.disabled, u.token_version, u.instance_admin, s.revoked_at, s.expires_at, s.impersonator_id, \
         po.path AS org_path, m.org_id AS member_org_id, mo.path AS member_path, m.role AS member_role \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN orgs po ON po.id = $3 \
         LEFT JOIN memberships m ON m.user_id = u.id \
         LEFT JOIN orgs mo ON mo.id = m.org_id \
         WHERE s.id = $1 AND s.user_id = $2",
    )
    .bind(session)
    .bind(user)
    .bind(org)
    .fetch_all()
    .await
}

pub async fn count_instance_admins(db: &Db) -> Result<i64, StoreError> {
    let (count,): (i64,) = db.query("SELECT COUNT(*) FROM users WHERE instance_admin").fetch_one().await?;
    Ok(count)
}
