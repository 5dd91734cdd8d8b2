//! Completes the OpenAPI document with the answers that every operation of a kind shares, so that
//! the document describes what the server does without each handler repeating them: layers and
//! extractors answer before the handler runs (a body that is not JSON, a malformed id or query
//! parameter, a missing or invalid token), and generated clients must know those statuses.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};

/// Adds the shared answers to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let body = operation.request_body.as_ref().and_then(|body| match body {
        RefOr::T(body) => Some(body.content.keys().cloned().collect::<Vec<_>>()),
        RefOr::Ref(_) => None,
    });
    let json_body = body.as_ref().is_some_and(|types| types.iter().any(|t| t.contains("json")));
    let parameters: Vec<ParameterIn> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p.parameter_in.clone()),
            RefOr::Ref(_) => None,
        })
        .collect();
    if body.is_some() {
        add(operation, "415", "`unsupported_media_type`: the body is not sent with the documented content type.");
    }
    if json_body {
        add(
            operation,
            "400",
            "`invalid_request_body`: the body is not valid JSON or does not match the schema; `details.field` names where.",
        );
    }
    if parameters.iter().any(|p| matches!(p, ParameterIn::Path | ParameterIn::Query)) {
        add(
            operation,
            "400",
            "`invalid_request`: a path or query parameter is malformed (an id that is not a UUID, a number out of range).",
        );
    }
    if body.is_some() || parameters.iter().any(|p| matches!(p, ParameterIn::Path | ParameterIn::Query)) {
        add(
            operation,
            "404",
            "`not_found`: what the path, a parameter or the body refers to is not visible to you (another tenant's data answers the same).",
        );
    }
    if operation.tags.iter().flatten().any(|t| t == "auth") {
        add(
            operation,
            "429",
            "`rate_limited`: too many attempts from this address or on this account; retry after `Retry-After` seconds.",
        );
    }
    let public = operation.security.as_ref().is_some_and(|s| s.is_empty());
    if !public {
        add(operation, "401", "`unauthenticated` or `invalid_token`: no valid credential was sent.");
        add(
            operation,
            "403",
            "`forbidden` (or a more precise code): the credential is valid but may not do this here.",
        );
    }
}

/// Documents `status` with our error body, unless the operation already says something about it.
fn add(operation: &mut Operation, status: &str, description: &str) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
    });
}
