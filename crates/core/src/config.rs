//! Configuration types. Every field has a default, so Oppidum runs with no file at all; loading
//! (TOML file, `OPPIDUM_SECTION__KEY` environment, `…_FILE` indirection) lives in the server crate.
//! [`Config::problems`] lists every problem at once, with the stricter rules of production mode.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 8, migrate_on_start: true, busy_timeout_ms: 5_000 }
    }
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriveConfig {
    /// Largest file accepted (`413` beyond).
    pub max_file_size: ByteSize,
    /// Logical bytes each user's drive may hold (every version counts); 0 for no limit.
    pub user_quota: ByteSize,
}

impl Default for DriveConfig {
    fn default() -> Self {
        Self { max_file_size: ByteSize(10 << 30), user_quota: ByteSize(0) }
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
    pub basic_auth_per_ip: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { login_per_account: 5, login_per_ip: 30, register_per_ip: 5, refresh_per_ip: 60, basic_auth_per_ip: 60 }
    }
}

/// A secret string: never printed, never logged, serialized as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// A database URL, which may carry a password: printed with the password redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(Secret);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with any password replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.expose()) {
            Ok(mut url) if url.password().is_some() => {
                // Cannot fail: a URL with a password has a host.
                let _ = url.set_password(Some("[redacted]"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => "[unparseable, redacted]".into(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// A size in bytes, written `1048576`, `"1MiB"`, `"512 KB"` or `"2GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `"10MiB"`-style sizes (binary and decimal units, case-insensitive).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a size like \"10MiB\""))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)")),
        };
        number.checked_mul(factor).map(Self).ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (factor, unit) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(text) => Self::parse(&text).map_err(serde::de::Error::custom),
        }
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

    /// Every problem with this configuration, each naming its key. Empty means valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let production = self.mode == Mode::Production;

        if self.http.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("http.listen: `{}` is not an address like 127.0.0.1:8080", self.http.listen));
        }
        if self.http.body_limit.bytes() == 0 {
            problems.push("http.body_limit: must be larger than zero".into());
        }
        if self.http.request_timeout_secs == 0 {
            problems.push("http.request_timeout_secs: must be at least 1".into());
        }

        match &self.public_url {
            None if production => problems.push(
                "public_url: required in production, so links in mail and discovery documents point at the right host"
                    .into(),
            ),
            None => {}
            Some(raw) => match url::Url::parse(raw) {
                Err(err) => problems.push(format!("public_url: `{raw}` is not a URL ({err})")),
                Ok(url) if production && url.scheme() != "https" => {
                    problems.push(format!("public_url: `{raw}` must use https in production"))
                }
                Ok(_) => {}
            },
        }

        for origin in &self.cors.allowed_origins {
            if origin == "*" {
                if production {
                    problems.push(
                        "cors.allowed_origins: \"*\" lets every website call the API from a user's browser; list the allowed origins"
                            .into(),
                    );
                } else if self.cors.allow_credentials {
                    problems.push("cors.allowed_origins: \"*\" cannot be combined with cors.allow_credentials".into());
                }
            } else if !is_origin(origin) {
                problems.push(format!(
                    "cors.allowed_origins: `{origin}` is not an origin like https://app.example.org (no path)"
                ));
            }
        }

        let db_url = self.database_url();
        if !(db_url.starts_with("sqlite:") || db_url.starts_with("postgres://") || db_url.starts_with("postgresql://"))
        {
            problems.push("database.url: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }

        match self.blob.backend {
            BlobBackend::Memory if production => {
                problems.push("blob.backend: \"memory\" loses every file on restart; use local or s3".into())
            }
            BlobBackend::S3 => self.s3_problems(production, &mut problems),
            _ => {}
        }

        if self.jobs.concurrency == 0 || self.jobs.concurrency > 256 {
            problems.push("jobs.concurrency: must be between 1 and 256".into());
        }
        if self.jobs.lease_secs < 5 {
            problems.push("jobs.lease_secs: must be at least 5".into());
        }
        if self.jobs.max_attempts == 0 {
            problems.push("jobs.max_attempts: must be at least 1".into());
        }
        if self.jobs.poll_interval_ms < 10 {
            problems.push("jobs.poll_interval_ms: must be at least 10".into());
        }
        if production && self.jobs.diagnostic_kinds {
            problems.push(
                "jobs.diagnostic_kinds: diagnostic jobs are for checking a deployment, not for production".into(),
            );
        }

        if self.identity.access_token_ttl_secs < 30 || self.identity.access_token_ttl_secs > 86_400 {
            problems.push("identity.access_token_ttl_secs: must be between 30 and 86400".into());
        }
        if self.identity.refresh_token_ttl_days == 0 {
            problems.push("identity.refresh_token_ttl_days: must be at least 1".into());
        }
        if production && !self.identity.mfa_enforcement {
            problems.push("identity.mfa_enforcement: administrators must use a second factor in production".into());
        }
        if self.identity.audience.trim().is_empty() {
            problems.push("identity.audience: must not be empty".into());
        }

        if !self.mail.from.contains('@') {
            problems.push(format!(
                "mail.from: `{}` is not an address like `Oppidum <noreply@example.org>`",
                self.mail.from
            ));
        }
        if !matches!(self.mail.default_locale.as_str(), "en" | "fr") {
            problems.push("mail.default_locale: must be en or fr".into());
        }
        if let Some(relay) = &self.mail.relay {
            if relay.host.trim().is_empty() {
                problems.push("mail.relay.host: required when [mail.relay] is set".into());
            }
            if relay.user.is_some() != relay.password.is_some() {
                problems.push("mail.relay: user and password must be given together".into());
            }
            let loopback = matches!(relay.host.as_str(), "localhost" | "127.0.0.1" | "::1");
            if production && relay.tls == SmtpTls::None && !loopback {
                problems.push("mail.relay.tls: \"none\" to a remote relay sends mail and credentials in clear".into());
            }
        }

        if let Some(key) = &self.secrets.master_key
            && key.expose().len() < MIN_SECRET_LEN
        {
            problems.push(format!(
                "secrets.master_key: {} bytes is too short; use at least {MIN_SECRET_LEN} random bytes",
                key.expose().len()
            ));
        }
        problems
    }

    fn s3_problems(&self, production: bool, problems: &mut Vec<String>) {
        let s3 = &self.blob.s3;
        if s3.bucket.trim().is_empty() {
            problems.push("blob.s3.bucket: required when blob.backend = \"s3\"".into());
        }
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            problems.push("blob.s3: access_key_id and secret_access_key must be given together".into());
        }
        if let Some(endpoint) = &s3.endpoint {
            match url::Url::parse(endpoint) {
                Err(err) => problems.push(format!("blob.s3.endpoint: `{endpoint}` is not a URL ({err})")),
                Ok(url) if url.scheme() == "http" && !s3.allow_http => {
                    problems.push("blob.s3.endpoint: plain http needs blob.s3.allow_http = true".into())
                }
                Ok(url) if url.scheme() == "http" && production && !is_loopback_host(&url) => problems
                    .push("blob.s3.endpoint: plain http to a remote host sends credentials and files in clear".into()),
                Ok(_) => {}
            }
        }
        if production
            && let Some(secret) = &s3.secret_access_key
            && secret.expose().len() < 16
        {
            problems.push("blob.s3.secret_access_key: suspiciously short".into());
        }
    }
}

fn is_origin(text: &str) -> bool {
    match url::Url::parse(text) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.path() == "/"
                && !text.ends_with('/')
                && url.query().is_none()
                && url.fragment().is_none()
        }
        Err(_) => false,
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
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
