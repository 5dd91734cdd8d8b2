//! OpenAPI shapes of the strings the drive checks by hand, stated next to their rules so the
//! document says what the drive accepts.

use oppidum_core::schema::string;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

/// A file or folder name (see [`crate::files::validate_name`]): 1 to 255 characters once trimmed,
/// no `/`, `\` or control characters. `.`, `..` and Windows device names are refused too, which
/// the pattern does not say.
pub struct NodeName;

impl PartialSchema for NodeName {
    fn schema() -> RefOr<Schema> {
        let allowed = r"[^/\\\x00-\x1f\x7f-\x9f]";
        let pattern = format!(r"^{allowed}*[^/\\\s\x00-\x1f\x7f-\x9f]{allowed}*$");
        string(Some(&pattern), Some(1), Some(255))
    }
}

impl ToSchema for NodeName {}

/// Which drive: `me` (the default, also when empty) or `org:<organization id>`.
pub struct DriveSelector;

impl PartialSchema for DriveSelector {
    fn schema() -> RefOr<Schema> {
        let uuid = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
        string(Some(&format!("^(me|org:{uuid})?$")), None, None)
    }
}

impl ToSchema for DriveSelector {}
