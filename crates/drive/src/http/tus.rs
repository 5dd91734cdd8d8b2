//! Resumable uploads over the tus protocol 1.0.0 (core, creation, termination, expiration):
//! `POST /api/drive/uploads` with `Upload-Length` and `Upload-Metadata` (`filename`, and
//! optionally `parent` (a folder id) or `drive` (`me`, `org:<id>`)), then `PATCH` parts at the
//! offset `HEAD` reports. Each `PATCH` is kept whole or not at all: send large files in parts.
//! When the last byte arrives the response carries `Oppidum-File-Id`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, HeaderValue, header};
use oppidum_core::error::ErrorBody;
use oppidum_core::{Error, ErrorKind, Principal};
use uuid::Uuid;

use super::{body_stream, closing, scope_for};
use crate::files::{Drive, UploadSession};

const VERSION: &str = "1.0.0";

fn tus_headers(mut response: Response, drive: &Drive) -> Response {
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(VERSION));
    headers.insert("tus-version", HeaderValue::from_static(VERSION));
    headers.insert("tus-extension", HeaderValue::from_static("creation,termination,expiration"));
    if let Ok(max) = HeaderValue::from_str(&drive.max_file_size().to_string()) {
        headers.insert("tus-max-size", max);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(drive: &Drive, err: impl Into<Error>) -> Response {
    tus_headers(err.into().into_response(), drive)
}

/// Requests must say which tus version they speak (412 otherwise, with the one we do).
fn check_version(headers: &HeaderMap) -> std::result::Result<(), Error> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::PreconditionFailed,
            "tus_version",
            format!("Send `Tus-Resumable: {VERSION}`: the only tus version this server speaks."),
        )),
    }
}

fn number(headers: &HeaderMap, name: &str) -> std::result::Result<u64, Error> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::invalid("invalid_header", format!("`{name}` must be a byte count.")))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs.
fn metadata(headers: &HeaderMap) -> std::result::Result<Vec<(String, String)>, Error> {
    let Some(raw) = headers.get("upload-metadata") else { return Ok(Vec::new()) };
    let bad = || Error::invalid("invalid_header", "`Upload-Metadata` is `key base64,key base64…`.");
    let raw = raw.to_str().map_err(|_| bad())?;
    raw.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let mut parts = pair.trim().splitn(2, ' ');
            let key = parts.next().ok_or_else(bad)?.to_owned();
            let value = match parts.next() {
                Some(encoded) => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
                    String::from_utf8(bytes).map_err(|_| bad())?
                }
                None => String::new(),
            };
            Ok((key, value))
        })
        .collect()
}

fn progress(session: &UploadSession, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    for (name, value) in [("upload-offset", session.upload_offset), ("upload-length", session.length)] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&session.expires_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        headers.insert("upload-expires", v);
    }
    response
}

/// What this server supports of tus.
#[utoipa::path(options, path = "/api/drive/uploads", tag = "drive", responses((status = 204, description = "tus headers")))]
pub async fn capabilities(State(drive): State<Drive>) -> Response {
    tus_headers(StatusCode::NO_CONTENT.into_response(), &drive)
}

/// Opens a resumable upload (tus creation): `Upload-Length`, `Upload-Metadata` with `filename`
/// and optionally `parent` or `drive`.
#[utoipa::path(post, path = "/api/drive/uploads", tag = "drive", params(("Tus-Resumable" = String, Header, description = "The tus protocol version: `1.0.0`"),
        ("Upload-Length" = u64, Header, description = "Size of the whole upload in bytes"),
        ("Upload-Metadata" = Option<String>, Header, description = "`filename <base64>`, optional `parent <base64 folder id>` or `drive <base64>`")),
    responses((status = 201, description = "Created; `Location` is the upload's URL"), (status = 400, body = ErrorBody),
        (status = 412, description = "`tus_version`", body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, body = ErrorBody)))]
pub async fn create(State(drive): State<Drive>, principal: Principal, headers: HeaderMap) -> Response {
    let outcome = async {
        check_version(&headers)?;
        if headers.contains_key("upload-defer-length") {
            return Err(Error::invalid(
                "invalid_header",
                "Announce `Upload-Length`: deferred lengths are not supported.",
            ));
        }
        let length = number(&headers, "upload-length")?;
        let meta = metadata(&headers)?;
        let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let name =
            get("filename").ok_or_else(|| Error::invalid("invalid_name", "`Upload-Metadata` needs `filename`."))?;
        let parent = match get("parent") {
            Some(id) => {
                Some(Uuid::parse_str(&id).map_err(|_| Error::invalid("invalid_header", "`parent` is a folder id."))?)
            }
            None => None,
        };
        let scope = scope_for(&drive, &principal, parent, get("drive").as_deref()).await?;
        Ok(drive.open_session(&scope, parent, &name, length).await?)
    };
    match outcome.await {
        Ok(session) => {
            let mut response = progress(&session, StatusCode::CREATED);
            if let Ok(location) = HeaderValue::from_str(&format!("/api/drive/uploads/{}", session.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            tus_headers(response, &drive)
        }
        Err(err) => error(&drive, err),
    }
}

/// Where an upload stands (tus `HEAD`): `Upload-Offset` and `Upload-Length`.
#[utoipa::path(head, path = "/api/drive/uploads/{id}", tag = "drive", params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "The tus protocol version: `1.0.0`")),
    responses((status = 200, description = "`Upload-Offset`, `Upload-Length`"), (status = 404),
        (status = 412, description = "`tus_version`", body = ErrorBody)))]
pub async fn status(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Response {
    match drive.session(principal.user_id, id).await {
        Ok(session) => tus_headers(progress(&session, StatusCode::OK), &drive),
        // HEAD responses carry no body: the status says it.
        Err(err) => tus_headers(Error::from(err).kind().status().into_response(), &drive),
    }
}

/// Sends a part (tus `PATCH`, `Content-Type: application/offset+octet-stream`) at the current
/// `Upload-Offset`; `409 offset_mismatch` when it is not where the upload stands.
#[utoipa::path(patch, path = "/api/drive/uploads/{id}", tag = "drive", params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "The tus protocol version: `1.0.0`"),
        ("Upload-Offset" = u64, Header, description = "Where this part starts: the offset `HEAD` reported")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "Stored; `Upload-Offset` is the new offset; `Oppidum-File-Id` once complete"),
        (status = 404, body = ErrorBody), (status = 409, description = "`offset_mismatch`", body = ErrorBody),
        (status = 412, description = "`tus_version`", body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "`virus_detected`", body = ErrorBody)))]
pub async fn append(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        check_version(&headers)?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if content_type != "application/offset+octet-stream" {
            return Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                "Parts are sent as `application/offset+octet-stream`.",
            ));
        }
        let offset = number(&headers, "upload-offset")?;
        let stream = body_stream(body);
        Ok(drive.append(&principal, id, offset, stream).await?)
    };
    match outcome.await {
        Ok((session, node)) => {
            let mut response = progress(&session, StatusCode::NO_CONTENT);
            response.headers_mut().remove("upload-length");
            if let Some(node) = node
                && let Ok(v) = HeaderValue::from_str(&node.id.to_string())
            {
                response.headers_mut().insert("oppidum-file-id", v);
            }
            tus_headers(response, &drive)
        }
        Err(err) => closing(error(&drive, err)),
    }
}

/// Abandons an upload (tus termination).
#[utoipa::path(delete, path = "/api/drive/uploads/{id}", tag = "drive", params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "The tus protocol version: `1.0.0`")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 412, description = "`tus_version`", body = ErrorBody)))]
pub async fn cancel(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Response {
    match drive.cancel_session(&principal, id).await {
        Ok(()) => tus_headers(StatusCode::NO_CONTENT.into_response(), &drive),
        Err(err) => error(&drive, err),
    }
}
