//! The engines under concurrency and failure: group commit answers every writer with its own
//! outcome, a failing write undoes only itself, transactions dropped or left idle roll back,
//! constraint violations are named the same on both engines, and rows that do not fit their type
//! say which column.

use std::sync::Arc;

use uuid::Uuid;

use super::tests::databases;
use super::*;
use crate::error::Constraint;

async fn table(db: &Db) {
    let id = match db.backend() {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "UUID",
    };
    db.query_dynamic(format!(
        "CREATE TABLE items (id {id} PRIMARY KEY, name TEXT NOT NULL UNIQUE, n BIGINT CHECK (n >= 0), \
         parent {id} REFERENCES items(id))"
    ))
    .execute()
    .await
    .expect("create");
}

/// Runs an `INSERT` whose `$1` is a fresh id.
async fn insert_one(query: Query<'_>) {
    query.bind(Uuid::now_v7()).execute().await.expect("insert");
}

/// An SQLite database in a file (so with readers and inline work), with the test table.
async fn sqlite_file_with_table() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect(&url, &DbOptions::default()).await.expect("open");
    table(&db).await;
    (db, dir)
}

async fn count(db: &Db) -> i64 {
    let (n,): (i64,) = db.query("SELECT COUNT(*) FROM items").fetch_one().await.expect("count");
    n
}

#[tokio::test]
async fn engine_concurrent_writers_each_hear_their_own_outcome() {
    for (db, _dir) in databases("engine_concurrent_writers_each_hear_their_own_outcome").await {
        table(&db).await;
        let db = Arc::new(db);
        // 200 writers at once, every fourth a duplicate name: the duplicates fail, the rest land,
        // whatever group commits they shared.
        let mut tasks = Vec::new();
        for i in 0..200_i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let name = if i % 4 == 3 { format!("n{}", i - 1) } else { format!("n{i}") };
                db.query("INSERT INTO items (id, name, n) VALUES ($1, $2, $3)")
                    .bind(Uuid::now_v7())
                    .bind(name)
                    .bind(i)
                    .execute()
                    .await
            }));
        }
        let (mut landed, mut refused) = (0, 0);
        for task in tasks {
            match task.await.expect("task") {
                Ok(1) => landed += 1,
                Err(err) if err.is_unique_violation() => refused += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!((landed, refused), (150, 50));
        assert_eq!(count(&db).await, 150, "every acknowledged write is visible to readers");
        db.close().await;
    }
}

#[tokio::test]
async fn engine_transactions_roll_back_when_dropped_or_failed() {
    for (db, _dir) in databases("engine_transactions_roll_back_when_dropped_or_failed").await {
        table(&db).await;
        {
            let mut tx = db.begin().await.expect("begin");
            insert_one(tx.query("INSERT INTO items (id, name) VALUES ($1, 'dropped')")).await;
        }
        // The writer is free again at once: this write is not stuck behind the dropped transaction.
        insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'after')")).await;
        assert_eq!(count(&db).await, 1);

        let mut tx = db.begin().await.expect("begin");
        insert_one(tx.query("INSERT INTO items (id, name) VALUES ($1, 'kept')")).await;
        let (inside,): (i64,) = tx.query("SELECT COUNT(*) FROM items").fetch_one().await.expect("count");
        assert_eq!(inside, 2, "a transaction reads its own writes");
        assert_eq!(count(&db).await, 1, "others do not see them before the commit");
        tx.commit().await.expect("commit");
        assert_eq!(count(&db).await, 2);
        db.close().await;
    }
}

#[tokio::test]
async fn engine_a_failed_write_leaves_nothing_alone_or_in_a_group() {
    for (db, _dir) in databases("engine_a_failed_write_leaves_nothing_alone_or_in_a_group").await {
        table(&db).await;
        insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'first')")).await;
        // Alone (SQLite runs it without a savepoint): its first row must not survive the second.
        let failed = db
            .query("INSERT INTO items (id, name) VALUES ($1, 'second'), ($2, 'first')")
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7())
            .execute()
            .await;
        assert!(failed.is_err_and(|e| e.is_unique_violation()));
        assert_eq!(count(&db).await, 1);
        // The writer goes on: a write, a transaction rolled back, a transaction committed.
        insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'third')")).await;
        let mut tx = db.begin().await.expect("begin");
        insert_one(tx.query("INSERT INTO items (id, name) VALUES ($1, 'undone')")).await;
        tx.rollback().await.expect("rollback");
        let mut tx = db.begin().await.expect("begin");
        insert_one(tx.query("INSERT INTO items (id, name) VALUES ($1, 'fourth')")).await;
        tx.commit().await.expect("commit");
        assert_eq!(count(&db).await, 3);
        db.close().await;
    }
}

#[tokio::test]
async fn engine_a_unit_commits_whole_or_not_at_all() {
    for (db, _dir) in databases("engine_a_unit_commits_whole_or_not_at_all").await {
        table(&db).await;
        let insert =
            |name: &str| Statement::new("INSERT INTO items (id, name) VALUES ($1, $2)").bind(Uuid::now_v7()).bind(name);
        let mut unit = Unit::new();
        unit.push(insert("a"));
        unit.push(insert("b"));
        unit.push(Statement::new("UPDATE items SET n = 1 WHERE name = $1").bind("b").must_change());
        assert_eq!(db.commit_unit(unit).await.expect("unit"), vec![1, 1, 1]);
        assert_eq!(count(&db).await, 2);

        // A statement that must change a row and changes none: the unit's earlier rows are undone.
        let mut unit = Unit::new();
        unit.push(insert("c"));
        unit.push(Statement::new("UPDATE items SET n = 2 WHERE name = $1").bind("nobody").must_change());
        let refused = db.commit_unit(unit).await;
        assert!(matches!(refused, Err(StoreError::Unchanged { statement: 1 })), "{refused:?}");
        // A failing statement, built at run time: the same.
        let mut unit = Unit::new();
        unit.push(insert("d"));
        unit.push(Statement::dynamic("INSERT INTO items (id, name) VALUES ($1, 'a')".to_owned()).bind(Uuid::now_v7()));
        assert!(db.commit_unit(unit).await.is_err_and(|e| e.is_unique_violation()));
        assert_eq!(count(&db).await, 2);

        // Many units at once (SQLite commits them in groups): each lands or fails alone.
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut unit = Unit::new();
                unit.push(insert(&format!("x{i}")));
                let name = if i % 5 == 0 { "nobody" } else { "a" };
                unit.push(
                    Statement::new("UPDATE items SET n = COALESCE(n, 0) + 1 WHERE name = $1").bind(name).must_change(),
                );
                db.commit_unit(unit).await.is_ok()
            }));
        }
        let mut landed = 0;
        for task in tasks {
            landed += usize::from(task.await.expect("task"));
        }
        assert_eq!(landed, 40);
        assert_eq!(count(&db).await, 42);
        let (n,): (i64,) = db.query("SELECT n FROM items WHERE name = 'a'").fetch_one().await.expect("n");
        assert_eq!(n, 40);

        // Inside a transaction: the statements run with the rest of its work.
        let mut tx = db.begin().await.expect("begin");
        let mut unit = Unit::new();
        unit.push(insert("in-tx"));
        unit.push(Statement::new("DELETE FROM items WHERE name = $1").bind("nobody").must_change());
        assert!(matches!(tx.run_unit(unit).await, Err(StoreError::Unchanged { statement: 1 })));
        tx.rollback().await.expect("rollback");
        assert_eq!(count(&db).await, 42);
        db.close().await;
    }
}

#[tokio::test]
async fn engine_names_the_broken_constraint() {
    for (db, _dir) in databases("engine_names_the_broken_constraint").await {
        table(&db).await;
        let first = Uuid::now_v7();
        db.query("INSERT INTO items (id, name) VALUES ($1, 'a')").bind(first).execute().await.expect("insert");
        let insert = |name: Option<&'static str>, n: i64, parent: Uuid| {
            db.query("INSERT INTO items (id, name, n, parent) VALUES ($1, $2, $3, $4)")
                .bind(Uuid::now_v7())
                .bind(name.map(str::to_owned))
                .bind(n)
                .bind(parent)
                .execute()
        };
        let cases = [
            (insert(Some("a"), 1, first).await, Constraint::Unique),
            (insert(None, 1, first).await, Constraint::NotNull),
            (insert(Some("b"), -1, first).await, Constraint::Check),
            (insert(Some("c"), 1, Uuid::now_v7()).await, Constraint::ForeignKey),
        ];
        for (outcome, expected) in cases {
            let err = outcome.expect_err("refused");
            assert_eq!(err.constraint(), Some(expected), "{err}");
        }
        assert_eq!(count(&db).await, 1, "nothing of the refused rows is kept");
        db.close().await;
    }
}

#[tokio::test]
async fn engine_decode_errors_name_the_column() {
    for (db, _dir) in databases("engine_decode_errors_name_the_column").await {
        table(&db).await;
        insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'x')")).await;
        let err = db.query("SELECT name FROM items").fetch_one::<(i64,)>().await.expect_err("text is no integer");
        assert!(matches!(&err, StoreError::Decode(e) if e.column == "0"), "{err}");
        let err = db.query("SELECT n FROM items").fetch_one::<(i64,)>().await.expect_err("NULL is no integer");
        assert!(matches!(err, StoreError::Decode(_)), "{err}");
        let none: (Option<i64>,) = db.query("SELECT n FROM items").fetch_one().await.expect("NULL as None");
        assert_eq!(none, (None,));
        let missing = db.query("SELECT n FROM items WHERE name = 'nobody'").fetch_one::<(Option<i64>,)>().await;
        assert!(matches!(missing, Err(StoreError::RowNotFound)));
        db.close().await;
    }
}

#[tokio::test]
async fn engine_is_closed_after_close() {
    for (db, _dir) in databases("engine_is_closed_after_close").await {
        db.ping().await.expect("ping");
        db.close().await;
        if db.backend() == Backend::Sqlite {
            assert!(matches!(db.ping().await, Err(StoreError::Closed)));
        } else {
            assert!(db.ping().await.is_err());
        }
    }
}

#[tokio::test]
async fn engine_sqlite_keeps_acknowledged_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    for synchronous in [Synchronous::Normal, Synchronous::Full] {
        let options = DbOptions { synchronous, ..DbOptions::default() };
        let db = Db::connect(&url, &options).await.expect("open");
        if synchronous == Synchronous::Normal {
            table(&db).await;
        }
        db.query("INSERT INTO items (id, name) VALUES ($1, $2)")
            .bind(Uuid::now_v7())
            .bind(format!("{synchronous:?}"))
            .execute()
            .await
            .expect("insert");
        db.close().await;
    }
    let db = Db::connect(&url, &DbOptions::default()).await.expect("reopen");
    assert_eq!(count(&db).await, 2);
    db.close().await;
}

#[tokio::test]
async fn engine_sqlite_rolls_back_an_idle_transaction_and_frees_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let options = DbOptions { tx_idle: std::time::Duration::from_millis(200), ..DbOptions::default() };
    let db = Db::connect(&url, &options).await.expect("open");
    table(&db).await;
    let mut tx = db.begin().await.expect("begin");
    insert_one(tx.query("INSERT INTO items (id, name) VALUES ($1, 'idle')")).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // The writer gave up on the transaction: other writes go on, and its own commit fails.
    insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'next')")).await;
    assert!(tx.commit().await.is_err(), "an abandoned transaction cannot commit");
    let names: Vec<(String,)> = db.query("SELECT name FROM items").fetch_all().await.expect("names");
    assert_eq!(names, vec![("next".to_owned(),)], "nothing of the idle transaction is kept");
    db.close().await;
}

#[tokio::test]
async fn engine_sqlite_quick_reads_run_in_place_and_long_ones_move_to_a_reader() {
    let (db, _dir) = sqlite_file_with_table().await;
    let Db::Sqlite(engine) = &db else { unreachable!("an SQLite URL opens SQLite") };
    insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'one')")).await;
    let before = engine.inline_stats();
    let names: Vec<(String,)> = db.query("SELECT name FROM items").fetch_all().await.expect("names");
    assert_eq!(names, vec![("one".to_owned(),)]);
    let after = engine.inline_stats();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0), "a quick read is answered in place");

    // Far past the budget: interrupted in place, then run to its end on a reader thread.
    let long = "SELECT COUNT(*), SUM(i) FROM (WITH RECURSIVE n(i) AS \
                (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT i FROM n)";
    let (count, sum): (i64, i64) = db.query(long).fetch_one().await.expect("long read");
    assert_eq!((count, sum), (3_000_000, 4_500_001_500_000));
    let moved = engine.inline_stats();
    assert_eq!((moved.0 - after.0, moved.1 - after.1), (0, 1), "the long read moved to a reader");

    // The interrupted connection serves the next quick read as before.
    let (n,): (i64,) = db.query("SELECT COUNT(*) FROM items").fetch_one().await.expect("count");
    assert_eq!(n, 1);
    assert_eq!(engine.inline_stats().0, moved.0 + 1);
    db.close().await;
}

#[tokio::test]
async fn engine_sqlite_short_writes_commit_in_place_and_long_ones_move_to_the_writer() {
    let (db, _dir) = sqlite_file_with_table().await;
    let Db::Sqlite(engine) = &db else { unreachable!("an SQLite URL opens SQLite") };
    let before = engine.inline_write_stats();
    insert_one(db.query("INSERT INTO items (id, name) VALUES ($1, 'one')")).await;
    let after = engine.inline_write_stats();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0), "a short write commits in place");
    // A failed write in place leaves nothing, and the next one commits.
    let failed = db.query("INSERT INTO items (id, name) VALUES ($1, 'two'), ($2, 'one')").bind(Uuid::now_v7());
    assert!(failed.bind(Uuid::now_v7()).execute().await.is_err_and(|e| e.is_unique_violation()));
    assert_eq!(count(&db).await, 1);

    // Far past the budget: interrupted and rolled back in place, then run whole by the writer.
    let long = "INSERT INTO items (id, name, n) SELECT randomblob(16), 'x' || i, i FROM (WITH RECURSIVE n(i) AS \
                (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT i FROM n)";
    let stats = engine.inline_write_stats();
    assert_eq!(db.query(long).execute().await.expect("long write"), 300_000);
    let moved = engine.inline_write_stats();
    assert_eq!(moved.1 - stats.1, 1, "the long write moved to the writer");
    assert_eq!(count(&db).await, 300_001);

    // Many writers at once: each hears its own outcome, in place or through the queue, and the
    // write-ahead log is checkpointed by the writer thread along the way.
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for i in 0..300_i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let name = if i % 3 == 0 { "one".to_owned() } else { format!("c{i}") };
            db.query("INSERT INTO items (id, name) VALUES ($1, $2)").bind(Uuid::now_v7()).bind(name).execute().await
        }));
    }
    let mut landed = 0;
    for task in tasks {
        landed += usize::from(task.await.expect("task").is_ok());
    }
    assert_eq!(landed, 200);
    assert_eq!(count(&db).await, 300_201);
    db.close().await;
}
