//! The commands of the `oppidum` binary. Each loads the configuration, reports every problem at
//! once when it is invalid, and exits non-zero on failure.

use std::process::ExitCode;

use anyhow::Context;
use oppidum_core::config::Config;
use oppidum_store::jobs::{JobQueue, NewJob};

use crate::apps_cli::apps_command;
use crate::cli::{AdminCommand, AuditCommand, Cli, Command, ConfigCommand, JobsCommand, MailCommand};
use crate::settings;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Version = command {
        let b = crate::build_info::BUILD;
        println!("{} {} (commit {}, {})", b.name, b.version, b.commit, b.rustc);
        return ExitCode::SUCCESS;
    }
    if let Command::Openapi = command {
        println!("{}", crate::http::openapi_pretty());
        return ExitCode::SUCCESS;
    }
    let (config, warnings) = match settings::load(cli.config.as_deref()) {
        Ok(loaded) => (loaded.config, loaded.warnings),
        Err(problems) => {
            if let Command::Config(ConfigCommand::Check) = command {
                print_problems(&problems);
            } else {
                eprintln!("oppidum cannot start: the configuration is invalid.");
                print_problems(&problems);
            }
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Config(ConfigCommand::Check) => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            println!("configuration is valid ({} mode)", mode_name(&config));
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Print) => {
            print!("{}", settings::render(&config));
            ExitCode::SUCCESS
        }
        other => {
            crate::telemetry::init_logging(&config);
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run_async(other, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_problems(problems: &[String]) {
    eprintln!("{} problem(s) in the configuration:", problems.len());
    for problem in problems {
        eprintln!("  - {problem}");
    }
}

fn mode_name(config: &Config) -> &'static str {
    match config.mode {
        oppidum_core::config::Mode::Development => "development",
        oppidum_core::config::Mode::Production => "production",
    }
}

async fn run_async(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            settings::prepare_data_dir(&mut config).map_err(anyhow::Error::msg)?;
            crate::serve::run(config).await
        }
        Command::Migrate { status } => migrate(config, status).await,
        Command::Jobs(jobs) => jobs_command(config, jobs).await,
        Command::Mail(MailCommand::Outbox { status, limit }) => mail_outbox(config, status, limit).await,
        Command::Admin(admin) => {
            settings::prepare_data_dir(&mut config).map_err(anyhow::Error::msg)?;
            admin_command(config, admin).await
        }
        Command::Apps(apps) => apps_command(config, apps).await,
        Command::Config(_) | Command::Version | Command::Openapi => Ok(()),
    }
}

async fn migrate(config: Config, status_only: bool) -> anyhow::Result<()> {
    if !status_only {
        settings::prepare_data_dir(&mut config.clone()).map_err(anyhow::Error::msg)?;
    }
    let db = crate::app::connect_db(&config).await?;
    let status = db.schema_status().await?;
    println!(
        "database: {} (schema version {}, this binary knows {})",
        db.backend().name(),
        status.database,
        status.binary
    );
    if status_only {
        for (version, description) in &status.pending {
            println!("pending: {version} {description}");
        }
        if status.too_new() {
            anyhow::bail!(oppidum_store::StoreError::SchemaTooNew { database: status.database, binary: status.binary });
        }
        return Ok(());
    }
    let applied = db.migrate().await?;
    if applied.is_empty() {
        println!("up to date");
    }
    for (version, description) in applied {
        println!("applied: {version} {description}");
    }
    db.close().await;
    Ok(())
}

async fn jobs_command(config: Config, command: JobsCommand) -> anyhow::Result<()> {
    let db = crate::app::connect_db(&config).await?;
    db.check_schema().await?;
    let bus = oppidum_store::EventBus::new(uuid::Uuid::now_v7(), db.pg_pool().cloned());
    let clock = std::sync::Arc::new(oppidum_core::time::SystemClock);
    let queue = JobQueue::new(db.clone(), clock, bus, config.jobs.max_attempts);
    match command {
        JobsCommand::List { status, limit } => {
            for job in queue.list(status.as_deref(), limit).await? {
                println!(
                    "{}  {:<8} {:<24} attempts {}/{}  run_at {}{}",
                    job.id,
                    job.status,
                    job.kind,
                    job.attempts,
                    job.max_attempts,
                    job.run_at.to_rfc3339(),
                    job.last_error.map(|e| format!("  last error: {e}")).unwrap_or_default()
                );
            }
        }
        JobsCommand::Show { id } => {
            let job = queue.get(id).await?.with_context(|| format!("no job {id}"))?;
            let attempts = queue.attempts(id).await?;
            let out = serde_json::json!({ "job": job, "attempts": attempts });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        JobsCommand::Retry { id } => {
            anyhow::ensure!(queue.retry(id).await?, "job {id} does not exist or is running or done");
            println!("job {id} queued again");
        }
        JobsCommand::Enqueue { kind, payload, delay_secs, max_attempts } => {
            let payload: serde_json::Value = serde_json::from_str(&payload).context("--payload is not JSON")?;
            let mut job = NewJob::new(kind, payload);
            job.run_at = Some(queue.now() + chrono::Duration::seconds(delay_secs.max(0)));
            job.max_attempts = max_attempts;
            let id = queue.enqueue(job).await?.context("not enqueued")?;
            println!("{id}");
        }
        JobsCommand::Stats => {
            println!("{}", serde_json::to_string_pretty(&queue.stats().await?)?);
        }
    }
    db.close().await;
    Ok(())
}

async fn admin_command(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let db = crate::app::connect_db(&config).await?;
    if config.database.migrate_on_start {
        db.migrate().await?;
    } else {
        db.check_schema().await?;
    }
    let clock: std::sync::Arc<dyn oppidum_core::time::Clock> = std::sync::Arc::new(oppidum_core::time::SystemClock);
    let bus = oppidum_store::EventBus::new(uuid::Uuid::now_v7(), db.pg_pool().cloned());
    let queue = JobQueue::new(db.clone(), clock.clone(), bus, config.jobs.max_attempts);
    let mailer = crate::app::mailer(&config, &db, &queue, clock.clone());
    let identity = crate::app::identity_service(&config, &db, clock, mailer)?;
    let root = identity.ensure_ready().await?;
    match command {
        AdminCommand::Audit(AuditCommand::Verify) => match identity.verify_audit().await? {
            oppidum_identity::audit::Verification::Intact { entries } => {
                println!("audit log intact: {entries} entries verified");
            }
            oppidum_identity::audit::Verification::Broken { seq, reason } => {
                anyhow::bail!("audit log tampered at entry {seq}: {reason}");
            }
        },
        AdminCommand::Bootstrap => match identity.bootstrap_token().await? {
            Some(token) => println!("{token}"),
            None => anyhow::bail!("an administrator already exists; sign in instead"),
        },
        AdminCommand::CreateUser { email, name, org, role, instance_admin, password_stdin } => {
            let email = oppidum_identity::service::normalize_email(&email)?;
            let name = oppidum_identity::service::normalize_name(&name, "name")?;
            anyhow::ensure!(
                oppidum_identity::permissions::builtin(&role).is_some(),
                "--role must be a built-in role (owner, admin, member, guest)"
            );
            let hash = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let password = line.trim_end_matches(['\n', '\r']).to_owned();
                oppidum_identity::password::validate(&password)?;
                Some(oppidum_identity::password::hash(password).await?)
            } else {
                None
            };
            let user = identity.insert_user(email, name, hash, org.unwrap_or(root.id), &role, instance_admin).await?;
            println!("{}", user.id);
        }
    }
    db.close().await;
    Ok(())
}

async fn mail_outbox(config: Config, status: Option<String>, limit: i64) -> anyhow::Result<()> {
    let db = crate::app::connect_db(&config).await?;
    db.check_schema().await?;
    let clock: std::sync::Arc<dyn oppidum_core::time::Clock> = std::sync::Arc::new(oppidum_core::time::SystemClock);
    let bus = oppidum_store::EventBus::new(uuid::Uuid::now_v7(), None);
    let queue = JobQueue::new(db.clone(), clock.clone(), bus, config.jobs.max_attempts);
    let mailer = crate::app::mailer(&config, &db, &queue, clock);
    for message in mailer.list(status.as_deref(), limit).await? {
        println!(
            "{}  {:<6} attempts {}  {}  to {}  \"{}\"{}",
            message.id,
            message.status,
            message.attempts,
            message.created_at.to_rfc3339(),
            message.to_addr,
            message.subject,
            message.last_error.map(|e| format!("  last error: {e}")).unwrap_or_default()
        );
    }
    db.close().await;
    Ok(())
}
