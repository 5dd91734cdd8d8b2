//! `oppidum apps …`: the data API's apps from the command line: listing and checking the apps
//! directory, reading an existing database into a schema, comparing an app with its database
//! and migrating it.

use anyhow::{Context, bail};
use oppidum_core::config::Config;
use oppidum_data::service::registry;
use oppidum_store::Db;

use crate::cli::AppsCommand;

pub async fn apps_command(config: Config, command: AppsCommand) -> anyhow::Result<()> {
    match command {
        AppsCommand::Introspect { db } => {
            let redacted = oppidum_core::config::DatabaseUrl::new(db.clone()).redacted();
            let db = Db::connect(&db, &Default::default()).await.with_context(|| format!("cannot open {redacted}"))?;
            let found = oppidum_data::introspect::introspect(&db).await?;
            print!("{}", oppidum_data::introspect::to_yaml(&found));
            for note in &found.notes {
                eprintln!("note: {note}");
            }
            Ok(())
        }
        AppsCommand::List => {
            let dir = config.apps_path();
            let apps = registry::app_dirs(&dir);
            if apps.is_empty() {
                println!("no apps in {}", dir.display());
            }
            for (name, path) in apps {
                let state = match registry::read_files(&path).map(|files| registry::check(Some(&name), &files)) {
                    Ok(Ok((app, _))) => format!(
                        "ok ({} tables, database {})",
                        app.schema.tables.len(),
                        database_name(&app.app.database)
                    ),
                    Ok(Err(problems)) => format!("invalid ({} problems)", problems.len()),
                    Err(err) => format!("unreadable: {err}"),
                };
                println!("{name}\t{state}");
            }
            Ok(())
        }
        AppsCommand::Check { app } => {
            load(&config, &app)?;
            println!("app `{app}` is valid");
            Ok(())
        }
        AppsCommand::Diff { app } => {
            let loaded = load(&config, &app)?;
            let main = crate::app::connect_db(&config).await?;
            let (_, plan) = registry::plan_for(&main, &loaded).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if plan.is_empty() {
                println!("-- app `{app}`: the database matches the schema");
            }
            for statement in &plan.safe {
                println!("{statement};");
            }
            for statement in &plan.destructive {
                println!("-- destructive (needs --force):\n{statement};");
            }
            Ok(())
        }
        AppsCommand::Migrate { app, force } => {
            let loaded = load(&config, &app)?;
            let main = crate::app::connect_db(&config).await?;
            let (db, plan) = registry::plan_for(&main, &loaded).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut statements = plan.safe.clone();
            if force {
                statements.extend(plan.destructive.iter().cloned());
            }
            registry::apply(&db, &statements).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            for statement in &statements {
                println!("{statement};");
            }
            if statements.is_empty() && plan.destructive.is_empty() {
                println!("-- app `{app}`: nothing to do");
            }
            if !force && !plan.destructive.is_empty() {
                for statement in &plan.destructive {
                    eprintln!("refused (destructive): {statement}");
                }
                bail!(
                    "{} destructive change(s) not applied: run again with --force to apply them",
                    plan.destructive.len()
                );
            }
            Ok(())
        }
    }
}

fn database_name(database: &str) -> String {
    if database == "main" {
        "main".into()
    } else {
        oppidum_core::config::DatabaseUrl::new(database.to_owned()).redacted()
    }
}

/// An app of the apps directory, checked; every problem listed otherwise.
fn load(config: &Config, app: &str) -> anyhow::Result<oppidum_data::schema::App> {
    let dir = config.apps_path().join(app);
    let files = registry::read_files(&dir).map_err(|e| anyhow::anyhow!("app `{app}`: {e}"))?;
    let (app_found, _) = registry::check(Some(app), &files).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!("app `{app}` has {} problem(s):\n{}", problems.len(), lines.join("\n"))
    })?;
    Ok(app_found)
}
