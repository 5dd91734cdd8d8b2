//! WebDAV (RFC 4918 class 1 and 2, quota properties of RFC 4331) over drives:
//! `/dav/files/{user}/` (a user's own drive; `{user}` is their login email or user id) and
//! `/dav/orgs/{org}/` (an organization's shared drive). The protocol is dav-server's; the file
//! system, the lock store and who may see what are ours.

mod file;
mod fs;
mod guard;
mod locks;
mod propfind;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use dav_server::davpath::DavPath;
use dav_server::{DavConfig, DavHandler};
use http::{HeaderValue, header};
use oppidum_core::error::ProtocolResponse;
use oppidum_core::principal::{AuthRejection, LoginName};
use oppidum_core::{Error, ErrorKind, Principal};
use uuid::Uuid;

use crate::Drive;
use crate::error::DriveError;
use crate::files::Scope;

#[derive(Clone)]
struct DavState {
    drive: Drive,
    handler: DavHandler,
}

/// The `/dav/…` routes. Expects the principal in the request extensions (Bearer or HTTP Basic
/// with an app password, put there by the identity layers).
pub fn router(drive: Drive) -> Router {
    let state = DavState { drive, handler: DavHandler::builder().build_handler() };
    // A plain service rather than a method router: WebDAV methods (PROPFIND, MKCOL, LOCK, …) are
    // extension methods a method router does not route.
    let service = tower::service_fn(move |req: Request| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(serve(state, req).await) }
    });
    Router::new().route_service("/dav/{*path}", service)
}

/// 401 with the challenge WebDAV clients need to ask for a password.
fn challenge(rejection: Option<&AuthRejection>) -> Response {
    let error = match rejection {
        Some(rejection) => Error::new(ErrorKind::Unauthenticated, rejection.code, rejection.message.clone()),
        None => Error::new(
            ErrorKind::Unauthenticated,
            "unauthenticated",
            "Sign in with your email and an app password (scope `dav`), or a bearer token.",
        ),
    };
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Oppidum\", charset=\"UTF-8\""));
    response
}

/// Which drive a path names, and the decoded prefix dav-server strips.
async fn scope_of(
    drive: &Drive,
    principal: &Principal,
    login: Option<&LoginName>,
    path: &DavPath,
) -> Result<(Scope, String), Error> {
    let decoded = String::from_utf8_lossy(path.as_bytes()).into_owned();
    let mut parts = decoded.split('/').filter(|s| !s.is_empty());
    let (_dav, kind, owner) = (parts.next(), parts.next(), parts.next());
    let not_found =
        || Error::not_found("No such WebDAV collection: use /dav/files/{your email}/ or /dav/orgs/{org id}/.");
    let owner = owner.ok_or_else(not_found)?;
    let scope = match kind {
        Some("files") => {
            let own = match Uuid::parse_str(owner) {
                Ok(id) => id == principal.user_id,
                Err(_) if login.is_some_and(|l| l.0.eq_ignore_ascii_case(owner)) => true,
                // Signed in another way (a bearer token): look the email up.
                Err(_) => drive.directory().user_by_email(owner).await? == Some(principal.user_id),
            };
            if !own {
                return Err(not_found());
            }
            Scope::personal(principal)
        }
        Some("orgs") => {
            let org = Uuid::parse_str(owner).map_err(|_| not_found())?;
            match drive.org_scope(principal, org).await {
                Ok(scope) => scope,
                Err(DriveError::NotFound) => return Err(not_found()),
                Err(err) => return Err(err.into()),
            }
        }
        _ => return Err(not_found()),
    };
    Ok((scope, format!("/dav/{}/{owner}", kind.unwrap_or_default())))
}

async fn serve(state: DavState, req: Request) -> Response {
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return challenge(req.extensions().get::<AuthRejection>());
    };
    if req.headers().get_all("if").iter().any(|v| !guard::if_header_is_safe(v.as_bytes())) {
        return Error::invalid("invalid_if_header", "The If header is malformed (an unterminated `<` or `[`).")
            .into_response();
    }
    let Ok(path) = DavPath::new(req.uri().path()) else {
        return Error::invalid("invalid_path", "The path is not a valid WebDAV path.").into_response();
    };
    let login = req.extensions().get::<LoginName>().cloned();
    let (scope, prefix) = match scope_of(&state.drive, &principal, login.as_ref(), &path).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    if req.headers().get("destination").is_some_and(|d| guard::destination_is_top(d.as_bytes(), &prefix)) {
        return Error::new(
            ErrorKind::Forbidden,
            "forbidden",
            "Nothing can be copied or moved onto the top of a drive.",
        )
        .into_response();
    }
    let files = fs::DriveFs::new(state.drive.clone(), scope.clone());
    let locks = locks::DbLocks::new(state.drive.db().clone(), scope.drive.clone());
    if propfind::handles(&req) {
        return propfind::propfind(&files, &locks, &principal.user_id.to_string(), &prefix, req).await;
    }
    let config = DavConfig::new()
        .filesystem(Box::new(files))
        .locksystem(Box::new(locks))
        .strip_prefix(prefix)
        // A read returns what the content stream holds (a stored chunk, shared, not copied): asking
        // for a chunk at a time sends each as one body frame instead of sixteen-kibibyte pieces.
        .read_buf_size(crate::chunker::MAX_CHUNK)
        .principal(principal.user_id.to_string());
    let response = state.handler.handle_with(config, req).await;
    let (mut parts, body) = response.into_parts();
    parts.extensions.insert(ProtocolResponse);
    Response::from_parts(parts, oppidum_core::body::streamed(body))
}
