//! `POST /api/mail/send`: apps with the `mail.send` permission send mail through the outbox.

use axum::Json as AxumJson;
use axum::extract::State;
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::MailError;
use crate::outbox::{Mailer, NewMail, parse_mailbox};

/// Most recipients in one request; each gets its own message and delivery job.
pub const MAX_RECIPIENTS: usize = 1_000;

/// Every mail route, documented.
pub fn routes() -> OpenApiRouter<Mailer> {
    OpenApiRouter::new().routes(routes!(send)).routes(routes!(put_template))
}

/// One recipient (the OpenAPI shape): `a@example.org` or `Name <a@example.org>`.
pub struct Recipient;

impl utoipa::PartialSchema for Recipient {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let address = oppidum_core::email::PATTERN.trim_start_matches('^').trim_end_matches('$');
        let pattern = format!(r"^\s*({address}|[A-Za-z0-9][A-Za-z0-9 '-]{{0,62}} <{address}>)\s*$");
        oppidum_core::schema::string(Some(&pattern), None, Some(320))
    }
}

impl ToSchema for Recipient {}

/// A message: either `template` (+ `variables`, `locale`) or `subject` + `text` (+ `html`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<Recipient>)]
    pub to: Vec<String>,
    pub template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    pub locale: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    /// One queued message per recipient.
    pub ids: Vec<Uuid>,
}

/// Queues one message per recipient (`mail.send`).
#[utoipa::path(post, path = "/api/mail/send", tag = "mail", request_body = SendRequest,
    responses((status = 202, body = SendResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn send(
    State(mailer): State<Mailer>,
    principal: Principal,
    Json(body): Json<SendRequest>,
) -> Result<(StatusCode, AxumJson<SendResponse>), Error> {
    Ok((StatusCode::ACCEPTED, AxumJson(send_for(&mailer, &principal, body).await?)))
}

async fn send_for(mailer: &Mailer, principal: &Principal, body: SendRequest) -> Result<SendResponse, MailError> {
    if !principal.can("mail.send") {
        return Err(MailError::Forbidden("You need the `mail.send` permission.".into()));
    }
    if body.to.is_empty() || body.to.len() > MAX_RECIPIENTS {
        return Err(MailError::Invalid("invalid_recipients", format!("Give 1 to {MAX_RECIPIENTS} recipients.")));
    }
    // Every address is checked before anything is queued: all or nothing.
    for to in &body.to {
        parse_mailbox(to)?;
    }
    let org = Some(principal.org_id);
    let mut ids = Vec::with_capacity(body.to.len());
    match (&body.template, &body.subject, &body.text) {
        (Some(template), None, None) => {
            let rendered = mailer
                .templates()
                .render(org, template, body.locale.as_deref().unwrap_or(mailer.default_locale()), &body.variables)
                .await?;
            for to in &body.to {
                let mail = NewMail {
                    org,
                    to: to.clone(),
                    subject: rendered.subject.clone(),
                    text: rendered.text.clone(),
                    html: Some(rendered.html.clone()),
                    template: Some(template.clone()),
                };
                ids.push(mailer.send(mail).await?);
            }
        }
        (None, Some(subject), Some(text)) => {
            for to in &body.to {
                let mail = NewMail {
                    org,
                    to: to.clone(),
                    subject: subject.clone(),
                    text: text.clone(),
                    html: body.html.clone(),
                    template: None,
                };
                ids.push(mailer.send(mail).await?);
            }
        }
        _ => {
            return Err(MailError::Invalid(
                "invalid_request_body",
                "Give either `template` (with `variables`) or `subject` and `text`.".into(),
            ));
        }
    }
    Ok(SendResponse { ids })
}

/// An organization's version of a built-in template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateOverride {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Values every template may use; an override using anything else is refused.
fn sample_variables() -> serde_json::Value {
    serde_json::json!({
        "name": "Ada", "link": "https://example.org/x?token=t", "org_name": "Example", "inviter": "Grace",
        "role": "member", "new_email": "new@example.org", "code": "123456", "ip": "192.0.2.1",
        "user_agent": "Browser", "at": "2026-01-01 00:00 UTC",
    })
}

/// Replaces a built-in template for your current organization (`orgs.manage`).
#[utoipa::path(put, path = "/api/mail/templates/{name}/{locale}", tag = "mail",
    params(("name" = String, Path), ("locale" = String, Path)), request_body = TemplateOverride,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, description = "`template_error`", body = ErrorBody)))]
pub async fn put_template(
    State(mailer): State<Mailer>,
    principal: Principal,
    axum::extract::Path((name, locale)): axum::extract::Path<(String, String)>,
    Json(body): Json<TemplateOverride>,
) -> Result<StatusCode, Error> {
    if !principal.can("orgs.manage") {
        return Err(MailError::Forbidden("You need the `orgs.manage` permission.".into()).into());
    }
    if body.subject.len() > 998 || body.text.len() > 100_000 || body.html.len() > 200_000 {
        return Err(MailError::Invalid("template_too_large", "The template is too large.".into()).into());
    }
    let parts = (body.subject.as_str(), body.text.as_str(), body.html.as_str());
    mailer
        .templates()
        .set_override(principal.org_id, &name, &locale, parts, &sample_variables(), chrono::Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
