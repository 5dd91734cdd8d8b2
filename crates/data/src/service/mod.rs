//! The data API service: the apps being served, and every operation on their rows for a
//! caller. Apps come from the apps directory and can be replaced through the API; the files stay
//! the source of truth. Each change is one transaction; events go out once it committed.

mod access;
mod errors;
mod items;
mod named;
mod read;
pub mod registry;
mod sql;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use chrono::{SubsecRound, Utc};
use oppidum_core::{Directory, Error, ErrorKind, FileAccess, Principal};
use oppidum_store::{Db, EventBus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

pub use items::Items;
pub use named::{Given, MAX_ROWS, QueryResult};
pub use read::{ListQuery, Page};
pub use registry::{Files, Keys, LoadError, Loaded};
pub use write::Change;

use self::access::Ctx;
use self::errors::OrStore;
use crate::compile::Auth;

/// Runs one change in a transaction (rolled back on error, when dropped) and publishes its
/// events once committed.
macro_rules! in_tx {
    ($api:ident, $principal:ident, $app:ident, |$ctx:ident, $tx:ident, $changes:ident| $work:expr) => {{
        let (loaded, auth) = $api.context($principal, $app).await?;
        let context = $api.ctx(&loaded, auth, $principal);
        let mut transaction = loaded.db.begin().await.or_store()?;
        let mut recorded = Vec::new();
        let out = {
            let ($ctx, $tx, $changes) = (&context, &mut transaction, &mut recorded);
            $work.await?
        };
        transaction.commit().await.or_store()?;
        $api.publish(&loaded.name, $principal, recorded).await;
        Ok(out)
    }};
}

/// The data API; cheap to clone.
#[derive(Clone, Debug)]
pub struct DataApi(Arc<Inner>);

struct Inner {
    main: Db,
    dir: PathBuf,
    keys: Keys,
    directory: Arc<dyn Directory>,
    /// Drive files, for `file` fields (none: not checked).
    files: Option<Arc<dyn FileAccess>>,
    bus: Option<EventBus>,
    apps: RwLock<BTreeMap<String, Arc<Loaded>>>,
    /// One app change at a time.
    changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataApi").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// One operation of a batch.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchOperation {
    /// `create`, `update`, `delete` or `restore`.
    pub op: String,
    pub table: String,
    /// The row (all but `create`).
    #[serde(default)]
    pub id: Option<Json>,
    /// The fields (`create`, `update`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Map<String, Json>>,
    /// The row version expected (`update`, `delete`).
    #[serde(default)]
    pub if_match: Option<String>,
}

/// The event telling every node that an app's files changed.
const APPS_CHANGED: &str = "data.apps.changed";

/// Reloads from disk the apps other nodes changed.
async fn follow_other_nodes(
    api: DataApi,
    mut events: tokio::sync::broadcast::Receiver<Arc<oppidum_store::Event>>,
    node: uuid::Uuid,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if event.topic != APPS_CHANGED || event.origin == node {
            continue;
        }
        let Some(name) = event.payload["app"].as_str() else { continue };
        let path = api.0.dir.join(name);
        if !crate::schema::valid_identifier(name) || !path.join("app.yaml").is_file() {
            continue;
        }
        let _one = api.0.changing.lock().await;
        match api.load_from_disk(name, &path).await {
            Ok(loaded) => {
                api.insert(loaded);
                tracing::info!(app = name, "app reloaded: another node changed it");
            }
            Err(err) => {
                tracing::error!(app = name, error = %err, "app changed by another node does not load; the running version stays")
            }
        }
    }
}

/// Most operations in one batch.
pub const MAX_BATCH: usize = 100;

/// An app as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppSummary {
    pub name: String,
    pub description: String,
    pub tables: Vec<String>,
}

impl DataApi {
    /// Serves the apps found under `dir`; an app that does not load is logged with every
    /// problem and left out.
    pub async fn open(
        main: Db,
        dir: PathBuf,
        keys: Keys,
        directory: Arc<dyn Directory>,
        files: Option<Arc<dyn FileAccess>>,
        bus: Option<EventBus>,
    ) -> Self {
        let api = DataApi(Arc::new(Inner {
            main,
            dir,
            keys,
            directory,
            files,
            bus,
            apps: RwLock::new(BTreeMap::new()),
            changing: tokio::sync::Mutex::new(()),
        }));
        if let Some(bus) = &api.0.bus {
            tokio::spawn(follow_other_nodes(api.clone(), bus.subscribe_to(&[APPS_CHANGED]), bus.node()));
        }
        for (name, path) in registry::app_dirs(&api.0.dir) {
            match api.load_from_disk(&name, &path).await {
                Ok(loaded) => {
                    tracing::info!(app = name, tables = loaded.app.schema.tables.len(), "serving app");
                    api.insert(loaded);
                }
                Err(err) => tracing::error!(app = name, error = %err, "app not served"),
            }
        }
        api
    }

    async fn load_from_disk(&self, name: &str, path: &std::path::Path) -> Result<Loaded, LoadError> {
        let files = registry::read_files(path)?;
        registry::prepare(&self.0.main, &self.0.keys, name, files).await
    }

    fn insert(&self, loaded: Loaded) -> Arc<Loaded> {
        let loaded = Arc::new(loaded);
        if let Ok(mut apps) = self.0.apps.write() {
            apps.insert(loaded.name.clone(), loaded.clone());
        }
        loaded
    }

    /// The app being served under `name`.
    pub fn app(&self, name: &str) -> Option<Arc<Loaded>> {
        self.0.apps.read().ok()?.get(name).cloned()
    }

    /// Every app served.
    pub fn apps(&self) -> Vec<Arc<Loaded>> {
        self.0.apps.read().map(|apps| apps.values().cloned().collect()).unwrap_or_default()
    }

    /// The directory apps live in.
    pub fn dir(&self) -> &std::path::Path {
        &self.0.dir
    }

    /// Installs or replaces an app from the text of its files: checked completely, applied to
    /// its database (additive changes), written to disk, then served. Nothing changes on error.
    ///
    /// `queries: None` keeps the app's current named queries. Named queries are SQL over the
    /// whole database, and a database URL reaches another one: changing either takes an instance
    /// administrator (`412`-free, plain `403 missing_permission` otherwise).
    pub async fn install(
        &self,
        principal: &Principal,
        name: &str,
        app_yaml: String,
        schema_yaml: String,
        queries: Option<BTreeMap<String, String>>,
    ) -> Result<Arc<Loaded>, Error> {
        self.require_manage(principal).await?;
        let _one = self.0.changing.lock().await;
        let current = self.app(name);
        let current_queries = current.as_ref().map(|c| c.files.queries.clone()).unwrap_or_default();
        let queries = queries.unwrap_or_else(|| current_queries.clone());
        let files = registry::Files { app_yaml, schema_yaml, queries };
        if !principal.instance_admin {
            let database = |yaml: &str| {
                serde_norway::from_str::<crate::schema::AppFile>(yaml).map(|a| a.database).unwrap_or_default()
            };
            let new_database = database(&files.app_yaml);
            let old_database = current.as_ref().map_or_else(|| "main".to_owned(), |c| c.app.app.database.clone());
            if files.queries != current_queries || (new_database != "main" && new_database != old_database) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "missing_permission",
                    "Named queries and databases other than `main` reach beyond the app: an instance administrator sets them.",
                ));
            }
        }
        let loaded = registry::prepare(&self.0.main, &self.0.keys, name, files).await?;
        registry::write_files(&self.0.dir.join(name), &loaded.files)
            .map_err(|e| Error::internal(format!("writing the app's files: {e}")))?;
        tracing::info!(app = name, by = %principal.user_id, "app installed");
        let loaded = self.insert(loaded);
        self.announce(name).await;
        Ok(loaded)
    }

    /// Reads an app's files again (after an edit on disk); the running version stays on error.
    pub async fn reload(&self, principal: &Principal, name: &str) -> Result<Arc<Loaded>, Error> {
        self.require_manage(principal).await?;
        let _one = self.0.changing.lock().await;
        let path = self.0.dir.join(name);
        if !crate::schema::valid_identifier(name) || !path.join("app.yaml").is_file() {
            return Err(Error::new(ErrorKind::NotFound, "unknown_app", format!("There is no app `{name}` on disk.")));
        }
        let loaded = self.load_from_disk(name, &path).await?;
        let loaded = self.insert(loaded);
        self.announce(name).await;
        Ok(loaded)
    }

    /// Tells the other nodes (sharing the apps directory) that an app changed.
    async fn announce(&self, name: &str) {
        if let Some(bus) = &self.0.bus
            && let Err(err) = bus.publish(APPS_CHANGED, json!({ "app": name })).await
        {
            tracing::warn!(app = name, error = %err, "announcing an app change failed");
        }
    }

    /// 403 unless the caller manages apps: apps serve the whole instance, so `apps.manage` counts
    /// only in the root organization (or for instance administrators).
    pub async fn require_manage(&self, principal: &Principal) -> Result<(), Error> {
        let allowed = principal.instance_admin
            || (principal.can("apps.manage") && self.0.directory.is_instance_org(principal.org_id).await?);
        if allowed {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Forbidden,
                "missing_permission",
                "Managing apps needs `apps.manage` in the root organization.",
            ))
        }
    }

    /// The caller's context in an app: 404 for an unknown app, 403 for a role it does not allow.
    async fn context(&self, principal: &Principal, name: &str) -> Result<(Arc<Loaded>, Auth), Error> {
        let unknown = || Error::new(ErrorKind::NotFound, "unknown_app", format!("There is no app `{name}`."));
        let loaded = self.app(name).ok_or_else(unknown)?;
        let role = match (&principal.role, principal.instance_admin) {
            (Some(role), _) => role.clone(),
            (None, true) => "admin".into(),
            (None, false) => String::new(),
        };
        let roles = &loaded.app.app.roles;
        if !roles.is_empty() && !roles.contains(&role) && !principal.instance_admin {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "app_forbidden",
                format!("The app `{name}` is for the roles {}.", roles.join(", ")),
            ));
        }
        Ok((loaded, Auth { id: principal.user_id, role, org: principal.org_id }))
    }

    fn ctx<'a>(&'a self, loaded: &'a Loaded, auth: Auth, principal: &'a Principal) -> Ctx<'a> {
        Ctx {
            loaded,
            auth,
            principal,
            directory: self.0.directory.as_ref(),
            files: self.0.files.as_deref(),
            now: Utc::now().trunc_subsecs(6),
        }
    }

    /// An app the caller may use (404 or 403 otherwise).
    pub async fn usable(&self, principal: &Principal, name: &str) -> Result<Arc<Loaded>, Error> {
        Ok(self.context(principal, name).await?.0)
    }

    /// The apps a caller may use.
    pub async fn list_apps(&self, principal: &Principal) -> Result<Vec<AppSummary>, Error> {
        let mut out = Vec::new();
        for loaded in self.apps() {
            if self.context(principal, &loaded.name).await.is_ok() {
                out.push(summary(&loaded));
            }
        }
        Ok(out)
    }

    pub async fn list(&self, principal: &Principal, app: &str, table: &str, query: &ListQuery) -> Result<Page, Error> {
        let (loaded, auth) = self.context(principal, app).await?;
        read::list(&self.ctx(&loaded, auth, principal), table, query).await
    }

    pub async fn get(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        id: &str,
        include_deleted: bool,
    ) -> Result<Map<String, Json>, Error> {
        let (loaded, auth) = self.context(principal, app).await?;
        read::get(&self.ctx(&loaded, auth, principal), table, id, include_deleted).await
    }

    async fn publish(&self, app: &str, principal: &Principal, changes: Vec<Change>) {
        let Some(bus) = &self.0.bus else { return };
        for change in changes {
            let topic = format!("data.{app}.{}.{}", change.table, change.action);
            let payload = json!({
                "app": app, "table": change.table, "id": change.id, "purged": change.purged,
                "user_id": principal.user_id, "org_id": principal.org_id,
            });
            if let Err(err) = bus.publish(&topic, payload).await {
                tracing::warn!(topic, error = %err, "publishing a data event failed");
            }
        }
    }

    pub async fn create(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        body: Map<String, Json>,
    ) -> Result<Map<String, Json>, Error> {
        let (loaded, auth) = self.context(principal, app).await?;
        let ctx = self.ctx(&loaded, auth, principal);
        if write::standalone(&ctx, table, &body) {
            let mut changes = Vec::new();
            let row = write::create_standalone(&ctx, table, &body, &mut changes).await?;
            self.publish(&loaded.name, principal, changes).await;
            return Ok(row);
        }
        in_tx!(self, principal, app, |ctx, tx, changes| write::create(ctx, tx, table, &body, changes))
    }

    pub async fn update(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        id: &str,
        body: Map<String, Json>,
        if_match: Option<&str>,
    ) -> Result<Map<String, Json>, Error> {
        in_tx!(self, principal, app, |ctx, tx, changes| write::update(ctx, tx, table, id, &body, if_match, changes))
    }

    pub async fn delete(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), Error> {
        in_tx!(self, principal, app, |ctx, tx, changes| write::delete(ctx, tx, table, id, if_match, changes))
    }

    pub async fn restore(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        id: &str,
    ) -> Result<Map<String, Json>, Error> {
        in_tx!(self, principal, app, |ctx, tx, changes| write::restore(ctx, tx, table, id, changes))
    }

    pub async fn purge(
        &self,
        principal: &Principal,
        app: &str,
        table: &str,
        id: &str,
        force: bool,
    ) -> Result<(), Error> {
        in_tx!(self, principal, app, |ctx, tx, changes| write::purge(ctx, tx, table, id, force, changes))
    }

    /// Runs a named query (`write`: the request is a POST that may change data).
    pub async fn query(
        &self,
        principal: &Principal,
        app: &str,
        name: &str,
        given: Given,
        write: bool,
    ) -> Result<QueryResult, Error> {
        let (loaded, auth) = self.context(principal, app).await?;
        let ctx = self.ctx(&loaded, auth, principal);
        let (result, changed) = named::run(&ctx, name, given, write).await?;
        if changed && let Some(bus) = &self.0.bus {
            let payload = json!({"app": app, "query": name, "user_id": principal.user_id, "org_id": principal.org_id});
            if let Err(err) = bus.publish(&format!("data.{app}.queries.{name}"), payload).await {
                tracing::warn!(app, query = name, error = %err, "publishing a data event failed");
            }
        }
        Ok(result)
    }

    /// Several operations in one transaction: all happen, or none (the error names the first
    /// that failed by its index).
    pub async fn batch(
        &self,
        principal: &Principal,
        app: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<Json>, Error> {
        if operations.is_empty() || operations.len() > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::Invalid,
                "invalid_batch",
                format!("A batch has between 1 and {MAX_BATCH} operations."),
            ));
        }
        in_tx!(self, principal, app, |ctx, tx, changes| async {
            let mut results = Vec::with_capacity(operations.len());
            for (index, operation) in operations.into_iter().enumerate() {
                let result = batch_one(ctx, tx, operation, changes).await.map_err(|e| at_index(e, index))?;
                results.push(result);
            }
            Ok::<_, Error>(results)
        })
    }
}

/// How an app is listed.
pub fn summary(loaded: &Loaded) -> AppSummary {
    AppSummary {
        name: loaded.name.clone(),
        description: loaded.app.app.description.clone(),
        tables: loaded.app.schema.tables.keys().cloned().collect(),
    }
}

/// The error of a batch operation, naming it.
fn at_index(err: Error, index: usize) -> Error {
    let body = err.body("");
    let mut details = body.details.unwrap_or_else(|| json!({}));
    if let Json::Object(map) = &mut details {
        map.insert("index".into(), json!(index));
    }
    Error::new(err.kind(), err.code().to_owned(), format!("Operation {index} failed: {}", err.message()))
        .with_details(details)
}

async fn batch_one(
    ctx: &Ctx<'_>,
    tx: &mut oppidum_store::Tx,
    operation: BatchOperation,
    changes: &mut Vec<Change>,
) -> Result<Json, Error> {
    let id = match &operation.id {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(Error::invalid("invalid_batch", "`id` is a string or a number.")),
        None => None,
    };
    let need_id =
        || id.clone().ok_or_else(|| Error::invalid("invalid_batch", format!("`{}` needs an `id`.", operation.op)));
    let data = operation.data.clone().unwrap_or_default();
    let table = operation.table.as_str();
    let if_match = operation.if_match.as_deref().map(|v| format!("\"{}\"", v.trim_matches('"')));
    Ok(match operation.op.as_str() {
        "create" => {
            json!({"op": "create", "table": table, "row": write::create(ctx, tx, table, &data, changes).await?})
        }
        "update" => {
            let row = write::update(ctx, tx, table, &need_id()?, &data, if_match.as_deref(), changes).await?;
            json!({"op": "update", "table": table, "row": row})
        }
        "delete" => {
            let id = need_id()?;
            write::delete(ctx, tx, table, &id, if_match.as_deref(), changes).await?;
            json!({"op": "delete", "table": table, "id": id})
        }
        "restore" => {
            json!({"op": "restore", "table": table, "row": write::restore(ctx, tx, table, &need_id()?, changes).await?})
        }
        other => {
            return Err(Error::invalid(
                "invalid_batch",
                format!("Unknown operation `{other}`: create, update, delete or restore."),
            ));
        }
    })
}
