//! Embedded migrations (`migrations/sqlite`, `migrations/postgres`, same version numbers), applied
//! at start or by `oppidum migrate`, and the guard that refuses a database migrated by a newer
//! Oppidum.

use sqlx::migrate::Migrator;

use super::{Backend, Db};
use crate::error::StoreError;

static SQLITE: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Where the database stands against the migrations embedded in this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest applied version, 0 for an empty database.
    pub database: i64,
    /// Highest version this binary knows.
    pub binary: i64,
    /// Versions and descriptions of the migrations not applied yet.
    pub pending: Vec<(i64, String)>,
}

impl SchemaStatus {
    /// Whether the database was migrated by a newer binary.
    pub fn too_new(&self) -> bool {
        self.database > self.binary
    }
}

impl Db {
    fn migrator(&self) -> &'static Migrator {
        match self.backend() {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let exists_sql = match self.backend() {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_tables WHERE tablename = '_sqlx_migrations' AND schemaname = current_schema()"
            }
        };
        let (exists,): (i64,) = self.query(exists_sql).fetch_one().await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64,)> =
            self.query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").fetch_all().await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// Compares the database with the embedded migrations.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let applied = self.applied_versions().await?;
        let migrator = self.migrator();
        let binary = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let pending = migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        Ok(SchemaStatus { database: applied.iter().copied().max().unwrap_or(0), binary, pending })
    }

    /// Applies pending migrations; refuses a database migrated by a newer binary. Returns the
    /// migrations that were applied.
    pub async fn migrate(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let status = self.schema_status().await?;
        if status.too_new() {
            return Err(StoreError::SchemaTooNew { database: status.database, binary: status.binary });
        }
        match self {
            Db::Sqlite(_) => self.migrate_sqlite().await?,
            Db::Postgres(pool) => POSTGRES.run(pool).await?,
        }
        Ok(status.pending)
    }

    /// SQLite's runner, keeping sqlx's bookkeeping table (databases migrated by earlier versions
    /// carry on): each pending migration and its row in one unit of the writer, so a failing
    /// migration leaves nothing behind; a migration changed since it was applied stops the start.
    async fn migrate_sqlite(&self) -> Result<(), StoreError> {
        self.query(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .execute()
        .await?;
        let applied: Vec<(i64, Vec<u8>)> = self
            .query("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all()
            .await?;
        for migration in SQLITE.iter().filter(|m| !m.migration_type.is_down_migration()) {
            if let Some((_, checksum)) = applied.iter().find(|(version, _)| *version == migration.version) {
                if checksum.as_slice() != migration.checksum.as_ref() {
                    return Err(StoreError::Migrate(sqlx::migrate::MigrateError::VersionMismatch(migration.version)));
                }
                continue;
            }
            let started = std::time::Instant::now();
            let mut tx = self.begin().await?;
            tx.execute_batch(migration.sql.as_str().to_owned()).await?;
            let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
            tx.query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, $4)",
            )
            .bind(migration.version)
            .bind(migration.description.to_string())
            .bind(migration.checksum.to_vec())
            .bind(elapsed)
            .execute()
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Fails unless the schema is exactly what this binary expects.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let status = self.schema_status().await?;
        if status.too_new() {
            return Err(StoreError::SchemaTooNew { database: status.database, binary: status.binary });
        }
        if !status.pending.is_empty() {
            return Err(StoreError::SchemaBehind { database: status.database, binary: status.binary });
        }
        Ok(())
    }
}
