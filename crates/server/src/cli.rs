//! The command line: `oppidum [--config FILE] <command>`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Oppidum: a sovereign workspace server (identity, drive, calendar, contacts, mail, data API).
#[derive(Debug, Parser)]
#[command(name = "oppidum", version = crate::build_info::BUILD.version)]
pub struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults and OPPIDUM_* variables apply.
    #[arg(long, short, global = true, env = "OPPIDUM_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default command).
    Serve,
    /// Apply pending database migrations, or show where the schema stands.
    Migrate {
        /// Only report applied and pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and manage the durable job queue.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Inspect the outgoing mail queue.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Administration: first administrator, users.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The data API's apps: check them, read an existing database, compare and migrate.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Print the OpenAPI document of the JSON API (the source of docs/openapi.json).
    Openapi,
    /// Print version, commit and compiler.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and list every problem; exits 1 when there is any.
    Check,
    /// Print the effective configuration as TOML, secrets redacted.
    Print,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the newest jobs.
    List {
        /// Only jobs with this status: queued, running, done or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one job and its attempts as JSON.
    Show { id: uuid::Uuid },
    /// Run a dead job again with a fresh set of attempts.
    Retry { id: uuid::Uuid },
    /// Enqueue a job (for operators and deployment checks).
    Enqueue {
        kind: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Run no earlier than this many seconds from now.
        #[arg(long, default_value_t = 0)]
        delay_secs: i64,
        #[arg(long)]
        max_attempts: Option<u32>,
    },
    /// Counts by status.
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a one-time token that creates the first instance administrator (valid 24 hours).
    Bootstrap,
    /// Check the audit log's hash chain; exits 1 when an entry was altered or removed.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create a user directly (the first administrator, or in scripts).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Home organization id; default: the root organization.
        #[arg(long)]
        org: Option<uuid::Uuid>,
        /// Role in that organization.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Make the user an instance administrator.
        #[arg(long)]
        instance_admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the first entry.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List the newest messages of the outbox.
    Outbox {
        /// Only messages with this status: queued, sent or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List the apps of the apps directory and whether each loads.
    List,
    /// Check an app's files and list every problem; exits 1 when there is any.
    Check { app: String },
    /// Print a schema (YAML) read from an existing SQLite or PostgreSQL database.
    Introspect {
        /// `sqlite:///path/to/file.db` or `postgres://user:password@host/database`.
        #[arg(long)]
        db: String,
    },
    /// Show how an app's schema and its database differ, as the SQL that would align them.
    Diff { app: String },
    /// Apply the additive changes (new tables, columns, indexes), printing the SQL run;
    /// destructive ones (dropped columns or tables) only with `--force`.
    Migrate {
        app: String,
        #[arg(long)]
        force: bool,
    },
}
