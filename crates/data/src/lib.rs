//! The data API: schema-driven tables for custom apps. Apps are described in YAML (tables,
//! fields, scoping, soft delete, rules); rows are served over generated JSON routes with rules
//! compiled to parameterized SQL, on SQLite or PostgreSQL.

pub mod compile;
pub mod ddl;
pub mod dictionary;
pub mod expr;
pub mod http;
pub mod introspect;
pub mod openapi;
pub mod queries;
pub mod schema;
pub mod service;
#[cfg(test)]
mod testing;
pub mod values;

pub use service::DataApi;
