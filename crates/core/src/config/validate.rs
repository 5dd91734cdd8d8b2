//! Validation of the configuration: every problem at once, each naming its key, with the stricter
//! rules of production mode.

use std::net::SocketAddr;

use super::{BlobBackend, Config, MIN_SECRET_LEN, Mode, SmtpTls};

impl Config {
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
        if let Some(address) = &self.drive.antivirus.address
            && !(address.starts_with("tcp://") || address.starts_with("unix:"))
        {
            problems.push(format!(
                "drive.antivirus.address: `{address}` must be tcp://host:port or unix:/path/to/clamd.sock"
            ));
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

        if let Some(raw) = &self.identity.app_url {
            match url::Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    if production && url.scheme() != "https" {
                        problems.push(format!("identity.app_url: `{raw}` must use https in production"));
                    }
                }
                Ok(_) => problems.push(format!("identity.app_url: `{raw}` must be an http or https URL")),
                Err(err) => problems.push(format!("identity.app_url: `{raw}` is not a URL ({err})")),
            }
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
