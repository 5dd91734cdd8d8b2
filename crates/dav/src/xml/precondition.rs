//! `<D:error>` bodies naming the precondition or postcondition that failed (RFC 4918 §16).

use super::PropName;
use crate::NS_DAV;

/// The body of an error answer naming `condition` (e.g. `DAV:propfind-finite-depth`).
pub fn precondition_error(condition: &PropName) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\">");
    if condition.namespace == NS_DAV {
        out.push_str("<D:");
        out.push_str(&condition.local);
        out.push_str("/>");
    } else {
        out.push('<');
        out.push_str(&condition.local);
        out.push_str(" xmlns=\"");
        super::escape_attribute(&mut out, &condition.namespace);
        out.push_str("\"/>");
    }
    out.push_str("</D:error>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_named_in_their_namespace() {
        let dav = precondition_error(&PropName::dav("propfind-finite-depth"));
        assert!(
            String::from_utf8_lossy(&dav).contains("<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>")
        );
        let caldav = precondition_error(&PropName::new("urn:ietf:params:xml:ns:caldav", "valid-calendar-data"));
        assert!(
            String::from_utf8_lossy(&caldav).contains("<valid-calendar-data xmlns=\"urn:ietf:params:xml:ns:caldav\"/>")
        );
    }
}
