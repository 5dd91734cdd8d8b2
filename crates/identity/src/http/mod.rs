//! Identity's HTTP adapters: the authentication layer every request passes through, and the JSON
//! routes (`/api/auth/*`, `/api/orgs/*`, `/api/users/*`, `/.well-known/jwks.json`). Handlers parse,
//! call the service and map; rules live in the service.

mod audit;
mod auth;
mod credentials;
mod flows;
mod mfa;
mod orgs;
mod users;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::request::Parts;
use http::{HeaderMap, header};
use oppidum_core::principal::{AuthRejection, LoginName};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::model::ClientInfo;
use crate::{Identity, IdentityError};

/// Every identity route, documented.
pub fn routes() -> OpenApiRouter<Identity> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::delete_session))
        .routes(routes!(auth::switch_org))
        .routes(routes!(auth::bootstrap))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::impersonate))
        .routes(routes!(auth::exit_impersonation))
        .routes(routes!(orgs::list_orgs, orgs::create_org))
        .routes(routes!(orgs::get_org, orgs::update_org, orgs::delete_org))
        .routes(routes!(orgs::list_members, orgs::add_member))
        .routes(routes!(orgs::update_member, orgs::remove_member))
        .routes(routes!(orgs::list_roles, orgs::create_role))
        .routes(routes!(orgs::update_role, orgs::delete_role))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(credentials::list_api_keys, credentials::create_api_key))
        .routes(routes!(credentials::delete_api_key))
        .routes(routes!(credentials::list_app_passwords, credentials::create_app_password))
        .routes(routes!(credentials::delete_app_password))
        .routes(routes!(flows::forgot_password))
        .routes(routes!(flows::reset_password))
        .routes(routes!(flows::verify_email))
        .routes(routes!(flows::resend_verification))
        .routes(routes!(flows::invite))
        .routes(routes!(flows::accept_invitation))
        .routes(routes!(flows::request_email_change))
        .routes(routes!(flows::confirm_email_change))
        .routes(routes!(mfa::totp_setup))
        .routes(routes!(mfa::totp_confirm))
        .routes(routes!(mfa::verify))
        .routes(routes!(mfa::email_code))
        .routes(routes!(mfa::enroll))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::reset))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
}

/// Authenticates `Authorization: Bearer …` when present: a valid token puts a
/// [`oppidum_core::Principal`] in the request, an invalid one an [`AuthRejection`] that the
/// principal extractor turns into 401 `invalid_token`. Requests without a token pass untouched.
pub async fn authenticate(State(identity): State<Identity>, mut req: Request, next: Next) -> Response {
    if let Some(token) = bearer(req.headers()) {
        let client = client_info(req.extensions(), req.headers());
        let outcome = if token.starts_with("oak_") {
            identity.authenticate_api_key(&token, &client).await
        } else {
            identity.authenticate(&token, &client).await
        };
        match outcome {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
            }
            Err(IdentityError::InvalidToken(message)) => {
                req.extensions_mut().insert(AuthRejection { code: "invalid_token", message });
            }
            Err(err) => {
                tracing::error!(error = %err, "authentication failed");
                req.extensions_mut().insert(AuthRejection {
                    code: "authentication_unavailable",
                    message: "Authentication is temporarily unavailable.".into(),
                });
            }
        }
    }
    next.run(req).await
}

/// HTTP Basic for protocol endpoints (WebDAV and later CalDAV/CardDAV): `email:app-password`
/// with an app password carrying `scope`. Puts the principal and the login name in the request;
/// a wrong password leaves an [`AuthRejection`] for the endpoint's challenge, too many wrong
/// passwords from one address answer 429 at once. A request already authenticated by a bearer
/// token passes untouched.
pub async fn authenticate_basic(
    State((identity, scope)): State<(Identity, &'static str)>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.extensions().get::<oppidum_core::Principal>().is_some() {
        return next.run(req).await;
    }
    if let Some((login, password)) = basic(req.headers()) {
        let client = client_info(req.extensions(), req.headers());
        match identity.authenticate_basic(&login, &password, scope, &client).await {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
                req.extensions_mut().insert(LoginName(login));
            }
            Err(err @ IdentityError::RateLimited(_)) => return oppidum_core::Error::from(err).into_response(),
            Err(IdentityError::InvalidCredentials) => {
                req.extensions_mut().insert(AuthRejection {
                    code: "invalid_credentials",
                    message: "The email or app password is wrong.".into(),
                });
            }
            Err(IdentityError::Forbidden(code, message)) => {
                req.extensions_mut().insert(AuthRejection { code, message });
            }
            Err(err) => {
                tracing::error!(error = %err, "authentication failed");
                req.extensions_mut().insert(AuthRejection {
                    code: "authentication_unavailable",
                    message: "Authentication is temporarily unavailable.".into(),
                });
            }
        }
    }
    next.run(req).await
}

/// `Authorization: Basic base64(login:password)`.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

/// The caller's address (from the connection) and user agent.
fn client_info(extensions: &http::Extensions, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_string()),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The caller's address and user agent, for sessions, rate limits and audit.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_info(&parts.extensions, &parts.headers)))
    }
}
