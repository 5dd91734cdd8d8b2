//! `/s/{token}`: what a public link shows to anyone holding it. A password, when the link has
//! one, comes in the `X-Link-Password` header. Read links serve a file, or list a folder and
//! serve what is in it; upload links (file drops) take files and show nothing.

use axum::Json as AxumJson;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use oppidum_core::Error;
use oppidum_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Result, body_stream, closing, content_response, declared_length};
use crate::error::DriveError;
use crate::files::{Drive, Node, OpenLink};

/// What a public link points to.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicItem {
    pub name: String,
    /// `file` or `folder`.
    pub kind: String,
    /// `read` or `upload`.
    pub mode: String,
    pub size: i64,
    /// A read link's folder content; absent for files and file drops.
    pub entries: Option<Vec<Node>>,
}

async fn open_link(drive: &Drive, token: &str, headers: &HeaderMap) -> std::result::Result<OpenLink, DriveError> {
    let password = headers.get("x-link-password").and_then(|v| v.to_str().ok());
    drive.open_link(token, password).await
}

/// Names that browsers would render inline from our origin are served as downloads.
fn as_attachment(mut response: Response, node: &Node) -> Response {
    let encoded: String = node
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn serve_file(drive: &Drive, link: &OpenLink, node: &Node, headers: &HeaderMap) -> Result<Response> {
    if link.link.mode != "read" {
        return Err(DriveError::NotFound.into());
    }
    // Conditional and partial requests of a file already fetched do not count as downloads.
    if !headers.contains_key(header::RANGE) && !headers.contains_key(header::IF_NONE_MATCH) {
        drive.count_download(&link.link).await?;
    }
    let response = content_response(drive, &link.scope, node, None, headers).await?;
    Ok(as_attachment(response, node))
}

fn describe(link: &OpenLink, entries: Option<Vec<Node>>) -> AxumJson<PublicItem> {
    AxumJson(PublicItem {
        name: link.node.name.clone(),
        kind: link.node.kind.clone(),
        mode: link.link.mode.clone(),
        size: link.node.size,
        entries,
    })
}

/// A public link: a shared file's content, a shared folder's listing, or a file drop's name.
#[utoipa::path(get, path = "/s/{token}", tag = "links", params(("token" = String, Path)),
    responses((status = 200, description = "The file, or a `PublicItem`", body = PublicItem),
        (status = 401, description = "`link_password_required`", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, description = "`link_expired`", body = ErrorBody)))]
pub async fn open(State(drive): State<Drive>, Path(token): Path<String>, headers: HeaderMap) -> Result<Response> {
    let link = open_link(&drive, &token, &headers).await?;
    if link.node.kind == "file" {
        return serve_file(&drive, &link, &link.node.clone(), &headers).await;
    }
    let entries = match link.link.mode.as_str() {
        "read" => Some(drive.list(&link.scope, Some(link.node.id)).await?),
        _ => None,
    };
    Ok(describe(&link, entries).into_response())
}

/// A file inside a folder published read-only.
#[utoipa::path(get, path = "/s/{token}/files/{id}", tag = "links", params(("token" = String, Path), ("id" = Uuid, Path)),
    responses((status = 200, description = "The content"), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn file(
    State(drive): State<Drive>,
    Path((token, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Result<Response> {
    let link = open_link(&drive, &token, &headers).await?;
    let node = drive.get(&link.scope, id).await?;
    if node.kind != "file" {
        return Err(DriveError::NotAFile.into());
    }
    serve_file(&drive, &link, &node, &headers).await
}

/// A folder inside a folder published read-only.
#[utoipa::path(get, path = "/s/{token}/folders/{id}", tag = "links", params(("token" = String, Path), ("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Node>), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn folder(
    State(drive): State<Drive>,
    Path((token, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Result<AxumJson<Vec<Node>>> {
    let link = open_link(&drive, &token, &headers).await?;
    if link.link.mode != "read" {
        return Err(DriveError::NotFound.into());
    }
    Ok(AxumJson(drive.list(&link.scope, Some(id)).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropQuery {
    /// The file's name; a number is added when the folder already has one by that name.
    pub name: String,
}

/// Drops a file into a folder published as a file drop (the raw body, streamed). Nothing in the
/// folder is shown or replaced.
#[utoipa::path(put, path = "/s/{token}/upload", tag = "links", params(("token" = String, Path), DropQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = PublicItem), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 507, body = ErrorBody)))]
pub async fn drop_file(
    State(drive): State<Drive>,
    Path(token): Path<String>,
    Query(query): Query<DropQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let outcome = async {
        let link = open_link(&drive, &token, &headers).await?;
        if link.link.mode != "upload" {
            return Err(DriveError::NotFound);
        }
        let name = drive.free_name(&link.scope, link.node.id, &query.name).await?;
        let (stream, declared) = (body_stream(body), declared_length(&headers));
        let pending = drive.begin_upload(&link.scope, Some(link.node.id), &name, None, declared).await?;
        if pending.replaces().is_some() {
            return Err(DriveError::NameTaken(name));
        }
        let manifest = drive.ingest(&pending, stream).await?;
        let (node, _) = drive.commit_upload(pending, &manifest).await?;
        Ok(PublicItem { name: node.name, kind: node.kind, mode: "upload".into(), size: node.size, entries: None })
    };
    match outcome.await {
        Ok(item) => Ok((StatusCode::CREATED, AxumJson(item)).into_response()),
        Err(err) => Ok(closing(Error::from(err).into_response())),
    }
}
