//! Databases for tests: SQLite always, PostgreSQL when `OPPIDUM_TEST_DATABASE_URL` is set.

use oppidum_store::Db;

/// Fresh databases (not migrated: app tables do not need Oppidum's own).
pub async fn databases(test: &str) -> (Vec<Db>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut urls = vec![format!("sqlite://{}", dir.path().join("t.db").display())];
    if let Some(admin) = oppidum_store::testing::postgres_admin_url(test) {
        urls.push(oppidum_store::testing::create_postgres_database(&admin).await);
    }
    let mut out = Vec::new();
    for url in urls {
        out.push(Db::connect(&url, &Default::default()).await.expect("db"));
    }
    (out, dir)
}
