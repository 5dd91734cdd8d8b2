//! DAV XML: what clients send (`propfind`) and what servers answer (`multistatus`, `<D:error>`).
//! Pure functions over bytes; namespaces resolved, no entity expansion, bounded nesting.

mod escape;
mod multistatus;
mod precondition;
mod propfind;

pub use escape::{escape_attribute, escape_text};
pub use multistatus::{Multistatus, ResponseWriter, without_declaration};
pub use precondition::precondition_error;
pub use propfind::{Propfind, parse_propfind};

use crate::NS_DAV;

/// The deepest nesting a request body may have.
pub const MAX_DEPTH: usize = 32;
/// The most property names one request may ask for.
pub const MAX_NAMES: usize = 512;

/// A property's name: its namespace (empty: none) and local name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropName {
    pub namespace: String,
    pub local: String,
}

impl PropName {
    pub fn new(namespace: &str, local: &str) -> Self {
        Self { namespace: namespace.to_owned(), local: local.to_owned() }
    }

    pub fn dav(local: &str) -> Self {
        Self::new(NS_DAV, local)
    }

    pub fn is_dav(&self, local: &str) -> bool {
        self.namespace == NS_DAV && self.local == local
    }
}

/// Why a request body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("the body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the body is not a DAV:{0} element")]
    UnexpectedRoot(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the body nests deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("the body names more than {MAX_NAMES} properties")]
    TooManyNames,
    #[error("document type declarations are not accepted")]
    DocType,
}

/// True when `name` can be written as an XML element name as is (it came out of a parser, but
/// only names made of name characters are written back).
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\u{b7}'))
}
