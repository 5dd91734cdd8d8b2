//! `/api/apps/*`: the apps (listed, installed, reloaded), their data dictionaries and the routes
//! every table gets: list, create, get, update (`If-Match`), delete, restore, purge, and batches.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use serde::Deserialize;
use serde_json::{Map, Value as Json_};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dictionary;
use crate::service::{AppSummary, BatchOperation, DataApi, Files, Given, ListQuery, Page, QueryResult};

type Result<T> = std::result::Result<T, Error>;

/// Every data API route, documented.
pub fn routes() -> OpenApiRouter<DataApi> {
    OpenApiRouter::new()
        .routes(routes!(apps))
        .routes(routes!(app, install))
        .routes(routes!(reload))
        .routes(routes!(schema))
        .routes(routes!(app_openapi))
        .routes(routes!(table_schema))
        .routes(routes!(batch))
        .routes(routes!(run_query, run_write_query))
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(restore))
        .routes(routes!(purge))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A row with its version as `ETag`.
fn row_response(status: StatusCode, row: Map<String, Json_>) -> Response {
    let tag = format!("\"{}\"", row.get("row_version").and_then(Json_::as_i64).unwrap_or(0));
    let mut response = (status, Json(row)).into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The apps the caller may use.
#[utoipa::path(get, path = "/api/apps", tag = "apps", responses((status = 200, body = Vec<AppSummary>)))]
pub async fn apps(State(api): State<DataApi>, principal: Principal) -> Result<Json<Vec<AppSummary>>> {
    Ok(Json(api.list_apps(&principal).await?))
}

/// An app's files to install (`apps.manage`); without `queries`, the app keeps its named queries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppFiles {
    /// The text of `app.yaml`.
    pub app_yaml: String,
    /// The text of `schema.yaml`.
    pub schema_yaml: String,
    /// Named queries by name, each the text of its `queries/<name>.yaml`.
    #[serde(default)]
    pub queries: Option<std::collections::BTreeMap<String, String>>,
}

/// An app's files (`apps.manage`).
#[utoipa::path(get, path = "/api/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = Files), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn app(State(api): State<DataApi>, principal: Principal, Path(name): Path<String>) -> Result<Json<Files>> {
    api.require_manage(&principal).await?;
    let loaded = api.app(&name).ok_or_else(|| Error::not_found(format!("There is no app `{name}`.")))?;
    let mut files = loaded.files.clone();
    // A database URL may hold a password: instance administrators only see it.
    let database = &loaded.app.app.database;
    if !principal.instance_admin && database != "main" {
        let redacted = oppidum_core::config::DatabaseUrl::new(database.clone()).redacted();
        files.app_yaml = files.app_yaml.replace(database.as_str(), &redacted);
    }
    Ok(Json(files))
}

/// Installs or replaces an app (`apps.manage`): checked completely, applied to its database with
/// additive changes, written to the apps directory, served at once. An invalid app is refused
/// with every problem listed and the running version keeps serving.
#[utoipa::path(put, path = "/api/apps/{app}", tag = "apps", params(("app" = String, Path)), request_body = AppFiles,
    responses((status = 200, body = AppSummary), (status = 403, body = ErrorBody),
        (status = 422, description = "`invalid_schema` (details list every problem) or `schema_not_applied`", body = ErrorBody)))]
pub async fn install(
    State(api): State<DataApi>,
    principal: Principal,
    Path(name): Path<String>,
    Json(files): Json<AppFiles>,
) -> Result<Json<AppSummary>> {
    let loaded = api.install(&principal, &name, files.app_yaml, files.schema_yaml, files.queries).await?;
    Ok(Json(crate::service::summary(&loaded)))
}

/// Reads an app's files from disk again (`apps.manage`).
#[utoipa::path(post, path = "/api/apps/{app}/reload", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = AppSummary), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reload(
    State(api): State<DataApi>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<AppSummary>> {
    let loaded = api.reload(&principal, &name).await?;
    Ok(Json(crate::service::summary(&loaded)))
}

/// The app's data dictionary: every table's fields, types, constraints, relations and routes.
#[utoipa::path(get, path = "/api/apps/{app}/_schema", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn schema(State(api): State<DataApi>, principal: Principal, Path(name): Path<String>) -> Result<Json<Json_>> {
    let loaded = api.usable(&principal, &name).await?;
    Ok(Json(dictionary::app(&loaded)))
}

/// The app's own OpenAPI document, generated from its running schema: every table's routes and
/// shapes, and its named queries.
#[utoipa::path(get, path = "/api/apps/{app}/openapi.json", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn app_openapi(
    State(api): State<DataApi>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Json_>> {
    let loaded = api.usable(&principal, &name).await?;
    Ok(Json(crate::openapi::document(&loaded)))
}

/// One table's entry of the data dictionary.
#[utoipa::path(get, path = "/api/apps/{app}/_schema/{table}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn table_schema(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table)): Path<(String, String)>,
) -> Result<Json<Json_>> {
    let loaded = api.usable(&principal, &name).await?;
    let entry = dictionary::table(&loaded, &table).ok_or_else(|| {
        Error::new(oppidum_core::ErrorKind::NotFound, "unknown_table", format!("No table `{table}`."))
    })?;
    Ok(Json(entry))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    #[schema(min_items = 1, max_items = 100)]
    pub operations: Vec<BatchOperation>,
}

/// Several operations in one transaction: all apply or none; a failure names its index.
#[utoipa::path(post, path = "/api/apps/{app}/batch", tag = "apps", params(("app" = String, Path)), request_body = Batch,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn batch(
    State(api): State<DataApi>,
    principal: Principal,
    Path(name): Path<String>,
    Json(body): Json<Batch>,
) -> Result<Json<Json_>> {
    let results = api.batch(&principal, &name, body.operations).await?;
    Ok(Json(serde_json::json!({ "results": results })))
}

/// Rows of a table the caller may see, a page at a time.
#[utoipa::path(get, path = "/api/apps/{app}/{table}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ListQuery),
    responses((status = 200, body = Page),
        (status = 400, description = "`invalid_filter`, `invalid_sort`, `invalid_cursor`, …", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>> {
    Ok(Json(api.list(&principal, &name, &table, &query).await?))
}

/// Creates a row; an invalid one is refused with every field's problem.
#[utoipa::path(post, path = "/api/apps/{app}/{table}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 400, description = "`validation_failed`", body = ErrorBody),
        (status = 403, description = "`rule_denied`", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table)): Path<(String, String)>,
    Json(body): Json<Map<String, Json_>>,
) -> Result<Response> {
    let row = api.create(&principal, &name, &table, body).await?;
    Ok(row_response(StatusCode::CREATED, row))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// Also find a deleted row the caller may restore.
    pub include_deleted: Option<bool>,
}

/// One row.
#[utoipa::path(get, path = "/api/apps/{app}/{table}/{id}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ("id" = String, Path), GetQuery),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table, id)): Path<(String, String, String)>,
    Query(query): Query<GetQuery>,
) -> Result<Response> {
    let row = api.get(&principal, &name, &table, &id, query.include_deleted.unwrap_or(false)).await?;
    Ok(row_response(StatusCode::OK, row))
}

/// Changes the fields given; `If-Match` with the row's `ETag` refuses a stale update (412).
#[utoipa::path(patch, path = "/api/apps/{app}/{table}/{id}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ("id" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, description = "`etag_mismatch`", body = ErrorBody)))]
pub async fn update(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Map<String, Json_>>,
) -> Result<Response> {
    let row = api.update(&principal, &name, &table, &id, body, if_match(&headers).as_deref()).await?;
    Ok(row_response(StatusCode::OK, row))
}

/// Deletes a row (soft, with its dependants, when the table keeps deleted rows).
#[utoipa::path(delete, path = "/api/apps/{app}/{table}/{id}", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`referenced`", body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn delete(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    api.delete(&principal, &name, &table, &id, if_match(&headers).as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings a deleted row back, with what its deletion cascaded to.
#[utoipa::path(post, path = "/api/apps/{app}/{table}/{id}/restore", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, description = "`not_deleted`", body = ErrorBody)))]
pub async fn restore(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table, id)): Path<(String, String, String)>,
) -> Result<Response> {
    let row = api.restore(&principal, &name, &table, &id).await?;
    Ok(row_response(StatusCode::OK, row))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurgeQuery {
    /// Must be `true`: purging cannot be undone.
    pub force: Option<bool>,
}

/// Deletes a row for good (`data.<app>.purge`).
#[utoipa::path(delete, path = "/api/apps/{app}/{table}/{id}/purge", tag = "apps",
    params(("app" = String, Path), ("table" = String, Path), ("id" = String, Path), PurgeQuery),
    responses((status = 204), (status = 400, description = "`confirmation_required`", body = ErrorBody),
        (status = 403, description = "`missing_permission`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn purge(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, table, id)): Path<(String, String, String)>,
    Query(query): Query<PurgeQuery>,
) -> Result<StatusCode> {
    api.purge(&principal, &name, &table, &id, query.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a read-only named query; its declared parameters come from the query string.
#[utoipa::path(get, path = "/api/apps/{app}/queries/{name}", tag = "apps",
    params(("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = QueryResult), (status = 400, description = "`validation_failed`", body = ErrorBody),
        (status = 403, description = "`query_forbidden`", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "`query_failed`", body = ErrorBody)))]
pub async fn run_query(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, query)): Path<(String, String)>,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
) -> Result<Json<QueryResult>> {
    Ok(Json(api.query(&principal, &name, &query, Given::Text(params), false).await?))
}

/// Runs a named query declared `write: true`; its parameters come from the JSON body.
#[utoipa::path(post, path = "/api/apps/{app}/queries/{name}", tag = "apps",
    params(("app" = String, Path), ("name" = String, Path)), request_body = Object,
    responses((status = 200, body = QueryResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 405, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn run_write_query(
    State(api): State<DataApi>,
    principal: Principal,
    Path((name, query)): Path<(String, String)>,
    Json(params): Json<Map<String, Json_>>,
) -> Result<Json<QueryResult>> {
    Ok(Json(api.query(&principal, &name, &query, Given::Json(params), true).await?))
}
