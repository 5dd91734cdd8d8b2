//! Configuration types. Every field has a default, so Oppidum runs with no file at all; loading
//! (TOML file, `OPPIDUM_SECTION__KEY` environment, `…_FILE` indirection) lives in the server crate.
//! [`Config::problems`] lists every problem at once, with the stricter rules of production mode.

mod validate;
mod values;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use values::{ByteSize, DatabaseUrl, Secret};

/// Minimum length of any secret in production.
pub const MIN_SECRET_LEN: usize = 32;

/// Development relaxes nothing that matters for data, but allows conveniences that are unsafe on a
/// network (wildcard CORS, no public URL, in-memory blobs, diagnostic jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    /// Where the SQLite database, local blobs and generated secrets live.
    pub data_dir: PathBuf,
    /// The address users reach this server at (`https://cloud.example.org`); required in production.
    pub public_url: Option<String>,
    pub http: HttpConfig,
    pub cors: CorsConfig,
    pub database: DatabaseConfig,
    pub blob: BlobConfig,
    pub jobs: JobsConfig,
    pub log: LogConfig,
    pub secrets: SecretsConfig,
    pub identity: IdentityConfig,
    pub mail: MailConfig,
    pub drive: DriveConfig,
    pub apps: AppsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            data_dir: PathBuf::from("./oppidum-data"),
            public_url: None,
            http: HttpConfig::default(),
            cors: CorsConfig::default(),
            database: DatabaseConfig::default(),
            blob: BlobConfig::default(),
            jobs: JobsConfig::default(),
            log: LogConfig::default(),
            secrets: SecretsConfig::default(),
            identity: IdentityConfig::default(),
            mail: MailConfig::default(),
            drive: DriveConfig::default(),
            apps: AppsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// Largest request body accepted by JSON endpoints (`"2MiB"`, `"512KB"` or bytes).
    pub body_limit: ByteSize,
    /// Requests running longer are answered 504 `request_timeout`.
    pub request_timeout_secs: u64,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_timeout_secs: u64,
    /// gzip responses when the client accepts it.
    pub compression: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            body_limit: ByteSize(2 * 1024 * 1024),
            request_timeout_secs: 30,
            shutdown_timeout_secs: 10,
            compression: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser (`https://app.example.org`); empty: none.
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and credentials cross-origin.
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), allow_credentials: false, max_age_secs: 600 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://user:password@host/db`. Default: SQLite in the data
    /// directory.
    pub url: Option<DatabaseUrl>,
    /// Pool size (PostgreSQL connections, or SQLite readers).
    pub max_connections: u32,
    /// Apply pending migrations when the server starts.
    pub migrate_on_start: bool,
    /// How long SQLite waits for a lock before failing.
    pub busy_timeout_ms: u64,
    /// At start, how long to keep retrying (with backoff, each attempt logged) a database that does
    /// not answer yet, as when a cluster's nodes start before PostgreSQL; 0 gives up at once.
    pub connect_retry_secs: u64,
    /// SQLite's durability: `normal` (every acknowledged write survives a crash of the process) or
    /// `full` (also a power loss or an operating-system crash, at one `fsync` per group commit).
    /// PostgreSQL follows the server's own `synchronous_commit`.
    pub synchronous: SqliteSynchronous,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            migrate_on_start: true,
            busy_timeout_ms: 5_000,
            connect_retry_secs: 60,
            synchronous: SqliteSynchronous::Normal,
        }
    }
}

/// `database.synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    #[default]
    Local,
    S3,
    Memory,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    pub backend: BlobBackend,
    /// Directory of the local backend. Default: `blobs/` in the data directory.
    pub path: Option<PathBuf>,
    pub s3: S3Config,
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self { backend: BlobBackend::Local, path: None, s3: S3Config::default() }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Endpoint of an S3-compatible server (MinIO, Garage, Ceph); empty for AWS.
    pub endpoint: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Allow a plain-HTTP endpoint (loopback test servers).
    pub allow_http: bool,
    /// Key prefix inside the bucket, to share one bucket between deployments.
    pub prefix: Option<String>,
    /// `https://bucket.host/` addressing instead of `https://host/bucket/`.
    pub virtual_hosted_style: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Run job workers in this process.
    pub enabled: bool,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// How often idle workers look for due jobs (enqueues wake them sooner).
    pub poll_interval_ms: u64,
    /// A job whose worker stops renewing its lease for this long is run again elsewhere.
    pub lease_secs: u64,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// Finished and dead jobs are pruned after this many days.
    pub retention_days: u32,
    /// Register the `diag.*` job kinds, to check a deployment's queue end to end.
    pub diagnostic_kinds: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 4,
            poll_interval_ms: 1_000,
            lease_secs: 60,
            max_attempts: 8,
            retention_days: 7,
            diagnostic_kinds: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty in development, JSON in production.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `oppidum=debug,sqlx=warn`, …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Auto }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Root key from which encryption keys are derived. Generated into
    /// `<data_dir>/secrets/master.key` (mode 0600) when not given.
    pub master_key: Option<Secret>,
    /// Former master keys, still accepted to open what they sealed (key rotation).
    pub previous_master_keys: Vec<Secret>,
}

/// The data API's apps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsConfig {
    /// Where apps live, one directory each (`<app>/app.yaml`, `<app>/schema.yaml`); default
    /// `<data_dir>/apps`.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriveConfig {
    /// Largest file accepted (`413` beyond).
    pub max_file_size: ByteSize,
    /// Logical bytes each user's drive may hold (every version counts); 0 for no limit.
    pub user_quota: ByteSize,
    /// Logical bytes each organization's shared drive may hold; 0 for no limit.
    pub org_quota: ByteSize,
    /// Uploads one user may run at once on one node (`429 too_many_uploads` beyond); 0: no cap.
    pub max_concurrent_uploads: usize,
    /// Virus scanning of uploads by a ClamAV daemon.
    pub antivirus: AntivirusConfig,
    /// Days a trashed file or folder stays restorable before it is purged; 0: kept until purged.
    pub trash_days: u64,
    /// Versions of each file kept besides the current one… (0: all)
    pub keep_versions: u64,
    /// …and their age limit in days (0: no limit). A version goes when either rule says so.
    pub keep_version_days: u64,
}

/// ClamAV (`clamd`) scanning of uploads, over its INSTREAM command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntivirusConfig {
    /// `tcp://host:port` or `unix:/path/to/clamd.sock`; unset: no scanning.
    pub address: Option<String>,
    /// Refuse uploads (`503 antivirus_unavailable`) while clamd cannot be reached; `false`
    /// accepts them unscanned, with a warning in the log.
    pub required: bool,
    /// Bytes of each upload sent to clamd (keep at or below clamd's `StreamMaxLength`).
    pub scan_limit: ByteSize,
    /// Longest wait for clamd's verdict once the upload ended.
    pub timeout_secs: u64,
}

impl Default for AntivirusConfig {
    fn default() -> Self {
        Self { address: None, required: true, scan_limit: ByteSize(25 << 20), timeout_secs: 60 }
    }
}

impl Default for DriveConfig {
    fn default() -> Self {
        Self {
            max_file_size: ByteSize(10 << 30),
            user_quota: ByteSize(0),
            org_quota: ByteSize(0),
            max_concurrent_uploads: 8,
            antivirus: AntivirusConfig::default(),
            trash_days: 30,
            keep_versions: 100,
            keep_version_days: 0,
        }
    }
}

/// How to reach the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (loopback relays only in production).
    None,
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub host: String,
    /// Default: 25 without TLS, 587 with STARTTLS, 465 with TLS.
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub timeout_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { host: String::new(), port: None, tls: SmtpTls::Starttls, user: None, password: None, timeout_secs: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Sender of transactional mail: `Name <address>`.
    pub from: String,
    /// Outgoing relay; without one, mail waits in the outbox (and is logged in development).
    pub relay: Option<RelayConfig>,
    /// Delivery attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// Locale of templates when neither the user nor the organization has one.
    pub default_locale: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self { from: "Oppidum <noreply@localhost>".into(), relay: None, max_attempts: 10, default_locale: "en".into() }
    }
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone, into the root organization as a member.
    Open,
    /// Only administrators (and invitations) create accounts.
    #[default]
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    pub registration: Registration,
    /// Lifetime of access tokens (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a session's refresh token chain without use.
    pub refresh_token_ttl_days: u64,
    /// `iss` of access tokens. Default: `public_url`, else `oppidum`.
    pub issuer: Option<String>,
    /// `aud` of access tokens.
    pub audience: String,
    /// Require a second factor where organizations ask for it (by default owners, admins and
    /// instance administrators). Turn off only for tests and demos.
    pub mfa_enforcement: bool,
    pub rate_limits: RateLimits,
    /// Base of the links account mails carry (`<app_url>/auth/reset-password?token=…`), for a front
    /// end served elsewhere. Default: `public_url`, else the listen address.
    pub app_url: Option<String>,
    /// How long a verified credential (access token, API key, app password) and the principal
    /// behind it are reused without reading the database. Changes that affect it (sign-out, revoked
    /// sessions, password or role changes, disabled users) end it at once on every node through the
    /// event bus; this bounds how long a lost notification can keep it alive. 0 turns the cache off.
    pub auth_cache_ttl_ms: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Closed,
            access_token_ttl_secs: 900,
            refresh_token_ttl_days: 30,
            issuer: None,
            audience: "oppidum".into(),
            mfa_enforcement: true,
            rate_limits: RateLimits::default(),
            app_url: None,
            auth_cache_ttl_ms: 1_000,
        }
    }
}

/// Attempts allowed per minute on each authentication surface; 0 disables a limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub login_per_account: u32,
    pub login_per_ip: u32,
    pub register_per_ip: u32,
    pub refresh_per_ip: u32,
    /// Failed HTTP Basic attempts (protocol clients send credentials with every request, so only
    /// failures count).
    pub basic_auth_per_ip: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { login_per_account: 5, login_per_ip: 30, register_per_ip: 5, refresh_per_ip: 60, basic_auth_per_ip: 60 }
    }
}

impl Config {
    /// The database URL in force: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("oppidum.db").display()),
        }
    }

    /// The local blob directory in force.
    pub fn apps_path(&self) -> PathBuf {
        self.apps.dir.clone().unwrap_or_else(|| self.data_dir.join("apps"))
    }

    pub fn blob_path(&self) -> PathBuf {
        self.blob.path.clone().unwrap_or_else(|| self.data_dir.join("blobs"))
    }

    /// `iss` of access tokens.
    pub fn token_issuer(&self) -> String {
        self.identity.issuer.clone().or_else(|| self.public_url.clone()).unwrap_or_else(|| "oppidum".into())
    }

    /// Where generated secrets are kept.
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir.join("secrets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_default_is_valid() {
        assert_eq!(Config::default().problems(), Vec::<String>::new());
    }

    #[test]
    fn config_production_lists_every_problem() {
        let mut config = Config { mode: Mode::Production, ..Config::default() };
        config.cors.allowed_origins = vec!["*".into(), "https://ok.example".into(), "ftp://x/y".into()];
        config.secrets.master_key = Some(Secret::new("short"));
        config.blob.backend = BlobBackend::Memory;
        let problems = config.problems().join("\n");
        for key in ["public_url", "cors.allowed_origins: \"*\"", "ftp://x/y", "secrets.master_key", "blob.backend"] {
            assert!(problems.contains(key), "missing {key} in {problems}");
        }
        assert!(!problems.contains("ok.example"));
    }

    #[test]
    fn config_app_url_must_be_a_web_url() {
        for (raw, expected) in [
            ("https://app.example.org/", None),
            ("ftp://app.example.org/", Some("must be an http or https URL")),
            ("not a url", Some("is not a URL")),
        ] {
            let mut config = Config::default();
            config.identity.app_url = Some(raw.into());
            let problems = config.problems().join("\n");
            match expected {
                None => assert!(problems.is_empty(), "{raw}: {problems}"),
                Some(text) => {
                    assert!(problems.contains("identity.app_url") && problems.contains(text), "{raw}: {problems}")
                }
            }
        }
        let mut config = Config { mode: Mode::Production, ..Config::default() };
        config.identity.app_url = Some("http://app.example.org/".into());
        assert!(config.problems().join("\n").contains("identity.app_url: `http://app.example.org/` must use https"));
    }

    #[test]
    fn config_sqlite_synchronous_is_normal_or_full() {
        let parse = |raw: &str| serde_json::from_value::<DatabaseConfig>(serde_json::json!({ "synchronous": raw }));
        assert_eq!(parse("full").expect("full").synchronous, SqliteSynchronous::Full);
        assert_eq!(parse("normal").expect("normal").synchronous, SqliteSynchronous::Normal);
        assert!(parse("off").is_err(), "durability below NORMAL is not offered");
        assert_eq!(DatabaseConfig::default().synchronous, SqliteSynchronous::Normal);
    }

    #[test]
    fn config_byte_size_parses_units() {
        assert_eq!(ByteSize::parse("2MiB"), Ok(ByteSize(2 << 20)));
        assert_eq!(ByteSize::parse("512 KB"), Ok(ByteSize(512_000)));
        assert_eq!(ByteSize::parse("17"), Ok(ByteSize(17)));
        assert!(ByteSize::parse("ten").is_err());
        assert!(ByteSize::parse("5 parsecs").is_err());
        assert!(ByteSize::parse("99999999999999999999GiB").is_err());
        assert_eq!(ByteSize(3 << 30).to_string(), "3GiB");
    }

    #[test]
    fn config_database_url_redacts_password() {
        let url = DatabaseUrl::new("postgres://app:hunter2@db.internal:5432/oppidum");
        assert!(!url.redacted().contains("hunter2"));
        assert!(url.redacted().contains("db.internal"));
        assert!(!format!("{url:?}").contains("hunter2"));
        let json = serde_json::to_string(&Secret::new("hunter2")).expect("serializes");
        assert_eq!(json, "\"[redacted]\"");
    }
}
