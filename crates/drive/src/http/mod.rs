//! `/api/drive/*`: the JSON and content endpoints of drives; `/s/*`: public links.

mod public;
mod sharing;
mod tus;

use axum::Json as AxumJson;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::{HeaderMap, HeaderValue, header};
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, ErrorKind, Principal};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::files::{CopyNode, CreateFolder, Drive, Node, NodePage, Order, Scope, SortKey, UpdateNode, Usage, Version};

type Result<T> = std::result::Result<T, Error>;

/// The drive a request works in: the drive of `parent` when given, else the one `drive` names.
async fn scope_for(drive: &Drive, principal: &Principal, parent: Option<Uuid>, name: Option<&str>) -> Result<Scope> {
    Ok(match parent {
        Some(parent) => drive.resolve(principal, parent).await?,
        None => drive.scope(principal, name).await?,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriveQuery {
    /// `me` (default) or `org:<organization id>` for an organization's shared drive.
    #[param(value_type = Option<crate::shapes::DriveSelector>, inline)]
    pub drive: Option<String>,
}

/// Every drive route, documented.
pub fn routes() -> OpenApiRouter<Drive> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create_folder))
        .routes(routes!(upload))
        .routes(routes!(get, update, trash))
        .routes(routes!(download))
        .routes(routes!(versions))
        .routes(routes!(trash_list))
        .routes(routes!(restore))
        .routes(routes!(purge))
        .routes(routes!(usage))
        .routes(routes!(copy))
        .routes(routes!(restore_version))
        .routes(routes!(sharing::share, sharing::shares))
        .routes(routes!(sharing::unshare))
        .routes(routes!(sharing::shared_with_me))
        .routes(routes!(sharing::create_link, sharing::links))
        .routes(routes!(sharing::revoke_link))
        .routes(routes!(public::open))
        .routes(routes!(public::file))
        .routes(routes!(public::folder))
        .routes(routes!(public::drop_file))
        .routes(routes!(tus::capabilities, tus::create))
        .routes(routes!(tus::status, tus::append, tus::cancel))
}

pub(crate) fn if_match(headers: &HeaderMap) -> Option<String> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A request body as the byte stream uploads read.
pub(crate) fn body_stream(body: Body) -> oppidum_store::ByteStream {
    futures::StreamExt::boxed(body.into_data_stream().map_err(std::io::Error::other))
}

/// The length a request announces, if any.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// An upload refused before its body was read: the connection cannot serve another request.
pub(crate) fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub(crate) fn with_etag(node: &Node, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&node.etag()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The folder; absent for the top level.
    pub parent: Option<Uuid>,
    /// Which drive's top level (`me` or `org:<id>`), when `parent` is absent.
    #[param(value_type = Option<crate::shapes::DriveSelector>, inline)]
    pub drive: Option<String>,
    /// `name` (default), `updated` or `size`; folders always come first.
    #[param(value_type = Option<SortKey>, inline)]
    pub sort: Option<SortKey>,
    /// `asc` (default) or `desc`.
    #[param(value_type = Option<Order>, inline)]
    pub order: Option<Order>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<i64>,
}

/// The files and folders of a folder, a page at a time.
#[utoipa::path(get, path = "/api/drive/files", tag = "drive", params(ListQuery),
    responses((status = 200, body = NodePage), (status = 400, description = "`invalid_cursor`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(drive): State<Drive>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<AxumJson<NodePage>> {
    let scope = scope_for(&drive, &principal, query.parent, query.drive.as_deref()).await?;
    let (sort, order) = (query.sort.unwrap_or_default(), query.order.unwrap_or_default());
    let page = drive.list_page(&scope, query.parent, sort, order, query.cursor.as_deref(), query.limit);
    Ok(AxumJson(page.await?))
}

/// Creates a folder.
#[utoipa::path(post, path = "/api/drive/folders", tag = "drive", request_body = CreateFolder, params(DriveQuery),
    responses((status = 201, body = Node), (status = 400, description = "`invalid_name`", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_folder(
    State(drive): State<Drive>,
    principal: Principal,
    Query(query): Query<DriveQuery>,
    Json(body): Json<CreateFolder>,
) -> Result<(StatusCode, AxumJson<Node>)> {
    let scope = scope_for(&drive, &principal, body.parent_id, query.drive.as_deref()).await?;
    Ok((StatusCode::CREATED, AxumJson(drive.create_folder(&scope, body).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    pub parent: Option<Uuid>,
    #[param(value_type = crate::shapes::NodeName, inline)]
    pub name: String,
    /// Which drive's top level (`me` or `org:<id>`), when `parent` is absent.
    #[param(value_type = Option<crate::shapes::DriveSelector>, inline)]
    pub drive: Option<String>,
}

/// Uploads a file (the raw request body, streamed); an existing file gets a new version.
/// `If-Match` guards against overwriting someone else's change.
#[utoipa::path(put, path = "/api/drive/upload", tag = "drive", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Node), (status = 200, body = Node), (status = 412, description = "`etag_mismatch`", body = ErrorBody),
        (status = 409, description = "`name_taken`: a folder has that name", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 507, description = "`quota_exceeded`", body = ErrorBody)))]
pub async fn upload(
    State(drive): State<Drive>,
    principal: Principal,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let (stream, declared) = (body_stream(body), declared_length(&headers));
    let outcome = async {
        let scope = scope_for(&drive, &principal, query.parent, query.drive.as_deref()).await?;
        let expected = if_match(&headers);
        let stored = drive.upload(&scope, query.parent, &query.name, stream, expected.as_deref(), declared);
        stored.await.map_err(Error::from)
    };
    let (node, created) = match outcome.await {
        Ok(done) => done,
        Err(err) => return Ok(closing(err.into_response())),
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_etag(&node, (status, AxumJson(node.clone())).into_response()))
}

#[utoipa::path(get, path = "/api/drive/files/{id}", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 200, body = Node), (status = 404, body = ErrorBody)))]
pub async fn get(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Result<Response> {
    let scope = drive.resolve(&principal, id).await?;
    let node = drive.get(&scope, id).await?;
    Ok(with_etag(&node, AxumJson(node.clone()).into_response()))
}

/// Renames or moves (`If-Match` honoured).
#[utoipa::path(patch, path = "/api/drive/files/{id}", tag = "drive", params(("id" = Uuid, Path)), request_body = UpdateNode,
    responses((status = 200, body = Node), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn update(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<UpdateNode>,
) -> Result<Response> {
    let scope = drive.resolve(&principal, id).await?;
    let node = drive.update(&scope, id, body, if_match(&headers).as_deref()).await?;
    Ok(with_etag(&node, AxumJson(node.clone()).into_response()))
}

/// Moves to the trash (`If-Match` honoured).
#[utoipa::path(delete, path = "/api/drive/files/{id}", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn trash(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let scope = drive.resolve(&principal, id).await?;
    drive.trash(&scope, id, if_match(&headers).as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// A version id; default the current one.
    pub version: Option<Uuid>,
}

/// Parses a single `bytes=` range against `size`.
fn parse_range(value: &str, size: u64) -> std::result::Result<std::ops::Range<u64>, ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            size.saturating_sub(n)..size
        }
        (start, "") => start.parse().map_err(|_| ())?..size,
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| ())?;
            let end: u64 = end.parse().map_err(|_| ())?;
            start..end.saturating_add(1).min(size)
        }
    };
    if range.start >= range.end || range.start >= size { Err(()) } else { Ok(range) }
}

/// The content, streamed; `Range` (single range) and `If-None-Match` honoured.
#[utoipa::path(get, path = "/api/drive/files/{id}/content", tag = "drive", params(("id" = Uuid, Path), DownloadQuery),
    responses((status = 200, description = "The content"), (status = 206, description = "A byte range"), (status = 304),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn download(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let scope = drive.resolve(&principal, id).await?;
    let node = drive.get(&scope, id).await?;
    content_response(&drive, &scope, &node, query.version, &headers).await
}

/// A file's content as a response: `If-None-Match` (304), a single `Range` (206, or 416 with
/// the size), the type found when it was stored.
pub(crate) async fn content_response(
    drive: &Drive,
    scope: &Scope,
    node: &Node,
    version: Option<Uuid>,
    headers: &HeaderMap,
) -> Result<Response> {
    let size = u64::try_from(node.size).unwrap_or(0);
    if version.is_none()
        && let Some(tags) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && tags.split(',').any(|t| t.trim() == node.etag() || t.trim() == "*")
    {
        return Ok(with_etag(node, StatusCode::NOT_MODIFIED.into_response()));
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if version.is_none() => match parse_range(value, size) {
            Ok(range) => Some(range),
            Err(()) => {
                let mut response = Error::from_kind(ErrorKind::RangeNotSatisfiable).into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(response);
            }
        },
        _ => None,
    };
    let (node, body) = drive.download(scope, node.id, version, range.clone()).await?;
    let mut response = Response::new(oppidum_core::body::streamed(body));
    let headers = response.headers_mut();
    let content_type = node.content_type.as_deref().unwrap_or("application/octet-stream");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if crate::sniff::is_active(content_type) {
        // Never rendered from our origin: a download.
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    if let Some(range) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{size}", range.start, range.end - 1);
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&(range.end - range.start).to_string()) {
            response.headers_mut().insert(header::CONTENT_LENGTH, v);
        }
    } else if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(with_etag(&node, response))
}

/// The versions of a file, newest first.
#[utoipa::path(get, path = "/api/drive/files/{id}/versions", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Version>), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<Version>>> {
    let scope = drive.resolve(&principal, id).await?;
    Ok(AxumJson(drive.versions(&scope, id).await?))
}

/// Makes an old version current again (as a new version).
#[utoipa::path(post, path = "/api/drive/files/{id}/versions/{version}/restore", tag = "drive",
    params(("id" = Uuid, Path), ("version" = Uuid, Path)),
    responses((status = 200, body = Node), (status = 404, body = ErrorBody)))]
pub async fn restore_version(
    State(drive): State<Drive>,
    principal: Principal,
    Path((id, version)): Path<(Uuid, Uuid)>,
) -> Result<Response> {
    let scope = drive.resolve(&principal, id).await?;
    let node = drive.restore_version(&scope, id, version).await?;
    Ok(with_etag(&node, AxumJson(node.clone()).into_response()))
}

/// Copies a file or a folder with its subtree (no extra stored bytes: the content is shared),
/// into `parent_id` or the top level of the drive `drive` names (default: the source's drive).
#[utoipa::path(post, path = "/api/drive/files/{id}/copy", tag = "drive", params(("id" = Uuid, Path), DriveQuery), request_body = CopyNode,
    responses((status = 201, body = Node), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn copy(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Query(query): Query<DriveQuery>,
    Json(body): Json<CopyNode>,
) -> Result<(StatusCode, AxumJson<Node>)> {
    let from = drive.resolve(&principal, id).await?;
    let to = match (body.parent_id, query.drive.as_deref()) {
        (None, None) => from.clone(),
        (parent, name) => scope_for(&drive, &principal, parent, name).await?,
    };
    Ok((StatusCode::CREATED, AxumJson(drive.copy(&from, id, &to, body).await?)))
}

/// Your trashed files and folders, newest first.
#[utoipa::path(get, path = "/api/drive/trash", tag = "drive", params(DriveQuery), responses((status = 200, body = Vec<Node>)))]
pub async fn trash_list(
    State(drive): State<Drive>,
    principal: Principal,
    Query(query): Query<DriveQuery>,
) -> Result<AxumJson<Vec<Node>>> {
    let scope = drive.scope(&principal, query.drive.as_deref()).await?;
    Ok(AxumJson(drive.trash_list(&scope).await?))
}

/// Restores a trashed file or folder.
#[utoipa::path(post, path = "/api/drive/trash/{id}/restore", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 200, body = Node), (status = 404, body = ErrorBody), (status = 409, description = "`name_taken`", body = ErrorBody)))]
pub async fn restore(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Result<AxumJson<Node>> {
    let scope = drive.resolve(&principal, id).await?;
    Ok(AxumJson(drive.restore(&scope, id).await?))
}

/// Deletes a trashed file or folder for good.
#[utoipa::path(delete, path = "/api/drive/trash/{id}", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn purge(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    let scope = drive.resolve(&principal, id).await?;
    drive.purge(&scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logical bytes, stored bytes after deduplication, and the ratio.
#[utoipa::path(get, path = "/api/drive/usage", tag = "drive", params(DriveQuery), responses((status = 200, body = Usage)))]
pub async fn usage(
    State(drive): State<Drive>,
    principal: Principal,
    Query(query): Query<DriveQuery>,
) -> Result<AxumJson<Usage>> {
    let scope = drive.scope(&principal, query.drive.as_deref()).await?;
    Ok(AxumJson(drive.usage(&scope).await?))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn http_ranges_parse() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Ok(90..100));
        assert_eq!(parse_range("bytes=-5", 100), Ok(95..100));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(50..100));
        for bad in ["bytes=100-", "bytes=5-2", "items=0-1", "bytes=0-1,3-4", "bytes=x-"] {
            assert!(parse_range(bad, 100).is_err(), "{bad}");
        }
    }
}
