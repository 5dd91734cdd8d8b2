//! The DAV protocol without I/O: request bodies parsed and multistatus answers written as bytes,
//! so that file WebDAV, CalDAV and CardDAV share one implementation tested alone (fixtures and
//! property tests, no server).

pub mod href;
pub mod xml;

/// The `DAV:` namespace (RFC 4918), written with the prefix `D`.
pub const NS_DAV: &str = "DAV:";
