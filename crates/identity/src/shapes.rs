//! OpenAPI shapes of the strings identity checks by hand, each stated next to the rule it
//! describes (`#[schema(value_type = DisplayName)]` on a request field), so the document says
//! exactly what the service accepts.

use oppidum_core::schema::string;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use crate::password;
use crate::service::NAME_MAX_CHARS;

/// A display name (a person, an organization, a key): 1 to [`NAME_MAX_CHARS`] characters once
/// trimmed, no control characters.
pub struct DisplayName;

impl PartialSchema for DisplayName {
    fn schema() -> RefOr<Schema> {
        let printable = r"[^\x00-\x1f\x7f-\x9f]";
        let pattern = format!(r"^{printable}*[^\s\x00-\x1f\x7f-\x9f]{printable}*$");
        string(Some(&pattern), None, Some(NAME_MAX_CHARS))
    }
}

impl ToSchema for DisplayName {}

/// A new password: [`password::MIN_LEN`] to [`password::MAX_CHARS`] characters.
pub struct NewPassword;

impl PartialSchema for NewPassword {
    fn schema() -> RefOr<Schema> {
        string(None, Some(password::MIN_LEN), Some(password::MAX_CHARS))
    }
}

impl ToSchema for NewPassword {}

/// A role's name: built-in (`owner`, `admin`, `member`, `guest`) or custom, 1 to 64 of a-z, 0-9,
/// `_` and `-`.
pub struct RoleName;

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        string(Some(r"^[a-z0-9_-]{1,64}$"), None, None)
    }
}

impl ToSchema for RoleName {}

/// An organization's kind (`reseller`, `customer`, `group`, …): 1 to 64 of a-z, 0-9, `_` and
/// `-`, case and surrounding spaces ignored.
pub struct OrgKind;

impl PartialSchema for OrgKind {
    fn schema() -> RefOr<Schema> {
        string(Some(r"^\s*[A-Za-z0-9_-]{1,64}\s*$"), None, None)
    }
}

impl ToSchema for OrgKind {}
