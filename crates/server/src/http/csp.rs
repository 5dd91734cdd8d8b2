//! Content-Security-Policy violation reports. Every response carries a CSP whose `report-uri`
//! points here; browsers POST what they blocked, which we log and count so an operator sees an
//! injected script or a misconfigured front end.

use axum::http::StatusCode;
use oppidum_core::extract::Json;
use serde::Deserialize;
use utoipa::ToSchema;

/// The body browsers send (`application/csp-report`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CspReportBody {
    #[serde(rename = "csp-report")]
    pub report: CspReport,
}

/// One violation. Fields we do not use are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CspReport {
    /// The page where the violation happened.
    pub document_uri: String,
    pub violated_directive: Option<String>,
    pub effective_directive: Option<String>,
    pub blocked_uri: Option<String>,
    pub source_file: Option<String>,
    pub line_number: Option<u64>,
    pub disposition: Option<String>,
}

/// Directives we label metrics with; anything else is `other`, so clients cannot invent labels.
const DIRECTIVES: [&str; 12] = [
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "img-src",
    "connect-src",
    "font-src",
    "frame-src",
    "frame-ancestors",
    "form-action",
];

fn clip(text: Option<&str>) -> &str {
    let text = text.unwrap_or("");
    let end = text.char_indices().nth(300).map(|(i, _)| i).unwrap_or(text.len());
    &text[..end]
}

/// Records a CSP violation report.
#[utoipa::path(
    post,
    path = "/api/csp-report",
    tag = "system",
    request_body(content = CspReportBody, content_type = "application/csp-report"),
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Not a CSP report", body = oppidum_core::error::ErrorBody),
        (status = 413, description = "Body too large", body = oppidum_core::error::ErrorBody),
    )
)]
pub async fn report(Json(body): Json<CspReportBody>) -> StatusCode {
    let report = body.report;
    let directive = report.effective_directive.as_deref().or(report.violated_directive.as_deref()).unwrap_or("");
    let directive = directive.split_whitespace().next().unwrap_or("");
    let label = DIRECTIVES.iter().find(|d| **d == directive).copied().unwrap_or("other");
    metrics::counter!("oppidum_csp_reports_total", "directive" => label).increment(1);
    tracing::warn!(
        document = clip(Some(&report.document_uri)),
        directive = clip(Some(directive)),
        blocked = clip(report.blocked_uri.as_deref()),
        source = clip(report.source_file.as_deref()),
        line = report.line_number,
        disposition = clip(report.disposition.as_deref()),
        "content security policy violation"
    );
    StatusCode::NO_CONTENT
}
