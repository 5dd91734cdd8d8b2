//! The database layer on both engines: round trips of every value type, transactions, the
//! per-organization setting row-level security reads, and schema status.

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use super::*;

pub(super) async fn databases(test: &str) -> Vec<(Db, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut out = vec![(Db::connect(&url, &DbOptions::default()).await.expect("sqlite"), Some(dir))];
    if let Some(admin) = crate::testing::postgres_admin_url(test) {
        let url = crate::testing::create_postgres_database(&admin).await;
        out.push((Db::connect(&url, &DbOptions::default()).await.expect("postgres"), None));
    }
    out
}

#[derive(Debug, PartialEq, oppidum_store::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    attempts: i64,
    run_at: chrono::DateTime<Utc>,
    unique_key: Option<String>,
    payload: oppidum_store::Json<serde_json::Value>,
}

#[tokio::test]
async fn db_same_code_runs_on_both_engines() {
    for (db, _dir) in databases("db_same_code_runs_on_both_engines").await {
        db.ping().await.expect("ping");
        let status = db.schema_status().await.expect("status");
        assert_eq!(status.database, 0);
        assert!(!status.pending.is_empty());
        assert!(matches!(db.check_schema().await, Err(StoreError::SchemaBehind { .. })));
        db.migrate().await.expect("migrate");
        db.check_schema().await.expect("up to date");

        let id = Uuid::now_v7();
        let now = Utc::now().trunc_subsecs(6);
        let mut tx = db.begin().await.expect("begin");
        tx.query(
            "INSERT INTO jobs (id, kind, payload, status, max_attempts, run_at, unique_key, created_at, updated_at) \
             VALUES ($1, $2, $3, 'queued', 3, $4, $5, $4, $4)",
        )
        .bind(id)
        .bind("k")
        .bind(serde_json::json!({"n": 1}))
        .bind(now)
        .bind(None::<String>)
        .execute()
        .await
        .expect("insert");
        tx.rollback().await.expect("rollback");
        let none: Option<Row> = db
            .query("SELECT id, kind, attempts, run_at, unique_key, payload FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional()
            .await
            .expect("select");
        assert!(none.is_none(), "rolled-back insert is visible");

        let mut tx = db.begin().await.expect("begin");
        tx.query(
            "INSERT INTO jobs (id, kind, payload, status, max_attempts, run_at, unique_key, created_at, updated_at) \
             VALUES ($1, $2, $3, 'queued', 3, $4, $5, $4, $4)",
        )
        .bind(id)
        .bind("k")
        .bind(serde_json::json!({"n": 1}))
        .bind(now)
        .bind(Some("u".to_owned()))
        .execute()
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        let row: Row = db
            .query("SELECT id, kind, attempts, run_at, unique_key, payload FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one()
            .await
            .expect("select");
        assert_eq!(
            row,
            Row {
                id,
                kind: "k".into(),
                attempts: 0,
                run_at: now,
                unique_key: Some("u".into()),
                payload: oppidum_store::Json(serde_json::json!({"n": 1}))
            }
        );
        let duplicate = db
            .query(
                "INSERT INTO jobs (id, kind, payload, status, max_attempts, run_at, unique_key, created_at, updated_at) \
                 VALUES ($1, 'k', $2, 'queued', 3, $3, 'u', $3, $3)",
            )
            .bind(Uuid::now_v7())
            .bind(serde_json::json!({}))
            .bind(now)
            .execute()
            .await
            .expect_err("unique");
        assert!(duplicate.is_unique_violation());
        db.close().await;
    }
}

#[tokio::test]
async fn db_org_scope_is_visible_to_row_level_security() {
    for (db, _dir) in databases("db_org_scope_is_visible_to_row_level_security").await {
        if db.backend() != Backend::Postgres {
            continue;
        }
        db.migrate().await.expect("migrate");
        let org = Uuid::now_v7();
        let mut tx = db.begin_for_org(org).await.expect("begin");
        let (seen,): (Option<Uuid>,) = tx.query("SELECT oppidum_current_org()").fetch_one().await.expect("select");
        assert_eq!(seen, Some(org));
        tx.commit().await.expect("commit");
        // SET LOCAL: the next transaction on the pool starts unscoped.
        let mut tx = db.begin().await.expect("begin");
        let (seen,): (Option<Uuid>,) = tx.query("SELECT oppidum_current_org()").fetch_one().await.expect("select");
        assert_eq!(seen, None);
        tx.rollback().await.expect("rollback");
    }
}

#[tokio::test]
async fn db_events_fan_out_between_nodes() {
    for (db, _dir) in databases("db_events_fan_out_between_nodes").await {
        let Some(pool) = db.pg_pool() else { continue };
        let a = crate::EventBus::new(Uuid::now_v7(), Some(pool.clone()));
        let b = crate::EventBus::new(Uuid::now_v7(), Some(pool.clone()));
        let stop = tokio_util::sync::CancellationToken::new();
        let _listener = b.spawn_listener(stop.clone());
        let mut rx = b.subscribe();
        // The listener needs a moment to LISTEN; publish until it hears.
        let heard = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                a.publish("drive.file.created", serde_json::json!({"id": 7})).await.expect("publish");
                if let Ok(Ok(event)) = tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await {
                    return event;
                }
            }
        })
        .await
        .expect("event crossed nodes");
        assert_eq!(heard.origin, a.node());
        assert_eq!(heard.payload["id"], 7);
        stop.cancel();
    }
}

#[tokio::test]
async fn db_rows_of_unknown_shape_decode_to_json() {
    for (db, _dir) in databases("db_rows_of_unknown_shape_decode_to_json").await {
        let (int, real, blob) = match db.backend() {
            Backend::Sqlite => ("INTEGER", "REAL", "BLOB"),
            Backend::Postgres => ("BIGINT", "DOUBLE PRECISION", "UUID"),
        };
        let (flag, time, json) = match db.backend() {
            Backend::Sqlite => ("INTEGER", "TEXT", "TEXT"),
            Backend::Postgres => ("BOOLEAN", "TIMESTAMPTZ", "JSONB"),
        };
        let create = format!(
            "CREATE TABLE dyn (id {blob} PRIMARY KEY, n {int}, x {real}, t TEXT, b {flag}, at {time}, j {json}, none TEXT)"
        );
        db.query_dynamic(create).execute().await.expect("create");
        let (id, at) = (Uuid::now_v7(), Utc::now().trunc_subsecs(6));
        db.query("INSERT INTO dyn (id, n, x, t, b, at, j, none) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(id)
            .bind(-42_i64)
            .bind(2.5_f64)
            .bind("héllo")
            .bind(true)
            .bind(at)
            .bind(serde_json::json!({"k": [1, 2]}))
            .bind(Option::<String>::None)
            .execute()
            .await
            .expect("insert");
        let rows: Vec<JsonRow> = db.query("SELECT * FROM dyn").fetch_all().await.expect("select");
        let names: Vec<&str> = rows[0].0.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["id", "n", "x", "t", "b", "at", "j", "none"], "column order");
        assert_eq!(rows[0].get("n"), Some(&serde_json::json!(-42)));
        let row = rows[0].clone().into_object();
        assert_eq!(row["id"], id.to_string());
        assert_eq!(row["n"], -42);
        assert_eq!(row["x"], 2.5);
        assert_eq!(row["t"], "héllo");
        assert_eq!(row["none"], serde_json::Value::Null);
        match db.backend() {
            Backend::Postgres => {
                assert_eq!(row["b"], true);
                assert_eq!(row["at"], at.to_rfc3339());
                assert_eq!(row["j"], serde_json::json!({"k": [1, 2]}));
            }
            // SQLite keeps what was stored: 1, the time as text, the JSON as text.
            Backend::Sqlite => {
                assert_eq!(row["b"], 1);
                let stored = row["at"].as_str().expect("text");
                assert_eq!(stored.parse::<chrono::DateTime<Utc>>().expect("a time"), at);
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(row["j"].as_str().expect("text")).expect("json")["k"][1],
                    2
                );
            }
        }
    }
}

/// Columns of one table, as a derived decoder reads them by name.
#[derive(Debug, PartialEq, oppidum_store::FromRow)]
struct Named {
    name: String,
    n: i64,
}

/// Two tables' columns side by side, each decoded from its own view of the row.
#[derive(Debug, PartialEq)]
struct Pair(Named, Named);

impl FromRow for Pair {
    const COLUMNS: usize = 2 * Named::COLUMNS;

    fn from_row(row: &row::Row<'_>) -> Result<Self, DecodeError> {
        Ok(Self(Named::from_row(row)?, Named::from_row(&row.after(Named::COLUMNS))?))
    }
}

#[tokio::test]
async fn db_two_tables_side_by_side_decode_from_their_own_views() {
    for (db, _dir) in databases("db_two_tables_side_by_side_decode_from_their_own_views").await {
        assert_eq!((Named::COLUMNS, <(i64, String, bool)>::COLUMNS, Pair::COLUMNS), (2, 3, 4));
        let named = |name: &str, n| Named { name: name.into(), n };
        // The second view's columns in their place, then out of order (found by name, and only
        // among its own columns: the first `name` is not the second's).
        for (sql, how) in [
            ("SELECT 'a' AS name, CAST(1 AS BIGINT) AS n, 'b' AS name, CAST(2 AS BIGINT) AS n", "in place"),
            ("SELECT 'a' AS name, CAST(1 AS BIGINT) AS n, CAST(2 AS BIGINT) AS n, 'b' AS name", "by name"),
        ] {
            let pair: Pair = db.query(sql).fetch_one().await.expect(how);
            assert_eq!(pair, Pair(named("a", 1), named("b", 2)), "{how}");
        }
        let short: Result<Pair, _> = db.query("SELECT 'a' AS name, CAST(1 AS BIGINT) AS n").fetch_one().await;
        assert!(short.is_err(), "a view past the row's columns has none of them");
    }
}
