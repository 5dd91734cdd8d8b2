//! The audit log of security-relevant actions: who (actor, impersonator), what (action, target),
//! where (organization, IP, user agent), and whether it worked. Entries are append-only (database
//! triggers refuse updates and deletes) and hash-chained: each entry's SHA-256 covers its fields
//! and the previous entry's hash, so [`verify`] finds any edit, insertion or deletion.

use chrono::{DateTime, SubsecRound, Utc};
use oppidum_store::Json;
use oppidum_store::{Backend, Db, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Success, failure (bad credentials, invalid input) or denied (not allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// Something to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub outcome: Outcome,
    pub actor_id: Option<Uuid>,
    pub impersonator_id: Option<Uuid>,
    /// The organization the event belongs to (who may read it), with its tree path.
    pub org: Option<(Uuid, String)>,
    pub target: Option<(&'static str, String)>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

impl Event {
    pub fn new(action: &'static str, outcome: Outcome) -> Self {
        Self {
            action,
            outcome,
            actor_id: None,
            impersonator_id: None,
            org: None,
            target: None,
            ip: None,
            user_agent: None,
            details: serde_json::json!({}),
        }
    }
}

/// A stored entry.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Entry {
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub org_id: Option<Uuid>,
    #[serde(skip)]
    pub org_path: Option<String>,
    pub actor_id: Option<Uuid>,
    pub impersonator_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: Json<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The hash of an entry: SHA-256 over the previous hash and every field, one per line.
fn entry_hash(entry: &Entry) -> String {
    let canonical = [
        entry.prev_hash.clone(),
        entry.seq.to_string(),
        entry.id.to_string(),
        entry.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        opt(&entry.org_id),
        opt(&entry.org_path),
        opt(&entry.actor_id),
        opt(&entry.impersonator_id),
        entry.action.clone(),
        opt(&entry.target_type),
        opt(&entry.target_id),
        entry.outcome.clone(),
        opt(&entry.ip),
        opt(&entry.user_agent),
        // serde_json::Value keeps object keys sorted: the same text whatever the database did.
        entry.details.0.to_string(),
    ]
    .join("\n");
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends an event at the end of the chain.
pub async fn append(db: &Db, event: Event, now: DateTime<Utc>) -> Result<Entry, StoreError> {
    let mut tx = db.begin().await?;
    if tx.backend() == Backend::Postgres {
        // Serializes appenders across nodes; released at commit.
        tx.query("SELECT pg_advisory_xact_lock(7243081)").execute().await?;
    }
    let last: Option<(i64, String)> =
        tx.query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional().await?;
    let (seq, prev_hash) = last.map(|(s, h)| (s + 1, h)).unwrap_or((1, GENESIS.to_owned()));
    let mut entry = Entry {
        seq,
        id: Uuid::now_v7(),
        at: now.trunc_subsecs(6),
        org_id: event.org.as_ref().map(|(id, _)| *id),
        org_path: event.org.map(|(_, path)| path),
        actor_id: event.actor_id,
        impersonator_id: event.impersonator_id,
        action: event.action.to_owned(),
        target_type: event.target.as_ref().map(|(t, _)| (*t).to_owned()),
        target_id: event.target.map(|(_, id)| id),
        outcome: event.outcome.as_str().to_owned(),
        ip: event.ip,
        user_agent: event.user_agent.map(|ua| ua.chars().take(400).collect()),
        details: Json(event.details),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    tx.query(
        "INSERT INTO audit_log (seq, id, at, org_id, org_path, actor_id, impersonator_id, action, target_type, \
         target_id, outcome, ip, user_agent, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(entry.seq)
    .bind(entry.id)
    .bind(entry.at)
    .bind(entry.org_id)
    .bind(entry.org_path.clone())
    .bind(entry.actor_id)
    .bind(entry.impersonator_id)
    .bind(entry.action.as_str())
    .bind(entry.target_type.clone())
    .bind(entry.target_id.clone())
    .bind(entry.outcome.as_str())
    .bind(entry.ip.clone())
    .bind(entry.user_agent.clone())
    .bind(entry.details.0.clone())
    .bind(entry.prev_hash.as_str())
    .bind(entry.hash.as_str())
    .execute()
    .await?;
    tx.commit().await?;
    Ok(entry)
}

/// Filters of `GET /api/audit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    pub actor: Option<Uuid>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Entries with `seq` below this (the `next_cursor` of the previous page): newest first.
    pub cursor: Option<i64>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

/// Entries in the subtrees `paths` (`None`: every entry, for instance administrators) matching
/// `filter`, newest first.
pub async fn list(db: &Db, paths: Option<&[String]>, filter: &Filter, limit: i64) -> Result<Vec<Entry>, StoreError> {
    let sql = match (db.backend(), paths.is_some()) {
        (_, false) => LIST_ALL,
        (Backend::Postgres, true) => LIST_POSTGRES,
        (Backend::Sqlite, true) => LIST_SQLITE,
    };
    let paths = serde_json::Value::from(paths.map(<[String]>::to_vec).unwrap_or_default());
    let query = db.query(sql);
    let query = if sql == LIST_ALL { query } else { query.bind(paths) };
    query
        .bind(filter.actor)
        .bind(filter.action.clone())
        .bind(filter.target.clone())
        .bind(filter.outcome.clone())
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.cursor)
        .bind(limit)
        .fetch_all()
        .await
}

macro_rules! list_sql {
    ($scope:literal, $n:literal) => {
        concat!(
            "SELECT seq, id, at, org_id, org_path, actor_id, impersonator_id, action, target_type, target_id, ",
            "outcome, ip, user_agent, details, prev_hash, hash FROM audit_log WHERE ",
            $scope,
            $n
        )
    };
}

const LIST_ALL: &str = list_sql!(
    "1 = 1",
    " AND ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR target_id = $3) \
     AND ($4 IS NULL OR outcome = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
     AND ($7 IS NULL OR seq < $7) ORDER BY seq DESC LIMIT $8"
);
const LIST_SQLITE: &str = list_sql!(
    "EXISTS (SELECT 1 FROM json_each($1) AS p WHERE substr(org_path, 1, length(p.value)) = p.value)",
    " AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR target_id = $4) \
     AND ($5 IS NULL OR outcome = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
     AND ($8 IS NULL OR seq < $8) ORDER BY seq DESC LIMIT $9"
);
const LIST_POSTGRES: &str = list_sql!(
    "EXISTS (SELECT 1 FROM jsonb_array_elements_text($1) AS p(prefix) WHERE substr(org_path, 1, length(p.prefix)) = p.prefix)",
    " AND ($2::uuid IS NULL OR actor_id = $2) AND ($3::text IS NULL OR action = $3) \
     AND ($4::text IS NULL OR target_id = $4) AND ($5::text IS NULL OR outcome = $5) \
     AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7) \
     AND ($8::bigint IS NULL OR seq < $8) ORDER BY seq DESC LIMIT $9"
);

/// Where a chain check stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every entry checks out.
    Intact { entries: u64 },
    /// The first entry that does not.
    Broken { seq: i64, reason: String },
}

/// Walks the whole chain in order.
pub async fn verify(db: &Db) -> Result<Verification, StoreError> {
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1_i64;
    let mut after = 0_i64;
    let mut count = 0_u64;
    loop {
        let page: Vec<Entry> = db
            .query(
                "SELECT seq, id, at, org_id, org_path, actor_id, impersonator_id, action, target_type, target_id, \
                 outcome, ip, user_agent, details, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000",
            )
            .bind(after)
            .fetch_all()
            .await?;
        if page.is_empty() {
            return Ok(Verification::Intact { entries: count });
        }
        for entry in page {
            if entry.seq != expected_seq {
                return Ok(Verification::Broken { seq: expected_seq, reason: "entry missing".into() });
            }
            if entry.prev_hash != prev {
                return Ok(Verification::Broken {
                    seq: entry.seq,
                    reason: "does not follow the previous entry".into(),
                });
            }
            if entry_hash(&entry) != entry.hash {
                return Ok(Verification::Broken { seq: entry.seq, reason: "contents changed".into() });
            }
            prev = entry.hash.clone();
            expected_seq += 1;
            after = entry.seq;
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_hash_covers_every_field() {
        let mut entry = Entry {
            seq: 1,
            id: Uuid::now_v7(),
            at: Utc::now().trunc_subsecs(6),
            org_id: None,
            org_path: None,
            actor_id: Some(Uuid::now_v7()),
            impersonator_id: None,
            action: "auth.login".into(),
            target_type: None,
            target_id: None,
            outcome: "success".into(),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            details: Json(serde_json::json!({"b": 1, "a": 2})),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let original = entry_hash(&entry);
        entry.outcome = "failure".into();
        assert_ne!(entry_hash(&entry), original);
        entry.outcome = "success".into();
        entry.details = Json(serde_json::json!({"a": 2, "b": 1}));
        assert_eq!(entry_hash(&entry), original, "key order must not matter");
    }
}
