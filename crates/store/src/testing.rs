//! Helpers for test suites: a fresh PostgreSQL database per test and S3 settings for the local test
//! server. Which servers exist comes from the environment:
//! - `OPPIDUM_TEST_DATABASE_URL`: a PostgreSQL URL allowed to `CREATE DATABASE`;
//! - `OPPIDUM_TEST_REQUIRE_POSTGRES=1`: fail instead of skipping when it is missing (CI);
//! - `OPPIDUM_TEST_S3_ENDPOINT` and `OPPIDUM_TEST_S3_BUCKET`: an S3-compatible server and bucket.

use oppidum_core::config::{S3Config, Secret};
use sqlx::Connection;

/// The PostgreSQL server tests may use, or `None` (with a visible message) when there is none.
pub fn postgres_admin_url(test: &str) -> Option<String> {
    match std::env::var("OPPIDUM_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("OPPIDUM_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: OPPIDUM_TEST_REQUIRE_POSTGRES=1 but OPPIDUM_TEST_DATABASE_URL is not set"
            );
            eprintln!("SKIPPED {test} on PostgreSQL: set OPPIDUM_TEST_DATABASE_URL to run it");
            None
        }
    }
}

/// Creates an empty database for one test and returns its URL.
pub async fn create_postgres_database(admin_url: &str) -> String {
    let name = format!("oppidum_t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to OPPIDUM_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let mut url = url_without_db(admin_url);
    url.push('/');
    url.push_str(&name);
    if let Some((_, query)) = admin_url.split_once('?') {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn url_without_db(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    match base[after_scheme..].find('/') {
        Some(slash) => base[..after_scheme + slash].to_owned(),
        None => base.to_owned(),
    }
}

/// S3 settings for the test server at `endpoint`, under a prefix of its own.
pub fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        bucket: std::env::var("OPPIDUM_TEST_S3_BUCKET").unwrap_or_else(|_| "oppidum-test".into()),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        access_key_id: Some(Secret::new("testing")),
        secret_access_key: Some(Secret::new("testing-secret")),
        allow_http: true,
        prefix: Some(format!("t-{}", uuid::Uuid::now_v7().simple())),
        virtual_hosted_style: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testing_strips_database_name() {
        assert_eq!(
            url_without_db("postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable"),
            "postgres://u:p@127.0.0.1:5432"
        );
        assert_eq!(url_without_db("postgres://127.0.0.1:5432"), "postgres://127.0.0.1:5432");
    }
}
