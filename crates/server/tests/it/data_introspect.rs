//! An existing database put behind the data API: introspected into a schema, checked, compared
//! and migrated from the command line, then served (scoping by its `user_id` column, soft
//! deletion by its `deleted_at` column, relations from its foreign keys), and introspected
//! again to the same schema.

use oppidum_store::Db;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Site, json};

const PASSWORD: &str = "correct horse battery staple";

const SQLITE_TABLES: [&str; 2] = [
    "CREATE TABLE sectors (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL UNIQUE, \
     active BOOLEAN NOT NULL DEFAULT 1, created_at TEXT)",
    "CREATE TABLE passages (id INTEGER PRIMARY KEY, user_id UUID NOT NULL, \
     sector_id INTEGER NOT NULL REFERENCES sectors(id) ON DELETE CASCADE, amount NUMERIC(10,2), \
     visited DATE, notes TEXT, status VARCHAR(20) NOT NULL DEFAULT 'planned', deleted_at TIMESTAMP)",
];

const POSTGRES_TABLES: [&str; 2] = [
    "CREATE TABLE sectors (id SERIAL PRIMARY KEY, name VARCHAR(80) NOT NULL UNIQUE, \
     active BOOLEAN NOT NULL DEFAULT true, created_at TIMESTAMP)",
    "CREATE TABLE passages (id BIGSERIAL PRIMARY KEY, user_id UUID NOT NULL, \
     sector_id INTEGER NOT NULL REFERENCES sectors(id) ON DELETE CASCADE, amount NUMERIC(10,2), \
     visited DATE, notes TEXT, status VARCHAR(20) NOT NULL DEFAULT 'planned', deleted_at TIMESTAMPTZ)",
];

/// The existing database: two sectors, three passages (two of `owner`'s, one deleted).
async fn existing_database(backend: Backend, dir: &std::path::Path, owner: uuid::Uuid) -> String {
    let (url, tables) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("geo.db").display()), SQLITE_TABLES),
        Backend::Postgres => {
            let admin = oppidum_store::testing::postgres_admin_url("data_introspect").expect("postgres");
            (oppidum_store::testing::create_postgres_database(&admin).await, POSTGRES_TABLES)
        }
    };
    let db = Db::connect(&url, &Default::default()).await.expect("existing database");
    for sql in tables {
        db.query_dynamic(sql.to_owned()).execute().await.expect(sql);
    }
    for name in ["North", "South"] {
        db.query("INSERT INTO sectors (name) VALUES ($1)").bind(name).execute().await.expect("sector");
    }
    let insert =
        "INSERT INTO passages (user_id, sector_id, amount, visited, notes, deleted_at) VALUES ($1, $2, $3, $4, $5, $6)";
    let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).expect("date");
    let gone = Some(chrono::Utc::now());
    for (user, sector, amount, deleted) in
        [(owner, 1, 12.5, None), (owner, 2, 20.0, gone), (uuid::Uuid::now_v7(), 1, 7.0, None)]
    {
        db.query(insert)
            .bind(user)
            .bind(sector as i64)
            .bind(amount)
            .bind(day)
            .bind("rang twice")
            .bind(deleted)
            .execute()
            .await
            .expect("passage");
    }
    db.close().await;
    url
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

both!(data_existing_database_is_introspected_migrated_and_served);
async fn data_existing_database_is_introspected_migrated_and_served(backend: Backend) {
    let site = Site::new(backend).await;
    let owner: uuid::Uuid = site.create_admin("root@example.org", PASSWORD).parse().expect("user id");
    let elsewhere = tempfile::tempdir().expect("dir");
    let url = existing_database(backend, elsewhere.path(), owner).await;

    let schema = stdout(&site.cli(&["apps", "introspect", "--db", &url]));
    for expected in [
        "scope: owner",
        "owner_field: user_id",
        "soft_delete: true",
        "foreign: sectors.id",
        "on_delete: cascade",
        "unique: true",
        "type: decimal",
        "type: date",
        "default: planned",
    ] {
        assert!(schema.contains(expected), "`{expected}` missing from:\n{schema}");
    }
    let app_dir = site.data_dir().join("apps/geo");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(app_dir.join("app.yaml"), format!("name: geo\ndatabase: \"{url}\"\n")).expect("app.yaml");
    std::fs::write(app_dir.join("schema.yaml"), &schema).expect("schema.yaml");
    assert!(stdout(&site.cli(&["apps", "check", "geo"])).contains("valid"));
    let diff = stdout(&site.cli(&["apps", "diff", "geo"]));
    assert!(diff.contains("ALTER TABLE") && diff.contains("row_version"), "{diff}");
    let migrated = stdout(&site.cli(&["apps", "migrate", "geo"]));
    assert!(migrated.contains("updated_at"), "{migrated}");
    assert!(stdout(&site.cli(&["apps", "diff", "geo"])).contains("matches"));
    // Introspected again: the same schema (the columns added are the server's).
    assert_eq!(stdout(&site.cli(&["apps", "introspect", "--db", &url])), schema);
    // A change that drops a column is refused without --force.
    std::fs::write(app_dir.join("schema.yaml"), schema.replace("      notes:\n        type: text\n", ""))
        .expect("write");
    let refused = site.cli(&["apps", "migrate", "geo"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--force"));
    std::fs::write(app_dir.join("schema.yaml"), &schema).expect("write");
    let broken = site.cli(&["apps", "check", "nope"]);
    assert!(!broken.status.success());

    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let mine = json(server.get_as("/api/apps/geo/passages?include=sector_id", &admin.access).await).await;
    let items = mine["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "only the owner's live passage: {mine}");
    assert_eq!(items[0]["amount"], 12.5);
    assert_eq!(items[0]["visited"], "2025-03-14");
    assert_eq!(items[0]["_include"]["sector_id"]["name"], "North");
    let all = json(server.get_as("/api/apps/geo/passages?include_deleted=true", &admin.access).await).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    let created = server
        .post_json(
            "/api/apps/geo/passages",
            Some(&admin.access),
            json!({"sector_id": 2, "amount": 3.25, "visited": "2026-01-02"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    assert_eq!(created["status"], "planned", "the database's default: {created}");
    assert_eq!(created["user_id"], owner.to_string());
    let sectors = json(server.get_as("/api/apps/geo/sectors?sort=name", &admin.access).await).await;
    let names: Vec<&Value> = sectors["items"].as_array().expect("items").iter().map(|s| &s["name"]).collect();
    assert_eq!(names, ["North", "South"]);
    let path = format!("/api/apps/geo/passages/{}", created["id"]);
    let resp = server.send(reqwest::Method::DELETE, &path, Some(&admin.access), None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(server.get_as(&path, &admin.access).await.status(), 404);
}
