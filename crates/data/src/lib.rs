//! The data API: schema-driven tables for custom apps (issue 6, in progress). So far the pure
//! layers: the expression language of filters and rules, and apps' schemas loaded from YAML and
//! checked with every problem reported at once.

pub mod compile;
pub mod ddl;
pub mod expr;
pub mod schema;
#[cfg(test)]
mod testing;
pub mod values;
