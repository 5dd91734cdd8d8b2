//! The apps a server runs: read from `<apps dir>/<app>/{app.yaml,schema.yaml}`, checked (YAML,
//! schema, and every rule and filter compiled against its table), their database opened and
//! brought up to the schema with additive changes only, then served. Replacing an app checks
//! the new version completely before anything changes: a bad schema is refused with every
//! problem listed and the running version keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ddl::{self, Plan};
use crate::queries::{MAX_QUERIES, NamedQuery, load_query};
use crate::schema::{App, Problem, load, valid_identifier};

/// The text of an app's files: `app.yaml`, `schema.yaml` and `queries/<name>.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub app_yaml: String,
    pub schema_yaml: String,
    /// Named queries by name (the text of each `queries/<name>.yaml`).
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}
use oppidum_core::vault::Vault;
use oppidum_core::{Error, ErrorKind};
use oppidum_store::Db;

/// An app being served.
#[derive(Debug)]
pub struct Loaded {
    pub name: String,
    pub app: App,
    /// The database its tables live in.
    pub db: Db,
    /// Prefix of its tables' SQL names.
    pub prefix: String,
    /// The files it was loaded from.
    pub files: Files,
    /// Its named queries, checked and rewritten.
    pub queries: BTreeMap<String, NamedQuery>,
    /// Seals its `encrypt` fields (a key of its own, derived from the master key).
    pub(crate) vault: Vault,
}

/// The master key and the previous ones, from which each app's key is derived.
#[derive(Clone)]
pub struct Keys {
    pub current: String,
    pub previous: Vec<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    fn vault(&self, app: &str) -> Vault {
        let derive = |key: &str| format!("{key}\0oppidum data app\0{app}");
        let previous: Vec<String> = self.previous.iter().map(|k| derive(k)).collect();
        let previous: Vec<&str> = previous.iter().map(String::as_str).collect();
        Vault::with_previous(&derive(&self.current), &previous)
    }
}

/// Why an app could not be (re)loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Its files are wrong: every problem.
    Invalid(Vec<Problem>),
    /// Its database could not be opened or changed.
    Database(String),
    /// Applying the schema needs destructive changes.
    Destructive(Vec<String>),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Invalid(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                write!(f, "{}", lines.join("; "))
            }
            LoadError::Database(reason) => write!(f, "database: {reason}"),
            LoadError::Destructive(statements) => write!(
                f,
                "the schema drops what the database holds (apply with `oppidum apps migrate --force`): {}",
                statements.join("; ")
            ),
        }
    }
}

impl From<LoadError> for Error {
    fn from(err: LoadError) -> Self {
        let message = err.to_string();
        match err {
            LoadError::Invalid(problems) => {
                Error::new(ErrorKind::Unprocessable, "invalid_schema", format!("The app is invalid: {message}"))
                    .with_details(serde_json::json!({ "problems": problems }))
            }
            LoadError::Database(_) => Error::new(ErrorKind::Unprocessable, "schema_not_applied", message),
            LoadError::Destructive(statements) => Error::new(ErrorKind::Conflict, "destructive_change", message)
                .with_details(serde_json::json!({ "statements": statements })),
        }
    }
}

/// Largest app file read from disk.
const MAX_FILE: u64 = 1 << 20;

/// Reads an app's files.
pub fn read_files(dir: &Path) -> Result<Files, LoadError> {
    let problem = |file: &str, reason: String| {
        LoadError::Invalid(vec![Problem { file: file.into(), table: None, field: None, reason }])
    };
    let read = |path: &Path, file: &str| -> Result<String, LoadError> {
        let meta =
            std::fs::metadata(path).map_err(|e| problem(file, format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > MAX_FILE {
            return Err(problem(file, format!("larger than {MAX_FILE} bytes")));
        }
        std::fs::read_to_string(path).map_err(|e| problem(file, format!("cannot read {}: {e}", path.display())))
    };
    let mut files = Files {
        app_yaml: read(&dir.join("app.yaml"), "app.yaml")?,
        schema_yaml: read(&dir.join("schema.yaml"), "schema.yaml")?,
        queries: BTreeMap::new(),
    };
    if let Ok(entries) = std::fs::read_dir(dir.join("queries")) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".yaml")) else {
                continue;
            };
            if files.queries.len() == MAX_QUERIES {
                return Err(problem("queries", format!("more than {MAX_QUERIES} queries")));
            }
            let text = read(&path, &format!("queries/{name}.yaml"))?;
            files.queries.insert(name.to_owned(), text);
        }
    }
    Ok(files)
}

/// Checks an app's files completely (every rule and filter compiled too) and that it is named
/// as its directory.
pub fn check(expected_name: Option<&str>, files: &Files) -> Result<(App, BTreeMap<String, NamedQuery>), Vec<Problem>> {
    let app = load(&files.app_yaml, &files.schema_yaml)?;
    let mut problems = Vec::new();
    let prefix = ddl::prefix(&app.app);
    let mut queries = BTreeMap::new();
    if files.queries.len() > MAX_QUERIES {
        problems.push(Problem {
            file: "queries".into(),
            table: None,
            field: None,
            reason: format!("more than {MAX_QUERIES} queries"),
        });
    }
    for (name, text) in &files.queries {
        match load_query(name, text, &app.schema, &prefix) {
            Ok(query) => {
                queries.insert(name.clone(), query);
            }
            Err(more) => problems.extend(more),
        }
    }
    if let Some(name) = expected_name
        && name != app.app.name
    {
        problems.push(Problem {
            file: "app.yaml".into(),
            table: None,
            field: None,
            reason: format!("`name` is `{}` but the app is `{name}`", app.app.name),
        });
    }
    if problems.is_empty() { Ok((app, queries)) } else { Err(problems) }
}

/// Opens the database an app names.
pub(crate) async fn open_db(main: &Db, app: &App) -> Result<Db, LoadError> {
    if app.app.database == "main" {
        return Ok(main.clone());
    }
    Db::connect(&app.app.database, &Default::default()).await.map_err(|e| LoadError::Database(e.to_string()))
}

/// Applies a plan's statements in one transaction.
pub async fn apply(db: &Db, statements: &[String]) -> Result<(), LoadError> {
    let database = |e: oppidum_store::StoreError| LoadError::Database(e.to_string());
    let mut tx = db.begin().await.map_err(database)?;
    for statement in statements {
        tx.query_dynamic(statement.clone()).execute().await.map_err(database)?;
    }
    tx.commit().await.map_err(database)
}

/// What applying the app to its database would change (and that database).
pub async fn plan_for(main: &Db, app: &App) -> Result<(Db, Plan), LoadError> {
    let db = open_db(main, app).await?;
    let plan =
        ddl::plan(&db, &ddl::prefix(&app.app), &app.schema).await.map_err(|e| LoadError::Database(e.to_string()))?;
    Ok((db, plan))
}

/// Checks an app, brings its database up to it (additive changes only) and returns it ready.
pub(crate) async fn prepare(main: &Db, keys: &Keys, name: &str, files: Files) -> Result<Loaded, LoadError> {
    if !valid_identifier(name) {
        return Err(LoadError::Invalid(vec![Problem {
            file: "app.yaml".into(),
            table: None,
            field: None,
            reason: format!("`{name}` is not a valid app name (lowercase letters, digits and `_`)"),
        }]));
    }
    let (app, queries) = check(Some(name), &files).map_err(LoadError::Invalid)?;
    let (db, plan) = plan_for(main, &app).await?;
    if !plan.destructive.is_empty() && app.app.database == "main" {
        tracing::warn!(app = name, statements = ?plan.destructive, "the schema no longer has some columns or tables; they are kept");
    }
    apply(&db, &plan.safe).await?;
    for statement in &plan.safe {
        tracing::info!(app = name, statement, "applied to the app's database");
    }
    Ok(Loaded {
        name: name.to_owned(),
        prefix: ddl::prefix(&app.app),
        app,
        db,
        files,
        queries,
        vault: keys.vault(name),
    })
}

/// Writes an app's files: a complete new directory is written aside, then swapped in, so a
/// reader (or a crash) sees the old version or the new one, never a mix.
pub(crate) fn write_files(dir: &Path, files: &Files) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("app");
    std::fs::create_dir_all(parent)?;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let staged = parent.join(format!(".{name}.new-{tag}"));
    std::fs::create_dir_all(staged.join("queries"))?;
    std::fs::write(staged.join("app.yaml"), &files.app_yaml)?;
    std::fs::write(staged.join("schema.yaml"), &files.schema_yaml)?;
    for (query, text) in &files.queries {
        std::fs::write(staged.join("queries").join(format!("{query}.yaml")), text)?;
    }
    let old = parent.join(format!(".{name}.old-{tag}"));
    let had = dir.exists();
    if had {
        std::fs::rename(dir, &old)?;
    }
    if let Err(err) = std::fs::rename(&staged, dir) {
        if had {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(err);
    }
    if had {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// The app directories under `root`.
pub fn app_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("app.yaml").is_file())
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        // `.<app>.new-…` and `.<app>.old-…`: versions being swapped in or out.
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_filters_are_compiled_when_an_app_loads() {
        let schema = "tables:\n  projects:\n    rules:\n      update: \"archived == 'no'\"\n    filters:\n      bad: \"nothing >= 4\"\n      good: \"archived == false\"\n    fields:\n      id: { type: int, primary: true, auto: true }\n      archived: { type: bool }\n";
        let files = |name: &str, schema: &str| Files {
            app_yaml: format!("name: {name}\n"),
            schema_yaml: schema.to_owned(),
            queries: BTreeMap::new(),
        };
        let problems = check(Some("p"), &files("p", schema)).expect_err("invalid");
        let reasons: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with("rule `update`: cannot compare"), "{reasons:?}");
        assert!(reasons[1].starts_with("filter `bad`: unknown field"), "{reasons:?}");
        let fixed = schema.replace("'no'", "true").replace("nothing", "id");
        let problems = check(Some("q"), &files("p", &fixed)).expect_err("name");
        assert!(problems[0].reason.contains("but the app is `q`"), "{problems:?}");
    }
}
