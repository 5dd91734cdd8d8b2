//! OpenAPI shapes of the strings that requests carry under rules the server checks by hand
//! (names, addresses, passwords): one constructor, so that every such shape is stated once, next
//! to the rule it describes, and the document says exactly what the server accepts.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// A string schema with an optional `pattern` and length bounds (in characters).
pub fn string(pattern: Option<&str>, min_length: Option<usize>, max_length: Option<usize>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern.map(str::to_owned))
        .min_length(min_length)
        .max_length(max_length)
        .into()
}
